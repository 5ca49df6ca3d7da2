//! Lab benchmark (inside the lab VM, as root): TX of 60-byte frames for
//! about 3 s each by
//! - this project's user-space driver (`sriov_core::vf`) on VF 1 (vfio-pci),
//! - the kernel's igbvf on VF 0, fed by an AF_PACKET socket (`sendto`),
//!
//! to the same destination (a MAC no function has, so the emulated switch
//! sends both streams out of the port). Prints frames/s for each (ours:
//! descriptors the device completed; the kernel's: the netdev's tx_packets),
//! the ratio (goal >= 1.0) and the CPU time per frame from getrusage.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

use std::{
    fs,
    os::fd::{AsRawFd as _, OwnedFd},
    thread,
    time::{Duration, Instant},
};

use nix::sys::{
    resource::{UsageWho, getrusage},
    socket::{
        AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, recvfrom, sendto,
        setsockopt, socket, sockopt,
    },
    time::TimeVal,
};
use sriov_core::{
    host::System,
    ops,
    types::MacAddr,
    vf::{Igbvf, VfDevice as _, VfOptions, frame},
};

const RUN: Duration = Duration::from_secs(3);
const SIZE: usize = 60;
const BATCH: usize = 32;
/// Nobody has this MAC: the frames leave through the port.
const DST: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0xbe, 0xef]);

fn cpu_seconds() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let t = |tv: TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

fn sys(path: String) -> String {
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn link(dir: String) -> String {
    fs::read_link(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

struct Result {
    frames: u64,
    secs: f64,
    cpu: f64,
}

impl Result {
    fn pps(&self) -> f64 {
        self.frames as f64 / self.secs
    }
    fn cpu_us_per_frame(&self) -> f64 {
        self.cpu * 1e6 / self.frames.max(1) as f64
    }
    fn print(&self, who: &str) {
        println!(
            "{who:<28} {:>9} frames in {:.2} s = {:>9.0} frames/s, CPU {:.2} s = {:.2} us/frame",
            self.frames,
            self.secs,
            self.pps(),
            self.cpu,
            self.cpu_us_per_frame()
        );
    }
}

fn main() {
    let pf = std::env::var("SRIOV_LAB_PF").expect("run inside the lab (SRIOV_LAB_PF)");
    let dev = |b: &str| format!("/sys/bus/pci/devices/{b}");
    let numvfs = format!("{}/sriov_numvfs", dev(&pf));
    fs::write(&numvfs, "0").unwrap();
    fs::write(&numvfs, "2").unwrap();
    let vf0 = link(format!("{}/virtfn0", dev(&pf)));
    let vf1 = link(format!("{}/virtfn1", dev(&pf)));
    let t = Instant::now();
    while fs::read_dir(format!("{}/net", dev(&vf0))).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "VF 0 has no netdev");
        thread::sleep(Duration::from_millis(50));
    }
    let vf0_if = fs::read_dir(format!("{}/net", dev(&vf0)))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let st = std::process::Command::new("/usr/bin/ip")
        .args(["link", "set", "dev", &vf0_if, "up"])
        .status()
        .unwrap();
    assert!(st.success());
    while sys(format!("/sys/class/net/{vf0_if}/carrier")) != "1" {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no carrier on {vf0_if}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let vf0_mac = MacAddr::parse_any(&sys(format!("/sys/class/net/{vf0_if}/address"))).unwrap();
    let vf0_index: usize = sys(format!("/sys/class/net/{vf0_if}/ifindex"))
        .parse()
        .unwrap();
    let live = System::live();
    ops::bind(&live, &vf1, "vfio-pci").expect("VF 1 to vfio-pci");
    let mut vf = Igbvf::open(&live, &vf1, VfOptions::default()).expect("open VF 1");
    while !vf.link().unwrap().up {
        assert!(t.elapsed() < Duration::from_secs(60), "no link on VF 1");
        thread::sleep(Duration::from_millis(50));
    }
    println!(
        "lab_bench_datapath: {SIZE}-byte frames for {} s each; ours on {vf1} (VFIO, MAC {}), the kernel's on {vf0} ({vf0_if}, igbvf, AF_PACKET sendto)",
        RUN.as_secs(),
        vf.mac()
    );

    // the kernel's sender needs VF 0's sockaddr_ll: take the one the kernel
    // reports for a frame our driver sends to VF 0
    let sock: OwnedFd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::EthAll,
    )
    .expect("AF_PACKET socket");
    setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000)).unwrap();
    let probe = frame::test_frame(vf0_mac, vf.mac(), SIZE, 0);
    let mut vf0_addr = None;
    let mut buf = [0u8; 2048];
    while vf0_addr.is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "VF 0 never received the probe"
        );
        vf.tx_batch(&[&probe]).unwrap();
        let t2 = Instant::now();
        while t2.elapsed() < Duration::from_millis(300) {
            if let Ok((n, Some(a))) = recvfrom::<LinkAddr>(sock.as_raw_fd(), &mut buf)
                && a.ifindex() == vf0_index
                && frame::test_seq(&buf[..n]) == Some(0)
            {
                vf0_addr = Some(a);
                break;
            }
        }
    }
    let vf0_addr = vf0_addr.unwrap();
    drop(sock);
    let tx_sock: OwnedFd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        None::<SockProtocol>,
    )
    .expect("AF_PACKET TX socket");

    // ours
    vf.flush_tx(Duration::from_secs(1)).unwrap();
    let frames: Vec<Vec<u8>> = (0..BATCH as u64)
        .map(|i| frame::test_frame(DST, vf.mac(), SIZE, i))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let before = vf.stats().unwrap();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    while t0.elapsed() < RUN {
        vf.tx_batch(&refs).unwrap();
    }
    vf.flush_tx(Duration::from_secs(2)).unwrap();
    let after = vf.stats().unwrap();
    let ours = Result {
        frames: after.driver.tx_packets - before.driver.tx_packets,
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    };
    let hw_tx = after.hw.tx_packets - before.hw.tx_packets;

    // the kernel's
    let frame0 = frame::test_frame(DST, vf0_mac, SIZE, 0);
    let tx_packets = || -> u64 {
        sys(format!("/sys/class/net/{vf0_if}/statistics/tx_packets"))
            .parse()
            .unwrap()
    };
    let k0 = tx_packets();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut refused = 0u64;
    while t0.elapsed() < RUN {
        for _ in 0..BATCH {
            if sendto(tx_sock.as_raw_fd(), &frame0, &vf0_addr, MsgFlags::empty()).is_err() {
                refused += 1;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    // what is still queued leaves within a moment; count it
    thread::sleep(Duration::from_millis(200));
    let kernel = Result {
        frames: tx_packets() - k0,
        secs,
        cpu,
    };

    ours.print("ours (VFIO, user space)");
    kernel.print("kernel igbvf (AF_PACKET)");
    println!(
        "ratio ours/kernel: {:.2} frames/s (goal >= 1.0); CPU per frame: ours {:.2} us, kernel {:.2} us ({:.2}x)",
        ours.pps() / kernel.pps(),
        ours.cpu_us_per_frame(),
        kernel.cpu_us_per_frame(),
        kernel.cpu_us_per_frame() / ours.cpu_us_per_frame().max(1e-9)
    );
    println!(
        "(ours: the VF's VFGPTC counted {hw_tx}; kernel: {refused} sendto calls refused with a full queue)"
    );
    vf.close().unwrap();
    fs::write(&numvfs, "0").unwrap();
}
