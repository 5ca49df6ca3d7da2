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
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_get_smp_processor_id, bpf_probe_read_kernel,
        bpf_probe_read_user,
    },
    macros::{lsm, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::LsmContext,
};
use sriov_ebpf::{
    VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
    policy::*,
    record::{
        ACTION_AUDITED, ACTION_DENIED, Header, KIND_POLICY, NAME_LEN, PolicyRecord, V_DMA_QUOTA,
        V_DRIVER, V_NUMVFS_RANGE, V_NUMVFS_WRITER, V_VFIO_OPEN,
    },
};

use crate::programs::{EVENTS, header, lost, now, tid};

const EPERM: i32 = 1;
const MAY_WRITE: u32 = 2;
/// x86-64: `THREAD_SIZE` (16 KiB) and `sizeof(struct pt_regs)`; the user
/// registers of the current syscall sit at the top of the task's stack.
const THREAD_SIZE: u64 = 16384;
const PT_REGS_SIZE: u64 = 168;
const REG_DX: u64 = 12 * 8;
const REG_SI: u64 = 13 * 8;
const REG_ORIG_AX: u64 = 15 * 8;
const SYS_WRITE: u64 = 1;
const SYS_PWRITE64: u64 = 18;

#[map(name = "POLICY_CONF")]
static POLICY_CONF: Array<Conf> = Array::with_max_entries(1, 0);

#[map(name = "VF_RULES")]
static VF_RULES: Array<Rule> = Array::with_max_entries(2 * MAX_VFS, 0);

#[map(name = "PF_RULES")]
static PF_RULES: Array<Rule> = Array::with_max_entries(2 * MAX_PFS, 0);

#[map(name = "GROUP_VF")]
static GROUP_VF: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);

#[map(name = "CONTAINERS")]
static CONTAINERS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4096, 0);

#[map(name = "DMA_USED")]
static DMA_USED: Array<u64> = Array::with_max_entries(MAX_VFS, 0);

/// A DMA map or unmap in flight, by thread: (VF slot, bytes, op). A plain
/// (preallocated) hash: an LRU insert costs more on the map path, and the
/// return probe removes each entry.
#[map(name = "DMA_PENDING")]
static DMA_PENDING: HashMap<u32, [u64; 3]> = HashMap::with_max_entries(4096, 0);

#[map(name = "SYSFS_FILES")]
static SYSFS_FILES: HashMap<SysfsKey, SysfsFile> = HashMap::with_max_entries(4096, 0);

#[map(name = "BDF_VF")]
static BDF_VF: HashMap<[u8; BDF_LEN], u32> = HashMap::with_max_entries(1024, 0);

#[map(name = "DRIVER_NAMES")]
static DRIVER_NAMES: Array<[u8; DRIVER_LEN]> = Array::with_max_entries(MAX_DRIVER_NAMES, 0);

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

fn pf_rule(c: &Conf, slot: u32) -> Option<&'static Rule> {
    if slot >= MAX_PFS {
        return None;
    }
    PF_RULES.get((c.active & 1) * MAX_PFS + slot)
}

fn off(c: &Conf, i: usize) -> u64 {
    u64::from(c.offsets.get(i).copied().unwrap_or(0))
}

fn read_u64(addr: u64) -> Option<u64> {
    // SAFETY: a checked read of kernel memory; a bad address is an error.
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
}

fn read_u32(addr: u64) -> Option<u32> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u32) }.ok()
}

/// `file->f_inode`.
#[inline(always)]
fn inode_of(c: &Conf, file: u64) -> Option<u64> {
    read_u64(file + off(c, OFF_FILE_INODE)).filter(|&i| i != 0)
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

/// The user registers of the current syscall (x86-64).
#[inline(always)]
fn syscall_reg(c: &Conf, reg: u64) -> Option<u64> {
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let stack = read_u64(task + off(c, OFF_TASK_STACK))?;
    read_u64(stack + THREAD_SIZE - PT_REGS_SIZE + reg)
}

struct Who {
    uid: u32,
    cgroup: u64,
    comm: [u8; 16],
}

#[inline(always)]
fn who() -> Who {
    Who {
        uid: bpf_get_current_uid_gid() as u32,
        // SAFETY: a helper without arguments.
        cgroup: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

/// Whether `w` is in the rule's uids, cgroups or executables.
#[inline(always)]
fn allowed(r: &Rule, w: &Who) -> bool {
    for i in 0..MAX_UIDS {
        if (i as u32) < r.n_uids && r.uids[i] == w.uid {
            return true;
        }
    }
    for i in 0..MAX_CGROUPS {
        if (i as u32) < r.n_cgroups && r.cgroups[i] == w.cgroup {
            return true;
        }
    }
    for i in 0..MAX_COMMS {
        if (i as u32) < r.n_comms && r.comms[i] == w.comm {
            return true;
        }
    }
    false
}

/// Report a violation; returns what the hook returns (-EPERM when
/// enforcing). `detail` may be null. The record is written in place in the
/// ring (the BPF stack is 512 bytes).
#[inline(always)]
fn violation(
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
    e.submit(0);
}

/// A per-CPU buffer for text read from user space.
#[map(name = "SCRATCH")]
pub(crate) static SCRATCH: PerCpuArray<[u8; NAME_LEN]> = PerCpuArray::with_max_entries(2, 0);

// ------------------------------------------------------------ file_ioctl

/// `file_ioctl(struct file *file, unsigned int cmd, unsigned long arg)`.
#[lsm(hook = "file_ioctl")]
pub fn policy_file_ioctl(ctx: LsmContext) -> i32 {
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    let file: u64 = ctx.arg(0);
    let cmd: u32 = ctx.arg(1);
    let arg: u64 = ctx.arg(2);
    if cmd != VFIO_GROUP_SET_CONTAINER && cmd != VFIO_IOMMU_MAP_DMA && cmd != VFIO_IOMMU_UNMAP_DMA {
        return 0;
    }
    let Some(c) = conf() else { return 0 };
    if cmd == VFIO_GROUP_SET_CONTAINER {
        on_set_container(c, file, arg);
        return 0;
    }
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { CONTAINERS.get(&file) }).copied() else {
        return 0;
    };
    if cmd == VFIO_IOMMU_UNMAP_DMA {
        // SAFETY: a checked read of the caller's struct (argsz, flags, iova, size).
        if let Ok(size) = unsafe { bpf_probe_read_user((arg + 16) as *const u64) } {
            let _ = DMA_PENDING.insert(&tid(), &[u64::from(slot), size, 2], 0);
        }
        return 0;
    }
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DMA_QUOTA == 0 {
        return 0;
    }
    // SAFETY: a checked read of the caller's struct (argsz, flags, vaddr, iova, size).
    let Ok(size) = (unsafe { bpf_probe_read_user((arg + 24) as *const u64) }) else {
        return 0;
    };
    let Some(p) = DMA_USED.get_ptr_mut(slot) else {
        return 0;
    };
    // SAFETY: a valid, aligned map value. (The BPF target has no atomic
    // fetch-add here: two threads mapping for one VF at the same instant
    // could lose one update; VFIO serializes a container's maps anyway.)
    let now_used = unsafe { *p };
    if now_used.saturating_add(size) > r.dma_quota {
        let ret = violation(c, V_DMA_QUOTA, slot, size, now_used, core::ptr::null());
        if ret != 0 {
            return ret;
        }
    }
    // SAFETY: as above.
    unsafe { *p = now_used.saturating_add(size) };
    let _ = DMA_PENDING.insert(&tid(), &[u64::from(slot), size, 1], 0);
    0
}

/// `VFIO_GROUP_SET_CONTAINER` on a group file: remember which VF the
/// container (the file behind the fd in `arg`) serves.
#[inline(always)]
fn on_set_container(c: &Conf, group_file: u64, arg: u64) {
    let Some(inode) = inode_of(c, group_file) else {
        return;
    };
    let Some(rdev) = read_u32(inode + off(c, OFF_INODE_RDEV)) else {
        return;
    };
    // SAFETY: a checked read of the caller's int.
    let Ok(fd) = (unsafe { bpf_probe_read_user(arg as *const i32) }) else {
        return;
    };
    let Some(container) = file_of_fd(c, fd) else {
        return;
    };
    // SAFETY: the value is copied.
    match unsafe { GROUP_VF.get(&rdev) }.copied() {
        Some(slot) => {
            let _ = CONTAINERS.insert(&container, &slot, 0);
        }
        None => {
            let _ = CONTAINERS.remove(&container);
        }
    }
}

/// The VFIO type-1 ioctl returned (`vfio_ioctl_exit`): give back what a
/// failed map charged, and what a successful unmap freed.
pub(crate) fn dma_done(ret: i64) {
    let t = tid();
    // SAFETY: the value is copied before the entry is removed.
    let Some([slot, size, op]) = (unsafe { DMA_PENDING.get(&t) }).copied() else {
        return;
    };
    let _ = DMA_PENDING.remove(&t);
    let refund = (op == 1 && ret != 0) || (op == 2 && ret == 0);
    if !refund {
        return;
    }
    let Some(p) = DMA_USED.get_ptr_mut(slot as u32) else {
        return;
    };
    // SAFETY: a valid, aligned map value (see policy_file_ioctl).
    unsafe { *p = (*p).saturating_sub(size) };
}

// ------------------------------------------------------------- file_open

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
    let Some(rdev) = read_u32(inode + off(c, OFF_INODE_RDEV)) else {
        return 0;
    };
    if rdev == 0 {
        return 0;
    }
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { GROUP_VF.get(&rdev) }).copied() else {
        return 0;
    };
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_VFIO_OPEN == 0 || allowed(r, &who()) {
        return 0;
    }
    violation(c, V_VFIO_OPEN, slot, u64::from(rdev), 0, core::ptr::null())
}

// ------------------------------------------------------- file_permission

/// `file_permission(struct file *file, int mask)`: writes to the sysfs
/// files the policy guards.
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
    let Some(inode) = inode_of(c, file) else {
        return 0;
    };
    let (Some(ino), Some(sb)) = (
        read_u64(inode + off(c, OFF_INODE_INO)),
        read_u64(inode + off(c, OFF_INODE_SB)),
    ) else {
        return 0;
    };
    let Some(dev) = read_u32(sb + off(c, OFF_SB_DEV)) else {
        return 0;
    };
    let key = SysfsKey { ino, dev, _pad: 0 };
    // SAFETY: the value is copied.
    let Some(f) = (unsafe { SYSFS_FILES.get(&key) }).copied() else {
        return 0;
    };
    let text = written(c);
    match f.kind {
        SYSFS_NUMVFS => numvfs_write(c, f.slot, text),
        SYSFS_DRIVER_OVERRIDE => driver_write(c, f.slot, text),
        SYSFS_BIND => bind_write(c, f.slot, text),
        _ => 0,
    }
}

/// The first bytes the current `write`/`pwrite64` writes (NUL padded, a
/// trailing newline dropped) in the per-CPU scratch buffer, or null for
/// another syscall or an unreadable buffer.
#[inline(always)]
fn written(c: &Conf) -> *const [u8; NAME_LEN] {
    let none = core::ptr::null();
    let Some(t) = SCRATCH.get_ptr_mut(0) else {
        return none;
    };
    let (Some(nr), Some(buf), Some(len)) = (
        syscall_reg(c, REG_ORIG_AX),
        syscall_reg(c, REG_SI),
        syscall_reg(c, REG_DX),
    ) else {
        return none;
    };
    if nr != SYS_WRITE && nr != SYS_PWRITE64 {
        return none;
    }
    // SAFETY: `t` is this CPU's scratch value; a checked read of the
    // caller's buffer into it (16 bytes when 32 cross into a bad page).
    unsafe {
        *t = [0; NAME_LEN];
        if aya_ebpf::helpers::generated::bpf_probe_read_user(
            t as *mut core::ffi::c_void,
            NAME_LEN as u32,
            buf as *const core::ffi::c_void,
        ) != 0
        {
            *t = [0; NAME_LEN];
            if aya_ebpf::helpers::generated::bpf_probe_read_user(
                t as *mut core::ffi::c_void,
                16,
                buf as *const core::ffi::c_void,
            ) != 0
            {
                return none;
            }
        }
        for i in 0..NAME_LEN {
            if i as u64 >= len || (*t)[i] == b'\n' {
                (*t)[i] = 0;
            }
        }
    }
    t
}

#[inline(always)]
fn numvfs_write(c: &Conf, slot: u32, text: *const [u8; NAME_LEN]) -> i32 {
    let Some(r) = pf_rule(c, slot) else { return 0 };
    let mut n: u64 = 0;
    let mut digits = 0;
    if !text.is_null() {
        for i in 0..10 {
            // SAFETY: `text` points at NAME_LEN bytes.
            let b = unsafe { (*text)[i] };
            if !b.is_ascii_digit() {
                break;
            }
            n = n * 10 + u64::from(b - b'0');
            digits += 1;
        }
    }
    if r.flags & RULE_NUMVFS_WRITERS != 0 && !allowed(r, &who()) {
        let ret = violation(c, V_NUMVFS_WRITER, slot, n, 0, text);
        if ret != 0 {
            return ret;
        }
    }
    if r.flags & RULE_NUMVFS_RANGE != 0
        && (digits == 0 || n < u64::from(r.numvfs_min) || n > u64::from(r.numvfs_max))
    {
        return violation(
            c,
            V_NUMVFS_RANGE,
            slot,
            if digits == 0 { u64::MAX } else { n },
            u64::from(r.numvfs_max),
            text,
        );
    }
    0
}

/// Whether `name` (NUL padded) is one of the rule's drivers.
#[inline(always)]
fn driver_listed(r: &Rule, name: &[u8; NAME_LEN]) -> bool {
    for i in 0..MAX_DRIVERS {
        if (i as u32) < r.n_drivers && r.drivers[i] == *name {
            return true;
        }
    }
    false
}

/// `driver_override` of VF `slot`: an empty write clears it (allowed).
#[inline(always)]
fn driver_write(c: &Conf, slot: u32, text: *const [u8; NAME_LEN]) -> i32 {
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DRIVERS == 0 {
        return 0;
    }
    if text.is_null() {
        return violation(c, V_DRIVER, slot, u64::MAX, 0, text);
    }
    // SAFETY: `text` points at NAME_LEN bytes.
    let t = unsafe { &*text };
    if t[0] == 0 || driver_listed(r, t) {
        return 0;
    }
    violation(c, V_DRIVER, slot, 0, 0, text)
}

/// `/sys/bus/pci/drivers/<driver>/bind`, driver `driver`: the text is a
/// device's PCI address.
#[inline(always)]
fn bind_write(c: &Conf, driver: u32, text: *const [u8; NAME_LEN]) -> i32 {
    if text.is_null() {
        return 0;
    }
    let mut bdf = [0u8; BDF_LEN];
    // SAFETY: `text` points at NAME_LEN >= BDF_LEN bytes.
    unsafe { core::ptr::copy_nonoverlapping(text as *const u8, bdf.as_mut_ptr(), BDF_LEN) };
    // SAFETY: the value is copied.
    let Some(slot) = (unsafe { BDF_VF.get(&bdf) }).copied() else {
        return 0;
    };
    let Some(r) = vf_rule(c, slot) else { return 0 };
    if r.flags & RULE_DRIVERS == 0 {
        return 0;
    }
    let Some(name) = DRIVER_NAMES.get(driver) else {
        return 0;
    };
    if driver_listed(r, name) {
        return 0;
    }
    violation(c, V_DRIVER, slot, 1, 0, name)
}
