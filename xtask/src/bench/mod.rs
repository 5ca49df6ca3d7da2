//! `cargo xtask bench`: the benchmarks, each printing ratios measured in the
//! same run. Host: the criterion benches, the live UI's CPU over a 16 x 256
//! fixture and `sriov list --json` as a process. Lab (the emulated 82576):
//! `sriov apply` against `ip -batch` and `ip` loops, the probes' added
//! latency, the VFIO datapath against igbvf's best kernel senders and
//! receivers, the policy attached against detached, and the live UI's CPU
//! with 7 VFs carrying traffic. It ends with one table of every figure that
//! has a goal ([`table`]).
use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, Result, bail};

use crate::{lab, util, vmtest};

mod table;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Only the lab benchmarks.
    #[arg(long)]
    lab_only: bool,
    /// Only the host benchmarks.
    #[arg(long, conflicts_with = "lab_only")]
    host_only: bool,
    /// Only the lab benchmarks whose name contains this (`policy`,
    /// `datapath`, `apply`, `probes`, `config`, `ui`); implies --lab-only.
    #[arg(long, value_name = "NAME", conflicts_with = "host_only")]
    only: Option<String>,
}

/// Lab benchmark programs (examples of sriov-top).
const LAB_EXAMPLES: &[&str] = &[
    "lab_bench_apply",
    "lab_bench_probes",
    "lab_bench_datapath",
    "lab_bench_policy",
    "lab_bench_config",
    "lab_bench_ui",
];

/// Release builds: benchmarks measure what operators run.
fn build_release(name: &str) -> Result<PathBuf> {
    util::run(
        Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--release",
                "--package",
                "sriov-top",
                "--bins",
                "--example",
                name,
            ])
            .current_dir(util::workspace_root()),
    )?;
    let p = util::target_dir().join("release/examples").join(name);
    if !p.exists() {
        bail!("example {name} was not built at {}", p.display());
    }
    Ok(p)
}

pub fn run_bench(o: Options) -> Result<u8> {
    let mut rows = Vec::new();
    if !o.lab_only && o.only.is_none() {
        rows.extend(
            table::run_collecting(
                Command::new(env!("CARGO"))
                    .args(["bench", "--workspace"])
                    .current_dir(util::workspace_root()),
            )
            .context("host benchmarks")?,
        );
        // the live terminal UI (sriov-top's library in-process: collector
        // and drawing) over a 16 x 256 fixture in a tmux pane, 1 s ticks, 60 s
        let idle = build_release("idle_cpu")?;
        rows.extend(
            table::run_collecting(
                Command::new(idle)
                    .arg("60")
                    .current_dir(util::workspace_root().join("sriov-top")),
            )
            .context("sriov-top UI CPU benchmark (16 x 256 fixture)")?,
        );
        // `sriov list --json` as a whole process on a 16 x 256 fixture
        let list = build_release("list_process")?;
        rows.extend(
            table::run_collecting(Command::new(list).arg(util::target_dir().join("release/sriov")))
                .context("sriov list --json process benchmark")?,
        );
    }
    if o.host_only {
        println!("\n{}", table::render(&rows));
        return Ok(0);
    }
    let mut failed = Vec::new();
    for name in LAB_EXAMPLES
        .iter()
        .filter(|n| o.only.as_deref().is_none_or(|f| n.contains(f)))
    {
        let mut bins = vec![(name.to_string(), build_release(name)?)];
        bins.extend(lab::project_bins("release"));
        if !run_lab_program(name, &bins, &mut rows)? {
            failed.push(*name);
        }
    }
    println!("\n{}", table::render(&rows));
    if !failed.is_empty() {
        bail!("lab benchmarks failed: {}", failed.join(", "));
    }
    Ok(0)
}

/// A lab benchmark program's VM is stopped when the guest wedges, as
/// `vm-test` tells it ([`vmtest::Watch`]): the kernel reports a timer that
/// did not fire, or an RCU stall and no line of the program's for a minute
/// after it, or the program prints nothing for [`QUIET`].
const QUIET: Duration = Duration::from_secs(600);

/// A line the benchmark program printed, not the kernel's log (`[   t] ...`).
fn program_line(line: &str) -> bool {
    !line.trim_start().starts_with('[')
}

/// Why a benchmark VM was stopped.
fn stopped(w: &vmtest::Wedge) -> String {
    match w {
        vmtest::Wedge::NoProgress(d) => format!("no line for {} s", d.as_secs()),
        w => w.why(),
    }
}

/// Run one lab benchmark program in a VM of its own; a wedged VM is
/// stopped and the program runs once more in a fresh one (a TCG guest
/// now and then wedges: `vmtest`'s documentation). Its table rows are
/// kept from the run that ended. Whether it exited 0.
fn run_lab_program(
    name: &str,
    bins: &[(String, PathBuf)],
    rows: &mut Vec<table::Row>,
) -> Result<bool> {
    let script = format!("set -e\n{name}\n");
    for attempt in 1..=2 {
        let run = lab::Run {
            job: lab::Job::Exec,
            cmd: Some(&script),
            bins,
            accel: None,
            kernel: crate::kernels::GuestKernel::V6_12,
            // probes (~5 min) and datapath (~3 min) are the long ones
            timeout: Duration::from_secs(1500),
            verbose: false,
            agent_port: None,
            dir: &lab::LabDir::main(),
        };
        let mut these = Vec::new();
        let mut watch = vmtest::Watch::with_progress(QUIET, program_line);
        let out = lab::boot_watched(
            &run,
            |l| {
                println!("{l}");
                these.extend(table::parse(l));
            },
            |now, line| watch.event(now, line).map(|w| stopped(&w)),
        )?;
        if let Some(why) = &out.stopped
            && attempt == 1
        {
            println!("bench: {name}: the VM was stopped ({why}); once more in a fresh VM");
            continue;
        }
        rows.extend(these);
        if let Some(f) = &out.failure {
            println!("bench: {name}: the VM failed: {f}");
        }
        return Ok(out.failure.is_none() && out.exit_code == Some(0));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// The watch over a benchmark VM, as `check` says why it stops it.
    fn watch() -> impl FnMut(Duration, Option<&str>) -> Option<String> {
        let mut w = vmtest::Watch::with_progress(QUIET, program_line);
        move |now, line| w.event(now, line).map(|w| stopped(&w))
    }

    /// A lab benchmark's VM is stopped on the timer-stall report at once, on
    /// another RCU stall report only when no line of the program's follows
    /// it for a minute, and when it prints nothing for QUIET; a program that
    /// keeps printing, however long, is left alone.
    #[test]
    fn a_wedged_benchmark_vm_is_told_from_a_slow_one() {
        let mut check = watch();
        assert_eq!(check(S(1), Some("bench: round 1")), None);
        let stall = "[  98.2] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:";
        assert!(check(S(2), Some(stall)).is_none());
        assert!(check(S(61), None).is_none());
        assert!(check(S(62), None).unwrap().contains("RCU stall"));

        // a stall the program goes on after is no wedge
        let mut check = watch();
        assert!(check(S(2), Some(stall)).is_none());
        assert!(check(S(30), Some("bench: round 2")).is_none());
        assert!(check(S(100), None).is_none());

        let mut check = watch();
        assert!(
            check(
                S(5),
                Some("[  99.1] rcu: 0-...: (1 GPs behind) timer wakeup didn't happen")
            )
            .unwrap()
            .contains("timer")
        );

        let mut check = watch();
        for t in (0..3000).step_by(300) {
            assert_eq!(check(S(t), Some("bench: still working")), None);
        }
        assert!(check(S(2700 + 599), None).is_none());
        assert!(check(S(2700 + 600), None).unwrap().contains("no line"));
    }
}
