//! Discovery, plan and apply against the fake kernel (a sysfs fixture tree
//! whose writes behave like the kernel's, and in-memory rtnetlink state).
#![allow(clippy::unwrap_used)]

use std::{
    io,
    path::{Path, PathBuf},
};

use sriov_core::{
    apply::{self, ApplyReport},
    config::DesiredState,
    discover::{self, Inventory},
    fixture::PfSpec,
    host::{
        Host, System, VfNetlink,
        fake::{FakeKernel, Fault},
    },
    plan::PlanOptions,
    types::{Bdf, MacAddr, VfLinkState},
};

fn pf_spec(num_vfs: u32) -> PfSpec {
    PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", num_vfs)
}

fn kernel(num_vfs: u32) -> (tempfile::TempDir, FakeKernel) {
    let dir = tempfile::tempdir().unwrap();
    let k = FakeKernel::new(dir.path(), vec![pf_spec(num_vfs)]).unwrap();
    (dir, k)
}

/// Everything discovery sees, as one comparable value.
fn state(host: &dyn Host) -> serde_json::Value {
    let inv = discover::discover(host).unwrap();
    let mut v = serde_json::to_value(&inv).unwrap();
    v["warnings"] = serde_json::Value::Null;
    // driver_override is part of "exactly as before" too
    let overrides: Vec<String> = inv.pfs[0]
        .vfs
        .iter()
        .map(|vf| {
            host.read(
                &Path::new("/sys/bus/pci/devices")
                    .join(&vf.bdf)
                    .join("driver_override"),
            )
            .unwrap()
        })
        .collect();
    v["overrides"] = serde_json::json!(overrides);
    v
}

fn nothing(_: sriov_core::ops::Progress) {}

#[allow(clippy::result_large_err)]
fn apply_text(host: &dyn Host, text: &str) -> Result<ApplyReport, apply::ApplyError> {
    let desired = DesiredState::parse(text).expect("valid config");
    apply::apply(host, &desired, PlanOptions::default(), &mut nothing)
}

const CONFIG: &str = r#"
version = 1
[[pf]]
device = "eth0"
numvfs = 4
[[pf.vf]]
index = 0
mac = "02:00:00:00:00:01"
vlan = 10
[[pf.vf]]
index = 1
mac = "02:00:00:00:00:02"
vlan = 20
qos = 3
[[pf.vf]]
index = 2
spoofchk = false
[[pf.vf]]
index = 3
driver = "vfio-pci"
"#;

#[test]
fn discovery_reads_pf_and_vfs_with_names_and_netlink_view() {
    let (_d, k) = kernel(3);
    let inv = discover::discover(&k).unwrap();
    assert_eq!(inv.netlink, "ok");
    assert_eq!(inv.pfs.len(), 1);
    let pf = &inv.pfs[0];
    assert_eq!(pf.bdf, "0000:01:00.0");
    assert_eq!(
        (pf.vendor_id.as_str(), pf.device_id.as_str()),
        ("0x8086", "0x10c9")
    );
    assert_eq!(pf.vendor_name.as_deref(), Some("Intel Corporation"));
    assert!(
        pf.device_name.as_deref().unwrap().contains("82576"),
        "{:?}",
        pf.device_name
    );
    assert_eq!(
        (
            pf.driver.as_deref(),
            pf.netdev.as_deref(),
            pf.link.as_deref()
        ),
        (Some("igb"), Some("eth0"), Some("up"))
    );
    assert_eq!((pf.total_vfs, pf.num_vfs, pf.numa_node), (7, 3, Some(0)));
    let bdfs: Vec<&str> = pf.vfs.iter().map(|v| v.bdf.as_str()).collect();
    assert_eq!(bdfs, ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]);
    for (i, vf) in pf.vfs.iter().enumerate() {
        assert_eq!(vf.index, i as u32);
        assert_eq!(vf.driver.as_deref(), Some("igbvf"));
        assert_eq!(vf.netdev, Some(format!("eth0v{i}")));
        assert!(vf.iommu_group.is_some());
        assert_eq!(vf.config.as_ref().unwrap().spoofchk, Some(true));
    }
    // distinct IOMMU groups per VF
    let mut groups: Vec<u32> = pf.vfs.iter().filter_map(|v| v.iommu_group).collect();
    groups.dedup();
    assert_eq!(groups.len(), 3);
    // resolve by BDF, short BDF, netdev, VF netdev
    assert_eq!(inv.pf("01:00.0").unwrap().bdf, "0000:01:00.0");
    assert_eq!(inv.pf("eth0v2").unwrap().bdf, "0000:01:00.0");
    let e = inv.pf("eth9").unwrap_err().to_string();
    assert!(
        e.contains("eth9") && e.contains("0000:01:00.0 (eth0)"),
        "{e}"
    );
}

#[test]
fn fixture_tree_without_netlink_says_so() {
    let (d, _k) = kernel(2);
    let sys = System::fixture(d.path());
    let inv = discover::discover(&sys).unwrap();
    assert!(inv.netlink.starts_with("absent"), "{}", inv.netlink);
    assert_eq!(inv.pfs[0].vfs.len(), 2);
    assert!(inv.pfs[0].vfs.iter().all(|v| v.config.is_none()));
}

/// A host whose VFs vanish (like `echo 0 > sriov_numvfs` from another shell)
/// right after the PF's directory was listed.
struct Vanishing<'a> {
    inner: &'a FakeKernel,
    root: PathBuf,
    gone: Vec<Bdf>,
}

impl Host for Vanishing<'_> {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.inner.read(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.inner.write(path, value)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let r = self.inner.list_dir(path);
        if path.ends_with("0000:01:00.0") {
            for b in &self.gone {
                sriov_core::fixture::remove_device(&self.root, *b).unwrap();
            }
            // and one virtfn link too
            let _ =
                std::fs::remove_file(self.root.join("sys/bus/pci/devices/0000:01:00.0/virtfn3"));
        }
        r
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn netlink(&self) -> Option<&dyn VfNetlink> {
        self.inner.netlink()
    }
    fn writes(&self) -> usize {
        self.inner.writes()
    }
}

#[test]
fn vfs_vanishing_mid_scan_are_skipped_with_a_warning() {
    let (d, k) = kernel(4);
    let spec = pf_spec(4);
    let host = Vanishing {
        inner: &k,
        root: d.path().to_path_buf(),
        gone: vec![spec.vf_bdf(1)],
    };
    let inv = discover::discover(&host).unwrap();
    let idx: Vec<u32> = inv.pfs[0].vfs.iter().map(|v| v.index).collect();
    assert_eq!(idx, [0, 2]);
    assert_eq!(inv.warnings.len(), 2, "{:?}", inv.warnings);
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.contains("0000:01:10.2") && w.contains("vanished")),
        "{:?}",
        inv.warnings
    );
}

#[test]
fn apply_configures_then_second_apply_is_a_no_op() {
    let (_d, k) = kernel(0);
    let r = apply_text(&k, CONFIG).unwrap();
    assert!(r.writes > 0);
    assert!(
        r.journal
            .iter()
            .all(|j| j.outcome == "ok" || j.outcome == "unchanged"),
        "{:#?}",
        r.journal
    );
    let inv: Inventory = discover::discover(&k).unwrap();
    let pf = &inv.pfs[0];
    assert_eq!(pf.num_vfs, 4);
    let v0 = k.vf("eth0", 0).unwrap();
    assert_eq!(
        (v0.mac, v0.vlan, v0.qos),
        (Some("02:00:00:00:00:01".parse::<MacAddr>().unwrap()), 10, 0)
    );
    let v1 = k.vf("eth0", 1).unwrap();
    assert_eq!((v1.vlan, v1.qos), (20, 3));
    assert_eq!(k.vf("eth0", 2).unwrap().spoofchk, Some(false));
    assert_eq!(k.vf("eth0", 3).unwrap().spoofchk, Some(true));
    assert_eq!(pf.vfs[3].driver.as_deref(), Some("vfio-pci"));
    assert_eq!(pf.vfs[2].driver.as_deref(), Some("igbvf"));

    let w = k.writes();
    let again = apply_text(&k, CONFIG).unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    assert_eq!(again.writes, 0);
    assert_eq!(
        k.writes(),
        w,
        "second apply wrote: {:?}",
        &k.write_log()[w..]
    );
}

#[test]
fn failure_midway_rolls_back_to_the_exact_state_before() {
    let (_d, k) = kernel(2);
    // a configured starting point: VF 0 has a MAC and VLAN, VF 1 is on vfio-pci
    apply_text(&k, "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 0\nmac = \"02:00:00:00:00:aa\"\nvlan = 7\n[[pf.vf]]\nindex = 1\ndriver = \"vfio-pci\"\n").unwrap();
    let before = state(&k);
    let w0 = k.writes();
    // the new config re-creates the VFs (2 -> 4); VF 2's setting fails
    k.inject(Fault::SetVf {
        ifname: "eth0".into(),
        vf: 2,
        errno: libc::EIO,
    });
    let err = apply_text(&k, CONFIG).unwrap_err();
    k.clear_faults();
    assert!(
        k.writes() > w0,
        "the apply did change things before failing"
    );
    assert!(err.rolled_back, "{err}");
    assert!(
        err.step.contains("vf 2") && err.step.contains("spoofchk off"),
        "{}",
        err.step
    );
    assert_eq!(err.source.errno(), Some(libc::EIO));
    let msg = err.to_string();
    assert!(msg.contains("rolled back"), "{msg}");
    assert_eq!(state(&k), before, "journal: {:#?}", err.report.journal);
    assert!(err.report.journal.iter().any(|j| j.rollback));
}

#[test]
fn failure_without_numvfs_change_rolls_back_each_setting() {
    let (_d, k) = kernel(4);
    let before = state(&k);
    k.inject(Fault::Write {
        path_suffix: "drivers_probe".into(),
        errno: libc::ENODEV,
    });
    let err = apply_text(&k, CONFIG).unwrap_err();
    k.clear_faults();
    assert!(
        err.step.contains("driver igbvf -> vfio-pci"),
        "{}",
        err.step
    );
    assert!(err.rolled_back, "{err}");
    assert_eq!(state(&k), before);
    assert_eq!(k.vf("eth0", 0).unwrap().mac, Some(MacAddr([0; 6])));
    assert_eq!(k.vf("eth0", 1).unwrap().vlan, 0);
}

#[test]
fn bad_input_is_refused_before_any_write() {
    let cases: &[(&str, &str)] = &[
        (
            "version = 1\n[[pf]]\ndevice = \"eth9\"\nnumvfs = 2\n",
            "eth9",
        ),
        (
            "version = 1\n[[pf]]\ndevice = \"0000:02:00.0\"\nnumvfs = 2\n",
            "0000:02:00.0",
        ),
        (
            "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 8\n",
            "sriov_totalvfs 7",
        ),
        (
            "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 5\nmac = \"02:00:00:00:00:01\"\n",
            "VF index 5",
        ),
        (
            "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 0\ndriver = \"nosuchdrv\"\n",
            "nosuchdrv",
        ),
        (
            "version = 1\n[[pf]]\ndevice = \"eth0v1\"\nnumvfs = 2\n",
            "it is a VF",
        ),
        (
            "version = 1\n[[pf]]\ndevice = \"eth0\"\nnumvfs = 2\n[[pf]]\ndevice = \"0000:01:00.0\"\nnumvfs = 2\n",
            "twice",
        ),
    ];
    for (text, want) in cases {
        let (_d, k) = kernel(2);
        let before = state(&k);
        let err = apply_text(&k, text).unwrap_err();
        assert_eq!(err.index, 0, "{text}");
        assert!(err.source.is_bad_input(), "{text}: {err}");
        assert!(err.to_string().contains(want), "{text}: {err}");
        assert_eq!(k.writes(), 0, "{text}: {:?}", k.write_log());
        assert_eq!(state(&k), before);
    }
}

#[test]
fn link_state_and_rates_are_planned_and_applied() {
    let (_d, k) = kernel(1);
    apply_text(&k, "version = 1\n[[pf]]\ndevice = \"eth0\"\n[[pf.vf]]\nindex = 0\nstate = \"disable\"\nmax_tx_rate = 100\ntrust = true\n").unwrap();
    let v = k.vf("eth0", 0).unwrap();
    assert_eq!(
        (v.link_state, v.max_tx_rate, v.min_tx_rate, v.trust),
        (Some(VfLinkState::Disable), 100, 0, Some(true))
    );
}
