//! Attribution: which VF (and which process) a record is about.
//!
//! Rules (also in `docs/events.md`):
//!
//! - A record naming a device (`iommu_group_added`, `driver_probe`,
//!   `msi_alloc`) is about the VF with that BDF. A BDF not in the map that
//!   has a `physfn` link (a VF created since the last scan) triggers a
//!   rescan; any other BDF is a PF or an unrelated device: no identity.
//! - `vf_added`: the VF is the target of the PF's `virtfnN` link (N from the
//!   record), else the map's VF N of that PF. `vf_removed`: the map first
//!   (the link is gone by then), then the link.
//! - `msi_alloc`: `irqs` are the entries of the device's `msi_irqs`; for a
//!   VF they replace its IRQs in the IRQ map ([`Attributor::vf_of_irq`]).
//! - `vfio_dma`: `iommu_groups` are the `/dev/vfio/<N>` files the process
//!   has open (`/proc/<pid>/fd`, remembered per process for a second of
//!   kernel time); the VF is the one VF in those groups, if exactly one is.
//! - `sriov_configure` is about a PF: no VF identity; a successful write
//!   rescans (the VFs changed).
//! - `irq_free`: the VF of `device`, else the VF that owned the numbers;
//!   the numbers leave the IRQ map at once.
//!
//! Incarnations ([`VfIdentity::created_ns`]): a VF is a new incarnation when
//! a `vf_added` for its BDF comes after the one the maps know was first
//! seen, or when a scan finds its sysfs directory with another inode (it was
//! removed and created again between scans). A `vf_removed` ends the
//! incarnation it names.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    Clock, Event, VfIdentity,
    conversation::Life,
    irqs::Owner,
    lookup::{device_dir, is_bdf_like, msi_irqs},
};
use crate::{
    Result,
    discover::{Inventory, Pf, Vf, discover, link_name},
    host::Host,
};

mod record_event;
mod vfio_owner;

/// Most IRQ numbers of one `irq_free` event.
const FREE_MAX: u32 = 4096;

/// A record's VF (if any) and its event.
type Attributed = (Option<VfIdentity>, Event);

/// When each VF was created, as the kernel recorded it (the probes'
/// `VF_BIRTHS`, [`crate::ebpf::Births`]): the source of
/// [`VfIdentity::created_ns`] that does not depend on the order in which
/// records and scans are seen.
pub trait Births: std::fmt::Debug + Send {
    /// Kernel time VF `index` of PF `pf` began to be created; `None` when
    /// it was created before the probes were loaded.
    fn created_ns(&self, pf: &str, index: u32) -> Option<u64>;
}

/// One incarnation of a VF, as the maps know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Incarnation {
    created_ns: Option<u64>,
    /// Inode of its sysfs directory, when read.
    ino: Option<u64>,
    /// When a scan or a record first showed it.
    seen_ns: u64,
}

/// Maps devices, IRQs and processes to VFs. Built from a discovery scan,
/// updated by [`refresh`](Self::refresh) and by the records themselves.
#[derive(Debug, Default)]
pub struct Attributor {
    /// VFs by BDF.
    vfs: BTreeMap<String, VfIdentity>,
    /// VFs a scan no longer shows whose `vf_removed` has not been read
    /// yet, with when the scan missed them: the records still in the ring
    /// name them (a collector behind the kernel rescans before it reads
    /// them). Kept [`GONE_KEEP_NS`] at most.
    gone: BTreeMap<String, (VfIdentity, u64)>,
    /// IRQ number to VF BDF, from each VF's `msi_irqs`.
    irqs: BTreeMap<u32, String>,
    /// VFs whose BDF was unknown, for which a rescan did not help: not
    /// rescanned for again until the next explicit refresh.
    misses: BTreeSet<String>,
    /// pid to (kernel ns when read, open VFIO groups).
    fds: BTreeMap<u32, (u64, Vec<u32>)>,
    /// pid to the (VF BDF, IOMMU group) it opened through VFIO and has not
    /// closed, in the ring's order (`vfio_device` records): a DMA record
    /// read after the process closed its fds still names the VF.
    opened: BTreeMap<u32, Vec<(String, u32)>>,
    /// PF BDF to its (First VF Offset, VF Stride), for VF BDFs without a
    /// syscall per event.
    routing: BTreeMap<String, (u32, u32)>,
    /// The loaded policy's VF slots (VF BDFs) and PF slots (PF BDFs).
    policy_vfs: Vec<String>,
    policy_pfs: Vec<String>,
    /// The incarnation of each VF in `vfs`.
    incarnations: BTreeMap<String, Incarnation>,
    /// A scan was loaded: VFs found later are new.
    loaded: bool,
    /// The kernel's creation times, when the probes are loaded.
    births: Option<Box<dyn Births>>,
    /// Mailbox requests, config layouts, administrative state.
    life: Life,
}

impl Attributor {
    /// Scan `host`. Fails only when the PCI device list cannot be read.
    pub fn new(host: &dyn Host) -> Result<Self> {
        let mut a = Self::default();
        a.refresh(host)?;
        Ok(a)
    }

    /// Date VF incarnations by the kernel's own record of their creation
    /// (else by the records and scans that showed them first).
    pub fn set_births(&mut self, births: Box<dyn Births>) {
        self.births = Some(births);
    }

    fn born(&self, pf: &str, index: u32) -> Option<u64> {
        self.births.as_ref()?.created_ns(pf, index)
    }

    /// The slots of the loaded policy (`sriov_core::policy::enforce`):
    /// VF BDFs and PF BDFs in slot order, for `policy_violation` records.
    pub fn set_policy_slots(&mut self, vfs: Vec<String>, pfs: Vec<String>) {
        self.policy_vfs = vfs;
        self.policy_pfs = pfs;
    }

    /// Rescan the VFs and their IRQs. On error the previous maps stay.
    pub fn refresh(&mut self, host: &dyn Host) -> Result<()> {
        self.misses.clear();
        self.fds.clear();
        self.rescan(host)
    }

    /// Rebuild the maps from `inv`, a discovery scan of `host` made by the
    /// caller (who also wants the inventory), as [`refresh`](Self::refresh)
    /// does with its own scan.
    pub fn refresh_with(&mut self, host: &dyn Host, inv: &Inventory) {
        self.misses.clear();
        self.fds.clear();
        self.load(host, inv);
    }

    /// A tick that kept the last scan's devices
    /// ([`crate::discover::Rescan`]): what [`refresh_with`](Self::refresh_with)
    /// does without reading a VF's files again. The caches of a tick go,
    /// the maps stay (the records keep them), VFs missed long enough are
    /// forgotten, and the administrative settings follow `inv`.
    pub fn follow(&mut self, inv: &Inventory) {
        self.follow_unchanged();
        self.life.admin.follow(inv);
    }

    /// [`follow`](Self::follow) with an inventory the same as the last
    /// one, VF counters aside: the administrative settings stay.
    pub fn follow_unchanged(&mut self) {
        self.misses.clear();
        self.fds.clear();
        let now = Clock::now_ns().unwrap_or(0);
        self.gone
            .retain(|_, (_, at)| now.saturating_sub(*at) < GONE_KEEP_NS);
    }

    fn rescan(&mut self, host: &dyn Host) -> Result<()> {
        let inv = discover(host)?;
        self.load(host, &inv);
        Ok(())
    }

    fn load(&mut self, host: &dyn Host, inv: &Inventory) {
        let now = Clock::now_ns().unwrap_or(0);
        let mut vfs = BTreeMap::new();
        let mut irqs = BTreeMap::new();
        let mut routing = BTreeMap::new();
        let mut incarnations = BTreeMap::new();
        for pf in &inv.pfs {
            let read = |f: &str| -> Option<u32> {
                host.read(&device_dir(&pf.bdf).join(f))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            if let (Some(offset), Some(stride)) = (read("sriov_offset"), read("sriov_stride")) {
                routing.insert(pf.bdf.clone(), (offset, stride));
            }
            for vf in &pf.vfs {
                for irq in msi_irqs(host, &vf.bdf) {
                    irqs.insert(irq, vf.bdf.clone());
                }
                let ino = host.inode(&device_dir(&vf.bdf));
                let born = self.born(&pf.bdf, vf.index);
                let inc = match self.incarnations.get(&vf.bdf) {
                    _ if born.is_some() => Incarnation {
                        created_ns: born,
                        ino,
                        seen_ns: now,
                    },
                    Some(i) if i.ino.is_none() || ino.is_none() || i.ino == ino => Incarnation {
                        ino: i.ino.or(ino),
                        ..*i
                    },
                    _ => Incarnation {
                        created_ns: self.loaded.then_some(now),
                        ino,
                        seen_ns: now,
                    },
                };
                vfs.insert(vf.bdf.clone(), identity_of(pf, vf, inc.created_ns));
                incarnations.insert(vf.bdf.clone(), inc);
            }
        }
        // VFs this scan no longer shows: known as they were until their
        // removal is read (or for a while, without probes to read it)
        for (bdf, id) in std::mem::take(&mut self.vfs) {
            if !vfs.contains_key(&bdf) {
                self.gone.entry(bdf).or_insert((id, now));
            }
        }
        self.gone
            .retain(|b, (_, at)| !vfs.contains_key(b) && now.saturating_sub(*at) < GONE_KEEP_NS);
        self.vfs = vfs;
        self.irqs = irqs;
        self.routing = routing;
        self.incarnations = incarnations;
        self.loaded = true;
        self.life.admin.load(host, inv);
    }

    /// A `vf_added` for VF `index` of `pf` (`bdf`) whose creation began at
    /// kernel time `birth` (the record's own: its time less its latency,
    /// what the kernel's births map held for it). Read after the VF was
    /// created again (the map holds a later birth), the record is history
    /// and the maps keep the later incarnation; else the incarnation a scan
    /// found since then is this one, and an older one is replaced. Whether
    /// it is about the current incarnation.
    fn on_added(&mut self, pf: &str, index: u32, bdf: &str, birth: u64) -> bool {
        if self.born(pf, index).is_some_and(|b| b > birth) {
            return false;
        }
        match self.incarnations.get_mut(bdf) {
            Some(i) if i.created_ns == Some(birth) => {}
            Some(i) if i.seen_ns >= birth => i.created_ns = Some(birth),
            _ => {
                let inc = Incarnation {
                    created_ns: Some(birth),
                    ino: None,
                    seen_ns: birth,
                };
                self.incarnations.insert(bdf.to_string(), inc);
                self.irqs.retain(|_, b| b != bdf);
            }
        }
        if let Some(v) = self.vfs.get_mut(bdf) {
            v.created_ns = Some(birth);
        }
        true
    }

    /// A `vf_removed` for `bdf` at kernel time `ts` ends the incarnation
    /// created before it (not one a scan already found again).
    fn on_removed(&mut self, bdf: &str, ts: u64) {
        let ended = self
            .incarnations
            .get(bdf)
            .is_none_or(|i| i.created_ns.is_none_or(|c| c < ts));
        if ended {
            self.incarnations.remove(bdf);
            self.gone.remove(bdf);
            self.vfs.remove(bdf);
            self.irqs.retain(|_, b| b != bdf);
        }
    }

    /// Every IRQ number a VF incarnation owns (from `msi_irqs`), for
    /// [`super::irqs::IrqLedger::reconcile`].
    pub fn irq_owners(&self) -> BTreeMap<u32, Owner> {
        self.irqs
            .iter()
            .filter_map(|(irq, bdf)| {
                let vf = self.vfs.get(bdf)?;
                Some((
                    *irq,
                    Owner {
                        bdf: bdf.clone(),
                        created_ns: vf.created_ns,
                    },
                ))
            })
            .collect()
    }

    /// Whether `owner` is the current incarnation of its VF and lists `irq`
    /// in its `msi_irqs` now (read from sysfs, not the maps).
    pub fn owns_now(&self, host: &dyn Host, irq: u32, owner: &Owner) -> bool {
        let (Some(vf), Some(inc)) = (self.vfs.get(&owner.bdf), self.incarnations.get(&owner.bdf))
        else {
            return false;
        };
        vf.created_ns == owner.created_ns
            && (inc.ino.is_none() || host.inode(&device_dir(&owner.bdf)) == inc.ino)
            && msi_irqs(host, &owner.bdf).contains(&irq)
    }

    /// Whether `owner` is a VF incarnation that exists now.
    pub fn is_current(&self, owner: &Owner) -> bool {
        self.vfs
            .get(&owner.bdf)
            .is_some_and(|v| v.created_ns == owner.created_ns)
    }

    /// The identity of VF `bdf` as the maps know it now (no rescan).
    pub fn vf(&self, bdf: &str) -> Option<&VfIdentity> {
        self.vfs.get(bdf)
    }

    /// VF `bdf` as the map knows it, or as it was if a scan no longer
    /// shows it but its removal has not been read yet.
    pub(super) fn known(&self, bdf: &str) -> Option<&VfIdentity> {
        self.vfs
            .get(bdf)
            .or_else(|| self.gone.get(bdf).map(|(v, _)| v))
    }

    /// The VF that owns MSI/MSI-X `irq` (as of the last scan or `msi_alloc`).
    pub fn vf_of_irq(&self, irq: u32) -> Option<VfIdentity> {
        self.irqs.get(&irq).and_then(|b| self.vfs.get(b)).cloned()
    }

    /// Every IRQ known to belong to a VF, ascending (what to watch).
    pub fn irqs(&self) -> impl Iterator<Item = u32> + '_ {
        self.irqs.keys().copied()
    }

    /// BDF of VF `index` of `pf`: from the `virtfnN` link or the map, in
    /// the order that is fresher for an add (link) or a remove (map).
    fn vf_bdf(&self, host: &dyn Host, pf: &str, index: u32, added: bool) -> Option<String> {
        // the PF's routing (offset, stride) gives the BDF with no syscall
        if let (Some(&(offset, stride)), Ok(pf_bdf)) =
            (self.routing.get(pf), pf.parse::<crate::types::Bdf>())
            && let Some(b) = pf_bdf.vf(offset, stride, index)
        {
            return Some(b.to_string());
        }
        let from_link = || {
            if !is_bdf_like(pf) {
                return None;
            }
            link_name(host, &device_dir(pf).join(format!("virtfn{index}")))
        };
        let from_map = || {
            self.vfs
                .values()
                .find(|v| v.pf == pf && v.index == index)
                .map(|v| v.bdf.clone())
        };
        if added {
            from_link().or_else(from_map)
        } else {
            from_map().or_else(from_link)
        }
    }

    /// The identity of VF `bdf`, rescanning once when it is a VF that the
    /// map does not know yet. `None` for PFs, other devices and vanished
    /// devices.
    fn identity(&mut self, host: &dyn Host, bdf: &str) -> Option<VfIdentity> {
        if let Some(v) = self.vfs.get(bdf) {
            return Some(v.clone());
        }
        if !is_bdf_like(bdf) {
            return None;
        }
        if !host.exists(&device_dir(bdf)) {
            // gone from sysfs: as it was, if its records are still coming
            return self.gone.get(bdf).map(|(v, _)| v.clone());
        }
        let is_vf = host.exists(&device_dir(bdf).join("physfn"));
        if is_vf && !self.misses.contains(bdf) {
            // a scan error (sysfs gone) leaves the map as it was
            let _ = self.rescan(host);
            if let Some(v) = self.vfs.get(bdf) {
                return Some(v.clone());
            }
        }
        // a VF being created: its PF's `virtfnN` link, which discovery
        // follows, comes after the device, its IOMMU group and its probe
        // (and on 6.1 its own `physfn` link after its IOMMU group)
        if let Some(v) = self.nascent(host, bdf) {
            self.vfs.insert(bdf.to_string(), v.clone());
            return Some(v);
        }
        if is_vf {
            self.misses.insert(bdf.to_string());
        }
        None
    }

    /// VF `bdf` while it is being created, before its PF's `virtfnN` link
    /// exists: the PF from its `physfn` link, or else the PF whose VF
    /// routing IDs (First VF Offset, VF Stride, up to `sriov_totalvfs`)
    /// include it; its index from that routing; its group from its
    /// `iommu_group` link. The next scan replaces it with what discovery
    /// finds.
    fn nascent(&self, host: &dyn Host, bdf: &str) -> Option<VfIdentity> {
        let vf_bdf = bdf.parse::<crate::types::Bdf>().ok()?;
        let index_on = |pf: &str| -> Option<u32> {
            let &(offset, stride) = self.routing.get(pf)?;
            let pf_bdf = pf.parse::<crate::types::Bdf>().ok()?;
            // routing ID = PF's + offset + stride * index (the inverse of
            // `Bdf::vf`); sysfs is read only for a BDF in that progression
            let past = vf_bdf
                .routing_id()
                .checked_sub(pf_bdf.routing_id())?
                .checked_sub(offset)?;
            let index = match stride {
                0 => (past == 0).then_some(0)?,
                s => (past % s == 0).then_some(past / s)?,
            };
            let total: u32 = host
                .read(&device_dir(pf).join("sriov_totalvfs"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (index < total && vf_bdf.domain == pf_bdf.domain).then_some(index)
        };
        let (pf, index) = match link_name(host, &device_dir(bdf).join("physfn")) {
            Some(pf) => {
                let i = index_on(&pf)?;
                (pf, i)
            }
            None => self
                .routing
                .keys()
                .find_map(|pf| Some((pf.clone(), index_on(pf)?)))?,
        };
        let pf_netdev = self
            .vfs
            .values()
            .find(|v| v.pf == pf)
            .and_then(|v| v.pf_netdev.clone());
        let iommu_group =
            link_name(host, &device_dir(bdf).join("iommu_group")).and_then(|g| g.parse().ok());
        Some(VfIdentity {
            created_ns: self.born(&pf, index),
            pf,
            pf_netdev,
            index,
            bdf: bdf.to_string(),
            netdev: None,
            iommu_group,
        })
    }
}

/// How long a VF gone from sysfs is still known for its records
/// ([`Attributor::gone`]): longer than any ring backlog.
const GONE_KEEP_NS: u64 = 60_000_000_000;

/// The identity of `vf` of `pf`, as discovery found them, for the
/// incarnation created at `created_ns`.
pub(super) fn identity_of(pf: &Pf, vf: &Vf, created_ns: Option<u64>) -> VfIdentity {
    VfIdentity {
        pf: pf.bdf.clone(),
        pf_netdev: pf.netdev.clone(),
        index: vf.index,
        bdf: vf.bdf.clone(),
        netdev: vf.netdev.clone(),
        iommu_group: vf.iommu_group,
        created_ns,
    }
}
