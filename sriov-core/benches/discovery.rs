//! Discovery over generated sysfs fixture trees: 16 PFs x 256 VFs (goal
//! <= 50 ms) beside 4 PFs x 64 VFs, to show how it grows. Ends with one
//! summary line of medians and their ratio, measured in this run.
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use sriov_core::{discover, fixture, host::System};

fn tree(pfs: u32, vfs: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    fixture::generate(d.path(), pfs, vfs).expect("generate fixture");
    d
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("discovery");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for (pfs, vfs) in [(4, 64), (16, 256)] {
        let d = tree(pfs, vfs);
        let host = System::fixture(d.path());
        g.bench_function(format!("{pfs}x{vfs}"), |b| {
            b.iter(|| {
                let inv = discover::discover(&host).expect("discover");
                assert_eq!(inv.pfs.len() as u32, pfs);
                inv
            })
        });
    }
    g.finish();
}

fn median(pfs: u32, vfs: u32) -> Duration {
    let d = tree(pfs, vfs);
    let host = System::fixture(d.path());
    let mut t: Vec<Duration> = (0..15)
        .map(|_| {
            let s = Instant::now();
            let inv = discover::discover(&host).expect("discover");
            assert_eq!(
                inv.pfs.iter().map(|p| p.vfs.len() as u32).sum::<u32>(),
                pfs * vfs
            );
            s.elapsed()
        })
        .collect();
    t.sort();
    t[t.len() / 2]
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let small = median(4, 64);
    let big = median(16, 256);
    println!(
        "discovery: 16x256 = {:.2} ms (goal <= 50 ms: {}), 4x64 = {:.2} ms; 16x ({}) the VFs took {:.1}x the time",
        big.as_secs_f64() * 1e3,
        if big <= Duration::from_millis(50) {
            "met"
        } else {
            "MISSED"
        },
        small.as_secs_f64() * 1e3,
        16 * 256 / (4 * 64),
        big.as_secs_f64() / small.as_secs_f64()
    );
    // the row of `cargo xtask bench`'s table (xtask/src/bench/table.rs)
    println!(
        "bench-row\tdiscovery in-process, 16 PFs x 256 VFs (vs 4 x 64, scaled)\t{:.2} ms\t{:.2} ms\t{:.2}\t<= 50 ms\t{}",
        big.as_secs_f64() * 1e3,
        small.as_secs_f64() * 1e3 * 16.0,
        big.as_secs_f64() / (small.as_secs_f64() * 16.0),
        if big <= Duration::from_millis(50) {
            "yes"
        } else {
            "no"
        },
    );
}
