//! `cargo xtask bench`: the benchmarks, each printing ratios measured in the
//! same run. Host: the criterion benches and `sriov-top`'s idle CPU. Lab: `sriov apply` against a loop
//! of `ip link set` on the emulated 82576.
use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, Result, bail};

use crate::{lab, util};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Only the lab benchmarks.
    #[arg(long)]
    lab_only: bool,
    /// Only the host benchmarks.
    #[arg(long, conflicts_with = "lab_only")]
    host_only: bool,
}

/// Lab benchmark programs (examples of sriov-top).
const LAB_EXAMPLES: &[&str] = &["lab_bench_apply", "lab_bench_probes", "lab_bench_datapath"];

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
    if !o.lab_only {
        util::run(
            Command::new(env!("CARGO"))
                .args(["bench", "--workspace"])
                .current_dir(util::workspace_root()),
        )
        .context("host benchmarks")?;
        // the terminal UI idling in a real pty (tmux), 60 s, beside `cat`
        let idle = build_release("idle_cpu")?;
        util::run(
            Command::new(idle)
                .arg("60")
                .current_dir(util::workspace_root().join("sriov-top")),
        )
        .context("sriov-top idle CPU benchmark")?;
    }
    if o.host_only {
        return Ok(0);
    }
    let mut bins = Vec::new();
    let mut script = String::from("set -e\n");
    for name in LAB_EXAMPLES {
        bins.push((name.to_string(), build_release(name)?));
        script.push_str(&format!("{name}\n"));
    }
    bins.extend(lab::project_bins("release"));
    let run = lab::Run {
        job: lab::Job::Exec,
        cmd: Some(&script),
        bins: &bins,
        accel: None,
        timeout: Duration::from_secs(900),
        verbose: false,
    };
    let out = lab::boot(&run, |l| println!("{l}"))?;
    if let Some(f) = out.failure {
        bail!("lab benchmark VM failed: {f}");
    }
    Ok(if out.exit_code == Some(0) { 0 } else { 1 })
}
