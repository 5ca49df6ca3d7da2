//! IRQ programs: per-IRQ counts and handler time of watched IRQ numbers,
//! VFIO-forwarded interrupts, MSI/MSI-X allocation, and the free path that
//! stops counting a number before it can be reused.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::{Array, PerCpuArray},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use sriov_ebpf::{
    IRQ_HANDLER_ENTRY_IRQ_OFFSET, MAX_WATCHED_IRQS,
    record::{
        IRQ_BUCKETS, IrqFreeRecord, IrqStats, KIND_IRQ_FREE, KIND_MSI_ALLOC, MsiRecord, NAME_LEN,
    },
};

use crate::programs::{
    EMPTY, HOOK_MSI, HOOK_MSI_FREE, emit, header, name_at, now, null, peek, start, take,
};

// IRQ maps are arrays indexed by IRQ number: a lookup is an index, not a
// hash, on the hottest path (every hard interrupt).
#[map(name = "WATCH_IRQS")]
static WATCH_IRQS: Array<u8> = Array::with_max_entries(MAX_WATCHED_IRQS, 0);

#[map(name = "IRQ_COUNTS")]
static IRQ_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_WATCHED_IRQS, 0);

#[map(name = "IRQ_STATS")]
static IRQ_STATS: PerCpuArray<IrqStats> = PerCpuArray::with_max_entries(MAX_WATCHED_IRQS, 0);

/// Start of the hard-IRQ handler running on this CPU (they do not nest).
#[map(name = "IRQ_START")]
static IRQ_START: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "VFIO_IRQ_COUNTS")]
static VFIO_IRQ_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_WATCHED_IRQS, 0);

// ---------------------------------------------------------------- IRQs

fn watched(irq: u32) -> bool {
    WATCH_IRQS.get(irq).is_some_and(|w| *w != 0)
}

fn irq_of(ctx: &TracePointContext) -> Option<u32> {
    // SAFETY: the offset comes from the tracepoint's format file; read_at is
    // a checked read of the record.
    unsafe { ctx.read_at::<i32>(IRQ_HANDLER_ENTRY_IRQ_OFFSET) }
        .ok()
        .map(|v| v as u32)
}

/// `irq:irq_handler_entry`: count watched IRQs (per CPU) and note when the
/// handler started. No record per interrupt leaves the kernel.
#[tracepoint]
pub fn irq_handler_entry(ctx: TracePointContext) -> u32 {
    let Some(irq) = irq_of(&ctx) else { return 0 };
    if !watched(irq) {
        return 0;
    }
    if let Some(p) = IRQ_START.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *p = now() };
    }
    if let Some(p) = IRQ_COUNTS.get_ptr_mut(irq) {
        // SAFETY: per-CPU value, so no other writer can race with this CPU.
        unsafe { *p += 1 };
    }
    0
}

/// `irq:irq_handler_exit`: handler time of watched IRQs into a per-CPU
/// log2 histogram.
#[tracepoint]
pub fn irq_handler_exit(ctx: TracePointContext) -> u32 {
    let Some(irq) = irq_of(&ctx) else { return 0 };
    if !watched(irq) {
        return 0;
    }
    let Some(p) = IRQ_START.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot.
    let t0 = unsafe { *p };
    if t0 == 0 {
        return 0;
    }
    // SAFETY: per-CPU slot.
    unsafe { *p = 0 };
    let d = now().saturating_sub(t0);
    let bucket = ((63 - d.max(1).leading_zeros()) as usize).min(IRQ_BUCKETS - 1);
    if let Some(s) = IRQ_STATS.get_ptr_mut(irq) {
        // SAFETY: per-CPU value; the index is below IRQ_BUCKETS.
        unsafe {
            (*s).count += 1;
            (*s).total_ns += d;
            if d > (*s).max_ns {
                (*s).max_ns = d;
            }
            if let Some(b) = (*s).log2_ns.get_mut(bucket) {
                *b += 1;
            }
        }
    }
    0
}

/// `vfio_msihandler(int irq, void *arg)`: an interrupt VFIO forwards to
/// user space through an eventfd.
#[kprobe]
pub fn vfio_irq(ctx: ProbeContext) -> u32 {
    let Some(irq) = ctx.arg::<u32>(0) else {
        return 0;
    };
    if !watched(irq) {
        return 0;
    }
    if let Some(p) = VFIO_IRQ_COUNTS.get_ptr_mut(irq) {
        // SAFETY: per-CPU value.
        unsafe { *p += 1 };
    }
    0
}

// ---------------------------------------------------------------- MSI

/// `msi_domain_alloc_irqs_all_locked(struct device *dev, unsigned int domid, int nirqs)`.
fn on_msi(dev: *const u8, nirqs: u32) {
    let mut s = EMPTY;
    s.ts = now();
    s.name = name_at(dev);
    s.a = u64::from(nirqs);
    start(HOOK_MSI, &s);
}

fn on_msi_ret(ret: i32) {
    let Some(s) = take(HOOK_MSI) else { return };
    emit(MsiRecord {
        hdr: header(KIND_MSI_ALLOC),
        dev: s.name,
        nvec: s.a as i32,
        ret,
        latency_ns: now().saturating_sub(s.ts),
    });
}

#[kprobe]
pub fn msi_entry(ctx: ProbeContext) -> u32 {
    on_msi(ctx.arg(0).unwrap_or(null()), ctx.arg(2).unwrap_or(0));
    0
}

#[kretprobe]
pub fn msi_exit(ctx: RetProbeContext) -> u32 {
    on_msi_ret(ctx.ret());
    0
}

#[fentry(function = "msi_domain_alloc_irqs_all_locked")]
pub fn msi_fentry(ctx: FEntryContext) -> u32 {
    on_msi(ctx.arg(0), ctx.arg(2));
    0
}

#[fexit(function = "msi_domain_alloc_irqs_all_locked")]
pub fn msi_fexit(ctx: FExitContext) -> u32 {
    on_msi_ret(ctx.arg(3));
    0
}

/// `msi_domain_free_irqs_all_locked(struct device *dev, unsigned int domid)`:
/// names the device for the [`irq_free`] calls inside it.
fn on_msi_free(dev: *const u8) {
    let mut s = EMPTY;
    s.name = name_at(dev);
    start(HOOK_MSI_FREE, &s);
}

#[kprobe]
pub fn msi_free_entry(ctx: ProbeContext) -> u32 {
    on_msi_free(ctx.arg(0).unwrap_or(null()));
    0
}

#[kretprobe]
pub fn msi_free_exit(_ctx: RetProbeContext) -> u32 {
    let _ = take(HOOK_MSI_FREE);
    0
}

#[fentry(function = "msi_domain_free_irqs_all_locked")]
pub fn msi_free_fentry(ctx: FEntryContext) -> u32 {
    on_msi_free(ctx.arg(0));
    0
}

#[fexit(function = "msi_domain_free_irqs_all_locked")]
pub fn msi_free_fexit(_ctx: FExitContext) -> u32 {
    let _ = take(HOOK_MSI_FREE);
    0
}

// Before 6.2 the same steps were `msi_domain_alloc_irqs_descs_locked(struct
// irq_domain *domain, struct device *dev, int nvec)` and
// `msi_domain_free_irqs_descs_locked(struct irq_domain *domain, struct device
// *dev)`: the device is the second argument. Stand-ins for the hooks above
// (`programs::STAND_INS`), tried where those functions are missing.

#[kprobe]
pub fn msi_entry_descs(ctx: ProbeContext) -> u32 {
    on_msi(ctx.arg(1).unwrap_or(null()), ctx.arg(2).unwrap_or(0));
    0
}

#[kretprobe]
pub fn msi_exit_descs(ctx: RetProbeContext) -> u32 {
    on_msi_ret(ctx.ret());
    0
}

#[fentry(function = "msi_domain_alloc_irqs_descs_locked")]
pub fn msi_fentry_descs(ctx: FEntryContext) -> u32 {
    on_msi(ctx.arg(1), ctx.arg(2));
    0
}

#[fexit(function = "msi_domain_alloc_irqs_descs_locked")]
pub fn msi_fexit_descs(ctx: FExitContext) -> u32 {
    on_msi_ret(ctx.arg(3));
    0
}

#[kprobe]
pub fn msi_free_entry_descs(ctx: ProbeContext) -> u32 {
    on_msi_free(ctx.arg(1).unwrap_or(null()));
    0
}

#[kretprobe]
pub fn msi_free_exit_descs(_ctx: RetProbeContext) -> u32 {
    let _ = take(HOOK_MSI_FREE);
    0
}

#[fentry(function = "msi_domain_free_irqs_descs_locked")]
pub fn msi_free_fentry_descs(ctx: FEntryContext) -> u32 {
    on_msi_free(ctx.arg(1));
    0
}

#[fexit(function = "msi_domain_free_irqs_descs_locked")]
pub fn msi_free_fexit_descs(_ctx: FExitContext) -> u32 {
    let _ = take(HOOK_MSI_FREE);
    0
}

/// Most IRQ numbers one `irq_free_descs` call stops counting (a device
/// frees its MSI-X vectors one descriptor at a time).
const MAX_FREE: u32 = 64;

/// `irq_free_descs(unsigned int from, unsigned int cnt)`: the numbers are
/// released, so the counters stop here, in the kernel, before any new owner
/// can raise an interrupt on them; user space hands them on.
fn on_irq_free(from: u32, cnt: u32) {
    let mut i = 0;
    while i < MAX_FREE && i < cnt {
        if let Some(p) = WATCH_IRQS.get_ptr_mut(from.wrapping_add(i)) {
            // SAFETY: an array slot; a byte store.
            unsafe { *p = 0 };
        }
        i += 1;
    }
    let dev = peek(HOOK_MSI_FREE).map_or([0; NAME_LEN], |s| s.name);
    emit(IrqFreeRecord {
        hdr: header(KIND_IRQ_FREE),
        dev,
        from,
        cnt,
    });
}

#[kprobe]
pub fn irq_free_entry(ctx: ProbeContext) -> u32 {
    on_irq_free(ctx.arg(0).unwrap_or(0), ctx.arg(1).unwrap_or(0));
    0
}

#[fentry(function = "irq_free_descs")]
pub fn irq_free_fentry(ctx: FEntryContext) -> u32 {
    on_irq_free(ctx.arg(0), ctx.arg(1));
    0
}
