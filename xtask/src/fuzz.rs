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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            target: None,
            seconds: 30,
        }
    }
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
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", target, "--target-dir"])
            .arg(util::target_dir().join("fuzz"))
            .arg("--")
            .arg(format!("-max_total_time={}", o.seconds))
            .current_dir(util::workspace_root().join(dir))
            .status()?;
        if status.success() {
            println!("fuzz: {target}: {} s without a crash", o.seconds);
        } else {
            failed += 1;
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
