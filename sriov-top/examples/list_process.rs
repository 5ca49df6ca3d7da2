//! Host benchmark: `sriov list --json` as a whole process over a generated
//! sysfs tree of 16 PFs x 256 VFs (`--sysfs-root`), as an operator's
//! script runs it: process start, PCI names, discovery, owner lookup, JSON.
//! Beside it, in alternating rounds, `sriov --version` (the same binary
//! starting and exiting: the floor of any `sriov` command) and `sriov list
//! --json` over a tree with one PF and no VFs, so the printed breakdown
//! says where the time goes. Goal: <= 50 ms median.
//!
//! `cargo xtask bench` builds it in release and runs it with the path of
//! the release `sriov` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program: any failure ends it"
)]

mod common;

use common::stats::{median_duration, spread_ms};
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const ROUNDS: usize = 21;

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::piped()).output().expect("run sriov");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn main() {
    let sriov = std::env::args()
        .nth(1)
        .expect("usage: list_process PATH-TO-RELEASE-sriov");
    let big = tempfile::tempdir().unwrap();
    let small = tempfile::tempdir().unwrap();
    sriov_core::fixture::generate(big.path(), 16, 256).expect("fixture 16 x 256");
    sriov_core::fixture::generate(small.path(), 1, 0).expect("fixture 1 x 0");
    let list = |root: &Path| {
        let mut c = Command::new(&sriov);
        c.arg("--sysfs-root").arg(root).args(["list", "--json"]);
        c
    };
    // one of each first: page cache, dynamic loader
    time(&mut list(big.path()));
    let (mut whole, mut start, mut empty) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        whole.push(time(&mut list(big.path())));
        start.push(time(Command::new(&sriov).arg("--version")));
        empty.push(time(&mut list(small.path())));
    }
    println!("list_process: sriov list --json, {ROUNDS} alternating rounds, median (min-max):");
    println!(
        "list_process:   16 PFs x 256 VFs         {}",
        spread_ms(&whole)
    );
    println!(
        "list_process:   sriov --version          {}",
        spread_ms(&start)
    );
    println!(
        "list_process:   1 PF, no VFs             {}",
        spread_ms(&empty)
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (w, s, e) = (
        median_duration(whole),
        median_duration(start),
        median_duration(empty),
    );
    println!(
        "list_process: of {:.1} ms: process start {:.1} ms, list of an empty system {:.1} ms more, 4096 VFs {:.1} ms more",
        ms(w),
        ms(s),
        ms(e.saturating_sub(s)),
        ms(w.saturating_sub(e)),
    );
    // the row of `cargo xtask bench`'s table (xtask/src/bench/table.rs)
    println!(
        "bench-row\tsriov list --json, whole process, 16 PFs x 256 VFs (vs sriov --version)\t{:.1} ms\t{:.1} ms\t{:.2}\t<= 50 ms\t{}",
        ms(w),
        ms(s),
        ms(w) / ms(s).max(1e-9),
        if w <= Duration::from_millis(50) {
            "yes"
        } else {
            "no"
        },
    );
}
