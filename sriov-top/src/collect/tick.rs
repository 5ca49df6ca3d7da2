//! The collector's tick: discovery again (whole only when something may
//! have moved: [`Rescan`]), an inventory if it changed, then the
//! statistics.
use std::time::Instant;

use sriov_core::{
    discover::{Rescan, fill_counters_from_netdevs},
    ebpf::Probes,
    events::{Attributor, Event, EventEnvelope, StatsAggregator},
    host::Host,
};

use super::{
    Collected, InventoryChanges, counting::Counting, now, owners::Owners, warnings::Warnings,
};

/// What a tick's rescan updates.
pub(super) struct Scan<'a> {
    pub(super) rescan: &'a mut Rescan,
    pub(super) attr: &'a mut Attributor,
    pub(super) changes: &'a mut InventoryChanges,
    pub(super) owners: &'a mut Owners,
}

/// After `ev` the next tick's scan is whole when the event may have changed
/// what the rescan's signs do not show (a VF's MSI vectors, a
/// `driver_override`), or when records were lost.
pub(super) fn on_event(rescan: &mut Rescan, ev: &EventEnvelope) {
    if matches!(
        ev.event,
        Event::SriovConfigure { .. }
            | Event::VfAdded { .. }
            | Event::VfRemoved { .. }
            | Event::IommuGroupAdded { .. }
            | Event::DriverProbe { .. }
            | Event::MsiAlloc { .. }
            | Event::IrqFree { .. }
            | Event::AdminChange(_)
            | Event::Lost { .. }
    ) {
        rescan.mark_dirty();
    }
}

/// A tick: rescan (VFs come and go; count their vectors), an inventory if
/// it changed, then the statistics. What fails is a warning in the result.
pub(super) fn on_tick(
    host: &dyn Host,
    scan: Scan<'_>,
    stats: &mut StatsAggregator,
    mut probes: Option<&mut Probes>,
    counting: &mut Counting,
    failing: &mut Warnings<&'static str>,
) -> Vec<Collected> {
    let Scan {
        rescan,
        attr,
        changes,
        owners,
    } = scan;
    let mut out = Vec::new();
    match rescan.scan(host, Instant::now()) {
        Ok((mut inv, whole)) => {
            failing.clear(&"rediscovery");
            fill_counters_from_netdevs(host, &mut inv.pfs);
            out.extend(
                owners
                    .attach(host, &mut inv.pfs, Instant::now())
                    .map(Collected::Warning),
            );
            let changed = changes.changed(&inv.pfs);
            if whole {
                attr.refresh_with(host, &inv);
            } else if changed {
                // the same devices; settings or owners may differ
                attr.follow(&inv);
            } else {
                attr.follow_unchanged();
            }
            stats.on_inventory(&inv.pfs);
            if changed {
                out.push(Collected::Event(EventEnvelope::new(
                    now(),
                    Event::Inventory { pfs: inv.pfs },
                )));
            }
        }
        Err(e) => out.extend(failing.warn("rediscovery", Instant::now(), || {
            format!("rediscovery failed: {e}")
        })),
    }
    if let Some(p) = probes.as_deref_mut() {
        out.extend(counting.reconcile(host, attr, p));
    }
    out.extend(counting.snapshot(stats, attr, probes, failing));
    out
}
