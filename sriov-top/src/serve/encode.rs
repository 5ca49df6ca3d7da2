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
use std::sync::{Arc, Mutex};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use super::state::{AgentState, BUCKETS, Log2Hist, VfMetrics};

/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as PROMETHEUS_TEXT;

type Fmt = Result<(), std::fmt::Error>;

/// The registry `/metrics` encodes: one collector over the shared state.
pub fn registry(state: Arc<Mutex<AgentState>>) -> Registry {
    let mut r = Registry::with_prefix("sriovtop");
    r.register_collector(Box::new(StateCollector(state)));
    r
}

/// Encode `registry` as OpenMetrics (`openmetrics`) or Prometheus text.
pub fn render(registry: &Registry, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(64 * 1024);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    }
    Ok(out)
}

#[derive(Debug)]
struct StateCollector(Arc<Mutex<AgentState>>);

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Fmt {
        // a poisoned lock still holds the last state: show it
        let s = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        encode_host(&s, &mut e)?;
        encode_pfs(&s, &mut e)?;
        encode_vfs(&s, &mut e)?;
        encode_vf_activity(&s, &mut e)
    }
}

/// One metric family: `name`, its samples as (labels, value).
fn family<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder<'_>,
    name: &'static str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: &[(L, Sample<'_>)],
) -> Fmt {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, v) in samples {
        let mut f = m.encode_family(labels)?;
        v.encode(&mut f)?;
    }
    Ok(())
}

/// A sample's value.
enum Sample<'a> {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
    Hist(&'a Log2Hist),
    Info(Vec<(&'static str, &'a str)>),
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
fn buckets(h: &Log2Hist) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(12);
    let mut i = 0;
    for k in (10..=30).step_by(2) {
        let n: u64 = h.buckets[i..k].iter().sum();
        out.push((((1u64 << k) - 1) as f64 / 1e9, n));
        i = k;
    }
    out.push((f64::INFINITY, h.buckets[i..BUCKETS].iter().sum()));
    out
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn encode_host(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let node = s.node.as_str();
    let n = || vec![("node", node)];
    use MetricType::{Counter, Gauge, Histogram, Info};
    let version = env!("CARGO_PKG_VERSION");
    family(e, "build", "sriov-top's version.", None, Info,
        &[(n(), Sample::Info(vec![("version", version)]))])?;
    family(e, "up", "1 when the probes are loaded and attached (`started`), else 0.", None, Gauge,
        &[(n(), Sample::Gauge(i64::from(s.started)))])?;
    family(e, "hooks_attached", "Kernel hooks attached.", None, Gauge,
        &[(n(), Sample::Gauge(s.hooks_attached as i64))])?;
    family(e, "hooks_missing", "Kernel hooks that could not be attached (see the stream's hook_missing).", None, Gauge,
        &[(n(), Sample::Gauge(s.hooks_missing as i64))])?;
    family(e, "collector_ticks", "Collector ticks (scans and statistics) so far.", None, Counter,
        &[(n(), Sample::Counter(s.ticks))])?;
    if let Some(t) = s.last_tick_unix {
        family(e, "collector_last_tick_timestamp", "Wall time of the collector's last tick.", Some(Unit::Seconds), Gauge,
            &[(n(), Sample::GaugeF(t))])?;
    }
    family(e, "lost_events", "Kernel records lost (ring buffer full).", None, Counter,
        &[(n(), Sample::Counter(s.lost))])?;
    let v: Vec<(Labels<'_>, Sample<'_>)> = s.violations.iter()
        .map(|((rule, action), c)| (vec![("node", node), ("rule", rule.as_str()), ("action", action.as_str())], Sample::Counter(*c)))
        .collect();
    family(e, "policy_violations", "Policy rules met, by rule and what was done.", None, Counter, &v)?;
    let runs: Vec<_> = s.programs.iter()
        .map(|p| (vec![("node", node), ("program", p.program.as_str()), ("attach", p.attach.as_str())], Sample::Counter(p.run_count)))
        .collect();
    family(e, "ebpf_program_runs", "Runs of each attached eBPF program (kernel bpf_stats).", None, Counter, &runs)?;
    let time: Vec<_> = s.programs.iter()
        .map(|p| (vec![("node", node), ("program", p.program.as_str()), ("attach", p.attach.as_str())], Sample::CounterF(p.run_time_ns as f64 / 1e9)))
        .collect();
    family(e, "ebpf_program_run", "Time spent in each attached eBPF program (kernel bpf_stats).", Some(Unit::Seconds), Counter, &time)?;
    let hp: Vec<_> = s.hotplug.iter()
        .map(|((pf, op), h)| (vec![("node", node), ("pf", pf.as_str()), ("op", *op)], Sample::Hist(h)))
        .collect();
    family(e, "vf_hotplug", "Time of pci_iov_add_virtfn (op=add) and pci_iov_remove_virtfn (op=remove).", Some(Unit::Seconds), Histogram, &hp)?;
    let pr: Vec<_> = s.probe.iter()
        .map(|(d, h)| (vec![("node", node), ("driver", d.as_str())], Sample::Hist(h)))
        .collect();
    family(e, "driver_probe", "Time of driver probes of VFs and PFs, by driver.", Some(Unit::Seconds), Histogram, &pr)?;
    let cf: Vec<_> = s.configure.iter()
        .map(|(pf, h)| (vec![("node", node), ("pf", pf.as_str())], Sample::Hist(h)))
        .collect();
    family(e, "sriov_configure", "Time of writes to a PF's sriov_numvfs.", Some(Unit::Seconds), Histogram, &cf)
}

fn encode_pfs(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let node = s.node.as_str();
    use MetricType::{Gauge, Info};
    fn base<'a>(node: &'a str, bdf: &'a str) -> Labels<'a> {
        vec![("node", node), ("pf", bdf)]
    }
    let info: Vec<_> = s.pfs.values()
        .map(|p| (base(node, &p.bdf), Sample::Info(vec![
            ("netdev", p.netdev.as_deref().unwrap_or("")),
            ("driver", p.driver.as_deref().unwrap_or("")),
            ("device", p.device.as_deref().unwrap_or("")),
        ])))
        .collect();
    family(e, "pf", "A PF with SR-IOV: its netdev, driver and device name.", None, Info, &info)?;
    let num: Vec<_> = s.pfs.values().map(|p| (base(node, &p.bdf), Sample::Gauge(p.num_vfs.into()))).collect();
    family(e, "pf_vfs", "VFs enabled on the PF (sriov_numvfs).", None, Gauge, &num)?;
    let max: Vec<_> = s.pfs.values().map(|p| (base(node, &p.bdf), Sample::Gauge(p.total_vfs.into()))).collect();
    family(e, "pf_max_vfs", "VFs the PF supports (sriov_totalvfs).", None, Gauge, &max)
}

/// The labels of every per-VF series.
fn vf_labels<'a>(node: &'a str, v: &'a VfMetrics, index: &'a str) -> Labels<'a> {
    vec![("node", node), ("pf", v.pf.as_str()), ("vf", index), ("bdf", v.bdf.as_str())]
}

fn encode_vfs(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let node = s.node.as_str();
    let idx: Vec<String> = s.vfs.values().map(|v| v.index.to_string()).collect();
    let owners: Vec<Owned> = s.vfs.values().map(Owned::of).collect();
    let info: Vec<_> = s.vfs.values().zip(&idx).zip(&owners)
        .map(|((v, i), o)| (vf_labels(node, v, i), Sample::Info(o.labels(v))))
        .collect();
    family(e, "vf", "A VF: netdev, driver, MAC, VLAN, IOMMU group and who holds it (owner, pod, vm, ...).", None, MetricType::Info, &info)?;
    type Get = fn(&crate::serve::state::VfMetrics) -> Option<u64>;
    let counters: [(&'static str, &str, Option<Unit>, Get); 8] = [
        ("vf_rx_packets", "Packets the VF received (PF driver, IFLA_VF_STATS).", None, |v| v.net.map(|n| n.rx_packets)),
        ("vf_tx_packets", "Packets the VF sent (PF driver, IFLA_VF_STATS).", None, |v| v.net.map(|n| n.tx_packets)),
        ("vf_rx", "Bytes the VF received (PF driver, IFLA_VF_STATS).", Some(Unit::Bytes), |v| v.net.map(|n| n.rx_bytes)),
        ("vf_tx", "Bytes the VF sent (PF driver, IFLA_VF_STATS).", Some(Unit::Bytes), |v| v.net.map(|n| n.tx_bytes)),
        ("vf_rx_dropped_packets", "Received packets dropped (PF driver, IFLA_VF_STATS).", None, |v| v.net.map(|n| n.rx_dropped)),
        ("vf_tx_dropped_packets", "Sent packets dropped (PF driver, IFLA_VF_STATS).", None, |v| v.net.map(|n| n.tx_dropped)),
        ("vf_rx_broadcast_packets", "Broadcast packets received (PF driver, IFLA_VF_STATS).", None, |v| v.net.map(|n| n.broadcast)),
        ("vf_rx_multicast_packets", "Multicast packets received (PF driver, IFLA_VF_STATS).", None, |v| v.net.map(|n| n.multicast)),
    ];
    for (name, help, unit, get) in counters {
        let samples: Vec<_> = s.vfs.values().zip(&idx)
            .filter_map(|(v, i)| Some((vf_labels(node, v, i), Sample::Counter(get(v)?))))
            .collect();
        family(e, name, help, unit, MetricType::Counter, &samples)?;
    }
    Ok(())
}

fn encode_vf_activity(s: &AgentState, e: &mut DescriptorEncoder<'_>) -> Fmt {
    let node = s.node.as_str();
    use MetricType::{Counter, Gauge, Histogram};
    let idx: Vec<String> = s.vfs.values().map(|v| v.index.to_string()).collect();
    let each = |f: &dyn Fn(&VfMetrics) -> Option<Sample<'_>>| -> Vec<(Labels<'_>, Sample<'_>)> {
        s.vfs.values().zip(&idx).filter_map(|(v, i)| Some((vf_labels(node, v, i), f(v)?))).collect()
    };
    family(e, "vf_irqs", "Interrupts of the VF's MSI/MSI-X vectors (this incarnation, since the agent started).", None, Counter,
        &each(&|v| Some(Sample::Counter(v.irqs))))?;
    family(e, "vf_vfio_irqs", "Interrupts VFIO forwarded to user space for the VF.", None, Counter,
        &each(&|v| Some(Sample::Counter(v.vfio_irqs))))?;
    family(e, "vf_irq_handler", "IRQ handler time of the VF's vectors (kernel log2 buckets).", Some(Unit::Seconds), Histogram,
        &each(&|v| (v.irq_handler.count() > 0).then_some(Sample::Hist(&v.irq_handler))))?;
    family(e, "vf_dma_mapped", "Bytes mapped for DMA through VFIO now (mapped minus unmapped).", Some(Unit::Bytes), Gauge,
        &each(&|v| Some(Sample::Gauge(v.dma_bytes_mapped.saturating_sub(v.dma_bytes_unmapped).min(i64::MAX as u64) as i64))))?;
    family(e, "vf_dma_maps", "Successful VFIO DMA maps.", None, Counter,
        &each(&|v| Some(Sample::Counter(v.dma_maps))))?;
    family(e, "vf_dma_unmaps", "Successful VFIO DMA unmaps.", None, Counter,
        &each(&|v| Some(Sample::Counter(v.dma_unmaps))))?;
    family(e, "vf_dma_map", "Time of successful VFIO DMA maps.", Some(Unit::Seconds), Histogram,
        &each(&|v| (v.dma_maps > 0).then_some(Sample::Hist(&v.dma_map))))?;
    let mut mbx = Vec::new();
    let mut nacks = Vec::new();
    let mut cfg = Vec::new();
    let mut admin = Vec::new();
    for (v, i) in s.vfs.values().zip(&idx) {
        for ((dir, msg), c) in &v.mailbox {
            let mut l = vf_labels(node, v, i);
            l.extend([("direction", dir.as_str()), ("message", msg.as_str())]);
            mbx.push((l, Sample::Counter(*c)));
        }
        for (msg, c) in &v.mailbox_nacks {
            let mut l = vf_labels(node, v, i);
            l.push(("message", msg.as_str()));
            nacks.push((l, Sample::Counter(*c)));
        }
        for (op, c) in &v.config_accesses {
            let mut l = vf_labels(node, v, i);
            l.push(("op", op.as_str()));
            cfg.push((l, Sample::Counter(*c)));
        }
        for (field, c) in &v.admin_changes {
            let mut l = vf_labels(node, v, i);
            l.push(("field", field.as_str()));
            admin.push((l, Sample::Counter(*c)));
        }
    }
    family(e, "vf_mailbox_messages", "PF<->VF mailbox messages at the PF driver, by direction and message.", None, Counter, &mbx)?;
    family(e, "vf_mailbox_nacks", "Mailbox requests the PF refused (NACK), by message.", None, Counter, &nacks)?;
    family(e, "vf_config_accesses", "Config space accesses to the VF through VFIO, by op.", None, Counter, &cfg)?;
    family(e, "vf_admin_changes", "Administrative changes of the VF (MAC, VLAN, trust, driver, ...), by field.", None, Counter, &admin)
}

/// A VF's `sriovtop_vf_info` label values that have to be made.
struct Owned {
    vlan: String,
    group: String,
    owner: String,
    pid: String,
}

impl Owned {
    fn of(v: &VfMetrics) -> Self {
        let o = v.owner.as_ref();
        Self {
            vlan: v.vlan.map(|x| x.to_string()).unwrap_or_default(),
            group: v.iommu_group.map(|x| x.to_string()).unwrap_or_default(),
            owner: o.and_then(|o| o.summary()).unwrap_or_default(),
            pid: o
                .and_then(|o| o.processes.first())
                .map(|h| h.pid.to_string())
                .unwrap_or_default(),
        }
    }

    fn labels<'a>(&'a self, v: &'a VfMetrics) -> Labels<'a> {
        let o = v.owner.as_ref();
        let first = o.and_then(|o| o.processes.first());
        let pod = o.and_then(|o| o.pod.as_ref());
        let netns = o.and_then(|o| o.netns.as_ref());
        vec![
            ("netdev", v.netdev.as_deref().unwrap_or("")),
            ("driver", v.driver.as_deref().unwrap_or("")),
            ("mac", v.mac.as_deref().unwrap_or("")),
            ("vlan", &self.vlan),
            ("iommu_group", &self.group),
            ("owner", &self.owner),
            ("pid", &self.pid),
            ("comm", first.map_or("", |h| h.comm.as_str())),
            ("vm", o.and_then(|o| o.processes.iter().find_map(|h| h.vm.as_deref())).unwrap_or("")),
            ("container", o.and_then(|o| o.processes.iter().find_map(|h| h.container.as_deref())).unwrap_or("")),
            ("namespace", pod.map_or("", |p| p.namespace.as_str())),
            ("pod", pod.map_or("", |p| p.name.as_str())),
            ("pod_container", pod.map_or("", |p| p.container.as_str())),
            ("netns", netns.and_then(|n| n.name.as_deref()).unwrap_or("")),
        ]
    }
}
