//! What the identity maps of a loaded policy should hold, read from the
//! system as it is now: which `/dev/vfio` node, IOMMU group, netdev, BDF
//! and sysfs file is which VF (or PF), which `new_id` would hand a VF to a
//! driver it may not have, and which VFs the driver the kernel picks by ID
//! (`drivers_probe`, autoprobe) may not have. [`super::enforce`] writes
//! them, adding what appeared and pruning what went away.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::maps::{HashMap, MapData};
use sriov_ebpf::policy::{self as k, NO_SLOT, SysfsFile, SysfsKey};

use super::{
    Policy, kernel_dev, modalias,
    rules::{Slots, copy_name},
};
use crate::{Result, discover::PCI_DEVICES, ebpf::probes::map_err};

/// What the identity maps should hold.
#[derive(Default)]
pub(super) struct Identity {
    pub group: BTreeMap<u32, u32>,
    pub group_id: BTreeMap<u32, u32>,
    pub netdev: BTreeMap<u32, u32>,
    pub bdf: BTreeMap<[u8; k::BDF_LEN], u32>,
    /// PFs with `numvfs` rules, by BDF.
    pub bdf_pf: BTreeMap<[u8; k::BDF_LEN], u32>,
    pub sysfs: BTreeMap<[u8; SysfsKey::SIZE], [u8; SysfsFile::SIZE]>,
    pub newid: BTreeMap<u64, u32>,
    /// VF slot → index in `drivers` of the ID-matching driver it may not
    /// have (`NO_SLOT`: not loaded, or unknown).
    pub probe_risk: BTreeMap<u32, u32>,
    /// PF slot → its `sriov_drivers_autoprobe` (1 when unreadable).
    pub autoprobe: BTreeMap<u32, u32>,
    /// VF slots with `allowed_drivers` that exist now → whether their
    /// `driver_override` names an allowed driver.
    pub overrides: BTreeMap<u32, u32>,
    /// The PCI drivers, in `DRIVER_NAMES` order.
    pub drivers: Vec<String>,
}

impl Identity {
    /// Guard the sysfs file at `path` (when it exists).
    fn guard(&mut self, path: &Path, f: SysfsFile) {
        if let Some(key) = sysfs_key(path) {
            self.sysfs.insert(key.encode(), f.encode());
        }
    }
}

/// The modules that match each VF's ID, remembered by BDF (a VF that is
/// gone now comes back with the same ID).
#[derive(Default)]
pub(super) struct Natural {
    aliases: Option<Vec<(String, String)>>,
    by_bdf: BTreeMap<String, Vec<String>>,
}

impl Natural {
    /// The modules the kernel could pick for `bdf` by ID; `None` when that
    /// cannot be told (no alias file, the VF never seen).
    fn modules(&mut self, bdf: &str) -> Option<&Vec<String>> {
        if !self.by_bdf.contains_key(bdf) {
            let alias =
                fs::read_to_string(Path::new(PCI_DEVICES).join(bdf).join("modalias")).ok()?;
            let aliases = self.aliases.get_or_insert_with(|| {
                let release = nix::sys::utsname::uname()
                    .map(|u| u.release().to_string_lossy().into_owned())
                    .unwrap_or_default();
                modalias::pci_aliases(&Path::new("/lib/modules").join(release))
            });
            if aliases.is_empty() {
                return None;
            }
            let m = modalias::matching(aliases, alias.trim());
            self.by_bdf.insert(bdf.to_string(), m);
        }
        self.by_bdf.get(bdf)
    }
}

/// The identity maps for `policy` as the system is now.
pub(super) fn wanted(
    policy: &Policy,
    vf_slots: &mut Slots,
    pf_slots: &mut Slots,
    natural: &mut Natural,
) -> Result<Identity> {
    let mut want = Identity {
        drivers: pci_drivers(),
        ..Default::default()
    };
    // PF slot → a VF slot at risk from autoprobe
    let mut pf_risk: BTreeMap<u32, u32> = BTreeMap::new();
    for p in &policy.pfs {
        let slot = pf_slots.slot(&p.bdf)?;
        pf_risk.entry(slot).or_insert(NO_SLOT);
        want.bdf_pf
            .insert(copy_name::<{ k::BDF_LEN }>(&p.bdf), slot);
    }
    for v in &policy.vfs {
        let slot = vf_slots.slot(&v.bdf)?;
        let pf = pf_slots.slot(&v.pf_bdf)?;
        let risk = pf_risk.entry(pf).or_insert(NO_SLOT);
        vf_identity(&mut want, &v.bdf, v.iommu_group, slot);
        let Some(allowed) = &v.rules.allowed_drivers else {
            continue;
        };
        let dir = Path::new(PCI_DEVICES).join(&v.bdf);
        newid_guards(&mut want, &dir, allowed, slot);
        let picked = natural.modules(&v.bdf).map_or(Some(None), |m| {
            m.iter()
                .find(|m| !allowed.iter().any(|a| modalias::same_name(m, a)))
                .map(Some)
        });
        if let Some(m) = picked {
            let d = m.and_then(|m| want.drivers.iter().position(|d| modalias::same_name(m, d)));
            want.probe_risk
                .insert(slot, d.map_or(NO_SLOT, |d| d as u32));
            if *risk == NO_SLOT {
                *risk = slot;
            }
        }
        if let Ok(o) = fs::read_to_string(dir.join("driver_override")) {
            let o = o.trim();
            let ok = o != "(null)" && allowed.iter().any(|a| a == o);
            want.overrides.insert(slot, u32::from(ok));
        }
    }
    let bdfs: BTreeMap<u32, String> = pf_slots
        .table()
        .into_iter()
        .enumerate()
        .map(|(i, b)| (i as u32, b))
        .collect();
    for (pf, risk) in pf_risk {
        let Some(bdf) = bdfs.get(&pf) else { continue };
        let dir = Path::new(PCI_DEVICES).join(bdf);
        let on = read_u32(&dir.join("sriov_drivers_autoprobe")).unwrap_or(1);
        want.autoprobe.insert(pf, u32::from(on != 0));
        let f = |kind| SysfsFile {
            kind,
            slot: pf,
            risk,
            probe: pf,
        };
        want.guard(&dir.join("sriov_numvfs"), f(k::SYSFS_NUMVFS));
        want.guard(&dir.join("sriov_drivers_autoprobe"), f(k::SYSFS_AUTOPROBE));
    }
    want.guard(
        Path::new("/sys/bus/pci/drivers_probe"),
        SysfsFile::new(k::SYSFS_DRIVERS_PROBE, 0),
    );
    // every driver's bind and new_id file
    let drivers = std::mem::take(&mut want.drivers);
    for (i, d) in drivers.iter().enumerate() {
        let dir = Path::new("/sys/bus/pci/drivers").join(d);
        want.guard(&dir.join("bind"), SysfsFile::new(k::SYSFS_BIND, i as u32));
        want.guard(
            &dir.join("new_id"),
            SysfsFile::new(k::SYSFS_NEW_ID, i as u32),
        );
    }
    want.drivers = drivers;
    Ok(want)
}

/// The VF's group node, group id, netdev, BDF and `driver_override`.
fn vf_identity(want: &mut Identity, bdf: &str, group_then: Option<u32>, slot: u32) {
    if let Some(g) = current_group(bdf).or(group_then) {
        want.group_id.insert(g, slot);
        if let Ok(m) = fs::metadata(format!("/dev/vfio/{g}")) {
            want.group.insert(kernel_dev(m.rdev()), slot);
        }
    }
    if let Some(ifname) = current_netdev(bdf)
        && let Some(ifindex) = read_u32(&PathBuf::from(format!("/sys/class/net/{ifname}/ifindex")))
    {
        want.netdev.insert(ifindex, slot);
    }
    want.bdf.insert(copy_name::<{ k::BDF_LEN }>(bdf), slot);
    let over = Path::new(PCI_DEVICES).join(bdf).join("driver_override");
    want.guard(&over, SysfsFile::new(k::SYSFS_DRIVER_OVERRIDE, slot));
}

/// A `new_id` for a driver the VF may not have, with the VF's ID or
/// `PCI_ANY_ID`, would let that driver take it.
fn newid_guards(want: &mut Identity, dir: &Path, allowed: &[String], slot: u32) {
    let Some(id) = pci_id(dir) else { return };
    for (i, d) in want.drivers.iter().enumerate() {
        if !allowed.contains(d) {
            let i = (i as u64) << 32;
            want.newid.insert(i | u64::from(id), slot);
            want.newid.insert(i | 0xffff_ffff, slot);
        }
    }
}

/// Make `map` hold exactly `want`.
pub(super) fn sync<K: aya::Pod + Ord, V: aya::Pod + PartialEq>(
    map: &mut HashMap<MapData, K, V>,
    want: &BTreeMap<K, V>,
    name: &'static str,
) -> Result<()> {
    let stale: Vec<K> = map
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| !want.contains_key(k))
        .collect();
    for (key, v) in want {
        if map.get(key, 0).ok().as_ref() != Some(v) {
            map.insert(key, v, 0).map_err(map_err(name))?;
        }
    }
    for key in stale {
        let _ = map.remove(&key);
    }
    Ok(())
}

fn sysfs_key(path: &Path) -> Option<SysfsKey> {
    let m = fs::metadata(path).ok()?;
    Some(SysfsKey {
        ino: m.ino(),
        dev: kernel_dev(m.dev()),
        _pad: 0,
    })
}

fn read_u32(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The VF's netdev now (names follow driver rebinds).
pub(super) fn current_netdev(bdf: &str) -> Option<String> {
    fs::read_dir(Path::new(PCI_DEVICES).join(bdf).join("net"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
}

pub(super) fn current_group(bdf: &str) -> Option<u32> {
    let l = fs::read_link(Path::new(PCI_DEVICES).join(bdf).join("iommu_group")).ok()?;
    l.file_name()?.to_str()?.parse().ok()
}

/// The major number of `/dev/vfio/<group>` nodes (`vfio` among the
/// character devices of `/proc/devices`), 0 when VFIO is not loaded.
pub(super) fn vfio_major() -> u32 {
    fs::read_to_string("/proc/devices")
        .map(|t| parse_vfio_major(&t))
        .unwrap_or(0)
}

fn parse_vfio_major(devices: &str) -> u32 {
    devices
        .lines()
        .skip_while(|l| !l.starts_with("Character devices"))
        .take_while(|l| !l.starts_with("Block devices"))
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let major = w.next()?.parse().ok()?;
            (w.next()? == "vfio" && w.next().is_none()).then_some(major)
        })
        .unwrap_or(0)
}

/// The address of kernel symbol `name` in `/proc/kallsyms` (`None` when
/// absent or hidden as 0).
pub(super) fn kernel_symbol(name: &str) -> Option<u64> {
    let text = fs::read("/proc/kallsyms").ok()?;
    find_symbol(&text, name)
}

/// `name`'s address in kallsyms text: a line `ADDR TYPE NAME` of the core
/// kernel (module symbols have a 4th field, `\t[module]`). The ~170,000
/// lines are searched for ` NAME\n` rather than split one by one: that took
/// 2.5 s of the policy's start in the TCG lab.
fn find_symbol(kallsyms: &[u8], name: &str) -> Option<u64> {
    let needle = format!(" {name}\n");
    let mut hits: Vec<usize> = memchr::memmem::find_iter(kallsyms, needle.as_bytes()).collect();
    // the last line may have no newline
    let bare = &needle.as_bytes()[..needle.len() - 1];
    if kallsyms.ends_with(bare) {
        hits.push(kallsyms.len() - bare.len());
    }
    hits.into_iter().find_map(|at| {
        let start = memchr::memrchr(b'\n', &kallsyms[..at]).map_or(0, |i| i + 1);
        let head = std::str::from_utf8(&kallsyms[start..at]).ok()?;
        let mut w = head.split(' ');
        let addr = u64::from_str_radix(w.next()?, 16).ok()?;
        let kind = w.next()?;
        (kind.len() == 1 && w.next().is_none() && addr != 0).then_some(addr)
    })
}

/// The PCI drivers, sorted, at most `MAX_DRIVER_NAMES`.
fn pci_drivers() -> Vec<String> {
    let mut drivers: Vec<String> = fs::read_dir("/sys/bus/pci/drivers")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    drivers.sort();
    drivers.truncate(k::MAX_DRIVER_NAMES as usize);
    drivers
}

/// `vendor << 16 | device` of the PCI device at `dir`.
fn pci_id(dir: &Path) -> Option<u32> {
    let hex = |f: &str| -> Option<u32> {
        let s = fs::read_to_string(dir.join(f)).ok()?;
        u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
    };
    Some((hex("vendor")? << 16) | hex("device")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_symbols_are_found_by_whole_name_and_hidden_ones_are_none() {
        let k = "ffffffff82a1b2c0 d kernfs_file_fops\nffffffff82a1b300 d kernfs_file_fops_x\nffffffffc0a00000 t foo\t[vfio]\n";
        assert_eq!(
            find_symbol(k.as_bytes(), "kernfs_file_fops"),
            Some(0xffff_ffff_82a1_b2c0)
        );
        assert_eq!(
            find_symbol(k.as_bytes(), "kernfs_file_fops_x"),
            Some(0xffff_ffff_82a1_b300)
        );
        assert_eq!(
            find_symbol(
                b"ffffffff81000000 T _text\nffffffff82a1b2c0 d kernfs_file_fops",
                "kernfs_file_fops"
            ),
            Some(0xffff_ffff_82a1_b2c0),
            "the last line without its newline"
        );
        assert_eq!(
            find_symbol(
                b"ffffffff82a1b2c0 d a kernfs_file_fops\n",
                "kernfs_file_fops"
            ),
            None,
            "a name in the wrong field"
        );
        assert_eq!(
            find_symbol(k.as_bytes(), "foo"),
            None,
            "module symbols have a 4th field"
        );
        assert_eq!(
            find_symbol(b"0000000000000000 d kernfs_file_fops\n", "kernfs_file_fops"),
            None
        );
    }

    #[test]
    fn the_vfio_major_is_a_character_device_named_vfio() {
        let devices = "Character devices:\n  1 mem\n 10 misc\n235 vfio-dev\n236 vfio\n\nBlock devices:\n  8 sd\n237 vfio\n";
        assert_eq!(parse_vfio_major(devices), 236);
        assert_eq!(
            parse_vfio_major("Character devices:\n  1 mem\n\nBlock devices:\n237 vfio\n"),
            0
        );
        assert_eq!(parse_vfio_major(""), 0);
    }
}
