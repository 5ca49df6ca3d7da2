//! Per-VF policy in the kernel: BPF LSM programs on `file_ioctl` (VFIO DMA
//! quota, container tracking), `file_open` (who may open a VF's
//! `/dev/vfio/<group>`) and `file_permission` (writes to `sriov_numvfs`,
//! `driver_override` and driver `bind` files). The TC egress classifier on
//! the VF netdevs is in [`crate::enforce_tc`].
//!
//! Kernel struct fields are read at offsets user space found in the running
//! kernel's BTF (`Conf::offsets`); there is no CO-RE in this build.
use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_get_smp_processor_id, bpf_probe_read_kernel,
        bpf_probe_read_user,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::{lsm, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::LsmContext,
};
use sriov_ebpf::{
    VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA,
    policy::*,
    record::{
        ACTION_AUDITED, ACTION_DENIED, Header, KIND_POLICY, NAME_LEN, PolicyRecord, V_DMA_QUOTA,
        V_NUMVFS_RANGE, V_NUMVFS_WRITER, V_VFIO_OPEN,
    },
    text::{self, TEXT_LEN},
};

use crate::{
    enforce_drivers::{
        autoprobe_on, autoprobe_refusal, autoprobe_write, bind_write, driver_write,
        drivers_probe_write, new_id_write, new_override_epoch,
    },
    programs::{EVENTS, header, lost, now},
};

const EPERM: i32 = 1;
const MAY_WRITE: u32 = 2;
/// x86-64 `struct pt_regs` (the ptrace ABI): the user registers of the
/// current syscall, found with `bpf_task_pt_regs` (user space refuses to
/// load the policy on another architecture).
const REG_DX: u64 = 12 * 8;
const REG_SI: u64 = 13 * 8;
const REG_ORIG_AX: u64 = 15 * 8;
const SYS_WRITE: u64 = 1;
const SYS_PWRITE64: u64 = 18;
/// `PolicyRecord::value` when the program could not read what it decides on.
pub(crate) const UNREADABLE: u64 = u64::MAX;

/// A record's `detail` text, NUL padded (the programs copy NAME_LEN bytes).
pub(crate) const fn why(s: &[u8]) -> [u8; NAME_LEN] {
    let mut out = [0u8; NAME_LEN];
    let mut i = 0;
    while i < s.len() && i < NAME_LEN - 1 {
        out[i] = s[i];
        i += 1;
    }
    out
}

pub(crate) static WHY_SHARED: [u8; NAME_LEN] = why(b"shared container");

#[map(name = "POLICY_CONF")]
static POLICY_CONF: Array<Conf> = Array::with_max_entries(1, 0);

#[map(name = "VF_RULES")]
static VF_RULES: Array<Rule> = Array::with_max_entries(2 * MAX_VFS, 0);

#[map(name = "PF_RULES")]
static PF_RULES: Array<Rule> = Array::with_max_entries(2 * MAX_PFS, 0);

#[map(name = "GROUP_VF")]
pub(crate) static GROUP_VF: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);

/// Container files, pruned when the file is freed (`policy_file_free`).
#[map(name = "CONTAINERS")]
static CONTAINERS: HashMap<u64, u32> = HashMap::with_max_entries(4096, 0);

/// Written only by the kprobes of [`crate::enforce_dma`], from what VFIO
/// really pins and unpins; the LSM reads it for its early answer.
#[map(name = "DMA_USED")]
pub(crate) static DMA_USED: Array<u64> = Array::with_max_entries(MAX_VFS, 0);

#[map(name = "GROUPID_VF")]
pub(crate) static GROUPID_VF: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);

#[map(name = "SYSFS_FILES")]
static SYSFS_FILES: HashMap<SysfsKey, SysfsFile> = HashMap::with_max_entries(4096, 0);

#[map(name = "BDF_VF")]
pub(crate) static BDF_VF: HashMap<[u8; BDF_LEN], u32> = HashMap::with_max_entries(1024, 0);

#[map(name = "VIOLATIONS")]
static VIOLATIONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULE_CODES, 0);

pub(crate) fn conf() -> Option<&'static Conf> {
    let c = POLICY_CONF.get(0)?;
    (c.mode != MODE_OFF).then_some(c)
}

pub(crate) fn vf_rule(c: &Conf, slot: u32) -> Option<&'static Rule> {
    if slot >= MAX_VFS {
        return None;
    }
    VF_RULES.get((c.active & 1) * MAX_VFS + slot)
}

pub(crate) fn pf_rule(c: &Conf, slot: u32) -> Option<&'static Rule> {
    if slot >= MAX_PFS {
        return None;
    }
    PF_RULES.get((c.active & 1) * MAX_PFS + slot)
}

/// The VF slot of an IOMMU group id, if a policy VF is in that group.
pub(crate) fn group_slot(group_id: u32) -> Option<u32> {
    // SAFETY: the value is copied.
    unsafe { GROUPID_VF.get(&group_id) }.copied()
}

pub(crate) fn off(c: &Conf, i: usize) -> u64 {
    u64::from(c.offsets.get(i).copied().unwrap_or(0))
}

pub(crate) fn read_u64(addr: u64) -> Option<u64> {
    // SAFETY: a checked read of kernel memory; a bad address is an error.
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
}

pub(crate) fn read_u32(addr: u64) -> Option<u32> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u32) }.ok()
}

/// `file->f_inode`.
#[inline(always)]
fn inode_of(c: &Conf, file: u64) -> Option<u64> {
    read_u64(file + off(c, OFF_FILE_INODE)).filter(|&i| i != 0)
}

/// (`i_ino`, `i_sb->s_dev`) of an inode: a file's identity.
#[inline(always)]
fn ino_dev(c: &Conf, inode: u64) -> Option<(u64, u32)> {
    let ino = read_u64(inode + off(c, OFF_INODE_INO))?;
    let sb = read_u64(inode + off(c, OFF_INODE_SB))?;
    Some((ino, read_u32(sb + off(c, OFF_SB_DEV))?))
}

/// The `struct file *` of the current task's descriptor `fd`.
#[inline(always)]
fn file_of_fd(c: &Conf, fd: i32) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let files = read_u64(task + off(c, OFF_TASK_FILES))?;
    let fdt = read_u64(files + off(c, OFF_FILES_FDT))?;
    let fds = read_u64(fdt + off(c, OFF_FDT_FD))?;
    read_u64(fds + 8 * fd as u64).filter(|&f| f != 0)
}

/// A user register of the current syscall, from the kernel's own record
/// of where they are (`bpf_task_pt_regs`).
#[inline(always)]
fn syscall_reg(reg: u64) -> Option<u64> {
    // SAFETY: helpers on the current task, which is valid while it runs.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as u64;
    if regs == 0 {
        return None;
    }
    read_u64(regs + reg)
}

/// The executable file of the current task (`mm->exe_file`), as
/// (inode, device): what it runs, not what it calls itself.
#[inline(always)]
fn exe(c: &Conf) -> Option<(u64, u32)> {
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let mm = read_u64(task + off(c, OFF_TASK_MM)).filter(|&m| m != 0)?;
    let file = read_u64(mm + off(c, OFF_MM_EXE_FILE)).filter(|&f| f != 0)?;
    ino_dev(c, inode_of(c, file)?)
}

/// Whether the current task is in the rule's uids, in one of its cgroups
/// or below it, or runs one of its executables.
#[inline(always)]
fn allowed(c: &Conf, r: &Rule) -> bool {
    let uid = bpf_get_current_uid_gid() as u32;
    for i in 0..MAX_UIDS {
        if (i as u32) < r.n_uids && r.uids[i] == uid {
            return true;
        }
    }
    if r.n_cgroups > 0 {
        for level in 0..MAX_CGROUP_LEVELS {
            // SAFETY: a helper on the current task.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
            if id == 0 {
                break;
            }
            for i in 0..MAX_CGROUPS {
                if (i as u32) < r.n_cgroups && r.cgroups[i] == id {
                    return true;
                }
            }
        }
    }
    if r.n_exes > 0
        && let Some((ino, dev)) = exe(c)
    {
        let key = exe_key(ino, dev);
        for i in 0..MAX_EXES {
            if (i as u32) < r.n_exes && r.exes[i] == key {
                return true;
            }
        }
    }
    false
}

/// Report a violation; returns what the hook returns (-EPERM when
/// enforcing). `detail` may be null. The record is written in place in the
/// ring (the BPF stack is 512 bytes).
#[inline(always)]
pub(crate) fn violation(
    c: &Conf,
    rule: u32,
    slot: u32,
    value: u64,
    limit: u64,
    detail: *const [u8; NAME_LEN],
) -> i32 {
    let enforce = c.mode == MODE_ENFORCE;
    report(
        rule,
        if enforce {
            ACTION_DENIED
        } else {
            ACTION_AUDITED
        },
        slot,
        value,
        limit,
        detail,
        Cause::Task,
    );
    if enforce { -EPERM } else { 0 }
}

/// Who caused a record: the task (LSM hooks), or nobody in particular (a
/// frame, seen in TC, where the task helpers are not allowed).
#[derive(Clone, Copy)]
pub(crate) enum Cause {
    Task,
    Frame,
}

#[inline(always)]
pub(crate) fn report(
    rule: u32,
    action: u32,
    slot: u32,
    value: u64,
    limit: u64,
    detail: *const [u8; NAME_LEN],
    cause: Cause,
) {
    if let Some(n) = VIOLATIONS.get_ptr_mut(rule) {
        // SAFETY: this CPU's counter.
        unsafe { *n += 1 };
    }
    let Some(mut e) = EVENTS.reserve::<PolicyRecord>(0) else {
        lost();
        return;
    };
    let p = e.as_mut_ptr();
    // SAFETY: `p` is the reserved record, written field by field before
    // it is submitted; `detail` is null or points at NAME_LEN bytes.
    unsafe {
        match cause {
            Cause::Task => {
                (*p).hdr = header(KIND_POLICY);
                (*p).uid = bpf_get_current_uid_gid() as u32;
                (*p).cgroup = bpf_get_current_cgroup_id();
            }
            Cause::Frame => {
                (*p).hdr = Header {
                    kind: KIND_POLICY,
                    cpu: bpf_get_smp_processor_id(),
                    ts_ns: now(),
                    tid: 0,
                    pid: 0,
                    comm: [0; 16],
                };
                (*p).uid = 0;
                (*p).cgroup = 0;
            }
        }
        (*p).rule = rule;
        (*p).action = action;
        (*p).slot = slot;
        (*p).value = value;
        (*p).limit = limit;
        if detail.is_null() {
            (*p).detail = [0; NAME_LEN];
        } else {
            core::ptr::copy_nonoverlapping(detail, &raw mut (*p).detail, 1);
        }
    }
    e.submit(crate::programs::wake_flags());
}

/// A per-CPU buffer for text read from user space.
#[map(name = "SCRATCH")]
pub(crate) static SCRATCH: PerCpuArray<[u8; TEXT_LEN]> = PerCpuArray::with_max_entries(2, 0);

// ------------------------------------------------------------ file_ioctl

/// `file_ioctl(struct file *file, unsigned int cmd, unsigned long arg)`:
/// the early, polite answer for the DMA quota (EPERM before VFIO does
/// anything). The quota itself holds in [`crate::enforce_dma`], on what
/// VFIO copies and pins: a racing thread changes nothing there.
#[lsm(hook = "file_ioctl")]
pub fn policy_file_ioctl(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    let file: u64 = ctx.arg(0);
    let cmd: u32 = ctx.arg(1);
    let arg: u64 = ctx.arg(2);
    if cmd != VFIO_GROUP_SET_CONTAINER && cmd != VFIO_IOMMU_MAP_DMA {
        return 0;
    }
    let Some(c) = conf() else { return 0 };
    if cmd == VFIO_GROUP_SET_CONTAINER {
        return on_set_container(c, file, arg);
    }
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { CONTAINERS.get(&file) }).copied() else {
        return 0;
    };
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DMA_QUOTA == 0 {
        return 0;
    }
    let used = DMA_USED.get(slot).copied().unwrap_or(0);
    // SAFETY: a checked read of the caller's struct (argsz, flags, vaddr, iova, size).
    let Ok(size) = (unsafe { bpf_probe_read_user((arg + 24) as *const u64) }) else {
        return violation(c, V_DMA_QUOTA, slot, UNREADABLE, used, core::ptr::null());
    };
    if used.saturating_add(size) > r.dma_quota {
        return violation(c, V_DMA_QUOTA, slot, size, used, core::ptr::null());
    }
    0
}

/// `VFIO_GROUP_SET_CONTAINER` on a VF's group file: remember which VF the
/// container (the file behind the fd in `arg`) serves. A container serves
/// one VF with a DMA quota: a second one is refused (QEMU then opens a
/// container of its own for it). Files that are not a policy VF's group
/// change nothing.
#[inline(always)]
fn on_set_container(c: &Conf, group_file: u64, arg: u64) -> i32 {
    let Some(inode) = inode_of(c, group_file) else {
        return 0;
    };
    let Some((slot, _)) = vfio_group_slot(c, inode) else {
        return 0;
    };
    let quota = vf_rule(c, slot).is_some_and(|r| r.flags & RULE_DMA_QUOTA != 0);
    // SAFETY: a checked read of the caller's int.
    let fd = unsafe { bpf_probe_read_user(arg as *const i32) };
    let Some(container) = fd.ok().and_then(|fd| file_of_fd(c, fd)) else {
        if quota {
            return violation(c, V_DMA_QUOTA, slot, UNREADABLE, 0, core::ptr::null());
        }
        return 0;
    };
    // SAFETY: the value is copied.
    if let Some(other) = unsafe { CONTAINERS.get(&container) }.copied()
        && other != slot
        && quota
        && vf_rule(c, other).is_some_and(|r| r.flags & RULE_DMA_QUOTA != 0)
    {
        return violation(c, V_DMA_QUOTA, slot, u64::from(other), 0, &WHY_SHARED);
    }
    let _ = CONTAINERS.insert(&container, &slot, 0);
    0
}

/// `file_free_security(struct file *file)`: a freed container file is
/// forgotten (its address may serve another file next).
#[lsm(hook = "file_free_security")]
pub fn policy_file_free(ctx: LsmContext) -> i32 {
    if conf().is_some() {
        let file: u64 = ctx.arg(0);
        let _ = CONTAINERS.remove(&file);
    }
    0
}

// ------------------------------------------------------------- file_open

/// The VF slot of a `/dev/vfio/<group>` node and its device number. The
/// group comes from the kernel's own structures, so a node is known from
/// the moment VFIO creates it: the inode's `cdev` belongs to the VFIO
/// group's device, named by the IOMMU group id (`GROUPID_VF`, which the
/// `iommu` tracepoints keep). Other nodes (VFIO not loaded when the policy
/// was, a name that is no number) by device number (`GROUP_VF`).
#[inline(always)]
fn vfio_group_slot(c: &Conf, inode: u64) -> Option<(u32, u32)> {
    let rdev = read_u32(inode + off(c, OFF_INODE_RDEV)).filter(|&r| r != 0)?;
    if c.vfio_major != 0
        && rdev >> 20 == c.vfio_major
        && let Some(id) = cdev_group_id(c, inode)
    {
        return group_slot(id).map(|slot| (slot, rdev));
    }
    // SAFETY: the value is copied.
    let slot = unsafe { GROUP_VF.get(&rdev) }.copied()?;
    Some((slot, rdev))
}

/// `inode->i_cdev->kobj.parent->name` read as a decimal IOMMU group id
/// (`i_cdev` is set at the node's first open, after `file_open`: a node
/// never opened is found by device number, learnt by `policy_cdev_add`).
#[inline(always)]
fn cdev_group_id(c: &Conf, inode: u64) -> Option<u32> {
    let cdev = read_u64(inode + off(c, OFF_INODE_CDEV)).filter(|&p| p != 0)?;
    let parent =
        read_u64(cdev + off(c, OFF_CDEV_KOBJ) + off(c, OFF_KOBJ_PARENT)).filter(|&p| p != 0)?;
    kobj_group_id(c, parent)
}

/// A kobject's name read as a decimal IOMMU group id (a VFIO group's
/// device is named so; `noiommu-N` and other names are none).
#[inline(always)]
pub(crate) fn kobj_group_id(c: &Conf, kobj: u64) -> Option<u32> {
    let name = read_u64(kobj + off(c, OFF_KOBJ_NAME)).filter(|&p| p != 0)?;
    let mut buf = [0u8; 12];
    // SAFETY: a checked read of a kernel string into `buf`.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(name as *const u8, &mut buf) }
        .ok()?;
    let (mut n, mut done, mut digits) = (0u64, false, 0u32);
    for b in buf {
        if !done && b.is_ascii_digit() {
            n = n * 10 + u64::from(b - b'0');
            digits += 1;
        } else if !done {
            done = true;
            if b != 0 {
                return None; // `noiommu-N`, or not a group
            }
        }
    }
    (done && digits > 0 && n <= u64::from(u32::MAX)).then_some(n as u32)
}

/// `file_open(struct file *file)`: a VF's `/dev/vfio/<group>`.
#[lsm(hook = "file_open")]
pub fn policy_file_open(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(1);
    if prev != 0 {
        return prev;
    }
    let Some(c) = conf() else { return 0 };
    let file: u64 = ctx.arg(0);
    let Some(inode) = inode_of(c, file) else {
        return 0;
    };
    let Some((slot, rdev)) = vfio_group_slot(c, inode) else {
        return 0;
    };
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_VFIO_OPEN == 0 || allowed(c, r) {
        return 0;
    }
    violation(c, V_VFIO_OPEN, slot, u64::from(rdev), 0, core::ptr::null())
}

// ------------------------------------------------------- file_permission

/// `file_permission(struct file *file, int mask)`: writes to the sysfs
/// files the policy guards. Files it does not guard leave after one hash
/// lookup.
#[lsm(hook = "file_permission")]
pub fn policy_file_permission(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(2);
    if prev != 0 {
        return prev;
    }
    let mask: u32 = ctx.arg(1);
    if mask & MAY_WRITE == 0 {
        return 0;
    }
    let Some(c) = conf() else { return 0 };
    let file: u64 = ctx.arg(0);
    // every write of the machine comes here: a file that is no sysfs (or
    // cgroupfs) file leaves after one read
    if c.kernfs_fops != 0 && read_u64(file + off(c, OFF_FILE_FOP)) != Some(c.kernfs_fops) {
        return 0;
    }
    let Some(inode) = inode_of(c, file) else {
        return 0;
    };
    let Some((ino, dev)) = ino_dev(c, inode) else {
        return 0;
    };
    let key = SysfsKey { ino, dev, _pad: 0 };
    // SAFETY: the value is copied.
    let Some(f) = (unsafe { SYSFS_FILES.get(&key) }).copied() else {
        return 0;
    };
    let text = written();
    match f.kind {
        SYSFS_NUMVFS => numvfs_write(c, &f, text),
        SYSFS_DRIVER_OVERRIDE => driver_write(c, f.slot, text),
        SYSFS_BIND => bind_write(c, f.slot, text),
        SYSFS_NEW_ID => new_id_write(c, f.slot, text),
        SYSFS_DRIVERS_PROBE => drivers_probe_write(c, text),
        SYSFS_AUTOPROBE => autoprobe_write(c, &f, text),
        _ => 0,
    }
}

/// The text the current `write`/`pwrite64` writes, all of it (NUL padded
/// after the written length) in the per-CPU scratch buffer; null for
/// another syscall (`writev`, io_uring, `splice`), a buffer the program
/// cannot read (a page not faulted in) or a text longer than the buffer.
/// The callers fail closed on null.
#[inline(always)]
fn written() -> *const [u8; TEXT_LEN] {
    let none = core::ptr::null();
    let Some(t) = SCRATCH.get_ptr_mut(0) else {
        return none;
    };
    let (Some(nr), Some(buf), Some(len)) = (
        syscall_reg(REG_ORIG_AX),
        syscall_reg(REG_SI),
        syscall_reg(REG_DX),
    ) else {
        return none;
    };
    if (nr != SYS_WRITE && nr != SYS_PWRITE64) || len >= TEXT_LEN as u64 {
        return none;
    }
    // SAFETY: `t` is this CPU's scratch value; a checked read of the
    // caller's buffer into it (the whole buffer when it crosses into a bad
    // page: the shorter text is then read again from its start).
    unsafe {
        *t = [0; TEXT_LEN];
        let mut ok = aya_ebpf::helpers::generated::bpf_probe_read_user(
            t as *mut core::ffi::c_void,
            TEXT_LEN as u32,
            buf as *const core::ffi::c_void,
        ) == 0;
        if !ok && len > 0 {
            *t = [0; TEXT_LEN];
            let n = (len as u32) & (TEXT_LEN as u32 - 1);
            ok = aya_ebpf::helpers::generated::bpf_probe_read_user(
                t as *mut core::ffi::c_void,
                n,
                buf as *const core::ffi::c_void,
            ) == 0;
        }
        if !ok && len > 0 {
            return none;
        }
        for i in 0..TEXT_LEN {
            if i as u64 >= len {
                (*t)[i] = 0;
            }
        }
    }
    t
}

/// `sriov_numvfs` of a PF with rules (`f.slot`) or with VFs a driver
/// picked by ID may not have (`f.risk`, when autoprobe is on).
// its own BPF function: the handlers together pass the 512-byte stack
#[inline(never)]
fn numvfs_write(c: &Conf, f: &SysfsFile, text: *const [u8; TEXT_LEN]) -> i32 {
    // the value as the kernel reads it (kstrtou16, base 0)
    // SAFETY: `text` is null or points at TEXT_LEN bytes.
    let n = (!text.is_null())
        .then(|| text::kstrtou16(unsafe { &*text }))
        .flatten();
    let ret = numvfs_rules(c, f.slot, text, n);
    if ret != 0 {
        return ret;
    }
    if n != Some(0) && autoprobe_on(f) {
        let ret = autoprobe_refusal(c, f);
        if ret != 0 {
            return ret;
        }
    }
    new_override_epoch();
    0
}

#[inline(always)]
fn numvfs_rules(c: &Conf, slot: u32, text: *const [u8; TEXT_LEN], n: Option<u16>) -> i32 {
    let Some(r) = pf_rule(c, slot) else { return 0 };
    let detail = text as *const [u8; NAME_LEN];
    let value = n.map_or(UNREADABLE, u64::from);
    if r.flags & RULE_NUMVFS_WRITERS != 0 && !allowed(c, r) {
        let ret = violation(c, V_NUMVFS_WRITER, slot, value, 0, detail);
        if ret != 0 {
            return ret;
        }
    }
    if r.flags & RULE_NUMVFS_RANGE != 0 {
        // text the kernel refuses anyway passes (it changes nothing); text
        // the program cannot read does not
        if text.is_null() {
            return violation(
                c,
                V_NUMVFS_RANGE,
                slot,
                UNREADABLE,
                u64::from(r.numvfs_max),
                detail,
            );
        }
        if let Some(n) = n
            && (u32::from(n) < r.numvfs_min || u32::from(n) > r.numvfs_max)
        {
            return violation(
                c,
                V_NUMVFS_RANGE,
                slot,
                value,
                u64::from(r.numvfs_max),
                detail,
            );
        }
    }
    0
}
