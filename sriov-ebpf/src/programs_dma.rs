//! VFIO DMA programs (map/unmap requests, IOMMU bytes) and the empty
//! baselines the benchmarks compare against.
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::PerCpuArray,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use sriov_ebpf::{
    VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
    record::{DMA_MAP, DMA_UNMAP, DmaRecord, KIND_VFIO_DMA},
};

use crate::programs::{EMPTY, HOOK_VFIO_IOCTL, emit, header, now, start_flat, take_flat};

#[map(name = "IOMMU_BYTES")]
static IOMMU_BYTES: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

// ---------------------------------------------------------------- DMA
//
// vfio_iommu_type1 is a module: its functions are hooked with kprobes
// (fentry on a module function needs the module's BTF).

/// `vfio_iommu_type1_ioctl(void *iommu_data, unsigned int cmd, unsigned long arg)`:
/// `VFIO_IOMMU_MAP_DMA` reads `struct vfio_iommu_type1_dma_map { argsz, flags,
/// vaddr, iova, size }`, `UNMAP_DMA` `{ argsz, flags, iova, size }`.
#[kprobe]
pub fn vfio_ioctl_entry(ctx: ProbeContext) -> u32 {
    let Some(cmd) = ctx.arg::<u32>(1) else {
        return 0;
    };
    let Some(arg) = ctx.arg::<u64>(2) else {
        return 0;
    };
    let mut s = EMPTY;
    s.ts = now();
    if cmd == VFIO_IOMMU_MAP_DMA {
        // SAFETY: checked reads of the caller's struct in user memory.
        let m = unsafe { bpf_probe_read_user((arg + 8) as *const [u64; 3]) };
        let Ok([vaddr, iova, size]) = m else { return 0 };
        (s.a, s.b, s.c) = (iova, size, vaddr);
        s.name[0] = DMA_MAP as u8;
    } else if cmd == VFIO_IOMMU_UNMAP_DMA {
        // SAFETY: as above.
        let m = unsafe { bpf_probe_read_user((arg + 8) as *const [u64; 2]) };
        let Ok([iova, size]) = m else { return 0 };
        (s.a, s.b) = (iova, size);
        s.name[0] = DMA_UNMAP as u8;
    } else {
        return 0;
    }
    // an ioctl does not nest on one thread
    start_flat(HOOK_VFIO_IOCTL, &s);
    0
}

#[kretprobe]
pub fn vfio_ioctl_exit(ctx: RetProbeContext) -> u32 {
    let ret: i64 = ctx.ret();
    let Some(s) = take_flat(HOOK_VFIO_IOCTL) else {
        return 0;
    };
    emit(DmaRecord {
        hdr: header(KIND_VFIO_DMA),
        op: u32::from(s.name[0]),
        ret: ret as i32,
        iova: s.a,
        size: s.b,
        vaddr: s.c,
        latency_ns: now().saturating_sub(s.ts),
    });
    0
}

fn add_bytes(slot: u32, ctx: &TracePointContext, offset: usize) {
    // SAFETY: offset from the event's format file; checked read.
    let Ok(size) = (unsafe { ctx.read_at::<u64>(offset) }) else {
        return;
    };
    if let Some(p) = IOMMU_BYTES.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *p += size };
    }
}

/// `iommu:map` (`size` at 24): bytes mapped through any IOMMU domain.
#[tracepoint]
pub fn iommu_map(ctx: TracePointContext) -> u32 {
    add_bytes(0, &ctx, 24);
    0
}

/// `iommu:unmap` (`unmapped_size` at 24).
#[tracepoint]
pub fn iommu_unmap(ctx: TracePointContext) -> u32 {
    add_bytes(1, &ctx, 24);
    0
}

// ---------------------------------------------------------------- baselines

/// Does nothing: the baseline a tracepoint program is measured against
/// (`cargo xtask bench`, kernel.bpf_stats_enabled).
#[tracepoint]
pub fn empty_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

/// Does nothing: the kprobe baseline.
#[kprobe]
pub fn empty_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

/// Does nothing: the fentry baseline (loaded against any function).
#[fentry(function = "sriov_numvfs_store")]
pub fn empty_fentry(_ctx: FEntryContext) -> u32 {
    0
}

/// Does nothing: the fexit baseline (loaded against any function).
#[fexit(function = "sriov_numvfs_store")]
pub fn empty_fexit(_ctx: FExitContext) -> u32 {
    0
}

/// Does nothing: the kretprobe baseline.
#[kretprobe]
pub fn empty_kretprobe(_ctx: RetProbeContext) -> u32 {
    0
}
