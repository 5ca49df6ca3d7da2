//! Sysfs fixture trees: a directory laid out like the parts of `/sys` that
//! discovery reads, for tests, benchmarks and `--sysfs-root`.
//!
//! ```text
//! ROOT/sys/bus/pci/devices/<bdf>/{vendor,device,uevent,sriov_totalvfs,sriov_numvfs,numa_node,
//!                                 driver -> ../../drivers/<drv>, virtfnN -> ../<vf>,
//!                                 physfn -> ../<pf>, iommu_group -> ..., net/<if>/...}
//!   (each ROOT/sys/bus/pci/devices/<bdf> is a symlink to ROOT/sys/devices/pci0000:00/<bdf>,
//!    as in the real sysfs)
//! ROOT/sys/class/net/<if> -> ../../devices/pci0000:00/<bdf>/net/<if>   (with device -> the PCI device)
//! ROOT/sys/bus/pci/drivers/<drv>/
//! ROOT/sys/kernel/iommu_groups/<n>/devices/
//! ```
use std::{
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use crate::types::Bdf;

pub const DEVICES: &str = "sys/bus/pci/devices";
pub const DRIVERS: &str = "sys/bus/pci/drivers";
pub const IOMMU_GROUPS: &str = "sys/kernel/iommu_groups";
pub const PCI_ROOT: &str = "sys/devices/pci0000:00";
pub const CLASS_NET: &str = "sys/class/net";

/// One PF to create.
#[derive(Debug, Clone)]
pub struct PfSpec {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub driver: String,
    pub netdev: String,
    pub total_vfs: u32,
    pub num_vfs: u32,
    pub numa_node: i32,
    /// Device id of its VFs and the driver they bind to.
    pub vf_device: u16,
    pub vf_driver: Option<String>,
}

impl PfSpec {
    /// An Intel 82576 (igb) PF at `bdf` with `netdev`, 7 VFs possible.
    pub fn i82576(bdf: Bdf, netdev: &str, num_vfs: u32) -> Self {
        Self {
            bdf,
            vendor: 0x8086,
            device: 0x10c9,
            driver: "igb".into(),
            netdev: netdev.into(),
            total_vfs: 7,
            num_vfs,
            numa_node: 0,
            vf_device: 0x10ca,
            vf_driver: Some("igbvf".into()),
        }
    }

    /// The BDF of VF `i` (82576 layout: offset 0x80, stride 2 in routing ids).
    pub fn vf_bdf(&self, i: u32) -> Bdf {
        vf_bdf(self.bdf, i)
    }
}

/// The 82576's First VF Offset and VF Stride.
pub const VF_OFFSET: u32 = 0x80;
pub const VF_STRIDE: u32 = 2;

/// Routing-id arithmetic for VF `i` of `pf` (offset 0x80, stride 2); PFs
/// are placed so that their VFs fit on the bus range.
pub fn vf_bdf(pf: Bdf, i: u32) -> Bdf {
    pf.vf(VF_OFFSET, VF_STRIDE, i).unwrap_or(pf)
}

/// Netdev name of VF `i` of a PF whose netdev is `pf_netdev`.
pub fn vf_netdev(pf_netdev: &str, i: u32) -> String {
    format!("{pf_netdev}v{i}")
}

/// The device's directory through its bus link.
fn dev_dir(root: &Path, bdf: Bdf) -> PathBuf {
    root.join(DEVICES).join(bdf.to_string())
}

fn real_dir(root: &Path, bdf: Bdf) -> PathBuf {
    root.join(PCI_ROOT).join(bdf.to_string())
}

/// Create a device directory and its `/sys/bus/pci/devices` link.
fn create_device(root: &Path, bdf: Bdf) -> io::Result<PathBuf> {
    fs::create_dir_all(real_dir(root, bdf))?;
    let link = dev_dir(root, bdf);
    if fs::symlink_metadata(&link).is_err() {
        symlink(format!("../../../devices/pci0000:00/{bdf}"), &link)?;
    }
    Ok(link)
}

/// Remove a device (what the kernel does to a VF on `sriov_numvfs` 0).
pub fn remove_device(root: &Path, bdf: Bdf) -> io::Result<()> {
    remove_netdevs(root, bdf)?;
    unbind(root, bdf)?;
    let _ = fs::remove_file(dev_dir(root, bdf));
    match fs::remove_dir_all(real_dir(root, bdf)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn w(path: PathBuf, value: impl AsRef<str>) -> io::Result<()> {
    fs::write(path, format!("{}\n", value.as_ref()))
}

/// Write the device's `uevent` as the kernel shows it.
fn write_uevent(root: &Path, bdf: Bdf, driver: Option<&str>) -> io::Result<()> {
    let d = dev_dir(root, bdf);
    let id = |f: &str| -> io::Result<String> {
        Ok(fs::read_to_string(d.join(f))?
            .trim()
            .trim_start_matches("0x")
            .to_ascii_uppercase())
    };
    let mut s = String::new();
    if let Some(drv) = driver {
        s.push_str(&format!("DRIVER={drv}\n"));
    }
    s.push_str(&format!(
        "PCI_CLASS=20000\nPCI_ID={}:{}\nPCI_SLOT_NAME={bdf}\n",
        id("vendor")?,
        id("device")?
    ));
    fs::write(d.join("uevent"), s)
}

/// Point `dev/driver` at `drivers/<driver>` (creating the driver dir).
pub fn bind(root: &Path, bdf: Bdf, driver: &str) -> io::Result<()> {
    fs::create_dir_all(root.join(DRIVERS).join(driver))?;
    let link = dev_dir(root, bdf).join("driver");
    unbind(root, bdf)?;
    symlink(format!("../../../bus/pci/drivers/{driver}"), link)?;
    // the driver's directory lists its devices, as in sysfs
    symlink(
        format!("../../../../devices/pci0000:00/{bdf}"),
        root.join(DRIVERS).join(driver).join(bdf.to_string()),
    )?;
    write_uevent(root, bdf, Some(driver))
}

pub fn unbind(root: &Path, bdf: Bdf) -> io::Result<()> {
    let link = dev_dir(root, bdf).join("driver");
    if let Ok(target) = fs::read_link(&link)
        && let Some(driver) = target.file_name()
    {
        let _ = fs::remove_file(root.join(DRIVERS).join(driver).join(bdf.to_string()));
    }
    match fs::remove_file(link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => write_uevent(root, bdf, None),
    }
}

/// Give a device a netdev (what its driver does on probe).
pub fn add_netdev(root: &Path, bdf: Bdf, ifname: &str, mac: &str) -> io::Result<()> {
    let n = dev_dir(root, bdf).join("net").join(ifname);
    fs::create_dir_all(&n)?;
    w(n.join("operstate"), "up")?;
    w(n.join("carrier"), "1")?;
    w(n.join("address"), mac)?;
    let _ = fs::remove_file(n.join("device"));
    symlink(format!("../../../{bdf}"), n.join("device"))?;
    let class = root.join(CLASS_NET);
    fs::create_dir_all(&class)?;
    let _ = fs::remove_file(class.join(ifname));
    symlink(
        format!("../../devices/pci0000:00/{bdf}/net/{ifname}"),
        class.join(ifname),
    )
}

/// Remove a device's netdevs (what its driver does on unbind).
pub fn remove_netdevs(root: &Path, bdf: Bdf) -> io::Result<()> {
    let net = real_dir(root, bdf).join("net");
    let Ok(rd) = fs::read_dir(&net) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let _ = fs::remove_file(root.join(CLASS_NET).join(e.file_name()));
    }
    fs::remove_dir_all(net)
}

/// Create the base directories (empty bus).
pub fn init(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root.join(DEVICES))?;
    fs::create_dir_all(root.join(DRIVERS))?;
    fs::create_dir_all(root.join(IOMMU_GROUPS))?;
    fs::create_dir_all(root.join(PCI_ROOT))?;
    fs::create_dir_all(root.join(CLASS_NET))?;
    fs::write(root.join("sys/bus/pci/drivers_probe"), "")?;
    Ok(())
}

/// Create a PF and its `num_vfs` VFs.
pub fn add_pf(root: &Path, pf: &PfSpec) -> io::Result<()> {
    init(root)?;
    let d = create_device(root, pf.bdf)?;
    w(d.join("vendor"), format!("0x{:04x}", pf.vendor))?;
    w(d.join("device"), format!("0x{:04x}", pf.device))?;
    w(d.join("sriov_totalvfs"), pf.total_vfs.to_string())?;
    w(d.join("sriov_numvfs"), "0")?;
    w(d.join("sriov_vf_device"), format!("{:04x}", pf.vf_device))?;
    w(d.join("sriov_offset"), VF_OFFSET.to_string())?;
    w(d.join("sriov_stride"), VF_STRIDE.to_string())?;
    w(d.join("sriov_drivers_autoprobe"), "1")?;
    w(d.join("numa_node"), pf.numa_node.to_string())?;
    w(d.join("driver_override"), "(null)")?;
    bind(root, pf.bdf, &pf.driver)?;
    add_netdev(root, pf.bdf, &pf.netdev, "52:54:00:12:34:56")?;
    for d in pf.vf_driver.iter().chain(["vfio-pci".to_string()].iter()) {
        fs::create_dir_all(root.join(DRIVERS).join(d))?;
    }
    set_num_vfs(root, pf, pf.num_vfs)
}

/// What the kernel does on `echo N > sriov_numvfs` (from 0, or to 0).
pub fn set_num_vfs(root: &Path, pf: &PfSpec, n: u32) -> io::Result<()> {
    let d = dev_dir(root, pf.bdf);
    let old: u32 = fs::read_to_string(d.join("sriov_numvfs"))?
        .trim()
        .parse()
        .unwrap_or(0);
    for i in n..old {
        remove_device(root, pf.vf_bdf(i))?;
        let _ = fs::remove_file(d.join(format!("virtfn{i}")));
    }
    let autoprobe = fs::read_to_string(d.join("sriov_drivers_autoprobe"))
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    for i in old..n {
        let vf = pf.vf_bdf(i);
        let vd = create_device(root, vf)?;
        w(vd.join("vendor"), format!("0x{:04x}", pf.vendor))?;
        w(vd.join("device"), format!("0x{:04x}", pf.vf_device))?;
        w(vd.join("numa_node"), pf.numa_node.to_string())?;
        w(vd.join("driver_override"), "(null)")?;
        write_uevent(root, vf, None)?;
        symlink(format!("../{}", pf.bdf), vd.join("physfn"))?;
        symlink(format!("../{vf}"), d.join(format!("virtfn{i}")))?;
        let group =
            100 + u32::from(vf.bus) * 256 + u32::from(vf.device) * 8 + u32::from(vf.function);
        let g = root.join(IOMMU_GROUPS).join(group.to_string());
        fs::create_dir_all(g.join("devices"))?;
        // the link is in sys/devices/pci0000:00/<vf>: four levels below ROOT
        symlink(
            format!("../../../../{IOMMU_GROUPS}/{group}"),
            vd.join("iommu_group"),
        )?;
        if autoprobe && let Some(drv) = &pf.vf_driver {
            bind(root, vf, drv)?;
            add_netdev(root, vf, &vf_netdev(&pf.netdev, i), "00:00:00:00:00:00")?;
        }
    }
    w(d.join("sriov_numvfs"), n.to_string())
}

/// A tree of `pfs` 82576-like PFs with `vfs` VFs each (for benchmarks):
/// PF `p` at `0000:(p+1):00.0`, netdev `enp{p}`, `total_vfs` = max(vfs, 7).
pub fn generate(root: &Path, pfs: u32, vfs: u32) -> io::Result<Vec<PfSpec>> {
    let mut specs = Vec::new();
    for p in 0..pfs {
        let bdf = Bdf {
            domain: 0,
            bus: u8::try_from(p * 4 + 1)
                .map_err(|_| io::Error::other("too many PFs for one domain"))?,
            device: 0,
            function: 0,
        };
        let mut spec = PfSpec::i82576(bdf, &format!("enp{p}"), vfs);
        spec.total_vfs = vfs.max(7);
        add_pf(root, &spec)?;
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vf_routing_ids_follow_offset_and_stride() {
        let pf: Bdf = "0000:01:00.0".parse().unwrap();
        assert_eq!(vf_bdf(pf, 0).to_string(), "0000:01:10.0");
        assert_eq!(vf_bdf(pf, 1).to_string(), "0000:01:10.2");
        assert_eq!(vf_bdf(pf, 4).to_string(), "0000:01:11.0");
        // 256 VFs spill into the next buses
        assert_eq!(vf_bdf(pf, 255).to_string(), "0000:03:0f.6");
    }
}
