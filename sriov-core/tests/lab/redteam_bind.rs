//! The policy where the kernel acts (issue #12): however a driver comes to
//! a VF, or however a VF count gets past the sysfs check, the bind and the
//! VF creation themselves are refused. The routes: a driver module loaded
//! while a VF is unbound (no sysfs write names the VF), and a second thread
//! that rewrites the text of a `sriov_numvfs` write after the check read it.
use std::{
    fs,
    os::unix::fs::FileExt as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use sriov_core::{
    host::System,
    ops,
    policy::{Mode, VfRules},
};
use sriov_ebpf::record::{ACTION_AUDITED, ACTION_DENIED, PolicyRecord, V_DRIVER, V_NUMVFS_RANGE};

use crate::{
    guest::{self, dev, pf, vf_bdf},
    policy::{enforce, pf_policy, policy, runtime, violations, write_as},
};

/// `sriov_ebpf::policy::DRIVER_AT_BIND`.
const AT_BIND: u64 = 5;

/// VF 1 may have vfio-pci only; it is unbound, then igbvf is unloaded and
/// loaded again: the module binds every unbound device it matches. Returns
/// VF 1's and VF 0's drivers after the load, and the records.
fn module_load(mode: Mode) -> (Option<String>, Option<String>, Vec<PolicyRecord>) {
    guest::sh("modprobe", &["vfio-pci"]);
    guest::set_numvfs(2);
    let (vf0, vf1) = (vf_bdf(0), vf_bdf(1));
    let rt = runtime();
    let rules = VfRules {
        allowed_drivers: Some(vec!["vfio-pci".into()]),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 1, rules, vec![]));
    let unbind = dev(&vf1).join("driver/unbind");
    assert_eq!(write_as("sh", unbind.to_str().unwrap(), &vf1), "ok");
    guest::sh("rmmod", &["igbvf"]);
    guest::sh("modprobe", &["igbvf"]);
    guest::wait_for("VF 0 back on igbvf", Duration::from_secs(20), || {
        dev(&vf0).join("driver").exists()
    });
    let drivers = (
        guest::link_name(dev(&vf1).join("driver")),
        guest::link_name(dev(&vf0).join("driver")),
    );
    let v = violations(&rt, &mut ring);
    eprintln!("VF 1 on {:?}, VF 0 on {:?}: {v:#?}", drivers.0, drivers.1);
    drop(enf);
    drop(probes);
    if drivers.0.is_none() {
        ops::bind(&System::live(), &vf1, "igbvf").expect("VF 1 back to igbvf");
    }
    guest::set_numvfs(0);
    (drivers.0, drivers.1, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_module_load_cannot_hand_a_vf_to_a_driver_it_may_not_have() {
    let (vf1, vf0, v) = module_load(Mode::Enforce);
    assert_eq!(vf1, None, "VF 1 stays unbound");
    assert_eq!(vf0.as_deref(), Some("igbvf"), "VF 0 has no rule");
    assert!(
        v.iter().any(|x| x.rule == V_DRIVER
            && x.action == ACTION_DENIED
            && x.value == AT_BIND
            && x.detail.starts_with(b"igbvf\0")),
        "{v:#?}"
    );
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_a_module_load_bind_and_reports_it() {
    let (vf1, _, v) = module_load(Mode::Audit);
    assert_eq!(vf1.as_deref(), Some("igbvf"));
    assert!(
        v.iter()
            .any(|x| x.rule == V_DRIVER && x.action == ACTION_AUDITED && x.value == AT_BIND),
        "{v:#?}"
    );
}

/// `numvfs = { max = 2 }`. One thread flips the text of a buffer between
/// "1" and "7" while this one writes it to `sriov_numvfs`, over and over
/// (back to 0 whenever a write took): a write approved as "1" may reach the
/// kernel as "7". Returns the most VFs ever seen, the writes that created
/// VFs, and the records.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_numvfs_text_changed_after_the_check_creates_no_vf_past_the_maximum() {
    guest::set_numvfs(0);
    let numvfs = dev(&pf()).join("sriov_numvfs");
    let rt = runtime();
    let pol = sriov_core::policy::Policy {
        mode: Mode::Enforce,
        vfs: vec![],
        pfs: vec![pf_policy(0, 2, None)],
    };
    let (probes, mut ring, enf) = enforce(&rt, &pol);
    let byte = Arc::new(AtomicU8::new(b'1'));
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (byte, stop) = (byte.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                byte.store(b'7', Ordering::Relaxed);
                byte.store(b'1', Ordering::Relaxed);
            }
        })
    };
    let f = fs::OpenOptions::new().write(true).open(&numvfs).unwrap();
    let (mut most, mut took, mut tries) = (0u32, 0u32, 0u32);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) && tries < 3000 {
        tries += 1;
        // SAFETY: the AtomicU8 is one byte that lives as long as `byte`;
        // the kernel reads it as the write's text.
        let text = unsafe { std::slice::from_raw_parts(byte.as_ptr(), 1) };
        if f.write_at(text, 0).is_ok() {
            let n: u32 = guest::read(&numvfs).parse().unwrap();
            most = most.max(n);
            if n > 0 {
                took += 1;
                fs::write(&numvfs, "0").unwrap();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    let v = violations(&rt, &mut ring);
    let at_creation = v
        .iter()
        .filter(|x| x.rule == V_NUMVFS_RANGE && x.detail.starts_with(b"at VF creation"))
        .count();
    eprintln!(
        "{tries} writes, {took} created VFs, at most {most}; {at_creation} refused at VF creation"
    );
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
    assert!(most <= 2, "{most} VFs under numvfs max 2");
}
