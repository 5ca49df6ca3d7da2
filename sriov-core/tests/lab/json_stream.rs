//! `sriov-top --json` running beside a lab test: its lines as JSON, read
//! back as the test goes.
use std::{
    process::{Child, Command},
    time::Duration,
};

use serde_json::Value;

use crate::guest::{self, wait_for};

pub struct JsonStream {
    child: Option<Child>,
    path: String,
}

impl JsonStream {
    /// Start `sriov-top --json --interval SECS --output /tmp/NAME.ndjson`
    /// and wait for its first inventory.
    pub fn start(name: &str, interval: &str) -> Self {
        let path = format!("/tmp/{name}.ndjson");
        let _ = std::fs::remove_file(&path);
        let child = Command::new("sriov-top")
            .args(["--json", "--interval", interval, "--output", &path])
            .spawn()
            .expect("start sriov-top");
        let s = Self {
            child: Some(child),
            path,
        };
        wait_for(
            "sriov-top's first inventory",
            Duration::from_secs(60),
            || s.lines().iter().any(|l| l["kind"] == "inventory"),
        );
        s
    }

    /// Every line written so far (a last line still being written, not yet
    /// ended by its newline, is not one yet).
    pub fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let done = text.rfind('\n').map_or("", |i| &text[..=i]);
        done.lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}"))
            })
            .collect()
    }

    /// SIGINT; it must exit 0. The lines stay readable.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            guest::interrupt_and_wait(c);
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for JsonStream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kernel `CLOCK_MONOTONIC` now: the stream's `ts_ns` clock.
pub fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

pub fn of_kind<'a>(ev: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ev.iter().filter(|l| l["kind"] == kind).collect()
}

/// `stats` lines of VF `bdf` with `ts_ns` at or after `after_ns`.
pub fn stats_of<'a>(ev: &'a [Value], bdf: &str, after_ns: u64) -> Vec<&'a Value> {
    ev.iter()
        .filter(|l| {
            l["kind"] == "stats"
                && l["vf"]["bdf"] == bdf
                && l["ts_ns"].as_u64().is_some_and(|t| t >= after_ns)
        })
        .collect()
}

/// Wait until the stream has a `stats` line of `bdf` whose scan began
/// after now (the second line stamped after now), and return it.
pub fn next_stats(s: &JsonStream, bdf: &str) -> Value {
    let t = mono_ns();
    let mut found = None;
    wait_for(
        &format!("two stats lines of {bdf}"),
        Duration::from_secs(30),
        || {
            let ev = s.lines();
            let after = stats_of(&ev, bdf, t);
            found = after.get(1).map(|v| (*v).clone());
            found.is_some()
        },
    );
    found.unwrap()
}
