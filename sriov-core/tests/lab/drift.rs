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
