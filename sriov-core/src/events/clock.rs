//! Kernel timestamps (`bpf_ktime_get_ns`, `CLOCK_MONOTONIC`) to wall time.
use std::{
    io,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::time::{ClockId, clock_gettime};

/// The last instant `humantime` can format (9999-12-31T23:59:59.999999999Z).
const MAX_WALL_SECS: u64 = 253_402_300_799;

/// One pairing of `CLOCK_MONOTONIC` and the wall clock, sampled together;
/// kernel timestamps are placed relative to it. Wall-clock steps (NTP,
/// `date -s`) after the sample are not followed: make a new `Clock` to
/// resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    mono_ns: u64,
    wall: SystemTime,
}

impl Clock {
    /// Sample both clocks now.
    pub fn new() -> io::Result<Self> {
        let mono_ns = monotonic_ns()?;
        Ok(Self::from_parts(mono_ns, SystemTime::now()))
    }

    /// A clock on which monotonic `mono_ns` is wall time `wall` (tests,
    /// replays).
    pub fn from_parts(mono_ns: u64, wall: SystemTime) -> Self {
        Self { mono_ns, wall }
    }

    /// `CLOCK_MONOTONIC` now, in ns: the clock of the records' `ts_ns`.
    pub fn now_ns() -> io::Result<u64> {
        monotonic_ns()
    }

    /// Wall time of kernel timestamp `ts_ns`, clamped to what RFC 3339 can
    /// show (1970 to 9999).
    pub fn wall(&self, ts_ns: u64) -> SystemTime {
        let t = if ts_ns >= self.mono_ns {
            self.wall
                .checked_add(Duration::from_nanos(ts_ns - self.mono_ns))
        } else {
            self.wall
                .checked_sub(Duration::from_nanos(self.mono_ns - ts_ns))
        };
        let max = UNIX_EPOCH + Duration::new(MAX_WALL_SECS, 999_999_999);
        match t {
            Some(t) if t < UNIX_EPOCH => UNIX_EPOCH,
            Some(t) if t > max => max,
            Some(t) => t,
            None if ts_ns >= self.mono_ns => max,
            None => UNIX_EPOCH,
        }
    }

    /// RFC 3339 UTC with nanoseconds: `2025-01-31T10:20:30.123456789Z`.
    pub fn rfc3339(&self, ts_ns: u64) -> String {
        humantime::format_rfc3339_nanos(self.wall(ts_ns)).to_string()
    }
}

fn monotonic_ns() -> io::Result<u64> {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).map_err(io::Error::from)?;
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let nsec = u64::try_from(ts.tv_nsec()).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nsec))
}
