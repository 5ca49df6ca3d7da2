//! TX: ours (`tx_batch` of 32) against the kernel's AF_PACKET senders on
//! VF 0, round by round, all to a MAC nobody has.
use std::{
    thread,
    time::{Duration, Instant},
};

use sriov_core::vf::{Igbvf, VfDevice as _};

use super::{
    BenchRow,
    kernel_socks::{KTx, KernelTx},
    netdev,
    placement::{pin, route_irqs},
    short, spread, test_frames,
};
use crate::{
    MEASURED, ROUNDS, RUN, SETTLE,
    common::{self, DST, af_packet::TxLoop, cpu_seconds},
};

const OURS: &str = "ours: VFIO tx_batch 32";

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

/// What the TX rounds found: the rows for the table, and the kernel
/// sender with the best frames/s (which feeds ours in the RX rounds).
pub struct TxOutcome {
    pub rows: [BenchRow; 2],
    pub feeder: KTx,
    pub feeder_name: String,
}

/// The TX rounds, with the measured side pinned to `MEASURED`.
pub fn run(lab: &mut common::Pair, ifindex: i32) -> TxOutcome {
    let (vf0, vf1) = (lab.vf0.as_str(), lab.vf1.as_str());
    let mut senders = kernel_senders(ifindex, lab);
    if let Some(e) = route_irqs(vf0, MEASURED) {
        println!("interrupts of {vf0} not moved to CPU {MEASURED} ({e})");
    }
    if let Some(e) = route_irqs(vf1, MEASURED) {
        println!("interrupts of {vf1} not moved to CPU {MEASURED} ({e})");
    }
    pin(MEASURED);
    let (ours_rounds, kernel_rounds) = rounds(&mut lab.vf, &lab.vf0_if, &mut senders);
    summary(&ours_rounds, &senders, &kernel_rounds)
}

/// The kernel senders that could be set up on VF 0, with their names.
fn kernel_senders(ifindex: i32, lab: &common::Pair) -> Vec<(KTx, String, KernelTx)> {
    let kernel_frames = test_frames(DST, lab.vf0_mac);
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
    senders
}

/// `ROUNDS` rounds, ours then each kernel sender: (ours, per sender).
fn rounds(
    vf: &mut Igbvf,
    vf0_if: &str,
    senders: &mut [(KTx, String, KernelTx)],
) -> (Vec<Tx>, Vec<Vec<Tx>>) {
    let mut ours_rounds: Vec<Tx> = Vec::new();
    let mut kernel_rounds: Vec<Vec<Tx>> = vec![Vec::new(); senders.len()];
    for round in 1..=ROUNDS {
        let (t, hw) = ours_tx(vf);
        println!(
            "TX {round}/{ROUNDS} {}",
            t.line(OURS, &format!("; VFGPTC counted {hw}"))
        );
        ours_rounds.push(t);
        for (i, (_, name, tx)) in senders.iter_mut().enumerate() {
            let (t, l) = kernel_tx(vf0_if, tx);
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
    (ours_rounds, kernel_rounds)
}

/// One summary line: median (min-max) frames/s and CPU; the medians.
fn summary_line(name: &str, rounds: &[Tx]) -> (f64, f64) {
    let p = spread(rounds.iter().map(Tx::pps));
    let c = spread(rounds.iter().map(Tx::cpu_us));
    println!(
        "  {name:<40} {:>8.0} frames/s ({:.0}-{:.0}); CPU {:.2} us/frame ({:.2}-{:.2})",
        p.median, p.min, p.max, c.median, c.min, c.max
    );
    (p.median, c.median)
}

/// The summary of the rounds, ours against the best kernel sender.
fn summary(
    ours_rounds: &[Tx],
    senders: &[(KTx, String, KernelTx)],
    kernel_rounds: &[Vec<Tx>],
) -> TxOutcome {
    println!("TX summary, median (min-max) of {ROUNDS} rounds:");
    let (ours_pps, ours_cpu) = summary_line(OURS, ours_rounds);
    let kernel: Vec<(KTx, &str, f64, f64)> = senders
        .iter()
        .zip(kernel_rounds)
        .map(|((kind, name, _), r)| {
            let (p, c) = summary_line(name, r);
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
    let rows = [
        BenchRow {
            metric: "datapath TX 60 B frames/s vs best kernel sender (AF_PACKET sendmmsg 32 + QDISC_BYPASS / TX_RING)".to_string(),
            ours: format!("{ours_pps:.0}/s"),
            base: format!("{:.0}/s ({})", best_pps.2, short(best_pps.1)),
            ratio: tx_ratio,
            goal: ">= 1.0x",
            met: tx_ratio >= 1.0,
        },
        BenchRow {
            metric: "datapath TX CPU per 60 B frame vs best kernel sender".to_string(),
            ours: format!("{ours_cpu:.2} us"),
            base: format!("{:.2} us ({})", best_cpu.3, short(best_cpu.1)),
            ratio: tx_cpu_ratio,
            goal: "<= 1.0x",
            met: tx_cpu_ratio <= 1.0,
        },
    ];
    TxOutcome {
        rows,
        feeder: best_pps.0,
        feeder_name: best_pps.1.to_string(),
    }
}
