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
mod datapath_bench;

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{af_packet, sys};
use datapath_bench::{placement::two_cpus, rx_side, tx_side};
use sriov_core::vf::{VfDevice as _, VfOptions};

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
    println!(
        "lab_bench_datapath: {SIZE}-byte frames, {} s rounds, {ROUNDS} rounds each, alternating; ours on {} (VFIO, MAC {}), the kernel's on {} ({}, igbvf, AF_PACKET, MAC {})",
        RUN.as_secs(),
        lab.vf1,
        lab.vf.mac(),
        lab.vf0,
        lab.vf0_if,
        lab.vf0_mac,
    );
    println!("{}", match_rings(&lab.vf0_if, &opts));
    if two_cpus() {
        println!(
            "CPU per frame: TX, getrusage of the sender on CPU {MEASURED}; RX, getrusage of the receiving thread on CPU {MEASURED} + interrupt/softirq time of CPU {MEASURED} (/proc/stat); the measured VF's interrupts go to CPU {MEASURED}, the RX sender runs on CPU {OTHER}"
        );
    } else {
        println!("one CPU: interrupt/softirq time is the whole machine's");
    }

    let tx = tx_side::run(&mut lab, ifindex);
    let rx_rows = rx_side::run(&mut lab, &rt, tx.feeder, &tx.feeder_name, ifindex);

    for row in tx.rows.iter().chain(&rx_rows) {
        row.print();
    }
    lab.finish();
}
