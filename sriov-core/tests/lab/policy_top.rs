//! `sriov-top --json --policy FILE` end to end: the policy is checked,
//! loaded (pins 0600 under /sys/fs/bpf/sriov-top), violations come out as
//! `policy_violation` lines with the VF's identity, a changed file is
//! reloaded without a restart (SIGHUP), and the policy goes away on exit
//! unless `--persist`.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::guest::{self, dev, pf, vf_bdf, wait_for};

const OUT: &str = "/tmp/policy.ndjson";
const FILE: &str = "/tmp/policy.toml";
const PINS: &str = "/sys/fs/bpf/sriov-top";

fn lines() -> Vec<Value> {
    fs::read_to_string(OUT)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn of_kind(kind: &str) -> Vec<Value> {
    lines().into_iter().filter(|l| l["kind"] == kind).collect()
}

fn policy_file(uids: &str) -> String {
    format!(
        "version = 1\nmode = \"enforce\"\n\n[[vf]]\npf = \"{}\"\nindex = 1\nvfio_open = {{ uids = [{uids}] }}\n",
        pf()
    )
}

/// sriov-top running; killed if the test fails before stopping it, so a
/// failure does not leave a policy in force for the next test.
struct Top(Option<Child>);

impl Top {
    fn child(&self) -> &Child {
        self.0.as_ref().expect("running")
    }

    /// SIGINT; it must exit with status 0.
    fn stop(mut self) {
        guest::interrupt_and_wait(self.0.take().expect("running"));
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = fs::remove_dir_all(PINS);
        }
    }
}

fn start(extra: &[&str]) -> Top {
    let _ = fs::remove_file(OUT);
    let child = Command::new("sriov-top")
        .args([
            "--json",
            "--interval",
            "0.5",
            "--output",
            OUT,
            "--policy",
            FILE,
        ])
        .args(extra)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sriov-top");
    let top = Top(Some(child));
    wait_for("the policy_loaded line", Duration::from_secs(60), || {
        !of_kind("policy_loaded").is_empty()
    });
    top
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

fn vf1_on_vfio() -> (String, String) {
    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    sriov_core::ops::bind(&sriov_core::host::System::live(), &vf, "vfio-pci").unwrap();
    let group = guest::link_name(dev(&vf).join("iommu_group")).unwrap();
    fs::set_permissions(
        format!("/dev/vfio/{group}"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    (vf, group)
}

fn cleanup(vf: &str) {
    sriov_core::ops::bind(&sriov_core::host::System::live(), vf, "igbvf").unwrap();
    guest::set_numvfs(0);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn sriov_top_enforces_reloads_and_removes_the_policy() {
    let (vf, group) = vf1_on_vfio();
    // bad input: exit 2, nothing loaded
    fs::write(
        FILE,
        "version = 1\n[[vf]]\npf = \"nope\"\nindex = 1\nmax_pps = 5\n",
    )
    .unwrap();
    let st = Command::new("sriov-top")
        .args(["--json", "--policy", FILE])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    assert!(!fs::exists(PINS).unwrap(), "nothing pinned");

    fs::write(FILE, policy_file("0")).unwrap();
    let top = start(&[]);
    let loaded = &of_kind("policy_loaded")[0];
    assert_eq!(loaded["mode"], "enforce", "{loaded}");
    assert_eq!(loaded["vfs"], 1, "{loaded}");
    // pinned, 0600
    let pins: Vec<_> = fs::read_dir(PINS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(pins.len() >= 5, "{pins:?}");
    for p in &pins {
        let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    assert!(guest::open_group_as(&group, 1000).contains("Operation not permitted"));
    wait_for("the policy_violation line", Duration::from_secs(10), || {
        !of_kind("policy_violation").is_empty()
    });
    let v = &of_kind("policy_violation")[0];
    assert_eq!(v["rule"], "vfio_open", "{v}");
    assert_eq!(v["action"], "denied", "{v}");
    assert_eq!(v["uid"], 1000, "{v}");
    assert_eq!(v["vf"]["bdf"], vf.as_str(), "{v}");
    assert_eq!(v["vf"]["index"], 1, "{v}");
    assert_eq!(v["process"]["comm"], "sh", "{v}");

    // a new file, SIGHUP: uid 1000 is allowed now, without a restart
    fs::write(FILE, policy_file("0, 1000")).unwrap();
    signal(top.child(), nix::sys::signal::Signal::SIGHUP);
    wait_for(
        "the second policy_loaded line",
        Duration::from_secs(10),
        || of_kind("policy_loaded").len() >= 2,
    );
    assert_eq!(guest::open_group_as(&group, 1000), "opened");
    assert!(guest::open_group_as(&group, 1001).contains("Operation not permitted"));
    // a broken file: a warning, the policy in force stays
    fs::write(FILE, "version = 1\nmode = \"strict\"\n").unwrap();
    signal(top.child(), nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        of_kind("policy_loaded").len(),
        2,
        "the bad file was not loaded"
    );
    assert!(guest::open_group_as(&group, 1001).contains("Operation not permitted"));
    top.stop();
    guest::keep_stream(OUT, "policy_top_enforce_reload");
    // gone with the process
    assert!(!fs::exists(PINS).unwrap(), "pins removed on exit");
    assert_eq!(guest::open_group_as(&group, 1001), "opened");
    cleanup(&vf);
}

/// SIGTERM (what systemd and Kubernetes send) cleans up as SIGINT does:
/// exit 0, the policy off, the pins gone.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn sigterm_removes_the_policy_as_sigint_does() {
    let (vf, group) = vf1_on_vfio();
    fs::write(FILE, policy_file("0")).unwrap();
    let mut top = start(&[]);
    assert!(guest::open_group_as(&group, 1000).contains("Operation not permitted"));
    let child = top.0.take().expect("running");
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert!(!fs::exists(PINS).unwrap(), "pins removed on SIGTERM");
    assert_eq!(guest::open_group_as(&group, 1000), "opened", "policy off");
    cleanup(&vf);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn with_persist_the_policy_outlives_sriov_top_until_the_pins_go() {
    let (vf, group) = vf1_on_vfio();
    fs::write(FILE, policy_file("0")).unwrap();
    let top = start(&["--persist"]);
    top.stop();
    assert!(fs::exists(format!("{PINS}/links/file_open")).unwrap());
    assert!(
        guest::open_group_as(&group, 1000).contains("Operation not permitted"),
        "still enforced after exit"
    );
    fs::remove_dir_all(PINS).unwrap();
    // the last reference to the links is gone: unattached
    wait_for("the policy to go", Duration::from_secs(10), || {
        guest::open_group_as(&group, 1000) == "opened"
    });
    cleanup(&vf);
}

/// `ip -j link show PF`: VF `index`'s link state ("auto", "disable", ...).
fn vf_link_state(index: u64) -> String {
    let ifname = guest::netdev_of(&pf());
    let out = guest::sh("ip", &["-j", "link", "show", "dev", &ifname]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["vfinfo_list"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["vf"] == index))
        .map(|e| e["link_state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn an_irq_storm_is_reported_and_its_link_down_action_tried() {
    guest::set_numvfs(2);
    let vf0 = vf_bdf(0);
    assert_ne!(vf_link_state(0), "disable");
    // the witness: can the PF driver set a VF's link state at all? (on VF 1,
    // which the policy does not touch)
    let eth = guest::netdev_of(&pf());
    let direct = std::process::Command::new("ip")
        .args(["link", "set", "dev", &eth, "vf", "1", "state", "disable"])
        .output()
        .unwrap();
    let supported = direct.status.success();
    if supported {
        guest::sh(
            "ip",
            &["link", "set", "dev", &eth, "vf", "1", "state", "auto"],
        );
    } else {
        let why = String::from_utf8_lossy(&direct.stderr);
        assert!(
            why.contains("not supported") || why.contains("Operation not supported"),
            "{why}"
        );
    }
    fs::write(
        FILE,
        format!(
            "version = 1\n[[vf]]\npf = \"{}\"\nindex = 0\nirq_storm_per_s = 5\nirq_storm_action = \"link_down\"\n",
            pf()
        ),
    )
    .unwrap();
    let top = start(&[]);
    // VF 0's vectors fire well above 5/s while it sends
    let t = std::time::Instant::now();
    while of_kind("policy_violation").is_empty() && t.elapsed() < Duration::from_secs(30) {
        guest::vf_traffic(&vf0, 400);
        let _ = guest::sh("ip", &["addr", "flush", "dev", &guest::netdev_of(&vf0)]);
    }
    let v = of_kind("policy_violation");
    assert!(!v.is_empty(), "no irq_storm violation in 30 s");
    let v = &v[0];
    assert_eq!(v["rule"], "irq_storm", "{v}");
    assert_eq!(v["limit"], 5, "{v}");
    assert!(v["value"].as_u64().unwrap() > 5, "{v}");
    assert_eq!(v["vf"]["bdf"], vf0.as_str(), "{v}");
    // what the PF driver can do decides the outcome: with link state, the
    // link goes down; without (igb has no ndo_set_vf_link_state), the action
    // is tried, refused, and the event says so (an alert, with the reason)
    if supported {
        assert_eq!(v["action"], "link_down", "{v}");
        assert_eq!(vf_link_state(0), "disable", "the PF disabled VF 0's link");
    } else {
        assert_eq!(v["action"], "alert", "{v}");
        let d = v["detail"].as_str().unwrap_or("");
        assert!(
            d.contains("link_down failed") && d.contains("not support"),
            "{v}"
        );
        assert_ne!(vf_link_state(0), "disable");
    }
    top.stop();
    guest::keep_stream(OUT, "policy_top_irq_storm");
    guest::set_numvfs(0);
}
