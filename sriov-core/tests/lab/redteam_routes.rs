//! The policy against other routes to a guarded action (issue #12): a
//! driver the kernel picks itself (`drivers_probe`, autoprobe of re-created
//! VFs), frames that skip TC egress (`PACKET_QDISC_BYPASS`, AF_XDP) or carry
//! a tag TC did not read (802.1ad). Each asserts the kernel's errno, that
//! nothing changed (driver link, VF count) and the `policy_violation`
//! record; the audit variants let the action through and report it.
use std::{fs, os::fd::AsRawFd as _, os::fd::FromRawFd as _, os::fd::OwnedFd};

use sriov_core::{
    host::System,
    ops,
    policy::{Mode, VfRules},
};
use sriov_ebpf::record::{
    ACTION_AUDITED, ACTION_DENIED, ACTION_DROPPED, PolicyRecord, V_DRIVER, V_FRAME_BYPASS, V_VLAN,
};

use crate::{
    guest::{self, dev, pf, vf_bdf},
    policy::{enforce, policy, runtime, violations, write_as},
};

const SOL_PACKET: i32 = 263;
const PACKET_QDISC_BYPASS: i32 = 20;
const AF_XDP: i32 = 44;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// An AF_PACKET raw socket bound to `ifindex`.
fn packet_socket(ifindex: u32) -> OwnedFd {
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "socket: {}", errno());
        OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: a zeroed sockaddr_ll is valid; bind reads `len` bytes of it.
    let r = unsafe {
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(r, 0, "bind AF_PACKET: {}", errno());
    fd
}

/// `send(2)` of one frame: Ok or the errno (ENOBUFS: TC dropped it).
fn send(fd: &OwnedFd, frame: &[u8]) -> Result<(), i32> {
    // SAFETY: `frame` is valid for its length.
    let r = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// `setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1)`: 0 or the errno.
fn qdisc_bypass(fd: &OwnedFd) -> i32 {
    let one: i32 = 1;
    // SAFETY: an int option, `one` outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_QDISC_BYPASS,
            (&raw const one).cast(),
            4,
        )
    };
    if r == 0 { 0 } else { errno() }
}

/// `frame` with an outer tag `tpid` of `vid` after the MACs.
fn tagged(frame: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

fn l2_rules() -> VfRules {
    VfRules {
        allowed_vlans: Some(vec![0, 10]),
        ..Default::default()
    }
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_frame_with_an_8021ad_tag_is_judged_by_its_vlan() {
    use sriov_core::vf::frame;
    let lab = crate::datapath::setup();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &policy(Mode::Enforce, 0, l2_rules(), vec![]));
    let fd = packet_socket(lab.vf0_index as u32);
    let base = frame::test_frame(lab.vf0_mac, lab.vf0_mac, 100, 1);
    assert_eq!(
        send(&fd, &tagged(&base, 0x88a8, 20)),
        Err(libc::ENOBUFS),
        "802.1ad, VLAN 20"
    );
    assert_eq!(
        send(&fd, &tagged(&base, 0x9100, 20)),
        Err(libc::ENOBUFS),
        "0x9100, VLAN 20"
    );
    assert_eq!(
        send(&fd, &tagged(&base, 0x88a8, 10)),
        Ok(()),
        "802.1ad, VLAN 10"
    );
    assert_eq!(
        send(&fd, &tagged(&base, 0x8100, 20)),
        Err(libc::ENOBUFS),
        "802.1Q, VLAN 20"
    );
    let counts = enf.tc_counts().get(&vf_bdf(0)).copied().unwrap_or_default();
    assert_eq!(counts[1], 3, "dropped for their VLAN: {counts:?}");
    let v = violations(&rt, &mut ring);
    assert!(
        v.iter()
            .any(|x| x.rule == V_VLAN && x.action == ACTION_DROPPED && x.value == 20),
        "{v:#?}"
    );
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
}

fn bypass(mode: Mode) -> (i32, i32, i32, Vec<PolicyRecord>) {
    let lab = crate::datapath::setup();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 0, l2_rules(), vec![]));
    let fd = packet_socket(lab.vf0_index as u32);
    let qdisc = qdisc_bypass(&fd);
    // AF_XDP bound to the VF netdev (no UMEM: the kernel itself says
    // EINVAL when nobody stops it first) and to lo
    // SAFETY: plain socket(2); the fd is owned from here on.
    let xsk = unsafe {
        let fd = libc::socket(AF_XDP, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "socket(AF_XDP): {}", errno());
        OwnedFd::from_raw_fd(fd)
    };
    let xdp_bind = |ifindex: u32| {
        // struct sockaddr_xdp { u16 family, u16 flags, u32 ifindex, u32 queue_id, u32 shared_umem_fd }
        let mut sxdp = [0u8; 16];
        sxdp[0..2].copy_from_slice(&(AF_XDP as u16).to_ne_bytes());
        sxdp[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        // SAFETY: bind reads 16 bytes of `sxdp`.
        let r = unsafe { libc::bind(xsk.as_raw_fd(), sxdp.as_ptr().cast(), 16) };
        if r == 0 { 0 } else { errno() }
    };
    let xdp_vf = xdp_bind(lab.vf0_index as u32);
    let xdp_lo = xdp_bind(1);
    let v = violations(&rt, &mut ring);
    eprintln!("qdisc bypass {qdisc}, AF_XDP on the VF {xdp_vf}, on lo {xdp_lo}: {v:#?}");
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
    (qdisc, xdp_vf, xdp_lo, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn routes_around_tc_egress_are_refused_while_l2_rules_hold() {
    let (qdisc, xdp_vf, xdp_lo, v) = bypass(Mode::Enforce);
    assert_eq!(qdisc, libc::EPERM, "PACKET_QDISC_BYPASS");
    assert_eq!(xdp_vf, libc::EPERM, "AF_XDP bind to the VF netdev");
    assert_eq!(
        xdp_lo,
        libc::EINVAL,
        "AF_XDP bind to lo: the kernel's own answer"
    );
    let n = v
        .iter()
        .filter(|x| x.rule == V_FRAME_BYPASS && x.action == ACTION_DENIED)
        .count();
    assert_eq!(n, 2, "{v:#?}");
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_routes_around_tc_through_and_reports_them() {
    let (qdisc, xdp_vf, _, v) = bypass(Mode::Audit);
    assert_eq!(qdisc, 0);
    assert_eq!(xdp_vf, libc::EINVAL);
    let n = v
        .iter()
        .filter(|x| x.rule == V_FRAME_BYPASS && x.action == ACTION_AUDITED)
        .count();
    assert_eq!(n, 2, "{v:#?}");
}

fn probe_path(vf: &str) -> (String, String) {
    let d = dev(vf);
    (
        d.join("driver_override").to_str().unwrap().to_string(),
        d.join("driver/unbind").to_str().unwrap().to_string(),
    )
}

fn vfio_rules() -> VfRules {
    VfRules {
        allowed_drivers: Some(vec!["vfio-pci".into()]),
        ..Default::default()
    }
}

/// VF 1 may have vfio-pci only; igbvf (what the kernel picks by ID) not.
/// Returns the drivers_probe answers (no override, then vfio-pci) and the
/// driver after the first.
fn drivers_probe(mode: Mode) -> (String, Option<String>, String, Vec<PolicyRecord>) {
    guest::sh("modprobe", &["vfio-pci"]);
    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 1, vfio_rules(), vec![]));
    let (over, unbind) = probe_path(&vf);
    assert_eq!(write_as("sh", &unbind, &vf), "ok", "unbinding is no bind");
    let first = write_as("sh", "/sys/bus/pci/drivers_probe", &vf);
    let after_first = guest::link_name(dev(&vf).join("driver"));
    if after_first.is_some() {
        let _ = write_as("sh", &unbind, &vf);
    }
    // the way `sriov vf bind` goes: an allowed override, then drivers_probe
    assert_eq!(write_as("sh", &over, "vfio-pci"), "ok");
    let second = write_as("sh", "/sys/bus/pci/drivers_probe", &vf);
    assert_eq!(
        guest::link_name(dev(&vf).join("driver")).as_deref(),
        Some("vfio-pci"),
        "{second}"
    );
    let v = violations(&rt, &mut ring);
    eprintln!("{v:#?}");
    drop(enf);
    drop(probes);
    let _ = write_as("sh", &over, "");
    ops::bind(&System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
    (first, after_first, second, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn drivers_probe_cannot_hand_a_vf_to_a_driver_it_may_not_have() {
    let (first, after, second, v) = drivers_probe(Mode::Enforce);
    assert!(
        first.contains("Operation not permitted"),
        "drivers_probe: {first}"
    );
    assert_eq!(after, None, "still unbound");
    assert_eq!(second, "ok");
    assert!(
        v.iter()
            .any(|x| x.rule == V_DRIVER && x.action == ACTION_DENIED && x.value == 3),
        "{v:#?}"
    );
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_drivers_probe_through_and_reports_it() {
    let (first, after, _, v) = drivers_probe(Mode::Audit);
    assert_eq!(first, "ok");
    assert_eq!(after.as_deref(), Some("igbvf"));
    assert!(
        v.iter()
            .any(|x| x.rule == V_DRIVER && x.action == ACTION_AUDITED && x.value == 3),
        "{v:#?}"
    );
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn autoprobe_cannot_hand_recreated_vfs_to_a_driver_they_may_not_have() {
    guest::sh("modprobe", &["vfio-pci"]);
    guest::set_numvfs(2);
    let pf_dir = dev(&pf());
    let numvfs = pf_dir.join("sriov_numvfs");
    let auto = pf_dir.join("sriov_drivers_autoprobe");
    let (numvfs_p, auto_p) = (numvfs.to_str().unwrap(), auto.to_str().unwrap());
    assert_eq!(guest::read(&auto), "1");
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &policy(Mode::Enforce, 1, vfio_rules(), vec![]));
    assert_eq!(
        write_as("sh", numvfs_p, "0"),
        "ok",
        "removing VFs binds nothing"
    );
    // re-created with autoprobe on: igbvf would take VF 1
    let e = write_as("sh", numvfs_p, "2");
    assert!(
        e.contains("Operation not permitted"),
        "numvfs 2 with autoprobe: {e}"
    );
    assert_eq!(guest::read(&numvfs), "0", "no VF created");
    let e = write_as("sh", auto_p, "y");
    assert!(
        e.contains("Operation not permitted"),
        "autoprobe y is refused: {e}"
    );
    // autoprobe off: the VFs come unbound
    assert_eq!(write_as("sh", auto_p, "0"), "ok");
    assert_eq!(write_as("sh", numvfs_p, "2"), "ok");
    let vf = vf_bdf(1);
    assert_eq!(guest::link_name(dev(&vf).join("driver")), None);
    let e = write_as("sh", auto_p, "1");
    assert!(
        e.contains("Operation not permitted"),
        "autoprobe 1 is refused: {e}"
    );
    assert_eq!(guest::read(&auto), "0");
    let v = violations(&rt, &mut ring);
    eprintln!("{v:#?}");
    assert!(
        v.iter()
            .any(|x| x.rule == V_DRIVER && x.action == ACTION_DENIED && x.value == 4),
        "{v:#?}"
    );
    drop(enf);
    drop(probes);
    fs::write(&auto, "1").unwrap();
    fs::write(&numvfs, "0").unwrap();
    guest::set_numvfs(0);
}

/// `/dev/vfio/<group>` of VF 1 opened as a uid the policy does not allow,
/// right after the bind, with no refresh of the policy in between: "opened"
/// or the shell's error. The group node's mode is opened up first so that
/// only the policy decides.
fn open_right_after_bind(vf: &str) -> (String, String) {
    ops::bind(&System::live(), vf, "vfio-pci").expect("bind VF 1 to vfio-pci");
    let group = guest::link_name(dev(vf).join("iommu_group")).expect("iommu_group");
    fs::set_permissions(
        format!("/dev/vfio/{group}"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    (group.clone(), guest::open_group_as(&group, 65534))
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_vf_is_guarded_from_its_bind_to_vfio_pci_not_from_the_next_refresh() {
    guest::sh("modprobe", &["vfio-pci"]);
    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    let rt = runtime();
    let rules = VfRules {
        vfio_open: Some(sriov_core::policy::Allow {
            uids: vec![0],
            ..Default::default()
        }),
        ..Default::default()
    };
    // loaded while VF 1 is on igbvf: it has no /dev/vfio node yet
    let (probes, mut ring, enf) = enforce(&rt, &policy(Mode::Enforce, 1, rules, vec![]));
    let (group, first) = open_right_after_bind(&vf);
    // the VFs again: new IOMMU groups, new nodes, still no refresh
    ops::bind(&System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
    guest::set_numvfs(2);
    let (group2, second) = open_right_after_bind(&vf);
    let v = violations(&rt, &mut ring);
    eprintln!("groups {group} then {group2}: {first} / {second}: {v:#?}");
    drop(enf);
    drop(probes);
    ops::bind(&System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
    assert!(
        first.contains("Operation not permitted"),
        "first bind: {first}"
    );
    assert!(
        second.contains("Operation not permitted"),
        "after re-creation: {second}"
    );
    assert_eq!(
        v.iter()
            .filter(|x| x.rule == sriov_ebpf::record::V_VFIO_OPEN && x.action == ACTION_DENIED)
            .count(),
        2,
        "{v:#?}"
    );
}

/// A shell that moves itself into cgroup `cg`, then writes `value` to
/// `path`: "ok" or its error.
fn write_from_cgroup(cg: &std::path::Path, path: &str, value: &str) -> String {
    let script = format!(
        "echo $$ > {}/cgroup.procs && echo {value} > {path} && echo ok",
        cg.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    guest::output_text(&out)
}

/// `cgroups` in `numvfs_writers` match a listed cgroup and every cgroup
/// below it (libvirt's per-VM scopes under `machine.slice`), and nothing
/// beside it.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn numvfs_writers_match_the_cgroups_below_a_listed_one() {
    use std::os::unix::fs::MetadataExt as _;
    guest::set_numvfs(0);
    let root = std::path::Path::new("/sys/fs/cgroup");
    let (listed, below, beside) = (
        root.join("sriov-ops"),
        root.join("sriov-ops/vm1.scope/vcpu0"),
        root.join("sriov-other"),
    );
    fs::create_dir_all(&below).unwrap();
    fs::create_dir_all(&beside).unwrap();
    let writers = sriov_core::policy::Allow {
        cgroups: vec![listed.clone()],
        cgroup_ids: vec![fs::metadata(&listed).unwrap().ino()],
        ..Default::default()
    };
    let pol = sriov_core::policy::Policy {
        mode: Mode::Enforce,
        vfs: vec![],
        pfs: vec![crate::policy::pf_policy(0, 2, Some(writers))],
    };
    let numvfs = dev(&pf()).join("sriov_numvfs");
    let path = numvfs.to_str().unwrap();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &pol);
    let from_below = write_from_cgroup(&below, path, "1");
    let after_below = guest::read(&numvfs);
    let from_beside = write_from_cgroup(&beside, path, "0");
    let after_beside = guest::read(&numvfs);
    let v = violations(&rt, &mut ring);
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
    for d in [
        &below,
        &below.parent().unwrap().to_path_buf(),
        &listed,
        &beside,
    ] {
        let _ = fs::remove_dir(d);
    }
    assert_eq!((from_below.as_str(), after_below.as_str()), ("ok", "1"));
    assert!(
        from_beside.contains("Operation not permitted"),
        "{from_beside}"
    );
    assert_eq!(after_beside, "1", "the VF count stays");
    assert!(
        v.iter()
            .any(|x| x.rule == sriov_ebpf::record::V_NUMVFS_WRITER && x.action == ACTION_DENIED),
        "{v:#?}"
    );
}
