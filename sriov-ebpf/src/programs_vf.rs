//! What is said to and about a VF (issue #14): the PF side of the PF↔VF
//! mailbox (igb), config space accesses VFIO traps for a VM or a user-space
//! driver, and administrative changes with who made them.
//!
//! All are kprobe/kretprobe pairs: the functions live in modules (igb,
//! vfio-pci-core), which aya's fentry cannot target. Struct members the
//! programs follow come from BTF through `PROBE_CONF` (`programs::conf`);
//! a member the loader did not find leaves its field empty.
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_current_uid_gid,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user,
    },
    macros::{kprobe, kretprobe, map},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext},
};
use sriov_ebpf::{
    CONF_DENTRY_NAME, CONF_FILE_DENTRY, CONF_IGB_ADAPTER_PDEV, CONF_IGB_HW_BACK, CONF_KN_NAME,
    CONF_KN_PARENT, CONF_KOF_KN, CONF_MM_EXE_FILE, CONF_NETDEV_NAME, CONF_TASK_MM,
    CONF_VFIO_PCI_PDEV, CONFIG_WINDOW_NS, ConfigKey, ConfigWindow,
    record::{
        ADMIN_BIND, ADMIN_DRIVER_OVERRIDE, ADMIN_MAC, ADMIN_NUMVFS, ADMIN_RATE, ADMIN_SPOOFCHK,
        ADMIN_TRUST, ADMIN_UNBIND, ADMIN_VLAN, AdminRecord, ConfigRecord, KIND_ADMIN,
        KIND_CONFIG_ACCESS, KIND_MAILBOX, KIND_VFIO_DEV, MBX_FROM_VF, MBX_TO_VF, MBX_WORDS,
        MailboxRecord, NAME_LEN, VFIO_DEV_CLOSE, VFIO_DEV_OPEN, VfioDevRecord,
    },
};

use crate::programs::{
    EMPTY, EVENTS, HOOK_ADMIN, HOOK_MBX, Start, conf, emit, header, lost, name_at, now, null,
    pf_name, ptr_at, start, take, tid,
};

// ---------------------------------------------------------------- mailbox

/// The PF of an igb `struct e1000_hw`: `hw->back` is the `igb_adapter`,
/// whose `pdev` is the PF.
fn igb_pf(hw: *const u8) -> [u8; NAME_LEN] {
    let Some(back) = conf(CONF_IGB_HW_BACK) else {
        return [0; NAME_LEN];
    };
    let Some(pdev) = conf(CONF_IGB_ADAPTER_PDEV) else {
        return [0; NAME_LEN];
    };
    match ptr_at(hw, back).and_then(|a| ptr_at(a, pdev)) {
        Some(p) => pf_name(p),
        None => [0; NAME_LEN],
    }
}

/// `igb_read_mbx(hw, msg, size, mbx_id, unlock)` / `igb_write_mbx(hw, msg,
/// size, mbx_id)`: saved at entry, the words read at return (a read fills
/// `msg`; a write's `msg` is still the caller's buffer).
fn on_mbx(ctx: &ProbeContext, dir: u32) {
    let mut s = EMPTY;
    s.ts = now();
    s.a = ctx.arg::<u64>(0).unwrap_or(0);
    s.b = ctx.arg::<u64>(1).unwrap_or(0);
    let size = ctx.arg::<u64>(2).unwrap_or(0) & 0xffff;
    let vf = ctx.arg::<u64>(3).unwrap_or(0) & 0xffff;
    s.c = size | (vf << 16);
    s.d = u64::from(dir);
    start(HOOK_MBX, &s);
}

#[kprobe]
pub fn mbx_read_entry(ctx: ProbeContext) -> u32 {
    on_mbx(&ctx, MBX_FROM_VF);
    0
}

#[kprobe]
pub fn mbx_write_entry(ctx: ProbeContext) -> u32 {
    on_mbx(&ctx, MBX_TO_VF);
    0
}

/// The return of either (one program attached to both).
#[kretprobe]
pub fn mbx_exit(ctx: RetProbeContext) -> u32 {
    let Some(s) = take(HOOK_MBX) else { return 0 };
    let ret: i32 = ctx.ret();
    let size = (s.c & 0xffff) as usize;
    let n = if size > MBX_WORDS { MBX_WORDS } else { size };
    let mut words = [0u32; MBX_WORDS];
    let msg = s.b as *const [u32; MBX_WORDS];
    if !msg.is_null() {
        // SAFETY: a checked read of the caller's message buffer; words past
        // `size` are cleared below.
        if let Ok(w) = unsafe { bpf_probe_read_kernel(msg) } {
            words = w;
        }
    }
    for (i, w) in words.iter_mut().enumerate() {
        if i >= n {
            *w = 0;
        }
    }
    emit(MailboxRecord {
        hdr: header(KIND_MAILBOX),
        pf: igb_pf(s.a as *const u8),
        vf: ((s.c >> 16) & 0xffff) as u32,
        dir: s.d as u32,
        ret,
        size: n as u32,
        words,
        hw: s.a,
    });
    0
}

// ---------------------------------------------------------------- config space

/// `VFIO_PCI_OFFSET_MASK`: the offset within a VFIO region.
const VFIO_OFFSET_MASK: u64 = (1 << 40) - 1;

/// Up to 8 bytes at user address `buf`, little-endian (the widest read
/// that does not fault, so a 4-byte buffer at a page end still reads).
fn user_value(buf: u64, count: u64) -> u64 {
    if buf == 0 || count == 0 {
        return 0;
    }
    // SAFETY: bpf_probe_read_user checks the address; a bad one is an Err.
    let v = unsafe { bpf_probe_read_user(buf as *const u64) }
        .or_else(|_| unsafe { bpf_probe_read_user(buf as *const u32) }.map(u64::from))
        .or_else(|_| unsafe { bpf_probe_read_user(buf as *const u16) }.map(u64::from))
        .or_else(|_| unsafe { bpf_probe_read_user(buf as *const u8) }.map(u64::from))
        .unwrap_or(0);
    if count >= 8 {
        v
    } else {
        v & ((1u64 << (count * 8)) - 1)
    }
}

/// Accesses per register ([`ConfigKey`]): counted here, one record per
/// window ([`CONFIG_WINDOW_NS`]) so a polling VMM costs a map update, not a
/// record, per access.
#[map(name = "CONFIG_WINDOWS")]
static CONFIG_WINDOWS: LruHashMap<ConfigKey, ConfigWindow> = LruHashMap::with_max_entries(16384, 0);

/// An access being recorded: what its return needs.
#[derive(Clone, Copy)]
struct ConfigOpen {
    ts: u64,
    dev: [u8; NAME_LEN],
    key: ConfigKey,
    buf: u64,
    count: u64,
    /// A write's value (read from user space at entry).
    value: u64,
    total: u64,
}

/// The access being recorded, by thread (config accesses do not nest).
#[map(name = "CONFIG_OPEN")]
static CONFIG_OPEN: HashMap<u32, ConfigOpen> = HashMap::with_max_entries(1024, 0);

/// Count an access to `key` at `now`: whether it begins a window (then it
/// is recorded), and the total so far.
fn config_count(key: &ConfigKey, now: u64) -> (bool, u64) {
    match CONFIG_WINDOWS.get_ptr_mut(key) {
        Some(w) => {
            // SAFETY: `w` points into the map's value, valid during this
            // program. Not atomic (the BPF target of this toolchain has no
            // atomic add): two CPUs counting the same register at the same
            // instant can lose one; docs/events.md says so.
            unsafe {
                let total = (*w).total + 1;
                (*w).total = total;
                (*w).last_ns = now;
                if now.saturating_sub((*w).window_start_ns) < CONFIG_WINDOW_NS {
                    return (false, total);
                }
                (*w).window_start_ns = now;
                (true, total)
            }
        }
        None => {
            let w = ConfigWindow {
                total: 1,
                window_start_ns: now,
                last_ns: now,
            };
            let _ = CONFIG_WINDOWS.insert(key, &w, 0);
            (true, 1)
        }
    }
}

/// `vfio_pci_config_rw(vdev, buf, count, ppos, iswrite)`.
#[kprobe]
pub fn config_entry(ctx: ProbeContext) -> u32 {
    let vdev: *const u8 = ctx.arg(0).unwrap_or(null());
    let buf = ctx.arg::<u64>(1).unwrap_or(0);
    let count = ctx.arg::<u64>(2).unwrap_or(0);
    let ppos: *const i64 = ctx.arg(3).unwrap_or(core::ptr::null());
    let write = ctx.arg::<u64>(4).unwrap_or(0) & 0xff != 0;
    let mut offset = 0u64;
    if !ppos.is_null() {
        // SAFETY: a checked read of the file position.
        if let Ok(p) = unsafe { bpf_probe_read_kernel(ppos) } {
            offset = (p as u64) & VFIO_OFFSET_MASK;
        }
    }
    let key = ConfigKey {
        vdev: vdev as u64,
        offset: offset as u32,
        width_op: (count as u32 & !ConfigKey::WRITE) | if write { ConfigKey::WRITE } else { 0 },
    };
    let ts = now();
    let (record, total) = config_count(&key, ts);
    if !record {
        return 0;
    }
    let open = ConfigOpen {
        ts,
        dev: vfio_dev_name(vdev),
        key,
        buf,
        count,
        // a write's value is what user space hands in
        value: if write { user_value(buf, count) } else { 0 },
        total,
    };
    let _ = CONFIG_OPEN.insert(&tid(), &open, 0);
    0
}

#[kretprobe]
pub fn config_exit(ctx: RetProbeContext) -> u32 {
    let t = tid();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(o) = (unsafe { CONFIG_OPEN.get(&t) }).copied() else {
        return 0;
    };
    let _ = CONFIG_OPEN.remove(&t);
    let ret: i64 = ctx.ret();
    let write = o.key.width_op & ConfigKey::WRITE != 0;
    let value = if write {
        o.value
    } else if ret > 0 {
        // what the kernel copied out to the reader
        user_value(o.buf, o.count)
    } else {
        0
    };
    emit(ConfigRecord {
        hdr: header(KIND_CONFIG_ACCESS),
        dev: o.dev,
        offset: o.key.offset,
        count: o.count as u32,
        value,
        ret,
        write: u32::from(write),
        _pad: 0,
        latency_ns: now().saturating_sub(o.ts),
        vdev: o.key.vdev,
        total: o.total,
    });
    0
}

// ---------------------------------------------------------------- VFIO users

/// The device (BDF) of a `struct vfio_pci_core_device *`, through its
/// `pdev`; empty when the loader found no offset for it.
fn vfio_dev_name(vdev: *const u8) -> [u8; NAME_LEN] {
    match conf(CONF_VFIO_PCI_PDEV).and_then(|off| ptr_at(vdev, off)) {
        Some(pdev) => pf_name(pdev),
        None => [0; NAME_LEN],
    }
}

/// A VFIO open or close of `vdev` (its `vfio_device` is its first member,
/// so the same pointer serves both functions).
fn vfio_dev_record(vdev: *const u8, op: u32) {
    emit(VfioDevRecord {
        hdr: header(KIND_VFIO_DEV),
        dev: vfio_dev_name(vdev),
        op,
        _pad: 0,
    });
}

/// `vfio_pci_core_enable(vdev)`: the device's first open by a VFIO user.
#[kprobe]
pub fn vfio_dev_open(ctx: ProbeContext) -> u32 {
    vfio_dev_record(ctx.arg(0).unwrap_or(null()), VFIO_DEV_OPEN);
    0
}

/// `vfio_pci_core_close_device(core_vdev)`: its last holder closed it.
#[kprobe]
pub fn vfio_dev_close(ctx: ProbeContext) -> u32 {
    vfio_dev_record(ctx.arg(0).unwrap_or(null()), VFIO_DEV_CLOSE);
    0
}

// ---------------------------------------------------------------- admin changes

/// The name of the current task's executable (`mm->exe_file`'s dentry),
/// into `out` (left as it is when unknown).
fn exe_name(out: &mut [u8; NAME_LEN]) {
    // one offset at a time: a tuple of Options compiles to a spill of an
    // unset register, which the verifier refuses
    let Some(mm) = conf(CONF_TASK_MM) else {
        return;
    };
    let Some(exe) = conf(CONF_MM_EXE_FILE) else {
        return;
    };
    let Some(dentry) = conf(CONF_FILE_DENTRY) else {
        return;
    };
    let Some(name) = conf(CONF_DENTRY_NAME) else {
        return;
    };
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let p = ptr_at(task, mm)
        .and_then(|m| ptr_at(m, exe))
        .and_then(|f| ptr_at(f, dentry))
        .and_then(|d| ptr_at(d, name));
    if let Some(p) = p {
        // SAFETY: a checked read of the name string.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(p, out) };
    }
}

/// A `struct net_device`'s name.
fn netdev_name(dev: *const u8) -> [u8; NAME_LEN] {
    let mut out = [0u8; NAME_LEN];
    if let Some(off) = conf(CONF_NETDEV_NAME)
        && !dev.is_null()
    {
        // SAFETY: a checked read of the inline `char name[IFNAMSIZ]`.
        if let Ok(n) = unsafe { bpf_probe_read_kernel(dev.wrapping_add(off) as *const [u8; 16]) } {
            out[..16].copy_from_slice(&n);
        }
    }
    out
}

/// Up to `NAME_LEN - 1` bytes of kernel text at `p` (not NUL-terminated in
/// the kernel: a sysfs buffer), cut at `len`.
fn text_at(p: *const u8, len: u64) -> [u8; NAME_LEN] {
    let mut out = [0u8; NAME_LEN];
    if !p.is_null() {
        // SAFETY: a checked read; bytes past `len` are cleared below.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(p, &mut out) };
    }
    for (i, b) in out.iter_mut().enumerate() {
        if i as u64 >= len || i == NAME_LEN - 1 {
            *b = 0;
        }
    }
    out
}

/// Save an admin change at entry: `what` and the VF index in `d`.
fn admin(what: u32, vf: i64, s: &mut Start) {
    s.ts = now();
    s.d = u64::from(what) | ((vf as u64) << 32);
    start(HOOK_ADMIN, s);
}

/// What every `ndo_set_vf_*(netdev, vf, ...)` entry saves: the PF netdev,
/// and the VF index.
fn ndo_entry(ctx: &ProbeContext) -> (Start, i64) {
    let mut s = EMPTY;
    s.name = netdev_name(ctx.arg(0).unwrap_or(null()));
    let vf = ctx.arg::<u64>(1).unwrap_or(u64::MAX) as i32;
    (s, i64::from(vf))
}

/// An `ndo_set_vf_*(netdev, vf, ...)` entry with `args` more integer
/// arguments, into `a`, `b`, `c`.
fn ndo(ctx: &ProbeContext, what: u32, args: usize) {
    let (mut s, vf) = ndo_entry(ctx);
    if args > 0 {
        s.a = ctx.arg::<u64>(2).unwrap_or(0);
    }
    if args > 1 {
        s.b = ctx.arg::<u64>(3).unwrap_or(0);
    }
    if args > 2 {
        s.c = ctx.arg::<u64>(4).unwrap_or(0);
    }
    admin(what, vf, &mut s);
}

/// `ndo_set_vf_mac(netdev, vf, u8 *mac)`.
#[kprobe]
pub fn admin_mac(ctx: ProbeContext) -> u32 {
    let (mut s, vf) = ndo_entry(&ctx);
    let mac: *const [u8; 6] = ctx.arg(2).unwrap_or(core::ptr::null());
    if !mac.is_null() {
        // SAFETY: a checked read of the 6 MAC bytes.
        if let Ok(m) = unsafe { bpf_probe_read_kernel(mac) } {
            s.name2[..6].copy_from_slice(&m);
        }
    }
    admin(ADMIN_MAC, vf, &mut s);
    0
}

/// `ndo_set_vf_vlan(netdev, vf, u16 vlan, u8 qos, __be16 proto)`.
#[kprobe]
pub fn admin_vlan(ctx: ProbeContext) -> u32 {
    ndo(&ctx, ADMIN_VLAN, 3);
    0
}

/// `ndo_set_vf_spoofchk(netdev, vf, bool)`.
#[kprobe]
pub fn admin_spoofchk(ctx: ProbeContext) -> u32 {
    ndo(&ctx, ADMIN_SPOOFCHK, 1);
    0
}

/// `ndo_set_vf_trust(netdev, vf, bool)`.
#[kprobe]
pub fn admin_trust(ctx: ProbeContext) -> u32 {
    ndo(&ctx, ADMIN_TRUST, 1);
    0
}

/// `ndo_set_vf_rate(netdev, vf, min_tx_rate, max_tx_rate)`.
#[kprobe]
pub fn admin_rate(ctx: ProbeContext) -> u32 {
    ndo(&ctx, ADMIN_RATE, 2);
    0
}

/// The sysfs attribute names whose writes are administrative changes
/// reported from `sysfs_kf_write` (NUL-padded to 16 bytes).
const SYSFS_WATCHED: [(&[u8; 16], u32); 1] = [(b"driver_override\0", ADMIN_DRIVER_OVERRIDE)];

/// `sysfs_kf_write(of, buf, count, pos)`: a write to a sysfs attribute. The
/// attribute is `of->kn`, its device the parent directory.
#[kprobe]
pub fn admin_sysfs(ctx: ProbeContext) -> u32 {
    // one at a time (see exe_name)
    let Some(kn_off) = conf(CONF_KOF_KN) else {
        return 0;
    };
    let Some(name_off) = conf(CONF_KN_NAME) else {
        return 0;
    };
    let Some(parent_off) = conf(CONF_KN_PARENT) else {
        return 0;
    };
    let Some(kn) = ptr_at(ctx.arg(0).unwrap_or(null()), kn_off) else {
        return 0;
    };
    let Some(name) = ptr_at(kn, name_off) else {
        return 0;
    };
    let mut attr = [0u8; 16];
    // SAFETY: a checked read of the attribute's name.
    if unsafe { bpf_probe_read_kernel_str_bytes(name, &mut attr) }.is_err() {
        return 0;
    }
    let mut what = 0;
    for (n, w) in SYSFS_WATCHED {
        if attr == *n {
            what = w;
        }
    }
    if what == 0 {
        return 0;
    }
    let mut s = EMPTY;
    if let Some(parent) = ptr_at(kn, parent_off)
        && let Some(pname) = ptr_at(parent, name_off)
    {
        // SAFETY: a checked read of the directory's (the device's) name.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(pname, &mut s.name) };
    }
    s.name2 = text_at(ctx.arg(1).unwrap_or(null()), ctx.arg::<u64>(2).unwrap_or(0));
    admin(what, -1, &mut s);
    0
}

/// `bind_store(drv, buf, count)` / `unbind_store`: `drivers/<drv>/bind`.
fn bind(ctx: &ProbeContext, what: u32) {
    let mut s = EMPTY;
    s.name = name_at(ctx.arg(0).unwrap_or(null()));
    s.name2 = text_at(ctx.arg(1).unwrap_or(null()), ctx.arg::<u64>(2).unwrap_or(0));
    admin(what, -1, &mut s);
}

#[kprobe]
pub fn admin_bind(ctx: ProbeContext) -> u32 {
    bind(&ctx, ADMIN_BIND);
    0
}

#[kprobe]
pub fn admin_unbind(ctx: ProbeContext) -> u32 {
    bind(&ctx, ADMIN_UNBIND);
    0
}

/// Send the record of a change that returned `ret`, made by the current
/// task. Written in place in the ring (the record on the stack, beside
/// the hot-plug hook's, would pass the 512-byte limit).
fn admin_emit(s: &Start, what: u32, vf: i32, ret: i64) {
    let Some(mut e) = EVENTS.reserve::<AdminRecord>(0) else {
        lost();
        return;
    };
    let p = e.as_mut_ptr();
    // SAFETY: `p` is the reserved record, written field by field before it
    // is submitted; nothing reads it meanwhile.
    unsafe {
        (*p).hdr = header(KIND_ADMIN);
        (*p).what = what;
        (*p).vf = vf;
        (*p).ret = ret;
        (*p).uid = bpf_get_current_uid_gid() as u32;
        (*p)._pad = 0;
        (*p).cgroup = bpf_get_current_cgroup_id();
        (*p).dev = s.name;
        (*p).a = s.a;
        (*p).b = s.b;
        (*p).c = s.c;
        (*p).text = s.name2;
        (*p).exe = [0; NAME_LEN];
        exe_name(&mut (*p).exe);
    }
    e.submit(crate::programs::wake_flags());
}

/// The return of every admin hook (one program, attached to each).
#[kretprobe]
pub fn admin_exit(ctx: RetProbeContext) -> u32 {
    let Some(s) = take(HOOK_ADMIN) else { return 0 };
    let raw: i64 = ctx.ret();
    let what = (s.d & 0xffff_ffff) as u32;
    // the stores return ssize_t, as they are; the ndo_* return int: the
    // low half, sign-extended
    let ret = match what {
        ADMIN_BIND | ADMIN_UNBIND | ADMIN_DRIVER_OVERRIDE => raw,
        _ => i64::from(raw as i32),
    };
    admin_emit(&s, what, (s.d >> 32) as i32, ret);
    0
}

/// A `sriov_numvfs` write, from the hot-plug hook's saved entry (`name` the
/// PF, `a` the first bytes written).
pub(crate) fn admin_numvfs(s: &Start, ret: i64) {
    let mut e = *s;
    e.name2 = [0; NAME_LEN];
    e.name2[..8].copy_from_slice(&s.a.to_le_bytes());
    e.a = 0;
    admin_emit(&e, ADMIN_NUMVFS, -1, ret);
}
