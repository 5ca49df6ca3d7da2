//! The fixture the benchmarks share: `pfs` E810 PFs with `vfs_per_pf` VFs
//! each (every fourth on vfio-pci, the rest iavf with a netdev).
use sriov_core::{
    discover::{Pf, Vf},
    host::{VfNetInfo, VfStats},
    types::{MacAddr, VfLinkState},
};

pub fn vf_bdf(p: u32, v: u32) -> String {
    format!("0000:{:02x}:{:02x}.{}", p + 1, 0x10 + v / 8, v % 8)
}

pub fn inventory(pfs: u32, vfs_per_pf: u32) -> Vec<Pf> {
    (0..pfs)
        .map(|p| Pf {
            bdf: format!("0000:{:02x}:00.0", p + 1),
            vendor_id: "0x8086".into(),
            device_id: "0x1592".into(),
            vendor_name: Some("Intel Corporation".into()),
            device_name: Some("Ethernet Controller E810-C".into()),
            driver: Some("ice".into()),
            netdev: Some(format!("ens{p}f0")),
            link: Some("up".into()),
            total_vfs: 256,
            num_vfs: vfs_per_pf,
            numa_node: Some(0),
            vfs: (0..vfs_per_pf)
                .map(|v| Vf {
                    index: v,
                    bdf: vf_bdf(p, v),
                    device_id: Some("0x1889".into()),
                    driver: Some(if v % 4 == 0 { "vfio-pci" } else { "iavf" }.into()),
                    netdev: (v % 4 != 0).then(|| format!("ens{p}f0v{v}")),
                    iommu_group: Some(100 + p * vfs_per_pf + v),
                    config: Some(VfNetInfo {
                        vf: v,
                        mac: Some(MacAddr([2, 0, 0, p as u8, (v >> 8) as u8, v as u8])),
                        vlan: (100 + v) as u16,
                        spoofchk: Some(true),
                        trust: Some(v % 2 == 0),
                        link_state: Some(VfLinkState::Auto),
                        stats: Some(VfStats::default()),
                        ..VfNetInfo::default()
                    }),
                    owner: None,
                })
                .collect(),
        })
        .collect()
}
