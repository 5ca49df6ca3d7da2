//! Rate limit for `config_access` lines: a VM that polls a register must
//! not flood the stream. Per (device, register, read/write), the first
//! access of a window goes out at once; the others of that window become
//! one line with their `count`, sent when the window ends.
use std::collections::BTreeMap;

use super::{ConfigAccess, Event, EventEnvelope, conversation::AccessOp};

/// Most (device, register, op) windows open at once; past it, all are
/// closed (their summaries sent).
const KEYS_MAX: usize = 65_536;

type Key = (String, u32, u32, AccessOp);

/// The accesses of one window after its first.
#[derive(Debug)]
struct Window {
    start_ns: u64,
    /// The latest of them, and how many, from when.
    last: Option<EventEnvelope>,
    count: u64,
    first_ns: u64,
}

/// The limiter ([`admit`](Self::admit) each event, [`flush`](Self::flush)
/// on each tick).
#[derive(Debug)]
pub struct ConfigTraps {
    window_ns: u64,
    open: BTreeMap<Key, Window>,
}

impl ConfigTraps {
    /// Windows of `window_ns` kernel nanoseconds.
    pub fn new(window_ns: u64) -> Self {
        Self {
            window_ns,
            open: BTreeMap::new(),
        }
    }

    /// The lines to send for `ev`: itself (any other kind, or the first
    /// access of a window), maybe after the summary of the window it closes;
    /// nothing while its window is open.
    pub fn admit(&mut self, ev: EventEnvelope) -> Vec<EventEnvelope> {
        let Event::ConfigAccess(a) = &ev.event else {
            return vec![ev];
        };
        let key = (a.device.clone(), a.offset, a.width, a.op);
        let ts = ev.ts_ns;
        if let Some(w) = self.open.get_mut(&key)
            && ts >= w.start_ns
            && ts - w.start_ns < self.window_ns
        {
            if w.last.is_none() {
                w.first_ns = ts;
            }
            w.count += 1;
            w.last = Some(ev);
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(w) = self.open.remove(&key) {
            out.extend(summary(w));
        }
        if self.open.len() >= KEYS_MAX {
            out.extend(self.close_all());
        }
        self.open.insert(
            key,
            Window {
                start_ns: ts,
                last: None,
                count: 0,
                first_ns: ts,
            },
        );
        out.push(ev);
        out
    }

    /// The summaries of the windows that ended by kernel time `now_ns`.
    pub fn flush(&mut self, now_ns: u64) -> Vec<EventEnvelope> {
        let window = self.window_ns;
        let ended: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, w)| now_ns.saturating_sub(w.start_ns) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in ended {
            if let Some(w) = self.open.remove(&k) {
                out.extend(summary(w));
            }
        }
        out.sort_by_key(|e| e.ts_ns);
        out
    }

    /// Every summary pending (at the end of a stream).
    pub fn close_all(&mut self) -> Vec<EventEnvelope> {
        let mut out: Vec<EventEnvelope> = std::mem::take(&mut self.open)
            .into_values()
            .filter_map(summary)
            .collect();
        out.sort_by_key(|e| e.ts_ns);
        out
    }
}

/// One line for the accesses of a window after its first (none: nothing).
fn summary(w: Window) -> Option<EventEnvelope> {
    let mut ev = w.last?;
    if let Event::ConfigAccess(ConfigAccess { count, span_ns, .. }) = &mut ev.event {
        *count = w.count;
        *span_ns = ev.ts_ns.saturating_sub(w.first_ns);
    }
    Some(ev)
}
