//! `sriov-top`: live SR-IOV observability. `--json` streams NDJSON events
//! (docs/events.md) for log pipelines; the terminal UI is not in this build.
mod stream;

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  sriov-top --json                                  # NDJSON events on stdout
  sriov-top --json --output /var/log/sriov.ndjson   # to a file
  sriov-top --json --interval 5 | vector --config vector.toml
  sriov-top --json --duration 30 > capture.ndjson   # 30 s, replayable

Needs root (eBPF). Hooks the running kernel cannot offer are reported as
`hook_missing` events and warnings; the rest keeps running.";

#[derive(Parser, Debug)]
#[command(name = "sriov-top", version, about = "Live SR-IOV VF observability", after_help = EXAMPLES)]
pub struct Cli {
    /// Write the event stream as NDJSON instead of opening the terminal UI.
    #[arg(long)]
    json: bool,
    /// Write to FILE instead of stdout (with --json).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Seconds between `stats` records.
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    interval: f64,
    /// Stop after this many seconds.
    #[arg(long, value_parser = parse_interval)]
    duration: Option<f64>,
    /// Size of the kernel ring buffer in bytes (a power of two, >= 4096).
    #[arg(long, value_parser = parse_ring)]
    ring_bytes: Option<u32>,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

fn parse_ring(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v >= 4096 && v.is_power_of_two() => Ok(v),
        _ => Err(format!(
            "{s:?}: the ring size must be a power of two of at least 4096 bytes"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.json {
        eprintln!(
            "sriov-top: the terminal UI is not part of this build yet; use `sriov-top --json` for the event stream, `sriov list` for the inventory"
        );
        return ExitCode::from(2);
    }
    match stream::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sriov-top: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
