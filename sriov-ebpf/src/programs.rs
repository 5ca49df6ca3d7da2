//! Kernel-side programs.
use aya_ebpf::{
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuHashMap},
    programs::TracePointContext,
};
use sriov_ebpf::{IRQ_HANDLER_ENTRY_IRQ_OFFSET, MAX_WATCHED_IRQS};

#[map(name = "WATCH_IRQS")]
static WATCH_IRQS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_WATCHED_IRQS, 0);

#[map(name = "IRQ_COUNTS")]
static IRQ_COUNTS: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(MAX_WATCHED_IRQS, 0);

/// `irq:irq_handler_entry`: count each interrupt of a watched IRQ in a
/// per-CPU counter. No record per interrupt leaves the kernel.
#[tracepoint]
pub fn irq_handler_entry(ctx: TracePointContext) -> u32 {
    // SAFETY: the offset comes from the tracepoint's format file; read_at is
    // a bounds-checked bpf_probe_read of the record.
    let irq: u32 = match unsafe { ctx.read_at::<i32>(IRQ_HANDLER_ENTRY_IRQ_OFFSET) } {
        Ok(v) => v as u32,
        Err(_) => return 0,
    };
    // SAFETY: the value is a plain u8 and is only read.
    if unsafe { WATCH_IRQS.get(&irq) }.is_none() {
        return 0;
    }
    match IRQ_COUNTS.get_ptr_mut(&irq) {
        // SAFETY: per-CPU value, so no other writer can race with this CPU.
        Some(p) => unsafe { *p += 1 },
        None => {
            let _ = IRQ_COUNTS.insert(&irq, &1, 0);
        }
    }
    0
}
