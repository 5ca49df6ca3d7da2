//! Events as NDJSON: one JSON object per line, flushed line by line; and
//! the same lines read back.
use std::{
    io::{self, BufRead, Write},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{Clock, Event, EventEnvelope};
use crate::{Error, Result, host::Host};

/// Version of the event lines; see `docs/events.md`.
pub const SCHEMA: &str = "sriov-top.events/v1";

/// What [`SCHEMA`] is made of: this prefix and the major version.
const SCHEMA_PREFIX: &str = "sriov-top.events/v";
const SCHEMA_MAJOR: u32 = 1;

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

/// Can this build read lines of schema `schema`? Any `sriov-top.events/v1`
/// or `sriov-top.events/v1.N` can (within a major version fields are only
/// added); another major version or another schema cannot, and the error
/// says which was found.
pub fn check_schema(schema: &str) -> std::result::Result<(), String> {
    let Some(version) = schema.strip_prefix(SCHEMA_PREFIX) else {
        return Err(format!(
            "schema {schema:?} is not an event stream schema (expected {SCHEMA})"
        ));
    };
    let major = version.split('.').next().unwrap_or_default();
    match major.parse::<u32>() {
        Ok(SCHEMA_MAJOR) => Ok(()),
        Ok(m) => Err(format!(
            "schema {schema:?} is major version {m}; this build reads version {SCHEMA_MAJOR} ({SCHEMA})"
        )),
        Err(_) => Err(format!(
            "schema {schema:?} has no version number (expected {SCHEMA})"
        )),
    }
}

/// One line of an event stream, parsed: the fields [`NdjsonWriter`] adds
/// and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct NdjsonLine {
    pub schema: String,
    /// Wall time (RFC 3339), as written.
    pub time: String,
    pub node: String,
    pub envelope: EventEnvelope,
}

/// What one line of a stream holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadLine {
    Event(Box<NdjsonLine>),
    /// A `kind` this build does not know (a newer writer within the same
    /// major version): to be skipped, and counted.
    UnknownKind(String),
    /// Empty or whitespace only.
    Blank,
}

/// The envelope fields that are not part of [`EventEnvelope`].
#[derive(Deserialize)]
struct Head {
    schema: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    node: String,
    kind: String,
}

impl NdjsonLine {
    /// Parse line number `line` (from 1, for the error) of a stream.
    /// Errors ([`Error::EventLine`]): not a JSON object, no `schema` or
    /// `kind`, a schema of another major version ([`check_schema`]), or a
    /// known kind whose fields do not parse. Unknown kinds are not errors.
    pub fn parse(line: usize, text: &str) -> Result<ReadLine> {
        if text.trim().is_empty() {
            return Ok(ReadLine::Blank);
        }
        let err = |message: String| Error::EventLine { line, message };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(format!("not JSON: {e}")))?;
        let head = Head::deserialize(&value).map_err(|e| err(format!("not an event line: {e}")))?;
        check_schema(&head.schema).map_err(err)?;
        if !Event::KINDS.contains(&head.kind.as_str()) {
            return Ok(ReadLine::UnknownKind(head.kind));
        }
        let envelope = EventEnvelope::deserialize(&value)
            .map_err(|e| err(format!("kind {:?}: {e}", head.kind)))?;
        Ok(ReadLine::Event(Box::new(Self {
            schema: head.schema,
            time: head.time,
            node: head.node,
            envelope,
        })))
    }
}

/// Reads a stream line by line: each item is the line number (from 1) and
/// what [`NdjsonLine::parse`] made of it; a read error is an
/// [`Error::EventLine`] for the line it happened on.
pub struct NdjsonReader<R> {
    input: R,
    line: usize,
    buf: String,
}

impl<R: BufRead> NdjsonReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            buf: String::new(),
        }
    }

    /// The number of the last line read (0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }
}

impl<R: BufRead> Iterator for NdjsonReader<R> {
    type Item = (usize, Result<ReadLine>);

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        self.line += 1;
        match self.input.read_line(&mut self.buf) {
            Ok(0) => None,
            Ok(_) => Some((self.line, NdjsonLine::parse(self.line, &self.buf))),
            Err(e) => Some((
                self.line,
                Err(Error::EventLine {
                    line: self.line,
                    message: format!("reading: {e}"),
                }),
            )),
        }
    }
}
