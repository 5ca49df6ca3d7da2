//! The collector's IRQ side: which IRQ numbers the kernel counts for which
//! VF incarnation ([`IrqLedger`]), kept in step with the records as they
//! come (`msi_alloc`, `irq_free`, VFs added and removed) and with every
//! scan, and the `stats` made from it.
use std::{collections::BTreeMap, time::Instant};

use sriov_core::{
    ebpf::Probes,
    events::{Attributor, Event, EventEnvelope, StatsAggregator, irqs::IrqLedger},
    host::Host,
};

use super::{Collected, now, warnings::Warnings};

/// The IRQ ledger, and the lost-record count as last read.
#[derive(Debug, Default)]
pub(super) struct Counting {
    ledger: IrqLedger,
    /// `lost` as last read (cumulative: stale is right, zero is not).
    lost: u64,
}

/// Whether `ev` may change which VF owns which IRQ number.
fn moves_irqs(ev: &Event) -> bool {
    matches!(
        ev,
        Event::MsiAlloc { .. }
            | Event::IrqFree { .. }
            | Event::VfAdded { .. }
            | Event::VfRemoved { .. }
            | Event::SriovConfigure { .. }
    )
}

fn said(ws: Vec<String>) -> impl Iterator<Item = Collected> {
    ws.into_iter()
        .map(|w| Collected::Warning(format!("IRQ statistics: {w}")))
}

impl Counting {
    /// Count exactly the VF vectors `attr` knows now: a number claimed for
    /// its owner from zero, the ones no longer a VF's retired. One number
    /// that cannot be watched is a warning (once); the rest is counted.
    pub(super) fn reconcile(
        &mut self,
        host: &dyn Host,
        attr: &Attributor,
        probes: &mut Probes,
    ) -> Vec<Collected> {
        let want = attr.irq_owners();
        let ws = self
            .ledger
            .reconcile(&want, probes, |irq, o| attr.owns_now(host, irq, o));
        said(ws).collect()
    }

    /// After `ev` (already attributed): numbers it freed are retired at
    /// once, and when ownership may have moved the counting follows now,
    /// not at the next tick.
    pub(super) fn on_event(
        &mut self,
        host: &dyn Host,
        attr: &Attributor,
        probes: &mut Probes,
        ev: &EventEnvelope,
    ) -> Vec<Collected> {
        let mut out = Vec::new();
        if let Event::IrqFree { irqs, .. } = &ev.event {
            out.extend(said(self.ledger.freed(irqs.iter().copied(), probes)));
        }
        if moves_irqs(&ev.event) {
            out.extend(self.reconcile(host, attr, probes));
        }
        out
    }

    /// `stats` and `lost` now. A live number whose counters cannot be read
    /// is a warning (see [`super::warnings::REPEAT`]) and this tick has no
    /// `stats` (the rates are differences: a gap would be a false spike).
    pub(super) fn snapshot(
        &mut self,
        stats: &mut StatsAggregator,
        attr: &Attributor,
        probes: Option<&mut Probes>,
        failing: &mut Warnings<&'static str>,
    ) -> Vec<Collected> {
        let mut out = Vec::new();
        let Some(p) = probes else {
            let evs = stats.report(now(), &BTreeMap::new(), 0, attr);
            return evs.into_iter().map(Collected::Event).collect();
        };
        let t = Instant::now();
        self.ledger.forget(|o| attr.is_current(o));
        let (sums, ws) = self.ledger.sums(p);
        match p.lost() {
            Ok(l) => {
                self.lost = l;
                failing.clear(&"lost");
            }
            Err(e) => out
                .extend(failing.warn("lost", t, || format!("{e} (lost records as last counted)"))),
        }
        if !ws.is_empty() {
            out.extend(failing.warn("irq maps", t, || {
                format!("IRQ statistics: {} (no stats this tick)", ws.join("; "))
            }));
            return out;
        }
        failing.clear(&"irq maps");
        let evs = stats.report(now(), &sums, self.lost, attr);
        out.extend(evs.into_iter().map(Collected::Event));
        out
    }
}
