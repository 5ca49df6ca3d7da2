//! `sriov vf pktgen|echo|rxdump` against sysfs fixture trees: bad input
//! exits 2 naming the field before any device is touched, and a VF that
//! cannot be driven through VFIO gets an error that says what to do. The
//! datapath itself runs in the lab (sriov-core/tests/lab/datapath.rs).
#![allow(clippy::unwrap_used)]

mod common;

use std::{fs, os::unix::fs::symlink, path::Path};

use assert_cmd::Command;
use predicates::prelude::*;
use sriov_core::fixture;

use self::common::{snapshot, sriov, tree};

const VF1: &str = "0000:01:10.2";

fn to_vfio(root: &Path, bdf: &str) {
    fixture::remove_netdevs(root, bdf.parse().unwrap()).unwrap();
    fixture::bind(root, bdf.parse().unwrap(), "vfio-pci").unwrap();
}

/// The arguments of a command line, owned.
fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn pktgen(extra: &[&str]) -> Vec<String> {
    let mut v = argv(&["vf", "pktgen", "eth0", "1"]);
    let mut dst = "02:00:00:00:00:01";
    let mut count = "10";
    let mut size = "60";
    let mut rest = Vec::new();
    let mut it = extra.iter();
    while let Some(k) = it.next() {
        match *k {
            "--dst" => dst = it.next().unwrap(),
            "--count" => count = it.next().unwrap(),
            "--size" => size = it.next().unwrap(),
            other => rest.push(other.to_string()),
        }
    }
    v.extend(["--dst", dst, "--count", count, "--size", size].map(String::from));
    v.extend(rest);
    v
}

#[test]
fn bad_input_exits_2_names_the_field_and_touches_nothing() {
    let d = tree();
    // the VF is on vfio-pci: only the input can be wrong
    to_vfio(d.path(), VF1);
    let before = snapshot(d.path());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (pktgen(&["--dst", "02:00:00:00:00"]), "invalid dst"),
        (pktgen(&["--dst", "00:00:00:00:00:00"]), "invalid dst"),
        (pktgen(&["--dst", "zz:00:00:00:00:01"]), "invalid dst"),
        (
            pktgen(&["--size", "59"]),
            "invalid size \"59\": a frame size in bytes from 60 to 1514",
        ),
        (pktgen(&["--size", "1515"]), "invalid size"),
        (pktgen(&["--size", "big"]), "invalid size"),
        (pktgen(&["--count", "0"]), "invalid count \"0\""),
        (pktgen(&["--count", "-3"]), "invalid count"),
        (pktgen(&["--rate", "0"]), "invalid rate \"0\""),
        (pktgen(&["--mac", "01:00:5e:00:00:01"]), "invalid mac"),
        (
            argv(&["vf", "rxdump", "eth0", "1", "--count", "0"]),
            "invalid count",
        ),
        (
            argv(&["vf", "echo", "eth0", "1", "--count", "x"]),
            "invalid count",
        ),
        (argv(&["vf", "rxdump", "eth0", "one"]), "invalid VF index"),
        (
            argv(&["vf", "rxdump", "eth0", "5"]),
            "VF index 5 does not exist (sriov_numvfs is 2",
        ),
        (
            argv(&["vf", "echo", "eth9", "1"]),
            "no SR-IOV PF or VF matches \"eth9\"",
        ),
    ];
    for (args, want) in cases {
        let out = sriov(d.path()).args(&args).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("the checks passed"),
            "{args:?}: the VF was looked at before the input was checked: {stderr}"
        );
    }
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn missing_required_options_are_usage_errors() {
    let d = tree();
    sriov(d.path())
        .args(["vf", "pktgen", "eth0", "1", "--count", "1", "--size", "60"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--dst"));
}

#[test]
fn vf_not_bound_to_vfio_pci_prints_the_bind_command() {
    let d = tree();
    let before = snapshot(d.path());
    for cmd in [pktgen(&[]), argv(&["vf", "rxdump", "eth0", "1"])] {
        sriov(d.path())
            .args(&cmd)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("sriov vf bind eth0 1 vfio-pci"))
            .stderr(predicate::str::contains("bound to igbvf, not vfio-pci"));
    }
    // by BDF too: the PF is named by its netdev in the command
    sriov(d.path())
        .args(["vf", "echo", "0000:01:00.0", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sriov vf bind eth0 1 vfio-pci"));
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn no_iommu_group_says_how_to_turn_the_iommu_on() {
    let d = tree();
    to_vfio(d.path(), VF1);
    fs::remove_file(
        d.path()
            .join(fixture::DEVICES)
            .join(VF1)
            .join("iommu_group"),
    )
    .unwrap();
    sriov(d.path())
        .args(["vf", "rxdump", "eth0", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("intel_iommu=on"))
        .stderr(predicate::str::contains(VF1));
}

#[test]
fn a_group_shared_with_a_host_driver_lists_the_other_devices() {
    let d = tree();
    to_vfio(d.path(), VF1);
    let link = d
        .path()
        .join(fixture::DEVICES)
        .join(VF1)
        .join("iommu_group");
    let devices = link.join("devices");
    for b in [VF1, "0000:01:10.0"] {
        symlink(
            format!("../../../../devices/pci0000:00/{b}"),
            devices.join(b),
        )
        .unwrap();
    }
    sriov(d.path())
        .args(["vf", "echo", "eth0", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not viable"))
        .stderr(predicate::str::contains("0000:01:10.0 (igbvf)"));
}

#[test]
fn a_vf_that_passes_the_checks_is_not_driven_on_a_fixture_tree() {
    let d = tree();
    to_vfio(d.path(), VF1);
    sriov(d.path())
        .args(pktgen(&["--rate", "100"]))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the checks passed"))
        .stderr(predicate::str::contains("no device to drive"));
}

#[test]
fn help_shows_the_examples() {
    for sub in ["pktgen", "echo", "rxdump"] {
        Command::cargo_bin("sriov")
            .unwrap()
            .args(["vf", sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("sriov vf {sub} eth0 1")))
            .stdout(predicate::str::contains("vfio-pci").or(predicate::str::contains("Ctrl-C")));
    }
}
