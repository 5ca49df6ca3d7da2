//! A VF's traffic counters from its netdev in this host, for PF drivers
//! that report none of their own (igb's IFLA_VF_STATS are absent or zero).
use std::path::Path;

use super::{CLASS_NET, Pf};
use crate::host::{Host, VfStats};

/// Traffic counters of netdev `ifname` in this host
/// (`/sys/class/net/<ifname>/statistics`): `None` when it cannot be read
/// (the netdev went away).
pub fn netdev_counters(host: &dyn Host, ifname: &str) -> Option<VfStats> {
    let dir = Path::new(CLASS_NET).join(ifname).join("statistics");
    let get = |f: &str| -> Option<u64> { host.read(&dir.join(f)).ok()?.trim().parse().ok() };
    Some(VfStats {
        rx_packets: get("rx_packets")?,
        tx_packets: get("tx_packets")?,
        rx_bytes: get("rx_bytes")?,
        tx_bytes: get("tx_bytes")?,
        broadcast: 0,
        multicast: get("multicast").unwrap_or(0),
        rx_dropped: get("rx_dropped").unwrap_or(0),
        tx_dropped: get("tx_dropped").unwrap_or(0),
    })
}

/// For VFs whose PF driver reports no counters (IFLA_VF_STATS absent or
/// all zero, as igb's are) but which have a netdev in this host (a VF
/// driver such as igbvf bound here), take the counters of that netdev
/// (the VF's own view: rx is what the VF received). VFs without rtnetlink
/// data are left alone.
///
/// With rtnetlink (the live host) the counters come from one `RTM_GETLINK`
/// per netdev (IFLA_STATS64); a fixture tree has its statistics files. A
/// netdev rtnetlink cannot answer for is read from sysfs.
pub fn fill_counters_from_netdevs(host: &dyn Host, pfs: &mut [Pf]) {
    let nl = host.netlink();
    for vf in pfs.iter_mut().flat_map(|pf| pf.vfs.iter_mut()) {
        let (Some(cfg), Some(ifname)) = (vf.config.as_mut(), vf.netdev.as_deref()) else {
            continue;
        };
        if cfg.stats.is_some_and(|s| s != VfStats::default()) {
            continue;
        }
        let counters = match nl.map(|nl| nl.link_counters(ifname)) {
            Some(Ok(c)) => c,
            Some(Err(_)) | None => netdev_counters(host, ifname),
        };
        if let Some(c) = counters {
            cfg.stats = Some(c);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        discover::Vf,
        host::{NetlinkError, System, VfAttr, VfNetInfo, VfNetlink},
    };

    fn pf() -> Pf {
        Pf {
            bdf: "0000:01:00.0".into(),
            vendor_id: "8086".into(),
            device_id: "10c9".into(),
            vendor_name: None,
            device_name: None,
            driver: None,
            netdev: None,
            link: None,
            total_vfs: 7,
            num_vfs: 4,
            numa_node: None,
            vfs: vec![],
        }
    }

    fn vf(index: u32, netdev: Option<&str>, stats: Option<VfStats>) -> Vf {
        Vf {
            index,
            bdf: format!("0000:01:10.{index}"),
            device_id: None,
            driver: None,
            netdev: netdev.map(str::to_string),
            iommu_group: None,
            config: Some(VfNetInfo {
                vf: index,
                stats,
                ..VfNetInfo::default()
            }),
            owner: None,
        }
    }

    /// Each VF's counters, in order.
    fn counters_of(pfs: &[Pf]) -> Vec<Option<VfStats>> {
        pfs[0]
            .vfs
            .iter()
            .map(|v| v.config.as_ref().unwrap().stats)
            .collect()
    }

    #[test]
    fn zero_pf_counters_are_replaced_by_the_vf_netdev_counters() {
        let root = tempfile::tempdir().unwrap();
        let stats = root.path().join("sys/class/net/eth1/statistics");
        std::fs::create_dir_all(&stats).unwrap();
        for (f, v) in [
            ("rx_packets", "11"),
            ("tx_packets", "22"),
            ("rx_bytes", "3300"),
            ("tx_bytes", "4400\n"),
        ] {
            std::fs::write(stats.join(f), v).unwrap();
        }
        let host = System::fixture(root.path());
        let reported = VfStats {
            rx_packets: 5,
            ..VfStats::default()
        };
        let mut pfs = vec![Pf {
            vfs: vec![
                vf(0, Some("eth1"), Some(VfStats::default())),
                vf(1, Some("eth1"), Some(reported)),
                vf(2, Some("gone0"), None),
                vf(3, None, None),
            ],
            ..pf()
        }];
        fill_counters_from_netdevs(&host, &mut pfs);
        let from_netdev = VfStats {
            rx_packets: 11,
            tx_packets: 22,
            rx_bytes: 3300,
            tx_bytes: 4400,
            ..VfStats::default()
        };
        // all-zero PF counters: the netdev's; real PF counters stay; a
        // vanished netdev or none: unchanged
        assert_eq!(
            counters_of(&pfs),
            vec![Some(from_netdev), Some(reported), None, None]
        );
    }

    /// An rtnetlink that answers `link_counters` from a table (an errno for
    /// an error), and nothing else.
    struct Linked {
        answers: Vec<(&'static str, Result<Option<VfStats>, i32>)>,
    }

    fn refused(ifname: &str, op: &str) -> NetlinkError {
        NetlinkError {
            ifname: ifname.into(),
            op: op.into(),
            errno: libc::EOPNOTSUPP,
            message: "not in this test".into(),
        }
    }

    impl VfNetlink for Linked {
        fn vf_info(&self, pf_ifname: &str) -> Result<Vec<VfNetInfo>, NetlinkError> {
            Err(refused(pf_ifname, "get VF info"))
        }
        fn set_vf(&self, pf_ifname: &str, _: u32, _: &[VfAttr]) -> Result<(), NetlinkError> {
            Err(refused(pf_ifname, "set"))
        }
        fn link_counters(&self, ifname: &str) -> Result<Option<VfStats>, NetlinkError> {
            match self.answers.iter().find(|(n, _)| *n == ifname) {
                Some((_, Ok(c))) => Ok(*c),
                Some((_, Err(errno))) => Err(NetlinkError {
                    errno: *errno,
                    ..refused(ifname, "get counters")
                }),
                None => Ok(None),
            }
        }
    }

    /// With rtnetlink, its counters are taken (not the statistics files);
    /// a netdev it cannot answer for is read from sysfs; one it does not
    /// know is left alone.
    #[test]
    fn counters_come_from_rtnetlink_when_there_is_one() {
        let root = tempfile::tempdir().unwrap();
        for dev in ["eth1", "eth2", "eth3"] {
            let stats = root
                .path()
                .join("sys/class/net")
                .join(dev)
                .join("statistics");
            std::fs::create_dir_all(&stats).unwrap();
            for f in ["rx_packets", "tx_packets", "rx_bytes", "tx_bytes"] {
                std::fs::write(stats.join(f), "7").unwrap();
            }
        }
        let from_nl = VfStats {
            rx_packets: 1,
            tx_packets: 2,
            rx_bytes: 3,
            tx_bytes: 4,
            broadcast: 0,
            multicast: 5,
            rx_dropped: 6,
            tx_dropped: 8,
        };
        let fs = System::fixture(root.path());
        let nl = Linked {
            answers: vec![
                ("eth1", Ok(Some(from_nl))),
                ("eth2", Err(libc::EBUSY)),
                ("eth3", Ok(None)),
            ],
        };
        let host = crate::host::counted::Counted::with_netlink(&fs, &nl);
        let mut pfs = vec![Pf {
            vfs: vec![
                vf(0, Some("eth1"), Some(VfStats::default())),
                vf(1, Some("eth2"), Some(VfStats::default())),
                vf(2, Some("eth3"), None),
            ],
            ..pf()
        }];
        fill_counters_from_netdevs(&host, &mut pfs);
        let from_files = VfStats {
            rx_packets: 7,
            tx_packets: 7,
            rx_bytes: 7,
            tx_bytes: 7,
            ..VfStats::default()
        };
        assert_eq!(
            counters_of(&pfs),
            vec![Some(from_nl), Some(from_files), None]
        );
    }
}
