//! The DMA quota on what VFIO type1 really does. The LSM (`file_ioctl`)
//! can only read the caller's struct before VFIO copies it again; these
//! kprobes follow the kernel's own work instead:
//!
//! - `vfio_iommu_type1_open` returns a new container (`struct vfio_iommu`);
//!   `attach_group`/`detach_group` tie a VF with a quota to it (by the IOMMU
//!   group's id) and untie it; `release` forgets it.
//! - `vfio_pin_pages_remote(dma, vaddr, npage, ...)` pins pages for a map:
//!   on entry, a map that would take the VF past its quota kills the caller
//!   (`bpf_send_signal(SIGKILL)`: the pinning loop stops at the pending
//!   fatal signal, VFIO undoes the partial map), on return the pages pinned
//!   are charged.
//! - `vfio_unpin_pages_remote(dma, iova, pfn, npage, ...)` gives pages back:
//!   on an unmap, a failed map, a detach, and when the container is closed
//!   however it is closed (process exit included).
//!
//! Which container a thread works on comes from the entry of the type1 call
//! it is in (ioctl, attach, detach, release), kept per thread until it
//! returns. vfio_iommu_type1 serializes a container's maps and unmaps under
//! its lock, so the counters need no atomics.
use aya_ebpf::{
    helpers::bpf_send_signal,
    macros::{kprobe, kretprobe, map},
    maps::HashMap,
    programs::{ProbeContext, RetProbeContext},
};
use sriov_ebpf::{
    policy::*,
    record::{NAME_LEN, V_DMA_QUOTA},
};

use crate::{
    enforce::{DMA_USED, UNREADABLE, WHY_SHARED, conf, group_slot, off, read_u32, vf_rule, why},
    programs::tid,
};

const PAGE_SIZE: u64 = 4096;
const SIGKILL: u32 = 9;

static PREDATES: [u8; NAME_LEN] = why(b"container predates the policy");
static MAPPED: [u8; NAME_LEN] = why(b"container already mapped");
static PINNED: [u8; NAME_LEN] = why(b"pinned past the quota");

#[map(name = "IOMMU_STATE")]
static IOMMU_STATE: HashMap<u64, IommuState> = HashMap::with_max_entries(1024, 0);

/// The container a thread is in a type1 call for: (iommu, IOMMU group id or 0).
#[map(name = "IOMMU_CTX")]
static IOMMU_CTX: HashMap<u32, [u64; 2]> = HashMap::with_max_entries(4096, 0);

fn enter(iommu: u64, group: u64) {
    let _ = IOMMU_CTX.insert(&tid(), &[iommu, group], 0);
}

fn ctx() -> Option<[u64; 2]> {
    // SAFETY: the value is copied.
    unsafe { IOMMU_CTX.get(&tid()) }.copied()
}

fn leave() -> Option<[u64; 2]> {
    let c = ctx();
    let _ = IOMMU_CTX.remove(&tid());
    c
}

/// The id of a `struct iommu_group *`.
fn group_id(group: u64) -> u64 {
    let Some(c) = conf() else { return 0 };
    read_u32(group + off(c, OFF_IOMMU_GROUP_ID)).map_or(0, u64::from)
}

fn quota_of(slot: u32) -> Option<u64> {
    let c = conf()?;
    let r = vf_rule(c, slot)?;
    (r.flags & RULE_DMA_QUOTA != 0).then_some(r.dma_quota)
}

fn used(slot: u32) -> u64 {
    DMA_USED.get(slot).copied().unwrap_or(0)
}

fn add_used(slot: u32, bytes: u64, sub: bool) {
    if let Some(p) = DMA_USED.get_ptr_mut(slot) {
        // SAFETY: a valid, aligned map value; writers of one slot are
        // serialized by the container's lock (see the module docs).
        unsafe {
            *p = if sub {
                (*p).saturating_sub(bytes)
            } else {
                (*p).saturating_add(bytes)
            };
        }
    }
}

/// Over the quota with the kernel's own numbers: report, and in enforce
/// mode kill the caller before anything is pinned.
fn over_quota(slot: u32, bytes: u64, used: u64, why: &'static [u8; NAME_LEN]) {
    let Some(c) = conf() else { return };
    let enforce = c.mode == MODE_ENFORCE;
    crate::enforce::report(
        V_DMA_QUOTA,
        if enforce {
            sriov_ebpf::record::ACTION_DENIED
        } else {
            sriov_ebpf::record::ACTION_AUDITED
        },
        slot,
        bytes,
        used,
        why,
        crate::enforce::Cause::Task,
    );
    if enforce {
        // SAFETY: a signal to the current task.
        unsafe { bpf_send_signal(SIGKILL) };
    }
}

#[kretprobe]
pub fn policy_iommu_open_exit(ctx: RetProbeContext) -> u32 {
    let iommu: u64 = ctx.ret();
    if conf().is_some() && iommu != 0 && iommu < 0xffff_ffff_ffff_f000 {
        let fresh = IommuState {
            slot: NO_SLOT,
            _pad: 0,
            bytes: 0,
        };
        let _ = IOMMU_STATE.insert(&iommu, &fresh, 0);
    }
    0
}

#[kprobe]
pub fn policy_ioctl_enter(ctx: ProbeContext) -> u32 {
    if conf().is_some()
        && let Some(iommu) = ctx.arg::<u64>(0)
    {
        enter(iommu, 0);
    }
    0
}

#[kretprobe]
pub fn policy_ioctl_leave(_ctx: RetProbeContext) -> u32 {
    let _ = leave();
    0
}

#[kprobe]
pub fn policy_attach_enter(ctx: ProbeContext) -> u32 {
    if conf().is_some()
        && let (Some(iommu), Some(group)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1))
    {
        enter(iommu, group_id(group));
    }
    0
}

/// A group joined the container: a VF with a quota is charged what the
/// container already holds. A container opened before the policy was
/// loaded has unknown bytes: it cannot serve a VF with a quota.
#[kretprobe]
pub fn policy_attach_leave(ctx: RetProbeContext) -> u32 {
    let ret: i64 = ctx.ret();
    let Some([iommu, group]) = leave() else {
        return 0;
    };
    let Some(slot) = group_slot(group as u32) else {
        return 0;
    };
    let Some(quota) = quota_of(slot) else {
        return 0;
    };
    if ret != 0 {
        return 0;
    }
    let Some(st) = IOMMU_STATE.get_ptr_mut(&iommu) else {
        over_quota(slot, UNREADABLE, used(slot), &PREDATES);
        return 0;
    };
    // SAFETY: a valid map value.
    let st = unsafe { &mut *st };
    if st.slot == slot {
        return 0;
    }
    if st.slot != NO_SLOT {
        over_quota(slot, st.bytes, used(slot), &WHY_SHARED);
        return 0;
    }
    st.slot = slot;
    let now = used(slot);
    add_used(slot, st.bytes, false);
    if now.saturating_add(st.bytes) > quota {
        over_quota(slot, st.bytes, now, &MAPPED);
    }
    0
}

#[kprobe]
pub fn policy_detach_enter(ctx: ProbeContext) -> u32 {
    if conf().is_some()
        && let (Some(iommu), Some(group)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1))
    {
        enter(iommu, group_id(group));
    }
    0
}

/// The VF left the container: what it was charged for it goes back.
#[kretprobe]
pub fn policy_detach_leave(_ctx: RetProbeContext) -> u32 {
    let Some([iommu, group]) = leave() else {
        return 0;
    };
    if let Some(st) = IOMMU_STATE.get_ptr_mut(&iommu) {
        // SAFETY: a valid map value.
        let st = unsafe { &mut *st };
        if st.slot != NO_SLOT && Some(st.slot) == group_slot(group as u32) {
            add_used(st.slot, st.bytes, true);
            st.slot = NO_SLOT;
        }
    }
    0
}

#[kprobe]
pub fn policy_release_enter(ctx: ProbeContext) -> u32 {
    if conf().is_some()
        && let Some(iommu) = ctx.arg::<u64>(0)
    {
        enter(iommu, 0);
    }
    0
}

/// The container is gone (its mappings were unpinned on the way out).
#[kretprobe]
pub fn policy_release_leave(_ctx: RetProbeContext) -> u32 {
    if let Some([iommu, _]) = leave() {
        let _ = IOMMU_STATE.remove(&iommu);
    }
    0
}

/// `f` on the state of the container the current thread works on.
fn with_state<R>(f: impl FnOnce(&mut IommuState) -> R) -> Option<R> {
    let [iommu, _] = ctx()?;
    let p = IOMMU_STATE.get_ptr_mut(&iommu)?;
    // SAFETY: a valid map value, borrowed for this call only.
    Some(f(unsafe { &mut *p }))
}

#[kprobe]
pub fn policy_pin_enter(ctx: ProbeContext) -> u32 {
    let Some(slot) = with_state(|st| st.slot).filter(|&s| s != NO_SLOT) else {
        return 0;
    };
    let Some(quota) = quota_of(slot) else {
        return 0;
    };
    let npage: u64 = ctx.arg(2).unwrap_or(u64::MAX);
    let bytes = npage.saturating_mul(PAGE_SIZE);
    let now = used(slot);
    if now.saturating_add(bytes) > quota {
        over_quota(slot, bytes, now, &PINNED);
    }
    0
}

#[kretprobe]
pub fn policy_pin_leave(ctx: RetProbeContext) -> u32 {
    let pinned: i64 = ctx.ret();
    if pinned <= 0 {
        return 0;
    }
    let bytes = (pinned as u64).saturating_mul(PAGE_SIZE);
    let slot = with_state(|st| {
        st.bytes = st.bytes.saturating_add(bytes);
        st.slot
    });
    if let Some(slot) = slot.filter(|&s| s != NO_SLOT) {
        add_used(slot, bytes, false);
    }
    0
}

#[kprobe]
pub fn policy_unpin_enter(ctx: ProbeContext) -> u32 {
    let npage: u64 = ctx.arg(3).unwrap_or(0);
    let bytes = npage.saturating_mul(PAGE_SIZE);
    let slot = with_state(|st| {
        st.bytes = st.bytes.saturating_sub(bytes);
        st.slot
    });
    if let Some(slot) = slot.filter(|&s| s != NO_SLOT) {
        add_used(slot, bytes, true);
    }
    0
}
