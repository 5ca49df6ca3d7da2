//! The maps user space shares with the probes besides the ring buffer: the
//! IRQ counters ([`IrqMaps`] for the IRQ ledger), the kernel's record of VF
//! creation times ([`Births`]), and the BTF facts the programs need.
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use std::collections::BTreeMap;

use sriov_ebpf::{
    CONF_DENTRY_NAME, CONF_FILE_DENTRY, CONF_IGB_ADAPTER_PDEV, CONF_IGB_HW_BACK, CONF_KN_NAME,
    CONF_KN_PARENT, CONF_KOF_KN, CONF_MM_EXE_FILE, CONF_NETDEV_NAME, CONF_PCI_DEV_DEV,
    CONF_TASK_MM, CONF_VFIO_PCI_PDEV, ConfigKey, ConfigWindow, MAX_WATCHED_IRQS, PROBE_CONF_LEN,
    VfKey, maps, record::IrqStats,
};

use super::probes::{Probes, map_err, summed};
use crate::{
    Error, Result,
    events::irqs::{IrqMaps, IrqReading},
    policy::btf::Btf,
};

/// The struct members the probes follow, by `PROBE_CONF` slot: (module
/// whose BTF has the struct, or `None` for the kernel's; a path of (struct,
/// member) steps whose offsets add up).
type Member = (
    u32,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
);
const PROBE_MEMBERS: [Member; PROBE_CONF_LEN as usize] = [
    (CONF_PCI_DEV_DEV, None, &[("pci_dev", "dev")]),
    (CONF_IGB_HW_BACK, Some("igb"), &[("e1000_hw", "back")]),
    (
        CONF_IGB_ADAPTER_PDEV,
        Some("igb"),
        &[("igb_adapter", "pdev")],
    ),
    (
        CONF_VFIO_PCI_PDEV,
        Some("vfio_pci_core"),
        &[("vfio_pci_core_device", "pdev")],
    ),
    (CONF_TASK_MM, None, &[("task_struct", "mm")]),
    (CONF_MM_EXE_FILE, None, &[("mm_struct", "exe_file")]),
    (
        CONF_FILE_DENTRY,
        None,
        &[("file", "f_path"), ("path", "dentry")],
    ),
    (
        CONF_DENTRY_NAME,
        None,
        &[("dentry", "d_name"), ("qstr", "name")],
    ),
    (CONF_NETDEV_NAME, None, &[("net_device", "name")]),
    (CONF_KOF_KN, None, &[("kernfs_open_file", "kn")]),
    (CONF_KN_NAME, None, &[("kernfs_node", "name")]),
    (CONF_KN_PARENT, None, &[("kernfs_node", "parent")]),
];

/// The `PROBE_CONF` values (offset + 1; 0 where unknown) from the kernel's
/// BTF and `module(name)`'s, and what could not be found (for a warning).
pub fn probe_conf(
    vmlinux: Option<&Btf>,
    module: impl Fn(&str) -> Result<Btf>,
) -> ([u32; PROBE_CONF_LEN as usize], Vec<String>) {
    let mut out = [0u32; PROBE_CONF_LEN as usize];
    let mut missing = Vec::new();
    let mut modules: BTreeMap<&str, std::result::Result<Btf, String>> = BTreeMap::new();
    for (slot, m, path) in PROBE_MEMBERS {
        let btf = match (m, vmlinux) {
            (_, None) => Err("no kernel BTF".to_string()),
            (None, Some(v)) => Ok(v),
            (Some(name), Some(_)) => modules
                .entry(name)
                .or_insert_with(|| module(name).map_err(|e| e.to_string()))
                .as_ref()
                .map_err(Clone::clone),
        };
        let found = btf.and_then(|b| {
            path.iter().try_fold(0u32, |acc, (st, mem)| {
                b.member_offset(st, mem)
                    .map(|o| acc + o)
                    .map_err(|e| e.to_string())
            })
        });
        match found {
            Ok(off) => out[slot as usize] = off + 1,
            Err(e) => {
                let what: Vec<String> = path.iter().map(|(s, m)| format!("{s}.{m}")).collect();
                missing.push(format!("{}: {e}", what.join(" + ")));
            }
        }
    }
    (out, missing)
}

/// Tell the programs what the kernel's BTF (and igb's and
/// vfio-pci-core's) says (`PROBE_CONF`): where the structs they follow keep
/// the members they read. A member not found leaves its slot 0 and the
/// field the programs read through it empty; those are returned.
pub(super) fn configure(ebpf: &mut Ebpf) -> Result<Vec<String>> {
    let vmlinux = Btf::from_sys_fs().ok();
    let (values, missing) = probe_conf(vmlinux.as_ref(), |m| {
        let base = vmlinux.as_ref().ok_or_else(|| Error::Unsupported {
            device: "kernel BTF".into(),
            message: "no /sys/kernel/btf/vmlinux".into(),
        })?;
        base.with_module_file(&std::path::Path::new("/sys/kernel/btf").join(m))
    });
    let map = ebpf.map_mut(maps::PROBE_CONF).ok_or(Error::EbpfMissing {
        kind: "map",
        name: maps::PROBE_CONF,
    })?;
    let mut conf: Array<&mut MapData, u32> =
        Array::try_from(map).map_err(map_err(maps::PROBE_CONF))?;
    for (slot, v) in values.iter().enumerate() {
        conf.set(slot as u32, *v, 0)
            .map_err(map_err(maps::PROBE_CONF))?;
    }
    Ok(missing)
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

impl Probes {
    /// Config space accesses through VFIO counted in the kernel, per
    /// register ([`sriov_ebpf::ConfigKey`]): the total since the probes were
    /// loaded, and the latest access's time.
    pub fn config_totals(&self) -> Result<Vec<(ConfigKey, u64, u64)>> {
        let err = map_err(maps::CONFIG_WINDOWS);
        let map = self
            .ebpf()
            .map(maps::CONFIG_WINDOWS)
            .ok_or(Error::EbpfMissing {
                kind: "map",
                name: maps::CONFIG_WINDOWS,
            })?;
        let map: aya::maps::HashMap<&MapData, [u8; ConfigKey::SIZE], [u8; ConfigWindow::SIZE]> =
            aya::maps::HashMap::try_from(map).map_err(&err)?;
        let mut out = Vec::new();
        for kv in map.iter() {
            let (k, v) = kv.map_err(&err)?;
            let w = ConfigWindow::from_le_bytes(v);
            out.push((ConfigKey::from_le_bytes(k), w.total, w.last_ns));
        }
        Ok(out)
    }
}
