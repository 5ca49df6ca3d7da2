//! `/metrics`: [`AgentState`] written with the official Prometheus client
//! (`prometheus-client`), as the Prometheus text format (0.0.4) or
//! OpenMetrics, on each scrape.
//!
//! Names have the `sriovtop_` prefix and base units (seconds, bytes);
//! counters end in `_total`. Every per-VF series has the labels `node`,
//! `pf` (the PF's BDF), `vf` (the index) and `bdf`; what changes or has
//! many values (netdev, driver, MAC, owner) is only on `sriovtop_vf_info`,
//! to be joined with `* on(node, bdf) group_left(...)`.
//!
//! Histograms come from power-of-two nanosecond buckets (the kernel's):
//! bucket `le` = (2^k − 1) ns for even k from 10 (1.023 µs) to 30
//! (1.07 s), which is exact (every bucket of [2^i, 2^(i+1)) ns with i < k
//! is at most 2^k − 1 ns), and `+Inf`.
//!
//! Nothing is allocated per sample: labels are arrays of borrowed strings,
//! the info labels and index strings are made when an inventory arrives.
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use hyper::body::Bytes;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet},
    metrics::MetricType::{self, Counter, Gauge, Histogram, Info},
    registry::{Registry, Unit},
};

use super::state::{AgentState, BUCKETS, Log2Hist};

/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as PROMETHEUS_TEXT;

mod vf;

type Fmt = Result<(), std::fmt::Error>;

/// What `/metrics` encodes: a registry with one collector over the shared
/// state; the size of the last exposition (the next one's buffer is made
/// that big at once: 4096 VFs are megabytes); and the last exposition of
/// each format with the state's generation it showed, so that scrapes
/// between two changes of the state (ticks, events) are not encoded again.
#[derive(Debug)]
pub struct Exposition {
    state: Arc<Mutex<AgentState>>,
    registry: Registry,
    last_len: AtomicUsize,
    /// (generation, body) of the Prometheus text and OpenMetrics.
    cache: Mutex<[Option<(u64, Bytes)>; 2]>,
}

impl Exposition {
    pub fn new(state: Arc<Mutex<AgentState>>) -> Self {
        let mut registry = Registry::with_prefix("sriovtop");
        registry.register_collector(Box::new(StateCollector(state.clone())));
        Self {
            state,
            registry,
            last_len: AtomicUsize::new(64 * 1024),
            cache: Mutex::new([None, None]),
        }
    }

    /// Encode as OpenMetrics (`openmetrics`) or the Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let hint = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 8);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }

    /// [`render`](Self::render), or the last one when the state has not
    /// changed since.
    pub fn scrape(&self, openmetrics: bool) -> Result<Bytes, std::fmt::Error> {
        let generation = lock(&self.state).generation;
        let slot = usize::from(openmetrics);
        if let Some((g, body)) = &lock(&self.cache)[slot]
            && *g == generation
        {
            return Ok(body.clone());
        }
        let body = Bytes::from(self.render(openmetrics)?);
        lock(&self.cache)[slot] = Some((generation, body.clone()));
        Ok(body)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        // a poisoned lock still holds the last value: use it
        Err(p) => p.into_inner(),
    }
}

#[derive(Debug)]
struct StateCollector(Arc<Mutex<AgentState>>);

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Fmt {
        let s = lock(&self.0);
        encode_host(&s, &mut e)?;
        encode_pfs(&s, &mut e)?;
        vf::encode_vfs(&s, &mut e)?;
        vf::encode_vf_activity(&s, &mut e)?;
        vf::encode_vf_conversation(&s, &mut e)
    }
}

/// A sample's value.
enum Sample<'a> {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
    Hist(&'a Log2Hist),
    Info(&'a [(&'static str, String)]),
}

impl Sample<'_> {
    fn encode(&self, f: &mut MetricEncoder<'_>) -> Fmt {
        match self {
            Self::Counter(v) => f.encode_counter::<NoLabelSet, u64, u64>(v, None),
            Self::CounterF(v) => f.encode_counter::<NoLabelSet, f64, f64>(v, None),
            Self::Gauge(v) => f.encode_gauge(v),
            Self::GaugeF(v) => f.encode_gauge(v),
            Self::Hist(h) => {
                let b = buckets(h);
                f.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count(), &b, None)
            }
            Self::Info(l) => f.encode_info(l),
        }
    }
}

/// The `le` buckets of a log2 histogram (per-bucket counts; the encoder
/// adds them up).
fn buckets(h: &Log2Hist) -> [(f64, u64); 12] {
    let mut out = [(f64::INFINITY, 0); 12];
    let mut i = 0;
    for (slot, k) in out.iter_mut().zip((10..=30).step_by(2)) {
        *slot = (((1u64 << k) - 1) as f64 / 1e9, h.buckets[i..k].iter().sum());
        i = k;
    }
    out[11] = (f64::INFINITY, h.buckets[i..BUCKETS].iter().sum());
    out
}

/// A metric family's descriptor.
struct Desc {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
}

const fn desc(name: &'static str, kind: MetricType, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        unit: None,
        kind,
    }
}

const fn seconds(name: &'static str, kind: MetricType, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        unit: Some(Unit::Seconds),
        kind,
    }
}

const fn bytes(name: &'static str, kind: MetricType, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        unit: Some(Unit::Bytes),
        kind,
    }
}

/// One family with its samples; nothing when there are none.
fn family<'s, L: EncodeLabelSet>(
    e: &mut DescriptorEncoder<'_>,
    d: &Desc,
    samples: impl IntoIterator<Item = (L, Sample<'s>)>,
) -> Fmt {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(d.name, d.help, d.unit.as_ref(), d.kind)?;
    for (labels, v) in samples {
        v.encode(&mut m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_host(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let n = [("node", s.node.as_str())];
    let version = [("version", env!("CARGO_PKG_VERSION").to_string())];
    family(
        e,
        &desc("build", Info, "sriov-top's version."),
        [(n, Sample::Info(&version))],
    )?;
    let scalars = [
        (
            desc(
                "up",
                Gauge,
                "1 when the probes are loaded and attached, else 0.",
            ),
            Sample::Gauge(i64::from(s.started)),
        ),
        (
            desc("hooks_attached", Gauge, "Kernel hooks attached."),
            Sample::Gauge(s.hooks_attached as i64),
        ),
        (
            desc(
                "hooks_missing",
                Gauge,
                "Kernel hooks not attached (the stream's hook_missing).",
            ),
            Sample::Gauge(s.hooks_missing as i64),
        ),
        (
            desc(
                "collector_ticks",
                Counter,
                "Collector ticks (scans and statistics).",
            ),
            Sample::Counter(s.ticks),
        ),
        (
            desc(
                "lost_events",
                Counter,
                "Kernel records lost (ring buffer full).",
            ),
            Sample::Counter(s.lost),
        ),
    ];
    for (d, v) in scalars {
        family(e, &d, [(n, v)])?;
    }
    let d = seconds(
        "collector_last_tick_timestamp",
        Gauge,
        "Wall time of the last tick.",
    );
    family(e, &d, s.last_tick_unix.map(|t| (n, Sample::GaugeF(t))))?;
    let d = desc(
        "policy_violations",
        Counter,
        "Policy rules met, by rule and action.",
    );
    family(
        e,
        &d,
        s.violations.iter().map(|((rule, action), c)| {
            let l = [n[0], ("rule", rule.as_str()), ("action", action.as_str())];
            (l, Sample::Counter(*c))
        }),
    )?;
    fn prog<'a>(
        node: &'a str,
        p: &'a sriov_core::ebpf::ProgramStats,
    ) -> [(&'static str, &'a str); 3] {
        [
            ("node", node),
            ("program", p.program.as_str()),
            ("attach", p.attach.as_str()),
        ]
    }
    let node = s.node.as_str();
    let d = desc(
        "ebpf_program_runs",
        Counter,
        "Runs of each eBPF program (kernel bpf_stats).",
    );
    family(
        e,
        &d,
        s.programs
            .iter()
            .map(|p| (prog(node, p), Sample::Counter(p.run_count))),
    )?;
    let d = seconds(
        "ebpf_program_run",
        Counter,
        "Time in each eBPF program (kernel bpf_stats).",
    );
    family(
        e,
        &d,
        s.programs
            .iter()
            .map(|p| (prog(node, p), Sample::CounterF(p.run_time_ns as f64 / 1e9))),
    )?;
    let d = seconds(
        "vf_hotplug",
        Histogram,
        "pci_iov_add_virtfn (op=add), _remove_ (op=remove).",
    );
    family(
        e,
        &d,
        s.hotplug
            .iter()
            .map(|((pf, op), h)| ([n[0], ("pf", pf.as_str()), ("op", *op)], Sample::Hist(h))),
    )?;
    let d = seconds("driver_probe", Histogram, "Driver probes, by driver.");
    family(
        e,
        &d,
        s.probe
            .iter()
            .map(|(drv, h)| ([n[0], ("driver", drv.as_str())], Sample::Hist(h))),
    )?;
    let d = seconds(
        "sriov_configure",
        Histogram,
        "Writes to a PF's sriov_numvfs.",
    );
    family(
        e,
        &d,
        s.configure
            .iter()
            .map(|(pf, h)| ([n[0], ("pf", pf.as_str())], Sample::Hist(h))),
    )
}

fn encode_pfs(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    fn l<'a>(node: &'a str, bdf: &'a str) -> [(&'static str, &'a str); 2] {
        [("node", node), ("pf", bdf)]
    }
    let node = s.node.as_str();
    let d = desc(
        "pf",
        Info,
        "A PF with SR-IOV: its netdev, driver and device name.",
    );
    family(
        e,
        &d,
        s.pfs
            .values()
            .map(|p| (l(node, &p.bdf), Sample::Info(&p.info_labels))),
    )?;
    let d = desc("pf_vfs", Gauge, "VFs enabled on the PF (sriov_numvfs).");
    family(
        e,
        &d,
        s.pfs
            .values()
            .map(|p| (l(node, &p.bdf), Sample::Gauge(p.num_vfs.into()))),
    )?;
    let d = desc("pf_max_vfs", Gauge, "VFs the PF supports (sriov_totalvfs).");
    family(
        e,
        &d,
        s.pfs
            .values()
            .map(|p| (l(node, &p.bdf), Sample::Gauge(p.total_vfs.into()))),
    )?;
    let d = seconds(
        "pf_vf_irq_handler",
        Histogram,
        "IRQ handler time of all the PF's VFs' vectors (kernel log2 buckets).",
    );
    let per_pf = s.irq_handler_by_pf();
    family(
        e,
        &d,
        per_pf.iter().map(|(pf, h)| (l(node, pf), Sample::Hist(h))),
    )
}
