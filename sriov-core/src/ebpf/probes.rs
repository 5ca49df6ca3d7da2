//! All the hooks of `sriov-ebpf`: load, attach each one (a hook that cannot
//! attach is reported, not fatal), read the ring buffer with tokio and the
//! per-CPU statistics maps.
use std::{collections::BTreeMap, os::fd::AsFd as _};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{KProbe, TracePoint},
};
use sriov_ebpf::{
    EVENTS_BYTES, MAX_WATCHED_IRQS, WATCHED, maps,
    programs::{self, Attach},
    record::IrqStats,
};
use tokio::io::unix::AsyncFd;

use super::{
    TRACEFS_HINT, object,
    reader::RingReader,
    shared_maps::{Births, configure},
};
use crate::{Error, Result};

/// A hook that could not be attached, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingHook {
    pub program: &'static str,
    /// e.g. `kprobe:sriov_numvfs_store`
    pub attach: String,
    pub reason: String,
}

/// How often a program ran and for how long (needs
/// `kernel.bpf_stats_enabled`, see [`enable_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    pub program: String,
    pub attach: String,
    pub run_time_ns: u64,
    pub run_count: u64,
}

/// Turn on the kernel's per-program run-time statistics while the fd lives.
pub fn enable_stats() -> Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| Error::Unsupported {
        device: "kernel".into(),
        message: format!("cannot enable BPF run-time statistics: {e}"),
    })
}

/// Run-time statistics of program `name` of `ebpf` (see [`enable_stats`]).
pub fn stats_of(ebpf: &Ebpf, name: &str, attach: String) -> Option<ProgramStats> {
    let info = ebpf.program(name)?.info().ok()?;
    Some(ProgramStats {
        program: name.to_string(),
        attach,
        run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
        run_count: info.run_count(),
    })
}

/// A program that does nothing, attached to one hook: the baseline a real
/// program on the same hook is compared with.
pub struct EmptyProbe {
    ebpf: Ebpf,
    program: &'static str,
    attach: String,
}

impl EmptyProbe {
    /// Load a separate copy of the object and attach its empty program of
    /// the same type as `at` there.
    pub fn attach(at: &Attach) -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, 4096)
            .load(object())
            .map_err(|e| Error::EbpfLoad(Box::new(e)))?;
        let program = match at {
            Attach::Tracepoint { .. } => programs::EMPTY_TRACEPOINT,
            Attach::Kprobe { .. } => programs::EMPTY_KPROBE,
            Attach::Kretprobe { .. } => programs::EMPTY_KRETPROBE,
            Attach::FEntry { .. } => programs::EMPTY_FENTRY,
            Attach::FExit { .. } => programs::EMPTY_FEXIT,
        };
        attach_one(&mut ebpf, program, at).map_err(|reason| Error::Unsupported {
            device: "kernel".into(),
            message: format!("baseline on {}: {reason}", describe(at)),
        })?;
        Ok(Self {
            ebpf,
            program,
            attach: describe(at),
        })
    }

    pub fn stats(&self) -> Option<ProgramStats> {
        stats_of(&self.ebpf, self.program, self.attach.clone())
    }
}

/// Options for [`Probes::load`].
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Size of the `EVENTS` ring buffer in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    /// Try fentry/fexit before kprobes for the hooks that have a BTF twin,
    /// falling back to the kprobe per hook (the default). `false`: kprobes
    /// only. Do not alternate the two on one kernel in a loop: in the lab
    /// (Debian 6.12 under QEMU TCG) loads that switched between fentry and
    /// kprobes on the same functions froze the guest twice in about 45
    /// cycles; 90 cycles of either alone never did (docs/events.md, "Hooks").
    pub fentry: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            ring_bytes: EVENTS_BYTES,
            fentry: true,
        }
    }
}

pub(super) type StatsBytes = [u8; IrqStats::SIZE];

/// A program attached to a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedHook {
    pub program: &'static str,
    pub attach: Attach,
    /// Why the preferred fentry/fexit twin was not used, when it was not.
    pub fallback_reason: Option<String>,
    /// The hook this program stands in for, on a kernel without that
    /// hook's function (`programs::STAND_INS`), and why that one failed.
    pub stand_in_for: Option<String>,
}

/// The loaded and attached programs with their maps.
pub struct Probes {
    _ebpf: Ebpf,
    pub attached: Vec<AttachedHook>,
    pub missing: Vec<MissingHook>,
    /// Struct members the probes follow that the kernel's (or a module's)
    /// BTF did not show: the fields read through them stay empty.
    pub btf_missing: Vec<String>,
    ring: Option<RingBuf<MapData>>,
    pub(super) watch: Array<MapData, u8>,
    /// The IRQs set in `watch` (the maps are read only at these indexes).
    pub(super) watched: std::collections::BTreeSet<u32>,
    pub(super) irq_counts: PerCpuArray<MapData, u64>,
    pub(super) irq_stats: PerCpuArray<MapData, StatsBytes>,
    pub(super) vfio_irq_counts: PerCpuArray<MapData, u64>,
    lost: PerCpuArray<MapData, u64>,
    iommu_bytes: PerCpuArray<MapData, u64>,
}

pub(crate) fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |e| Error::EbpfMap {
        map,
        source: Box::new(e),
    }
}

/// `tracepoint:irq:irq_handler_entry`, `fentry:really_probe`, ...
pub fn describe(a: &Attach) -> String {
    match a {
        Attach::Tracepoint { category, name } => format!("tracepoint:{category}:{name}"),
        Attach::Kprobe { function } => format!("kprobe:{function}"),
        Attach::Kretprobe { function } => format!("kretprobe:{function}"),
        Attach::FEntry { function } => format!("fentry:{function}"),
        Attach::FExit { function } => format!("fexit:{function}"),
    }
}

/// The kernel's BTF, read once per process (fentry/fexit need it).
fn vmlinux_btf() -> std::result::Result<&'static aya::Btf, String> {
    static BTF: std::sync::OnceLock<std::result::Result<aya::Btf, String>> =
        std::sync::OnceLock::new();
    BTF.get_or_init(|| aya::Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// The fentry/fexit twin of a kprobe/kretprobe hook, if it has one.
fn btf_twin(program: &str, at: &Attach) -> Option<(&'static str, Attach)> {
    let twin = programs::BTF_TWINS.iter().find(|(k, _)| *k == program)?.1;
    match *at {
        Attach::Kprobe { function } => Some((twin, Attach::FEntry { function })),
        Attach::Kretprobe { function } => Some((twin, Attach::FExit { function })),
        _ => None,
    }
}

/// Load and attach one program; the error text says what failed.
fn attach_one(ebpf: &mut Ebpf, name: &str, at: &Attach) -> std::result::Result<(), String> {
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| "not in the eBPF object (build mismatch)".to_string())?;
    let chain = |e: &dyn std::error::Error| {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    };
    match at {
        Attach::Tracepoint { category, name } => {
            let tp: &mut TracePoint = prog.try_into().map_err(|e| chain(&e))?;
            tp.load().map_err(|e| chain(&e))?;
            tp.attach(category, name).map_err(|e| chain(&e))?;
        }
        Attach::FEntry { function } => {
            let btf = vmlinux_btf()?;
            let p: &mut aya::programs::FEntry = prog.try_into().map_err(|e| chain(&e))?;
            p.load(function, btf).map_err(|e| chain(&e))?;
            p.attach().map_err(|e| chain(&e))?;
        }
        Attach::FExit { function } => {
            let btf = vmlinux_btf()?;
            let p: &mut aya::programs::FExit = prog.try_into().map_err(|e| chain(&e))?;
            p.load(function, btf).map_err(|e| chain(&e))?;
            p.attach().map_err(|e| chain(&e))?;
        }
        Attach::Kprobe { function } | Attach::Kretprobe { function } => {
            if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
                return Err("this kernel has no kprobes (CONFIG_KPROBES; no /sys/bus/event_source/devices/kprobe)".into());
            }
            let kp: &mut KProbe = prog.try_into().map_err(|e| chain(&e))?;
            // one return program serves several functions: loaded once
            if kp.fd().is_err() {
                kp.load().map_err(|e| chain(&e))?;
            }
            kp.attach(function, 0).map_err(|e| chain(&e))?;
        }
    }
    Ok(())
}

/// Attach hook `name` at `at`: its fentry/fexit twin first (with
/// `fentry`), the kprobe program when that cannot load.
fn attach_hook(
    ebpf: &mut Ebpf,
    name: &'static str,
    at: &Attach,
    fentry: bool,
) -> std::result::Result<AttachedHook, String> {
    let mut fallback_reason = None;
    if let Some((twin, twin_at)) = btf_twin(name, at).filter(|_| fentry) {
        match attach_one(ebpf, twin, &twin_at) {
            Ok(()) => {
                return Ok(AttachedHook {
                    program: twin,
                    attach: twin_at,
                    fallback_reason: None,
                    stand_in_for: None,
                });
            }
            Err(reason) => fallback_reason = Some(format!("{}: {reason}", describe(&twin_at))),
        }
    }
    match attach_one(ebpf, name, at) {
        Ok(()) => Ok(AttachedHook {
            program: name,
            attach: *at,
            fallback_reason,
            stand_in_for: None,
        }),
        Err(reason) => Err(match fallback_reason {
            Some(f) => format!("{reason}; and {f}"),
            None => reason,
        }),
    }
}

/// After hook `name` failed at `at` (`why`): its stand-in on an older
/// kernel's function (`programs::STAND_INS`), if it has one. The attached
/// stand-in names the hook it stands in for.
fn stand_in(
    ebpf: &mut Ebpf,
    name: &'static str,
    at: &Attach,
    why: &str,
    fentry: bool,
) -> Option<std::result::Result<AttachedHook, String>> {
    let &(_, program, sub) = programs::STAND_INS.iter().find(|(p, _, _)| *p == name)?;
    Some(match attach_hook(ebpf, program, &sub, fentry) {
        Ok(mut h) => {
            h.stand_in_for = Some(format!("{} ({why})", describe(at)));
            Ok(h)
        }
        Err(e) => Err(format!("and its stand-in {}: {e}", describe(&sub))),
    })
}

/// Take map `name` out of `ebpf` as a typed map.
pub(crate) fn take<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    conv: impl FnOnce(aya::maps::Map) -> std::result::Result<T, aya::maps::MapError>,
) -> Result<T> {
    let m = ebpf
        .take_map(name)
        .ok_or(Error::EbpfMissing { kind: "map", name })?;
    conv(m).map_err(map_err(name))
}

impl Probes {
    /// Load the object and attach every hook. Only the IRQ tracepoint is
    /// required; any other hook that fails is listed in `missing`.
    pub fn load(opts: LoadOptions) -> Result<Self> {
        super::ensure_tracefs();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, opts.ring_bytes)
            .load(object())
            .map_err(|e| Error::EbpfLoad(Box::new(e)))?;
        let btf_missing = configure(&mut ebpf)?;
        let mut attached = Vec::new();
        let mut missing = Vec::new();
        let entry = Attach::Tracepoint {
            category: "irq",
            name: "irq_handler_entry",
        };
        if let Err(reason) = attach_one(&mut ebpf, programs::IRQ_HANDLER_ENTRY, &entry) {
            return Err(Error::Unsupported {
                device: "kernel".into(),
                message: format!("cannot attach {}: {reason}{TRACEFS_HINT}", describe(&entry)),
            });
        }
        attached.push(AttachedHook {
            program: programs::IRQ_HANDLER_ENTRY,
            attach: entry,
            fallback_reason: None,
            stand_in_for: None,
        });
        for (name, at) in programs::all_hooks() {
            match attach_hook(&mut ebpf, name, &at, opts.fentry) {
                Ok(h) => attached.push(h),
                Err(reason) => match stand_in(&mut ebpf, name, &at, &reason, opts.fentry) {
                    Some(Ok(h)) => attached.push(h),
                    Some(Err(more)) => missing.push(MissingHook {
                        program: name,
                        attach: describe(&at),
                        reason: format!("{reason}; {more}"),
                    }),
                    None => missing.push(MissingHook {
                        program: name,
                        attach: describe(&at),
                        reason,
                    }),
                },
            }
        }
        Ok(Self {
            ring: Some(take(&mut ebpf, maps::EVENTS, RingBuf::try_from)?),
            watch: take(&mut ebpf, maps::WATCH_IRQS, Array::try_from)?,
            watched: Default::default(),
            irq_counts: take(&mut ebpf, maps::IRQ_COUNTS, PerCpuArray::try_from)?,
            irq_stats: take(&mut ebpf, maps::IRQ_STATS, PerCpuArray::try_from)?,
            vfio_irq_counts: take(&mut ebpf, maps::VFIO_IRQ_COUNTS, PerCpuArray::try_from)?,
            lost: take(&mut ebpf, maps::LOST, PerCpuArray::try_from)?,
            iommu_bytes: take(&mut ebpf, maps::IOMMU_BYTES, PerCpuArray::try_from)?,
            _ebpf: ebpf,
            attached,
            missing,
            btf_missing,
        })
    }

    /// A handle of its own on the kernel's record of VF creation times
    /// (`VF_BIRTHS`), for [`crate::events::Attributor::set_births`].
    pub fn births(&self) -> Result<Births> {
        let err = map_err(maps::VF_BIRTHS);
        let Some(aya::maps::Map::HashMap(data)) = self._ebpf.map(maps::VF_BIRTHS) else {
            return Err(Error::EbpfMissing {
                kind: "map",
                name: maps::VF_BIRTHS,
            });
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::Sysfs {
                op: "dup",
                path: "the VF_BIRTHS map fd".into(),
                source: e,
            })?;
        let data = MapData::from_fd(fd).map_err(&err)?;
        let map = aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data)).map_err(&err)?;
        Ok(Births { map })
    }

    /// The eBPF object, for the policy programs (`crate::policy::enforce`),
    /// which share its ring buffer.
    pub(super) fn ebpf(&self) -> &Ebpf {
        &self._ebpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self._ebpf
    }

    /// Run-time statistics of every attached program.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        self.attached
            .iter()
            .filter_map(|h| stats_of(&self._ebpf, h.program, describe(&h.attach)))
            .collect()
    }

    /// Where programs are attached, as `kind:target` strings.
    pub fn attached_names(&self) -> Vec<String> {
        self.attached.iter().map(|h| describe(&h.attach)).collect()
    }

    /// Count and time `irq` (a VF's MSI-X vector).
    pub fn watch_irq(&mut self, irq: u32) -> Result<()> {
        if irq >= MAX_WATCHED_IRQS {
            return Err(Error::Unsupported {
                device: format!("IRQ {irq}"),
                message: format!("only IRQ numbers below {MAX_WATCHED_IRQS} can be watched"),
            });
        }
        self.watch
            .set(irq, WATCHED, 0)
            .map_err(map_err(maps::WATCH_IRQS))?;
        self.watched.insert(irq);
        Ok(())
    }

    /// The IRQs watched now.
    pub fn watched(&self) -> Vec<u32> {
        self.watched.iter().copied().collect()
    }

    /// Per watched IRQ, the per-CPU values of `map` summed.
    fn sum_u64(
        &self,
        map: &PerCpuArray<MapData, u64>,
        name: &'static str,
    ) -> Result<BTreeMap<u32, u64>> {
        let mut out = BTreeMap::new();
        for &irq in &self.watched {
            out.insert(irq, summed(map, name, irq)?);
        }
        Ok(out)
    }

    /// The count of any IRQ number, watched or not (unwatched ones stay 0).
    pub fn irq_count(&self, irq: u32) -> Result<u64> {
        summed(&self.irq_counts, maps::IRQ_COUNTS, irq)
    }

    /// Interrupts per watched IRQ, summed over CPUs.
    pub fn irq_counts(&self) -> Result<BTreeMap<u32, u64>> {
        self.sum_u64(&self.irq_counts, maps::IRQ_COUNTS)
    }

    /// Interrupts VFIO forwarded to user space, per watched IRQ.
    pub fn vfio_irq_counts(&self) -> Result<BTreeMap<u32, u64>> {
        self.sum_u64(&self.vfio_irq_counts, maps::VFIO_IRQ_COUNTS)
    }

    /// Handler-time statistics of `irq`, merged over CPUs.
    pub(super) fn irq_stats_of(&self, irq: u32) -> Result<IrqStats> {
        let per_cpu = self
            .irq_stats
            .get(&irq, 0)
            .map_err(map_err(maps::IRQ_STATS))?;
        let mut acc = IrqStats::ZERO;
        for bytes in per_cpu.iter() {
            let s = IrqStats::try_from(&bytes[..]).map_err(|e| Error::Unsupported {
                device: format!("IRQ {irq}"),
                message: format!("decoding {}: {e}", maps::IRQ_STATS),
            })?;
            acc.count += s.count;
            acc.total_ns += s.total_ns;
            acc.max_ns = acc.max_ns.max(s.max_ns);
            for (a, b) in acc.log2_ns.iter_mut().zip(s.log2_ns) {
                *a += b;
            }
        }
        Ok(acc)
    }

    /// Handler-time statistics per watched IRQ that ran, merged over CPUs.
    pub fn irq_stats(&self) -> Result<BTreeMap<u32, IrqStats>> {
        let mut out = BTreeMap::new();
        for &irq in &self.watched {
            let acc = self.irq_stats_of(irq)?;
            if acc.count > 0 {
                out.insert(irq, acc);
            }
        }
        Ok(out)
    }

    /// Records dropped so far because the ring buffer was full.
    pub fn lost(&self) -> Result<u64> {
        Ok(self
            .lost
            .get(&0, 0)
            .map_err(map_err(maps::LOST))?
            .iter()
            .sum())
    }

    /// Bytes mapped and unmapped through any IOMMU domain (`iommu:map/unmap`).
    pub fn iommu_bytes(&self) -> Result<(u64, u64)> {
        let get = |i: u32| -> Result<u64> {
            Ok(self
                .iommu_bytes
                .get(&i, 0)
                .map_err(map_err(maps::IOMMU_BYTES))?
                .iter()
                .sum())
        };
        Ok((get(0)?, get(1)?))
    }

    /// The ring buffer, for [`RingReader`] (once). Must be called inside a
    /// tokio runtime; `None` outside one or if the fd cannot be registered.
    pub fn take_ring(&mut self) -> Option<RingReader> {
        tokio::runtime::Handle::try_current().ok()?;
        let ring = self.ring.take()?;
        // SAFETY: the RingBuf owns its map fd (an OwnedFd in MapData), keeps
        // it open until it is dropped, and as_raw_fd always returns that fd;
        // the AsyncFd owns the RingBuf, so the fd outlives the registration.
        let fd =
            unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }.ok()?;
        Some(RingReader::new(fd))
    }
}

/// Slot `irq` of a per-CPU counter map, summed over CPUs.
pub(super) fn summed(map: &PerCpuArray<MapData, u64>, name: &'static str, irq: u32) -> Result<u64> {
    Ok(map.get(&irq, 0).map_err(map_err(name))?.iter().sum())
}
