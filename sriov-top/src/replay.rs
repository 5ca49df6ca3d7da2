//! The replay source: a recorded NDJSON stream (`sriov-top --json`
//! output) played into the UI's channel with its original timing (the
//! `ts_ns` differences divided by the speed).
use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use sriov_core::events::{NdjsonReader, ReadLine};
use tokio::sync::mpsc;

use crate::tui::AppEvent;

/// How long to wait before an event at `ts_ns` when the previous one was
/// at `prev_ns`, played `speed` times as fast: the difference over the
/// speed; nothing for the first event or one that goes back in time.
pub fn delay(prev_ns: Option<u64>, ts_ns: u64, speed: f64) -> Duration {
    match prev_ns {
        Some(p) if ts_ns > p && speed > 0.0 && speed.is_finite() => {
            Duration::from_secs_f64((ts_ns - p) as f64 / 1e9 / speed)
        }
        _ => Duration::ZERO,
    }
}

/// A stream whose first line has been read and is valid.
pub struct Replay<R> {
    name: String,
    first: (usize, ReadLine),
    rest: NdjsonReader<R>,
}

impl Replay<BufReader<File>> {
    /// Open `path` and check its first line: a missing file, an empty one
    /// or a first line that is not a v1 event line is an error naming the
    /// file (and the line).
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::new(&path.display().to_string(), name, BufReader::new(f))
    }
}

impl<R: BufRead> Replay<R> {
    /// A replay of `input`; `what` names it in errors, `name` in the UI.
    pub fn new(what: &str, name: String, input: R) -> Result<Self> {
        let mut rest = NdjsonReader::new(input);
        loop {
            match rest.next() {
                None => bail!("{what}: no events (the file is empty)"),
                Some((_, Ok(ReadLine::Blank))) => continue,
                Some((line, Ok(l))) => {
                    return Ok(Self {
                        name,
                        first: (line, l),
                        rest,
                    });
                }
                Some((_, Err(e))) => bail!("{what}: {e}"),
            }
        }
    }

    /// The file name, for the UI.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Send every line: events as [`AppEvent::Data`] after their delay
    /// (through `sleep`), unknown kinds as [`AppEvent::Skipped`], then
    /// [`AppEvent::SourceEnded`]; a bad line stops with
    /// [`AppEvent::SourceError`] naming it. Returns early when the
    /// receiver is gone. Blocking: run it on a thread of its own.
    pub fn play(self, speed: f64, tx: &mpsc::Sender<AppEvent>, mut sleep: impl FnMut(Duration)) {
        let name = self.name;
        let mut prev: Option<u64> = None;
        let items = std::iter::once((self.first.0, Ok(self.first.1))).chain(self.rest);
        for (line, item) in items {
            let ev = match item {
                Ok(ReadLine::Blank) => continue,
                Ok(ReadLine::UnknownKind(kind)) => AppEvent::Skipped { line, kind },
                Ok(ReadLine::Event(l)) => {
                    let ts = l.envelope.ts_ns;
                    let d = delay(prev, ts, speed);
                    if !d.is_zero() {
                        sleep(d);
                    }
                    prev = Some(prev.map_or(ts, |p| p.max(ts)));
                    AppEvent::Data(l.envelope)
                }
                Err(e) => {
                    let _ = tx.blocking_send(AppEvent::SourceError(format!("{name}: {e}")));
                    return;
                }
            };
            if tx.blocking_send(ev).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send(AppEvent::SourceEnded);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(ts: u64, kind_and_fields: &str) -> String {
        format!(
            r#"{{"schema":"sriov-top.events/v1","time":"t","node":"n","ts_ns":{ts},"vf":null,"process":null,{kind_and_fields}}}"#
        )
    }

    fn lost(ts: u64) -> String {
        line(ts, r#""kind":"lost","records":1"#)
    }

    /// Play `text` with a recording sleep; the events sent and the delays.
    fn play(text: &str, speed: f64) -> (Vec<AppEvent>, Vec<Duration>) {
        let r = Replay::new("test", "test".into(), text.as_bytes()).unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        let mut slept = Vec::new();
        r.play(speed, &tx, |d| slept.push(d));
        drop(tx);
        let mut evs = Vec::new();
        while let Ok(e) = rx.try_recv() {
            evs.push(e);
        }
        (evs, slept)
    }

    #[test]
    fn delays_are_ts_differences_over_the_speed() {
        assert_eq!(delay(None, 5_000_000_000, 1.0), Duration::ZERO);
        assert_eq!(
            delay(Some(1_000_000_000), 3_000_000_000, 1.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            delay(Some(1_000_000_000), 3_000_000_000, 100.0),
            Duration::from_millis(20)
        );
        assert_eq!(delay(Some(0), 1_000_000_000, 0.5), Duration::from_secs(2));
        // back in time: no wait
        assert_eq!(delay(Some(9), 3, 1.0), Duration::ZERO);
    }

    #[test]
    fn play_sleeps_the_scaled_gaps() {
        let text = [
            lost(1_000_000_000),
            lost(1_000_000_000),
            lost(2_000_000_000),
            lost(1_500_000_000),
            lost(4_000_000_000),
        ]
        .join("\n");
        let (evs, slept) = play(&text, 10.0);
        assert_eq!(evs.len(), 6);
        assert_eq!(evs.last(), Some(&AppEvent::SourceEnded));
        // equal ts: no sleep; back in time: none, and the next gap counts
        // from the latest time seen
        assert_eq!(
            slept,
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_and_counted() {
        let text = [
            lost(1),
            line(2, r#""kind":"newer_kind","rule":"vlan""#),
            String::new(),
            line(3, r#""kind":"future_thing""#),
            lost(4),
        ]
        .join("\n");
        let (evs, _) = play(&text, 1e6);
        let skipped: Vec<(usize, &str)> = evs
            .iter()
            .filter_map(|e| match e {
                AppEvent::Skipped { line, kind } => Some((*line, kind.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, [(2, "newer_kind"), (4, "future_thing")]);
        let data = evs
            .iter()
            .filter(|e| matches!(e, AppEvent::Data(_)))
            .count();
        assert_eq!(data, 2);
        assert_eq!(evs.last(), Some(&AppEvent::SourceEnded));
        let mut app = crate::tui::App::new(crate::tui::SourceInfo::Live);
        for e in evs {
            app.handle(e);
        }
        assert_eq!(app.unknown_skipped, 2);
        assert!(
            app.status_items()
                .contains(&"2 unknown lines skipped".to_string())
        );
    }

    #[test]
    fn a_bad_schema_line_stops_the_replay_naming_the_line() {
        let bad = lost(3).replace("events/v1", "events/v2");
        let text = [lost(1), lost(2), bad, lost(4)].join("\n");
        let (evs, _) = play(&text, 1e6);
        assert_eq!(evs.len(), 3);
        let AppEvent::SourceError(msg) = &evs[2] else {
            panic!("{evs:?}")
        };
        assert!(msg.starts_with("test: line 3: "), "{msg}");
        assert!(msg.contains("major version 2"), "{msg}");
    }

    #[test]
    fn the_first_line_is_checked_when_opening() {
        let err = |text: &str| {
            Replay::new("f.ndjson", "f".into(), text.as_bytes())
                .err()
                .unwrap()
                .to_string()
        };
        assert_eq!(err(""), "f.ndjson: no events (the file is empty)");
        assert_eq!(err("\n \n"), "f.ndjson: no events (the file is empty)");
        let e = err("\nhello\n");
        assert!(e.starts_with("f.ndjson: line 2: not JSON"), "{e}");
        let e = err(&lost(1).replace("events/v1", "events/v9"));
        assert!(
            e.starts_with("f.ndjson: line 1: ") && e.contains("version 9"),
            "{e}"
        );
        assert!(Replay::new("f", "f".into(), lost(1).as_bytes()).is_ok());
    }
}
