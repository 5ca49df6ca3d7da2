//! PF/VF discovery from sysfs, with the PF driver's view of each VF from
//! rtnetlink (IFLA_VF_INFO) when it is available.
use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    host::{Host, VfNetInfo},
};

mod counters;
mod rescan;
pub use counters::{fill_counters_from_netdevs, netdev_counters};
pub use rescan::{FULL_EVERY, Rescan};

/// Version of the discovery JSON (`sriov list --json`); see docs/discovery.md.
pub const SCHEMA: &str = "sriov-top.discovery/v1";
pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";
pub const PCI_DRIVERS: &str = "/sys/bus/pci/drivers";
pub const CLASS_NET: &str = "/sys/class/net";

/// Netdevs by the BDF of their PCI device, from `/sys/class/net/*/device`:
/// one readlink per netdev instead of a directory listing per device.
/// `None` when the tree has no `/sys/class/net` (then each device's `net`
/// directory is listed).
fn netdevs_by_bdf(host: &dyn Host) -> Option<std::collections::HashMap<String, Vec<String>>> {
    let names = host.list_dir(Path::new(CLASS_NET)).ok()?;
    let resolve = |names: &[String]| -> Vec<(String, String)> {
        names
            .iter()
            .filter_map(|n| {
                Some((
                    link_name(host, &Path::new(CLASS_NET).join(n).join("device"))?,
                    n.clone(),
                ))
            })
            .collect()
    };
    // one readlink per netdev: split over two threads for large hosts
    let pairs = if names.len() > 256 {
        let (a, b) = names.split_at(names.len() / 2);
        std::thread::scope(|s| {
            let h = s.spawn(|| resolve(b));
            let mut v = resolve(a);
            v.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            v
        })
    } else {
        resolve(&names)
    };
    let mut map: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for (bdf, n) in pairs {
        map.entry(bdf).or_default().push(n);
    }
    Some(map)
}

/// Drivers by BDF, from the driver directories of `/sys/bus/pci/drivers`
/// (each lists the devices bound to it): a listing per driver instead of a
/// readlink per device.
fn drivers_by_bdf(host: &dyn Host) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    for d in host.list_dir(Path::new(PCI_DRIVERS)).unwrap_or_default() {
        for e in host
            .list_dir(&Path::new(PCI_DRIVERS).join(&d))
            .unwrap_or_default()
        {
            if e.parse::<crate::types::Bdf>().is_ok() {
                map.insert(e, d.clone());
            }
        }
    }
    map
}

/// Netdevs and drivers of devices, gathered once per scan.
struct DeviceMaps {
    netdevs: Option<std::collections::HashMap<String, Vec<String>>>,
    drivers: std::collections::HashMap<String, String>,
}

impl DeviceMaps {
    fn read(host: &dyn Host) -> Self {
        Self {
            netdevs: netdevs_by_bdf(host),
            drivers: drivers_by_bdf(host),
        }
    }

    fn netdev(&self, host: &dyn Host, bdf: &str) -> Option<String> {
        match &self.netdevs {
            Some(map) => map.get(bdf).and_then(|v| v.iter().min().cloned()),
            None => first_entry(host, &Path::new(PCI_DEVICES).join(bdf).join("net")),
        }
    }

    /// The map's answer, checked with a readlink when the map has none (a
    /// driver directory that could not be listed, or a bind since).
    fn driver(&self, host: &dyn Host, bdf: &str) -> Option<String> {
        self.drivers
            .get(bdf)
            .cloned()
            .or_else(|| link_name(host, &Path::new(PCI_DEVICES).join(bdf).join("driver")))
    }
}

/// Everything discovery found.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub schema: &'static str,
    /// "ok", or why VF settings from rtnetlink are absent.
    pub netlink: String,
    pub pfs: Vec<Pf>,
    /// Devices that vanished during the scan, netlink errors, ...
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pf {
    pub bdf: String,
    pub vendor_id: String,
    pub device_id: String,
    pub vendor_name: Option<String>,
    pub device_name: Option<String>,
    pub driver: Option<String>,
    pub netdev: Option<String>,
    /// The netdev's operstate ("up", "down", ...).
    pub link: Option<String>,
    pub total_vfs: u32,
    pub num_vfs: u32,
    pub numa_node: Option<i32>,
    pub vfs: Vec<Vf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vf {
    pub index: u32,
    pub bdf: String,
    pub device_id: Option<String>,
    pub driver: Option<String>,
    pub netdev: Option<String>,
    pub iommu_group: Option<u32>,
    /// The PF driver's view (MAC, VLAN, spoofchk, trust, rates, stats).
    pub config: Option<VfNetInfo>,
    /// Who holds it (processes, VM, container, pod, netns); `None` when
    /// not looked up or nobody does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::owner::VfOwner>,
}

/// Which device a user named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pf(usize),
    Vf(usize, usize),
}

impl Inventory {
    /// Find a PF or VF by BDF (with or without domain) or netdev name.
    pub fn resolve(&self, name: &str) -> Option<Target> {
        let bdf = name
            .parse::<crate::types::Bdf>()
            .ok()
            .map(|b| b.to_string());
        let is =
            |b: &str, n: &Option<String>| Some(b) == bdf.as_deref() || n.as_deref() == Some(name);
        for (p, pf) in self.pfs.iter().enumerate() {
            if is(&pf.bdf, &pf.netdev) {
                return Some(Target::Pf(p));
            }
            for (v, vf) in pf.vfs.iter().enumerate() {
                if is(&vf.bdf, &vf.netdev) {
                    return Some(Target::Vf(p, v));
                }
            }
        }
        None
    }

    /// The PF a user named (a VF name resolves to its PF), or a clear error.
    pub fn pf(&self, name: &str) -> Result<&Pf> {
        match self.resolve(name) {
            Some(Target::Pf(p)) | Some(Target::Vf(p, _)) => Ok(&self.pfs[p]),
            None => Err(Error::DeviceNotFound {
                device: name.to_string(),
                hint: self.known_pfs_hint(),
            }),
        }
    }

    pub fn known_pfs_hint(&self) -> String {
        if self.pfs.is_empty() {
            "; this system has no SR-IOV capable PCI device (no sriov_totalvfs in /sys/bus/pci/devices)".to_string()
        } else {
            let names: Vec<String> = self
                .pfs
                .iter()
                .map(|p| match &p.netdev {
                    Some(n) => format!("{} ({n})", p.bdf),
                    None => p.bdf.clone(),
                })
                .collect();
            format!("; SR-IOV PFs here: {}", names.join(", "))
        }
    }
}

fn p(parts: &[&str]) -> PathBuf {
    parts.iter().collect()
}

/// Read a sysfs attribute; `Ok(None)` if it does not exist (vanished).
pub fn read_opt(host: &dyn Host, path: &Path) -> Result<Option<String>> {
    match host.read(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV) => {
            Ok(None)
        }
        Err(e) => Err(Error::sysfs("reading", path, e)),
    }
}

/// The last component of a symlink's target (`driver`, `physfn`, ...).
pub fn link_name(host: &dyn Host, path: &Path) -> Option<String> {
    host.read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(String::from)
}

fn first_entry(host: &dyn Host, path: &Path) -> Option<String> {
    host.list_dir(path).ok()?.into_iter().next()
}

fn vendor_name(id: u16) -> Option<String> {
    pci_ids::Vendors::iter()
        .find(|v| v.id() == id)
        .map(|v| v.name().to_string())
}

fn parse_hex_id(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Scan sysfs for SR-IOV PFs and their VFs.
pub fn discover(host: &dyn Host) -> Result<Inventory> {
    let devices = Path::new(PCI_DEVICES);
    let names = host
        .list_dir(devices)
        .map_err(|e| Error::sysfs("listing", devices, e))?;
    let mut inv = Inventory {
        schema: SCHEMA,
        netlink: String::new(),
        pfs: Vec::new(),
        warnings: Vec::new(),
    };
    let netdevs = DeviceMaps::read(host);
    let netdevs = &netdevs;
    let pf_names = find_pfs(host, names);
    // PFs are independent: scan them on up to as many threads as there are
    // CPUs, in order-preserving chunks
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pf_names.len())
        .max(1);
    let chunk = pf_names.len().div_ceil(workers).max(1);
    type PfResult = Result<(Option<Pf>, Vec<String>)>;
    let scan = |names: &[String]| -> Vec<PfResult> {
        names
            .iter()
            .map(|name| {
                let mut w = Vec::new();
                let pf = read_pf(host, netdevs, name, &devices.join(name), &mut w)?;
                if pf.is_none() {
                    w.push(format!("PF {name} vanished during the scan"));
                }
                Ok((pf, w))
            })
            .collect()
    };
    // one worker: this thread (no thread to start for a host with one PF)
    let results: Vec<Vec<PfResult>> = if workers == 1 {
        vec![scan(&pf_names)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = pf_names
                .chunks(chunk)
                .map(|names| s.spawn(move || scan(names)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    for r in results.into_iter().flatten() {
        let (pf, w) = r?;
        inv.pfs.extend(pf);
        inv.warnings.extend(w);
    }
    fill_netlink(host, &mut inv);
    Ok(inv)
}

/// Each VF's `config` from rtnetlink (IFLA_VF_INFO of its PF's netdev),
/// and `inv.netlink`; a PF whose query fails is a warning.
fn fill_netlink(host: &dyn Host, inv: &mut Inventory) {
    inv.netlink = match host.netlink() {
        None => "absent: no rtnetlink for this sysfs root (fixture tree); VF MAC/VLAN/spoofchk/trust/rates/stats not shown".into(),
        Some(nl) => {
            for pf in &mut inv.pfs {
                let Some(ifname) = pf.netdev.clone() else { continue };
                match nl.vf_info(&ifname) {
                    Ok(infos) => {
                        for info in infos {
                            if let Some(vf) = pf.vfs.iter_mut().find(|v| v.index == info.vf) {
                                vf.config = Some(info);
                            }
                        }
                    }
                    Err(e) => inv.warnings.push(e.to_string()),
                }
            }
            "ok".into()
        }
    };
}

/// The operstate of PF `bdf`'s netdev.
fn operstate(host: &dyn Host, bdf: &str, netdev: Option<&str>) -> Result<Option<String>> {
    match netdev {
        Some(n) => read_opt(host, &p(&[PCI_DEVICES, bdf, "net", n, "operstate"])),
        None => Ok(None),
    }
}

/// The PFs among the devices `names` (sorted): those with
/// `sriov_totalvfs`. VFs have no SR-IOV capability of their own, and a
/// PF's VFs come after it in that order (their routing IDs are the PF's
/// plus First VF Offset and VF Stride steps), so the VFs of the PFs found
/// so far are not asked: one stat per device that is not a VF, instead of
/// one per device. A PF whose routing IDs cannot be read has its VFs asked.
fn find_pfs(host: &dyn Host, names: Vec<String>) -> Vec<String> {
    let devices = Path::new(PCI_DEVICES);
    let mut vfs = std::collections::HashSet::new();
    let mut pfs = Vec::new();
    for n in names {
        if vfs.remove(n.as_str()) || !host.exists(&devices.join(&n).join("sriov_totalvfs")) {
            continue;
        }
        vfs.extend(vf_bdfs(host, &n));
        pfs.push(n);
    }
    pfs
}

/// The BDFs of PF `pf`'s VFs as its routing IDs place them (what the
/// kernel's `virtfnN` links point to); none when they cannot be read.
fn vf_bdfs(host: &dyn Host, pf: &str) -> Vec<String> {
    let dir = Path::new(PCI_DEVICES).join(pf);
    let num = |f: &str| -> Option<u32> { read_opt(host, &dir.join(f)).ok()??.parse().ok() };
    let (Ok(bdf), Some(offset), Some(stride), Some(n)) = (
        pf.parse::<crate::types::Bdf>(),
        num("sriov_offset"),
        num("sriov_stride"),
        num("sriov_numvfs"),
    ) else {
        return Vec::new();
    };
    (0..n)
        .map_while(|i| bdf.vf(offset, stride, i))
        .map(|b| b.to_string())
        .collect()
}

fn read_pf(
    host: &dyn Host,
    netdevs: &DeviceMaps,
    bdf: &str,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<Pf>> {
    let (Some(vendor), Some(device), Some(total), Some(num)) = (
        read_opt(host, &dir.join("vendor"))?,
        read_opt(host, &dir.join("device"))?,
        read_opt(host, &dir.join("sriov_totalvfs"))?,
        read_opt(host, &dir.join("sriov_numvfs"))?,
    ) else {
        return Ok(None);
    };
    let (vid, did) = (parse_hex_id(&vendor), parse_hex_id(&device));
    let pci_dev = vid
        .zip(did)
        .and_then(|(v, d)| pci_ids::Device::from_vid_pid(v, d));
    let netdev = netdevs.netdev(host, bdf);
    let vf_device = read_opt(host, &dir.join("sriov_vf_device"))?
        .map(|d| format!("0x{}", d.trim_start_matches("0x")));
    let link = operstate(host, bdf, netdev.as_deref())?;
    let total_vfs = total.parse().unwrap_or(0);
    let num_vfs = num.parse().unwrap_or(0);
    let mut vfs = Vec::new();
    let mut links: Vec<(u32, String)> = host
        .list_dir(dir)
        .map_err(|e| Error::sysfs("listing", dir, e))?
        .into_iter()
        .filter_map(|n| Some((n.strip_prefix("virtfn")?.parse().ok()?, n)))
        .collect();
    links.sort();
    for (index, entry) in links {
        let Some(vf_bdf) = link_name(host, &dir.join(&entry)) else {
            warnings.push(format!("VF {index} of {bdf} vanished during the scan"));
            continue;
        };
        match read_vf(host, netdevs, index, &vf_bdf, vf_device.as_deref()) {
            Some(vf) => vfs.push(vf),
            None => warnings.push(format!(
                "VF {index} ({vf_bdf}) of {bdf} vanished during the scan"
            )),
        }
    }
    Ok(Some(Pf {
        bdf: bdf.to_string(),
        vendor_name: pci_dev
            .map(|d| d.vendor().name().to_string())
            .or_else(|| vid.and_then(vendor_name)),
        device_name: pci_dev.map(|d| d.name().to_string()),
        vendor_id: vendor,
        device_id: device,
        driver: netdevs.driver(host, bdf),
        netdev,
        link,
        total_vfs,
        num_vfs,
        numa_node: read_opt(host, &dir.join("numa_node"))?
            .and_then(|s| s.parse().ok())
            .filter(|n: &i32| *n >= 0),
        vfs,
    }))
}

/// Does the device still exist? `/sys/bus/pci/devices/<bdf>` is a symlink
/// in sysfs; a fixture may use a plain directory (readlink says EINVAL).
fn device_exists(host: &dyn Host, dir: &Path) -> bool {
    match host.read_link(dir) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() == Some(libc::EINVAL),
    }
}

/// A VF in one readlink (its IOMMU group) besides the PF's `virtfnN` link:
/// driver and netdev come from the per-scan maps, the device id from the
/// PF's `sriov_vf_device`. Without a group (no IOMMU, or the VF vanished),
/// one more readlink tells which.
fn read_vf(
    host: &dyn Host,
    netdevs: &DeviceMaps,
    index: u32,
    bdf: &str,
    vf_device: Option<&str>,
) -> Option<Vf> {
    let dir = Path::new(PCI_DEVICES).join(bdf);
    let iommu_group = link_name(host, &dir.join("iommu_group"));
    if iommu_group.is_none() && !device_exists(host, &dir) {
        return None;
    }
    Some(Vf {
        index,
        bdf: bdf.to_string(),
        device_id: vf_device.map(String::from),
        driver: netdevs.driver(host, bdf),
        netdev: netdevs.netdev(host, bdf),
        iommu_group: iommu_group.and_then(|g| g.parse().ok()),
        config: None,
        owner: None,
    })
}

/// Drivers registered on the PCI bus (`/sys/bus/pci/drivers`).
pub fn pci_drivers(host: &dyn Host) -> Result<Vec<String>> {
    host.list_dir(Path::new(PCI_DRIVERS))
        .map_err(|e| Error::sysfs("listing", PCI_DRIVERS, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::host::System;

    #[test]
    fn only_devices_that_are_not_a_found_pfs_vfs_are_asked_whether_they_are_pfs() {
        let root = tempfile::tempdir().unwrap();
        crate::fixture::generate(root.path(), 3, 20).unwrap();
        // a device that is no PF nor VF, between them
        std::fs::create_dir_all(root.path().join("sys/bus/pci/devices/0000:02:00.0")).unwrap();
        let fixture = System::fixture(root.path());
        let host = crate::host::counted::Counted::new(&fixture);
        let inv = discover(&host).unwrap();
        assert_eq!(inv.pfs.len(), 3);
        assert!(inv.pfs.iter().all(|pf| pf.vfs.len() == 20));
        let (_, _, exists) = host.take();
        assert_eq!(exists, 3 + 1, "one check per PF and per other device");
        // without routing IDs every device is asked, with the same result
        for pf in &inv.pfs {
            let d = root.path().join("sys/bus/pci/devices").join(&pf.bdf);
            std::fs::remove_file(d.join("sriov_offset")).unwrap();
        }
        let again = discover(&host).unwrap();
        assert_eq!(again.pfs, inv.pfs);
        assert_eq!(host.take().2, 3 + 1 + 3 * 20);
    }
}
