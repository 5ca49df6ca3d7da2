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

mod common;

use std::time::{Duration, Instant};

use common::{DST, Rate, cpu_seconds};
use sriov_core::vf::{VfDevice as _, VfOptions, frame};

const RUN: Duration = Duration::from_secs(3);
const SIZE: usize = 60;
const BATCH: usize = 32;

fn main() {
    let mut lab = common::setup(VfOptions::default());
    println!(
        "lab_bench_datapath: {SIZE}-byte frames for {} s each; ours on {} (VFIO, MAC {}), the kernel's on {} ({}, igbvf, AF_PACKET sendto)",
        RUN.as_secs(),
        lab.vf1,
        lab.vf.mac(),
        lab.vf0,
        lab.vf0_if,
    );
    let vf = &mut lab.vf;

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
    let ours = Rate {
        frames: after.driver.tx_packets - before.driver.tx_packets,
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    };
    let hw_tx = after.hw.tx_packets - before.hw.tx_packets;

    // the kernel's
    let frame0 = frame::test_frame(DST, lab.vf0_mac, SIZE, 0);
    let (kernel, refused) = lab.kernel_tx(&frame0, RUN, BATCH);

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
    lab.finish();
}
