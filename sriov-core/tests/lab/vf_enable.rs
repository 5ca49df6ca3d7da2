//! VFs created by `sriov set PF numvfs N` are real PCI functions, as the
//! kernel shows them (sysfs, not the library).
use std::time::Duration;

use crate::guest::{self, dev, link_name, pf, read, wait_for};

/// Number of VFs this test creates; the checks below must see exactly this many.
const EXPECTED_VFS: u32 = 3;

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn enabling_three_vfs_creates_three_82576_vfs_bound_to_igbvf() {
    let pf_bdf = pf();
    let pf_dir = dev(&pf_bdf);
    assert_eq!(
        read(pf_dir.join("sriov_totalvfs")),
        "7",
        "the emulated 82576 offers 7 VFs"
    );
    guest::set_numvfs(0);
    guest::sh(
        "sriov",
        &["set", &pf_bdf, "numvfs", &EXPECTED_VFS.to_string()],
    );
    assert_eq!(read(pf_dir.join("sriov_numvfs")), EXPECTED_VFS.to_string());

    // every PCI function whose physfn is our PF, found by scanning the bus
    let mut vfs: Vec<String> = std::fs::read_dir(guest::PCI_DEVICES)
        .expect("read /sys/bus/pci/devices")
        .flatten()
        .filter(|e| link_name(e.path().join("physfn")).as_deref() == Some(pf_bdf.as_str()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    vfs.sort();
    assert_eq!(
        vfs.len() as u32,
        EXPECTED_VFS,
        "PCI functions with physfn -> {pf_bdf}: {vfs:?}"
    );

    for (i, vf) in vfs.iter().enumerate() {
        let d = dev(vf);
        assert_eq!(read(d.join("vendor")), "0x8086", "{vf} vendor");
        assert_eq!(
            read(d.join("device")),
            "0x10ca",
            "{vf} device (82576 Virtual Function)"
        );
        // virtfnN on the PF points back at this VF
        assert_eq!(
            link_name(pf_dir.join(format!("virtfn{i}"))).as_deref(),
            Some(vf.as_str())
        );
        wait_for(
            &format!("{vf} bound to igbvf"),
            Duration::from_secs(10),
            || link_name(d.join("driver")).as_deref() == Some("igbvf"),
        );
    }
    guest::sh("sriov", &["set", &pf_bdf, "numvfs", "0"]);
    assert_eq!(read(pf_dir.join("sriov_numvfs")), "0");
    assert!(
        !pf_dir.join("virtfn0").exists(),
        "virtfn0 left after `sriov set numvfs 0`"
    );
}
