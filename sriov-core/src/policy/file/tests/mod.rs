//! Tests of the policy file: parsing, resolving against a fixture system,
//! merging, and the errors. They unwrap freely: a panic is the failure
//! report.
#![allow(clippy::unwrap_used)]

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::*;
use crate::{
    discover::{Inventory, discover},
    fixture::PfSpec,
    host::{System, VfAttr, VfNetlink as _, fake::FakeKernel},
    policy::{Allow, PfPolicy, Policy, VfPolicy, VfRules},
};

mod errors;

/// A system with two 82576 PFs: eth0 (0000:01:00.0) with 3 VFs, eth1
/// (0000:05:00.0) with 2, and eth2 (0000:09:00.0) with none; VF 2 of eth0
/// has MAC 02:00:00:00:00:02, VF 0 of eth1 02:00:00:00:00:10 (the others
/// all zeros, as igb reports an unset MAC). Also two directories to use as
/// cgroups, and a plain file.
struct Sys {
    dir: tempfile::TempDir,
    inv: Inventory,
}

impl Sys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let k = FakeKernel::new(
            &root,
            vec![
                PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 3),
                PfSpec::i82576("0000:05:00.0".parse().unwrap(), "eth1", 2),
                PfSpec::i82576("0000:09:00.0".parse().unwrap(), "eth2", 0),
            ],
        )
        .unwrap();
        k.set_vf("eth0", 2, &[VfAttr::Mac(MacAddr([2, 0, 0, 0, 0, 2]))])
            .unwrap();
        k.set_vf("eth1", 0, &[VfAttr::Mac(MacAddr([2, 0, 0, 0, 0, 0x10]))])
            .unwrap();
        let inv = discover(&k).unwrap();
        std::fs::create_dir_all(dir.path().join("cg/vms")).unwrap();
        std::fs::create_dir_all(dir.path().join("cg/other")).unwrap();
        std::fs::write(dir.path().join("cg/file"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        for exe in ["qemu-system-x86", "sriov", "qemu"] {
            let p = dir.path().join("bin").join(exe);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        std::fs::write(dir.path().join("bin/data"), "").unwrap();
        Self { dir, inv }
    }

    /// A path below the temporary directory.
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `text` with `{CG}` replaced by the cgroup directory, `{BIN}` by
    /// the directory of executables.
    fn text(&self, text: &str) -> String {
        text.replace("{CG}", &self.path("cg").display().to_string())
            .replace("{BIN}", &self.path("bin").display().to_string())
    }

    /// (inode, device) of an executable of `{BIN}`.
    fn exe(&self, name: &str) -> (u64, u32) {
        let m = std::fs::metadata(self.path("bin").join(name)).unwrap();
        (m.ino(), crate::policy::kernel_dev(m.dev()))
    }

    fn resolve(&self, text: &str) -> Result<Policy, PolicyError> {
        PolicyFile::parse(&self.text(text))
            .unwrap()
            .resolve(&self.inv)
    }
}

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

fn vf_policy(pf: (&str, &str), index: u32, bdf: &str, group: u32, rules: VfRules) -> VfPolicy {
    VfPolicy {
        pf_bdf: pf.0.to_owned(),
        pf_netdev: Some(pf.1.to_owned()),
        index,
        bdf: bdf.to_owned(),
        netdev: Some(format!("{}v{index}", pf.1)),
        iommu_group: Some(group),
        mac: None,
        rules,
    }
}

const ETH0: (&str, &str) = ("0000:01:00.0", "eth0");
const ETH1: (&str, &str) = ("0000:05:00.0", "eth1");

const FULL: &str = r#"# a full policy
version = 1
mode = "audit"

[defaults]
dma_quota_bytes = "64MiB"
vfio_open = { uids = [0, 1000], cgroups = ["{CG}/vms"], executables = ["{BIN}/qemu-system-x86"] }
allowed_drivers = ["vfio-pci", "igbvf"]
allowed_vlans = [0, 10]
irq_storm_per_s = 50000

[[vf]]
pf = "eth0"
index = 1
dma_quota_bytes = 1048576
allowed_src_macs = ["02:00:00:00:00:01"]
max_pps = 1000

[[vf]]
bdf = "0000:05:10.2"
vfio_open = { uids = [107] }
irq_storm_action = "link_down"

[[vf]]
mac = "02:00:00:00:00:02"
allowed_vlans = [20]

[[pf]]
device = "eth0"
numvfs = { min = 0, max = 4 }
numvfs_writers = { uids = [0], executables = ["{BIN}/sriov"] }

[[pf]]
device = "05:00.0"
numvfs = { min = 1 }
"#;

#[test]
fn full_file_resolves_to_the_expected_policy() {
    let sys = Sys::new();
    let file = PolicyFile::parse(&sys.text(FULL)).unwrap();
    assert_eq!(file.mode(), Mode::Audit);
    assert_eq!((file.vf_sections(), file.pf_sections()), (3, 2));
    let policy = file.resolve(&sys.inv).unwrap();

    let vms = sys.path("cg/vms");
    let defaults = VfRules {
        dma_quota_bytes: Some(64 << 20),
        vfio_open: Some(Allow {
            uids: vec![0, 1000],
            cgroups: vec![vms.clone()],
            cgroup_ids: vec![ino(&vms)],
            executables: vec![sys.path("bin/qemu-system-x86")],
            exe_ids: vec![sys.exe("qemu-system-x86")],
        }),
        allowed_drivers: Some(vec!["vfio-pci".to_owned(), "igbvf".to_owned()]),
        allowed_src_macs: None,
        allowed_vlans: Some(vec![0, 10]),
        max_pps: None,
        irq_storm_per_s: Some(50000),
        irq_storm_action: StormAction::Alert,
    };
    let eth0_vf1 = VfRules {
        dma_quota_bytes: Some(1 << 20),
        allowed_src_macs: Some(vec![MacAddr([2, 0, 0, 0, 0, 1])]),
        max_pps: Some(1000),
        ..defaults.clone()
    };
    let eth0_vf2 = VfRules {
        allowed_vlans: Some(vec![20]),
        ..defaults.clone()
    };
    let eth1_vf1 = VfRules {
        vfio_open: Some(Allow {
            uids: vec![107],
            ..Allow::default()
        }),
        irq_storm_action: StormAction::LinkDown,
        ..defaults.clone()
    };
    let expected = Policy {
        mode: Mode::Audit,
        vfs: vec![
            vf_policy(ETH0, 0, "0000:01:10.0", 484, defaults.clone()),
            vf_policy(ETH0, 1, "0000:01:10.2", 486, eth0_vf1),
            VfPolicy {
                mac: Some(MacAddr([2, 0, 0, 0, 0, 2])),
                ..vf_policy(ETH0, 2, "0000:01:10.4", 488, eth0_vf2)
            },
            VfPolicy {
                mac: Some(MacAddr([2, 0, 0, 0, 0, 0x10])),
                ..vf_policy(ETH1, 0, "0000:05:10.0", 1508, defaults.clone())
            },
            vf_policy(ETH1, 1, "0000:05:10.2", 1510, eth1_vf1),
        ],
        pfs: vec![
            PfPolicy {
                bdf: "0000:01:00.0".to_owned(),
                netdev: Some("eth0".to_owned()),
                numvfs_min: 0,
                numvfs_max: 4,
                numvfs_writers: Some(Allow {
                    uids: vec![0],
                    executables: vec![sys.path("bin/sriov")],
                    exe_ids: vec![sys.exe("sriov")],
                    ..Allow::default()
                }),
            },
            // max left out: sriov_totalvfs
            PfPolicy {
                bdf: "0000:05:00.0".to_owned(),
                netdev: Some("eth1".to_owned()),
                numvfs_min: 1,
                numvfs_max: 7,
                numvfs_writers: None,
            },
        ],
    };
    assert_eq!(policy, expected);
}

#[test]
fn the_policy_serializes_with_its_field_names() {
    let sys = Sys::new();
    let policy = sys.resolve(FULL).unwrap();
    let v = serde_json::to_value(&policy).unwrap();
    assert_eq!(v["mode"], "audit");
    assert_eq!(v["vfs"][1]["bdf"], "0000:01:10.2");
    assert_eq!(
        v["vfs"][1]["rules"]["allowed_src_macs"][0],
        "02:00:00:00:00:01"
    );
    assert_eq!(v["vfs"][4]["rules"]["irq_storm_action"], "link_down");
    assert_eq!(v["pfs"][0]["numvfs_max"], 4);
}

#[test]
fn defaults_alone_apply_to_every_vf_of_every_pf() {
    let sys = Sys::new();
    let policy = sys
        .resolve("version = 1\n[defaults]\nmax_pps = 10\n")
        .unwrap();
    let vfs: Vec<_> = policy
        .vfs
        .iter()
        .map(|v| (v.bdf.as_str(), v.rules.max_pps))
        .collect();
    assert_eq!(
        vfs,
        [
            ("0000:01:10.0", Some(10)),
            ("0000:01:10.2", Some(10)),
            ("0000:01:10.4", Some(10)),
            ("0000:05:10.0", Some(10)),
            ("0000:05:10.2", Some(10)),
        ]
    );
    assert_eq!(policy.mode, Mode::Enforce, "enforce is the default");
    assert!(policy.pfs.is_empty());
}

#[test]
fn a_file_without_rules_resolves_to_an_empty_policy() {
    let sys = Sys::new();
    let policy = sys
        .resolve("version = 1\nmode = \"enforce\"\n[defaults]\n")
        .unwrap();
    assert_eq!(policy, Policy::default());
}

#[test]
fn later_sections_override_earlier_ones_key_by_key() {
    let sys = Sys::new();
    let text = r#"version = 1
[defaults]
irq_storm_per_s = 100
max_pps = 5
[[vf]]
pf = "eth0"
index = 1
max_pps = 1000
dma_quota_bytes = "1M"
allowed_vlans = [1, 2]
[[vf]]
bdf = "01:10.2"
max_pps = 2000
irq_storm_action = "link_down"
[[vf]]
pf = "0000:01:00.0"
index = 1
allowed_vlans = [3]
"#;
    let policy = sys.resolve(text).unwrap();
    let vf1 = &policy.vfs[1];
    assert_eq!(vf1.bdf, "0000:01:10.2");
    assert_eq!(
        vf1.rules,
        VfRules {
            dma_quota_bytes: Some(1 << 20),          // first section
            allowed_vlans: Some(vec![3]),            // third over first
            max_pps: Some(2000),                     // second over first over defaults
            irq_storm_per_s: Some(100),              // defaults
            irq_storm_action: StormAction::LinkDown, // second
            ..VfRules::default()
        }
    );
    // the other VFs have only the defaults
    assert_eq!(policy.vfs[0].rules.max_pps, Some(5));
    assert_eq!(policy.vfs[0].rules.irq_storm_action, StormAction::Alert);
    assert_eq!(policy.vfs[0].rules.allowed_vlans, None);
}

#[test]
fn vfio_open_is_replaced_as_a_whole() {
    let sys = Sys::new();
    let text = r#"version = 1
[defaults]
vfio_open = { uids = [0], executables = ["{BIN}/qemu"] }
[[vf]]
pf = "eth1"
index = 0
[vf.vfio_open]
cgroups = ["{CG}/other"]
"#;
    let policy = sys.resolve(text).unwrap();
    let other = sys.path("cg/other");
    let eth1_vf0 = policy.vfs.iter().find(|v| v.bdf == "0000:05:10.0").unwrap();
    assert_eq!(
        eth1_vf0.rules.vfio_open,
        Some(Allow {
            uids: vec![],
            cgroups: vec![other.clone()],
            cgroup_ids: vec![ino(&other)],
            executables: vec![],
            exe_ids: vec![],
        })
    );
    assert_eq!(
        policy.vfs[0].rules.vfio_open.as_ref().unwrap().executables,
        [sys.path("bin/qemu")]
    );
}

#[test]
fn each_selector_kind_selects_its_vf() {
    let sys = Sys::new();
    for (selector, bdf) in [
        ("pf = \"eth0\"\nindex = 2", "0000:01:10.4"),
        ("pf = \"0000:05:00.0\"\nindex = 1", "0000:05:10.2"),
        ("pf = \"05:00.0\"\nindex = 0", "0000:05:10.0"),
        ("bdf = \"0000:01:10.2\"", "0000:01:10.2"),
        ("bdf = \"05:10.2\"", "0000:05:10.2"),
        ("mac = \"02:00:00:00:00:02\"", "0000:01:10.4"),
        ("mac = \"02:00:00:00:00:10\"", "0000:05:10.0"),
    ] {
        let text = format!("version = 1\n[[vf]]\n{selector}\nmax_pps = 7\n");
        let policy = sys.resolve(&text).unwrap();
        let got: Vec<_> = policy.vfs.iter().map(|v| v.bdf.as_str()).collect();
        assert_eq!(got, [bdf], "{selector}");
        assert_eq!(policy.vfs[0].rules.max_pps, Some(7));
    }
}

#[test]
fn other_toml_spellings_are_accepted() {
    let sys = Sys::new();
    // inline tables, hex and underscored integers, sub-tables of [[vf]]
    let text = "version = 0x1\nvf = [{ max_pps = 1_000, bdf = \"01:10.0\" }]\n\
                pf = [{ device = \"eth1\", numvfs = 2 }]\n\
                [defaults.vfio_open]\nuids = [0x10]\n";
    let policy = sys.resolve(text).unwrap();
    assert_eq!(policy.vfs[0].rules.max_pps, Some(1000));
    assert_eq!(policy.vfs[0].rules.vfio_open.as_ref().unwrap().uids, [16]);
    assert_eq!(
        (policy.pfs[0].numvfs_min, policy.pfs[0].numvfs_max),
        (2, 2),
        "numvfs = N means exactly N"
    );
}

#[test]
fn pf_rules_default_to_the_whole_range() {
    let sys = Sys::new();
    let policy = sys
        .resolve("version = 1\n[[pf]]\ndevice = \"eth2\"\nnumvfs_writers = {}\n[[pf]]\ndevice = \"eth0\"\nnumvfs = { max = 7 }\n")
        .unwrap();
    assert_eq!(
        policy.pfs,
        [
            PfPolicy {
                bdf: "0000:01:00.0".to_owned(),
                netdev: Some("eth0".to_owned()),
                numvfs_min: 0,
                numvfs_max: 7,
                numvfs_writers: None,
            },
            // an empty writers table: nobody may
            PfPolicy {
                bdf: "0000:09:00.0".to_owned(),
                netdev: Some("eth2".to_owned()),
                numvfs_min: 0,
                numvfs_max: 7,
                numvfs_writers: Some(Allow::default()),
            },
        ],
        "sorted by PF address"
    );
}

#[test]
fn an_irq_storm_action_in_defaults_may_act_on_a_rate_from_a_vf_section() {
    let sys = Sys::new();
    let text = "version = 1\n[defaults]\nirq_storm_action = \"link_down\"\n\
                [[vf]]\nbdf = \"01:10.0\"\nirq_storm_per_s = 9\n";
    let policy = sys.resolve(text).unwrap();
    assert_eq!(policy.vfs.len(), 1, "the action alone is no rule");
    assert_eq!(policy.vfs[0].rules.irq_storm_per_s, Some(9));
    assert_eq!(policy.vfs[0].rules.irq_storm_action, StormAction::LinkDown);
}

#[test]
fn byte_counts() {
    for (s, n) in [
        ("1", 1),
        ("512B", 512),
        ("4 KiB", 4096),
        ("4K", 4096),
        ("64MiB", 64 << 20),
        ("2M", 2 << 20),
        ("3GiB", 3 << 30),
        ("1G", 1 << 30),
        (" 7 B ", 7),
    ] {
        assert_eq!(parse_bytes(s), Ok(n), "{s}");
    }
    for bad in [
        "",
        "0",
        "0MiB",
        "MiB",
        "1.5MiB",
        "64MB",
        "64 mib",
        "-1",
        "1TiB",
        "99999999999G",
    ] {
        let e = parse_bytes(bad).unwrap_err();
        assert!(e.allowed.contains("KiB, MiB or GiB"), "{bad}: {e}");
    }
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1 << 20), "1.0 MiB");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(64 << 30), "64.0 GiB");
}

#[test]
fn load_reads_the_file_and_names_it_when_it_cannot() {
    let sys = Sys::new();
    let f = sys.path("p.toml");
    std::fs::write(&f, "version = 1\nmode = \"audit\"\n").unwrap();
    assert_eq!(PolicyFile::load(&f).unwrap().mode(), Mode::Audit);
    let missing = sys.path("nope.toml");
    let e = PolicyFile::load(&missing).unwrap_err();
    assert!(matches!(e, PolicyError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.toml"), "{e}");
    assert_eq!((e.position(), e.field()), (None, None));
}

#[test]
fn the_example_in_docs_policy_md_resolves() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md"))
            .unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let sys = Sys::new();
    let text = example
        .replace("/sys/fs/cgroup/vms", "{CG}/vms")
        .replace("/usr/bin/qemu-system-x86_64", "{BIN}/qemu-system-x86")
        .replace("/usr/local/bin/sriov", "{BIN}/sriov");
    let policy = sys.resolve(&text).unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
    let rules: Vec<_> = policy
        .vfs
        .iter()
        .map(|v| (v.bdf.as_str(), v.rules.max_pps, v.rules.irq_storm_action))
        .collect();
    assert_eq!(
        rules,
        [
            ("0000:01:10.0", Some(100000), StormAction::Alert),
            ("0000:01:10.2", Some(1000), StormAction::Alert),
            ("0000:01:10.4", Some(100000), StormAction::LinkDown),
            ("0000:05:10.0", Some(100000), StormAction::Alert),
            ("0000:05:10.2", Some(100000), StormAction::Alert),
        ]
    );
    assert_eq!(policy.vfs[1].rules.dma_quota_bytes, Some(1048576));
    assert_eq!((policy.pfs[0].numvfs_min, policy.pfs[0].numvfs_max), (0, 4));
}
