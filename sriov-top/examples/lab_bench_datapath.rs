//! Lab benchmark (inside the lab VM, as root): this project's user-space
//! driver (`sriov_core::vf`, VF 1 on vfio-pci) against the best the
//! kernel's igbvf (VF 0, same emulated 82576) does for user space, with
//! 60-byte frames, both directions.
//!
//! TX, about 3 s per round, to a MAC nobody has (frames leave via the port):
//! - ours: `tx_batch` of 32 frames per doorbell; frames the driver saw
//!   completed (the VF's VFGPTC printed beside);
//! - kernel A: AF_PACKET `sendmmsg` of 32 frames with `PACKET_QDISC_BYPASS`;
//! - kernel B: AF_PACKET `PACKET_TX_RING` (TPACKET_V2, 512 frames), one
//!   `send(MSG_DONTWAIT)` hands over every filled frame, with
//!   `PACKET_QDISC_BYPASS`;
//!
//! the kernel's frames counted by VF 0's `tx_packets` (igbvf counts them on
//! TX completion, as ours does). CPU: getrusage of the process.
//!
//! RX, each side receives what the other sends, 60-byte frames in batches of
//! 32, 3 s: ours calls `rx_batch(32)` while frames come and sleeps on its
//! MSI-X RX interrupt after 50 us without any (as NAPI does), fed by the
//! best kernel sender of the TX part (VF 0 to VF 1's MAC). The kernel
//! receives on VF 0 with AF_PACKET `recvmmsg` of 32 (A) or a
//! `PACKET_RX_RING` read after poll(2) (B), fed by our driver twice: flat
//! out (what the kernel can take: the frames/s figure) and paced to the rate
//! ours was offered in the same round (what the same load costs: the CPU
//! figure). Each line says what was offered, what the NIC delivered and
//! what the receiver counted, and whether the receiver kept up (then the
//! sender set the rate: ours is fed by the slower sender).
//!
//! Why it is fair: the same frames, batch sizes and ring sizes on both
//! sides (VF 0's rings are set to ours with `ethtool -G`); the kernel gets
//! its fastest AF_PACKET paths (no qdisc, batched system calls or shared
//! rings); the senders and receivers alternate round by round so drift in
//! the emulator hits all alike, and medians with min–max are reported.
//! The measured side runs pinned to CPU 1 with the measured VF's
//! interrupts routed there, the RX sender on CPU 0. RX CPU is the
//! receiving thread's getrusage plus CPU 1's interrupt and softirq time
//! (/proc/stat): the kernel's NAPI work counts though it runs while the
//! reader sleeps. The lab is QEMU's emulated igb under TCG: figures are
//! small, and the device's work is done by whichever vCPU rings the
//! doorbell (the sender's).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

mod common;

use std::{
    fs, io,
    process::Command,
    sync::{
        Barrier,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use common::{
    DST,
    af_packet::{self, MmsgRx, MmsgTx, RxRing, TxLoop, TxRing},
    bench_row, cpu_seconds, sys,
};
use nix::{
    sched::{CpuSet, sched_setaffinity},
    sys::{
        resource::{UsageWho, getrusage},
        time::TimeVal,
    },
    unistd::{Pid, SysconfVar, sysconf},
};
use sriov_core::{
    types::MacAddr,
    vf::{
        Igbvf, Packet, VfDevice as _, VfOptions,
        frame::{self, ETHERTYPE_TEST, EthHeader},
    },
};
use tokio::runtime::Runtime;

const RUN: Duration = Duration::from_secs(3);
const SIZE: usize = 60;
const BATCH: usize = af_packet::BATCH;
const ROUNDS: usize = 3;
/// After a kernel sender stops: its last completions are counted.
const SETTLE: Duration = Duration::from_millis(200);
/// A receiver stops this long after the sender stopped and frames did.
const DRAIN: Duration = Duration::from_millis(100);
/// The CPU the measured side runs on (the sender in TX, the receiver in
/// RX), with the measured VF's interrupts, and the other one (the sender
/// in RX).
const MEASURED: usize = 1;
const OTHER: usize = 0;
/// A receiver "kept up" when it counted this share of what was offered.
const KEPT_UP: f64 = 0.98;

// ---- CPU accounting and placement ----

fn two_cpus() -> bool {
    thread::available_parallelism().map_or(1, |n| n.get()) >= 2
}

/// Seconds `cpu` (all CPUs with one) spent in interrupts and softirqs,
/// from /proc/stat: tick samples (the guest kernel has no
/// IRQ_TIME_ACCOUNTING; an interrupt that hits a task is also charged to
/// that task).
fn irq_seconds(cpu: usize) -> f64 {
    let tag = if two_cpus() {
        format!("cpu{cpu}")
    } else {
        "cpu".to_string()
    };
    let stat = fs::read_to_string("/proc/stat").unwrap();
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tag.as_str()))
        .unwrap_or_else(|| panic!("no {tag} in /proc/stat"));
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let hz = sysconf(SysconfVar::CLK_TCK).unwrap().unwrap_or(100) as f64;
    // user nice system idle iowait irq softirq ...
    (v[5] + v[6]) as f64 / hz
}

/// CPU time of the calling thread.
fn thread_cpu() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let t = |tv: TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

/// Run the calling thread on `cpu` only.
fn pin(cpu: usize) {
    if two_cpus() {
        let mut set = CpuSet::new();
        set.set(cpu).unwrap();
        sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
    }
}

/// Route the MSI-X vectors of the PCI function `bdf` to `cpu`; what went
/// wrong, if anything.
fn route_irqs(bdf: &str, cpu: usize) -> Option<String> {
    if !two_cpus() {
        return None;
    }
    let dir = format!("/sys/bus/pci/devices/{bdf}/msi_irqs");
    let irqs = match fs::read_dir(&dir) {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned()),
        Err(e) => return Some(format!("{dir}: {e}")),
    };
    let errs: Vec<String> = irqs
        .filter_map(|irq| {
            let p = format!("/proc/irq/{irq}/smp_affinity_list");
            fs::write(&p, cpu.to_string())
                .err()
                .map(|e| format!("{p}: {e}"))
        })
        .collect();
    (!errs.is_empty()).then(|| errs.join("; "))
}

fn netdev(ifname: &str, counter: &str) -> u64 {
    sys(format!("/sys/class/net/{ifname}/statistics/{counter}"))
        .parse()
        .unwrap()
}

fn is_test(p: &Packet) -> bool {
    EthHeader::parse(p).is_some_and(|h| h.ethertype == ETHERTYPE_TEST)
}

fn test_frames(dst: MacAddr, src: MacAddr) -> Vec<Vec<u8>> {
    (0..BATCH as u64)
        .map(|i| frame::test_frame(dst, src, SIZE, i))
        .collect()
}

// ---- medians ----

struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(v: impl IntoIterator<Item = f64>) -> Spread {
    let mut v: Vec<f64> = v.into_iter().collect();
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

// ---- the senders and receivers ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KTx {
    /// sendmmsg of 32
    Mmsg,
    /// PACKET_TX_RING
    Ring,
}

enum KernelTx {
    Mmsg(MmsgTx),
    Ring(TxRing, Vec<Vec<u8>>),
}

impl KernelTx {
    fn new(kind: KTx, ifindex: i32, frames: Vec<Vec<u8>>) -> io::Result<Self> {
        Ok(match kind {
            KTx::Mmsg => Self::Mmsg(MmsgTx::new(ifindex, frames, true)?),
            KTx::Ring => Self::Ring(TxRing::new(ifindex, true)?, frames),
        })
    }

    fn no_bypass(&self) -> Option<&io::Error> {
        match self {
            Self::Mmsg(t) => t.no_bypass.as_ref(),
            Self::Ring(t, _) => t.no_bypass.as_ref(),
        }
    }

    fn run(&mut self, run: Duration) -> io::Result<TxLoop> {
        match self {
            Self::Mmsg(t) => t.run(run),
            Self::Ring(t, frames) => t.run(frames, run),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KRx {
    /// recvmmsg of 32
    Mmsg,
    /// PACKET_RX_RING
    Ring,
}

enum KernelRx {
    Mmsg(MmsgRx),
    Ring(RxRing),
}

impl KernelRx {
    fn new(kind: KRx, ifindex: i32) -> io::Result<Self> {
        Ok(match kind {
            // as much socket buffer as the ring holds frames, and more
            KRx::Mmsg => Self::Mmsg(MmsgRx::new(ifindex, ETHERTYPE_TEST, 4 << 20)?),
            KRx::Ring => Self::Ring(RxRing::new(ifindex, ETHERTYPE_TEST)?),
        })
    }

    /// Test frames received; waits up to ~10 ms when none are there.
    fn recv(&mut self) -> io::Result<u64> {
        match self {
            Self::Mmsg(r) => r.recv(ETHERTYPE_TEST).map(|n| n as u64),
            Self::Ring(r) => {
                let n = r.drain(ETHERTYPE_TEST);
                if n == 0 {
                    r.wait(10)?;
                }
                Ok(n as u64)
            }
        }
    }

    fn drops(&self) -> Option<u64> {
        match self {
            Self::Mmsg(r) => r.stats().ok().map(|s| s.1),
            Self::Ring(r) => r.stats().ok().map(|s| s.1),
        }
    }
}

// ---- TX ----

#[derive(Debug, Clone, Copy)]
struct Tx {
    frames: u64,
    secs: f64,
    /// getrusage of the process (interrupts that hit it included)
    cpu: f64,
}

impl Tx {
    fn pps(&self) -> f64 {
        self.frames as f64 / self.secs
    }
    fn cpu_us(&self) -> f64 {
        self.cpu * 1e6 / self.frames.max(1) as f64
    }
    fn line(&self, who: &str, extra: &str) -> String {
        format!(
            "{who:<40} {:>8} frames in {:.2} s = {:>8.0}/s; CPU {:.2} us/frame{extra}",
            self.frames,
            self.secs,
            self.pps(),
            self.cpu_us(),
        )
    }
}

/// Ours to `DST`: (round, VFGPTC count).
fn ours_tx(vf: &mut Igbvf) -> (Tx, u64) {
    let frames = test_frames(DST, vf.mac());
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    vf.flush_tx(Duration::from_secs(1)).unwrap();
    let before = vf.stats().unwrap();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    while t0.elapsed() < RUN {
        vf.tx_batch(&refs).unwrap();
    }
    vf.flush_tx(Duration::from_secs(2)).unwrap();
    let after = vf.stats().unwrap();
    let tx = Tx {
        frames: after.driver.tx_packets - before.driver.tx_packets,
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    };
    (tx, after.hw.tx_packets - before.hw.tx_packets)
}

/// A kernel sender on VF 0 for `RUN`, counted by VF 0's tx_packets.
fn kernel_tx(vf0_if: &str, tx: &mut KernelTx) -> (Tx, TxLoop) {
    let k0 = netdev(vf0_if, "tx_packets");
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let l = tx.run(RUN).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    // the last completions (their interrupts count as the sender's CPU)
    thread::sleep(SETTLE);
    let r = Tx {
        frames: netdev(vf0_if, "tx_packets") - k0,
        secs,
        cpu: cpu_seconds() - c0,
    };
    (r, l)
}

// ---- RX ----

#[derive(Debug, Clone, Copy)]
struct Rx {
    /// Frames the sender got out (its completion count).
    offered: u64,
    /// Frames the NIC put in the receiver's ring (ours: VFGPRC; VF 0:
    /// igbvf's rx_packets).
    nic: u64,
    /// Test frames the receiver counted.
    got: u64,
    /// Frames the socket dropped (PACKET_STATISTICS), kernel only.
    sock_drops: Option<u64>,
    /// Times ours slept on its RX interrupt, ours only.
    waits: Option<u64>,
    /// The sender's time.
    secs: f64,
    /// getrusage of the receiving thread (with the interrupts that hit it).
    thread: f64,
    /// Interrupt and softirq time on the receiver's CPU (tick samples).
    irq: f64,
}

impl Rx {
    fn pps(&self) -> f64 {
        self.got as f64 / self.secs
    }
    fn per_frame(&self, secs: f64) -> f64 {
        secs * 1e6 / self.got.max(1) as f64
    }
    /// The receiver's CPU: its thread, and the interrupts and softirqs on
    /// its CPU (the NAPI work while the thread slept).
    fn cpu_us(&self) -> f64 {
        self.per_frame(self.thread + self.irq)
    }
    fn kept_up(&self) -> bool {
        self.got as f64 >= KEPT_UP * self.offered as f64
    }
    fn line(&self, who: &str) -> String {
        let mut extra = String::new();
        if let Some(d) = self.sock_drops {
            extra += &format!(", socket dropped {d}");
        }
        if let Some(w) = self.waits {
            extra += &format!(", {w} interrupt waits");
        }
        format!(
            "{who:<40} {:>8} of {:>8} offered ({:>5.1}%; NIC delivered {}{extra}) in {:.2} s = {:>8.0}/s; CPU {:.2} us/frame (thread {:.2}, irq+softirq {:.2}); {}",
            self.got,
            self.offered,
            100.0 * self.got as f64 / self.offered.max(1) as f64,
            self.nic,
            self.secs,
            self.pps(),
            self.cpu_us(),
            self.per_frame(self.thread),
            self.per_frame(self.irq),
            if self.kept_up() {
                "kept up: sender-limited"
            } else {
                "receiver-limited"
            }
        )
    }
}

/// Ours receives like NAPI: `rx_batch(32)` while frames come; after the
/// ring was empty for [`SPIN`], sleep on the RX interrupt (MSI-X through
/// VFIO, at most 10 ms so the end is seen). Returns (test frames, waits).
fn ours_receive(vf: &mut Igbvf, rt: &Runtime, stop: &AtomicBool) -> (u64, u64) {
    const SPIN: Duration = Duration::from_micros(50);
    let mut bufs: Vec<Packet> = Vec::with_capacity(BATCH);
    let (mut got, mut waits, mut last) = (0u64, 0u64, Instant::now());
    loop {
        bufs.clear();
        let n = vf.rx_batch(&mut bufs, BATCH).unwrap();
        got += bufs.iter().filter(|p| is_test(p)).count() as u64;
        if n > 0 {
            last = Instant::now();
            continue;
        }
        let idle = last.elapsed();
        if stop.load(Ordering::Acquire) && idle >= DRAIN {
            return (got, waits);
        }
        if idle >= SPIN {
            waits += 1;
            // Err: the 10 ms passed without a frame
            if let Ok(r) = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(10), vf.wait_rx()).await
            }) {
                r.unwrap();
            }
        }
    }
}

/// VF 0 (the kernel's `sender`) sends to VF 1 for `RUN`; ours receives.
fn ours_rx(lab: &mut common::Pair, rt: &Runtime, sender: KTx, ifindex: i32) -> Rx {
    let (vf0_if, vf0_mac, vf) = (lab.vf0_if.as_str(), lab.vf0_mac, &mut lab.vf);
    let frames = test_frames(vf.mac(), vf0_mac);
    let mut bufs: Vec<Packet> = Vec::new();
    while vf.rx_batch(&mut bufs, BATCH).unwrap() > 0 {
        bufs.clear();
    }
    let stop = AtomicBool::new(false);
    let go = Barrier::new(2);
    pin(MEASURED);
    thread::scope(|s| {
        let sender = s.spawn(|| {
            pin(OTHER);
            // built here: the senders hold raw pointers
            let mut tx = KernelTx::new(sender, ifindex, frames).unwrap();
            let k0 = netdev(vf0_if, "tx_packets");
            go.wait();
            let t0 = Instant::now();
            tx.run(RUN).unwrap();
            let secs = t0.elapsed().as_secs_f64();
            stop.store(true, Ordering::Release);
            thread::sleep(SETTLE);
            (netdev(vf0_if, "tx_packets") - k0, secs)
        });
        let before = vf.stats().unwrap();
        go.wait();
        let (i0, c0) = (irq_seconds(MEASURED), thread_cpu());
        let (got, waits) = ours_receive(vf, rt, &stop);
        let (irq, thread) = (irq_seconds(MEASURED) - i0, thread_cpu() - c0);
        let after = vf.stats().unwrap();
        let (offered, secs) = sender.join().unwrap();
        Rx {
            offered,
            nic: after.hw.rx_packets - before.hw.rx_packets,
            got,
            sock_drops: None,
            waits: Some(waits),
            secs,
            irq,
            thread,
        }
    })
}

/// Ours sends to VF 0 for `RUN`, flat out or at `pace` frames/s; the
/// kernel's `receiver` counts.
fn kernel_rx(lab: &mut common::Pair, receiver: KRx, ifindex: i32, pace: Option<f64>) -> Rx {
    let (vf0_if, vf0_mac, vf) = (lab.vf0_if.as_str(), lab.vf0_mac, &mut lab.vf);
    let frames = test_frames(vf0_mac, vf.mac());
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let stop = AtomicBool::new(false);
    let go = Barrier::new(2);
    thread::scope(|s| {
        let rx = s.spawn(|| {
            pin(MEASURED);
            let mut rx = KernelRx::new(receiver, ifindex).unwrap();
            let r0 = netdev(vf0_if, "rx_packets");
            go.wait();
            let (i0, c0) = (irq_seconds(MEASURED), thread_cpu());
            let (mut got, mut last) = (0u64, Instant::now());
            loop {
                let n = rx.recv().unwrap();
                got += n;
                if n > 0 {
                    last = Instant::now();
                } else if stop.load(Ordering::Acquire) && last.elapsed() >= DRAIN {
                    break;
                }
            }
            let (irq, thread) = (irq_seconds(MEASURED) - i0, thread_cpu() - c0);
            let nic = netdev(vf0_if, "rx_packets") - r0;
            (got, irq, thread, rx.drops(), nic)
        });
        pin(OTHER);
        vf.flush_tx(Duration::from_secs(1)).unwrap();
        let before = vf.stats().unwrap();
        go.wait();
        let (t0, mut queued) = (Instant::now(), 0u64);
        while t0.elapsed() < RUN {
            if pace.is_some_and(|r| queued as f64 >= r * t0.elapsed().as_secs_f64()) {
                std::hint::spin_loop();
                continue;
            }
            queued += vf.tx_batch(&refs).unwrap() as u64;
        }
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Release);
        vf.flush_tx(Duration::from_secs(2)).unwrap();
        let after = vf.stats().unwrap();
        let (got, irq, thread, sock_drops, nic) = rx.join().unwrap();
        Rx {
            offered: after.driver.tx_packets - before.driver.tx_packets,
            nic,
            got,
            sock_drops,
            waits: None,
            secs,
            irq,
            thread,
        }
    })
}

/// Match VF 0's rings to ours; what happened.
fn match_rings(vf0_if: &str, opts: &VfOptions) -> String {
    let out = Command::new("ethtool")
        .args(["-G", vf0_if, "rx", &opts.rx_ring.to_string()])
        .args(["tx", &opts.tx_ring.to_string()])
        .output();
    let said = match out {
        Ok(o) if o.status.success() => format!(
            "VF 0's rings set to ours: rx {} tx {}",
            opts.rx_ring, opts.tx_ring
        ),
        Ok(o) => format!(
            "ethtool -G failed ({}): {}; VF 0 keeps igbvf's default rings",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("no ethtool ({e}); VF 0 keeps igbvf's default rings"),
    };
    // the rings were rebuilt: wait for the link again
    let t = Instant::now();
    while sys(format!("/sys/class/net/{vf0_if}/carrier")) != "1" {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no carrier on {vf0_if}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    said
}

fn main() {
    // MSI-X on, for the receive loop's sleeps (TX never waits on it)
    let opts = VfOptions {
        interrupts: true,
        ..VfOptions::default()
    };
    let mut lab = common::setup(opts.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ifindex = lab.vf0_addr.ifindex() as i32;
    let (vf0, vf1) = (lab.vf0.clone(), lab.vf1.clone());
    let (vf0_if, vf0_mac) = (lab.vf0_if.clone(), lab.vf0_mac);
    // interrupts count against whoever is measured: both VFs' vectors go
    // to the measured CPU unless the function is the RX rounds' sender
    let route = |measured: &str, other: &str| {
        for (bdf, cpu) in [(measured, MEASURED), (other, OTHER)] {
            if let Some(e) = route_irqs(bdf, cpu) {
                println!("interrupts of {bdf} not moved to CPU {cpu} ({e})");
            }
        }
    };
    println!(
        "lab_bench_datapath: {SIZE}-byte frames, {} s rounds, {ROUNDS} rounds each, alternating; ours on {} (VFIO, MAC {}), the kernel's on {} ({}, igbvf, AF_PACKET, MAC {vf0_mac})",
        RUN.as_secs(),
        lab.vf1,
        lab.vf.mac(),
        vf0,
        vf0_if,
    );
    println!("{}", match_rings(&vf0_if, &opts));
    if two_cpus() {
        println!(
            "CPU per frame: TX, getrusage of the sender on CPU {MEASURED}; RX, getrusage of the receiving thread on CPU {MEASURED} + interrupt/softirq time of CPU {MEASURED} (/proc/stat); the measured VF's interrupts go to CPU {MEASURED}, the RX sender runs on CPU {OTHER}"
        );
    } else {
        println!("one CPU: interrupt/softirq time is the whole machine's");
    }
    let vf = &mut lab.vf;

    // ---- TX ----
    let kernel_frames = test_frames(DST, vf0_mac);
    let mut senders: Vec<(KTx, String, KernelTx)> = Vec::new();
    for (kind, name) in [
        (KTx::Mmsg, "kernel A: sendmmsg 32 + QDISC_BYPASS"),
        (KTx::Ring, "kernel B: TX_RING + QDISC_BYPASS"),
    ] {
        match KernelTx::new(kind, ifindex, kernel_frames.clone()) {
            Ok(tx) => {
                let name = match tx.no_bypass() {
                    Some(e) => {
                        println!("{name}: PACKET_QDISC_BYPASS refused ({e}): through the qdisc");
                        name.replace("QDISC_BYPASS", "qdisc (no bypass)")
                    }
                    None => name.to_string(),
                };
                senders.push((kind, name, tx));
            }
            Err(e) => println!("{name}: cannot set up ({e}): left out"),
        }
    }
    if let Some(e) = route_irqs(&vf0, MEASURED) {
        println!("interrupts of {vf0} not moved to CPU {MEASURED} ({e})");
    }
    if let Some(e) = route_irqs(&vf1, MEASURED) {
        println!("interrupts of {vf1} not moved to CPU {MEASURED} ({e})");
    }
    pin(MEASURED);
    let ours_name = "ours: VFIO tx_batch 32";
    let mut ours_rounds: Vec<Tx> = Vec::new();
    let mut kernel_rounds: Vec<Vec<Tx>> = vec![Vec::new(); senders.len()];
    for round in 1..=ROUNDS {
        let (t, hw) = ours_tx(vf);
        println!(
            "TX {round}/{ROUNDS} {}",
            t.line(ours_name, &format!("; VFGPTC counted {hw}"))
        );
        ours_rounds.push(t);
        for (i, (_, name, tx)) in senders.iter_mut().enumerate() {
            let (t, l) = kernel_tx(&vf0_if, tx);
            println!(
                "TX {round}/{ROUNDS} {}",
                t.line(
                    name,
                    &format!(
                        "; {} calls, {} refused (driver queue full){}",
                        l.calls,
                        l.refused,
                        if l.unsent > 0 {
                            format!(", {} left unsent in the ring", l.unsent)
                        } else {
                            String::new()
                        }
                    )
                )
            );
            kernel_rounds[i].push(t);
        }
    }

    println!("TX summary, median (min-max) of {ROUNDS} rounds:");
    let summary = |name: &str, rounds: &[Tx]| {
        let p = spread(rounds.iter().map(Tx::pps));
        let c = spread(rounds.iter().map(Tx::cpu_us));
        println!(
            "  {name:<40} {:>8.0} frames/s ({:.0}-{:.0}); CPU {:.2} us/frame ({:.2}-{:.2})",
            p.median, p.min, p.max, c.median, c.min, c.max
        );
        (p.median, c.median)
    };
    let (ours_pps, ours_cpu) = summary(ours_name, &ours_rounds);
    let kernel: Vec<(KTx, &str, f64, f64)> = senders
        .iter()
        .zip(&kernel_rounds)
        .map(|((kind, name, _), r)| {
            let (p, c) = summary(name, r);
            (*kind, name.as_str(), p, c)
        })
        .collect();
    let best_pps = kernel
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .expect("no kernel sender could be set up");
    let best_cpu = kernel.iter().min_by(|a, b| a.3.total_cmp(&b.3)).unwrap();
    let tx_ratio = ours_pps / best_pps.2;
    let tx_cpu_ratio = ours_cpu / best_cpu.3;
    println!(
        "TX ratio ours / best kernel ({}): {tx_ratio:.2} frames/s (goal >= 1.0); CPU per frame ours / best kernel ({}): {tx_cpu_ratio:.2} (goal <= 1.0)",
        best_pps.1, best_cpu.1
    );
    let feeder = best_pps.0;
    let feeder_name = best_pps.1.to_string();
    let short = |n: &str| n.split(':').next().unwrap_or(n).to_string();
    let tx_rows = [
        (
            "datapath TX 60 B frames/s vs best kernel sender (AF_PACKET sendmmsg 32 + QDISC_BYPASS / TX_RING)",
            format!("{ours_pps:.0}/s"),
            format!("{:.0}/s ({})", best_pps.2, short(best_pps.1)),
            tx_ratio,
            ">= 1.0x",
            tx_ratio >= 1.0,
        ),
        (
            "datapath TX CPU per 60 B frame vs best kernel sender",
            format!("{ours_cpu:.2} us"),
            format!("{:.2} us ({})", best_cpu.3, short(best_cpu.1)),
            tx_cpu_ratio,
            "<= 1.0x",
            tx_cpu_ratio <= 1.0,
        ),
    ];
    drop(senders);

    // ---- RX ----
    println!(
        "RX: ours fed by {feeder_name} (VF 0 to VF 1), the kernel fed by ours (VF 1 to VF 0); receiver on CPU {MEASURED}, sender on CPU {OTHER}"
    );
    // ours, then the kernel's receivers flat out (what they can take), then
    // at the load ours was offered in the same round (what it costs them)
    let receivers: [(Option<KRx>, bool, &str); 5] = [
        (None, false, "ours: VFIO rx_batch 32 + MSI-X idle"),
        (Some(KRx::Mmsg), false, "kernel A: recvmmsg 32, flat out"),
        (Some(KRx::Ring), false, "kernel B: RX_RING + poll, flat out"),
        (Some(KRx::Mmsg), true, "kernel A: recvmmsg 32, ours' load"),
        (
            Some(KRx::Ring),
            true,
            "kernel B: RX_RING + poll, ours' load",
        ),
    ];
    let mut rx_rounds: Vec<Vec<Rx>> = vec![Vec::new(); receivers.len()];
    let mut rx_ok = [true; 5];
    for round in 1..=ROUNDS {
        let mut ours_load = None;
        for (i, (kind, paced, name)) in receivers.iter().enumerate() {
            if !rx_ok[i] {
                continue;
            }
            let r = match kind {
                None => {
                    route(&vf1, &vf0);
                    ours_rx(&mut lab, &rt, feeder, ifindex)
                }
                Some(k) => {
                    // set up here first: a receiver the kernel refuses is left out
                    if let Err(e) = KernelRx::new(*k, ifindex) {
                        println!("{name}: cannot set up ({e}): left out");
                        rx_ok[i] = false;
                        continue;
                    }
                    route(&vf0, &vf1);
                    let pace = if *paced { ours_load } else { None };
                    kernel_rx(&mut lab, *k, ifindex, pace)
                }
            };
            if kind.is_none() {
                ours_load = Some(r.offered as f64 / r.secs);
            }
            println!("RX {round}/{ROUNDS} {}", r.line(name));
            rx_rounds[i].push(r);
        }
    }
    println!("RX summary, median (min-max) of {ROUNDS} rounds:");
    // (name, paced, frames/s, CPU us/frame, kept up)
    let mut rx_sum: Vec<(&str, bool, f64, f64, bool)> = Vec::new();
    for ((_, paced, name), rounds) in receivers.iter().zip(&rx_rounds) {
        if rounds.is_empty() {
            continue;
        }
        let p = spread(rounds.iter().map(Rx::pps));
        let c = spread(rounds.iter().map(Rx::cpu_us));
        let kept_up = rounds.iter().all(Rx::kept_up);
        println!(
            "  {name:<40} {:>8.0} frames/s ({:.0}-{:.0}); CPU {:.2} us/frame ({:.2}-{:.2}); {}",
            p.median,
            p.min,
            p.max,
            c.median,
            c.min,
            c.max,
            if kept_up {
                "kept up every round: the rate is the sender's"
            } else {
                "dropped some: the rate is the receiver's"
            }
        );
        rx_sum.push((name, *paced, p.median, c.median, kept_up));
    }
    let (ours_rx, kernel_rx) = rx_sum.split_first().expect("ours received nothing");
    let best_rx = kernel_rx
        .iter()
        .filter(|r| !r.1)
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .expect("no kernel receiver could be set up");
    let best_rx_cpu = kernel_rx
        .iter()
        .filter(|r| r.1)
        .min_by(|a, b| a.3.total_cmp(&b.3))
        .unwrap();
    let rx_ratio = ours_rx.2 / best_rx.2;
    let rx_cpu_ratio = ours_rx.3 / best_rx_cpu.3;
    let limited: Vec<&str> = [ours_rx.4.then_some("ours"), best_rx.4.then_some("kernel")]
        .into_iter()
        .flatten()
        .collect();
    let note = if limited.is_empty() {
        String::new()
    } else {
        format!(" [sender-limited: {}]", limited.join(", "))
    };
    println!(
        "RX ratio ours / best kernel flat out ({}): {rx_ratio:.2} frames/s (goal >= 1.0){note}; CPU per frame at the same offered load, ours / best kernel ({}): {rx_cpu_ratio:.2} (goal <= 1.0)",
        best_rx.0, best_rx_cpu.0
    );

    for (metric, ours, base, ratio, goal, met) in tx_rows {
        bench_row(metric, &ours, &base, ratio, goal, met);
    }
    bench_row(
        &format!(
            "datapath RX 60 B frames/s vs best kernel receiver (AF_PACKET recvmmsg 32 / RX_RING){note}"
        ),
        &format!("{:.0}/s", ours_rx.2),
        &format!("{:.0}/s ({})", best_rx.2, short(best_rx.0)),
        rx_ratio,
        ">= 1.0x",
        rx_ratio >= 1.0,
    );
    bench_row(
        "datapath RX CPU per 60 B frame vs best kernel receiver, same offered load",
        &format!("{:.2} us", ours_rx.3),
        &format!("{:.2} us ({})", best_rx_cpu.3, short(best_rx_cpu.0)),
        rx_cpu_ratio,
        "<= 1.0x",
        rx_cpu_ratio <= 1.0,
    );
    lab.finish();
}
