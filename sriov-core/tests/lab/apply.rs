//! `sriov apply` on the emulated 82576, checked through iproute2's JSON and
//! sysfs (not through the library's own reading).
use std::{fs, process::Command};

use serde_json::Value;

use crate::guest::{self, dev, link_name, pf, read};

/// What `ip -j link show` and sysfs say about the PF and its VFs.
fn observed() -> Value {
    let pf_bdf = pf();
    let ifname = guest::netdev_of(&pf_bdf);
    let out = guest::sh("ip", &["-j", "link", "show", "dev", &ifname]);
    let links: Value = serde_json::from_str(&out).expect("ip -j output");
    let vfs: Vec<Value> = links[0]["vfinfo_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let vf = v["vf"].as_u64().unwrap();
            let vl = &v["vlan_list"][0];
            let bdf = link_name(dev(&pf_bdf).join(format!("virtfn{vf}")));
            serde_json::json!({
                "vf": vf,
                "mac": v["address"],
                "vlan": vl["vlan"].as_u64().unwrap_or(0),
                "qos": vl["qos"].as_u64().unwrap_or(0),
                "spoofchk": v["spoofchk"],
                "trust": v["trust"],
                "driver": bdf.as_ref().and_then(|b| link_name(dev(b).join("driver"))),
            })
        })
        .collect();
    serde_json::json!({ "numvfs": read(dev(&pf_bdf).join("sriov_numvfs")), "vfs": vfs })
}

fn sriov(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("sriov")
        .args(args)
        .output()
        .expect("run /lab/bin/sriov");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(name: &str, body: &str) -> String {
    let path = format!("/tmp/{name}.toml");
    fs::write(
        &path,
        format!("version = 1\n[[pf]]\ndevice = \"{}\"\n{body}", pf()),
    )
    .unwrap();
    path
}

const CONFIG: &str = "numvfs = 4
[[pf.vf]]
index = 0
mac = \"02:00:00:00:00:01\"
vlan = 10
[[pf.vf]]
index = 1
mac = \"02:00:00:00:00:02\"
vlan = 20
qos = 3
[[pf.vf]]
index = 2
spoofchk = false
[[pf.vf]]
index = 3
driver = \"vfio-pci\"
";

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn apply_configures_vfs_and_a_second_apply_writes_nothing() {
    guest::set_numvfs(0);
    let file = write_config("good", CONFIG);
    let (code, out, err) = sriov(&["apply", &file]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    let o = observed();
    assert_eq!(o["numvfs"], "4", "{o:#}");
    let vfs = o["vfs"].as_array().unwrap();
    assert_eq!(vfs.len(), 4, "{o:#}");
    assert_eq!(
        (vfs[0]["mac"].as_str(), vfs[0]["vlan"].as_u64()),
        (Some("02:00:00:00:00:01"), Some(10))
    );
    assert_eq!(
        (
            vfs[1]["mac"].as_str(),
            vfs[1]["vlan"].as_u64(),
            vfs[1]["qos"].as_u64()
        ),
        (Some("02:00:00:00:00:02"), Some(20), Some(3))
    );
    assert_eq!(vfs[2]["spoofchk"], false);
    assert_eq!(vfs[3]["spoofchk"], true);
    assert_eq!(vfs[3]["driver"], "vfio-pci");
    assert_eq!(vfs[0]["driver"], "igbvf");

    let (code, out, err) = sriov(&["apply", "--json", &file]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).expect("apply --json");
    assert_eq!(report["writes"], 0, "second apply: {report:#}");
    assert_eq!(report["plan"]["steps"].as_array().map(Vec::len), Some(0));
    let (_, out, _) = sriov(&["apply", &file]);
    assert!(out.contains("no changes (0 writes)"), "{out}");
    assert_eq!(observed(), o);
}

/// A config that changes numvfs, VF 0's MAC and VF 1's VLAN, then binds VF 2
/// to `driver`.
fn changes(numvfs: u32, driver: &str) -> String {
    format!(
        "numvfs = {numvfs}\n[[pf.vf]]\nindex = 0\nmac = \"02:00:00:00:00:11\"\n\
         [[pf.vf]]\nindex = 1\nvlan = 99\n[[pf.vf]]\nindex = 2\ndriver = \"{driver}\"\n"
    )
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_failing_apply_leaves_numvfs_macs_vlans_and_bindings_as_before() {
    guest::set_numvfs(0);
    let (code, _, err) = sriov(&["apply", &write_config("base", CONFIG)]);
    assert_eq!(code, 0, "{err}");
    let before = observed();

    // a driver that does not exist: refused before any write (exit 2)
    let bad = changes(4, "nosuchdriver");
    let (code, _, err) = sriov(&["apply", &write_config("nodriver", &bad)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nosuchdriver") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(observed(), before);

    // a driver that exists but cannot drive a VF (pcieport only binds to
    // PCIe ports): the bind fails midway, after numvfs, MACs and VLANs changed
    let midway = changes(5, "pcieport");
    let (code, out, err) = sriov(&["apply", &write_config("midway", &midway)]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("pcieport") && err.contains("rolled back"),
        "{err}"
    );
    assert!(
        out.contains("rollback: "),
        "the journal shows the rollback:\n{out}"
    );
    assert_eq!(observed(), before, "journal:\n{out}");
    guest::set_numvfs(0);
}
