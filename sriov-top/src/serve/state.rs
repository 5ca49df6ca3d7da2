//! What the agent exports, folded from the collector's items: the last
//! inventory (PFs, VFs, owners), each VF's counters and histograms, the
//! host-wide latencies, policy violations, lost records and the probes'
//! own run time. [`super::encode`] turns it into `/metrics`.
//!
//! A VF is exported while it is in the last inventory: a removed VF's
//! series go with the next inventory, a new one's come with it. Counters a
//! VF incarnation made (`created_ns`) start again from zero when it is
//! created again (a counter reset, as Prometheus expects one).
use std::collections::BTreeMap;

use serde::Serialize;
use sriov_core::{
    discover::{Pf, Vf},
    ebpf::ProgramStats,
    events::{DmaOp, Event, EventEnvelope, VfActivity},
    host::VfStats,
};

/// A latency histogram with power-of-two buckets: bucket i counts values
/// of [2^i, 2^(i+1)) ns (bucket 0 also 0 ns), like the kernel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log2Hist {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

/// Buckets of a [`Log2Hist`], as many as the kernel's IRQ histograms
/// (`IRQ_BUCKETS`): the last also counts everything longer.
pub const BUCKETS: usize = 32;

impl Default for Log2Hist {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Log2Hist {
    pub fn record(&mut self, ns: u64) {
        let i = (63 - ns.max(1).leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[i] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// One PF as the last inventory saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PfInfo {
    pub bdf: String,
    /// `sriovtop_pf_info`'s own labels (netdev, driver, device).
    pub info_labels: Vec<(&'static str, String)>,
    pub netdev: Option<String>,
    pub driver: Option<String>,
    pub device: Option<String>,
    pub num_vfs: u32,
    pub total_vfs: u32,
}

/// One VF: what the inventory says and what was counted for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VfMetrics {
    pub pf: String,
    pub index: u32,
    /// `index` as the `vf` label.
    pub index_label: String,
    /// `sriovtop_vf_info`'s own labels: those with a value (an empty label
    /// is no label to Prometheus), made when the inventory arrives.
    pub info_labels: Vec<(&'static str, String)>,
    pub bdf: String,
    pub driver: Option<String>,
    /// The incarnation the counters below belong to.
    pub created_ns: Option<u64>,
    /// The PF driver's IFLA_VF_STATS counters.
    pub net: Option<VfStats>,
    pub irqs: u64,
    pub vfio_irqs: u64,
    /// Handler time: the kernel's log2 buckets and the total.
    pub irq_handler: Log2Hist,
    pub dma_bytes_mapped: u64,
    pub dma_bytes_unmapped: u64,
    pub dma_maps: u64,
    pub dma_unmaps: u64,
    pub dma_map: Log2Hist,
    /// Mailbox messages by (direction, message).
    pub mailbox: BTreeMap<(String, String), u64>,
    /// NACKed requests by message.
    pub mailbox_nacks: BTreeMap<String, u64>,
    /// Config space accesses through VFIO by op (`read`, `write`).
    pub config_accesses: BTreeMap<String, u64>,
    /// Administrative changes by field (`mac`, `vlan`, ...).
    pub admin_changes: BTreeMap<String, u64>,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone, Default)]
pub struct AgentState {
    /// The `node` label.
    pub node: String,
    pub pfs: BTreeMap<String, PfInfo>,
    pub vfs: BTreeMap<String, VfMetrics>,
    /// VF hot-plug time by (PF, `add`/`remove`).
    pub hotplug: BTreeMap<(String, &'static str), Log2Hist>,
    /// Driver probe time by driver.
    pub probe: BTreeMap<String, Log2Hist>,
    /// `sriov_numvfs` writes by PF.
    pub configure: BTreeMap<String, Log2Hist>,
    /// Policy violations by (rule, action).
    pub violations: BTreeMap<(String, String), u64>,
    pub lost: u64,
    /// `started`: the probes are loaded and attached.
    pub started: bool,
    pub hooks_attached: usize,
    pub hooks_missing: usize,
    /// Collector ticks, and the wall time of the last (seconds since the
    /// epoch).
    pub ticks: u64,
    pub last_tick_unix: Option<f64>,
    /// The probes' run time and count (kernel `bpf_stats`).
    pub programs: Vec<ProgramStats>,
    /// Export each VF's IRQ handler histogram (`--vf-histograms`): 14
    /// series a VF; by default the PF's VFs together, and each VF's total.
    pub vf_histograms: bool,
    /// Changes with every event and tick folded in (`/metrics` encodes
    /// again only when it did).
    pub generation: u64,
}

/// A serde enum's tag (`vf_to_pf`, `dma_quota`, ...).
fn tag<T: Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

impl AgentState {
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            ..Self::default()
        }
    }

    /// Fold one event in.
    pub fn on_event(&mut self, ev: &EventEnvelope) {
        self.generation += 1;
        match &ev.event {
            Event::Started {
                hooks_attached,
                hooks_missing,
            } => {
                self.started = true;
                self.hooks_attached = hooks_attached.len();
                self.hooks_missing = *hooks_missing;
            }
            Event::Inventory { pfs } => self.on_inventory(pfs),
            Event::Lost { records } => self.lost = self.lost.saturating_add(*records),
            Event::PolicyViolation { rule, action, .. } => {
                *self.violations.entry((tag(rule), tag(action))).or_default() += 1
            }
            Event::VfAdded {
                pf: Some(pf),
                latency_ns,
                ..
            } => self.hotplug_time(pf, "add", *latency_ns),
            Event::VfRemoved {
                pf: Some(pf),
                latency_ns,
                ..
            } => self.hotplug_time(pf, "remove", *latency_ns),
            Event::DriverProbe {
                driver, latency_ns, ..
            } => self
                .probe
                .entry(driver.clone())
                .or_default()
                .record(*latency_ns),
            Event::SriovConfigure { pf, latency_ns, .. } => self
                .configure
                .entry(pf.clone())
                .or_default()
                .record(*latency_ns),
            _ => self.on_vf_event(ev),
        }
    }

    fn hotplug_time(&mut self, pf: &str, op: &'static str, ns: u64) {
        self.hotplug
            .entry((pf.to_string(), op))
            .or_default()
            .record(ns);
    }

    /// Events about one VF, counted for the incarnation they name.
    fn on_vf_event(&mut self, ev: &EventEnvelope) {
        let Some(id) = &ev.vf else { return };
        let Some(vf) = self.vfs.get_mut(&id.bdf) else {
            return;
        };
        if id.created_ns.is_some() && id.created_ns != vf.created_ns {
            vf.reset(id.created_ns);
        }
        match &ev.event {
            Event::Stats(a) => vf.on_stats(a),
            Event::VfioDma {
                op,
                size,
                ret: 0,
                latency_ns,
                ..
            } => match op {
                DmaOp::Map => {
                    vf.dma_maps += 1;
                    vf.dma_map.record(*latency_ns);
                    let _ = size;
                }
                DmaOp::Unmap => vf.dma_unmaps += 1,
            },
            Event::Mailbox(m) => {
                *vf.mailbox
                    .entry((tag(&m.direction), m.msg.clone()))
                    .or_default() += 1;
                if m.verdict.is_some_and(|v| tag(&v) == "nack") {
                    *vf.mailbox_nacks.entry(m.msg.clone()).or_default() += 1;
                }
            }
            Event::ConfigAccess(c) => *vf.config_accesses.entry(tag(&c.op)).or_default() += c.count,
            Event::AdminChange(a) => *vf.admin_changes.entry(tag(&a.field)).or_default() += 1,
            _ => {}
        }
    }

    /// The PFs and VFs now: VFs no longer there are dropped, new ones
    /// start empty, the rest keep their counters.
    fn on_inventory(&mut self, pfs: &[Pf]) {
        self.pfs = pfs
            .iter()
            .map(|p| {
                let labels = [
                    ("netdev", p.netdev.clone()),
                    ("driver", p.driver.clone()),
                    ("device", p.device_name.clone()),
                ];
                let info = PfInfo {
                    bdf: p.bdf.clone(),
                    info_labels: labels
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect(),
                    netdev: p.netdev.clone(),
                    driver: p.driver.clone(),
                    device: p.device_name.clone(),
                    num_vfs: p.num_vfs,
                    total_vfs: p.total_vfs,
                };
                (p.bdf.clone(), info)
            })
            .collect();
        let mut old = std::mem::take(&mut self.vfs);
        for pf in pfs {
            for v in &pf.vfs {
                let mut m = old.remove(&v.bdf).unwrap_or_default();
                m.pf = pf.bdf.clone();
                m.index = v.index;
                m.bdf = v.bdf.clone();
                m.driver = v.driver.clone();
                m.index_label = v.index.to_string();
                m.info_labels = info_labels(v);
                if let Some(s) = v.config.as_ref().and_then(|c| c.stats) {
                    m.net = Some(s);
                }
                self.vfs.insert(v.bdf.clone(), m);
            }
        }
    }

    /// The IRQ handler histograms of each PF's VFs, added up.
    pub fn irq_handler_by_pf(&self) -> BTreeMap<&str, Log2Hist> {
        let mut out: BTreeMap<&str, Log2Hist> = BTreeMap::new();
        for v in self.vfs.values().filter(|v| v.irq_handler.count() > 0) {
            let h = out.entry(v.pf.as_str()).or_default();
            for (a, b) in h.buckets.iter_mut().zip(&v.irq_handler.buckets) {
                *a += b;
            }
            h.sum_ns = h.sum_ns.saturating_add(v.irq_handler.sum_ns);
        }
        out
    }

    /// A collector tick: the probes' run time, and the time.
    pub fn on_tick(&mut self, programs: Vec<ProgramStats>, unix_s: f64) {
        self.generation += 1;
        self.ticks += 1;
        self.last_tick_unix = Some(unix_s);
        if !programs.is_empty() {
            self.programs = programs;
        }
    }
}

/// The labels of a VF's `sriovtop_vf_info` that have a value.
fn info_labels(v: &Vf) -> Vec<(&'static str, String)> {
    let o = v.owner.as_ref();
    let cfg = v.config.as_ref();
    let first = o.and_then(|o| o.processes.first());
    let pod = o.and_then(|o| o.pod.as_ref());
    let some = |s: Option<&str>| s.map(str::to_string);
    let all = [
        ("netdev", v.netdev.clone()),
        ("driver", v.driver.clone()),
        ("mac", cfg.and_then(|c| c.mac).map(|m| m.to_string())),
        ("vlan", cfg.map(|c| c.vlan.to_string())),
        ("iommu_group", v.iommu_group.map(|x| x.to_string())),
        ("owner", o.and_then(|o| o.summary())),
        ("pid", first.map(|h| h.pid.to_string())),
        ("comm", first.map(|h| h.comm.clone())),
        (
            "vm",
            some(o.and_then(|o| o.processes.iter().find_map(|h| h.vm.as_deref()))),
        ),
        (
            "container",
            some(o.and_then(|o| o.processes.iter().find_map(|h| h.container.as_deref()))),
        ),
        ("namespace", pod.map(|p| p.namespace.clone())),
        ("pod", pod.map(|p| p.name.clone())),
        ("pod_container", pod.map(|p| p.container.clone())),
        (
            "netns",
            o.and_then(|o| o.netns.as_ref())
                .and_then(|n| n.name.clone()),
        ),
    ];
    all.into_iter()
        .filter_map(|(k, v)| Some((k, v.filter(|v| !v.is_empty())?)))
        .collect()
}

impl VfMetrics {
    /// A new incarnation: what was counted for the old one goes.
    fn reset(&mut self, created_ns: Option<u64>) {
        *self = Self {
            pf: std::mem::take(&mut self.pf),
            index: self.index,
            index_label: std::mem::take(&mut self.index_label),
            info_labels: std::mem::take(&mut self.info_labels),
            bdf: std::mem::take(&mut self.bdf),
            driver: self.driver.take(),
            net: self.net.take(),
            created_ns,
            ..Self::default()
        };
    }

    fn on_stats(&mut self, a: &VfActivity) {
        self.irqs = a.irqs_total;
        self.vfio_irqs = a.vfio_irqs_total;
        let mut h = Log2Hist::default();
        for (i, n) in a.irq_latency_log2_ns.iter().enumerate().take(BUCKETS) {
            h.buckets[i] = *n;
        }
        h.sum_ns = a.irq_handler_ns_total;
        self.irq_handler = h;
        self.dma_bytes_mapped = a.dma_bytes_mapped;
        self.dma_bytes_unmapped = a.dma_bytes_unmapped;
        if let Some(n) = a.net {
            self.net = Some(n);
        }
    }
}
