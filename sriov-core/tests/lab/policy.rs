//! Per-VF policy in the lab kernel (BPF LSM + TC): each test shows the real
//! errno the kernel returns, the state the system is left in, and the
//! `policy_violation` records.
use std::{fs, os::unix::process::CommandExt as _, process::Command, sync::Arc, time::Duration};

use sriov_core::{
    discover::discover,
    ebpf::{LoadOptions, Probes, RingReader},
    host::System,
    ops,
    policy::{Allow, Mode, PfPolicy, Policy, VfPolicy, VfRules, enforce::Enforcer},
};
use sriov_ebpf::record::{
    ACTION_AUDITED, ACTION_DENIED, PolicyRecord, Record, V_DMA_QUOTA, V_DRIVER, V_NUMVFS_RANGE,
    V_NUMVFS_WRITER, V_VFIO_OPEN,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioOps};

use crate::guest::{self, dev, pf, vf_bdf};

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A policy with `rules` for VF `index` of the lab PF (and `pfs`).
pub(crate) fn policy(mode: Mode, index: u32, rules: VfRules, pfs: Vec<PfPolicy>) -> Policy {
    let inv = discover(&System::live()).unwrap();
    let p = inv.pfs.iter().find(|p| p.bdf == pf()).expect("the lab PF");
    let v = p.vfs.iter().find(|v| v.index == index).expect("the VF");
    Policy {
        mode,
        vfs: vec![VfPolicy {
            pf_bdf: p.bdf.clone(),
            pf_netdev: p.netdev.clone(),
            index,
            bdf: v.bdf.clone(),
            netdev: v.netdev.clone(),
            iommu_group: v.iommu_group,
            mac: None,
            rules,
        }],
        pfs,
    }
}

pub(crate) fn pf_policy(min: u32, max: u32, writers: Option<Allow>) -> PfPolicy {
    PfPolicy {
        bdf: pf(),
        netdev: None,
        numvfs_min: min,
        numvfs_max: max,
        numvfs_writers: writers,
    }
}

/// The probes (for the shared ring buffer) and `pol` loaded on them, as
/// a policy file says it (`policy_file::through_file`).
pub(crate) fn enforce(
    rt: &tokio::runtime::Runtime,
    pol: &Policy,
) -> (Probes, RingReader, Enforcer) {
    let pol = crate::policy_file::through_file(pol);
    // the ring registers with the runtime's reactor
    let _in = rt.enter();
    let mut probes = Probes::load(LoadOptions::default()).expect("load");
    let ring = probes.take_ring().expect("ring");
    let enf = Enforcer::start(probes.ebpf_mut(), &pol, None).expect("load the policy");
    (probes, ring, enf)
}

/// The policy records on the ring until it is quiet for 500 ms.
pub(crate) fn violations(rt: &tokio::runtime::Runtime, ring: &mut RingReader) -> Vec<PolicyRecord> {
    let mut out = Vec::new();
    rt.block_on(async {
        while let Ok(Ok(b)) =
            tokio::time::timeout(Duration::from_millis(500), ring.next_batch()).await
        {
            out.extend(b.into_iter().filter_map(|r| match r {
                Ok(Record::Policy(p)) => Some(p),
                Ok(_) => None,
                Err(e) => {
                    eprintln!("a record that does not decode: {e}");
                    None
                }
            }));
        }
    });
    out
}

/// Page-aligned memory for DMA.
pub(crate) struct DmaBuf {
    v: Vec<u8>,
}

impl DmaBuf {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            v: vec![0u8; len + 4096],
        }
    }
    pub(crate) fn ptr(&mut self) -> *mut u8 {
        let p = self.v.as_mut_ptr();
        p.wrapping_add(p.align_offset(4096))
    }
}

pub(crate) fn errno_of(r: Result<(), VfioError>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(VfioError::IommuDmaMap(e)) | Err(VfioError::IommuDmaUnmap(e)) => e.errno(),
        Err(e) => panic!("unexpected VFIO error: {e}"),
    }
}

const KIB: usize = 1024;

/// Maps of 512 KiB, 1 MiB (over the 1 MiB quota), 512 KiB, then an unmap
/// and a map that fits again: the errno of each.
fn dma_sequence(container: &VfioContainer, buf: &mut DmaBuf) -> [i32; 5] {
    let p = buf.ptr();
    // SAFETY: `buf` outlives every mapping made here (all unmapped below).
    let map = |iova: u64, size: usize| errno_of(unsafe { container.vfio_dma_map(iova, size, p) });
    let r = [
        map(0x100_0000, 512 * KIB),
        map(0x200_0000, 1024 * KIB),
        map(0x300_0000, 512 * KIB),
        errno_of(container.vfio_dma_unmap(0x100_0000, 512 * KIB)),
        map(0x400_0000, 512 * KIB),
    ];
    for iova in [0x200_0000, 0x300_0000, 0x400_0000] {
        let _ = container.vfio_dma_unmap(iova, 1024 * KIB);
    }
    r
}

pub(crate) fn vfio_vf1() -> String {
    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    ops::bind(&System::live(), &vf, "vfio-pci").expect("bind VF 1 to vfio-pci");
    vf
}

fn dma_quota(mode: Mode) -> (Vec<PolicyRecord>, [i32; 5]) {
    let vf = vfio_vf1();
    let rt = runtime();
    let rules = VfRules {
        dma_quota_bytes: Some(1 << 20),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 1, rules, vec![]));
    let container = Arc::new(VfioContainer::new(None).expect("open /dev/vfio/vfio"));
    let device = VfioDevice::new(&dev(&vf), container.clone() as Arc<dyn VfioOps>, false)
        .expect("open the VF through VFIO");
    let mut buf = DmaBuf::new(1 << 20);
    let r = dma_sequence(&container, &mut buf);
    let used = enf.dma_used();
    drop(device);
    let v = violations(&rt, &mut ring);
    eprintln!("errnos {r:?}, used {used:?}, violations {v:#?}");
    assert_eq!(used.get(&vf), Some(&0), "everything was unmapped");
    drop(enf);
    drop(probes);
    ops::bind(&System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
    (v, r)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn dma_over_the_quota_gets_eperm_and_a_violation_under_it_succeeds() {
    let (v, r) = dma_quota(Mode::Enforce);
    assert_eq!(
        r,
        [0, libc::EPERM, 0, 0, 0],
        "map 512K, 1M (over), 512K, unmap, 512K"
    );
    assert_eq!(v.len(), 1, "{v:#?}");
    let x = &v[0];
    assert_eq!(
        (x.rule, x.action, x.value, x.limit),
        (V_DMA_QUOTA, ACTION_DENIED, 1 << 20, 512 << 10)
    );
    assert_eq!(x.hdr.pid, std::process::id());
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_the_dma_map_through_and_still_reports_it() {
    let (v, r) = dma_quota(Mode::Audit);
    assert_eq!(r, [0, 0, 0, 0, 0], "audit: every call succeeds");
    let quota: Vec<_> = v.iter().filter(|x| x.rule == V_DMA_QUOTA).collect();
    assert!(!quota.is_empty(), "{v:#?}");
    assert!(quota.iter().all(|x| x.action == ACTION_AUDITED));
    assert_eq!(quota[0].value, 1 << 20);
}

fn vfio_open(mode: Mode) -> (String, String, String, Vec<PolicyRecord>) {
    let vf = vfio_vf1();
    let group = guest::link_name(dev(&vf).join("iommu_group")).expect("iommu_group");
    // DAC out of the way: only the policy decides
    fs::set_permissions(
        format!("/dev/vfio/{group}"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let rt = runtime();
    let rules = VfRules {
        vfio_open: Some(Allow {
            uids: vec![0, 1000],
            ..Default::default()
        }),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 1, rules, vec![]));
    let (denied, allowed, root) = (
        guest::open_group_as(&group, 65534),
        guest::open_group_as(&group, 1000),
        guest::open_group_as(&group, 0),
    );
    let v = violations(&rt, &mut ring);
    drop(enf);
    // the policy is gone with the enforcer
    assert_eq!(
        guest::open_group_as(&group, 65534),
        "opened",
        "enforcement removed on exit"
    );
    drop(probes);
    ops::bind(&System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
    (denied, allowed, root, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_uid_not_allowed_gets_eperm_opening_the_vfio_group() {
    let (denied, allowed, root, v) = vfio_open(Mode::Enforce);
    assert!(
        denied.contains("Operation not permitted"),
        "uid 65534: {denied}"
    );
    assert_eq!(allowed, "opened", "uid 1000");
    assert_eq!(root, "opened", "uid 0");
    let opens: Vec<_> = v.iter().filter(|x| x.rule == V_VFIO_OPEN).collect();
    assert_eq!(opens.len(), 1, "{v:#?}");
    assert_eq!((opens[0].uid, opens[0].action), (65534, ACTION_DENIED));
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_any_uid_open_the_group_and_reports_it() {
    let (denied, allowed, _, v) = vfio_open(Mode::Audit);
    assert_eq!((denied.as_str(), allowed.as_str()), ("opened", "opened"));
    assert!(
        v.iter()
            .any(|x| x.rule == V_VFIO_OPEN && x.uid == 65534 && x.action == ACTION_AUDITED),
        "{v:#?}"
    );
}

/// `echo VALUE > PATH` from a shell whose process name is `comm`: "ok" or
/// the shell's error.
pub(crate) fn write_as(comm: &str, path: &str, value: &str) -> String {
    let exe = format!("/tmp/{comm}");
    let _ = fs::remove_file(&exe);
    std::os::unix::fs::symlink("/bin/busybox", &exe).unwrap();
    let out = Command::new(&exe)
        .arg0("sh")
        .args(["-c", &format!("echo {value} > {path} && echo ok")])
        .output()
        .expect("sh");
    guest::output_text(&out)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn numvfs_out_of_range_or_from_another_writer_is_denied_and_unchanged() {
    use std::os::unix::fs::MetadataExt as _;
    guest::set_numvfs(2);
    let numvfs = dev(&pf()).join("sriov_numvfs");
    let path = numvfs.to_str().unwrap().to_string();
    let rt = runtime();
    // the allowed writer: this test program (by its executable file)
    let me = std::env::current_exe().unwrap();
    let m = fs::metadata(&me).unwrap();
    let writers = Allow {
        executables: vec![me.clone()],
        exe_ids: vec![(m.ino(), sriov_core::policy::kernel_dev(m.dev()))],
        ..Default::default()
    };
    let pol = policy(
        Mode::Enforce,
        0,
        VfRules::default(),
        vec![pf_policy(0, 2, Some(writers))],
    );
    let (probes, mut ring, enf) = enforce(&rt, &pol);
    // another program (busybox sh): denied, whatever the value
    let other = write_as("intruder", &path, "0");
    assert!(other.contains("Operation not permitted"), "{other}");
    assert_eq!(guest::read(&numvfs), "2");
    // the allowed writer: 0 then 2 are in range, 3 is not
    let write = |v: &str| fs::write(&path, v).map_err(|e| e.raw_os_error());
    assert_eq!(write("0"), Ok(()));
    assert_eq!(guest::read(&numvfs), "0");
    assert_eq!(write("3"), Err(Some(libc::EPERM)));
    assert_eq!(guest::read(&numvfs), "0", "the VF count is unchanged");
    assert_eq!(write("2"), Ok(()));
    assert_eq!(guest::read(&numvfs), "2");
    let v = violations(&rt, &mut ring);
    eprintln!("{v:#?}");
    assert!(
        v.iter()
            .any(|x| x.rule == V_NUMVFS_WRITER && x.action == ACTION_DENIED)
    );
    assert!(
        v.iter()
            .any(|x| x.rule == V_NUMVFS_RANGE && x.value == 3 && x.limit == 2)
    );
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn binding_a_vf_to_a_driver_outside_allowed_drivers_is_denied() {
    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    let rt = runtime();
    let rules = VfRules {
        allowed_drivers: Some(vec!["vfio-pci".into()]),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(Mode::Enforce, 1, rules, vec![]));
    let over = dev(&vf).join("driver_override");
    let over = over.to_str().unwrap();
    // the VF is on igbvf; unbinding is no bind, so it is allowed
    assert_eq!(
        write_as("sh", &format!("{}/driver/unbind", dev(&vf).display()), &vf),
        "ok"
    );
    let e = write_as("sh", over, "igbvf");
    assert!(
        e.contains("Operation not permitted"),
        "driver_override igbvf: {e}"
    );
    let e = write_as("sh", "/sys/bus/pci/drivers/igbvf/bind", &vf);
    assert!(e.contains("Operation not permitted"), "bind to igbvf: {e}");
    assert_eq!(
        guest::link_name(dev(&vf).join("driver")),
        None,
        "still unbound"
    );
    // the allowed driver
    assert_eq!(write_as("sh", over, "vfio-pci"), "ok");
    assert_eq!(
        write_as("sh", "/sys/bus/pci/drivers/vfio-pci/bind", &vf),
        "ok"
    );
    assert_eq!(
        guest::link_name(dev(&vf).join("driver")).as_deref(),
        Some("vfio-pci")
    );
    let v = violations(&rt, &mut ring);
    eprintln!("{v:#?}");
    assert_eq!(v.iter().filter(|x| x.rule == V_DRIVER).count(), 2, "{v:#?}");
    drop(enf);
    drop(probes);
    let _ = write_as("sh", over, "");
    ops::bind(&System::live(), &vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
}

/// VF 0 (igbvf) sends 50 frames from its own MAC and 50 from a spoofed
/// one through an AF_PACKET socket; VF 1, driven by sriov-core's VFIO
/// driver, receives what the TC program lets through. Returns the
/// sequence numbers received, VF 0's TC counts and the violations.
fn spoofed_frames(mode: Mode) -> (Vec<u64>, [u64; 4], Vec<PolicyRecord>) {
    use sriov_core::vf::{VfDevice as _, frame};

    use crate::datapath;
    let lab = datapath::setup();
    let vf0 = vf_bdf(0);
    let rt = runtime();
    let rules = VfRules {
        allowed_src_macs: Some(vec![lab.vf0_mac]),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 0, rules, vec![]));
    assert!(
        enf.attached.contains(&format!("tc:{}:egress", lab.vf0_if)),
        "{:?}",
        enf.attached
    );
    let sock = Arc::new(datapath::PacketSock::new());
    let mut vf = datapath::open(&lab, false);
    let (_, addr) = datapath::driver_to_vf0(&lab, &mut vf, sock.clone(), 0..1);
    let addr = addr.expect("VF 0's address");
    let spoofed: sriov_core::types::MacAddr = "02:de:ad:be:ef:01".parse().unwrap();
    let mut junk = Vec::new();
    vf.rx_batch(&mut junk, 512).unwrap();
    let mut refused = 0;
    for s in 100..150u64 {
        sock.send(&frame::test_frame(vf.mac(), lab.vf0_mac, 100, s), &addr);
        // a frame TC drops comes back as ENOBUFS from sendto
        match sock.send_once(&frame::test_frame(vf.mac(), spoofed, 100, s + 100), &addr) {
            Ok(_) => {}
            Err(nix::errno::Errno::ENOBUFS) => refused += 1,
            Err(e) => panic!("sendto: {e}"),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("{refused} spoofed frames refused with ENOBUFS");
    let mut got = Vec::new();
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let mut b = Vec::new();
        vf.rx_batch(&mut b, 64).unwrap();
        got.extend(b.iter().filter_map(|p| frame::test_seq(p)));
        if got.len() >= 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    got.sort_unstable();
    let counts = enf.tc_counts().get(&vf0).copied().unwrap_or_default();
    let v = violations(&rt, &mut ring);
    eprintln!(
        "received {} frames, TC counts {counts:?}, violations {v:#?}",
        got.len()
    );
    vf.close().unwrap();
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
    (got, counts, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn frames_with_a_spoofed_source_mac_are_dropped_and_counted() {
    use sriov_ebpf::record::{ACTION_DROPPED, V_SRC_MAC};
    let (got, counts, v) = spoofed_frames(Mode::Enforce);
    assert_eq!(
        got,
        (100..150).collect::<Vec<_>>(),
        "only the allowed frames arrive"
    );
    assert_eq!(counts[0], 50, "50 spoofed frames dropped");
    assert!(counts[3] >= 50, "the allowed frames passed: {counts:?}");
    let x = v
        .iter()
        .find(|x| x.rule == V_SRC_MAC)
        .expect("a violation record");
    assert_eq!(x.action, ACTION_DROPPED);
    assert_eq!(&x.detail[..6], &[0x02, 0xde, 0xad, 0xbe, 0xef, 0x01]);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_spoofed_frames_pass_and_reports_them() {
    use sriov_ebpf::record::V_SRC_MAC;
    let (got, counts, v) = spoofed_frames(Mode::Audit);
    assert_eq!(
        got,
        (100..150).chain(200..250).collect::<Vec<_>>(),
        "audit: every frame arrives"
    );
    assert_eq!(counts[0], 50, "the spoofed frames are still counted");
    assert!(
        v.iter()
            .any(|x| x.rule == V_SRC_MAC && x.action == ACTION_AUDITED)
    );
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_numvfs_and_driver_writes_through_and_reports_them() {
    guest::set_numvfs(2);
    let vf = vf_bdf(1);
    let numvfs = dev(&pf()).join("sriov_numvfs");
    let path = numvfs.to_str().unwrap().to_string();
    let rt = runtime();
    // the one allowed writer: this test program's executable file; the
    // writes below run busybox (a file must name an absolute path)
    let me = std::env::current_exe().unwrap();
    let m = fs::metadata(&me).unwrap();
    let writers = Allow {
        executables: vec![me.clone()],
        exe_ids: vec![(
            std::os::unix::fs::MetadataExt::ino(&m),
            sriov_core::policy::kernel_dev(std::os::unix::fs::MetadataExt::dev(&m)),
        )],
        ..Default::default()
    };
    let rules = VfRules {
        allowed_drivers: Some(vec!["vfio-pci".into()]),
        ..Default::default()
    };
    let pol = policy(Mode::Audit, 1, rules, vec![pf_policy(0, 2, Some(writers))]);
    let (mut probes, mut ring, mut enf) = enforce(&rt, &pol);
    // another writer, and a value out of range: both go through
    assert_eq!(write_as("intruder", &path, "0"), "ok");
    assert_eq!(guest::read(&numvfs), "0");
    assert_eq!(write_as("sriov-admin", &path, "3"), "ok");
    assert_eq!(guest::read(&numvfs), "3");
    // the VFs are new files: the enforcer follows (sriov-top does each tick)
    enf.refresh(probes.ebpf_mut()).expect("refresh");
    let over = dev(&vf).join("driver_override");
    let over = over.to_str().unwrap();
    assert_eq!(
        write_as("sh", &format!("{}/driver/unbind", dev(&vf).display()), &vf),
        "ok"
    );
    assert_eq!(write_as("sh", over, "igbvf"), "ok");
    assert_eq!(write_as("sh", "/sys/bus/pci/drivers/igbvf/bind", &vf), "ok");
    assert_eq!(
        guest::link_name(dev(&vf).join("driver")).as_deref(),
        Some("igbvf")
    );
    let v = violations(&rt, &mut ring);
    eprintln!("{v:#?}");
    assert!(v.iter().all(|x| x.action == ACTION_AUDITED), "{v:#?}");
    assert!(v.iter().any(|x| x.rule == V_NUMVFS_WRITER));
    assert!(v.iter().any(|x| x.rule == V_NUMVFS_RANGE && x.value == 3));
    // the writes: driver_override and bind; the kernel's own routes: the
    // VFs created with autoprobe on, and igbvf bound where the kernel binds
    use sriov_ebpf::policy::{
        DRIVER_AT_BIND, DRIVER_VIA_AUTOPROBE, DRIVER_VIA_BIND, DRIVER_VIA_OVERRIDE,
    };
    let route = |r: u64| {
        v.iter()
            .filter(|x| x.rule == V_DRIVER && x.value == r)
            .count()
    };
    assert_eq!(
        (route(DRIVER_VIA_OVERRIDE), route(DRIVER_VIA_BIND)),
        (1, 1),
        "{v:#?}"
    );
    assert!(route(DRIVER_VIA_AUTOPROBE) >= 1, "{v:#?}");
    assert!(route(DRIVER_AT_BIND) >= 1, "{v:#?}");
    drop(enf);
    drop(probes);
    let _ = write_as("sh", over, "");
    guest::set_numvfs(0);
}

/// `frame` with an 802.1Q tag of `vid` after the MACs.
fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn frames_on_other_vlans_or_over_the_rate_are_dropped_and_counted() {
    use sriov_core::vf::{VfDevice as _, frame};
    use sriov_ebpf::record::{ACTION_DROPPED, V_MAX_PPS, V_VLAN};

    use crate::datapath;
    let lab = datapath::setup();
    let vf0 = vf_bdf(0);
    let rt = runtime();
    let rules = VfRules {
        allowed_vlans: Some(vec![0, 10]),
        max_pps: Some(200),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(Mode::Enforce, 0, rules, vec![]));
    let sock = Arc::new(datapath::PacketSock::new());
    let mut vf = datapath::open(&lab, false);
    let (_, addr) = datapath::driver_to_vf0(&lab, &mut vf, sock.clone(), 0..1);
    let addr = addr.expect("VF 0's address");
    let send = |f: &[u8]| match sock.send_once(f, &addr) {
        Ok(_) => true,
        Err(nix::errno::Errno::ENOBUFS) => false,
        Err(e) => panic!("sendto: {e}"),
    };
    let base = frame::test_frame(vf.mac(), lab.vf0_mac, 100, 1);
    // well under the rate: 10 frames each, 50 ms apart
    let mut sent = [0usize; 3];
    for _ in 0..10 {
        sent[0] += usize::from(send(&tagged(&base, 20)));
        sent[1] += usize::from(send(&tagged(&base, 10)));
        sent[2] += usize::from(send(&base));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        sent,
        [0, 10, 10],
        "VLAN 20 refused; VLAN 10 and untagged pass"
    );
    let before = enf.tc_counts().get(&vf0).copied().unwrap_or_default();
    assert_eq!(
        before[1], 10,
        "10 frames dropped for their VLAN: {before:?}"
    );
    // a burst of 1000 untagged frames: at most ~200 a second pass
    std::thread::sleep(Duration::from_millis(1100));
    let passed = (0..1000).filter(|_| send(&base)).count();
    let after = enf.tc_counts().get(&vf0).copied().unwrap_or_default();
    eprintln!("burst: {passed} of 1000 passed; TC counts {after:?}");
    assert!(passed <= 400, "{passed} passed a 200/s limit");
    assert!(after[2] - before[2] >= 600, "{after:?}");
    let v = violations(&rt, &mut ring);
    assert!(
        v.iter()
            .any(|x| x.rule == V_VLAN && x.action == ACTION_DROPPED && x.value == 20),
        "{v:#?}"
    );
    assert!(
        v.iter()
            .any(|x| x.rule == V_MAX_PPS && x.action == ACTION_DROPPED && x.value == 200),
        "{v:#?}"
    );
    vf.close().unwrap();
    drop(enf);
    drop(probes);
    guest::set_numvfs(0);
}
