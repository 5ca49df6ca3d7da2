//! The live view's light ticks (`discover::Rescan`) on the real kernel:
//! VFs removed and created again between two ticks under the same names,
//! with no event to say so (no probes here), are seen by the listings'
//! inode numbers, and the next scan is whole.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use sriov_core::{
    discover::{self, Rescan},
    host::System,
};

use crate::guest::{self, dev, link_name, pf, vf_bdf, wait_for};

const VFS: u32 = 3;

/// What sysfs says of each VF, read directly: BDF -> (driver, netdev).
fn kernel_view() -> BTreeMap<String, (Option<String>, String)> {
    (0..VFS)
        .map(|i| {
            let bdf = vf_bdf(i);
            let driver = link_name(dev(&bdf).join("driver"));
            let netdev = guest::netdev_of(&bdf);
            (bdf, (driver, netdev))
        })
        .collect()
}

/// The inode of `/sys/bus/pci/devices/<bdf>` as the listing gives it.
fn listed_inode(bdf: &str) -> u64 {
    use std::os::unix::fs::DirEntryExt as _;
    std::fs::read_dir(guest::PCI_DEVICES)
        .expect("list the PCI devices")
        .flatten()
        .find(|e| e.file_name().to_str() == Some(bdf))
        .map(|e| e.ino())
        .unwrap_or_else(|| panic!("{bdf} is not listed"))
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn vfs_created_again_under_the_same_names_between_two_ticks_make_the_next_scan_whole() {
    let host = System::live();
    guest::set_numvfs(VFS);
    let before = kernel_view();
    let first_vf = vf_bdf(0);
    let inode_before = listed_inode(&first_vf);

    let mut rescan = Rescan::default();
    let (_, whole) = rescan.scan(&host, Instant::now()).expect("first scan");
    assert!(whole, "the first scan is whole");
    let (_, whole) = rescan.scan(&host, Instant::now()).expect("second scan");
    assert!(!whole, "nothing moved between two ticks: the scan is light");

    // between two ticks: removed and created again, same count and names
    guest::set_numvfs(VFS);
    let pf_dir = dev(&pf());
    wait_for(
        "the VFs' netdevs back under their names",
        Duration::from_secs(30),
        || kernel_view() == before,
    );
    assert_eq!(
        guest::read(pf_dir.join("sriov_numvfs")),
        VFS.to_string(),
        "same count"
    );
    // what makes this test: the names tell nothing, the inode does
    assert_ne!(
        listed_inode(&first_vf),
        inode_before,
        "{first_vf} created again has a new inode in the listing"
    );

    let (inv, whole) = rescan.scan(&host, Instant::now()).expect("scan after");
    assert!(
        whole,
        "VFs created again under the same names ({before:?}) with no event: the scan must be whole"
    );
    let fresh = discover::discover(&host).expect("discover");
    assert_eq!(inv.pfs, fresh.pfs, "the inventory is a whole scan's");
    let ours: BTreeMap<String, (Option<String>, String)> = inv
        .pfs
        .iter()
        .find(|p| p.bdf == pf())
        .expect("the lab PF")
        .vfs
        .iter()
        .map(|v| {
            (
                v.bdf.clone(),
                (v.driver.clone(), v.netdev.clone().unwrap_or_default()),
            )
        })
        .collect();
    assert_eq!(ours, kernel_view(), "the inventory's VFs are the kernel's");
    let (_, whole) = rescan.scan(&host, Instant::now()).expect("scan after that");
    assert!(!whole, "and the tick after is light again");
    guest::set_numvfs(0);
}
