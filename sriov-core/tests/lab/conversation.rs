//! What is said to and about a VF (issue #14), checked against what the
//! test itself did: the mailbox messages our own VFIO driver sends (and
//! igbvf's bring-up), config space accesses made through VFIO, and
//! administrative changes by a known user, the `sriov` CLI and a shell.
use std::{
    fs,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sriov_core::{
    host::System,
    ops,
    types::MacAddr,
    vf::{
        Igbvf, VfOptions,
        open::{VfioHandle, preflight},
    },
};

use crate::{
    guest::{self, dev, netdev_of, pf, sh, vf_bdf, wait_for},
    json_stream::{JsonStream, mono_ns, of_kind},
};

/// One mailbox line as (direction, msg, verdict, args) text, e.g.
/// `vf_to_pf SET_MAC_ADDR - mac=02:..`.
fn brief(m: &Value) -> String {
    let args = match m["args"].as_str() {
        Some("mac") => format!(" mac={}", m["mac"].as_str().unwrap_or("?")),
        Some("vlan") => format!(" vlan={} add={}", m["vlan"], m["add"]),
        Some("max_frame") => format!(" bytes={}", m["bytes"]),
        Some("multicast") => format!(" count={}", m["count"]),
        _ => String::new(),
    };
    format!(
        "{} {} {}{args}",
        m["direction"].as_str().unwrap_or("?"),
        m["msg"].as_str().unwrap_or("?"),
        m["verdict"].as_str().unwrap_or("-"),
    )
}

/// The mailbox lines of VF `index` since `t0`, without the PF's control
/// messages (pings the test did not cause), and how many those were.
fn conversation(lines: &[Value], index: u32, t0: u64) -> (Vec<&Value>, usize) {
    let pf_bdf = pf();
    let all: Vec<&Value> = of_kind(lines, "mailbox")
        .into_iter()
        .filter(|m| m["ts_ns"].as_u64().unwrap() > t0 && m["vf_index"] == index)
        .collect();
    for m in &all {
        assert_eq!(m["pf"], pf_bdf.as_str(), "the PF of {m}");
    }
    let control = all.iter().filter(|m| m["msg"] == "PF_CONTROL").count();
    (
        all.into_iter()
            .filter(|m| m["msg"] != "PF_CONTROL")
            .collect(),
        control,
    )
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn our_drivers_mailbox_conversation_is_seen_in_order_with_the_nack() {
    guest::set_numvfs(2);
    let vf1 = vf_bdf(1);
    ops::bind(&System::live(), &vf1, "vfio-pci").expect("bind VF 1 to vfio-pci");
    let mut stream = JsonStream::start("mailbox", "1");
    let t0 = mono_ns();
    let own: MacAddr = "02:00:00:00:14:01".parse().unwrap();
    let refused: MacAddr = "02:00:00:00:14:99".parse().unwrap();
    let admin = "02:00:00:00:14:0a";
    // multicast groups (MacAddr's parser takes unicast only)
    let mc = vec![
        MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
    ];
    let opts = VfOptions {
        mac: Some(own),
        ..Default::default()
    };
    let lpe = opts.max_frame;
    let mut vf = Igbvf::open(&System::live(), &vf1, opts).expect("open VF 1 through VFIO");
    vf.set_vlan(42, true).expect("SET_VLAN 42");
    vf.set_max_frame(1522).expect("SET_LPE 1522");
    vf.set_multicast(&mc).expect("SET_MULTICAST");
    let ifname = netdev_of(&pf());
    sh(
        "ip",
        &["link", "set", "dev", &ifname, "vf", "1", "mac", admin],
    );
    let e = vf
        .set_mac(refused)
        .expect_err("the PF must refuse a MAC over the admin's");
    assert!(e.to_string().contains("set administratively"), "{e}");
    drop(vf);
    wait_for("the NACK in the stream", Duration::from_secs(20), || {
        of_kind(&stream.lines(), "mailbox")
            .iter()
            .any(|m| m["verdict"] == "nack" && m["msg"] == "SET_MAC_ADDR")
    });
    stream.stop();
    let lines = stream.lines();
    guest::keep_stream(stream.path(), "mailbox");
    let (said, control) = conversation(&lines, 1, t0);
    let got: Vec<String> = said.iter().map(|m| brief(m)).collect();
    eprintln!("VF 1's mailbox ({control} PF control messages left out):");
    for (m, g) in said.iter().zip(&got) {
        eprintln!("  {g}  latency {}", m["latency_ns"]);
    }
    let want = [
        "vf_to_pf VF_RESET -".to_string(),
        // vfio-pci's FLR made the PF forget VF 1's MAC: it NACKs the reset
        "pf_to_vf VF_RESET nack".to_string(),
        format!("vf_to_pf SET_MAC_ADDR - mac={own}"),
        format!("pf_to_vf SET_MAC_ADDR ack mac={own}"),
        format!("vf_to_pf SET_LPE - bytes={lpe}"),
        format!("pf_to_vf SET_LPE ack bytes={lpe}"),
        "vf_to_pf SET_VLAN - vlan=42 add=true".to_string(),
        "pf_to_vf SET_VLAN ack vlan=42 add=true".to_string(),
        "vf_to_pf SET_LPE - bytes=1522".to_string(),
        "pf_to_vf SET_LPE ack bytes=1522".to_string(),
        "vf_to_pf SET_MULTICAST - count=2".to_string(),
        "pf_to_vf SET_MULTICAST ack count=2".to_string(),
        format!("vf_to_pf SET_MAC_ADDR - mac={refused}"),
        // the NACK names what was refused
        format!("pf_to_vf SET_MAC_ADDR nack mac={refused}"),
    ];
    assert_eq!(got, want, "VF 1's mailbox conversation");
    for m in &said {
        assert_eq!(m["vf"]["bdf"], vf1.as_str(), "attributed to VF 1: {m}");
        if m["direction"] == "pf_to_vf" {
            let l = m["latency_ns"].as_u64().unwrap_or(0);
            assert!(l > 0 && l < 5_000_000_000, "reply latency {l}: {m}");
        }
    }
    ops::bind(&System::live(), &vf1, "igbvf").expect("VF 1 back to igbvf");
    guest::set_numvfs(0);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn igbvf_bring_up_on_a_new_vf_is_seen() {
    guest::set_numvfs(0);
    let mut stream = JsonStream::start("igbvf_mailbox", "1");
    let t0 = mono_ns();
    guest::set_numvfs(1);
    let vf0 = vf_bdf(0);
    let ifname = netdev_of(&vf0);
    sh("ip", &["link", "set", "dev", &ifname, "up"]);
    wait_for(
        "SET_LPE acked after link up",
        Duration::from_secs(30),
        || {
            let lines = stream.lines();
            conversation(&lines, 0, t0)
                .0
                .iter()
                .any(|m| m["msg"] == "SET_LPE" && m["verdict"] == "ack")
        },
    );
    stream.stop();
    let lines = stream.lines();
    let (said, control) = conversation(&lines, 0, t0);
    // the PF's NACKs to a VF that acks before it is clear to send (igb's
    // `igb_rcv_ack_from_vf`): word 0 the NACK alone, answering no request.
    // The 6.1 guest's igb sends three while a new VF comes up, 6.12 none
    let (failed, said): (Vec<&Value>, Vec<&Value>) = said
        .into_iter()
        .partition(|m| m["msg"] == "NOT_CLEAR_TO_SEND");
    for m in &failed {
        assert_eq!(
            (&m["direction"], &m["msg_type"], &m["verdict"]),
            (&json!("pf_to_vf"), &json!(0), &json!("nack")),
            "{m}"
        );
        assert_eq!(m["words"].as_array().map(Vec::len), Some(1), "{m}");
    }
    let got: Vec<String> = said.iter().map(|m| brief(m)).collect();
    eprintln!(
        "igbvf on VF 0 ({control} PF control messages and {} NOT_CLEAR_TO_SEND left out): {got:#?}",
        failed.len()
    );
    // probe: resets, which the PF NACKs (no MAC yet for a new VF): one in
    // igbvf's probe and, on 6.12, another in igbvf_reset; then the random
    // MAC igbvf made up, which is the netdev's address
    let mac = guest::read(format!("/sys/class/net/{ifname}/address"));
    let resets = got
        .chunks(2)
        .take_while(|p| p == &["vf_to_pf VF_RESET -", "pf_to_vf VF_RESET nack"])
        .count();
    assert!((1..=2).contains(&resets), "{got:#?}");
    let want = [
        format!("vf_to_pf SET_MAC_ADDR - mac={mac}"),
        format!("pf_to_vf SET_MAC_ADDR ack mac={mac}"),
    ];
    assert_eq!(
        got.get(2 * resets..2 * resets + want.len()),
        Some(&want[..]),
        "{got:#?}"
    );
    // each request has its reply, in order, and every message is VF 0's
    for pair in said.chunks(2) {
        assert_eq!(pair.len(), 2, "a request without its reply: {got:#?}");
        assert_eq!(pair[0]["direction"], "vf_to_pf", "{got:#?}");
        assert_eq!(pair[1]["direction"], "pf_to_vf", "{got:#?}");
        assert_eq!(pair[0]["msg"], pair[1]["msg"], "{got:#?}");
        assert!(pair[1]["latency_ns"].as_u64().is_some(), "{}", pair[1]);
    }
    for m in &said {
        assert_eq!(m["vf"]["bdf"], vf0.as_str(), "{m}");
    }
    // on link up: the frame size (1500 + header, FCS and a VLAN tag) and
    // the multicast list, both acked
    assert!(
        got.contains(&"pf_to_vf SET_LPE ack bytes=1522".to_string()),
        "{got:#?}"
    );
    assert!(
        said.iter()
            .any(|m| m["msg"] == "SET_MULTICAST" && m["verdict"] == "ack"),
        "{got:#?}"
    );
    guest::set_numvfs(0);
}

/// Offset of standard capability `id` in `bdf`'s config space (read from
/// sysfs by the test itself).
fn cap_offset(bdf: &str, id: u8) -> u64 {
    let c = fs::read(dev(bdf).join("config")).expect("config");
    let mut p = c[0x34] as usize;
    for _ in 0..48 {
        if p < 0x40 || p + 1 >= c.len() {
            break;
        }
        if c[p] == id {
            return p as u64;
        }
        p = c[p + 1] as usize;
    }
    panic!("no capability {id:#x} in {bdf}");
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn config_space_accesses_through_vfio_are_seen_register_by_register() {
    guest::set_numvfs(2);
    let vf1 = vf_bdf(1);
    let live = System::live();
    ops::bind(&live, &vf1, "vfio-pci").expect("bind VF 1 to vfio-pci");
    let msix = cap_offset(&vf1, 0x11);
    let pcie = cap_offset(&vf1, 0x10);
    let mut stream = JsonStream::start("config_access", "1");
    let t0 = mono_ns();
    let t = preflight(&live, &vf1).expect("preflight");
    let h = VfioHandle::open(&live, &t).expect("open VF 1 through VFIO");
    let file = sriov_core::vf::mmio::PciConfig::new(&h.device, &vf1).expect("config");
    // what the test does, register by register
    let cmd = file.read16(0x04).expect("COMMAND");
    file.write16(0x04, cmd | 0x0002).expect("COMMAND write");
    let mc = file.read16(msix + 2).expect("MSI-X message control");
    let devctl = file.read16(pcie + 8).expect("PCIe device control");
    // a polling VMM: the same register 300 times
    let polls = 300u64;
    for _ in 0..polls {
        file.read16(pcie + 8).expect("poll");
    }
    drop(file);
    drop(h);
    let me = std::process::id();
    let mine = |lines: &[Value]| -> Vec<Value> {
        of_kind(lines, "config_access")
            .into_iter()
            .filter(|a| a["ts_ns"].as_u64().unwrap() > t0 && a["process"]["pid"] == me)
            .cloned()
            .collect()
    };
    // the summary of the polls comes when its window (1 s) ends
    let want_total = 4 + polls;
    wait_for(
        "every access in the stream",
        Duration::from_secs(20),
        || {
            mine(&stream.lines())
                .iter()
                .map(|a| a["count"].as_u64().unwrap())
                .sum::<u64>()
                >= want_total
        },
    );
    stream.stop();
    let got = mine(&stream.lines());
    guest::keep_stream(stream.path(), "config_access");
    for a in &got {
        assert_eq!(a["device"], vf1.as_str(), "{a}");
        assert_eq!(a["vf"]["bdf"], vf1.as_str(), "{a}");
    }
    let first: Vec<(String, u64, u64, String, u64)> = got
        .iter()
        .take(4)
        .map(|a| {
            (
                a["op"].as_str().unwrap().to_string(),
                a["offset"].as_u64().unwrap(),
                a["width"].as_u64().unwrap(),
                a["register"].as_str().unwrap().to_string(),
                a["value"]
                    .as_u64()
                    .expect("a recorded access has its value"),
            )
        })
        .collect();
    eprintln!("first accesses: {first:?}");
    let want = vec![
        ("read".into(), 4, 2, "COMMAND".into(), u64::from(cmd)),
        ("write".into(), 4, 2, "COMMAND".into(), u64::from(cmd | 2)),
        (
            "read".into(),
            msix + 2,
            2,
            "MSI-X.MESSAGE_CONTROL".into(),
            u64::from(mc),
        ),
        (
            "read".into(),
            pcie + 8,
            2,
            "PCIe.DEVICE_CONTROL".into(),
            u64::from(devctl),
        ),
    ];
    assert_eq!(first, want);
    // the polls: one line per window after the first access, with counts
    // that add up to what the test did
    let polled: Vec<&Value> = got.iter().filter(|a| a["offset"] == pcie + 8).collect();
    let total: u64 = polled.iter().map(|a| a["count"].as_u64().unwrap()).sum();
    assert_eq!(total, polls + 1, "device control reads: {polled:?}");
    assert_eq!(
        polled.last().unwrap()["total"],
        polls + 1,
        "the kernel's count since load: {polled:?}"
    );
    // counted, not recorded: no values
    assert!(
        polled[1..].iter().all(|a| a["value"].is_null()),
        "{polled:?}"
    );
    assert!(
        polled.len() < 20,
        "{} lines for {} reads: not rate limited",
        polled.len(),
        polls + 1
    );
    ops::bind(&live, &vf1, "igbvf").expect("VF 1 back to igbvf");
    guest::set_numvfs(0);
}

/// The `admin_change` lines of `field` about `device` since `t0`.
fn changes<'a>(lines: &'a [Value], field: &str, device: &str, t0: u64) -> Vec<&'a Value> {
    of_kind(lines, "admin_change")
        .into_iter()
        .filter(|c| {
            c["ts_ns"].as_u64().unwrap() > t0 && c["field"] == field && c["device"] == device
        })
        .collect()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn admin_changes_name_old_and_new_values_and_who_made_them() {
    guest::set_numvfs(2);
    let vf1 = vf_bdf(1);
    let ifname = netdev_of(&pf());
    let mut stream = JsonStream::start("admin_change", "1");
    // 1. `ip link` as uid 4321 with only CAP_NET_ADMIN, from a copy of ip
    //    with its own name
    let tool = "/tmp/vlan-setter";
    // the lab image has ip at /usr/bin/ip, and setpriv (util-linux)
    fs::copy("/usr/bin/ip", tool).expect("copy ip");
    let t0 = mono_ns();
    let child = Command::new("setpriv")
        .args([
            "--reuid=4321",
            "--regid=4321",
            "--clear-groups",
            "--inh-caps=+net_admin",
            "--ambient-caps=+net_admin",
            tool,
            "link",
            "set",
            "dev",
            &ifname,
            "vf",
            "1",
            "vlan",
            "42",
        ])
        .spawn()
        .expect("setpriv");
    let ip_pid = child.id();
    let out = child.wait_with_output().expect("vlan-setter");
    assert!(out.status.success(), "{out:?}");
    // 2. the sriov CLI
    let t1 = mono_ns();
    let out = Command::new("sriov")
        .args(["vf", "set", &ifname, "1", "spoofchk", "off"])
        .output()
        .expect("sriov");
    assert!(out.status.success(), "{}", guest::output_text(&out));
    // 3. a shell writing sysfs by hand
    let t2 = mono_ns();
    sh(
        "sh",
        &[
            "-c",
            &format!("echo vfio-pci > /sys/bus/pci/devices/{vf1}/driver_override"),
        ],
    );
    let t3 = mono_ns();
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let lines = stream.lines();
        if !changes(&lines, "driver_override", &vf1, t2).is_empty() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    stream.stop();
    guest::keep_stream(stream.path(), "admin_change");
    fs::write(dev(&vf1).join("driver_override"), "\n").expect("clear driver_override");

    let vlan = changes(&lines, "vlan", &vf1, t0);
    assert_eq!(vlan.len(), 1, "one VLAN change: {vlan:?}");
    let c = vlan[0];
    assert_eq!(c["pf"], pf().as_str());
    assert_eq!(c["vf_index"], 1);
    assert_eq!(c["old"], json!({"vlan": 0, "qos": 0}), "{c}");
    assert_eq!(c["new"], json!({"vlan": 42, "qos": 0}), "{c}");
    assert_eq!(c["ret"], 0);
    assert_eq!(c["actor"]["uid"], 4321, "{c}");
    assert_eq!(c["actor"]["pid"], ip_pid, "{c}");
    assert_eq!(c["actor"]["comm"], "vlan-setter", "{c}");
    assert!(
        c["actor"]["exe"]
            .as_str()
            .unwrap_or("")
            .ends_with("vlan-setter"),
        "{c}"
    );
    assert!(c["ts_ns"].as_u64().unwrap() < t1, "{c}");

    let spoof = changes(&lines, "spoofchk", &vf1, t1);
    assert_eq!(spoof.len(), 1, "one spoofchk change: {spoof:?}");
    let c = spoof[0];
    assert_eq!((&c["old"], &c["new"]), (&json!(true), &json!(false)), "{c}");
    assert_eq!(c["actor"]["comm"], "sriov", "{c}");
    assert_eq!(c["actor"]["uid"], 0, "{c}");
    assert!(c["ts_ns"].as_u64().unwrap() < t2, "{c}");

    let ovr = changes(&lines, "driver_override", &vf1, t2);
    assert_eq!(ovr.len(), 1, "one driver_override change: {ovr:?}");
    let c = ovr[0];
    assert_eq!(
        (&c["old"], &c["new"]),
        (&Value::Null, &json!("vfio-pci")),
        "{c}"
    );
    assert_eq!(c["actor"]["comm"], "sh", "{c}");
    assert!(c["ts_ns"].as_u64().unwrap() < t3, "{c}");
    let _ = fs::remove_file(tool);
    guest::set_numvfs(0);
}
