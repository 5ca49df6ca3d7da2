//! Per-IRQ interrupt counting in the kernel (`irq:irq_handler_entry`).
use std::collections::BTreeMap;

use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuHashMap},
    programs::TracePoint,
};
use sriov_ebpf::{WATCHED, maps, programs};

use super::{TRACEFS_HINT, object};
use crate::{Error, Result};

/// Counts interrupts per IRQ number for a watched set of IRQs (typically a
/// VF's `msi_irqs`). Counting happens in per-CPU kernel counters; nothing is
/// sent to user space per interrupt. Detaches on drop.
pub struct IrqCounter {
    // keeps the programs and links alive
    _ebpf: Ebpf,
    watch: HashMap<MapData, u32, u8>,
    counts: PerCpuHashMap<MapData, u32, u64>,
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Error {
    move |e| Error::EbpfMap {
        map,
        source: Box::new(e),
    }
}

impl IrqCounter {
    /// Load the object and attach to `irq:irq_handler_entry`.
    pub fn attach() -> Result<Self> {
        let mut ebpf = Ebpf::load(object()).map_err(|e| Error::EbpfLoad(Box::new(e)))?;
        let prog_err = |e| Error::EbpfProgram {
            program: programs::IRQ_HANDLER_ENTRY,
            source: Box::new(e),
            hint: TRACEFS_HINT,
        };
        let prog: &mut TracePoint = ebpf
            .program_mut(programs::IRQ_HANDLER_ENTRY)
            .ok_or(Error::EbpfMissing {
                kind: "program",
                name: programs::IRQ_HANDLER_ENTRY,
            })?
            .try_into()
            .map_err(prog_err)?;
        prog.load().map_err(prog_err)?;
        prog.attach("irq", "irq_handler_entry").map_err(prog_err)?;
        let watch = ebpf.take_map(maps::WATCH_IRQS).ok_or(Error::EbpfMissing {
            kind: "map",
            name: maps::WATCH_IRQS,
        })?;
        let watch = HashMap::try_from(watch).map_err(map_err(maps::WATCH_IRQS))?;
        let counts = ebpf.take_map(maps::IRQ_COUNTS).ok_or(Error::EbpfMissing {
            kind: "map",
            name: maps::IRQ_COUNTS,
        })?;
        let counts = PerCpuHashMap::try_from(counts).map_err(map_err(maps::IRQ_COUNTS))?;
        Ok(Self {
            _ebpf: ebpf,
            watch,
            counts,
        })
    }

    /// Start counting `irq`.
    pub fn watch(&mut self, irq: u32) -> Result<()> {
        self.watch
            .insert(irq, WATCHED, 0)
            .map_err(map_err(maps::WATCH_IRQS))
    }

    /// Stop counting `irq` (its count so far is kept).
    pub fn unwatch(&mut self, irq: u32) -> Result<()> {
        match self.watch.remove(&irq) {
            Ok(()) => Ok(()),
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(maps::WATCH_IRQS)(e)),
        }
    }

    /// Interrupts counted so far, per IRQ, summed over CPUs.
    pub fn counts(&self) -> Result<BTreeMap<u32, u64>> {
        let mut out = BTreeMap::new();
        for item in self.counts.iter() {
            let (irq, per_cpu) = item.map_err(map_err(maps::IRQ_COUNTS))?;
            out.insert(irq, per_cpu.iter().sum());
        }
        Ok(out)
    }
}
