//! `GROUPID_VF` follows VFs as they join and leave IOMMU groups, in the
//! kernel, as it happens (`iommu:add_device_to_group`,
//! `iommu:remove_device_from_group`): a VF re-created with a new group is
//! known before user space looks again. The device is matched by its name
//! (the BDF) in `BDF_VF`.
use aya_ebpf::{
    EbpfContext as _,
    helpers::bpf_probe_read_kernel_str_bytes,
    macros::{kprobe, tracepoint},
    programs::{ProbeContext, TracePointContext},
};
use sriov_ebpf::policy::{BDF_LEN, OFF_DEVICE_DEVT, OFF_DEVICE_KOBJ};

use crate::enforce::{
    BDF_VF, GROUP_VF, GROUPID_VF, conf, group_slot, kobj_group_id, off, read_u32,
};

/// `int gid` at 8, `__data_loc char[] device` at 12 (both events).
#[inline(always)]
fn group_event(ctx: &TracePointContext, add: bool) {
    if conf().is_none() {
        return;
    }
    // SAFETY: offsets from the event's format file; checked reads.
    let (Ok(gid), Ok(loc)) = (unsafe { ctx.read_at::<u32>(8) }, unsafe {
        ctx.read_at::<u32>(12)
    }) else {
        return;
    };
    let mut bdf = [0u8; BDF_LEN];
    let off = (loc & 0xffff) as usize;
    // SAFETY: __data_loc points inside the record; the read is checked
    // (a longer name is cut and then matches no BDF, which is 12 bytes).
    if unsafe { bpf_probe_read_kernel_str_bytes((ctx.as_ptr() as *const u8).add(off), &mut bdf) }
        .is_err()
    {
        return;
    }
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { BDF_VF.get(&bdf) }).copied() else {
        return;
    };
    if add {
        let _ = GROUPID_VF.insert(&gid, &slot, 0);
    } else {
        // SAFETY: the value is copied.
        if unsafe { GROUPID_VF.get(&gid) }.copied() == Some(slot) {
            let _ = GROUPID_VF.remove(&gid);
        }
    }
}

#[tracepoint]
pub fn policy_group_add(ctx: TracePointContext) -> u32 {
    group_event(&ctx, true);
    0
}

#[tracepoint]
pub fn policy_group_remove(ctx: TracePointContext) -> u32 {
    group_event(&ctx, false);
    0
}

/// `cdev_device_add(struct cdev *cdev, struct device *dev)`: VFIO adds a
/// group's node so, the device named by the IOMMU group id. A node of a
/// policy VF's group goes into `GROUP_VF` before anyone can open it (user
/// space only sees it at its next look; `file_open` runs before the node's
/// `i_cdev` is set on its first open).
#[kprobe]
pub fn policy_cdev_add(ctx: ProbeContext) -> u32 {
    let Some(c) = conf() else { return 0 };
    let Some(dev) = ctx.arg::<u64>(1) else {
        return 0;
    };
    let Some(devt) = read_u32(dev + off(c, OFF_DEVICE_DEVT)) else {
        return 0;
    };
    if c.vfio_major != 0 && devt >> 20 != c.vfio_major {
        return 0;
    }
    if let Some(slot) = kobj_group_id(c, dev + off(c, OFF_DEVICE_KOBJ)).and_then(group_slot) {
        let _ = GROUP_VF.insert(&devt, &slot, 0);
    }
    0
}
