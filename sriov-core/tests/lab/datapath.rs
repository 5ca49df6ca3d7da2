//! The user-space VF driver (`sriov_core::vf`) on the emulated 82576: VF 1
//! on vfio-pci driven by the library, VF 0 on igbvf. The emulated NIC
//! switches frames between its VFs, so traffic is checked end to end
//! against the kernel's own view: an AF_PACKET socket (ETH_P_ALL) sees what
//! VF 0's netdev receives, and sends what VF 0 transmits.
//!
//! The packet socket is not bound (binding needs a `sockaddr_ll`, which
//! nix builds only from raw memory): it sees every interface, and frames
//! are told apart by the ifindex the kernel reports. The address used to
//! send from VF 0 is one the kernel reported for a frame VF 0 received.
use std::{
    collections::BTreeMap,
    fs,
    os::fd::{AsRawFd as _, OwnedFd},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use nix::sys::{
    socket::{
        AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, recvfrom, sendto,
        setsockopt, socket, sockopt,
    },
    time::TimeVal,
};
use serde_json::Value;
use sriov_core::{
    ebpf::{LoadOptions, Probes},
    host::System,
    ops,
    types::MacAddr,
    vf::{Igbvf, Packet, VfDevice as _, VfOptions, frame},
};

use sriov_ebpf::record::{DMA_MAP, DMA_UNMAP, Record};

use crate::guest::{self, msi_irqs, netdev_of, pf, proc_interrupts, sh, vf_bdf, wait_for};

const FRAMES: u64 = 1000;
/// `PACKET_OUTGOING`: a frame this host sent, looped back to the socket.
const PACKET_OUTGOING: u8 = 4;

/// Frame `seq`'s length: 60 to 1514 bytes, spread over the range.
pub(crate) fn len_of(seq: u64) -> usize {
    60 + (seq as usize * 149) % 1455
}

/// An AF_PACKET socket for every frame on every interface.
pub(crate) struct PacketSock {
    fd: OwnedFd,
}

impl PacketSock {
    pub(crate) fn new() -> Self {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::EthAll,
        )
        .expect("AF_PACKET socket (root?)");
        setsockopt(&fd, sockopt::RcvBufForce, &(8 << 20)).expect("SO_RCVBUFFORCE");
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000)).expect("SO_RCVTIMEO");
        Self { fd }
    }

    /// The next frame received (not sent) on `ifindex`, or `None` after
    /// 100 ms without one.
    pub(crate) fn recv_on(&self, ifindex: usize, buf: &mut [u8]) -> Option<(usize, LinkAddr)> {
        loop {
            match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), buf) {
                Ok((n, Some(a))) if a.ifindex() == ifindex && a.pkttype() != PACKET_OUTGOING => {
                    return Some((n, a));
                }
                Ok(_) => continue,
                Err(nix::errno::Errno::EAGAIN) => return None,
                Err(e) => panic!("recvfrom: {e}"),
            }
        }
    }

    /// One `sendto`: ENOBUFS is also what a frame dropped on egress (TC)
    /// gives.
    pub(crate) fn send_once(&self, frame: &[u8], to: &LinkAddr) -> nix::Result<usize> {
        sendto(self.fd.as_raw_fd(), frame, to, MsgFlags::empty())
    }

    pub(crate) fn send(&self, frame: &[u8], to: &LinkAddr) {
        loop {
            match sendto(self.fd.as_raw_fd(), frame, to, MsgFlags::empty()) {
                Ok(n) => {
                    assert_eq!(n, frame.len());
                    return;
                }
                // the qdisc is full: let the driver drain it
                Err(nix::errno::Errno::ENOBUFS) => thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("sendto: {e}"),
            }
        }
    }
}

/// VF 0 on igbvf with its netdev up (no address), VF 1 on vfio-pci.
pub(crate) struct Lab {
    pub(crate) vf0_if: String,
    pub(crate) vf0_index: usize,
    pub(crate) vf0_mac: MacAddr,
    pub(crate) vf1: String,
}

fn read_sys(path: String) -> String {
    guest::read(path)
}

pub(crate) fn setup() -> Lab {
    guest::set_numvfs(2);
    let vf0 = vf_bdf(0);
    let vf1 = vf_bdf(1);
    let vf0_if = netdev_of(&vf0);
    sh("ip", &["link", "set", "dev", &vf0_if, "up"]);
    guest::wait_carrier(&vf0_if, guest::CARRIER_WAIT);
    let vf0_mac = MacAddr::parse_any(&read_sys(format!("/sys/class/net/{vf0_if}/address")))
        .expect("VF 0's MAC");
    let vf0_index = read_sys(format!("/sys/class/net/{vf0_if}/ifindex"))
        .parse()
        .expect("ifindex");
    ops::bind(&System::live(), &vf1, "vfio-pci").expect("bind VF 1 to vfio-pci");
    Lab {
        vf0_if,
        vf0_index,
        vf0_mac,
        vf1,
    }
}

pub(crate) fn open(lab: &Lab, interrupts: bool) -> Igbvf {
    let vf = Igbvf::open(
        &System::live(),
        &lab.vf1,
        VfOptions {
            rx_ring: 2048,
            interrupts,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("opening {} through VFIO: {e}", lab.vf1));
    wait_for("the VF's link", Duration::from_secs(10), || {
        vf.link().expect("STATUS").up
    });
    vf
}

/// Send test frames `seqs` from our driver to VF 0 while `sock` collects
/// what VF 0 receives; returns them by sequence number, and VF 0's
/// address for sending.
pub(crate) fn driver_to_vf0(
    lab: &Lab,
    vf: &mut Igbvf,
    sock: Arc<PacketSock>,
    seqs: std::ops::Range<u64>,
) -> (BTreeMap<u64, Vec<Vec<u8>>>, Option<LinkAddr>) {
    let want = seqs.end - seqs.start;
    let got = Arc::new(AtomicUsize::new(0));
    let (g, ifindex) = (got.clone(), lab.vf0_index);
    let rx = thread::spawn(move || {
        let mut frames: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        let mut addr = None;
        let mut buf = vec![0u8; 4096];
        let t = Instant::now();
        while (g.load(Ordering::Relaxed) as u64) < want && t.elapsed() < Duration::from_secs(30) {
            let Some((n, a)) = sock.recv_on(ifindex, &mut buf) else {
                continue;
            };
            if let Some(s) = frame::test_seq(&buf[..n]) {
                frames.entry(s).or_default().push(buf[..n].to_vec());
                addr = Some(a);
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
        (frames, addr)
    });
    let our = vf.mac();
    let mut next = seqs.start;
    let t = Instant::now();
    while next < seqs.end {
        // at most 128 frames ahead of the receiver
        if next - seqs.start > got.load(Ordering::Relaxed) as u64 + 128 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "VF 0 stopped receiving"
            );
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        let batch: Vec<Vec<u8>> = (next..seqs.end.min(next + 16))
            .map(|s| frame::test_frame(lab.vf0_mac, our, len_of(s), s))
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let n = vf.tx_batch(&refs).expect("tx_batch");
        next += n as u64;
        if n == 0 {
            thread::yield_now();
        }
    }
    vf.flush_tx(Duration::from_secs(5)).expect("TX completes");
    rx.join().expect("receiver thread")
}

fn assert_exact(
    got: &BTreeMap<u64, Vec<Vec<u8>>>,
    seqs: std::ops::Range<u64>,
    dst: MacAddr,
    src: MacAddr,
) {
    let missing: Vec<u64> = seqs.clone().filter(|s| !got.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} frames missing, e.g. {:?}",
        missing.len(),
        seqs.end - seqs.start,
        &missing[..missing.len().min(10)]
    );
    for s in seqs {
        let copies = &got[&s];
        assert_eq!(copies.len(), 1, "frame {s} arrived {} times", copies.len());
        let want = frame::test_frame(dst, src, len_of(s), s);
        assert_eq!(copies[0].len(), want.len(), "frame {s}: length");
        assert!(copies[0] == want, "frame {s}: payload differs");
    }
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn driver_and_igbvf_exchange_1000_frames_with_exact_payloads() {
    let lab = setup();
    let sock = Arc::new(PacketSock::new());
    let mut vf = open(&lab, false);
    let our = vf.mac();
    let before = vf.stats().unwrap();

    // our driver -> VF 0 (igbvf)
    let (got, vf0_addr) = driver_to_vf0(&lab, &mut vf, sock.clone(), 0..FRAMES);
    assert_exact(&got, 0..FRAMES, lab.vf0_mac, our);
    let vf0_addr = vf0_addr.expect("an address of VF 0");
    let st = vf.stats().unwrap();
    assert_eq!(st.driver.tx_packets - before.driver.tx_packets, FRAMES);
    eprintln!("after TX: {st:?}");

    // VF 0 (igbvf, AF_PACKET) -> our driver
    let sent = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let (s2, r2, vf0_mac) = (sent.clone(), received.clone(), lab.vf0_mac);
    let sock2 = sock.clone();
    let tx = thread::spawn(move || {
        let t = Instant::now();
        for seq in FRAMES..2 * FRAMES {
            while s2.load(Ordering::Relaxed) > r2.load(Ordering::Relaxed) + 128 {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "our driver stopped receiving"
                );
                thread::sleep(Duration::from_millis(1));
            }
            sock2.send(
                &frame::test_frame(our, vf0_mac, len_of(seq), seq),
                &vf0_addr,
            );
            s2.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut got: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut other = 0;
    let mut bufs: Vec<Packet> = Vec::new();
    let t = Instant::now();
    while (got.values().map(Vec::len).sum::<usize>() as u64) < FRAMES
        && t.elapsed() < Duration::from_secs(30)
    {
        bufs.clear();
        if vf.rx_batch(&mut bufs, 64).unwrap() == 0 {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        for p in &bufs {
            match frame::test_seq(p) {
                Some(s) => {
                    got.entry(s).or_default().push(p.to_vec());
                    received.fetch_add(1, Ordering::Relaxed);
                }
                None => other += 1,
            }
        }
    }
    tx.join().expect("sender thread");
    eprintln!("VF 0 -> driver: {} test frames, {other} others", got.len());
    assert_exact(&got, FRAMES..2 * FRAMES, our, lab.vf0_mac);
    let st = vf.stats().unwrap();
    eprintln!("after RX: {st:?}");
    assert!(st.driver.rx_packets - before.driver.rx_packets >= FRAMES);
    assert_eq!(st.driver.rx_dropped, 0);
    vf.close().expect("close");
    guest::set_numvfs(0);
}

/// What `ip -j link show PF` reports as VF `vf`'s MAC.
fn ip_vf_mac(vf: u32) -> String {
    let ifname = netdev_of(&pf());
    let out = sh("ip", &["-j", "link", "show", "dev", &ifname]);
    let v: Value = serde_json::from_str(&out).expect("ip -j output");
    v[0]["vfinfo_list"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["vf"] == vf))
        .and_then(|e| e["address"].as_str())
        .unwrap_or_else(|| panic!("no vf {vf} in {out}"))
        .to_string()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn the_mailbox_mac_matches_ip_link_and_follows_an_administrative_change() {
    let lab = setup();
    let mut vf = open(&lab, false);
    let ip_mac = ip_vf_mac(1);
    eprintln!("ip link: vf 1 mac {ip_mac}; mailbox: {:?}", vf.perm_mac());
    // vfio-pci's FLR on open makes igb forget a MAC that a VF driver (not
    // the administrator) registered, so the PF NACKs the reset: no MAC from
    // the PF, and the driver registers its own, which the PF then reports.
    assert_eq!(
        vf.perm_mac(),
        None,
        "the PF had no MAC for VF 1 after the FLR"
    );
    assert_eq!(
        ip_mac,
        vf.mac().to_string(),
        "the MAC our driver registered vs ip link"
    );

    let admin = "02:11:22:33:44:55";
    let ifname = netdev_of(&pf());
    sh(
        "ip",
        &["link", "set", "dev", &ifname, "vf", "1", "mac", admin],
    );
    assert_eq!(ip_vf_mac(1), admin);
    vf.reset().expect("reset");
    assert_eq!(vf.perm_mac().map(|m| m.to_string()).as_deref(), Some(admin));
    assert_eq!(vf.mac().to_string(), admin);
    drop(vf);

    // another MAC than the administrator's: the PF NACKs, the error says why
    let e = Igbvf::open(
        &System::live(),
        &lab.vf1,
        VfOptions {
            mac: Some("02:aa:bb:cc:dd:ee".parse().unwrap()),
            ..Default::default()
        },
    )
    .err()
    .expect("the PF must refuse a MAC over an administrative one");
    let s = e.to_string();
    assert!(s.contains("set administratively"), "{s}");
    assert!(
        s.contains(&format!("ip link set dev {ifname} vf 1 mac")),
        "{s}"
    );
    assert_eq!(ip_vf_mac(1), admin);
    guest::set_numvfs(0);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn rx_in_interrupt_mode_wakes_through_the_eventfd() {
    let lab = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // the project's own probes watch the driver: VFIO's interrupt
    // forwarding and its DMA mappings
    let _in_rt = rt.enter();
    let mut probes = Probes::load(LoadOptions::default()).expect("load the eBPF probes");
    let mut ring = probes.take_ring().expect("ring");
    let sock = Arc::new(PacketSock::new());
    let mut vf = open(&lab, true);
    let our = vf.mac();
    let irqs = msi_irqs(&lab.vf1);
    assert!(
        irqs.len() >= 3,
        "VFIO allocated the VF's MSI-X vectors: {irqs:?}"
    );
    for irq in &irqs {
        probes.watch_irq(*irq).unwrap();
    }
    // VF 0's address, from a frame it received
    let (_, addr) = driver_to_vf0(&lab, &mut vf, sock.clone(), 0..1);
    let addr = addr.expect("VF 0 received the probe frame");
    let count = |irqs: &[u32]| -> u64 {
        let all = proc_interrupts();
        irqs.iter().filter_map(|i| all.get(i)).sum()
    };

    // no test traffic: wait_rx must keep waiting
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        match rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(500), vf.wait_rx()).await
        }) {
            Err(_) => break,
            Ok(r) => {
                r.unwrap();
                let mut b = Vec::new();
                vf.rx_batch(&mut b, 64).unwrap();
                assert!(
                    b.iter().all(|p| frame::test_seq(p).is_none()),
                    "a test frame nobody sent"
                );
            }
        }
    }

    let before = count(&irqs);
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        sock.send(&frame::test_frame(our, lab.vf0_mac, 100, 77), &addr);
    });
    let t = Instant::now();
    let mut seen = None;
    while seen.is_none() && t.elapsed() < Duration::from_secs(10) {
        let n = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), vf.wait_rx()).await })
            .expect("woken within 10 s")
            .expect("wait_rx");
        assert!(
            n >= 1,
            "woken by the eventfd (count {n}), not by a frame already there"
        );
        let mut b = Vec::new();
        vf.rx_batch(&mut b, 64).unwrap();
        seen = b.iter().find_map(|p| frame::test_seq(p));
    }
    sender.join().unwrap();
    let waited = t.elapsed();
    assert_eq!(seen, Some(77));
    assert!(
        waited >= Duration::from_millis(250),
        "wait_rx waited ({waited:?})"
    );
    let after = count(&irqs);
    assert!(
        after > before,
        "the VF's MSI-X vectors fired ({before} -> {after})"
    );
    // the MSI probe saw them as VFIO-delivered (vfio_msihandler) on VF 1's
    // vectors
    let vfio: u64 = probes.vfio_irq_counts().unwrap().values().sum();
    assert!(vfio >= 1, "vfio_msihandler counted nothing on {irqs:?}");
    assert!(
        vfio <= after,
        "VFIO-delivered ({vfio}) within the vectors' total ({after})"
    );
    let maps = dma_records(&rt, &mut ring, DMA_MAP);
    vf.close().unwrap();
    let unmaps = dma_records(&rt, &mut ring, DMA_UNMAP);
    // the DMA probe saw our mappings (rings and buffers), made by this
    // process, and every one of them unmapped by close()
    assert!(maps.len() >= 2, "the rings' VFIO_IOMMU_MAP_DMA: {maps:?}");
    let mapped: BTreeMap<u64, u64> = maps.iter().map(|&(iova, size)| (iova, size)).collect();
    let unmapped: BTreeMap<u64, u64> = unmaps.iter().map(|&(iova, size)| (iova, size)).collect();
    assert_eq!(mapped, unmapped, "close() unmaps exactly what was mapped");
    let bytes: u64 = mapped.values().sum();
    assert!(
        bytes >= 2 * 16 * 2048,
        "rings of 2048 RX descriptors and their buffers: {bytes} bytes mapped"
    );
    guest::set_numvfs(0);
}

/// The `VfioDma` records of `op` made by this process, successful ones, as
/// (IOVA, size), read until the ring has been quiet for 1 s.
fn dma_records(
    rt: &tokio::runtime::Runtime,
    ring: &mut sriov_core::ebpf::RingReader,
    op: u32,
) -> Vec<(u64, u64)> {
    let me = std::process::id();
    let mut out = Vec::new();
    rt.block_on(async {
        while let Ok(Ok(b)) = tokio::time::timeout(Duration::from_secs(1), ring.next_batch()).await
        {
            for r in b.into_iter().flatten() {
                if let Record::VfioDma(d) = r
                    && d.hdr.pid == me
                    && d.op == op
                {
                    assert_eq!(d.ret, 0, "a failed VFIO DMA call: {d:?}");
                    out.push((d.iova, d.size));
                }
            }
        }
    });
    out
}

/// Ping between VF 0 and VF 1, both on igbvf, each in its own network
/// namespace (the emulated NIC switches between them).
fn kernel_vfs_ping(vf0_if: &str, vf1: &str) {
    let vf1_if = {
        let b = vf1.to_string();
        wait_for("VF 1's netdev", Duration::from_secs(20), || {
            guest::dev(&b).join("net").is_dir()
        });
        netdev_of(vf1)
    };
    for ns in ["dpa", "dpb"] {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
        sh("ip", &["netns", "add", ns]);
    }
    for (ns, ifn, addr) in [
        ("dpa", vf0_if, "192.0.2.1/24"),
        ("dpb", vf1_if.as_str(), "192.0.2.2/24"),
    ] {
        sh("ip", &["link", "set", "dev", ifn, "netns", ns]);
        sh("ip", &["-n", ns, "addr", "add", addr, "dev", ifn]);
        sh("ip", &["-n", ns, "link", "set", "dev", ifn, "up"]);
    }
    let t = Instant::now();
    let ok = loop {
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                "dpa",
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                "192.0.2.2",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("ping");
        if st.success() || t.elapsed() > Duration::from_secs(30) {
            break st.success();
        }
    };
    for ns in ["dpa", "dpb"] {
        sh("ip", &["netns", "del", ns]);
    }
    assert!(ok, "no ping reply from VF 1 on igbvf");
    wait_for("the netdevs back", Duration::from_secs(10), || {
        fs::metadata(format!("/sys/class/net/{vf0_if}")).is_ok()
            && fs::metadata(format!("/sys/class/net/{vf1_if}")).is_ok()
    });
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn the_vf_works_on_igbvf_again_after_drop_and_after_sigkill() {
    let lab = setup();
    let live = System::live();
    // 1. our driver, traffic, then drop
    {
        let sock = Arc::new(PacketSock::new());
        let mut vf = open(&lab, true);
        let (got, _) = driver_to_vf0(&lab, &mut vf, sock, 0..10);
        assert_eq!(got.len(), 10);
    }
    ops::bind(&live, &lab.vf1, "igbvf").expect("rebind VF 1 to igbvf");
    kernel_vfs_ping(&lab.vf0_if, &lab.vf1);

    // 2. a process driving it, killed with SIGKILL
    ops::bind(&live, &lab.vf1, "vfio-pci").expect("VF 1 to vfio-pci again");
    let pf_if = netdev_of(&pf());
    let mut cli = crate::datapath_cli::SriovCli::spawn(&["vf", "rxdump", &pf_if, "1"]);
    cli.wait_for_line("waiting for frames");
    assert!(
        fs::read_to_string("/proc/interrupts")
            .unwrap()
            .contains(&format!("vfio-msix[1]({})", lab.vf1)),
        "rxdump holds the VF's MSI-X vectors"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cli.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let st = cli.child.wait().unwrap();
    assert!(!st.success());
    ops::bind(&live, &lab.vf1, "igbvf").expect("rebind VF 1 to igbvf after SIGKILL");
    kernel_vfs_ping(&lab.vf0_if, &lab.vf1);
    guest::set_numvfs(0);
}
