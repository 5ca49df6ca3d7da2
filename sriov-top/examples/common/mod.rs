//! What the lab benchmarks share: two VFs of the lab PF, VF 0 on igbvf
//! with its netdev up, VF 1 on vfio-pci driven by `sriov_core::vf`, and an
//! AF_PACKET socket that sends as VF 0; timing and CPU helpers.
#![allow(dead_code, reason = "each example uses part of it")]
pub mod af_packet;
pub mod proc_cpu;
pub mod stats;

use std::{
    fs,
    os::fd::{AsRawFd as _, OwnedFd},
    path::Path,
    sync::Arc,
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

/// Nobody has this MAC: the frames leave through the port.
pub const DST: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0xbe, 0xef]);

/// The lab PF with 2 VFs, VF 1 bound to vfio-pci: (PF, VF 1) BDFs.
pub fn vf1_on_vfio() -> (String, String) {
    let pf = std::env::var("SRIOV_LAB_PF").expect("run inside the lab (SRIOV_LAB_PF)");
    let numvfs = format!("/sys/bus/pci/devices/{pf}/sriov_numvfs");
    fs::write(&numvfs, "0").unwrap();
    fs::write(&numvfs, "2").unwrap();
    let vf1 = fs::read_link(format!("/sys/bus/pci/devices/{pf}/virtfn1"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    ops::bind(&System::live(), &vf1, "vfio-pci").expect("VF 1 to vfio-pci");
    (pf, vf1)
}

/// One figure against its goal, for the table `cargo xtask bench` ends
/// with (xtask/src/bench/table.rs has the format).
pub fn bench_row(metric: &str, ours: &str, baseline: &str, ratio: f64, goal: &str, met: bool) {
    let met = if met { "yes" } else { "no" };
    println!("bench-row\t{metric}\t{ours}\t{baseline}\t{ratio:.2}\t{goal}\t{met}");
}

/// Median ns of `maps` maps of `size` bytes through a fresh VFIO container
/// on `vf` (each unmapped right after, untimed).
pub fn map_latency(vf: &str, size: usize, maps: usize) -> f64 {
    use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};
    let container = Arc::new(VfioContainer::new(None).expect("/dev/vfio/vfio"));
    let _dev = VfioDevice::new(
        Path::new(&format!("/sys/bus/pci/devices/{vf}")),
        container.clone() as Arc<dyn VfioOps>,
        false,
    )
    .expect("open VF 1 through VFIO");
    let mut raw = vec![0u8; size + 4096];
    let off = raw.as_ptr().align_offset(4096);
    let p = raw[off..].as_mut_ptr();
    let mut ns = Vec::with_capacity(maps);
    for i in 0..maps {
        let iova = 0x100_0000 + (i as u64 % 16) * 0x10_0000;
        let t = Instant::now();
        // SAFETY: `raw` outlives the mapping, unmapped right below.
        unsafe { container.vfio_dma_map(iova, size, p) }.expect("VFIO_IOMMU_MAP_DMA");
        ns.push(t.elapsed().as_nanos() as f64);
        container.vfio_dma_unmap(iova, size).expect("UNMAP");
    }
    stats::median(ns)
}

pub fn cpu_seconds() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let t = |tv: TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

pub fn sys(path: String) -> String {
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

/// Frames sent in a run and what they cost.
pub struct Rate {
    pub frames: u64,
    pub secs: f64,
    pub cpu: f64,
}

impl Rate {
    pub fn pps(&self) -> f64 {
        self.frames as f64 / self.secs
    }
    pub fn cpu_us_per_frame(&self) -> f64 {
        self.cpu * 1e6 / self.frames.max(1) as f64
    }
    pub fn print(&self, who: &str) {
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

/// The two VFs, ready.
pub struct Pair {
    pub numvfs: String,
    pub vf0: String,
    pub vf1: String,
    pub vf0_if: String,
    pub vf0_mac: MacAddr,
    /// VF 1 in user space.
    pub vf: Igbvf,
    /// VF 0's `sockaddr_ll`, for sending as VF 0.
    pub vf0_addr: LinkAddr,
    pub tx_sock: OwnedFd,
}

/// Two VFs: VF 0 up on igbvf, VF 1 on vfio-pci opened with `opts`.
pub fn setup(opts: VfOptions) -> Pair {
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
    let mut vf = Igbvf::open(&live, &vf1, opts).expect("open VF 1");
    while !vf.link().unwrap().up {
        assert!(t.elapsed() < Duration::from_secs(60), "no link on VF 1");
        thread::sleep(Duration::from_millis(50));
    }

    // sending as VF 0 needs its sockaddr_ll: take the one the kernel
    // reports for a frame our driver sends to VF 0
    let sock: OwnedFd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::EthAll,
    )
    .expect("AF_PACKET socket");
    setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000)).unwrap();
    let probe = frame::test_frame(vf0_mac, vf.mac(), 60, 0);
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
    let tx_sock: OwnedFd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        None::<SockProtocol>,
    )
    .expect("AF_PACKET TX socket");
    Pair {
        numvfs,
        vf0,
        vf1,
        vf0_if,
        vf0_mac,
        vf,
        vf0_addr: vf0_addr.unwrap(),
        tx_sock,
    }
}

impl Pair {
    /// VF 0's netdev sends `frame` for `run` through AF_PACKET, `batch`
    /// `sendto`s at a time: frames the netdev counted, and how many calls
    /// the kernel refused (a full queue, or dropped on egress).
    pub fn kernel_tx(&self, frame: &[u8], run: Duration, batch: usize) -> (Rate, u64) {
        let tx_packets = || -> u64 {
            sys(format!(
                "/sys/class/net/{}/statistics/tx_packets",
                self.vf0_if
            ))
            .parse()
            .unwrap()
        };
        let k0 = tx_packets();
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let mut refused = 0u64;
        while t0.elapsed() < run {
            for _ in 0..batch {
                if sendto(
                    self.tx_sock.as_raw_fd(),
                    frame,
                    &self.vf0_addr,
                    MsgFlags::empty(),
                )
                .is_err()
                {
                    refused += 1;
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        // what is still queued leaves within a moment; count it
        thread::sleep(Duration::from_millis(200));
        (
            Rate {
                frames: tx_packets() - k0,
                secs,
                cpu,
            },
            refused,
        )
    }

    pub fn finish(self) {
        self.vf.close().unwrap();
        fs::write(&self.numvfs, "0").unwrap();
    }
}
