//! Decode + attribute + NDJSON-encode of synthetic ring-buffer records on one
//! core, in events/s (goal >= 1 M/s), beside a plain copy of the same bytes
//! as the ceiling. Ends with one summary line measured in this run.
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use sriov_core::{
    events::{Attributor, Clock, NdjsonWriter},
    fixture::{self, PfSpec},
    host::System,
};
use sriov_ebpf::record::{self, Record};

fn header(kind: u32, b: &mut Vec<u8>) {
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // cpu
    b.extend_from_slice(&123_456_789u64.to_le_bytes()); // ts
    b.extend_from_slice(&4242u32.to_le_bytes()); // tid
    b.extend_from_slice(&4242u32.to_le_bytes()); // pid
    b.extend_from_slice(b"sriov-bench\0\0\0\0\0");
}

fn name(s: &str, b: &mut Vec<u8>) {
    let mut n = [0u8; record::NAME_LEN];
    n[..s.len()].copy_from_slice(s.as_bytes());
    b.extend_from_slice(&n);
}

/// A mix like a busy host's: probes, VF adds, DMA maps.
fn records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..64u32 {
        let mut b = Vec::new();
        match i % 3 {
            0 => {
                header(record::KIND_DRIVER_PROBE, &mut b);
                // a VF of the fixture's PF (0000:01:10.0, .2, .4, ...)
                name(
                    &fixture::vf_bdf("0000:01:00.0".parse().expect("bdf"), i % 7).to_string(),
                    &mut b,
                );
                name("igbvf", &mut b);
                b.extend_from_slice(&0i32.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&25_000u64.to_le_bytes());
            }
            1 => {
                header(record::KIND_VF_ADD, &mut b);
                name("0000:01:00.0", &mut b);
                b.extend_from_slice(&((i % 7) as i32).to_le_bytes());
                b.extend_from_slice(&0i32.to_le_bytes());
                b.extend_from_slice(&40_000u64.to_le_bytes());
            }
            _ => {
                header(record::KIND_VFIO_DMA, &mut b);
                b.extend_from_slice(&record::DMA_MAP.to_le_bytes());
                b.extend_from_slice(&0i32.to_le_bytes());
                for v in [0x10_0000u64, 1 << 20, 0x7f00_0000_0000, 9_000] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        out.push(b);
    }
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    host: System,
    attr: Attributor,
    recs: Vec<Vec<u8>>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::add_pf(
        dir.path(),
        &PfSpec::i82576("0000:01:00.0".parse().expect("bdf"), "eth0", 7),
    )
    .expect("fixture");
    let host = System::fixture(dir.path());
    let attr = Attributor::new(&host).expect("attributor");
    Setup {
        _dir: dir,
        host,
        attr,
        recs: records(),
    }
}

/// Decode, attribute and encode every record; returns bytes written.
fn pipeline(s: &mut Setup, w: &mut NdjsonWriter<std::io::Sink>) -> usize {
    let mut n = 0;
    for b in &s.recs {
        let rec = Record::decode(b).expect("decode");
        let ev = s.attr.from_record(&s.host, &rec);
        w.write(&ev).expect("write");
        n += b.len();
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut s = setup();
    let mut w = NdjsonWriter::new(std::io::sink(), Clock::new().expect("clock"), "bench");
    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(s.recs.len() as u64));
    g.bench_function("decode+attribute+ndjson", |b| {
        b.iter(|| pipeline(&mut s, &mut w))
    });
    let flat: Vec<u8> = s.recs.concat();
    let mut dst = vec![0u8; flat.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| dst.copy_from_slice(std::hint::black_box(&flat)))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let mut s = setup();
    let mut w = NdjsonWriter::new(std::io::sink(), Clock::new().expect("clock"), "bench");
    let rounds = 3000;
    let t = Instant::now();
    for _ in 0..rounds {
        pipeline(&mut s, &mut w);
    }
    let per_s = (rounds * s.recs.len()) as f64 / t.elapsed().as_secs_f64();
    let flat: Vec<u8> = s.recs.concat();
    let mut dst = vec![0u8; flat.len()];
    let t = Instant::now();
    for _ in 0..rounds {
        dst.copy_from_slice(std::hint::black_box(&flat));
    }
    let copy_per_s = (rounds * s.recs.len()) as f64 / t.elapsed().as_secs_f64();
    println!(
        "events: decode+attribute+ndjson {:.2} M events/s (goal >= 1 M/s: {}), memcpy of the same bytes {:.1} M records/s; pipeline/memcpy = {:.4}",
        per_s / 1e6,
        if per_s >= 1e6 { "met" } else { "MISSED" },
        copy_per_s / 1e6,
        per_s / copy_per_s
    );
    // the row of `cargo xtask bench`'s table (xtask/src/bench/table.rs)
    println!(
        "bench-row\tevent pipeline (ring record -> event -> NDJSON), one core, vs memcpy of the records\t{:.2} M/s\t{:.1} M/s\t{:.4}\t>= 1 M/s\t{}",
        per_s / 1e6,
        copy_per_s / 1e6,
        per_s / copy_per_s,
        if per_s >= 1e6 { "yes" } else { "no" },
    );
}
