//! Per-VF statistics: IRQ rates and handler latency from the IRQ maps, VFIO
//! DMA volume and map latency from the events.
//!
//! Approximations (also in `docs/events.md`):
//!
//! - IRQ handler latency percentiles come from the kernel's log2 histogram
//!   (bucket i holds [2^i, 2^(i+1)) ns), summed over the VF's IRQs: a
//!   percentile is reported as the upper bound 2^(i+1)-1 of the bucket it
//!   falls in, clamped to the exact maximum (`max_ns`) when that is known,
//!   so it overstates the true value by less than 2x. `max` is exact.
//! - DMA map latency percentiles come from an HDR histogram with 3
//!   significant digits (within 0.1%).
//! - Totals and percentiles are cumulative: IRQs since the programs were
//!   loaded, DMA since the aggregator started. Only `irq_per_s` is over the
//!   last interval; on the first snapshot it is 0 (the counters may predate
//!   the aggregator, so there is no interval to divide by).
//! - `net` is the PF driver's IFLA_VF_STATS counters as the last
//!   [`StatsAggregator::on_inventory`] before the snapshot read them.
use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use sriov_ebpf::record::{IRQ_BUCKETS, IrqStats};

use super::{
    Attributor, DmaLatency, DmaOp, Event, EventEnvelope, IrqLatency, VfActivity, VfIdentity,
    attribute::identity_of,
};
use crate::{discover::Pf, host::VfStats};

/// Highest DMA map latency the histogram tracks (60 s); longer is recorded
/// as 60 s.
const DMA_LATENCY_MAX_NS: u64 = 60_000_000_000;

/// DMA activity of one VF.
#[derive(Debug)]
struct Dma {
    vf: VfIdentity,
    mapped: u64,
    unmapped: u64,
    /// Map latencies; `None` if the histogram could not be made.
    latency: Option<Histogram<u64>>,
}

/// Folds events and IRQ map readings into periodic [`Event::Stats`].
#[derive(Debug, Default)]
pub struct StatsAggregator {
    /// By VF BDF.
    dma: BTreeMap<String, Dma>,
    /// Time and IRQ counts of the previous snapshot.
    prev: Option<(u64, BTreeMap<u32, u64>)>,
    /// `lost_total` at the previous snapshot.
    lost_seen: u64,
    /// IFLA_VF_STATS by VF BDF, from the last inventory, for the next
    /// snapshot only.
    net: BTreeMap<String, (VfIdentity, VfStats)>,
}

/// Per-VF sums over its IRQs.
#[derive(Default)]
struct IrqSums {
    vf: Option<VfIdentity>,
    total: u64,
    delta: u64,
    vfio: u64,
    log2: [u64; IRQ_BUCKETS],
    max_ns: u64,
}

impl StatsAggregator {
    /// Nothing seen yet; the first snapshot reports rates of 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a successful VFIO DMA map or unmap against its VF. Events
    /// without a VF, failed requests and other kinds are ignored.
    pub fn on_event(&mut self, ev: &EventEnvelope) {
        let (
            Some(vf),
            Event::VfioDma {
                op,
                size,
                ret: 0,
                latency_ns,
                ..
            },
        ) = (&ev.vf, &ev.event)
        else {
            return;
        };
        let d = self.dma.entry(vf.bdf.clone()).or_insert_with(|| Dma {
            vf: vf.clone(),
            mapped: 0,
            unmapped: 0,
            latency: Histogram::new_with_bounds(1, DMA_LATENCY_MAX_NS, 3).ok(),
        });
        match op {
            DmaOp::Map => {
                d.mapped = d.mapped.saturating_add(*size);
                if let Some(h) = &mut d.latency {
                    h.saturating_record(*latency_ns);
                }
            }
            DmaOp::Unmap => d.unmapped = d.unmapped.saturating_add(*size),
        }
    }

    /// Take the VFs' netlink counters (IFLA_VF_STATS) from a discovery scan
    /// (`Inventory::pfs`) for the next [`snapshot`](Self::snapshot). They
    /// are used once: a snapshot without a fresh inventory has no `net`.
    pub fn on_inventory(&mut self, pfs: &[Pf]) {
        self.net = pfs
            .iter()
            .flat_map(|pf| pf.vfs.iter().map(move |vf| (pf, vf)))
            .filter_map(|(pf, vf)| {
                let stats = vf.config.as_ref()?.stats?;
                Some((vf.bdf.clone(), (identity_of(pf, vf), stats)))
            })
            .collect();
    }

    /// One [`Event::Stats`] per VF with netlink counters (see
    /// [`on_inventory`](Self::on_inventory)) or any IRQ or DMA activity so
    /// far (ascending VF BDF), then an [`Event::Lost`] with the records lost
    /// since the previous snapshot if `lost_total` grew.
    ///
    /// The maps are keyed by IRQ number, values summed over CPUs: handler
    /// counts (`IRQ_COUNTS`), handler time (`IRQ_STATS`) and VFIO-forwarded
    /// counts (`VFIO_IRQ_COUNTS`). IRQs are attributed with
    /// [`Attributor::vf_of_irq`]; others are ignored. `now_ts_ns` is
    /// `CLOCK_MONOTONIC` (the events' clock).
    pub fn snapshot(
        &mut self,
        now_ts_ns: u64,
        irq_counts: &BTreeMap<u32, u64>,
        irq_stats: &BTreeMap<u32, IrqStats>,
        vfio_irq_counts: &BTreeMap<u32, u64>,
        lost_total: u64,
        attr: &Attributor,
    ) -> Vec<EventEnvelope> {
        let mut sums: BTreeMap<String, IrqSums> = BTreeMap::new();
        let prev = self.prev.as_ref();
        for (&irq, &count) in irq_counts {
            if let Some(s) = sum_for(&mut sums, attr, irq) {
                s.total = s.total.saturating_add(count);
                if let Some((_, before)) = prev {
                    let was = before.get(&irq).copied().unwrap_or(0);
                    s.delta = s.delta.saturating_add(count.saturating_sub(was));
                }
            }
        }
        for (&irq, st) in irq_stats {
            if let Some(s) = sum_for(&mut sums, attr, irq) {
                for (acc, n) in s.log2.iter_mut().zip(st.log2_ns.iter()) {
                    *acc = acc.saturating_add(*n);
                }
                s.max_ns = s.max_ns.max(st.max_ns);
            }
        }
        for (&irq, &count) in vfio_irq_counts {
            if let Some(s) = sum_for(&mut sums, attr, irq) {
                s.vfio = s.vfio.saturating_add(count);
            }
        }
        let elapsed_ns = prev.map_or(0, |(t, _)| now_ts_ns.saturating_sub(*t));

        let net = std::mem::take(&mut self.net);
        let mut bdfs: Vec<&String> = sums
            .keys()
            .chain(self.dma.keys())
            .chain(net.keys())
            .collect();
        bdfs.sort();
        bdfs.dedup();
        let mut out = Vec::new();
        for bdf in bdfs {
            let irq = sums.get(bdf);
            let dma = self.dma.get(bdf);
            let irqs_total = irq.map_or(0, |s| s.total);
            let vfio_irqs_total = irq.map_or(0, |s| s.vfio);
            let irq_latency_ns = irq.and_then(|s| log2_latency(&s.log2, s.max_ns));
            let vf_net = net.get(bdf);
            if irqs_total == 0
                && vfio_irqs_total == 0
                && irq_latency_ns.is_none()
                && dma.is_none()
                && vf_net.is_none()
            {
                continue;
            }
            let Some(vf) = irq
                .and_then(|s| s.vf.clone())
                .or_else(|| dma.map(|d| d.vf.clone()))
                .or_else(|| vf_net.map(|(id, _)| id.clone()))
            else {
                continue;
            };
            let irq_per_s = match (irq, elapsed_ns) {
                (Some(s), ns) if ns > 0 => s.delta as f64 * 1e9 / ns as f64,
                _ => 0.0,
            };
            let activity = VfActivity {
                irq_per_s,
                irqs_total,
                irq_latency_ns,
                vfio_irqs_total,
                dma_bytes_mapped: dma.map_or(0, |d| d.mapped),
                dma_bytes_unmapped: dma.map_or(0, |d| d.unmapped),
                dma_map_latency_ns: dma
                    .and_then(|d| d.latency.as_ref())
                    .filter(|h| !h.is_empty())
                    .map(|h| DmaLatency {
                        p50: h.value_at_quantile(0.5),
                        p99: h.value_at_quantile(0.99),
                    }),
                net: vf_net.map(|(_, s)| *s),
            };
            out.push(EventEnvelope {
                ts_ns: now_ts_ns,
                vf: Some(vf),
                process: None,
                event: Event::Stats(activity),
            });
        }
        if lost_total > self.lost_seen {
            out.push(EventEnvelope::new(
                now_ts_ns,
                Event::Lost {
                    records: lost_total - self.lost_seen,
                },
            ));
        }
        // a counter that went backwards (programs reloaded) restarts here
        self.lost_seen = lost_total;
        self.prev = Some((now_ts_ns, irq_counts.clone()));
        out
    }
}

/// The sums of the VF that owns `irq`, if a VF does.
fn sum_for<'a>(
    sums: &'a mut BTreeMap<String, IrqSums>,
    attr: &Attributor,
    irq: u32,
) -> Option<&'a mut IrqSums> {
    let vf = attr.vf_of_irq(irq)?;
    let s = sums.entry(vf.bdf.clone()).or_default();
    s.vf.get_or_insert(vf);
    Some(s)
}

/// p50, p99 and max from a log2 histogram (bucket i: [2^i, 2^(i+1)) ns);
/// `None` when it is empty. See the module docs for the approximation.
pub(super) fn log2_latency(buckets: &[u64; IRQ_BUCKETS], max_ns: u64) -> Option<IrqLatency> {
    let n: u64 = buckets.iter().fold(0u64, |a, b| a.saturating_add(*b));
    if n == 0 {
        return None;
    }
    let at = |q: f64| -> u64 {
        // the smallest value with at least q of the samples at or below it
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        let mut bucket = IRQ_BUCKETS - 1;
        for (i, c) in buckets.iter().enumerate() {
            seen = seen.saturating_add(*c);
            if seen >= rank {
                bucket = i;
                break;
            }
        }
        let upper = (1u64 << (bucket + 1)) - 1;
        if max_ns > 0 { upper.min(max_ns) } else { upper }
    };
    Some(IrqLatency {
        p50: at(0.5),
        p99: at(0.99),
        max: max_ns,
    })
}
