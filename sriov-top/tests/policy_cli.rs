//! `sriov policy check FILE` against a sysfs fixture tree: the summary of a
//! good file, JSON, and bad files that must exit 2 naming the file, the
//! position and the field while changing nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use assert_cmd::Command;
use sriov_core::fixture::{self, PfSpec};

use self::common::{snapshot, sriov};

/// eth0 (0000:01:00.0) with 3 VFs, eth1 (0000:05:00.0) with none; and a
/// directory `cg` to stand for a cgroup.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fixture::add_pf(
        d.path(),
        &PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 3),
    )
    .unwrap();
    fixture::add_pf(
        d.path(),
        &PfSpec::i82576("0000:05:00.0".parse().unwrap(), "eth1", 0),
    )
    .unwrap();
    fs::create_dir(d.path().join("cg")).unwrap();
    d
}

/// Write `text` (with `{CG}` the cgroup directory) as `policy.toml` in the
/// tree, and return its path.
fn policy_file(root: &Path, text: &str) -> PathBuf {
    let f = root.join("policy.toml");
    let text = text.replace("{CG}", &root.join("cg").display().to_string());
    fs::write(&f, text).unwrap();
    f
}

const GOOD: &str = r#"version = 1

[defaults]
irq_storm_per_s = 50000

[[vf]]
pf = "eth0"
index = 1
dma_quota_bytes = "1MiB"
vfio_open = { uids = [0], cgroups = ["{CG}"] }
allowed_src_macs = ["02:00:00:00:00:01"]
allowed_vlans = [0, 10]
max_pps = 1000

[[vf]]
bdf = "0000:01:10.4"
irq_storm_action = "link_down"
allowed_drivers = ["vfio-pci", "igbvf"]

[[pf]]
device = "eth0"
numvfs = { min = 0, max = 4 }
numvfs_writers = { uids = [0], executables = ["/bin/sh"] }
"#;

#[test]
fn a_good_file_prints_the_rules_of_each_vf_and_pf() {
    let d = tree();
    let f = policy_file(d.path(), GOOD);
    let before = snapshot(d.path());
    let out = sriov(d.path())
        .args(["policy", "check"])
        .arg(&f)
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let cg = d.path().join("cg");
    let expected = format!(
        "mode: enforce (violations are denied and reported)\n\
         0000:01:10.0 (eth0 vf 0): irq_storm 50000/s alert\n\
         0000:01:10.2 (eth0 vf 1): dma_quota 1.0 MiB, vfio_open uids [0] cgroups [{}], src_macs 1, vlans [0,10], max_pps 1000, irq_storm 50000/s alert\n\
         0000:01:10.4 (eth0 vf 2): drivers [vfio-pci,igbvf], irq_storm 50000/s link_down\n\
         0000:01:00.0 (eth0): numvfs 0..=4 (now 3), writers uids [0] executables [/bin/sh]\n\
         policy OK: 3 VFs, 1 PFs\n",
        cg.display()
    );
    assert_eq!(stdout, expected);
    assert_eq!(snapshot(d.path()), before, "check changed the tree");
}

#[test]
fn audit_mode_and_a_pf_outside_its_range_are_shown() {
    let d = tree();
    let f = policy_file(
        d.path(),
        "version = 1\nmode = \"audit\"\n[[pf]]\ndevice = \"0000:01:00.0\"\nnumvfs = { max = 2 }\n",
    );
    sriov(d.path())
        .args(["policy", "check"])
        .arg(&f)
        .assert()
        .success()
        .stdout(
            "mode: audit (violations are reported only)\n\
             0000:01:00.0 (eth0): numvfs 0..=2 (now 3: outside the range), writers anyone the kernel lets\n\
             policy OK: 0 VFs, 1 PFs\n",
        );
}

#[test]
fn json_is_the_resolved_policy() {
    let d = tree();
    let f = policy_file(d.path(), GOOD);
    let out = sriov(d.path())
        .args(["policy", "check", "--json"])
        .arg(&f)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["mode"], "enforce");
    let vfs = v["vfs"].as_array().unwrap();
    assert_eq!(vfs.len(), 3);
    let vf1 = &vfs[1];
    assert_eq!(vf1["pf_bdf"], "0000:01:00.0");
    assert_eq!(vf1["pf_netdev"], "eth0");
    assert_eq!(vf1["index"], 1);
    assert_eq!(vf1["bdf"], "0000:01:10.2");
    assert_eq!(vf1["netdev"], "eth0v1");
    assert!(vf1["iommu_group"].is_u64(), "{vf1}");
    assert_eq!(vf1["mac"], serde_json::Value::Null, "no rtnetlink here");
    let rules = &vf1["rules"];
    assert_eq!(rules["dma_quota_bytes"], 1 << 20);
    assert_eq!(rules["max_pps"], 1000);
    assert_eq!(rules["allowed_vlans"], serde_json::json!([0, 10]));
    assert_eq!(
        rules["allowed_src_macs"],
        serde_json::json!(["02:00:00:00:00:01"])
    );
    assert_eq!(rules["irq_storm_per_s"], 50000);
    assert_eq!(rules["irq_storm_action"], "alert");
    let cg = d.path().join("cg");
    assert_eq!(rules["vfio_open"]["uids"], serde_json::json!([0]));
    assert_eq!(rules["vfio_open"]["cgroups"][0], cg.display().to_string());
    assert_eq!(
        rules["vfio_open"]["cgroup_ids"][0],
        fs::metadata(&cg).unwrap().ino()
    );
    assert_eq!(vfs[2]["rules"]["irq_storm_action"], "link_down");
    assert_eq!(
        vfs[2]["rules"]["allowed_drivers"],
        serde_json::json!(["vfio-pci", "igbvf"])
    );
    let pf = &v["pfs"][0];
    assert_eq!(pf["bdf"], "0000:01:00.0");
    assert_eq!(
        (pf["numvfs_min"].as_u64(), pf["numvfs_max"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(
        pf["numvfs_writers"]["executables"],
        serde_json::json!(["/bin/sh"])
    );
}

/// (file text, what stderr must say besides the file's name)
const BAD: &[(&str, &[&str])] = &[
    (
        "version = 1\n[defaults]\nallowed_vlans = [0, 5000]\n",
        &[
            "line 3, column 21",
            "defaults.allowed_vlans[1] = 5000",
            "0 (no VLAN) to 4094",
        ],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0\"\nindex = 1\nmax_bps = 10\n",
        &[
            "line 5, column 1",
            "unknown key `vf[0].max_bps` in [[vf]]",
            "allowed keys: pf, index",
        ],
    ),
    ("version = 1\n[defaults\n", &["line 2", "invalid TOML"]),
    (
        "version = 1\n[[vf]]\npf = \"eth7\"\nindex = 0\nmax_pps = 1\n",
        &[
            "line 3, column 6",
            "vf[0].pf = \"eth7\"",
            "SR-IOV PFs here: 0000:01:00.0 (eth0), 0000:05:00.0 (eth1)",
        ],
    ),
    (
        "version = 1\n[[vf]]\npf = \"eth0\"\nindex = 3\nmax_pps = 1\n",
        &[
            "line 4, column 9",
            "vf[0].index = 3",
            "has no VF 3",
            "an integer from 0 to 2",
        ],
    ),
    (
        "version = 1\n[[vf]]\nmac = \"02:00:00:00:00:01\"\nmax_pps = 1\n",
        &["line 3, column 7", "vf[0].mac", "no VF MACs are known here"],
    ),
    (
        "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { max = 8 }\n",
        &[
            "line 4, column 18",
            "pf[0].numvfs.max = 8",
            "above sriov_totalvfs = 7",
            "from 0 to 7",
        ],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { cgroups = [\"{CG}/missing\"] }\n",
        &[
            "line 3, column 26",
            "defaults.vfio_open.cgroups[0]",
            "an existing cgroup v2 directory",
        ],
    ),
    (
        "version = 1\n[defaults]\nvfio_open = { executables = [\"qemu-system-x86_64\"] }\n",
        &["defaults.vfio_open.executables[0]", "not by its name"],
    ),
    ("mode = \"audit\"\n", &["version is missing", "must be 1"]),
];

#[test]
fn bad_files_exit_2_name_the_file_position_and_field_and_change_nothing() {
    for (text, wants) in BAD {
        let d = tree();
        let f = policy_file(d.path(), text);
        let before = snapshot(d.path());
        let out = sriov(d.path())
            .args(["policy", "check"])
            .arg(&f)
            .assert()
            .code(2)
            .stdout("");
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        let name = format!("error: {}: ", f.display());
        assert!(
            stderr.contains(&name),
            "{text}: stderr lacks {name:?}:\n{stderr}"
        );
        for w in *wants {
            assert!(stderr.contains(w), "{text}: stderr lacks {w:?}:\n{stderr}");
        }
        assert_eq!(snapshot(d.path()), before, "{text}: changed the tree");
    }
}

#[test]
fn a_missing_file_is_bad_input() {
    let d = tree();
    let f = d.path().join("nope.toml");
    sriov(d.path())
        .args(["policy", "check"])
        .arg(&f)
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains(format!(
            "{}: No such file or directory",
            f.display()
        )));
}

#[test]
fn policy_is_a_subcommand_group_with_examples() {
    Command::cargo_bin("sriov")
        .unwrap()
        .args(["policy", "--help"])
        .assert()
        .success()
        .stdout(predicates::str::contains("check"))
        .stdout(predicates::str::contains("docs/policy.md"));
    Command::cargo_bin("sriov")
        .unwrap()
        .args(["policy", "check", "--help"])
        .assert()
        .success()
        .stdout(predicates::str::contains("Examples:"))
        .stdout(predicates::str::contains(
            "sriov policy check policy.toml --json",
        ));
    // a group: no file without `check`
    Command::cargo_bin("sriov")
        .unwrap()
        .args(["policy", "policy.toml"])
        .assert()
        .code(2);
}
