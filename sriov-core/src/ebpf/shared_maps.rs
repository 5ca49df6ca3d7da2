//! The maps user space shares with the probes besides the ring buffer: the
//! IRQ counters ([`IrqMaps`] for the IRQ ledger), the kernel's record of VF
//! creation times ([`Births`]), and the BTF facts the programs need.
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use sriov_ebpf::{CONF_PCI_DEV_DEV, MAX_WATCHED_IRQS, VfKey, maps, record::IrqStats};

use super::probes::{Probes, map_err, summed};
use crate::{
    Error, Result,
    events::irqs::{IrqMaps, IrqReading},
};

/// Tell the programs what the kernel's BTF says (`PROBE_CONF`): where
/// `struct pci_dev` keeps its `struct device`, for the PF's name in the VF
/// hooks. Without BTF the slot stays 0 and the programs fall back.
pub(super) fn configure(ebpf: &mut Ebpf) -> Result<()> {
    let off = crate::policy::btf::Btf::from_sys_fs()
        .and_then(|b| b.member_offset("pci_dev", "dev"))
        .unwrap_or(0);
    let map = ebpf.map_mut(maps::PROBE_CONF).ok_or(Error::EbpfMissing {
        kind: "map",
        name: maps::PROBE_CONF,
    })?;
    let mut conf: Array<&mut MapData, u32> =
        Array::try_from(map).map_err(map_err(maps::PROBE_CONF))?;
    conf.set(CONF_PCI_DEV_DEV, off, 0)
        .map_err(map_err(maps::PROBE_CONF))
}

/// When each VF was created, as the kernel side recorded it.
pub struct Births {
    pub(super) map: aya::maps::HashMap<MapData, [u8; VfKey::SIZE], u64>,
}

impl std::fmt::Debug for Births {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Births(VF_BIRTHS)")
    }
}

impl crate::events::Births for Births {
    fn created_ns(&self, pf: &str, index: u32) -> Option<u64> {
        let k = VfKey::new(pf, index);
        let mut key = [0u8; VfKey::SIZE];
        key[..k.pf.len()].copy_from_slice(&k.pf);
        key[k.pf.len()..k.pf.len() + 4].copy_from_slice(&index.to_le_bytes());
        self.map.get(&key, 0).ok()
    }
}

/// Zeroes on every CPU, for a per-CPU map slot.
fn zeros<T: aya::Pod + Copy>(zero: T) -> Result<aya::maps::PerCpuValues<T>> {
    const POSSIBLE: &str = "/sys/devices/system/cpu/possible";
    let n = aya::util::nr_cpus().map_err(|(_, source)| Error::Sysfs {
        op: "read",
        path: POSSIBLE.into(),
        source,
    })?;
    aya::maps::PerCpuValues::try_from(vec![zero; n]).map_err(|source| Error::Sysfs {
        op: "read",
        path: POSSIBLE.into(),
        source,
    })
}

impl IrqMaps for Probes {
    fn read(&self, irq: u32) -> Result<IrqReading> {
        Ok(IrqReading {
            count: summed(&self.irq_counts, maps::IRQ_COUNTS, irq)?,
            vfio: summed(&self.vfio_irq_counts, maps::VFIO_IRQ_COUNTS, irq)?,
            stats: self.irq_stats_of(irq)?,
        })
    }

    fn counting(&self, irq: u32) -> Result<bool> {
        Ok(self.watch.get(&irq, 0).map_err(map_err(maps::WATCH_IRQS))? != 0)
    }

    fn claim(&mut self, irq: u32) -> Result<()> {
        if irq >= MAX_WATCHED_IRQS {
            return Err(Error::Unsupported {
                device: format!("IRQ {irq}"),
                message: format!("only IRQ numbers below {MAX_WATCHED_IRQS} can be watched"),
            });
        }
        // not watched now (never, released, or freed by the kernel): no
        // handler writes these slots while they are zeroed
        self.irq_counts
            .set(irq, zeros(0u64)?, 0)
            .map_err(map_err(maps::IRQ_COUNTS))?;
        self.vfio_irq_counts
            .set(irq, zeros(0u64)?, 0)
            .map_err(map_err(maps::VFIO_IRQ_COUNTS))?;
        self.irq_stats
            .set(irq, zeros([0u8; IrqStats::SIZE])?, 0)
            .map_err(map_err(maps::IRQ_STATS))?;
        self.watch_irq(irq)
    }

    fn release(&mut self, irq: u32) -> Result<()> {
        if irq < MAX_WATCHED_IRQS {
            self.watch
                .set(irq, 0, 0)
                .map_err(map_err(maps::WATCH_IRQS))?;
        }
        self.watched.remove(&irq);
        Ok(())
    }
}
