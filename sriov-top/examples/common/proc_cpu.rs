//! Another process's CPU time, sampled from outside once per tick, for the
//! UI CPU benchmarks (idle_cpu, lab_bench_ui):
//!
//! - `/proc/<pid>/stat` utime + stime: user and system time of every
//!   thread, those that have ended too, in clock ticks (`CLK_TCK`, 100 Hz:
//!   10 ms, which is 1 % of a core over a 1 s tick, as coarse as the goal
//!   itself). The totals and the user/system split come from here.
//! - the process's CPU-time clock (`clock_getcpuclockid`): the same time in
//!   nanoseconds, user + system; the per-tick figures come from here (the
//!   per-tick stat figures are printed beside them).
//!
//! Per thread, `/proc/<pid>/task/<tid>/stat` says where the time went.
#![allow(dead_code, reason = "each example uses part of it")]

use std::{
    collections::BTreeMap,
    fs, thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::{
    time::{ClockId, clock_getcpuclockid, clock_gettime},
    unistd::{Pid, SysconfVar, sysconf},
};

use super::stats::median;

/// What `/proc/<pid>/stat` (or a task's) says.
#[derive(Debug, Clone)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    /// Clock ticks.
    pub utime: u64,
    /// Clock ticks.
    pub stime: u64,
}

/// Parse a `stat` file: the comm is in parentheses and may hold spaces.
fn parse_stat(s: &str) -> Option<Stat> {
    let (head, tail) = s.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_string();
    // after the comm: state(0) ppid(1) ... utime(11) stime(12)
    let f: Vec<&str> = tail.split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat`.
pub fn stat(pid: u32) -> Result<Stat> {
    let path = format!("/proc/{pid}/stat");
    let s = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&s).with_context(|| format!("parsing {path}: {s:?}"))
}

/// Clock ticks per second (`CLK_TCK`).
pub fn clk_tck() -> f64 {
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&h| h > 0)
        .unwrap_or(100) as f64
}

/// Threads of a process: tid -> (comm, utime + stime ticks).
pub type Threads = BTreeMap<u32, (String, u64)>;

/// Every thread of `pid` now.
pub fn threads(pid: u32) -> Threads {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let s = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            let st = parse_stat(&s)?;
            Some((tid, (st.comm, st.utime + st.stime)))
        })
        .collect()
}

/// One reading of a process's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// The process CPU-time clock, ns.
    pub cpu_ns: u64,
    /// Clock ticks.
    pub utime: u64,
    /// Clock ticks.
    pub stime: u64,
}

/// A process whose CPU time is sampled.
pub struct Watch {
    pub pid: u32,
    clock: ClockId,
}

impl Watch {
    pub fn new(pid: u32) -> Result<Self> {
        let raw = i32::try_from(pid).context("pid")?;
        let clock = clock_getcpuclockid(Pid::from_raw(raw))
            .with_context(|| format!("clock_getcpuclockid({pid})"))?;
        Ok(Self { pid, clock })
    }

    pub fn sample(&self) -> Result<Sample> {
        let at = Instant::now();
        let ts = clock_gettime(self.clock)
            .with_context(|| format!("the CPU clock of process {}", self.pid))?;
        let st = stat(self.pid)?;
        Ok(Sample {
            at,
            cpu_ns: ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
            utime: st.utime,
            stime: st.stime,
        })
    }

    /// `n` ticks of `every` on a fixed schedule (a late wake-up does not
    /// shift the next tick): `n + 1` samples, the first now. `each` runs
    /// after every sample but the first, with the tick's number (from 1);
    /// an error from it ends the run.
    pub fn ticks(
        &self,
        n: usize,
        every: Duration,
        mut each: impl FnMut(usize, &Sample) -> Result<()>,
    ) -> Result<Vec<Sample>> {
        let first = self.sample()?;
        let mut out = vec![first];
        for i in 1..=n {
            let due = first.at + every * i as u32;
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let s = self.sample()?;
            each(i, &s)?;
            out.push(s);
        }
        Ok(out)
    }
}

/// What a run of samples says.
#[derive(Debug, Clone)]
pub struct Usage {
    /// CPU per tick from the CPU clock, ms.
    pub tick_ms: Vec<f64>,
    /// CPU per tick from /proc stat, ms (multiples of 1000 / CLK_TCK).
    pub tick_stat_ms: Vec<f64>,
    pub user_s: f64,
    pub sys_s: f64,
    /// The CPU clock's total, s.
    pub clock_s: f64,
    pub wall_s: f64,
    pub hz: f64,
}

impl Usage {
    pub fn of(samples: &[Sample]) -> Result<Self> {
        let (Some(a), Some(b)) = (samples.first(), samples.last()) else {
            bail!("no samples");
        };
        if samples.len() < 2 {
            bail!("one sample: no tick");
        }
        let hz = clk_tck();
        let pairs = || samples.windows(2).map(|w| (w[0], w[1]));
        let tick_ms = pairs()
            .map(|(x, y)| y.cpu_ns.saturating_sub(x.cpu_ns) as f64 / 1e6)
            .collect();
        let ticks = |s: &Sample| s.utime + s.stime;
        let tick_stat_ms = pairs()
            .map(|(x, y)| ticks(&y).saturating_sub(ticks(&x)) as f64 * 1e3 / hz)
            .collect();
        Ok(Self {
            tick_ms,
            tick_stat_ms,
            user_s: b.utime.saturating_sub(a.utime) as f64 / hz,
            sys_s: b.stime.saturating_sub(a.stime) as f64 / hz,
            clock_s: b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / 1e9,
            wall_s: b.at.duration_since(a.at).as_secs_f64(),
            hz,
        })
    }

    /// user + system from /proc stat over the wall time, % of one core.
    pub fn pct(&self) -> f64 {
        (self.user_s + self.sys_s) / self.wall_s * 100.0
    }

    /// The CPU clock's total over the wall time, % of one core.
    pub fn clock_pct(&self) -> f64 {
        self.clock_s / self.wall_s * 100.0
    }

    /// Lines that say it all, each starting with `who`.
    pub fn print(&self, who: &str) {
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let ticks = self.tick_ms.len();
        println!(
            "{who}: {ticks} ticks over {:.1} s: per tick (CPU clock, ns resolution) median {:.2} ms, max {:.2} ms = median {:.2} %, max {:.2} % of a core",
            self.wall_s,
            median(self.tick_ms.clone()),
            max(&self.tick_ms),
            median(self.tick_ms.clone()) / 10.0,
            max(&self.tick_ms) / 10.0,
        );
        println!(
            "{who}: per tick (/proc stat utime+stime, {:.0} ms resolution) median {:.0} ms, max {:.0} ms",
            1e3 / self.hz,
            median(self.tick_stat_ms.clone()),
            max(&self.tick_stat_ms),
        );
        println!(
            "{who}: total user {:.2} s + sys {:.2} s = {:.3} % of a core (/proc stat); CPU clock {:.3} s = {:.3} %",
            self.user_s,
            self.sys_s,
            self.pct(),
            self.clock_s,
            self.clock_pct(),
        );
    }
}

/// Where a process's time went between two [`threads`] readings: one
/// line per thread (by name, threads of the same name summed), those
/// that ended in between as what the process total has beyond them.
pub fn print_threads(who: &str, before: &Threads, after: &Threads, total_ticks: u64, hz: f64) {
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    for (tid, (comm, t)) in after {
        let was = before.get(tid).map_or(0, |b| b.1);
        *by_name.entry(comm).or_default() += t.saturating_sub(was);
    }
    let seen: u64 = by_name.values().sum();
    let mut parts: Vec<String> = by_name
        .iter()
        .map(|(n, t)| format!("{n} {:.2} s", *t as f64 / hz))
        .collect();
    parts.push(format!(
        "threads that ended (e.g. discovery's scoped workers) {:.2} s",
        total_ticks.saturating_sub(seen) as f64 / hz
    ));
    println!("{who}: by thread: {}", parts.join(", "));
}
