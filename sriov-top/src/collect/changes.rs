//! Whether an inventory is worth sending.
use sriov_core::{
    discover::{Pf, Vf},
    host::VfNetInfo,
};

/// Decides whether an inventory is worth sending: only when something
/// other than the VF counters changed since the last one sent.
#[derive(Debug, Default)]
pub struct InventoryChanges {
    last: Option<Vec<Pf>>,
}

impl InventoryChanges {
    /// True (and remembered) if `pfs` differs from the last inventory
    /// passed here, counters (IFLA_VF_STATS) aside. The first is a change.
    pub fn changed(&mut self, pfs: &[Pf]) -> bool {
        if self
            .last
            .as_deref()
            .is_some_and(|last| same_but_counters(last, pfs))
        {
            return false;
        }
        self.last = Some(without_counters(pfs));
        true
    }
}

/// `a` and `b` are the same, VF counters (`config.stats`) aside: compared
/// in place (4096 VFs copied each tick cost more than the comparison).
fn same_but_counters(a: &[Pf], b: &[Pf]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_pf(x, y))
}

fn same_pf(x: &Pf, y: &Pf) -> bool {
    // every field named: a new one is not forgotten here
    let Pf {
        bdf,
        vendor_id,
        device_id,
        vendor_name,
        device_name,
        driver,
        netdev,
        link,
        total_vfs,
        num_vfs,
        numa_node,
        vfs,
    } = x;
    *bdf == y.bdf
        && *vendor_id == y.vendor_id
        && *device_id == y.device_id
        && *vendor_name == y.vendor_name
        && *device_name == y.device_name
        && *driver == y.driver
        && *netdev == y.netdev
        && *link == y.link
        && *total_vfs == y.total_vfs
        && *num_vfs == y.num_vfs
        && *numa_node == y.numa_node
        && vfs.len() == y.vfs.len()
        && vfs.iter().zip(&y.vfs).all(|(v, w)| same_vf(v, w))
}

fn same_vf(v: &Vf, w: &Vf) -> bool {
    let Vf {
        index,
        bdf,
        device_id,
        driver,
        netdev,
        iommu_group,
        config,
        owner,
    } = v;
    let settings = |c: &VfNetInfo| VfNetInfo {
        stats: None,
        ..c.clone()
    };
    *index == w.index
        && *bdf == w.bdf
        && *device_id == w.device_id
        && *driver == w.driver
        && *netdev == w.netdev
        && *iommu_group == w.iommu_group
        && *owner == w.owner
        && config.as_ref().map(settings) == w.config.as_ref().map(settings)
}

/// `pfs` with every VF's `config.stats` cleared.
fn without_counters(pfs: &[Pf]) -> Vec<Pf> {
    let mut pfs = pfs.to_vec();
    for vf in pfs.iter_mut().flat_map(|pf| pf.vfs.iter_mut()) {
        if let Some(c) = &mut vf.config {
            c.stats = None;
        }
    }
    pfs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sriov_core::{
        discover::discover,
        fixture::{self, PfSpec},
        host::{System, VfStats},
        owner::VfOwner,
    };

    use super::*;

    fn lab_pfs() -> Vec<Pf> {
        let dir = tempfile::tempdir().unwrap();
        let spec = PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 3);
        fixture::add_pf(dir.path(), &spec).unwrap();
        let mut pfs = discover(&System::fixture(dir.path())).unwrap().pfs;
        for vf in &mut pfs[0].vfs {
            vf.config = Some(VfNetInfo {
                vf: vf.index,
                stats: Some(VfStats::default()),
                ..VfNetInfo::default()
            });
        }
        pfs
    }

    #[test]
    fn inventory_is_resent_only_when_more_than_counters_changed() {
        let mut c = InventoryChanges::default();
        let mut pfs = lab_pfs();
        assert!(c.changed(&pfs), "the first one is a change");
        assert!(!c.changed(&pfs));
        // traffic: counters only
        if let Some(cfg) = &mut pfs[0].vfs[1].config {
            cfg.stats = Some(VfStats {
                rx_packets: 99,
                ..VfStats::default()
            });
        }
        assert!(!c.changed(&pfs));
        // a driver bound to a VF
        pfs[0].vfs[1].driver = Some("vfio-pci".into());
        assert!(c.changed(&pfs));
        assert!(!c.changed(&pfs));
        // a VF removed
        pfs[0].vfs.pop();
        assert!(c.changed(&pfs));
        // a VLAN set
        if let Some(cfg) = &mut pfs[0].vfs[0].config {
            cfg.vlan = 7;
        }
        assert!(c.changed(&pfs));
        // the PF's link, a VF's IOMMU group, a VF's holder
        pfs[0].link = Some("down".into());
        assert!(c.changed(&pfs));
        pfs[0].vfs[0].iommu_group = Some(99);
        assert!(c.changed(&pfs));
        pfs[0].vfs[0].owner = Some(VfOwner::default());
        assert!(c.changed(&pfs));
        assert!(!c.changed(&pfs));
    }
}
