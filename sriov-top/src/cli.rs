//! The command line of `sriov-top`.
use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

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
  sudo sriov-top serve                              # the fleet agent: /metrics on :10025
  sudo sriov-top serve --listen 127.0.0.1:9925 --output events.ndjson
  sudo sriov-top serve --no-listen --textfile /var/lib/node_exporter/textfile

The terminal UI: `?` lists the keys, `q` quits. Live, it needs root for
the eBPF events; without, it shows what sysfs and rtnetlink tell (PFs, VFs,
VF counters) with a banner saying what is missing. `--json` needs root.
Hooks the running kernel cannot offer are reported as `hook_missing` events
and warnings; the rest keeps running.";

#[derive(Parser, Debug, Clone)]
#[command(name = "sriov-top", version, about = "Live SR-IOV VF observability", after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Write the event stream as NDJSON instead of opening the terminal UI.
    #[arg(long)]
    pub json: bool,
    /// Write to FILE instead of stdout (with --json); with `serve`, the
    /// NDJSON stream beside the metrics (`-`: stdout).
    #[arg(long, short, value_name = "FILE", global = true)]
    pub output: Option<PathBuf>,
    /// Seconds between `stats` records (and discovery scans).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval, global = true)]
    pub interval: f64,
    /// Stop collecting after this many seconds.
    #[arg(long, value_parser = parse_interval, global = true)]
    pub duration: Option<f64>,
    /// Size of the kernel ring buffer in bytes (a power of two, >= 4096).
    #[arg(long, value_parser = parse_ring, global = true)]
    pub ring_bytes: Option<u32>,
    /// Attach every hook with kprobes/tracepoints, even where fentry/fexit
    /// would load (the default tries fentry/fexit first, per hook).
    #[arg(long, global = true)]
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
    #[arg(long, value_name = "FILE", global = true)]
    pub policy: Option<PathBuf>,
    /// Keep the policy in force after sriov-top exits (links and maps
    /// pinned under /sys/fs/bpf/sriov-top) until `sriov policy unload`.
    #[arg(long, requires = "policy", global = true)]
    pub persist: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// The fleet agent: no UI; serves /metrics (Prometheus text or
    /// OpenMetrics) and /healthz over HTTP, optionally the NDJSON stream
    /// (--output) and a node_exporter textfile (--textfile) at the same
    /// time. Stops cleanly on SIGTERM or SIGINT. docs/agent.md.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  sudo sriov-top serve                                  # /metrics and /healthz on [::]:10025
  sudo sriov-top serve --listen 127.0.0.1:10025         # loopback only
  sudo sriov-top serve --output /var/log/sriov-top/events.ndjson   # and the stream, for a log shipper
  sudo sriov-top serve --output - | vector --config vector.toml
  sudo sriov-top serve --no-listen --textfile /var/lib/prometheus/node-exporter
  sudo sriov-top serve --user sriov-top                 # run on as that user once attached
  curl -s localhost:10025/metrics | promtool check metrics

Metric names start with sriovtop_; per-VF series carry node, pf, vf and bdf;
netdev, driver, MAC and the VF's owner (process, VM, container, pod, netns)
are labels of sriovtop_vf_info only.";

/// `sriov-top serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Serve HTTP on ADDR: `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every
    /// address).
    #[arg(long, value_name = "ADDR", default_value = "[::]:10025", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// No HTTP server (with --textfile or --output).
    #[arg(long, conflicts_with = "listen")]
    pub no_listen: bool,
    /// Write DIR/sriov-top.prom after each tick, atomically, for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// The `node` label (default: the host name).
    #[arg(long, value_name = "NAME", value_parser = parse_node)]
    pub node: Option<String>,
    /// Once the probes are attached, switch to this user, keeping only the
    /// capabilities the agent still needs (not with --policy).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Also export each VF's IRQ handler histogram (14 series a VF: at
    /// 4096 VFs, 57344 series a node). By default the histogram is per PF,
    /// over its VFs, and each VF has its total handler time.
    #[arg(long)]
    pub vf_histograms: bool,
    /// The kubelet's pod-resources socket (pod owners). Missing: a warning,
    /// and owners are found without pods.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/kubelet/pod-resources/kubelet.sock"
    )]
    pub kubelet_socket: PathBuf,
}

/// `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every address, IPv6 and IPv4).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => s.to_string(),
    };
    full.parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not an address to listen on: give HOST:PORT (127.0.0.1:10025), [IPv6]:PORT or :PORT (an IP address, not a name)")
    })
}

/// A `node` label value: printable, at most 253 bytes (a host name).
fn parse_node(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 253 || s.chars().any(|c| c.is_control()) {
        return Err(format!("{s:?} is not a node name (1 to 253 printable characters)"));
    }
    Ok(s.to_string())
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
