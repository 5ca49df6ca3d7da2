//! The event log: one line per event (periodic `stats` aside), with pause.
use std::collections::VecDeque;

use sriov_core::events::{DmaOp, Event, EventEnvelope};

use super::{format, talk};

/// Most entries kept (older ones are dropped), also while paused.
pub const LOG_CAP: usize = 10_000;

/// One line of the log, made when the event is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub ts_ns: u64,
    /// The event's `kind`, or `warning` / `skipped` for the source's notes.
    pub kind: &'static str,
    /// BDF of the VF it is about.
    pub vf: Option<String>,
    pub vf_netdev: Option<String>,
    /// What happened, in words.
    pub text: String,
}

impl LogEntry {
    /// The entry for `ev`; `None` for periodic statistics (the table shows
    /// them).
    pub fn of(ev: &EventEnvelope) -> Option<Self> {
        if matches!(ev.event, Event::Stats(_)) {
            return None;
        }
        let mut text = summary(&ev.event);
        // the VF column says it already
        if let Some(rest) = ev
            .vf
            .as_ref()
            .and_then(|v| text.strip_prefix(&format!("{} ", v.bdf)))
        {
            text = rest.to_string();
        }
        if let Some(p) = &ev.process {
            text.push_str(&format!("  [{} {}]", p.comm, p.pid));
        }
        Some(Self {
            ts_ns: ev.ts_ns,
            kind: ev.event.kind(),
            vf: ev.vf.as_ref().map(|v| v.bdf.clone()),
            vf_netdev: ev.vf.as_ref().and_then(|v| v.netdev.clone()),
            text,
        })
    }

    /// A note from the source (not an event).
    pub fn note(ts_ns: u64, kind: &'static str, text: String) -> Self {
        Self {
            ts_ns,
            kind,
            vf: None,
            vf_netdev: None,
            text,
        }
    }

    /// Does every whitespace-separated word of `filter` occur (any case)
    /// in the kind, the VF's BDF or its netdev?
    pub fn matches(&self, filter: &str) -> bool {
        filter.split_whitespace().all(|w| {
            let w = w.to_lowercase();
            self.kind.contains(&w)
                || self.vf.as_deref().is_some_and(|b| b.contains(&w))
                || self
                    .vf_netdev
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(&w))
        })
    }
}

fn ret_in(ret: i64, latency_ns: u64) -> String {
    format!("ret {ret} in {}", format::ns(latency_ns))
}

/// What an event says, in one line.
pub fn summary(ev: &Event) -> String {
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
    match ev {
        Event::SriovConfigure {
            pf,
            numvfs,
            ret,
            latency_ns,
        } => format!(
            "{pf} sriov_numvfs={} {}",
            numvfs.map_or_else(|| "?".into(), |n| n.to_string()),
            ret_in(*ret, *latency_ns)
        ),
        Event::VfAdded {
            pf,
            vf_index,
            vf_bdf,
            ret,
            latency_ns,
        }
        | Event::VfRemoved {
            pf,
            vf_index,
            vf_bdf,
            ret,
            latency_ns,
        } => format!(
            "{} VF {vf_index} {} {}",
            opt(pf),
            opt(vf_bdf),
            ret_in(i64::from(*ret), *latency_ns)
        ),
        Event::IommuGroupAdded { device, group } => format!("{device} IOMMU group {group}"),
        Event::DriverProbe {
            device,
            driver,
            ret,
            latency_ns,
        } => format!(
            "{device} driver {driver} {}",
            ret_in(i64::from(*ret), *latency_ns)
        ),
        Event::MsiAlloc {
            device,
            nvec,
            ret,
            irqs,
            latency_ns,
        } => {
            let irqs: Vec<String> = irqs.iter().map(u32::to_string).collect();
            format!(
                "{device} {nvec} vectors, IRQs [{}] {}",
                irqs.join(","),
                ret_in(i64::from(*ret), *latency_ns)
            )
        }
        Event::IrqFree { device, irqs } => {
            let irqs: Vec<String> = irqs.iter().map(u32::to_string).collect();
            format!("{} freed IRQs [{}]", opt(device), irqs.join(","))
        }
        Event::VfioDma {
            op,
            iova,
            size,
            ret,
            latency_ns,
            iommu_groups,
            ..
        } => {
            let groups: Vec<String> = iommu_groups.iter().map(u32::to_string).collect();
            format!(
                "{} {} MiB at iova {iova:#x}, groups [{}] {}",
                match op {
                    DmaOp::Map => "map",
                    DmaOp::Unmap => "unmap",
                },
                format::mib(*size),
                groups.join(","),
                ret_in(i64::from(*ret), *latency_ns)
            )
        }
        Event::Stats(a) => format!("{:.1} IRQ/s", a.irq_per_s),
        Event::Lost { records } => format!("{records} records lost (ring buffer full)"),
        Event::HookMissing {
            hook,
            attach,
            reason,
        } => format!("{hook} ({attach}) not attached: {reason}"),
        Event::Started {
            hooks_attached,
            hooks_missing,
        } => format!(
            "{} hooks attached, {hooks_missing} missing",
            hooks_attached.len()
        ),
        Event::Inventory { pfs } => {
            let vfs: usize = pfs.iter().map(|p| p.vfs.len()).sum();
            format!(
                "{}, {}",
                format::plural(pfs.len(), "PF"),
                format::plural(vfs, "VF")
            )
        }
        Event::PolicyLoaded {
            file,
            mode,
            vfs,
            pfs,
            ..
        } => format!("{file} ({mode:?}): {vfs} VFs, {pfs} PFs").to_lowercase(),
        Event::PolicyViolation {
            rule,
            action,
            pf,
            uid,
            value,
            limit,
            detail,
            ..
        } => {
            let mut s = format!("{} {:?}", rule.key(), action).to_lowercase();
            if let Some(pf) = pf {
                s = format!("{pf} {s}");
            }
            if let Some(u) = uid {
                s.push_str(&format!(" uid {u}"));
            }
            s.push_str(&format!(" value {value} limit {limit}"));
            if let Some(d) = detail {
                s.push_str(&format!(" ({d})"));
            }
            s
        }
        Event::Mailbox(m) => talk::mailbox(m),
        Event::ConfigAccess(a) => talk::config_access(a),
        Event::AdminChange(c) => talk::admin_change(c),
        Event::SriovPhase {
            pf,
            phase,
            numvfs,
            ret,
            latency_ns,
        } => format!(
            "{pf} {phase}{} {}",
            numvfs.map_or(String::new(), |n| format!("({n})")),
            ret_in(i64::from(*ret), *latency_ns)
        ),
        Event::VfCreated(w) => talk::waterfall_line(w),
        Event::VfDrift(d) => talk::drift(d),
        Event::VfioDevice { device, op } => format!(
            "{device} {} through VFIO",
            match op {
                sriov_core::events::VfioOp::Open => "opened by its user",
                sriov_core::events::VfioOp::Close => "closed by its last holder",
            }
        ),
    }
}

/// The log, newest last, with the entries that came while paused.
#[derive(Debug, Default)]
pub struct EventLog {
    entries: VecDeque<LogEntry>,
    pending: VecDeque<LogEntry>,
    paused: bool,
}

impl EventLog {
    pub fn push(&mut self, e: LogEntry) {
        let q = if self.paused {
            &mut self.pending
        } else {
            &mut self.entries
        };
        if q.len() == LOG_CAP {
            q.pop_front();
        }
        q.push_back(e);
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Entries that came since the pause.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Pause (new entries are held back) or resume (they are appended).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            for e in self.pending.drain(..) {
                if self.entries.len() == LOG_CAP {
                    self.entries.pop_front();
                }
                self.entries.push_back(e);
            }
        }
    }

    /// The shown entries matching `filter`, oldest first.
    pub fn filtered<'a>(&'a self, filter: &'a str) -> impl Iterator<Item = &'a LogEntry> + 'a {
        self.entries.iter().filter(move |e| e.matches(filter))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
