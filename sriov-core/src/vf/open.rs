//! Opening a VF through VFIO, with checks that say what to do when it
//! cannot work: the VF must exist, be an 82576 VF, have an IOMMU group,
//! be bound to vfio-pci, share its group only with devices VFIO can take,
//! and `/dev/vfio/<group>` must be openable. The sysfs checks go through
//! [`Host`], so fixture trees can test them.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioOps};

use super::mailbox::VfLabel;
use crate::{
    Error, Result,
    discover::{PCI_DEVICES, link_name},
    host::Host,
};

/// Intel's vendor id and the 82576 VF's device id.
pub const INTEL: &str = "0x8086";
pub const I82576_VF: &str = "0x10ca";
/// Drivers a device may have while another device of its IOMMU group is
/// used through VFIO (VFIO's viability rule, with bridges).
pub const VIABLE_DRIVERS: &[&str] = &["vfio-pci", "pci-stub", "pcieport"];

/// A VF that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfTarget {
    pub label: VfLabel,
    pub group: u32,
    /// `/sys/bus/pci/devices/<bdf>`.
    pub sysfs: PathBuf,
}

fn dev(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

/// The errno of a vfio-ioctls error, where it kept one.
pub fn vfio_errno(e: &VfioError) -> i32 {
    match e {
        VfioError::OpenContainer(io) | VfioError::OpenGroup(io, _) => {
            io.raw_os_error().unwrap_or(libc::EIO)
        }
        VfioError::ContainerSetIOMMU(s)
        | VfioError::GroupGetDeviceFD(s)
        | VfioError::SetDeviceAttr(s)
        | VfioError::VfioDeviceGetInfo(s)
        | VfioError::VfioDeviceGetRegionInfo(s)
        | VfioError::IommuDmaMap(s)
        | VfioError::IommuDmaUnmap(s)
        | VfioError::VfioDeviceFeature(s) => s.errno(),
        VfioError::GroupViable => libc::EPERM,
        VfioError::VfioType1V2 | VfioError::VfioExtension | VfioError::VfioInvalidType => {
            libc::ENOTSUP
        }
        _ => libc::EIO,
    }
}

/// Devices of `bdf`'s IOMMU group other than itself whose driver keeps the
/// group from being viable, as `bdf (driver)`.
pub fn group_blockers(host: &dyn Host, bdf: &str) -> Vec<String> {
    let devices = dev(bdf).join("iommu_group").join("devices");
    host.list_dir(&devices)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o != bdf)
        .filter_map(|o| {
            let d = link_name(host, &dev(&o).join("driver"))?;
            (!VIABLE_DRIVERS.contains(&d.as_str())).then(|| format!("{o} ({d})"))
        })
        .collect()
}

/// Check that `bdf` can be opened through VFIO; nothing is written.
pub fn preflight(host: &dyn Host, bdf: &str) -> Result<VfTarget> {
    let d = dev(bdf);
    if !host.exists(&d) {
        return Err(Error::DeviceVanished {
            bdf: bdf.to_string(),
            what: format!("no {}", d.display()),
            errno: libc::ENODEV,
        });
    }
    let id = |f: &str| host.read(&d.join(f)).map(|s| s.trim().to_string()).ok();
    let (vendor, device) = (id("vendor"), id("device"));
    if vendor.as_deref() != Some(INTEL) || device.as_deref() != Some(I82576_VF) {
        return Err(Error::Unsupported {
            device: bdf.to_string(),
            message: format!(
                "is {}:{}, not an Intel 82576 VF ({INTEL}:{I82576_VF}), the only device this driver knows",
                vendor.as_deref().unwrap_or("?"),
                device.as_deref().unwrap_or("?")
            ),
        });
    }
    let pf_bdf = link_name(host, &d.join("physfn")).ok_or_else(|| Error::Unsupported {
        device: bdf.to_string(),
        message: "has no physfn link: not an SR-IOV VF".into(),
    })?;
    let pf_dir = dev(&pf_bdf);
    let index = host
        .list_dir(&pf_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.strip_prefix("virtfn"))
        .filter_map(|n| n.parse::<u32>().ok())
        .find(|n| link_name(host, &pf_dir.join(format!("virtfn{n}"))).as_deref() == Some(bdf))
        .ok_or_else(|| Error::DeviceVanished {
            bdf: bdf.to_string(),
            what: format!("{pf_bdf} no longer lists it as a virtfn"),
            errno: libc::ENODEV,
        })?;
    let pf = host
        .list_dir(&pf_dir.join("net"))
        .ok()
        .and_then(|v| v.into_iter().next())
        .unwrap_or(pf_bdf);
    let label = VfLabel {
        bdf: bdf.to_string(),
        pf,
        index,
    };

    let group = host
        .read_link(&d.join("iommu_group"))
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
        .ok_or_else(|| Error::NoIommu {
            bdf: bdf.to_string(),
            errno: libc::ENOENT,
        })?;

    let driver = link_name(host, &d.join("driver"));
    if driver.as_deref() != Some("vfio-pci") {
        return Err(Error::VfNotVfio {
            bdf: bdf.to_string(),
            pf: label.pf,
            index,
            driver: driver.unwrap_or_else(|| "no driver".into()),
            errno: libc::ENODEV,
        });
    }

    let blockers = group_blockers(host, bdf);
    if !blockers.is_empty() {
        return Err(Error::VfioGroupNotViable {
            bdf: bdf.to_string(),
            group,
            others: blockers.join(", "),
            errno: libc::EPERM,
        });
    }
    Ok(VfTarget {
        label,
        group,
        sysfs: d,
    })
}

const ROOT_HINT: &str = "run as root, or give your user the VFIO nodes (chown /dev/vfio/N) and enough RLIMIT_MEMLOCK for the DMA memory";

/// Turn a vfio-ioctls error into one that says what to do.
pub fn map_vfio_error(host: &dyn Host, t: &VfTarget, op: &'static str, e: VfioError) -> Error {
    let bdf = t.label.bdf.clone();
    let errno = vfio_errno(&e);
    let vfio = |hint: &'static str| Error::Vfio {
        bdf: bdf.clone(),
        op,
        errno,
        message: e.to_string(),
        hint,
    };
    match &e {
        VfioError::OpenContainer(_) | VfioError::OpenGroup(..)
            if errno == libc::EACCES || errno == libc::EPERM =>
        {
            let path = match &e {
                VfioError::OpenGroup(_, id) => format!("/dev/vfio/{id}"),
                _ => "/dev/vfio/vfio".to_string(),
            };
            Error::VfioPermission {
                bdf: bdf.clone(),
                path,
                errno,
                hint: ROOT_HINT,
            }
        }
        VfioError::OpenContainer(_) if errno == libc::ENOENT => {
            vfio("; there is no /dev/vfio/vfio: load the VFIO modules (modprobe vfio-pci)")
        }
        VfioError::OpenGroup(..) if errno == libc::ENOENT || errno == libc::ENODEV => {
            Error::DeviceVanished {
                bdf: bdf.clone(),
                what: format!("/dev/vfio/{} is gone", t.group),
                errno,
            }
        }
        VfioError::OpenGroup(..) if errno == libc::EBUSY => vfio(
            "; another process (a VM, another `sriov vf ...`) has this IOMMU group open; stop it first",
        ),
        VfioError::GroupViable => Error::VfioGroupNotViable {
            bdf: bdf.clone(),
            group: t.group,
            others: {
                let b = group_blockers(host, &bdf);
                if b.is_empty() {
                    "(none seen in sysfs; a device may have been bound meanwhile)".into()
                } else {
                    b.join(", ")
                }
            },
            errno,
        },
        VfioError::GroupGetDeviceFD(_) if errno == libc::ENODEV => Error::DeviceVanished {
            bdf: bdf.clone(),
            what: "VFIO_GROUP_GET_DEVICE_FD: no such device".into(),
            errno,
        },
        VfioError::GroupGetDeviceFD(_) if errno == libc::EBUSY => {
            vfio("; the device is already open (another process drives it)")
        }
        VfioError::VfioType1V2 | VfioError::VfioExtension | VfioError::ContainerSetIOMMU(_) => {
            vfio("; VFIO needs a type1 IOMMU: boot with intel_iommu=on and load vfio_iommu_type1")
        }
        _ => vfio(""),
    }
}

/// An open VFIO device and its container. Dropping it closes the device
/// fd, then the group and the container.
pub struct VfioHandle {
    pub device: VfioDevice,
    pub container: Arc<VfioContainer>,
    pub group: u32,
}

impl VfioHandle {
    /// Open the container and the device (the live system: `t.sysfs` is
    /// read by vfio-ioctls itself).
    pub fn open(host: &dyn Host, t: &VfTarget) -> Result<Self> {
        let container = VfioContainer::new(None)
            .map_err(|e| map_vfio_error(host, t, "opening /dev/vfio/vfio", e))?;
        let container = Arc::new(container);
        let device = VfioDevice::new(&t.sysfs, container.clone() as Arc<dyn VfioOps>, false)
            .map_err(|e| map_vfio_error(host, t, "opening the device through VFIO", e))?;
        Ok(Self {
            device,
            container,
            group: t.group,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::{fs, os::unix::fs::symlink, path::Path};

    use super::*;
    use crate::{
        fixture::{self, PfSpec},
        host::System,
    };

    const PF: &str = "0000:01:00.0";
    const VF1: &str = "0000:01:10.2";

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fixture::add_pf(d.path(), &PfSpec::i82576(PF.parse().unwrap(), "eth0", 2)).unwrap();
        d
    }

    fn to_vfio(root: &Path, bdf: &str) {
        fixture::remove_netdevs(root, bdf.parse().unwrap()).unwrap();
        fixture::bind(root, bdf.parse().unwrap(), "vfio-pci").unwrap();
    }

    fn group_dir(root: &Path, bdf: &str) -> PathBuf {
        let link = root.join(fixture::DEVICES).join(bdf).join("iommu_group");
        root.join(fixture::IOMMU_GROUPS)
            .join(fs::read_link(link).unwrap().file_name().unwrap())
    }

    #[test]
    fn a_vf_on_igbvf_is_refused_with_the_bind_command() {
        let d = tree();
        let e = preflight(&System::fixture(d.path()), VF1).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        let s = e.to_string();
        assert!(s.contains("`sriov vf bind eth0 1 vfio-pci`"), "{s}");
        assert!(s.contains("bound to igbvf"), "{s}");
        assert!(s.contains(VF1), "{s}");
        // unbound: says so
        fixture::unbind(d.path(), VF1.parse().unwrap()).unwrap();
        let s = preflight(&System::fixture(d.path()), VF1)
            .unwrap_err()
            .to_string();
        assert!(s.contains("bound to no driver"), "{s}");
    }

    #[test]
    fn a_vf_on_vfio_pci_passes_with_its_label_and_group() {
        let d = tree();
        to_vfio(d.path(), VF1);
        // the fixture's iommu_group link resolves, as in sysfs
        assert!(group_dir(d.path(), VF1).join("devices").is_dir());
        assert!(
            d.path()
                .join(fixture::DEVICES)
                .join(VF1)
                .join("iommu_group/devices")
                .is_dir()
        );
        let t = preflight(&System::fixture(d.path()), VF1).unwrap();
        assert_eq!(
            t.label,
            VfLabel {
                bdf: VF1.into(),
                pf: "eth0".into(),
                index: 1
            }
        );
        assert_eq!(t.sysfs, Path::new("/sys/bus/pci/devices").join(VF1));
        let g: u32 = group_dir(d.path(), VF1)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(t.group, g);
    }

    #[test]
    fn no_iommu_group_says_to_boot_with_the_iommu_on() {
        let d = tree();
        to_vfio(d.path(), VF1);
        fs::remove_file(
            d.path()
                .join(fixture::DEVICES)
                .join(VF1)
                .join("iommu_group"),
        )
        .unwrap();
        let e = preflight(&System::fixture(d.path()), VF1).unwrap_err();
        assert!(matches!(e, Error::NoIommu { .. }), "{e}");
        assert!(e.to_string().contains("intel_iommu=on"), "{e}");
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn a_group_shared_with_a_host_driver_is_not_viable_and_lists_it() {
        let d = tree();
        to_vfio(d.path(), VF1);
        let g = group_dir(d.path(), VF1);
        let devices = g.join("devices");
        // the VF itself, a bridge (fine) and VF 0 on igbvf (not fine)
        let vf0 = "0000:01:10.0";
        for b in [VF1, vf0] {
            symlink(
                format!("../../../../devices/pci0000:00/{b}"),
                devices.join(b),
            )
            .unwrap();
        }
        let e = preflight(&System::fixture(d.path()), VF1).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, Error::VfioGroupNotViable { .. }), "{s}");
        assert!(s.contains("0000:01:10.0 (igbvf)"), "{s}");
        assert!(!s.contains("0000:01:10.2 ("), "not itself: {s}");
        // VF 0 to vfio-pci too: viable
        to_vfio(d.path(), vf0);
        preflight(&System::fixture(d.path()), VF1).unwrap();
    }

    #[test]
    fn a_missing_device_vanished_and_other_devices_are_unsupported() {
        let d = tree();
        let h = System::fixture(d.path());
        let e = preflight(&h, "0000:01:11.0").unwrap_err();
        assert!(matches!(e, Error::DeviceVanished { .. }), "{e}");
        let e = preflight(&h, PF).unwrap_err().to_string();
        assert!(e.contains("not an Intel 82576 VF"), "{e}");
    }

    #[test]
    fn vfio_open_errors_are_mapped_to_what_to_do() {
        let d = tree();
        to_vfio(d.path(), VF1);
        let h = System::fixture(d.path());
        let t = preflight(&h, VF1).unwrap();
        let io = |n| std::io::Error::from_raw_os_error(n);
        let e = map_vfio_error(
            &h,
            &t,
            "x",
            VfioError::OpenGroup(io(libc::EACCES), "42".into()),
        );
        assert!(matches!(e, Error::VfioPermission { .. }), "{e}");
        assert!(e.to_string().contains("/dev/vfio/42"), "{e}");
        assert!(e.to_string().contains("run as root"), "{e}");
        assert_eq!(e.errno(), Some(libc::EACCES));
        let e = map_vfio_error(&h, &t, "x", VfioError::OpenContainer(io(libc::ENOENT)));
        assert!(e.to_string().contains("modprobe vfio-pci"), "{e}");
        let e = map_vfio_error(
            &h,
            &t,
            "x",
            VfioError::OpenGroup(io(libc::EBUSY), "42".into()),
        );
        assert!(e.to_string().contains("another process"), "{e}");
        assert_eq!(e.errno(), Some(libc::EBUSY));
        let e = map_vfio_error(
            &h,
            &t,
            "x",
            VfioError::GroupGetDeviceFD(vmm_sys_util::errno::Error::new(libc::ENODEV)),
        );
        assert!(matches!(e, Error::DeviceVanished { .. }), "{e}");
        let e = map_vfio_error(&h, &t, "x", VfioError::GroupViable);
        assert!(matches!(e, Error::VfioGroupNotViable { .. }), "{e}");
        let e = map_vfio_error(&h, &t, "x", VfioError::VfioDeviceEnableIrq);
        assert_eq!(e.errno(), Some(libc::EIO));
        assert!(e.to_string().contains(VF1), "{e}");
    }
}
