//! Events as NDJSON: one JSON object per line, flushed line by line.
use std::{
    io::{self, Write},
    path::Path,
};

use serde::Serialize;

use super::{Clock, EventEnvelope};
use crate::host::Host;

/// Version of the event lines; see `docs/events.md`.
pub const SCHEMA: &str = "sriov-top.events/v1";

const HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// This node's name, from `/proc/sys/kernel/hostname` through `host`
/// (`"unknown"` when it cannot be read or is empty).
pub fn hostname(host: &dyn Host) -> String {
    host.read(Path::new(HOSTNAME))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// One line: the envelope fields, then the event (`kind` and its payload).
#[derive(Serialize)]
struct Line<'a> {
    schema: &'static str,
    time: String,
    node: &'a str,
    #[serde(flatten)]
    envelope: &'a EventEnvelope,
}

/// Writes [`EventEnvelope`]s as NDJSON lines:
/// `{"schema","time","node","ts_ns","vf","process","kind",...payload}`.
pub struct NdjsonWriter<W: Write> {
    out: W,
    clock: Clock,
    node: String,
    buf: Vec<u8>,
}

impl<W: Write> NdjsonWriter<W> {
    /// Lines go to `out`; `time` comes from `clock`, `node` is the host name
    /// (see [`hostname`]).
    pub fn new(out: W, clock: Clock, node: impl Into<String>) -> Self {
        Self {
            out,
            clock,
            node: node.into(),
            buf: Vec::with_capacity(512),
        }
    }

    /// Write one event as a line (one `write_all`) and flush. A reader
    /// that went away shows as an error of kind
    /// [`io::ErrorKind::BrokenPipe`]: the caller should stop quietly.
    pub fn write(&mut self, ev: &EventEnvelope) -> io::Result<()> {
        self.buf.clear();
        let line = Line {
            schema: SCHEMA,
            time: self.clock.rfc3339(ev.ts_ns),
            node: &self.node,
            envelope: ev,
        };
        serde_json::to_writer(&mut self.buf, &line).map_err(io::Error::from)?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }

    /// The writer the lines went to.
    pub fn into_inner(self) -> W {
        self.out
    }
}
