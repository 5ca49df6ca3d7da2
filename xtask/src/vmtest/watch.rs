//! Reading the console: test results, a wedged guest, where to resume
//! after a restart, totals across VMs.
use super::*;
/// The test running in the guest now.
#[derive(Debug)]
pub(super) struct Current {
    pub(super) name: String,
    /// Its libtest `test result:` line was seen (and counted).
    pub(super) counted: bool,
    /// libtest's verdict on it, `test NAME ... ok` / `FAILED` (the word may
    /// end a later line: the test's own output comes between).
    pub(super) verdict: Option<bool>,
}

/// libtest's verdict on the running test, if `line` is it.
pub(super) fn verdict(line: &str) -> Option<bool> {
    let t = line.trim_end();
    let own = t.starts_with("test ") && t.contains(" ... ");
    if t == "ok" || (own && t.ends_with(" ... ok")) {
        Some(true)
    } else if t == "FAILED" || (own && t.ends_with(" ... FAILED")) {
        Some(false)
    } else {
        None
    }
}

/// Follows one VM's output: counts libtest results per test, and charges
/// a test that ended without one (crashed, killed at its timeout).
#[derive(Default)]
pub(super) struct Tally {
    pub(super) passed: u32,
    pub(super) failed: u32,
    /// Tests begun (marked) in this VM.
    pub(super) started: usize,
    /// The test running now.
    pub(super) current: Option<Current>,
    /// Tests that printed no result.
    pub(super) broken: Vec<String>,
    /// Tests whose result line counted a failure.
    pub(super) failures: Vec<String>,
}

impl Tally {
    pub(super) fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix(TEST_MARK) {
            self.started += 1;
            self.current = Some(Current {
                name: rest.rsplit(' ').next().unwrap_or(rest).to_string(),
                counted: false,
                verdict: None,
            });
        } else if let Some((p, f)) = parse_result(line) {
            self.passed += p;
            self.failed += f;
            if let Some(c) = &mut self.current {
                c.counted = true;
                if f > 0 {
                    self.failures.push(c.name.clone());
                }
            }
        } else if let Some(code) = line.strip_prefix(EXIT_MARK) {
            if let Some(c) = self.current.take()
                && !c.counted
            {
                self.failed += 1;
                self.broken
                    .push(format!("{} (exit {code}, no result line)", c.name));
            }
        } else if let Some(c) = &mut self.current
            && c.verdict.is_none()
        {
            c.verdict = verdict(line);
        }
    }
}

/// Why the host gave up on a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wedge {
    /// The kernel's RCU stall report says a timer did not fire.
    TimerStall,
    /// An RCU stall report, and no test progress for `STALL_GRACE` after.
    Stall,
    /// No test progress (start, result, exit) for this long.
    NoProgress(Duration),
}

impl Wedge {
    pub(crate) fn why(&self) -> String {
        match self {
            Wedge::TimerStall => "RCU stall: a vCPU's timer stopped; lab infrastructure".into(),
            Wedge::Stall => format!(
                "RCU stall, then no test progress for {} s",
                STALL_GRACE.as_secs()
            ),
            Wedge::NoProgress(d) => format!(
                "no test progress for {} s: past its time limit, the test could not be killed",
                d.as_secs()
            ),
        }
    }
}

/// The lines of the kernel's RCU stall report that say a timer did not fire
/// (the wedge: from then on the guest makes no progress).
pub(super) fn timer_stall_line(line: &str) -> bool {
    line.contains("timer wakeup didn't happen") || line.contains("Possible timer handling issue")
}

/// The first line of any RCU stall report (`rcu_preempt detected stalls on
/// CPUs/tasks:`, `... self-detected stall on CPU`).
pub(super) fn rcu_stall_line(line: &str) -> bool {
    line.contains("rcu: INFO: rcu_") && line.contains("detected stall")
}

/// A test began, gave its result or ended.
pub(super) fn progress_line(line: &str) -> bool {
    line.starts_with(TEST_MARK) || line.starts_with(EXIT_MARK) || parse_result(line).is_some()
}

/// The host's watch over one VM's console: is the guest wedged? Times are
/// since QEMU started.
pub(crate) struct Watch {
    /// No progress for this long: wedged.
    pub(super) limit: Duration,
    /// What counts as progress: a test's mark, result or exit
    /// ([`progress_line`]) for `vm-test`.
    pub(super) progress: fn(&str) -> bool,
    pub(super) last_progress: Duration,
    /// When an RCU stall report (naming no timer) was seen, since the last
    /// progress.
    pub(super) stall_since: Option<Duration>,
    pub(super) wedge: Option<Wedge>,
}

impl Watch {
    pub(super) fn new(limit: Duration) -> Self {
        Self::with_progress(limit, progress_line)
    }

    /// A watch for which the lines `progress` picks are progress.
    pub(crate) fn with_progress(limit: Duration, progress: fn(&str) -> bool) -> Self {
        Self {
            limit,
            progress,
            last_progress: Duration::ZERO,
            stall_since: None,
            wedge: None,
        }
    }

    /// One console line (`Some`) or the time passing (`None`); the wedge,
    /// once there is one (it stays).
    pub(crate) fn event(&mut self, now: Duration, line: Option<&str>) -> Option<Wedge> {
        if self.wedge.is_none() {
            self.wedge = self.check(now, line);
        }
        self.wedge.clone()
    }

    pub(super) fn check(&mut self, now: Duration, line: Option<&str>) -> Option<Wedge> {
        if let Some(l) = line {
            if timer_stall_line(l) {
                return Some(Wedge::TimerStall);
            }
            if (self.progress)(l) {
                self.last_progress = now;
                self.stall_since = None;
            } else if rcu_stall_line(l) && self.stall_since.is_none() {
                self.stall_since = Some(now);
            }
        }
        if self
            .stall_since
            .is_some_and(|t| now.saturating_sub(t) >= STALL_GRACE)
        {
            return Some(Wedge::Stall);
        }
        (now.saturating_sub(self.last_progress) >= self.limit)
            .then(|| Wedge::NoProgress(now.saturating_sub(self.last_progress)))
    }
}

/// What becomes of the test that was running when a VM wedged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// It had printed its result: counted already.
    Counted,
    /// libtest had given its verdict, not yet the result line: counted as
    /// that (a FAILED test is never run again).
    Verdict(bool),
    /// Run it again, first in the next VM.
    Rerun,
    /// Counted as failed, for this reason.
    Failed(&'static str),
}

/// After a wedge: what becomes of the running test, and where the next VM
/// starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Resume {
    /// The test running when the VM wedged (index in the run's list).
    pub(super) during: Option<(usize, Fate)>,
    /// Tests begun in the run so far, the wedged one too.
    pub(super) begun: usize,
    /// The first test of the next VM (index in the run's list); `None`: no
    /// restart (none left, or no test left to run).
    pub(super) next: Option<usize>,
    /// Tests were left to run, but no restart.
    pub(super) exhausted: bool,
}

/// A VM that started at test `from` of the run's `total` wedged with
/// `tally`; `wedged_before`: the tests that wedged an earlier VM.
pub(super) fn resume(
    from: usize,
    total: usize,
    tally: &Tally,
    wedged_before: &[usize],
    restarts_left: usize,
) -> Resume {
    let begun = from + tally.started;
    let (during, first) = match &tally.current {
        None => (None, begun),
        Some(c) => {
            let i = begun - 1;
            let fate = if c.counted {
                Fate::Counted
            } else if let Some(v) = c.verdict {
                Fate::Verdict(v)
            } else if wedged_before.contains(&i) {
                Fate::Failed("it wedged the VM twice")
            } else {
                Fate::Rerun
            };
            let first = if fate == Fate::Rerun { i } else { i + 1 };
            (Some((i, fate)), first)
        }
    };
    if first >= total {
        return Resume {
            during,
            begun,
            next: None,
            exhausted: false,
        };
    }
    if restarts_left == 0 {
        let during = during.map(|(i, f)| {
            let f = if f == Fate::Rerun {
                Fate::Failed("it wedged the VM and no VM restart was left")
            } else {
                f
            };
            (i, f)
        });
        return Resume {
            during,
            begun,
            next: None,
            exhausted: true,
        };
    }
    Resume {
        during,
        begun,
        next: Some(first),
        exhausted: false,
    }
}

/// The tally of a whole run, across VM restarts.
#[derive(Default)]
pub(super) struct Totals {
    pub(super) passed: u32,
    pub(super) failed: u32,
    /// Tests charged without a result of their own.
    pub(super) broken: Vec<String>,
    /// One entry per VM restart (`wedge during TEST`).
    pub(super) restarts: Vec<String>,
    /// The tests whose result line counted a failure, by name.
    pub(super) failures: Vec<String>,
}

impl Totals {
    /// What one VM counted.
    pub(super) fn add(&mut self, t: &Tally) {
        self.passed += t.passed;
        self.failed += t.failed;
        self.broken.extend(t.broken.iter().cloned());
        self.failures.extend(t.failures.iter().cloned());
    }

    /// Every failed test by name: those with a failed result, then those
    /// charged without one (with why).
    pub(super) fn named_failures(&self) -> Vec<String> {
        self.failures.iter().chain(&self.broken).cloned().collect()
    }

    /// The test running when a VM wedged (`why`), by its fate.
    pub(super) fn charge(&mut self, name: &str, fate: &Fate, why: &str) {
        match fate {
            Fate::Counted | Fate::Rerun => {}
            Fate::Verdict(true) => self.passed += 1,
            Fate::Verdict(false) => {
                self.failed += 1;
                self.broken
                    .push(format!("{name} (FAILED, then the VM wedged: {why})"));
            }
            Fate::Failed(reason) => {
                self.failed += 1;
                self.broken.push(format!("{name} ({reason}: {why})"));
            }
        }
    }
}

/// `re-running X and the N after it` / `running the N after it`.
pub(super) fn what_next(all: &[(String, String)], next: usize, rerun: bool) -> String {
    let after = all.len() - next - usize::from(rerun);
    let tail = match after {
        0 => "none after it".to_string(),
        n => format!("the {n} after it"),
    };
    if rerun {
        format!("re-running {} and {tail}", all[next].1)
    } else {
        format!("running {tail}")
    }
}
