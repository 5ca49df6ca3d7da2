//! Discovery again at every tick of a live view, whole only when something
//! it reads may have moved.
//!
//! A whole scan reads several files per VF (its `virtfnN` link, IOMMU
//! group, netdev): with 4096 VFs that is over 10,000 system calls, each
//! second. Most ticks nothing of it has changed. Before each scan [`Rescan`]
//! reads the signs of a change instead, a few directory listings and one
//! file per PF:
//!
//! - `/sys/bus/pci/devices`, each entry with the inode number the listing
//!   gives: a device added or removed, or removed and created again under
//!   the same name (kernfs numbers are not reused within a boot), as VFs
//!   are when `sriov_numvfs` goes to 0 and back between two ticks;
//! - the directory of each PCI driver: a bind or an unbind;
//! - `/sys/class/net`, with inode numbers: a netdev added, removed or
//!   renamed;
//! - each PF's `sriov_numvfs`.
//!
//! When they are the same as before the last whole scan, the tick keeps
//! that scan's devices and reads again only what changes without a sign:
//! each PF's link state and the VFs' rtnetlink view (MAC, VLAN, trust,
//! rates, counters). A whole scan runs anyway after an event that may have
//! changed what the signs do not show ([`Rescan::mark_dirty`]) and at
//! least every [`FULL_EVERY`].
use std::{
    io,
    path::Path,
    time::{Duration, Instant},
};

use super::{
    CLASS_NET, Inventory, PCI_DEVICES, PCI_DRIVERS, discover, fill_netlink, operstate, pci_drivers,
    read_opt,
};
use crate::{Error, Result, host::Host};

/// A whole scan at least this often, whatever the signs say.
pub const FULL_EVERY: Duration = Duration::from_secs(60);

/// What a tick reads to tell whether the last whole scan still holds,
/// each a listing's bytes ([`Host::dir_sign`]).
#[derive(Debug, PartialEq, Eq)]
struct Signs {
    /// `/sys/bus/pci/devices`.
    devices: Vec<u8>,
    /// Each PCI driver's name, then its directory (the devices bound to it).
    drivers: Vec<u8>,
    /// `/sys/class/net`; `None` without that directory.
    netdevs: Option<Vec<u8>>,
    /// Every listing was read whole. When one was not (a driver directory
    /// that could not be listed), the signs cannot tell that nothing
    /// changed: the scan is whole.
    complete: bool,
}

impl Signs {
    fn read(host: &dyn Host) -> Result<Self> {
        let devices_dir = Path::new(PCI_DEVICES);
        let mut devices = Vec::new();
        host.dir_sign(devices_dir, &mut devices)
            .map_err(|e| Error::sysfs("listing", devices_dir, e))?;
        let mut complete = true;
        let mut drivers = Vec::new();
        match pci_drivers(host) {
            Ok(names) => {
                for d in names {
                    drivers.extend_from_slice(d.as_bytes());
                    drivers.push(b'/');
                    match host.dir_sign(&Path::new(PCI_DRIVERS).join(&d), &mut drivers) {
                        // a driver unregistered meanwhile: its absence is the sign
                        Err(e) if e.kind() != io::ErrorKind::NotFound => complete = false,
                        _ => {}
                    }
                    drivers.push(0);
                }
            }
            Err(_) => complete = false,
        }
        let mut netdevs = Vec::new();
        let netdevs = match host.dir_sign(Path::new(CLASS_NET), &mut netdevs) {
            Ok(()) => Some(netdevs),
            Err(e) => {
                complete &= e.kind() == io::ErrorKind::NotFound;
                None
            }
        };
        Ok(Self {
            devices,
            drivers,
            netdevs,
            complete,
        })
    }
}

/// The last whole scan, what the signs were before it, and when.
#[derive(Debug)]
struct Last {
    signs: Signs,
    inventory: Inventory,
    at: Instant,
}

/// Discovery for a view that scans again at every tick (see the module's
/// documentation).
#[derive(Debug, Default)]
pub struct Rescan {
    last: Option<Last>,
    dirty: bool,
}

impl Rescan {
    /// Something the signs do not show may have changed (a VF's MSI
    /// vectors, a `driver_override`): the next scan is whole.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// An inventory as [`discover`] makes it, and whether it comes from a
    /// whole scan (`true`) or from the last one with its link states and
    /// rtnetlink view read again (`false`).
    pub fn scan(&mut self, host: &dyn Host, now: Instant) -> Result<(Inventory, bool)> {
        // read before the scan: a change during it shows at the next tick
        let signs = Signs::read(host)?;
        if let Some(last) = &self.last
            && !self.dirty
            && signs.complete
            && last.signs == signs
            && now.saturating_duration_since(last.at) < FULL_EVERY
            && let Some(inv) = light(host, &last.inventory)?
        {
            return Ok((inv, false));
        }
        let inventory = discover(host)?;
        self.last = Some(Last {
            signs,
            inventory: inventory.clone(),
            at: now,
        });
        self.dirty = false;
        Ok((inventory, true))
    }
}

/// `last` with each PF's link state and the VFs' rtnetlink view read
/// again; `None` when a PF's `sriov_numvfs` is not what `last` says (a
/// whole scan is due).
fn light(host: &dyn Host, last: &Inventory) -> Result<Option<Inventory>> {
    let mut inv = last.clone();
    inv.warnings.clear();
    for pf in &mut inv.pfs {
        let numvfs = read_opt(
            host,
            &Path::new(PCI_DEVICES).join(&pf.bdf).join("sriov_numvfs"),
        )?;
        if numvfs.and_then(|n| n.parse::<u32>().ok()) != Some(pf.num_vfs) {
            return Ok(None);
        }
        pf.link = operstate(host, &pf.bdf, pf.netdev.as_deref())?;
        for vf in &mut pf.vfs {
            vf.config = None;
            vf.owner = None;
        }
    }
    fill_netlink(host, &mut inv);
    Ok(Some(inv))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        fixture::{self, PfSpec},
        host::{VfAttr, VfNetlink, counted::Counted, fake::FakeKernel},
    };

    fn pf_spec() -> PfSpec {
        PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 3)
    }

    fn kernel() -> (tempfile::TempDir, FakeKernel) {
        let dir = tempfile::tempdir().unwrap();
        let k = FakeKernel::new(dir.path(), vec![pf_spec()]).unwrap();
        (dir, k)
    }

    /// A scan that is light, and equal to a whole one.
    fn assert_light(r: &mut Rescan, host: &dyn Host, now: Instant) {
        let (inv, whole) = r.scan(host, now).unwrap();
        assert!(!whole, "a whole scan where nothing moved");
        assert_eq!(inv.pfs, discover(host).unwrap().pfs);
    }

    fn assert_whole(r: &mut Rescan, host: &dyn Host, now: Instant, why: &str) -> Inventory {
        let (inv, whole) = r.scan(host, now).unwrap();
        assert!(whole, "a light scan after {why}");
        assert_eq!(inv.pfs, discover(host).unwrap().pfs, "after {why}");
        inv
    }

    #[test]
    fn a_tick_where_nothing_moved_reads_no_vf_file_and_shows_the_same() {
        let (_d, k) = kernel();
        let host = Counted::new(&k);
        let mut r = Rescan::default();
        let t = Instant::now();
        let (first, whole) = r.scan(&host, t).unwrap();
        assert!(whole);
        let (reads, links, _) = host.take();
        assert!(links >= 3 * 2, "{links} readlinks in a whole scan");
        let (second, whole) = r.scan(&host, t + Duration::from_secs(1)).unwrap();
        assert!(!whole);
        // sriov_numvfs and operstate of the one PF; no readlink
        let (reads_light, links_light, _) = host.take();
        assert!(reads_light < reads, "{reads_light} reads vs {reads}");
        assert_eq!((reads_light, links_light), (2, 0));
        assert_eq!(second.pfs, first.pfs);
        assert_eq!(second.pfs, discover(&k).unwrap().pfs);
    }

    #[test]
    fn what_changes_without_a_sign_is_read_again_at_each_tick() {
        let (_d, k) = kernel();
        let mut r = Rescan::default();
        let t = Instant::now();
        assert_whole(&mut r, &k, t, "nothing (the first scan)");
        let mac = "02:00:00:00:00:07".parse().unwrap();
        k.set_vf("eth0", 1, &[VfAttr::Mac(mac)]).unwrap();
        std::fs::write(
            k.root()
                .join("sys/bus/pci/devices/0000:01:00.0/net/eth0/operstate"),
            "down\n",
        )
        .unwrap();
        let (inv, whole) = r.scan(&k, t + Duration::from_secs(1)).unwrap();
        assert!(!whole);
        assert_eq!(inv.pfs[0].link.as_deref(), Some("down"));
        assert_eq!(inv.pfs[0].vfs[1].config.as_ref().unwrap().mac, Some(mac));
        assert_eq!(inv.pfs, discover(&k).unwrap().pfs);
    }

    #[test]
    fn each_sign_of_a_change_makes_the_next_scan_whole() {
        let (d, k) = kernel();
        let root = d.path();
        let spec = pf_spec();
        let vf1 = spec.vf_bdf(1);
        let mut r = Rescan::default();
        let mut t = Instant::now();
        let mut step = |r: &mut Rescan, why: &str| {
            t += Duration::from_secs(1);
            let inv = assert_whole(r, &k, t, why);
            t += Duration::from_secs(1);
            assert_light(r, &k, t);
            inv
        };
        step(&mut r, "nothing (the first scan)");
        // an unbind, a bind
        fixture::unbind(root, vf1).unwrap();
        step(&mut r, "an unbind");
        fixture::bind(root, vf1, "vfio-pci").unwrap();
        let inv = step(&mut r, "a bind");
        assert_eq!(inv.pfs[0].vfs[1].driver.as_deref(), Some("vfio-pci"));
        // a netdev renamed
        let class = root.join("sys/class/net");
        std::fs::rename(class.join("eth0v2"), class.join("renamed0")).unwrap();
        step(&mut r, "a netdev renamed");
        // fewer VFs, more VFs
        k.write(
            Path::new("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"),
            "0",
        )
        .unwrap();
        let inv = step(&mut r, "sriov_numvfs 0");
        assert!(inv.pfs[0].vfs.is_empty());
        k.write(
            Path::new("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"),
            "3",
        )
        .unwrap();
        let inv = step(&mut r, "sriov_numvfs 3");
        assert_eq!(inv.pfs[0].vfs.len(), 3);
        // VF 1 removed and created again under the same name between two
        // ticks, in another IOMMU group: only its entry's inode tells
        let devices = root.join("sys/bus/pci/devices");
        let target = std::fs::read_link(devices.join(vf1.to_string())).unwrap();
        std::os::unix::fs::symlink(&target, devices.join("new")).unwrap();
        std::fs::rename(devices.join("new"), devices.join(vf1.to_string())).unwrap();
        let group = devices.join(vf1.to_string()).join("iommu_group");
        std::fs::remove_file(&group).unwrap();
        std::os::unix::fs::symlink("../../../../sys/kernel/iommu_groups/999", &group).unwrap();
        let inv = step(&mut r, "a VF created again");
        assert_eq!(inv.pfs[0].vfs[1].iommu_group, Some(999));
        // an event said so
        r.mark_dirty();
        step(&mut r, "mark_dirty");
    }

    #[test]
    fn a_driver_directory_that_cannot_be_listed_makes_every_scan_whole() {
        let (d, k) = kernel();
        let mut r = Rescan::default();
        let t = Instant::now();
        assert_whole(&mut r, &k, t, "nothing (the first scan)");
        assert_light(&mut r, &k, t + Duration::from_secs(1));
        // not a directory: listing it fails (ENOTDIR), so a bind to it
        // could not be seen
        let drivers = d.path().join("sys/bus/pci/drivers");
        std::fs::rename(drivers.join("vfio-pci"), drivers.join("elsewhere")).unwrap();
        std::fs::write(drivers.join("vfio-pci"), "").unwrap();
        for s in 2..4 {
            let (_, whole) = r.scan(&k, t + Duration::from_secs(s)).unwrap();
            assert!(
                whole,
                "a light scan at {s} s with an unreadable driver directory"
            );
        }
    }

    #[test]
    fn a_changed_count_seen_by_the_light_tick_or_the_time_makes_it_whole() {
        let (d, k) = kernel();
        let mut r = Rescan::default();
        let t = Instant::now();
        assert_whole(&mut r, &k, t, "nothing (the first scan)");
        // sriov_numvfs alone changed (a write under way): no sign but the count
        std::fs::write(
            d.path()
                .join("sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"),
            "2\n",
        )
        .unwrap();
        let (inv, whole) = r.scan(&k, t + Duration::from_secs(1)).unwrap();
        assert!(whole);
        assert_eq!(inv.pfs[0].num_vfs, 2);
        assert_light(&mut r, &k, t + Duration::from_secs(2));
        assert_whole(
            &mut r,
            &k,
            t + FULL_EVERY + Duration::from_secs(1),
            "FULL_EVERY",
        );
    }
}
