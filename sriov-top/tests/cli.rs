//! The `sriov` CLI against sysfs fixture trees: output, and bad input that
//! must exit 2 with a message naming the field and the allowed values while
//! changing nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use assert_cmd::Command;

use self::common::{snapshot, sriov, tree};

#[test]
fn list_shows_pf_and_vfs_and_says_netlink_is_absent() {
    let d = tree();
    let out = sriov(d.path()).arg("list").assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stdout.contains("0000:01:00.0 Intel Corporation 82576"),
        "{stdout}"
    );
    assert!(stdout.contains("VFs 2/7"), "{stdout}");
    assert!(
        stdout.contains("0000:01:10.0") && stdout.contains("0000:01:10.2"),
        "{stdout}"
    );
    assert!(stdout.contains("eth0v1"), "{stdout}");
    assert!(stderr.contains("rtnetlink absent"), "{stderr}");
}

#[test]
fn json_output_has_the_schema_and_devices() {
    let d = tree();
    let out = sriov(d.path())
        .args(["show", "eth0v1", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["schema"], "sriov-top.discovery/v1");
    assert_eq!(v["pfs"][0]["bdf"], "0000:01:00.0");
    assert_eq!(v["pfs"][0]["vfs"][1]["bdf"], "0000:01:10.2");
    assert_eq!(v["pfs"][0]["vfs"][1]["driver"], "igbvf");
    assert_eq!(v["pfs"][0]["total_vfs"], 7);
    assert!(v["netlink"].as_str().unwrap().starts_with("absent"));
}

#[test]
fn numvfs_change_works_on_a_fixture_tree() {
    // a fixture tree has no kernel behind it: the write lands in the file,
    // and `set` then waits for VFs that never appear -- so only 0 is tested
    let d = tree();
    sriov(d.path())
        .args(["set", "eth0", "numvfs", "2"])
        .assert()
        .success()
        .stdout(predicates::str::contains("already 2"));
}

#[test]
fn vf_settings_without_netlink_fail_with_exit_1_and_change_nothing() {
    let d = tree();
    let before = snapshot(d.path());
    sriov(d.path())
        .args(["vf", "set", "eth0", "0", "mac", "02:00:00:00:00:01"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("rtnetlink is not available"));
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn completions_are_generated() {
    Command::cargo_bin("sriov")
        .unwrap()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicates::str::contains("sriov"));
}

const BAD_CONFIG_UNKNOWN_KEY: &str = "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfz = 2\n";
const BAD_CONFIG_SYNTAX: &str = "version = 1\n[[pf]\ndevice = \"eth0\"\n";
const BAD_CONFIG_TOTAL: &str = "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 9\n";
const BAD_CONFIG_INDEX: &str =
    "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 4\ntrust = true\n";
const BAD_CONFIG_DRIVER: &str =
    "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 1\ndriver = \"nosuchdrv\"\n";
const BAD_CONFIG_PF: &str = "version = 1\n[[pf]]\ndevice = \"eth7\"\nnumvfs = 1\n";
const BAD_CONFIG_VLAN: &str =
    "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 0\nvlan = 5000\n";

/// (arguments, config file content if the command takes FILE, text stderr must contain)
const BAD_INPUT: &[(&[&str], Option<&str>, &[&str])] = &[
    (
        &["vf", "set", "eth0", "0", "mac", "zz:00:00:00:00:01"],
        None,
        &["mac", "six hex octets"],
    ),
    (
        &["vf", "set", "eth0", "0", "mac", "01:00:5e:00:00:01"],
        None,
        &["mac", "unicast"],
    ),
    (
        &["vf", "set", "eth0", "0", "mac", "00:00:00:00:00:00"],
        None,
        &["mac", "non-zero"],
    ),
    (
        &["vf", "set", "eth0", "0", "mac", "02:00:00:00:00"],
        None,
        &["mac", "six hex octets"],
    ),
    (
        &["vf", "set", "eth0", "0", "vlan", "4095"],
        None,
        &["vlan", "0 (no VLAN) to 4094"],
    ),
    (
        &["vf", "set", "eth0", "0", "vlan", "-1"],
        None,
        &["vlan", "0 (no VLAN) to 4094"],
    ),
    (
        &["vf", "set", "eth0", "0", "vlan", "ten"],
        None,
        &["vlan", "0 (no VLAN) to 4094"],
    ),
    (
        &["vf", "set", "eth0", "0", "vlan", "10", "qos", "8"],
        None,
        &["qos", "0 to 7"],
    ),
    (
        &["vf", "set", "eth0", "0", "qos", "3"],
        None,
        &["qos needs a VLAN"],
    ),
    (
        &["vf", "set", "eth0", "0", "max-tx-rate", "-5"],
        None,
        &["max-tx-rate", "whole number of Mbit/s"],
    ),
    (
        &["vf", "set", "eth0", "0", "max-tx-rate", "fast"],
        None,
        &["max-tx-rate", "whole number of Mbit/s"],
    ),
    (
        &["vf", "set", "eth0", "0", "min-tx-rate", "1.5"],
        None,
        &["min-tx-rate", "whole number of Mbit/s"],
    ),
    (
        &[
            "vf",
            "set",
            "eth0",
            "0",
            "min-tx-rate",
            "100",
            "max-tx-rate",
            "50",
        ],
        None,
        &["min-tx-rate 100 is above max-tx-rate 50"],
    ),
    (
        &["vf", "set", "eth0", "0", "spoofchk", "maybe"],
        None,
        &["spoofchk", "on or off"],
    ),
    (
        &["vf", "set", "eth0", "0", "trust", "2"],
        None,
        &["trust", "on or off"],
    ),
    (
        &["vf", "set", "eth0", "0", "state", "up"],
        None,
        &["state", "auto, enable or disable"],
    ),
    (
        &["vf", "set", "eth0", "0", "speed", "10"],
        None,
        &["unknown VF setting", "allowed are mac"],
    ),
    (
        &["vf", "set", "eth0", "0", "mac"],
        None,
        &["`mac` needs a value"],
    ),
    (
        &["vf", "set", "eth0", "x", "trust", "on"],
        None,
        &["invalid VF index", "0 to sriov_numvfs - 1"],
    ),
    (
        &["vf", "set", "eth0", "5", "trust", "on"],
        None,
        &["VF index 5 does not exist", "valid indexes are 0 to 1"],
    ),
    (
        &["vf", "set", "eth9", "0", "trust", "on"],
        None,
        &["eth9", "SR-IOV PFs here: 0000:01:00.0 (eth0)"],
    ),
    (
        &["set", "eth0", "numvfs", "8"],
        None,
        &["numvfs 8 is more than sriov_totalvfs 7", "0 to 7"],
    ),
    (
        &["set", "eth0", "numvfs", "-1"],
        None,
        &["numvfs", "0 to sriov_totalvfs"],
    ),
    (
        &["set", "eth0", "numvfs", "many"],
        None,
        &["numvfs", "0 to sriov_totalvfs"],
    ),
    (&["set", "eth0", "mtu", "9000"], None, &["numvfs"]),
    (
        &["set", "0000:09:00.0", "numvfs", "1"],
        None,
        &["0000:09:00.0", "SR-IOV PFs here"],
    ),
    (
        &["vf", "bind", "eth0", "0", "nosuchdrv"],
        None,
        &["nosuchdrv", "does not exist", "available: "],
    ),
    (
        &["vf", "bind", "eth0", "0", "../../evil"],
        None,
        &["driver", "letters, digits"],
    ),
    (
        &["vf", "bind", "eth0", "7", "vfio-pci"],
        None,
        &["VF index 7 does not exist"],
    ),
    (&["show", "eth9"], None, &["eth9", "SR-IOV PFs here"]),
    (
        &["apply"],
        Some(BAD_CONFIG_UNKNOWN_KEY),
        &["line 4", "numvfz"],
    ),
    (&["apply"], Some(BAD_CONFIG_SYNTAX), &["line 2"]),
    (&["apply"], Some(BAD_CONFIG_TOTAL), &["sriov_totalvfs 7"]),
    (&["apply"], Some(BAD_CONFIG_INDEX), &["VF index 4"]),
    (
        &["apply"],
        Some(BAD_CONFIG_DRIVER),
        &["nosuchdrv", "does not exist"],
    ),
    (&["apply"], Some(BAD_CONFIG_PF), &["eth7", "line 2"]),
    (
        &["plan"],
        Some(BAD_CONFIG_VLAN),
        &["line 6", "vlan", "4094"],
    ),
];

#[test]
fn bad_input_exits_2_names_the_field_and_changes_nothing() {
    assert!(BAD_INPUT.len() >= 25);
    for (args, config, wants) in BAD_INPUT {
        let d = tree();
        let before = snapshot(d.path());
        let mut cmd = sriov(d.path());
        cmd.args(*args);
        if let Some(text) = config {
            let f = d.path().join("config.toml");
            fs::write(&f, text).unwrap();
            cmd.arg(&f);
        }
        let out = cmd.assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        for w in *wants {
            assert!(
                stderr.contains(w),
                "{args:?}: stderr lacks {w:?}:\n{stderr}"
            );
        }
        let mut after = snapshot(d.path());
        after.retain(|(p, _)| !p.ends_with("config.toml"));
        assert_eq!(after, before, "{args:?} changed the tree");
    }
}

#[test]
fn missing_config_file_and_sysfs_root_are_bad_input() {
    let d = tree();
    sriov(d.path())
        .args(["apply", "/nonexistent/sriov.toml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("/nonexistent/sriov.toml"));
    Command::cargo_bin("sriov")
        .unwrap()
        .args(["--sysfs-root", "/nonexistent", "list"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("fixture tree"));
}
