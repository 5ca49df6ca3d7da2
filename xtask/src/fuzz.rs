//! `cargo xtask fuzz`: run the cargo-fuzz targets for a while (libFuzzer,
//! nightly). A crash is a failure; its reproducer stays in
//! `sriov-core/fuzz/artifacts/`.
use std::process::Command;

use anyhow::{Result, bail};

use crate::util;

/// (crate directory holding `fuzz/`, target)
pub const TARGETS: &[(&str, &str)] = &[
    ("sriov-core", "config_parser"),
    ("sriov-core", "record_decoder"),
    ("sriov-core", "policy_parser"),
];

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  cargo xtask fuzz\n  cargo xtask fuzz --seconds 600 config_parser"
)]
pub struct Options {
    /// Run only this target.
    pub target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// libFuzzer's output to `target/fuzz/TARGET.log` instead of the
    /// terminal (its last lines are printed if the target fails).
    #[arg(long)]
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            target: None,
            seconds: 30,
            quiet: false,
        }
    }
}

/// Lines of a quiet run's log printed when its target fails.
const TAIL_LINES: usize = 40;

/// Start building every fuzz target as `cargo fuzz run` builds it, at the
/// lowest CPU priority (`nice -n 19`), its output to `log`: `cargo xtask
/// test` does it while the lab VMs run, so that it only takes what they
/// leave idle (about 4.5 minutes of a 2-core machine from nothing). The
/// runs after it find the targets built.
pub fn start_background_build(log: &std::path::Path) -> Result<std::process::Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    // every target lives in sriov-core/fuzz
    let dir = TARGETS[0].0;
    let child = Command::new("nice")
        .args([
            "-n",
            "19",
            "cargo",
            "+nightly",
            "fuzz",
            "build",
            "--target-dir",
        ])
        .arg(util::target_dir().join("fuzz"))
        .current_dir(util::workspace_root().join(dir))
        .stdout(out)
        .stderr(err)
        .spawn()?;
    Ok(child)
}

pub fn run_fuzz(o: Options) -> Result<u8> {
    if util::which("cargo-fuzz").is_none() {
        bail!("cargo-fuzz is not installed.\nFix: cargo xtask setup");
    }
    let mut failed = 0;
    let mut ran = 0;
    for (dir, target) in TARGETS {
        if o.target.as_deref().is_some_and(|t| t != *target) {
            continue;
        }
        ran += 1;
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "fuzz", "run", target, "--target-dir"])
            .arg(util::target_dir().join("fuzz"))
            .arg("--")
            .arg(format!("-max_total_time={}", o.seconds))
            .current_dir(util::workspace_root().join(dir));
        let log = util::target_dir()
            .join("fuzz")
            .join(format!("{target}.log"));
        if o.quiet {
            std::fs::create_dir_all(util::target_dir().join("fuzz"))?;
            let out = std::fs::File::create(&log)?;
            cmd.stderr(out.try_clone()?).stdout(out);
        }
        let status = cmd.status()?;
        if status.success() {
            println!("fuzz: {target}: {} s without a crash", o.seconds);
        } else {
            failed += 1;
            if o.quiet {
                print_tail(&log);
            }
            println!("fuzz: {target}: FAILED ({status}); see {dir}/fuzz/artifacts/{target}/");
        }
    }
    if ran == 0 {
        bail!(
            "no fuzz target named {:?}; targets: {:?}",
            o.target,
            TARGETS.iter().map(|t| t.1).collect::<Vec<_>>()
        );
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// The last lines of a quiet run's log, and where the rest is.
fn print_tail(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
        println!("    {l}");
    }
    println!("    (whole output: {})", log.display());
}
