//! `vf_created`: where the time of a `sriov_numvfs` write that creates VFs
//! goes, as a waterfall of nested phases made from the events of the write
//! (`sriov_phase`: `pci_enable_sriov` and the PF driver's functions;
//! `vf_added`, `driver_probe`, `iommu_group_added`, mailbox replies).
//! Phases nest by containment in time; a phase with phases inside gets an
//! `(own work)` phase for the rest of its time. The write's time outside
//! every phase is `unexplained_ns`.
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Event, EventEnvelope};

/// One phase: `start_ns` from the start of the write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// The VF the phase is about.
    pub vf_index: Option<u32>,
    /// 0: directly in the write; 1: inside a depth-0 phase; ...
    pub depth: u32,
    pub start_ns: u64,
    pub duration_ns: u64,
}

/// The waterfall of one VF-creating write ([`Event::VfCreated`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waterfall {
    pub pf: String,
    pub numvfs: u32,
    /// From the start of the write to its end, or to the last new VF's
    /// driver probe when one ended later.
    pub wall_ns: u64,
    /// Time inside the depth-0 phases, and the rest.
    pub explained_ns: u64,
    pub unexplained_ns: u64,
    pub phases: Vec<Phase>,
}

impl Waterfall {
    /// `explained_ns` as a percentage of `wall_ns` (100 for an empty write).
    pub fn explained_percent(&self) -> f64 {
        if self.wall_ns == 0 {
            100.0
        } else {
            self.explained_ns as f64 * 100.0 / self.wall_ns as f64
        }
    }
}

/// A timed interval on a PF (kernel ns), named.
#[derive(Debug, Clone)]
struct Interval {
    start: u64,
    end: u64,
    vf: Option<u32>,
    name: String,
}

/// Intervals kept per PF, and for how long (kernel ns).
const KEEP: usize = 4096;
const KEEP_NS: u64 = 120_000_000_000;
/// Deepest nesting reported.
const MAX_DEPTH: u32 = 8;

/// Builds [`Waterfall`]s from the event stream (live or replayed).
#[derive(Debug, Default)]
pub struct Waterfalls {
    recent: BTreeMap<String, VecDeque<Interval>>,
}

impl Waterfalls {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, pf: &str, iv: Interval) {
        let q = self.recent.entry(pf.to_string()).or_default();
        while q.len() >= KEEP
            || q.front()
                .is_some_and(|f| iv.end.saturating_sub(f.end) > KEEP_NS)
        {
            q.pop_front();
        }
        q.push_back(iv);
    }

    /// Take in `ev`; a `vf_created` when it ends a write that created VFs.
    pub fn on_event(&mut self, ev: &EventEnvelope) -> Option<EventEnvelope> {
        let ts = ev.ts_ns;
        let iv = |latency: u64, vf, name: String| Interval {
            start: ts.saturating_sub(latency),
            end: ts,
            vf,
            name,
        };
        let vf = ev.vf.as_ref();
        match &ev.event {
            Event::SriovPhase {
                pf,
                phase,
                latency_ns,
                ..
            } => self.push(pf, iv(*latency_ns, None, phase.clone())),
            Event::VfAdded {
                pf: Some(pf),
                vf_index,
                ret: 0,
                latency_ns,
                ..
            } => self.push(
                pf,
                iv(
                    *latency_ns,
                    Some(*vf_index),
                    format!("VF {vf_index}: pci_iov_add_virtfn"),
                ),
            ),
            Event::DriverProbe {
                driver, latency_ns, ..
            } => {
                if let Some(v) = vf {
                    let name = format!("VF {}: {driver} probe", v.index);
                    self.push(&v.pf.clone(), iv(*latency_ns, Some(v.index), name));
                }
            }
            Event::IommuGroupAdded { group, .. } => {
                if let Some(v) = vf {
                    let name = format!("VF {}: IOMMU group {group}", v.index);
                    self.push(&v.pf.clone(), iv(0, Some(v.index), name));
                }
            }
            Event::Mailbox(m) => {
                if let (Some(pf), Some(l)) = (&m.pf, m.latency_ns) {
                    let name = format!("VF {}: mailbox {} (PF side)", m.vf_index, m.msg);
                    self.push(&pf.clone(), iv(l, Some(m.vf_index), name));
                }
            }
            Event::SriovConfigure {
                pf,
                numvfs: Some(n),
                ret,
                latency_ns,
            } if *n > 0 && *ret >= 0 => {
                let q = self.recent.remove(pf).unwrap_or_default();
                let start = ts.saturating_sub(*latency_ns);
                let ivs: Vec<Interval> = q.into_iter().filter(|i| i.start >= start).collect();
                let w = build(pf, *n, start, ts, ivs);
                return Some(EventEnvelope::new(ts, Event::VfCreated(w)));
            }
            _ => {}
        }
        None
    }
}

/// The phases of the write `[start, end]` from `ivs`.
fn build(pf: &str, n: u32, start: u64, end: u64, mut ivs: Vec<Interval>) -> Waterfall {
    // a probe may end after the write (asynchronous probing)
    let wall_end = ivs.iter().map(|i| i.end).fold(end, u64::max);
    // outer first: by start, then the longer
    ivs.sort_by_key(|i| (i.start, std::cmp::Reverse(i.end)));
    let mut phases = Vec::new();
    // open phases: (index in `phases`, end, time of the children so far)
    let mut open: Vec<(usize, u64, u64)> = Vec::new();
    let mut explained = 0u64;
    let close = |open: &mut Vec<(usize, u64, u64)>, phases: &mut Vec<Phase>| {
        if let Some((i, _, children)) = open.pop() {
            let p: &Phase = &phases[i];
            if children > 0 && p.duration_ns > children {
                let own = Phase {
                    name: format!("{} (own work)", p.name),
                    vf_index: p.vf_index,
                    depth: p.depth + 1,
                    start_ns: p.start_ns,
                    duration_ns: p.duration_ns - children,
                };
                phases.push(own);
            }
        }
    };
    for iv in ivs {
        while open
            .last()
            .is_some_and(|&(_, e, _)| iv.start >= e || iv.end > e)
        {
            close(&mut open, &mut phases);
        }
        let depth = open.len() as u32;
        let dur = iv.end - iv.start;
        match open.last_mut() {
            Some(parent) => parent.2 += dur,
            None => explained += dur.min(wall_end.saturating_sub(iv.start)),
        }
        if depth > MAX_DEPTH {
            continue;
        }
        phases.push(Phase {
            name: iv.name,
            vf_index: iv.vf,
            depth,
            start_ns: iv.start - start,
            duration_ns: dur,
        });
        open.push((phases.len() - 1, iv.end, 0));
    }
    while !open.is_empty() {
        close(&mut open, &mut phases);
    }
    phases.sort_by_key(|p| (p.start_ns, p.depth, std::cmp::Reverse(p.duration_ns)));
    let wall = wall_end - start;
    let explained = explained.min(wall);
    Waterfall {
        pf: pf.to_string(),
        numvfs: n,
        wall_ns: wall,
        explained_ns: explained,
        unexplained_ns: wall - explained,
        phases,
    }
}
