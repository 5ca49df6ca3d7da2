//! The command line of `sriov-top`.
use std::path::PathBuf;

use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  sudo sriov-top                                    # terminal UI, live
  sriov-top --replay capture.ndjson                 # play a recorded stream
  sriov-top --replay capture.ndjson --speed 10      # ... ten times as fast
  sriov-top --json                                  # NDJSON events on stdout
  sriov-top --json --output /var/log/sriov.ndjson   # to a file
  sriov-top --json --interval 5 | vector --config vector.toml
  sriov-top --json --duration 30 > capture.ndjson   # 30 s, replayable
  sudo sriov-top --policy /etc/sriov/policy.toml    # enforce a policy (docs/policy.md)
  sudo sriov-top --json --policy p.toml --persist   # ... and keep it after exit
  sudo sriov policy unload                          # ... until this removes it
  kill -HUP $(pidof sriov-top)                      # reload the policy file

The terminal UI: `?` lists the keys, `q` quits. Live, it needs root for
the eBPF events; without, it shows what sysfs and rtnetlink tell (PFs, VFs,
VF counters) with a banner saying what is missing. `--json` needs root.
Hooks the running kernel cannot offer are reported as `hook_missing` events
and warnings; the rest keeps running.";

#[derive(Parser, Debug, Clone)]
#[command(name = "sriov-top", version, about = "Live SR-IOV VF observability", after_help = EXAMPLES)]
pub struct Cli {
    /// Write the event stream as NDJSON instead of opening the terminal UI.
    #[arg(long)]
    pub json: bool,
    /// Write to FILE instead of stdout (with --json).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seconds between `stats` records (and discovery scans).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Stop collecting after this many seconds.
    #[arg(long, value_parser = parse_interval)]
    pub duration: Option<f64>,
    /// Size of the kernel ring buffer in bytes (a power of two, >= 4096).
    #[arg(long, value_parser = parse_ring)]
    pub ring_bytes: Option<u32>,
    /// Attach every hook with kprobes/tracepoints, even where fentry/fexit
    /// would load (the default tries fentry/fexit first, per hook).
    #[arg(long, conflicts_with = "replay")]
    pub kprobes: bool,
    /// Show a recorded NDJSON stream (`--json` output) instead of the live
    /// system, with its original timing.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub replay: Option<PathBuf>,
    /// Replay N times as fast as recorded (N > 0; 0.5 is half speed).
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_speed, requires = "replay")]
    pub speed: f64,
    /// Enforce this policy file in the kernel (BPF LSM and TC; root, and
    /// the BPF LSM active). Checked first: a bad file exits 2 with nothing
    /// loaded. One policy at a time: refused (exit 1, nothing loaded) while
    /// another sriov-top owns one or a --persist policy is in force.
    /// Reloaded on SIGHUP and when the file changes; removed on exit unless
    /// --persist. `sriov policy check FILE` checks a file, `sriov policy
    /// status` shows the one in force.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub policy: Option<PathBuf>,
    /// Keep the policy in force after sriov-top exits (links and maps
    /// pinned under /sys/fs/bpf/sriov-top) until `sriov policy unload`.
    #[arg(long, requires = "policy")]
    pub persist: bool,
}

impl Cli {
    /// The policy to load, from `--policy` and `--persist`.
    pub fn policy_source(&self) -> Option<crate::policy::PolicySource> {
        self.policy.as_ref().map(|p| crate::policy::PolicySource {
            path: p.clone(),
            persist: self.persist,
        })
    }
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

/// A replay speed: a finite number above 0.
pub fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v <= 1e9 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed: give a number above 0 (1 = as recorded, 10 = ten times as fast)"
        )),
    }
}
