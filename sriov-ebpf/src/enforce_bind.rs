//! Where the kernel acts, whatever route led there: the last line of
//! `allowed_drivers` and of `numvfs`'s maximum. Binding a driver creates
//! the `driver` link in the device's sysfs directory, and creating a VF the
//! `virtfnN` link in its PF's, before the driver's probe or the VF's use;
//! both go through `kernfs_init_security`, and a refusal there makes the
//! kernel undo the bind or the VF creation. So a driver the VF may not have
//! does not get it however it came (`drivers_probe`, autoprobe, a module
//! load, a text changed by another thread after `file_permission` read it),
//! and no VF past `numvfs.max` is created.
use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes,
    macros::{lsm, map},
    maps::HashMap,
    programs::LsmContext,
};
use sriov_ebpf::{
    policy::*,
    record::{NAME_LEN, V_DRIVER, V_NUMVFS_RANGE},
};

use crate::{
    enforce::{BDF_VF, conf, off, pf_rule, read_u64, vf_rule, violation, why},
    enforce_drivers::driver_listed,
};

#[map(name = "BDF_PF")]
static BDF_PF: HashMap<[u8; BDF_LEN], u32> = HashMap::with_max_entries(MAX_PFS, 0);

static WHY_CREATION: [u8; NAME_LEN] = why(b"at VF creation");

/// `kernfs_init_security(struct kernfs_node *kn_dir, struct kernfs_node *kn)`.
#[lsm(hook = "kernfs_init_security")]
pub fn policy_kernfs_init(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(2);
    if prev != 0 {
        return prev;
    }
    let Some(c) = conf() else { return 0 };
    let dir: u64 = ctx.arg(0);
    let kn: u64 = ctx.arg(1);
    if dir == 0 {
        return 0;
    }
    let Some(name) = read_u64(kn + off(c, OFF_KERNFS_NAME)).filter(|&p| p != 0) else {
        return 0;
    };
    let mut n = [0u8; 16];
    // SAFETY: a checked read of a kernel string into `n`.
    if unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut n) }.is_err() {
        return 0;
    }
    if n[..7] == *b"driver\0" {
        return driver_link(c, dir);
    }
    if n[..6] == *b"virtfn" {
        return virtfn_link(c, dir, &n);
    }
    0
}

/// The device whose sysfs directory is `dir` (`kn_dir->priv` is its
/// kobject): its `struct device *` and its name as a BDF key.
#[inline(always)]
fn dir_device(c: &Conf, dir: u64) -> Option<(u64, [u8; BDF_LEN])> {
    let kobj = read_u64(dir + off(c, OFF_KERNFS_PRIV)).filter(|&p| p != 0)?;
    let name = read_u64(kobj + off(c, OFF_KOBJ_NAME)).filter(|&p| p != 0)?;
    let mut bdf = [0u8; BDF_LEN];
    // SAFETY: a checked read of a kernel string into `bdf` (a longer name
    // is cut and then matches no 12-byte BDF).
    unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut bdf) }.ok()?;
    Some((kobj.wrapping_sub(off(c, OFF_DEVICE_KOBJ)), bdf))
}

/// The `driver` link of a policy VF: `dev->driver` is already the driver
/// being bound.
#[inline(never)]
fn driver_link(c: &Conf, dir: u64) -> i32 {
    let Some((dev, bdf)) = dir_device(c, dir) else {
        return 0;
    };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { BDF_VF.get(&bdf) }).copied() else {
        return 0;
    };
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DRIVERS == 0 {
        return 0;
    }
    let mut name = [0u8; DRIVER_LEN];
    let known = read_u64(dev + off(c, OFF_DEVICE_DRIVER))
        .filter(|&d| d != 0)
        .and_then(|d| read_u64(d + off(c, OFF_DRIVER_NAME)))
        .filter(|&p| p != 0)
        // SAFETY: a checked read of a kernel string into `name`.
        .is_some_and(|p| {
            unsafe { bpf_probe_read_kernel_str_bytes(p as *const u8, &mut name) }.is_ok()
        });
    if known && driver_listed(r, &name) {
        return 0;
    }
    // a driver the program cannot name is not let through either
    violation(
        c,
        V_DRIVER,
        slot,
        DRIVER_AT_BIND,
        0,
        &name as *const [u8; DRIVER_LEN] as *const [u8; NAME_LEN],
    )
}

/// The `virtfnN` link of a PF with `numvfs` rules: VF N (from 0) is being
/// created.
#[inline(never)]
fn virtfn_link(c: &Conf, dir: u64, n: &[u8; 16]) -> i32 {
    let Some((_, bdf)) = dir_device(c, dir) else {
        return 0;
    };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { BDF_PF.get(&bdf) }).copied() else {
        return 0;
    };
    let Some(r) = pf_rule(c, slot) else { return 0 };
    if r.flags & RULE_NUMVFS_RANGE == 0 {
        return 0;
    }
    let (mut index, mut done) = (0u32, false);
    for &b in &n[6..] {
        if !done && b.is_ascii_digit() {
            index = index.saturating_mul(10).saturating_add(u32::from(b - b'0'));
        } else {
            done = true;
        }
    }
    if index < r.numvfs_max {
        return 0;
    }
    violation(
        c,
        V_NUMVFS_RANGE,
        slot,
        u64::from(index) + 1,
        u64::from(r.numvfs_max),
        &WHY_CREATION,
    )
}
