//! What the UI knows about the PFs and VFs, folded from the events: the
//! inventory, rates from successive `stats` records, histories for the
//! sparklines, hot-plug and probe latencies, and each VF's last events.
use std::collections::{BTreeMap, VecDeque};

use sriov_core::{
    discover::Pf,
    events::{
        DmaLatency, DmaOp, Event, EventEnvelope, IrqLatency, VfActivity, VfIdentity, Waterfall,
    },
    host::{VfNetInfo, VfStats},
};

use super::log::LogEntry;

/// Samples kept for the sparklines.
pub const HISTORY: usize = 60;
/// Events kept per VF for the detail view.
pub const RECENT: usize = 12;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PfState {
    pub bdf: String,
    pub netdev: Option<String>,
    pub driver: Option<String>,
    /// Operstate of the netdev.
    pub link: Option<String>,
    pub device_name: Option<String>,
    pub total_vfs: u32,
    pub num_vfs: u32,
    /// Not in the last inventory.
    pub gone: bool,
}

/// A latency with the kernel function's return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub latency_ns: u64,
    pub ret: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VfState {
    pub bdf: String,
    /// BDF of the PF.
    pub pf: String,
    pub index: u32,
    pub netdev: Option<String>,
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
    /// The PF driver's view (MAC, VLAN, spoofchk, trust, link state).
    pub config: Option<VfNetInfo>,
    /// Who holds it, in a few words (`VfOwner::summary`).
    pub owner: Option<String>,
    /// Removed, or not in the last inventory.
    pub gone: bool,

    /// Counters of the last `stats` that had them, with its time.
    pub net: Option<(u64, VfStats)>,
    pub rx_pps: Option<f64>,
    pub tx_pps: Option<f64>,
    pub rx_bps: Option<f64>,
    pub tx_bps: Option<f64>,
    pub irq_per_s: Option<f64>,
    pub irqs_total: u64,
    pub vfio_irqs_total: u64,
    /// Handler time since start and over the last interval.
    pub irq_latency: Option<IrqLatency>,
    pub irq_latency_now: Option<IrqLatency>,
    /// The IRQ handler time histogram since start (log2 buckets).
    pub irq_latency_log2_ns: Vec<u64>,
    /// Which incarnation of the VF this is (`VfIdentity::created_ns`).
    pub created_ns: Option<u64>,
    pub dma_bytes_mapped: u64,
    pub dma_bytes_unmapped: u64,
    pub dma_latency: Option<DmaLatency>,
    /// Successful VFIO DMA maps seen.
    pub dma_maps: u64,
    /// `dma_maps` at the last `stats`, with its time.
    dma_mark: Option<(u64, u64)>,
    pub dma_maps_per_s: Option<f64>,
    pub hist_rx_pps: VecDeque<u64>,
    pub hist_tx_pps: VecDeque<u64>,
    pub hist_irq: VecDeque<u64>,
    /// The last `vf_added` of this VF.
    pub hotplug: Option<Timed>,
    /// The last `driver_probe`: driver and timing.
    pub probe: Option<(String, Timed)>,
    pub recent: VecDeque<LogEntry>,
    /// Policy violations (no event produces them yet).
    pub violations: u64,
}

impl VfState {
    fn from_identity(id: &VfIdentity) -> Self {
        Self {
            bdf: id.bdf.clone(),
            pf: id.pf.clone(),
            index: id.index,
            netdev: id.netdev.clone(),
            iommu_group: id.iommu_group,
            created_ns: id.created_ns,
            ..Self::default()
        }
    }

    fn on_stats(&mut self, ts_ns: u64, a: &VfActivity) {
        self.irq_per_s = Some(a.irq_per_s);
        self.irqs_total = a.irqs_total;
        self.vfio_irqs_total = a.vfio_irqs_total;
        self.irq_latency = a.irq_latency_ns;
        self.irq_latency_now = a.irq_latency_interval_ns;
        self.irq_latency_log2_ns = a.irq_latency_log2_ns.clone();
        self.dma_bytes_mapped = a.dma_bytes_mapped;
        self.dma_bytes_unmapped = a.dma_bytes_unmapped;
        self.dma_latency = a.dma_map_latency_ns;
        let rate = |now: u64, before: u64, secs: f64| now.saturating_sub(before) as f64 / secs;
        match (a.net, self.net) {
            (Some(n), Some((t0, p))) if ts_ns > t0 => {
                let secs = (ts_ns - t0) as f64 / 1e9;
                self.rx_pps = Some(rate(n.rx_packets, p.rx_packets, secs));
                self.tx_pps = Some(rate(n.tx_packets, p.tx_packets, secs));
                self.rx_bps = Some(rate(n.rx_bytes, p.rx_bytes, secs));
                self.tx_bps = Some(rate(n.tx_bytes, p.tx_bytes, secs));
            }
            // the first counters: no interval yet
            (Some(_), _) => {}
            (None, _) => {
                self.rx_pps = None;
                self.tx_pps = None;
                self.rx_bps = None;
                self.tx_bps = None;
            }
        }
        if let Some(n) = a.net {
            self.net = Some((ts_ns, n));
        }
        if let Some((t0, c0)) = self.dma_mark
            && ts_ns > t0
        {
            let secs = (ts_ns - t0) as f64 / 1e9;
            self.dma_maps_per_s = Some(self.dma_maps.saturating_sub(c0) as f64 / secs);
        }
        self.dma_mark = Some((ts_ns, self.dma_maps));
        let sample = |v: Option<f64>| v.map_or(0, |x| x.round().max(0.0) as u64);
        push_capped(&mut self.hist_rx_pps, sample(self.rx_pps), HISTORY);
        push_capped(&mut self.hist_tx_pps, sample(self.tx_pps), HISTORY);
        push_capped(&mut self.hist_irq, sample(self.irq_per_s), HISTORY);
    }

    /// Does `needle` (lower case) occur in the BDF, netdev, driver or MAC?
    pub fn matches(&self, needle: &str) -> bool {
        let mac = self
            .config
            .as_ref()
            .and_then(|c| c.mac)
            .map(|m| m.to_string());
        [
            Some(self.bdf.as_str()),
            self.netdev.as_deref(),
            self.driver.as_deref(),
            mac.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|s| s.to_lowercase().contains(needle))
    }
}

impl PfState {
    /// Does `needle` (lower case) occur in the BDF, netdev or driver?
    pub fn matches(&self, needle: &str) -> bool {
        [
            Some(self.bdf.as_str()),
            self.netdev.as_deref(),
            self.driver.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|s| s.to_lowercase().contains(needle))
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

/// Everything known about the devices, by BDF.
#[derive(Debug, Default)]
pub struct Model {
    pub pfs: BTreeMap<String, PfState>,
    pub vfs: BTreeMap<String, VfState>,
    /// An `inventory` was seen (then it, not the events, says which
    /// devices exist).
    pub inventory_seen: bool,
    /// `ts_ns` of the first event (times in the log count from it).
    pub first_ts: Option<u64>,
    pub last_ts: u64,
    pub lost_total: u64,
    /// From `started`: hooks attached and missing.
    pub hooks: Option<(usize, usize)>,
    /// The last creation waterfall (`vf_created`) of each PF.
    pub waterfalls: BTreeMap<String, Waterfall>,
}

impl Model {
    /// Fold one event in; the log line it makes, if any (also kept in its
    /// VF's recent events).
    pub fn apply(&mut self, ev: &EventEnvelope) -> Option<LogEntry> {
        self.first_ts.get_or_insert(ev.ts_ns);
        self.last_ts = self.last_ts.max(ev.ts_ns);
        match &ev.event {
            Event::Inventory { pfs } => self.on_inventory(pfs),
            Event::Started {
                hooks_attached,
                hooks_missing,
            } => self.hooks = Some((hooks_attached.len(), *hooks_missing)),
            Event::Lost { records } => self.lost_total = self.lost_total.saturating_add(*records),
            Event::VfCreated(w) => {
                self.waterfalls.insert(w.pf.clone(), w.clone());
            }
            _ => {}
        }
        let entry = LogEntry::of(ev);
        let Some(id) = &ev.vf else {
            return entry;
        };
        let removed = matches!(ev.event, Event::VfRemoved { .. });
        if removed && !self.vfs.contains_key(&id.bdf) {
            return entry;
        }
        self.pfs.entry(id.pf.clone()).or_insert_with(|| PfState {
            bdf: id.pf.clone(),
            netdev: id.pf_netdev.clone(),
            ..PfState::default()
        });
        let vf = self
            .vfs
            .entry(id.bdf.clone())
            .or_insert_with(|| VfState::from_identity(id));
        // a VF created again: its numbers start from zero, its log goes on
        if id.created_ns.is_some() && id.created_ns != vf.created_ns && !removed {
            let recent = std::mem::take(&mut vf.recent);
            *vf = VfState::from_identity(id);
            vf.recent = recent;
        }
        // events come only from devices that exist
        vf.gone = removed;
        if let Some(pf) = self.pfs.get_mut(&id.pf)
            && !removed
        {
            pf.gone = false;
        }
        match &ev.event {
            Event::Stats(a) => vf.on_stats(ev.ts_ns, a),
            Event::VfAdded {
                ret, latency_ns, ..
            } => {
                vf.hotplug = Some(Timed {
                    latency_ns: *latency_ns,
                    ret: i64::from(*ret),
                })
            }
            Event::DriverProbe {
                driver,
                ret,
                latency_ns,
                ..
            } => {
                vf.probe = Some((
                    driver.clone(),
                    Timed {
                        latency_ns: *latency_ns,
                        ret: i64::from(*ret),
                    },
                ))
            }
            Event::VfioDma {
                op: DmaOp::Map,
                ret: 0,
                ..
            } => vf.dma_maps += 1,
            _ => {}
        }
        if let Some(e) = &entry {
            push_capped(&mut vf.recent, e.clone(), RECENT);
        }
        entry
    }

    /// The devices that exist are the inventory's; the state of each is
    /// kept (a VF that comes back keeps its history).
    fn on_inventory(&mut self, pfs: &[Pf]) {
        self.inventory_seen = true;
        for p in self.pfs.values_mut() {
            p.gone = true;
        }
        for v in self.vfs.values_mut() {
            v.gone = true;
        }
        for pf in pfs {
            let p = self.pfs.entry(pf.bdf.clone()).or_default();
            *p = PfState {
                bdf: pf.bdf.clone(),
                netdev: pf.netdev.clone(),
                driver: pf.driver.clone(),
                link: pf.link.clone(),
                device_name: pf.device_name.clone(),
                total_vfs: pf.total_vfs,
                num_vfs: pf.num_vfs,
                gone: false,
            };
            for vf in &pf.vfs {
                let v = self.vfs.entry(vf.bdf.clone()).or_default();
                v.bdf = vf.bdf.clone();
                v.pf = pf.bdf.clone();
                v.index = vf.index;
                v.netdev = vf.netdev.clone();
                v.driver = vf.driver.clone();
                v.iommu_group = vf.iommu_group;
                v.config = vf.config.clone();
                v.owner = vf.owner.as_ref().and_then(|o| o.summary());
                v.gone = false;
            }
        }
    }

    /// VFs of `pf` that exist, by BDF.
    pub fn vfs_of<'a>(&'a self, pf: &'a str) -> impl Iterator<Item = &'a VfState> + 'a {
        self.vfs.values().filter(move |v| v.pf == pf && !v.gone)
    }

    /// PFs that exist or have VFs that do, by BDF.
    pub fn live_pfs(&self) -> impl Iterator<Item = &PfState> + '_ {
        self.pfs
            .values()
            .filter(|p| !p.gone || self.vfs_of(&p.bdf).next().is_some())
    }

    /// Number of PFs and VFs shown.
    pub fn counts(&self) -> (usize, usize) {
        let pfs = self.live_pfs().count();
        let vfs = self.vfs.values().filter(|v| !v.gone).count();
        (pfs, vfs)
    }
}
