//! Warnings said once per key, and again at most every [`REPEAT`] while
//! their condition lasts, with how many were held back.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::Collected;

/// How often a warning that keeps coming back (a map that cannot be read,
/// a failing rescan) is said again, with how many were held back.
pub const REPEAT: Duration = Duration::from_secs(60);

/// Warnings deduplicated by key: the first of a key is sent; the same key
/// again is held back (counted) until `repeat` has passed since it was last
/// sent. [`Warnings::clear`] makes the next one new.
#[derive(Debug)]
pub(super) struct Warnings<K> {
    repeat: Duration,
    seen: BTreeMap<K, Seen>,
}

#[derive(Debug)]
struct Seen {
    sent: Instant,
    held: u64,
}

impl<K: Ord> Warnings<K> {
    /// Each key at most every `repeat`.
    pub(super) fn every(repeat: Duration) -> Self {
        Self {
            repeat,
            seen: BTreeMap::new(),
        }
    }

    /// The warning `msg()` for `key` at `now`, if it is to be said.
    pub(super) fn warn(
        &mut self,
        key: K,
        now: Instant,
        msg: impl FnOnce() -> String,
    ) -> Option<Collected> {
        let Some(s) = self.seen.get_mut(&key) else {
            self.seen.insert(key, Seen { sent: now, held: 0 });
            return Some(Collected::Warning(msg()));
        };
        let since = now.saturating_duration_since(s.sent);
        if since < self.repeat {
            s.held += 1;
            return None;
        }
        let held = std::mem::take(&mut s.held);
        s.sent = now;
        let mut m = msg();
        if held > 0 {
            m.push_str(&format!(
                " (and {held} more times in the last {} s)",
                since.as_secs()
            ));
        }
        Some(Collected::Warning(m))
    }

    /// The condition of `key` is over: its next warning is said.
    pub(super) fn clear(&mut self, key: &K) {
        self.seen.remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_that_lasts_is_repeated_at_most_every_repeat_with_a_count() {
        let mut w = Warnings::every(REPEAT);
        let t = Instant::now();
        let msg = || "eBPF: map `irq_counts`: boom".to_string();
        assert_eq!(
            w.warn("irq_counts", t, msg),
            Some(Collected::Warning(msg()))
        );
        // every second tick for a minute: held back, counted
        for s in 1..60 {
            assert_eq!(w.warn("irq_counts", t + Duration::from_secs(s), msg), None);
        }
        // another key is its own
        assert!(w.warn("lost", t + Duration::from_secs(1), msg).is_some());
        let again = w.warn("irq_counts", t + REPEAT, msg);
        assert_eq!(
            again,
            Some(Collected::Warning(
                "eBPF: map `irq_counts`: boom (and 59 more times in the last 60 s)".into()
            ))
        );
        assert_eq!(
            w.warn("irq_counts", t + REPEAT + Duration::from_secs(1), msg),
            None
        );
        // nothing held back: no count
        let later = t + REPEAT * 3;
        assert_eq!(w.warn("lost", later, msg), Some(Collected::Warning(msg())));
        // cleared: the next one is said at once
        w.clear(&"irq_counts");
        assert!(w.warn("irq_counts", later, msg).is_some());
        // a clock that goes backwards (it cannot, but) holds back
        assert_eq!(w.warn("irq_counts", t, msg), None);
    }
}
