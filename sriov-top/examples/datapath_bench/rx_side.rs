//! RX: each side receives what the other sends. Ours (`rx_batch` of 32,
//! sleeping on its MSI-X RX interrupt when idle) fed by the best kernel
//! sender; the kernel's AF_PACKET receivers fed by ours, flat out and at
//! the load ours was offered.
use std::{
    sync::{
        Barrier,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use sriov_core::vf::{Igbvf, Packet, VfDevice as _};
use tokio::runtime::Runtime;

use super::{
    BenchRow, is_test,
    kernel_socks::{KRx, KTx, KernelRx, KernelTx},
    netdev,
    placement::{irq_seconds, pin, route, thread_cpu},
    short, spread, test_frames,
};
use crate::{BATCH, DRAIN, KEPT_UP, MEASURED, OTHER, ROUNDS, RUN, SETTLE, common};

/// Ours, then the kernel's receivers flat out (what they can take), then
/// at the load ours was offered in the same round (what it costs them):
/// (kernel receiver or ours, paced, name).
const RECEIVERS: [(Option<KRx>, bool, &str); 5] = [
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

/// The RX rounds, ours fed by `feeder` (`feeder_name`); the rows for the
/// table.
pub fn run(
    lab: &mut common::Pair,
    rt: &Runtime,
    feeder: KTx,
    feeder_name: &str,
    ifindex: i32,
) -> [BenchRow; 2] {
    println!(
        "RX: ours fed by {feeder_name} (VF 0 to VF 1), the kernel fed by ours (VF 1 to VF 0); receiver on CPU {MEASURED}, sender on CPU {OTHER}"
    );
    let rx_rounds = rounds(lab, rt, feeder, ifindex);
    summary(&rx_rounds)
}

/// `ROUNDS` rounds of every receiver that could be set up, in the order
/// of [`RECEIVERS`].
fn rounds(lab: &mut common::Pair, rt: &Runtime, feeder: KTx, ifindex: i32) -> Vec<Vec<Rx>> {
    let (vf0, vf1) = (lab.vf0.clone(), lab.vf1.clone());
    let mut rx_rounds: Vec<Vec<Rx>> = vec![Vec::new(); RECEIVERS.len()];
    let mut rx_ok = [true; 5];
    for round in 1..=ROUNDS {
        let mut ours_load = None;
        for (i, (kind, paced, name)) in RECEIVERS.iter().enumerate() {
            if !rx_ok[i] {
                continue;
            }
            let r = match kind {
                None => {
                    route(&vf1, &vf0);
                    ours_rx(lab, rt, feeder, ifindex)
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
                    kernel_rx(lab, *k, ifindex, pace)
                }
            };
            if kind.is_none() {
                ours_load = Some(r.offered as f64 / r.secs);
            }
            println!("RX {round}/{ROUNDS} {}", r.line(name));
            rx_rounds[i].push(r);
        }
    }
    rx_rounds
}

/// A receiver's medians: (name, paced, frames/s, CPU us/frame, kept up).
type RxSum = (&'static str, bool, f64, f64, bool);

/// The summary of the rounds, ours against the best kernel receiver.
fn summary(rx_rounds: &[Vec<Rx>]) -> [BenchRow; 2] {
    let rx_sum = summary_lines(rx_rounds);
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
    [
        BenchRow {
            metric: format!(
                "datapath RX 60 B frames/s vs best kernel receiver (AF_PACKET recvmmsg 32 / RX_RING){note}"
            ),
            ours: format!("{:.0}/s", ours_rx.2),
            base: format!("{:.0}/s ({})", best_rx.2, short(best_rx.0)),
            ratio: rx_ratio,
            goal: ">= 1.0x",
            met: rx_ratio >= 1.0,
        },
        BenchRow {
            metric: "datapath RX CPU per 60 B frame vs best kernel receiver, same offered load"
                .to_string(),
            ours: format!("{:.2} us", ours_rx.3),
            base: format!("{:.2} us ({})", best_rx_cpu.3, short(best_rx_cpu.0)),
            ratio: rx_cpu_ratio,
            goal: "<= 1.0x",
            met: rx_cpu_ratio <= 1.0,
        },
    ]
}

/// One summary line per receiver with rounds: median (min-max) frames/s
/// and CPU, and whether it kept up.
fn summary_lines(rx_rounds: &[Vec<Rx>]) -> Vec<RxSum> {
    println!("RX summary, median (min-max) of {ROUNDS} rounds:");
    let mut rx_sum: Vec<RxSum> = Vec::new();
    for ((_, paced, name), rounds) in RECEIVERS.iter().zip(rx_rounds) {
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
    rx_sum
}
