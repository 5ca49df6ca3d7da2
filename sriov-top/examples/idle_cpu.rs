//! Host benchmark: the CPU of the live terminal UI over 16 PFs x 256 VFs.
//!
//! The UI is sriov-top's own code, run in-process by this program in a
//! tmux pane (a real pty, 160x50): `tui::session::run_on`, the same
//! function the `sriov-top` binary runs, with its live collector on a
//! thread of its own (discovery of all 4096 VFs, the owner scan, the
//! kubelet task) at 1 s ticks, and the drawing. The only difference from
//! the shipped binary is the host the collector reads: a generated sysfs
//! fixture tree (`sriov_core::fixture::generate`), since no machine here
//! has 4096 VFs. A fixture has no rtnetlink, so no VF counters (and no
//! per-VF `stats`) come from it: the per-tick work measured is the scan.
//!
//! eBPF is off: the UI process drops root (to nobody) before it starts,
//! so the collector takes the library's non-root path (no probes tried,
//! the UI's banner says so), as `sriov-top` without root does. As root
//! it would load what this kernel offers (this host has no kprobes:
//! only the tracepoint programs attach) and watch this host's kernel,
//! not the fixture. The lab benchmark (lab_bench_ui) measures the real
//! binary with the probes, on real VFs carrying traffic.
//!
//! After the first inventory is on screen and 2 s more, this program
//! samples the UI process each second for SECONDS ticks (common::proc_cpu:
//! /proc/<pid>/stat utime + stime, and the process CPU clock for per-tick
//! figures finer than 10 ms), then stops it with SIGTERM and checks that it
//! exited 0. Goal: <= 1 % of a core. There is no baseline: the row's ratio
//! is ours / the goal.
//!
//! cargo build --release -p sriov-top --example idle_cpu
//! target/release/examples/idle_cpu [SECONDS]   (default 60; needs tmux)
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the shared lab helpers end the program on a failure"
)]
mod common;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use common::proc_cpu::{self, Usage, Watch};
use sriov_core::host::System;
use sriov_top::{
    cli::Cli,
    tui::session::{self, Source},
};

const PFS: u32 = 16;
const VFS: u32 = 256;
const COLS: &str = "160";
const ROWS: &str = "50";
/// The argument that makes this program the UI (in the pane).
const UI: &str = "--ui";
const GOAL_PCT: f64 = 1.0;
/// After the first inventory is drawn, before the ticks are counted.
const SETTLE: Duration = Duration::from_secs(2);

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(UI) => ui(&args.next().context("--ui FIXTURE-DIR")?),
        Some(a) => bench(a.parse().context("the argument is a number of seconds")?),
        None => bench(60),
    }
}

/// In the pane: sriov-top's UI, live, at 1 s ticks, over the fixture.
fn ui(dir: &str) -> Result<()> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    if Uid::effective().is_root() {
        // the library's non-root path: no eBPF (see the top of the file)
        setgroups(&[]).context("setgroups")?;
        setgid(Gid::from_raw(65534)).context("setgid nogroup")?;
        setuid(Uid::from_raw(65534)).context("setuid nobody")?;
    }
    let cli = Cli::try_parse_from(["sriov-top", "--interval", "1"])?;
    session::run_on(Box::new(System::fixture(dir)), &cli, Source::Live, None)
}

/// A tmux server of our own; killed on drop.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .context("running tmux (is it installed? `cargo xtask setup` installs it)")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "ui:0"])
            .unwrap_or_else(|e| format!("(no screen: {e:#})"))
    }

    /// The pid of the process named `comm` that is the pane's process or
    /// its child (the pane's shell may or may not exec it).
    fn pid_of(&self, comm: &str) -> Result<u32> {
        let pane: u32 = self
            .run(&["display", "-p", "-t", "ui:0", "#{pane_pid}"])?
            .parse()?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            let found = std::fs::read_dir("/proc")?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .find(|&p| {
                    proc_cpu::stat(p).is_ok_and(|s| s.comm == comm && (p == pane || s.ppid == pane))
                });
            if let Some(p) = found {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "no {comm} process in the pane; its screen:\n{}",
            self.screen()
        )
    }

    /// Wait up to `limit` for the screen to satisfy `ok`.
    fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> Result<()> {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return Ok(());
            }
            if t.elapsed() > limit {
                bail!("{what}: not on screen after {limit:?}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

/// Why there are no probes here, as far as this host tells.
fn ebpf_note() -> String {
    let kprobes = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    format!(
        "eBPF: off. This host {} kprobes ({}); the UI runs as nobody, so sriov-top's collector takes its non-root path (no probes tried: sysfs only), as the shipped binary does without root",
        if kprobes { "has" } else { "has no" },
        if kprobes {
            "but the probes would watch this host's kernel, not the fixture"
        } else {
            "CONFIG_KPROBES unset: the probes will not load; as root only the tracepoint programs would attach"
        },
    )
}

/// The 16 x 256 fixture in a directory `nobody` can read.
fn fixture() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let t = Instant::now();
    sriov_core::fixture::generate(dir.path(), PFS, VFS).context("generating the fixture")?;
    println!(
        "idle_cpu: fixture of {PFS} PFs x {VFS} VFs generated in {:.1} s at {}",
        t.elapsed().as_secs_f64(),
        dir.path().display()
    );
    Ok(dir)
}

/// Start the UI in a pane; (tmux, its pid) once the first inventory is on
/// screen.
fn start_ui(dir: &Path) -> Result<(Tmux, u32)> {
    let exe = std::env::current_exe()?;
    // the kernel's comm: the first 15 bytes of the file name
    let comm: String = exe
        .file_name()
        .context("this program's name")?
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    let tmux = Tmux(format!("sriov-top-ui-cpu-{}", std::process::id()));
    let cmd = format!(
        "'{}' {UI} '{}'; echo $? > '{}'; sleep 600",
        exe.display(),
        dir.display(),
        dir.join("exit").display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "ui",
        "-x",
        COLS,
        "-y",
        ROWS,
        &cmd,
    ])?;
    let pid = tmux.pid_of(&comm)?;
    // the first PF of the first inventory (16 x 256 VFs scanned)
    tmux.wait_for("the first inventory", Duration::from_secs(60), |s| {
        s.contains("0000:01:00.0")
    })?;
    Ok((tmux, pid))
}

/// SIGTERM, then the exit status the pane's shell wrote.
fn stop(tmux: &Tmux, pid: u32, exit_file: &Path) -> Result<()> {
    use nix::sys::signal::{Signal, kill};
    kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).context("SIGTERM")?;
    let t = Instant::now();
    while !exit_file.exists() {
        if t.elapsed() > Duration::from_secs(15) {
            bail!(
                "the UI did not exit within 15 s of SIGTERM; its screen:\n{}",
                tmux.screen()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let code = std::fs::read_to_string(exit_file)?;
    if code.trim() != "0" {
        bail!(
            "the UI exited {} on SIGTERM (0 expected); the pane:\n{}",
            code.trim(),
            tmux.screen()
        );
    }
    println!("idle_cpu: SIGTERM: the UI exited 0");
    Ok(())
}

fn bench(secs: usize) -> Result<()> {
    if secs == 0 {
        bail!("at least one tick");
    }
    println!("idle_cpu: {}", ebpf_note());
    let dir = fixture()?;
    let (tmux, pid) = start_ui(dir.path())?;
    let startup = proc_cpu::stat(pid)?;
    std::thread::sleep(SETTLE);
    let watch = Watch::new(pid)?;
    let before = proc_cpu::threads(pid);
    let exit_file = dir.path().join("exit");
    let samples = watch.ticks(secs, Duration::from_secs(1), |i, _| {
        if exit_file.exists() {
            bail!("the UI ended at tick {i}; the pane:\n{}", tmux.screen());
        }
        Ok(())
    })?;
    let after = proc_cpu::threads(pid);
    let screen = tmux.screen();
    let usage = Usage::of(&samples)?;
    report(&usage, &startup, &before, &after, &screen);
    stop(&tmux, pid, &exit_file)
}

fn report(
    usage: &Usage,
    startup: &proc_cpu::Stat,
    before: &proc_cpu::Threads,
    after: &proc_cpu::Threads,
    screen: &str,
) {
    let who = "idle_cpu";
    println!(
        "{who}: start-up to the first inventory on screen (4096 VFs): user {:.2} s + sys {:.2} s (not in the figures below)",
        startup.utime as f64 / usage.hz,
        startup.stime as f64 / usage.hz
    );
    match screen.lines().find(|l| l.contains("eBPF")) {
        Some(l) => println!("{who}: the UI's banner: {}", l.trim()),
        None => println!("{who}: no eBPF banner on the UI's screen"),
    }
    usage.print(who);
    let total = ((usage.user_s + usage.sys_s) * usage.hz).round() as u64;
    proc_cpu::print_threads(who, before, after, total, usage.hz);
    let pct = usage.pct();
    common::bench_row(
        &format!(
            "sriov-top live UI CPU, host, {PFS} x {VFS} VF fixture, no eBPF, 1 s ticks, {} s (ratio: ours / goal)",
            usage.tick_ms.len()
        ),
        &format!("{pct:.2} %"),
        "none",
        pct / GOAL_PCT,
        "<= 1 % of a core",
        pct <= GOAL_PCT,
    );
}
