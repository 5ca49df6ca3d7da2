//! `vf_drift`: a VF handed to vfio-pci, changed while out, released: the
//! stream and `sriov list` name what was left behind; a VF released as it
//! was handed out names nothing.
use std::{fs, process::Command, time::Duration};

use serde_json::{Value, json};
use sriov_core::{events::DRIFT_FILE, host::System, ops};

use crate::{
    guest::{self, netdev_of, pf, sh, vf_bdf, wait_for},
    json_stream::{JsonStream, mono_ns, of_kind},
};

fn unbind(bdf: &str) {
    fs::write("/sys/bus/pci/drivers/vfio-pci/unbind", bdf).expect("unbind from vfio-pci");
}

fn sriov_list() -> String {
    let out = Command::new("sriov")
        .arg("list")
        .output()
        .expect("sriov list");
    assert!(out.status.success(), "{}", guest::output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_vlan_left_on_a_released_vf_is_a_drift_and_sriov_list_marks_it() {
    let _ = fs::remove_file(DRIFT_FILE);
    guest::set_numvfs(2);
    let (vf0, vf1) = (vf_bdf(0), vf_bdf(1));
    let ifname = netdev_of(&pf());
    let live = System::live();
    let mut stream = JsonStream::start("drift", "1");
    let t0 = mono_ns();
    // VF 0: handed out and released untouched
    ops::bind(&live, &vf0, "vfio-pci").expect("VF 0 to vfio-pci");
    unbind(&vf0);
    // VF 1: handed out, given a VLAN while out, released
    ops::bind(&live, &vf1, "vfio-pci").expect("VF 1 to vfio-pci");
    sh(
        "ip",
        &["link", "set", "dev", &ifname, "vf", "1", "vlan", "42"],
    );
    unbind(&vf1);
    let drifts = |lines: &[Value]| -> Vec<Value> {
        of_kind(lines, "vf_drift")
            .into_iter()
            .filter(|d| d["ts_ns"].as_u64().unwrap() > t0)
            .cloned()
            .collect()
    };
    wait_for("VF 1's drift", Duration::from_secs(20), || {
        !drifts(&stream.lines()).is_empty()
    });
    // the next tick's events are in too (a late drift of VF 0 would be)
    std::thread::sleep(Duration::from_secs(2));
    stream.stop();
    guest::keep_stream(stream.path(), "drift");
    let got = drifts(&stream.lines());
    assert_eq!(got.len(), 1, "one drift, VF 1's: {got:#?}");
    let d = &got[0];
    assert_eq!(d["device"], vf1.as_str(), "{d}");
    assert_eq!(d["vf"]["bdf"], vf1.as_str(), "{d}");
    assert_eq!(
        (&d["driver"], &d["released_by"]),
        (&json!("vfio-pci"), &json!("unbind")),
        "{d}"
    );
    assert_eq!(
        d["left"],
        json!([{"field": "vlan", "handed_out": {"vlan": 0, "qos": 0}, "now": {"vlan": 42, "qos": 0}}]),
        "{d}"
    );
    // sriov list marks VF 1 only
    let list = sriov_list();
    let marks: Vec<&str> = list.lines().filter(|l| l.contains("drifted")).collect();
    assert_eq!(marks.len(), 1, "{list}");
    assert!(
        marks[0].contains(&format!("VF 1 ({vf1})")) && marks[0].contains("vlan"),
        "{list}"
    );
    // put back as handed out: no mark any more
    sh(
        "ip",
        &["link", "set", "dev", &ifname, "vf", "1", "vlan", "0"],
    );
    let list = sriov_list();
    assert!(!list.contains("drifted"), "{list}");
    ops::bind(&live, &vf0, "igbvf").ok();
    ops::bind(&live, &vf1, "igbvf").ok();
    let _ = fs::remove_file(DRIFT_FILE);
    guest::set_numvfs(0);
}

/// The stream's `vf_drift` lines of `device` since `t0`.
fn drifts_of(lines: &[Value], device: &str, t0: u64) -> Vec<Value> {
    of_kind(lines, "vf_drift")
        .into_iter()
        .filter(|d| d["ts_ns"].as_u64().unwrap() > t0 && d["device"] == device)
        .cloned()
        .collect()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_vfio_user_closing_the_vf_releases_it_and_a_netdev_back_from_a_namespace_too() {
    use sriov_core::vf::open::{VfioHandle, preflight};
    let _ = fs::remove_file(DRIFT_FILE);
    guest::set_numvfs(2);
    let (vf0, vf1) = (vf_bdf(0), vf_bdf(1));
    let pf_if = netdev_of(&pf());
    let vf0_if = netdev_of(&vf0);
    let live = System::live();
    ops::bind(&live, &vf1, "vfio-pci").expect("VF 1 to vfio-pci");
    let mut stream = JsonStream::start("drift_release", "1");
    let t0 = mono_ns();
    // VF 1: opened by a VFIO user, given a VLAN, closed (still bound)
    let t = preflight(&live, &vf1).expect("preflight");
    let h = VfioHandle::open(&live, &t).expect("open VF 1 through VFIO");
    sh(
        "ip",
        &["link", "set", "dev", &pf_if, "vf", "1", "vlan", "42"],
    );
    drop(h);
    wait_for("VF 1's drift at close", Duration::from_secs(20), || {
        !drifts_of(&stream.lines(), &vf1, t0).is_empty()
    });
    // unbound afterwards: released already, as it was closed: no second one
    unbind(&vf1);
    // VF 0: its netdev to another namespace, a spoofchk change meanwhile,
    // back
    sh("ip", &["netns", "add", "drift_ns"]);
    sh("ip", &["link", "set", "dev", &vf0_if, "netns", "drift_ns"]);
    wait_for(
        "an inventory without VF 0's netdev",
        Duration::from_secs(20),
        || {
            of_kind(&stream.lines(), "inventory").iter().any(|i| {
                i["ts_ns"].as_u64().unwrap() > t0
                    && i["pfs"][0]["vfs"].as_array().is_some_and(|v| {
                        v.iter()
                            .any(|v| v["bdf"] == vf0.as_str() && v["netdev"].is_null())
                    })
            })
        },
    );
    sh(
        "ip",
        &["link", "set", "dev", &pf_if, "vf", "0", "spoofchk", "off"],
    );
    sh(
        "ip",
        &[
            "-n", "drift_ns", "link", "set", "dev", &vf0_if, "netns", "1",
        ],
    );
    wait_for(
        "VF 0's drift when its netdev is back",
        Duration::from_secs(20),
        || !drifts_of(&stream.lines(), &vf0, t0).is_empty(),
    );
    std::thread::sleep(Duration::from_secs(2));
    stream.stop();
    guest::keep_stream(stream.path(), "drift_release");
    let lines = stream.lines();
    let d1 = drifts_of(&lines, &vf1, t0);
    assert_eq!(d1.len(), 1, "VF 1: one drift, at the close: {d1:#?}");
    assert_eq!(d1[0]["released_by"], "vfio_close", "{}", d1[0]);
    assert_eq!(
        d1[0]["left"],
        json!([{"field": "vlan", "handed_out": {"vlan": 0, "qos": 0}, "now": {"vlan": 42, "qos": 0}}]),
        "{}",
        d1[0]
    );
    let d0 = drifts_of(&lines, &vf0, t0);
    assert_eq!(d0.len(), 1, "VF 0: {d0:#?}");
    assert_eq!(d0[0]["released_by"], "netns", "{}", d0[0]);
    assert_eq!(
        d0[0]["left"],
        json!([{"field": "spoofchk", "handed_out": true, "now": false}]),
        "{}",
        d0[0]
    );
    sh(
        "ip",
        &["link", "set", "dev", &pf_if, "vf", "1", "vlan", "0"],
    );
    sh(
        "ip",
        &["link", "set", "dev", &pf_if, "vf", "0", "spoofchk", "on"],
    );
    let _ = Command::new("ip")
        .args(["netns", "del", "drift_ns"])
        .status();
    ops::bind(&live, &vf1, "igbvf").ok();
    let _ = fs::remove_file(DRIFT_FILE);
    guest::set_numvfs(0);
}
