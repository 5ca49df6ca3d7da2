//! Text the views show that takes more than a field: the detail of a VF,
//! the log's columns, the help.
use std::collections::VecDeque;

use sriov_core::events::Waterfall;

use super::{
    format::{self, flag, si, si_opt},
    log::LogEntry,
    model::VfState,
};

/// Every key, for the help overlay (and the docs).
pub const HELP: &[(&str, &str)] = &[
    ("q", "quit (Ctrl-C too)"),
    (
        "Esc",
        "close help / detail / filter; quit when nothing is open",
    ),
    (
        "↑ ↓  k j",
        "select a row (detail: the previous / next VF; events: scroll)",
    ),
    ("PgUp PgDn", "a page up / down"),
    (
        "Home End  g G",
        "first / last row (events: oldest / follow the newest)",
    ),
    ("Enter", "detail of the selected VF"),
    ("Tab", "switch view: VF table ↔ event log"),
    ("/", "filter: type, Enter applies, Esc clears"),
    ("", "  table: BDF, netdev, driver or MAC contains the text"),
    ("", "  events: every word in the kind, VF BDF or netdev"),
    (
        "s",
        "sort by the next column (BDF, netdev, driver, rates, DMA)",
    ),
    (
        "S",
        "reverse the sort order (VFs are sorted within their PF)",
    ),
    ("p", "pause / resume the event log (new events are held)"),
    ("?", "this help"),
    (
        "mouse",
        "click selects a row, the wheel moves the selection",
    ),
    (
        "",
        "columns: s/t spoofchk/trust (+ on, - off), link: VF link state,",
    ),
    ("", "  map/s MiB: VFIO DMA maps per second and MiB mapped"),
];

/// The detail view of one VF, as lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub title: String,
    /// Identity, settings, rates.
    pub left: Vec<String>,
    /// Latencies.
    pub right: Vec<String>,
    /// Sparkline titles with their samples.
    pub sparks: Vec<(String, VecDeque<u64>)>,
    /// This VF's phases in its PF's last creation waterfall (`vf_created`),
    /// and that write's summary first; empty when there is none.
    pub creation: Vec<String>,
    /// IRQ handler time since start, by log2 bucket: (upper bound, runs),
    /// from the first bucket with runs to the last.
    pub irq_hist: Vec<(String, u64)>,
}

/// The VF's part of a creation waterfall: the write's summary line, then
/// its phases (indented by depth).
fn creation_lines(v: &VfState, w: &Waterfall) -> Vec<String> {
    let mine: Vec<&sriov_core::events::Phase> = w
        .phases
        .iter()
        .filter(|p| p.vf_index == Some(v.index))
        .collect();
    if mine.is_empty() {
        return Vec::new();
    }
    let mut out = vec![format!(
        "write of {}: {}, {:.1} % explained",
        format::plural(w.numvfs as usize, "VF"),
        format::ns(w.wall_ns),
        w.explained_percent()
    )];
    let base = mine.iter().map(|p| p.depth).min().unwrap_or(0);
    for p in mine {
        out.push(format!(
            "+{:>9} {:>9}  {}{}",
            format::ns(p.start_ns),
            format::ns(p.duration_ns),
            "  ".repeat((p.depth - base) as usize),
            p.name
        ));
    }
    out
}

/// The non-empty stretch of a log2 histogram as (bucket bound, count).
fn hist_bars(buckets: &[u64]) -> Vec<(String, u64)> {
    let (Some(first), Some(last)) = (
        buckets.iter().position(|&c| c > 0),
        buckets.iter().rposition(|&c| c > 0),
    ) else {
        return Vec::new();
    };
    (first..=last)
        .map(|i| {
            (
                format!("≤{}", format::ns(1u64 << (i + 1).min(63))),
                buckets[i],
            )
        })
        .collect()
}

fn spark_title(name: &str, now: Option<f64>, h: &VecDeque<u64>) -> String {
    let max = h.iter().copied().max().unwrap_or(0);
    format!(
        "{name}: {} now, {} max over {} samples",
        si_opt(now),
        si(max as f64),
        h.len()
    )
}

pub fn detail(v: &VfState, pf_netdev: Option<&str>, created: Option<&Waterfall>) -> Detail {
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let mut left = vec![
        format!(
            "netdev {} · driver {} · IOMMU group {}",
            opt(&v.netdev),
            opt(&v.driver),
            v.iommu_group.map_or_else(|| "-".into(), |g| g.to_string())
        ),
        match &v.config {
            Some(c) => format!(
                "MAC {} · VLAN {} qos {} · link {}",
                c.mac.map_or_else(|| "-".into(), |m| m.to_string()),
                c.vlan,
                c.qos,
                c.link_state.map_or_else(|| "-".into(), |s| s.to_string()),
            ),
            None => "PF driver view: none (no rtnetlink data)".into(),
        },
        match &v.config {
            Some(c) => format!(
                "spoofchk {} · trust {} · tx rate {}",
                flag(c.spoofchk, false),
                flag(c.trust, false),
                match (c.min_tx_rate, c.max_tx_rate) {
                    (0, 0) => "unlimited".to_string(),
                    (min, max) => format!("{min}-{max} Mbit/s"),
                }
            ),
            None => String::new(),
        },
    ];
    if let Some(o) = &v.owner {
        left.push(format!("held by {o}"));
    }
    left.extend([
        format!(
            "rx {} pps {} B/s · tx {} pps {} B/s",
            si_opt(v.rx_pps),
            si_opt(v.rx_bps),
            si_opt(v.tx_pps),
            si_opt(v.tx_bps)
        ),
        format!(
            "IRQ/s {} · IRQs {} · to VFIO {}",
            si_opt(v.irq_per_s),
            v.irqs_total,
            v.vfio_irqs_total
        ),
        format!(
            "DMA mapped {} MiB, unmapped {} MiB · maps/s {}",
            format::mib(v.dma_bytes_mapped),
            format::mib(v.dma_bytes_unmapped),
            si_opt(v.dma_maps_per_s)
        ),
    ]);
    if v.violations > 0 {
        left.push(format!("policy violations: {}", v.violations));
    }
    let timed = |t: &super::model::Timed| format!("{} (ret {})", format::ns(t.latency_ns), t.ret);
    let right = vec![
        format!(
            "hot-plug (vf_added): {}",
            v.hotplug.as_ref().map_or_else(|| "-".into(), timed)
        ),
        format!(
            "driver probe: {}",
            v.probe
                .as_ref()
                .map_or_else(|| "-".into(), |(d, t)| format!("{d} {}", timed(t)))
        ),
        // p50/p99 are bucket upper bounds: "≤"
        format!(
            "IRQ now: {}",
            v.irq_latency_now.map_or_else(
                || "-".into(),
                |l| format!("p50 ≤{} · p99 ≤{}", format::ns(l.p50), format::ns(l.p99))
            )
        ),
        format!(
            "IRQ all: {}",
            v.irq_latency.map_or_else(
                || "-".into(),
                |l| format!(
                    "p50 ≤{} · p99 ≤{} · max {}",
                    format::ns(l.p50),
                    format::ns(l.p99),
                    format::ns(l.max)
                )
            )
        ),
        format!(
            "DMA map: {}",
            v.dma_latency.map_or_else(
                || "-".into(),
                |l| format!("p50 {} · p99 {}", format::ns(l.p50), format::ns(l.p99))
            )
        ),
    ];
    Detail {
        title: format!(
            "VF {} · index {} of PF {}{}{}",
            v.bdf,
            v.index,
            v.pf,
            pf_netdev.map(|n| format!(" ({n})")).unwrap_or_default(),
            if v.gone { " · removed" } else { "" }
        ),
        left,
        right,
        sparks: vec![
            (
                spark_title("rx pps", v.rx_pps, &v.hist_rx_pps),
                v.hist_rx_pps.clone(),
            ),
            (
                spark_title("tx pps", v.tx_pps, &v.hist_tx_pps),
                v.hist_tx_pps.clone(),
            ),
            (
                spark_title("IRQ/s", v.irq_per_s, &v.hist_irq),
                v.hist_irq.clone(),
            ),
        ],
        creation: created.map_or_else(Vec::new, |w| creation_lines(v, w)),
        irq_hist: hist_bars(&v.irq_latency_log2_ns),
    }
}

/// The columns of a log line: time since the first event, kind, VF, text.
pub fn log_columns(e: &LogEntry, first_ts: u64) -> [String; 4] {
    [
        format::rel_time(e.ts_ns, first_ts),
        e.kind.to_string(),
        e.vf.clone().unwrap_or_else(|| "-".into()),
        e.text.clone(),
    ]
}
