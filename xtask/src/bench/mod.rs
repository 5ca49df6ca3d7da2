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

use crate::{lab, util};

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
    let mut bins = Vec::new();
    let mut script = String::from("set -e\n");
    for name in LAB_EXAMPLES
        .iter()
        .filter(|n| o.only.as_deref().is_none_or(|f| n.contains(f)))
    {
        bins.push((name.to_string(), build_release(name)?));
        script.push_str(&format!("{name}\n"));
    }
    bins.extend(lab::project_bins("release"));
    let run = lab::Run {
        job: lab::Job::Exec,
        cmd: Some(&script),
        bins: &bins,
        accel: None,
        kernel: crate::kernels::GuestKernel::V6_12,
        // six programs; probes (~5 min) and datapath (~3 min) are the long ones
        timeout: Duration::from_secs(2400),
        verbose: false,
        agent_port: None,
        dir: &lab::LabDir::main(),
    };
    let out = lab::boot(&run, |l| {
        println!("{l}");
        rows.extend(table::parse(l));
    })?;
    println!("\n{}", table::render(&rows));
    if let Some(f) = out.failure {
        bail!("lab benchmark VM failed: {f}");
    }
    Ok(if out.exit_code == Some(0) { 0 } else { 1 })
}
