//! `sriov set DEV numvfs N --waterfall`: the probes loaded around the
//! change, and where the time of each VF-creating write went, printed as a
//! waterfall (the `vf_created` event of `sriov-top`, docs/events.md).
use std::time::Duration;

use anyhow::{Context as _, Result};
use sriov_core::{
    ebpf::{LoadOptions, Probes},
    events::{Attributor, Event, Waterfall, Waterfalls},
    host::Host,
};

/// Phases deeper than this are left out of the printed waterfall.
const PRINT_DEPTH: u32 = 4;

/// The probes, loaded before a change: [`Watch::finish`] after it.
pub struct Watch {
    rt: tokio::runtime::Runtime,
    probes: Probes,
    attr: Attributor,
}

impl Watch {
    pub fn start(host: &dyn Host) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the event loop")?;
        let probes = {
            let _g = rt.enter();
            Probes::load(LoadOptions::default()).context(
                "--waterfall needs sriov-top's eBPF probes (run as root on a kernel with BTF and kprobes)",
            )?
        };
        let attr = Attributor::new(host).context("scanning the PFs and VFs")?;
        Ok(Self { rt, probes, attr })
    }

    /// The waterfalls of the VF-creating writes made since [`start`](Self::start).
    pub fn finish(mut self, host: &dyn Host) -> Result<Vec<Waterfall>> {
        let _g = self.rt.enter();
        let mut ring = self
            .probes
            .take_ring()
            .context("reading the probes' records")?;
        let mut records = Vec::new();
        self.rt.block_on(async {
            // what the writes left in the ring, until it stays empty
            while let Ok(Ok(batch)) =
                tokio::time::timeout(Duration::from_millis(300), ring.next_batch()).await
            {
                records.extend(batch.into_iter().flatten());
            }
        });
        let mut waterfalls = Waterfalls::new();
        let mut out = Vec::new();
        for rec in &records {
            let ev = self.attr.from_record(host, rec);
            if let Some(w) = waterfalls.on_event(&ev)
                && let Event::VfCreated(w) = w.event
            {
                out.push(w);
            }
        }
        Ok(out)
    }
}

fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// The waterfall as text: a header line, then one line per phase.
pub fn render(w: &Waterfall) -> String {
    let pct = w.explained_percent();
    let mut s = format!(
        "where the time of the write of {} to {}'s sriov_numvfs went ({}, {pct:.2} % explained, {} unexplained):\n",
        w.numvfs,
        w.pf,
        secs(w.wall_ns),
        secs(w.unexplained_ns)
    );
    for p in w.phases.iter().filter(|p| p.depth <= PRINT_DEPTH) {
        s.push_str(&format!(
            "  +{:>8}  {:>8}  {}{}\n",
            secs(p.start_ns),
            secs(p.duration_ns),
            "  ".repeat(p.depth as usize),
            p.name
        ));
    }
    s
}
