//! Per-VF statistics: IRQ rates and handler time from the IRQ ledger's sums
//! ([`super::irqs`]), VFIO DMA volume and map latency from the events. All
//! kept per VF incarnation ([`Owner`]): a VF created again starts from zero.
//!
//! How the numbers are made (also in `docs/events.md`):
//!
//! - IRQ handler time comes from the kernel's log2 histograms (bucket i
//!   holds [2^i, 2^(i+1)) ns), summed over the VF's IRQs. A percentile is
//!   the upper bound 2^(i+1)-1 of the bucket it falls in, clamped to `max`:
//!   never below the true value, less than 2x above it. The buckets
//!   themselves go out as `irq_latency_log2_ns`.
//! - Since start, `max` is exact. Over an interval the kernel keeps no
//!   maximum: when the since-start maximum grew during the interval it is
//!   that (exact); otherwise the upper bound of the highest bucket the
//!   interval used, clamped to the since-start maximum.
//! - DMA map latency percentiles come from HDR histograms with 3
//!   significant digits (within 0.1%): one since start, one per interval.
//! - Totals count since the stream first watched the incarnation; the
//!   interval is the time since the previous snapshot. On the first snapshot
//!   the interval is empty (`interval_ns` 0, rates 0): the counters may
//!   predate it.
//! - `net` is the PF driver's IFLA_VF_STATS counters as the last
//!   [`StatsAggregator::on_inventory`] before the snapshot read them.
use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use sriov_ebpf::record::IRQ_BUCKETS;

use super::{
    Attributor, DmaLatency, DmaOp, Event, EventEnvelope, IrqLatency, VfActivity, VfIdentity,
    irqs::{IrqSums, Owner, delta},
};
use crate::{discover::Pf, host::VfStats};

/// Highest DMA map latency the histogram tracks (60 s); longer is recorded
/// as 60 s.
const DMA_LATENCY_MAX_NS: u64 = 60_000_000_000;

fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, DMA_LATENCY_MAX_NS, 3).ok()
}

/// DMA activity of one VF incarnation.
#[derive(Debug)]
struct Dma {
    mapped: u64,
    unmapped: u64,
    /// Map latencies since start and since the last snapshot; `None` if the
    /// histogram could not be made.
    latency: Option<Histogram<u64>>,
    interval: Option<Histogram<u64>>,
}

/// Folds events and IRQ sums into periodic [`Event::Stats`].
#[derive(Debug, Default)]
pub struct StatsAggregator {
    dma: BTreeMap<Owner, Dma>,
    /// Time of the previous snapshot and the IRQ sums it saw.
    prev: Option<(u64, BTreeMap<Owner, IrqSums>)>,
    /// `lost_total` at the previous snapshot.
    lost_seen: u64,
    /// IFLA_VF_STATS by VF BDF, from the last inventory, for the next
    /// snapshot only.
    net: BTreeMap<String, VfStats>,
}

fn owner_of(vf: &VfIdentity) -> Owner {
    Owner {
        bdf: vf.bdf.clone(),
        created_ns: vf.created_ns,
    }
}

impl StatsAggregator {
    /// Nothing seen yet; the first snapshot reports rates of 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a successful VFIO DMA map or unmap against its VF incarnation.
    /// Events without a VF, failed requests and other kinds are ignored.
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
        let d = self.dma.entry(owner_of(vf)).or_insert_with(|| Dma {
            mapped: 0,
            unmapped: 0,
            latency: histogram(),
            interval: histogram(),
        });
        match op {
            DmaOp::Map => {
                d.mapped = d.mapped.saturating_add(*size);
                for h in [&mut d.latency, &mut d.interval].into_iter().flatten() {
                    h.saturating_record(*latency_ns);
                }
            }
            DmaOp::Unmap => d.unmapped = d.unmapped.saturating_add(*size),
        }
    }

    /// Take the VFs' netlink counters (IFLA_VF_STATS) from a discovery scan
    /// (`Inventory::pfs`) for the next [`report`](Self::report), which
    /// gives them to the VF incarnation the [`Attributor`] knows then. They
    /// are used once: a snapshot without a fresh inventory has no `net`.
    pub fn on_inventory(&mut self, pfs: &[Pf]) {
        self.net = pfs
            .iter()
            .flat_map(|pf| pf.vfs.iter())
            .filter_map(|vf| Some((vf.bdf.clone(), vf.config.as_ref()?.stats?)))
            .collect();
    }

    /// One [`Event::Stats`] per current VF incarnation with netlink counters
    /// (see [`on_inventory`](Self::on_inventory)) or any IRQ or DMA activity
    /// so far (ascending BDF), then an [`Event::Lost`] with the records lost
    /// since the previous snapshot if `lost_total` grew.
    ///
    /// `irqs`: each owner's sums ([`super::irqs::IrqLedger::sums`]).
    /// Incarnations `attr` no longer knows are dropped. `now_ts_ns` is
    /// `CLOCK_MONOTONIC` (the events' clock).
    pub fn report(
        &mut self,
        now_ts_ns: u64,
        irqs: &BTreeMap<Owner, IrqSums>,
        lost_total: u64,
        attr: &Attributor,
    ) -> Vec<EventEnvelope> {
        self.dma.retain(|o, _| attr.is_current(o));
        let net: BTreeMap<Owner, VfStats> = std::mem::take(&mut self.net)
            .into_iter()
            .filter_map(|(bdf, s)| Some((owner_of(attr.vf(&bdf)?), s)))
            .collect();
        let prev = self.prev.take();
        let interval_ns = prev
            .as_ref()
            .map_or(0, |(t, _)| now_ts_ns.saturating_sub(*t));
        let mut owners: Vec<Owner> = irqs
            .keys()
            .chain(self.dma.keys())
            .chain(net.keys())
            .filter(|o| attr.is_current(o))
            .cloned()
            .collect();
        owners.sort();
        owners.dedup();
        let mut out = Vec::new();
        for owner in &owners {
            let Some(vf) = attr.vf(&owner.bdf).cloned() else {
                continue;
            };
            let irq = irqs.get(owner);
            let dma = self.dma.get_mut(owner);
            let vf_net = net.get(owner);
            if irq.is_none_or(|s| s.count == 0 && s.vfio == 0 && s.timed == 0)
                && dma.is_none()
                && vf_net.is_none()
            {
                continue;
            }
            let zero = IrqSums::default();
            let now = irq.unwrap_or(&zero);
            // the interval: from the previous snapshot's sums of this owner,
            // or from zero when it was claimed since
            let before = match &prev {
                Some((_, p)) => p.get(owner).unwrap_or(&zero),
                None => now,
            };
            let d = delta(now, before);
            let irq_per_s = if interval_ns > 0 {
                d.count as f64 * 1e9 / interval_ns as f64
            } else {
                0.0
            };
            let interval_max = if now.max_ns > before.max_ns {
                now.max_ns
            } else {
                highest_bound(&d.log2_ns).min(now.max_ns)
            };
            let (mapped, unmapped, latency, interval) = match dma {
                Some(d) => {
                    let i = d.interval.as_mut().map(|h| {
                        let l = dma_latency(h);
                        h.reset();
                        l
                    });
                    (
                        d.mapped,
                        d.unmapped,
                        d.latency.as_ref().and_then(dma_latency),
                        i.flatten(),
                    )
                }
                None => (0, 0, None, None),
            };
            let activity = VfActivity {
                irq_per_s,
                irqs_total: now.count,
                irqs_interval: if prev.is_some() { d.count } else { 0 },
                interval_ns,
                irq_latency_ns: log2_latency(&now.log2_ns, now.max_ns),
                irq_latency_interval_ns: if prev.is_some() {
                    log2_latency(&d.log2_ns, interval_max)
                } else {
                    None
                },
                irq_latency_log2_ns: trimmed(&now.log2_ns),
                irq_handler_ns_total: now.total_ns,
                vfio_irqs_total: now.vfio,
                dma_bytes_mapped: mapped,
                dma_bytes_unmapped: unmapped,
                dma_map_latency_ns: latency,
                dma_map_latency_interval_ns: interval,
                net: vf_net.copied(),
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
        let kept = irqs
            .iter()
            .filter(|(o, _)| attr.is_current(o))
            .map(|(o, s)| (o.clone(), *s))
            .collect();
        self.prev = Some((now_ts_ns, kept));
        out
    }
}

fn dma_latency(h: &Histogram<u64>) -> Option<DmaLatency> {
    (!h.is_empty()).then(|| DmaLatency {
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
    })
}

/// The buckets without the empty ones at the end.
fn trimmed(buckets: &[u64; IRQ_BUCKETS]) -> Vec<u64> {
    let n = buckets.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
    buckets[..n].to_vec()
}

/// Upper bound of the highest non-empty bucket (0 when all are empty).
fn highest_bound(buckets: &[u64; IRQ_BUCKETS]) -> u64 {
    buckets
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0, |i| (1u64 << (i + 1)) - 1)
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
