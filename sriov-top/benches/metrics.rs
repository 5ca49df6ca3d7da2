//! `/metrics` of 16 PFs × 256 VFs (4096 VFs with netdev counters, IRQ
//! counts and handler-time histograms, owners), encoded by the agent
//! (`prometheus-client`, Prometheus text) against the floor: the same
//! per-VF samples written straight into a `String` with `write!`, no
//! registry, no label encoder. Alternating rounds in one run; medians.
//! Goal: ≤ 20 ms per scrape on one core. Prints the payload's size.
use std::{
    fmt::Write as _,
    hint::black_box,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

mod common;

use sriov_core::{
    discover::Pf,
    events::{Event, EventEnvelope, VfActivity, VfIdentity},
    host::VfStats,
    owner::{Holder, VfOwner},
};
use sriov_top::serve::{AgentState, encode};

const PFS: u32 = 16;
const VFS_PER_PF: u32 = 256;
const ROUNDS: usize = 21;

/// The shared fixture, with counters and, on every vfio-pci VF, a QEMU
/// holding it.
fn inventory() -> Vec<Pf> {
    let mut pfs = common::inventory(PFS, VFS_PER_PF);
    for (p, pf) in pfs.iter_mut().enumerate() {
        for vf in &mut pf.vfs {
            let v = u64::from(vf.index);
            if let Some(c) = &mut vf.config {
                c.stats = Some(VfStats {
                    rx_packets: v * 1_000_003,
                    tx_packets: v * 999_983,
                    rx_bytes: v * 1_500_000_000,
                    tx_bytes: v * 1_400_000_000,
                    ..VfStats::default()
                });
            }
            if vf.driver.as_deref() == Some("vfio-pci") {
                vf.owner = Some(VfOwner {
                    processes: vec![Holder {
                        pid: 10_000 + vf.index,
                        comm: "qemu-system-x86".into(),
                        exe: Some("/usr/bin/qemu-system-x86_64".into()),
                        cgroup: Some(format!(
                            "/machine.slice/machine-qemu\\x2d{p}\\x2dvm{v}.scope"
                        )),
                        path: format!("/dev/vfio/{}", vf.iommu_group.unwrap_or(0)),
                        vm: Some(format!("vm{p}-{v}")),
                        container: None,
                    }],
                    ..VfOwner::default()
                });
            }
        }
    }
    pfs
}

fn state() -> AgentState {
    let pfs = inventory();
    let mut s = AgentState::new("node-0042.example");
    s.on_event(&EventEnvelope::new(
        1,
        Event::Inventory { pfs: pfs.clone() },
    ));
    for pf in &pfs {
        for vf in &pf.vfs {
            let id = VfIdentity {
                pf: pf.bdf.clone(),
                pf_netdev: pf.netdev.clone(),
                index: vf.index,
                bdf: vf.bdf.clone(),
                netdev: vf.netdev.clone(),
                iommu_group: vf.iommu_group,
                created_ns: None,
            };
            let mut log2 = vec![0; 16];
            log2[10] = u64::from(vf.index) * 7 + 1;
            log2[12] = 3;
            let a = VfActivity {
                irq_per_s: 0.0,
                irqs_total: u64::from(vf.index) * 7 + 4,
                irqs_interval: 0,
                interval_ns: 0,
                irq_latency_ns: None,
                irq_latency_interval_ns: None,
                irq_latency_log2_ns: log2,
                irq_handler_ns_total: 123_456,
                vfio_irqs_total: 0,
                dma_bytes_mapped: 1 << 30,
                dma_bytes_unmapped: 0,
                dma_map_latency_ns: None,
                dma_map_latency_interval_ns: None,
                net: None,
            };
            s.on_event(&EventEnvelope {
                ts_ns: 2,
                vf: Some(id),
                process: None,
                event: Event::Stats(a),
            });
        }
    }
    s
}

/// The floor: the same per-VF counter and gauge samples as the agent
/// writes (the info line, 8 netdev counters, 2 IRQ counters, the DMA
/// gauge and 3 DMA counters), straight into a String. Histograms and
/// help lines left out, so this is below what any encoder of the same
/// exposition can do.
fn floor(s: &AgentState, out: &mut String) {
    out.clear();
    let node = &s.node;
    for v in s.vfs.values() {
        let l = format!(
            "node=\"{node}\",pf=\"{}\",vf=\"{}\",bdf=\"{}\"",
            v.pf, v.index, v.bdf
        );
        let info = |k: &str| {
            v.info_labels
                .iter()
                .find(|(key, _)| *key == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let _ = writeln!(
            out,
            "sriovtop_vf_info{{{l},netdev=\"{}\",driver=\"{}\",mac=\"{}\"}} 1",
            info("netdev"),
            info("driver"),
            info("mac")
        );
        let n = v.net.unwrap_or_default();
        for (name, x) in [
            ("vf_rx_packets_total", n.rx_packets),
            ("vf_tx_packets_total", n.tx_packets),
            ("vf_rx_bytes_total", n.rx_bytes),
            ("vf_tx_bytes_total", n.tx_bytes),
            ("vf_rx_dropped_packets_total", n.rx_dropped),
            ("vf_tx_dropped_packets_total", n.tx_dropped),
            ("vf_rx_broadcast_packets_total", n.broadcast),
            ("vf_rx_multicast_packets_total", n.multicast),
            ("vf_irqs_total", v.irqs),
            ("vf_vfio_irqs_total", v.vfio_irqs),
            ("vf_dma_mapped_bytes", v.dma_bytes_mapped),
            ("vf_dma_maps_total", v.dma_maps),
            ("vf_dma_unmaps_total", v.dma_unmaps),
        ] {
            let _ = writeln!(out, "sriovtop_{name}{{{l}}} {x}");
        }
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let metrics = encode::Exposition::new(Arc::new(Mutex::new(state())));
    let s = state();
    let (mut agent, mut base) = (Vec::new(), Vec::new());
    let mut payload = 0;
    let mut floor_out = String::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let body = black_box(&metrics).render(false).expect("encode");
        agent.push(t.elapsed());
        payload = body.len();
        let t = Instant::now();
        floor(black_box(&s), &mut floor_out);
        base.push(t.elapsed());
        black_box(&floor_out);
    }
    // a scrape between two ticks: the body encoded for the first
    let mut cached = Vec::new();
    metrics.scrape(false).expect("encode");
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(metrics.scrape(false).expect("encode"));
        cached.push(t.elapsed());
    }
    let c = median(&mut cached);
    let (a, b) = (median(&mut agent), median(&mut base));
    println!(
        "metrics_16pf_x_256vf: a scrape between two ticks (the last body again) {:.0} ns",
        c.as_secs_f64() * 1e9
    );
    println!(
        "metrics_16pf_x_256vf: /metrics (prometheus-client) {:.2} ms per scrape, {:.1} MiB ({payload} bytes); \
         floor (write! of the counters and gauges only) {:.2} ms, {:.1} MiB; ratio {:.2}x; goal <= 20 ms: {}",
        a.as_secs_f64() * 1e3,
        payload as f64 / 1048576.0,
        b.as_secs_f64() * 1e3,
        floor_out.len() as f64 / 1048576.0,
        a.as_secs_f64() / b.as_secs_f64(),
        if a <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        },
    );
    // the row of `cargo xtask bench`'s table (xtask/src/bench/table.rs)
    println!(
        "bench-row\t/metrics scrape, 16 PFs x 256 VFs (prometheus-client vs write! floor)\t{:.2} ms\t{:.2} ms\t{:.2}\t<= 20 ms\t{}",
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        a.as_secs_f64() / b.as_secs_f64(),
        if a <= Duration::from_millis(20) {
            "yes"
        } else {
            "no"
        },
    );
}
