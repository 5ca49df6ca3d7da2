//! Idle CPU of the terminal UI: `sriov-top --replay` of the lab fixture in
//! a tmux pane (a real pty), left alone after the replay ends; its user +
//! system time over the run, from /proc/<pid>/stat, as a share of one
//! core. The same for `cat` waiting in another pane of the same tmux, as
//! the baseline.
//!
//! cargo build -p sriov-top && cargo run -p sriov-top --example idle_cpu -- [SECONDS]
//! (default 60; `SRIOV_TOP=path` picks another binary)
use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// The sriov-top built next to this example (target/<profile>/sriov-top).
fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SRIOV_TOP") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .context("where this example runs from")?;
    let bin = dir.join("sriov-top");
    if !bin.exists() {
        bail!(
            "{} is not built: run `cargo build -p sriov-top` first (or set SRIOV_TOP)",
            bin.display()
        );
    }
    Ok(bin)
}

struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .context("running tmux (is it installed?)")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The pid of `comm` in pane `target`: the pane's process or a child
    /// of it (the shell may or may not exec).
    fn pid_of(&self, target: &str, comm: &str) -> Result<u32> {
        let pane: u32 = self
            .run(&["display", "-p", "-t", target, "#{pane_pid}"])?
            .parse()?;
        for _ in 0..50 {
            if let Some(p) = std::fs::read_dir("/proc")?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .find(|p| {
                    stat(*p).is_some_and(|s| s.comm == comm && (*p == pane || s.ppid == pane))
                })
            {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no {comm} process in pane {target}")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

struct Stat {
    comm: String,
    ppid: u32,
    /// utime + stime, clock ticks.
    ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = s.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_string();
    // after the comm: state(0) ppid(1) ... utime(11) stime(12)
    let f: Vec<&str> = tail.split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: f.get(1)?.parse().ok()?,
        ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
}

fn ticks(pid: u32) -> Result<u64> {
    stat(pid)
        .map(|s| s.ticks)
        .with_context(|| format!("reading /proc/{pid}/stat"))
}

fn main() -> Result<()> {
    let secs: u64 = match std::env::args().nth(1) {
        Some(a) => a.parse().context("the argument is a number of seconds")?,
        None => 60,
    };
    let bin = binary()?;
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lab.ndjson");
    let tmux = Tmux(format!("sriov-top-idle-{}", std::process::id()));
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "idle",
        "-x",
        "120",
        "-y",
        "30",
        &format!("exec {} --replay {fixture} --speed 100", bin.display()),
    ])?;
    tmux.run(&["new-window", "-d", "-t", "idle", "exec cat"])?;
    let top = tmux.pid_of("idle:0", "sriov-top")?;
    let cat = tmux.pid_of("idle:1", "cat")?;
    // the replay (5 s at x100) and start-up are over after a second
    std::thread::sleep(Duration::from_secs(1));
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .filter(|&h| h > 0)
        .unwrap_or(100) as f64;
    let (top0, cat0, t0) = (ticks(top)?, ticks(cat)?, Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (top1, cat1, wall) = (ticks(top)?, ticks(cat)?, t0.elapsed().as_secs_f64());
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / wall * 100.0;
    let (top_pct, cat_pct) = (pct(top0, top1), pct(cat0, cat1));
    println!("idle cpu: {top_pct:.2} % of a core over {secs} s (goal <= 1 %)");
    println!(
        "baseline: {cat_pct:.2} % for `cat` waiting in a tmux pane over the same {secs} s ({} ticks vs {} at {hz} Hz)",
        top1 - top0,
        cat1 - cat0
    );
    // the row of `cargo xtask bench`'s table (xtask/src/bench/table.rs)
    println!(
        "bench-row\tterminal UI idle CPU after a replay, {secs} s (vs `cat` in a pane)\t{top_pct:.2} %\t{cat_pct:.2} %\t{:.2}\t<= 1 % of a core\t{}",
        top_pct / cat_pct.max(0.01),
        if top_pct <= 1.0 { "yes" } else { "no" },
    );
    let screen = tmux.run(&["capture-pane", "-p", "-t", "idle:0"])?;
    if !screen.contains("replay ended") {
        bail!("the UI did not get to the end of the replay; its screen:\n{screen}");
    }
    Ok(())
}
