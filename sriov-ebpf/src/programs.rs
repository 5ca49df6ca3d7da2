//! Kernel-side programs: the ring buffer and the entry/exit pairing all
//! probes share, and hot-plug (sriov_numvfs, VF add/remove, driver probe).
//! IRQs and MSI are in `programs_irq`, VFIO DMA in `programs_dma`. Records
//! go through one ring buffer; a full ring is counted in `LOST`. Device and driver names are read at offset 0 of
//! `struct device` (kobj.name) and `struct device_driver` (name), which is
//! stable across kernels, so no CO-RE relocation is needed.
use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
    },
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use sriov_ebpf::{
    CONF_PCI_DEV_DEV, EVENTS_BYTES, PROBE_CONF_LEN, RING_WAKE_SHARE, VfKey,
    record::{
        GroupRecord, Header, KIND_DRIVER_PROBE, KIND_IOMMU_GROUP_ADD, KIND_SRIOV_CONFIGURE,
        KIND_VF_ADD, KIND_VF_REMOVE, NAME_LEN, ProbeRecord, SriovConfigureRecord, VfRecord,
    },
};

#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map(name = "LOST")]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// What an entry probe saves for its return probe.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Start {
    pub(crate) ts: u64,
    pub(crate) name: [u8; NAME_LEN],
    pub(crate) name2: [u8; NAME_LEN],
    pub(crate) a: u64,
    pub(crate) b: u64,
    pub(crate) c: u64,
    pub(crate) d: u64,
}

const HOOK_SRIOV: u64 = 1;
const HOOK_VF_ADD: u64 = 2;
const HOOK_VF_REMOVE: u64 = 3;
const HOOK_PROBE: u64 = 4;
pub(crate) const HOOK_MSI: u64 = 5;
pub(crate) const HOOK_VFIO_IOCTL: u64 = 6;
pub(crate) const HOOK_MSI_FREE: u64 = 7;
pub(crate) const HOOK_MBX: u64 = 8;
pub(crate) const HOOK_ADMIN: u64 = 10;
pub(crate) const HOOK_SPAN: u64 = 11;

/// Calls of one hook that may be open at once on one thread: a nested
/// `really_probe` (a PF driver that enables its VFs in its own probe, and
/// the VF drivers probe inside it) keeps one entry per level.
const MAX_DEPTH: u64 = 8;

/// Entry state by (thread, hook, depth).
#[map(name = "STARTS")]
static STARTS: HashMap<u64, Start> = HashMap::with_max_entries(4096, 0);

/// Open calls by (thread, hook): the depth of the next entry.
#[map(name = "DEPTHS")]
static DEPTHS: HashMap<u64, u64> = HashMap::with_max_entries(4096, 0);

/// When each VF was created, by (PF name, index): the incarnation user
/// space reports (`created_ns`), read at any scan.
#[map(name = "VF_BIRTHS")]
static VF_BIRTHS: HashMap<VfKey, u64> = HashMap::with_max_entries(4096, 0);

/// What the loader found in the kernel's BTF ([`CONF_PCI_DEV_DEV`]).
#[map(name = "PROBE_CONF")]
static PROBE_CONF: Array<u32> = Array::with_max_entries(PROBE_CONF_LEN, 0);

/// The PF whose `sriov_numvfs` write a thread is in, by thread id.
#[map(name = "CONFIGURING")]
pub(crate) static CONFIGURING: HashMap<u32, [u8; NAME_LEN]> = HashMap::with_max_entries(1024, 0);

pub(crate) fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

fn key(hook: u64) -> u64 {
    (u64::from(tid()) << 16) | (hook << 8)
}

pub(crate) fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

pub(crate) fn header(kind: u32) -> Header {
    let pt = bpf_get_current_pid_tgid();
    Header {
        kind,
        // SAFETY: a helper without arguments.
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: now(),
        tid: pt as u32,
        pid: (pt >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

/// Count a record that did not fit in the ring.
pub(crate) fn lost() {
    if let Some(p) = LOST.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it.
        unsafe { *p += 1 };
    }
}

/// The flags a record is submitted with: the reader is woken only when
/// [`RING_WAKE_SHARE`] of the ring waits (it drains it every
/// `RING_POLL_MS` anyway).
pub(crate) fn wake_flags() -> u64 {
    let waiting = EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    let size = EVENTS.query(u64::from(BPF_RB_RING_SIZE));
    if waiting.saturating_mul(RING_WAKE_SHARE) >= size {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Put a record on the ring, or count it as lost.
pub(crate) fn emit<T: 'static>(rec: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut e) => {
            e.write(rec);
            e.submit(wake_flags());
        }
        None => {
            if let Some(p) = LOST.get_ptr_mut(0) {
                // SAFETY: per-CPU slot, only this CPU writes it.
                unsafe { *p += 1 };
            }
        }
    }
}

/// The name of a `struct device` or `struct device_driver`: a `const char *`
/// at offset 0 of both (`kobj.name`, `name`).
pub(crate) fn name_at(obj: *const u8) -> [u8; NAME_LEN] {
    let mut out = [0u8; NAME_LEN];
    if let Some(p) = ptr_at(obj, 0) {
        // SAFETY: bpf_probe_read_kernel_str_bytes checks the address.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(p, &mut out) };
    }
    out
}

/// Read a kernel pointer at `base + off` (`None` for a null `base` or an
/// address that does not read).
pub(crate) fn ptr_at(base: *const u8, off: usize) -> Option<*const u8> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an Err.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const *const u8) }.ok()
}

/// Depth of the open calls of `hook` on this thread (0: none).
fn depth(k: u64) -> u64 {
    // SAFETY: the value is copied.
    unsafe { DEPTHS.get(&k) }.copied().unwrap_or(0)
}

/// An entry: saved at the thread's depth for `hook`, which goes one down.
/// Deeper than [`MAX_DEPTH`] only the depth is counted (no record then),
/// so entries and exits stay paired.
pub(crate) fn start(hook: u64, s: &Start) {
    let k = key(hook);
    let d = depth(k);
    if d < MAX_DEPTH {
        let _ = STARTS.insert(&(k | d), s, 0);
    }
    let _ = DEPTHS.insert(&k, &(d + 1), 0);
}

/// The matching exit: the innermost open entry of `hook` on this thread.
pub(crate) fn take(hook: u64) -> Option<Start> {
    let k = key(hook);
    let d = depth(k);
    if d == 0 {
        return None;
    }
    let d = d - 1;
    if d == 0 {
        let _ = DEPTHS.remove(&k);
    } else {
        let _ = DEPTHS.insert(&k, &d, 0);
    }
    if d >= MAX_DEPTH {
        return None;
    }
    pop_start(k | d)
}

/// The entry of [`STARTS`] at `k`, removed.
fn pop_start(k: u64) -> Option<Start> {
    // SAFETY: the value is copied out before the entry is removed.
    let s = unsafe { STARTS.get(&k) }.copied()?;
    let _ = STARTS.remove(&k);
    Some(s)
}

/// The low byte of [`STARTS`]' key of a flat entry (above any depth).
const FLAT: u64 = 0xff;
const _: () = assert!(MAX_DEPTH < FLAT);

/// [`start`] for a function the thread in it cannot enter again (an
/// ioctl): one map update instead of a depth read and two updates. An
/// entry whose exit was missed is replaced by the next one.
pub(crate) fn start_flat(hook: u64, s: &Start) {
    let _ = STARTS.insert(&(key(hook) | FLAT), s, 0);
}

/// The exit of [`start_flat`]'s entry.
pub(crate) fn take_flat(hook: u64) -> Option<Start> {
    pop_start(key(hook) | FLAT)
}

/// The innermost open entry of `hook` on this thread, left in place.
pub(crate) fn peek(hook: u64) -> Option<Start> {
    let k = key(hook);
    let d = depth(k);
    if d == 0 || d > MAX_DEPTH {
        return None;
    }
    // SAFETY: the value is copied.
    unsafe { STARTS.get(&(k | (d - 1))) }.copied()
}

pub(crate) const EMPTY: Start = Start {
    ts: 0,
    name: [0; NAME_LEN],
    name2: [0; NAME_LEN],
    a: 0,
    b: 0,
    c: 0,
    d: 0,
};

// ---------------------------------------------------------------- hot-plug
//
// Each hook is one function of plain arguments, with two front-ends: a
// fentry/fexit pair (preferred: cheaper, BTF-typed) and a kprobe/kretprobe
// pair (the fallback the loader uses when fentry cannot load).

pub(crate) fn null() -> *const u8 {
    core::ptr::null()
}

/// `sriov_numvfs_store(dev, attr, buf, count)`: a write to sriov_numvfs.
fn on_sriov_store(dev: *const u8, buf: *const u8) {
    let mut s = EMPTY;
    s.ts = now();
    s.name = name_at(dev);
    if !buf.is_null() {
        // SAFETY: a checked read of the kernel copy of the written text.
        if let Ok(v) = unsafe { bpf_probe_read_kernel(buf as *const [u8; 8]) } {
            s.a = u64::from_le_bytes(v);
        }
    }
    let _ = CONFIGURING.insert(&tid(), &s.name, 0);
    start(HOOK_SRIOV, &s);
}

fn on_sriov_store_ret(ret: i64) {
    let _ = CONFIGURING.remove(&tid());
    let Some(s) = take(HOOK_SRIOV) else { return };
    crate::programs_vf::admin_numvfs(&s, ret);
    emit(SriovConfigureRecord {
        hdr: header(KIND_SRIOV_CONFIGURE),
        dev: s.name,
        value: s.a.to_le_bytes(),
        ret,
        latency_ns: now().saturating_sub(s.ts),
    });
}

#[kprobe]
pub fn sriov_store_entry(ctx: ProbeContext) -> u32 {
    on_sriov_store(ctx.arg(0).unwrap_or(null()), ctx.arg(2).unwrap_or(null()));
    0
}

#[kretprobe]
pub fn sriov_store_exit(ctx: RetProbeContext) -> u32 {
    on_sriov_store_ret(ctx.ret());
    0
}

#[fentry(function = "sriov_numvfs_store")]
pub fn sriov_store_fentry(ctx: FEntryContext) -> u32 {
    on_sriov_store(ctx.arg(0), ctx.arg(2));
    0
}

#[fexit(function = "sriov_numvfs_store")]
pub fn sriov_store_fexit(ctx: FExitContext) -> u32 {
    on_sriov_store_ret(ctx.arg(4));
    0
}

/// A struct member offset the loader found in BTF (`PROBE_CONF` slot
/// `slot`, which holds offset + 1; 0: not found).
pub(crate) fn conf(slot: u32) -> Option<usize> {
    match PROBE_CONF.get(slot) {
        Some(&v) if v != 0 => Some((v - 1) as usize),
        _ => None,
    }
}

/// The name of a `pci_dev` (its BDF), through `pci_dev.dev` at the
/// offset the loader found in BTF; empty when it found none.
pub(crate) fn pf_name(pf: *const u8) -> [u8; NAME_LEN] {
    match conf(CONF_PCI_DEV_DEV) {
        Some(off) if !pf.is_null() => name_at(pf.wrapping_add(off)),
        _ => [0; NAME_LEN],
    }
}

/// Entry of `pci_iov_add_virtfn` / `pci_iov_remove_virtfn(pf, id)`. An add
/// records the VF's birth; a remove forgets it.
fn on_vf(pf: *const u8, id: u32, hook: u64) {
    let mut s = EMPTY;
    s.ts = now();
    s.a = u64::from(id);
    s.name = pf_name(pf);
    if s.name[0] != 0 {
        let key = VfKey {
            pf: s.name,
            index: id,
            _pad: 0,
        };
        if hook == HOOK_VF_ADD {
            let _ = VF_BIRTHS.insert(&key, &s.ts, 0);
        } else {
            let _ = VF_BIRTHS.remove(&key);
        }
    }
    start(hook, &s);
}

fn on_vf_ret(ret: i32, hook: u64, kind: u32) {
    let Some(s) = take(hook) else { return };
    // the PF from the argument; else the `sriov_numvfs` write in progress
    let pf = if s.name[0] != 0 {
        s.name
    } else {
        // SAFETY: the value is copied.
        unsafe { CONFIGURING.get(&tid()) }
            .copied()
            .unwrap_or([0; NAME_LEN])
    };
    // the header's time less the latency is the birth VF_BIRTHS holds
    // (one clock read for both), so a record read late still dates its
    // own incarnation
    let hdr = header(kind);
    let latency_ns = hdr.ts_ns.saturating_sub(s.ts);
    emit(VfRecord {
        hdr,
        pf,
        vf_id: s.a as i32,
        ret,
        latency_ns,
    });
}

/// `pci_iov_add_virtfn(struct pci_dev *pf, int id)`.
#[kprobe]
pub fn vf_add_entry(ctx: ProbeContext) -> u32 {
    on_vf(
        ctx.arg(0).unwrap_or(null()),
        ctx.arg(1).unwrap_or(u32::MAX),
        HOOK_VF_ADD,
    );
    0
}

#[kretprobe]
pub fn vf_add_exit(ctx: RetProbeContext) -> u32 {
    on_vf_ret(ctx.ret(), HOOK_VF_ADD, KIND_VF_ADD);
    0
}

#[fentry(function = "pci_iov_add_virtfn")]
pub fn vf_add_fentry(ctx: FEntryContext) -> u32 {
    on_vf(ctx.arg(0), ctx.arg(1), HOOK_VF_ADD);
    0
}

#[fexit(function = "pci_iov_add_virtfn")]
pub fn vf_add_fexit(ctx: FExitContext) -> u32 {
    on_vf_ret(ctx.arg(2), HOOK_VF_ADD, KIND_VF_ADD);
    0
}

/// `pci_iov_remove_virtfn(struct pci_dev *pf, int id)` (returns nothing).
#[kprobe]
pub fn vf_remove_entry(ctx: ProbeContext) -> u32 {
    on_vf(
        ctx.arg(0).unwrap_or(null()),
        ctx.arg(1).unwrap_or(u32::MAX),
        HOOK_VF_REMOVE,
    );
    0
}

#[kretprobe]
pub fn vf_remove_exit(_ctx: RetProbeContext) -> u32 {
    on_vf_ret(0, HOOK_VF_REMOVE, KIND_VF_REMOVE);
    0
}

#[fentry(function = "pci_iov_remove_virtfn")]
pub fn vf_remove_fentry(ctx: FEntryContext) -> u32 {
    on_vf(ctx.arg(0), ctx.arg(1), HOOK_VF_REMOVE);
    0
}

#[fexit(function = "pci_iov_remove_virtfn")]
pub fn vf_remove_fexit(_ctx: FExitContext) -> u32 {
    on_vf_ret(0, HOOK_VF_REMOVE, KIND_VF_REMOVE);
    0
}

/// `iommu:add_device_to_group`: `int gid` at 8, `__data_loc char[] device` at 12.
#[tracepoint]
pub fn group_add(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the event's format file; checked reads.
    let (Ok(gid), Ok(loc)) = (unsafe { ctx.read_at::<i32>(8) }, unsafe {
        ctx.read_at::<u32>(12)
    }) else {
        return 0;
    };
    let mut dev = [0u8; NAME_LEN];
    let off = (loc & 0xffff) as usize;
    // SAFETY: __data_loc points inside the record; the read is checked.
    let _ =
        unsafe { bpf_probe_read_kernel_str_bytes((ctx.as_ptr() as *const u8).add(off), &mut dev) };
    emit(GroupRecord {
        hdr: header(KIND_IOMMU_GROUP_ADD),
        dev,
        group: gid,
        _pad: 0,
    });
    0
}

/// `really_probe(struct device *dev, struct device_driver *drv)`.
fn on_probe(dev: *const u8, drv: *const u8) {
    let mut s = EMPTY;
    s.ts = now();
    s.name = name_at(dev);
    s.name2 = name_at(drv);
    start(HOOK_PROBE, &s);
}

fn on_probe_ret(ret: i32) {
    let Some(s) = take(HOOK_PROBE) else { return };
    emit(ProbeRecord {
        hdr: header(KIND_DRIVER_PROBE),
        dev: s.name,
        driver: s.name2,
        ret,
        _pad: 0,
        latency_ns: now().saturating_sub(s.ts),
    });
}

#[kprobe]
pub fn probe_entry(ctx: ProbeContext) -> u32 {
    on_probe(ctx.arg(0).unwrap_or(null()), ctx.arg(1).unwrap_or(null()));
    0
}

#[kretprobe]
pub fn probe_exit(ctx: RetProbeContext) -> u32 {
    on_probe_ret(ctx.ret());
    0
}

#[fentry(function = "really_probe")]
pub fn probe_fentry(ctx: FEntryContext) -> u32 {
    on_probe(ctx.arg(0), ctx.arg(1));
    0
}

#[fexit(function = "really_probe")]
pub fn probe_fexit(ctx: FExitContext) -> u32 {
    on_probe_ret(ctx.arg(2));
    0
}
