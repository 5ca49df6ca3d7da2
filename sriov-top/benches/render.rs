//! One frame of the VF table with 256 VFs (16 PFs x 16 VFs, with rates,
//! latencies and a full event log) into a 200x60 TestBackend: the App's
//! rows, sort and formatting plus ratatui's layout and diff. Every frame
//! follows a tick of new counters for all VFs, so each has new numbers to
//! draw and diff (folding the tick in is not timed). Goal: <= 2 ms.
use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group};
use ratatui::{Terminal, backend::TestBackend};
mod common;

use common::vf_bdf;
use sriov_core::{
    discover::Pf,
    events::{Event, EventEnvelope, IrqLatency, VfActivity, VfIdentity},
    host::VfStats,
};
use sriov_top::tui::{App, SourceInfo};

const PFS: u32 = 16;
const VFS_PER_PF: u32 = 16;

fn pf_bdf(p: u32) -> String {
    format!("0000:{:02x}:00.0", p + 1)
}

fn inventory() -> Vec<Pf> {
    common::inventory(PFS, VFS_PER_PF)
}

fn stats(p: u32, v: u32, tick: u64) -> EventEnvelope {
    let k = u64::from(p * VFS_PER_PF + v + 1);
    let mut ev = EventEnvelope::new(
        1_000_000_000 * (tick + 1),
        Event::Stats(VfActivity {
            irq_per_s: (k * 10) as f64,
            irqs_total: k * 10 * tick,
            irqs_interval: k * 10,
            interval_ns: 1_000_000_000,
            irq_latency_ns: Some(IrqLatency {
                p50: 2047,
                p99: 8191,
                max: 12_000,
            }),
            irq_latency_interval_ns: None,
            irq_latency_log2_ns: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5],
            irq_handler_ns_total: 20_000,
            vfio_irqs_total: 0,
            dma_bytes_mapped: k << 20,
            dma_bytes_unmapped: 0,
            dma_map_latency_ns: None,
            dma_map_latency_interval_ns: None,
            net: Some(VfStats {
                rx_packets: k * 1000 * tick,
                tx_packets: k * 700 * tick,
                rx_bytes: k * 1_500_000 * tick,
                tx_bytes: k * 90_000 * tick,
                ..VfStats::default()
            }),
        }),
    );
    ev.vf = Some(VfIdentity {
        pf: pf_bdf(p),
        pf_netdev: Some(format!("ens{p}f0")),
        index: v,
        bdf: vf_bdf(p, v),
        netdev: None,
        iommu_group: None,
        created_ns: None,
    });
    ev
}

fn app() -> App {
    let mut app = App::new(SourceInfo::Live);
    app.resize(200, 60);
    app.apply(&EventEnvelope::new(
        0,
        Event::Inventory { pfs: inventory() },
    ));
    for tick in 0..60 {
        for p in 0..PFS {
            for v in 0..VFS_PER_PF {
                app.apply(&stats(p, v, tick));
            }
        }
    }
    for i in 0..2000u64 {
        app.apply(&EventEnvelope::new(
            61_000_000_000 + i,
            Event::Lost { records: 1 },
        ));
    }
    app
}

/// One more tick of every VF's counters: the next frame has new numbers,
/// new sparkline points and, sorted by a rate, possibly another order.
fn next_tick(app: &mut App, tick: &mut u64) {
    *tick += 1;
    for p in 0..PFS {
        for v in 0..VFS_PER_PF {
            app.apply(&stats(p, v, *tick));
        }
    }
}

/// Draw after each tick; only the draw is timed.
fn changing(app: &mut App, t: &mut Terminal<TestBackend>, tick: &mut u64, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        next_tick(app, tick);
        let start = Instant::now();
        t.draw(|f| f.render_widget(black_box(&*app), f.area()))
            .expect("draw");
        total += start.elapsed();
    }
    total
}

fn render(c: &mut Criterion) {
    let mut app = app();
    // sorted by a rate: the order changes with the data, as in real use
    for _ in 0..3 {
        app.sort = app.sort.next();
    }
    let mut t = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    let mut tick = 60;
    // every frame after a tick of new counters for all 256 VFs (an
    // unchanged App would leave ratatui nothing to diff after the first)
    c.bench_function("render_table_256_vfs_200x60_new_counters", |b| {
        b.iter_custom(|iters| changing(&mut app, &mut t, &mut tick, iters))
    });
    app.mode = sriov_top::tui::Mode::Events;
    c.bench_function("render_events_200x60_new_counters", |b| {
        b.iter_custom(|iters| changing(&mut app, &mut t, &mut tick, iters))
    });
}

criterion_group!(benches, render);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // the row of `cargo xtask bench`'s table (xtask/src/bench/table.rs):
    // the table view after new counters, against ratatui drawing nothing
    // into the same terminal (its own diff and flush of the frame)
    let mut app = app();
    for _ in 0..3 {
        app.sort = app.sort.next();
    }
    let mut t = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    let mut tick = 60;
    let frames = 300;
    let ours = changing(&mut app, &mut t, &mut tick, frames).as_secs_f64() * 1e3 / frames as f64;
    let start = Instant::now();
    for _ in 0..frames {
        t.draw(|f| {
            black_box(f.area());
        })
        .expect("draw");
    }
    let empty = start.elapsed().as_secs_f64() * 1e3 / frames as f64;
    println!(
        "bench-row\trender of a 256-VF table frame with new counters, 200x60 (vs an empty draw)\t{ours:.3} ms\t{empty:.3} ms\t{:.2}\t<= 2 ms\t{}",
        ours / empty.max(1e-9),
        if ours <= 2.0 { "yes" } else { "no" },
    );
}
