//! `config_access` lines: a VM that polls a register must not flood the
//! stream, nor pay for a record per access. The kernel side counts every
//! access per register ([`ConfigKey`]: device, offset, width, direction)
//! and sends a record for the first one of each window
//! ([`sriov_ebpf::CONFIG_WINDOW_NS`]); the others of the window are only
//! counted. [`ConfigTraps`] turns the counts into lines: each record is a
//! line (`count` 1), and the accesses counted between two lines of a
//! register become one line with their `count` (on the next record, or at
//! the tick after them, from the kernel's totals).
use std::collections::BTreeMap;

use sriov_ebpf::{ConfigKey, record::Record};

use super::{ConfigAccess, Event, EventEnvelope};

/// The last line sent for a register, and the kernel's total then.
#[derive(Debug)]
struct Known {
    line: EventEnvelope,
    total: u64,
}

/// Most registers followed at once (the kernel map's size).
const KEYS_MAX: usize = 16_384;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ConfigTraps {
    known: BTreeMap<ConfigKey, Known>,
}

/// The line for the `count` accesses to the register of `last` since it,
/// up to kernel time `until_ns`: their values were not recorded.
fn summary(last: &EventEnvelope, count: u64, until_ns: u64) -> Option<EventEnvelope> {
    let Event::ConfigAccess(a) = &last.event else {
        return None;
    };
    let mut ev = last.clone();
    ev.ts_ns = until_ns.max(last.ts_ns);
    ev.event = Event::ConfigAccess(ConfigAccess {
        value: None,
        count,
        span_ns: ev.ts_ns - last.ts_ns,
        total: a.total + count,
        ..a.clone()
    });
    Some(ev)
}

impl ConfigTraps {
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines for record `rec`, whose event is `ev`: for a config access,
    /// a line for the accesses to its register counted since the register's
    /// last line, if any, then `ev`. Other events pass as they are.
    pub fn admit(&mut self, rec: &Record, ev: EventEnvelope) -> Vec<EventEnvelope> {
        let (Record::ConfigAccess(r), Event::ConfigAccess(a)) = (rec, &ev.event) else {
            return vec![ev];
        };
        let key = r.key();
        let total = a.total;
        let mut out = Vec::new();
        if let Some(k) = self.known.get(&key)
            && total > k.total + 1
        {
            out.extend(summary(&k.line, total - k.total - 1, ev.ts_ns));
        }
        if self.known.len() >= KEYS_MAX && !self.known.contains_key(&key) {
            self.known.clear();
        }
        self.known.insert(
            key,
            Known {
                line: ev.clone(),
                total,
            },
        );
        out.push(ev);
        out
    }

    /// The kernel's (register, total, latest access) counts at a tick: a
    /// line for each register with accesses counted since its last line.
    /// Registers the kernel no longer counts are forgotten.
    pub fn on_totals(&mut self, totals: &[(ConfigKey, u64, u64)]) -> Vec<EventEnvelope> {
        let now: BTreeMap<&ConfigKey, (u64, u64)> =
            totals.iter().map(|(k, t, l)| (k, (*t, *l))).collect();
        self.known.retain(|k, _| now.contains_key(k));
        let mut out = Vec::new();
        for (key, k) in &mut self.known {
            let Some(&(total, last_ns)) = now.get(key) else {
                continue;
            };
            if total > k.total
                && let Some(line) = summary(&k.line, total - k.total, last_ns)
            {
                k.total = total;
                k.line = line.clone();
                out.push(line);
            }
        }
        out.sort_by_key(|e| e.ts_ns);
        out
    }
}
