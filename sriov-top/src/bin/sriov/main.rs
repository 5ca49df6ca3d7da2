//! `sriov`: SR-IOV PF/VF inventory and configuration, in iproute2's words.
mod configure;
mod datapath;
mod policy;
mod render;
mod vfargs;
mod waterfall;

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{CommandFactory as _, Parser, Subcommand};
use sriov_core::host::{Host, System};

const EXAMPLES: &str = "\
Examples:
  sriov list                                    # every SR-IOV PF and its VFs
  sriov show eth0 --json                        # one PF (by netdev or BDF), as JSON
  sriov set eth0 numvfs 4                       # create 4 VFs (goes through 0 if needed)
  sriov vf set eth0 1 mac 02:00:00:00:00:01 vlan 10 qos 3 spoofchk off
  sriov vf bind eth0 3 vfio-pci                 # hand VF 3 to VFIO
  sriov vf bind eth0 3 igbvf                    # and back to the kernel driver
  sriov vf pktgen eth0 3 --dst 02:00:00:00:00:01 --count 1000 --size 60   # VF 3 in user space (vfio-pci)
  sriov vf rxdump eth0 3 --count 10             # print what VF 3 receives
  sriov plan /etc/sriov.toml                    # what apply would change
  sriov apply /etc/sriov.toml                   # apply, with rollback on failure
  sriov policy check /etc/sriov-policy.toml     # check a per-VF policy file against this system
  sriov completions bash > /etc/bash_completion.d/sriov

Exit status: 0 ok, 1 the system refused or failed (rolled back), 2 bad input (nothing changed).";

#[derive(Parser)]
#[command(name = "sriov", version, about = "SR-IOV PF/VF inventory and configuration", after_help = EXAMPLES)]
struct Cli {
    /// Read sysfs from a fixture tree instead of /sys (no rtnetlink then).
    #[arg(long, global = true, value_name = "DIR")]
    sysfs_root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every SR-IOV PF with its VFs.
    #[command(visible_alias = "ls")]
    List {
        /// JSON (schema sriov-top.discovery/v1, see docs/discovery.md).
        #[arg(long)]
        json: bool,
    },
    /// Show one PF (named by BDF, netdev, or one of its VFs).
    Show {
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a PF setting: `sriov set DEV numvfs N`.
    #[command(
        after_help = "Example:\n  sriov set eth0 numvfs 4\n  sriov set 0000:01:00.0 numvfs 0\n  sriov set eth0 numvfs 7 --waterfall   # and where the time went (root, eBPF)"
    )]
    Set {
        device: String,
        /// Only `numvfs` for now.
        #[arg(value_parser = ["numvfs"])]
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Load sriov-top's probes around the change and print where the
        /// time of the write went, phase by phase (needs root, BTF, kprobes).
        #[arg(long)]
        waterfall: bool,
    },
    /// VF commands.
    Vf {
        #[command(subcommand)]
        cmd: VfCmd,
    },
    /// Show what `apply FILE` would change (nothing is written).
    #[command(after_help = "File format: docs/config.md")]
    Plan {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// Plan a VF driver re-probe after MAC changes.
        #[arg(long)]
        reprobe: bool,
    },
    /// Make the system match FILE; roll everything back if a step fails.
    #[command(after_help = "File format: docs/config.md")]
    Apply {
        file: PathBuf,
        /// Re-probe a VF's kernel driver after its MAC changed (igb asks for it).
        #[arg(long)]
        reprobe: bool,
        /// Also write the step journal (JSON) to this file.
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per-VF policy files (docs/policy.md).
    #[command(after_help = policy::POLICY_HELP)]
    Policy {
        #[command(subcommand)]
        cmd: policy::PolicyCmd,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum VfCmd {
    /// Set VF attributes: `sriov vf set DEV N KEY VALUE [KEY VALUE]...`
    #[command(after_help = vfargs::HELP)]
    Set {
        device: String,
        #[arg(allow_hyphen_values = true)]
        vf: String,
        /// KEY VALUE pairs: mac, vlan, qos, spoofchk, trust, state, min-tx-rate, max-tx-rate.
        #[arg(num_args = 1.., required = true, allow_hyphen_values = true)]
        settings: Vec<String>,
        /// Re-probe the VF's driver after a MAC change (igb asks for it).
        #[arg(long)]
        reprobe: bool,
    },
    /// Bind a VF to a driver (driver_override, unbind, probe).
    #[command(
        after_help = "Examples:\n  sriov vf bind eth0 3 vfio-pci\n  sriov vf bind eth0 3 igbvf"
    )]
    Bind {
        device: String,
        vf: String,
        driver: String,
    },
    /// Send test frames from a VF driven in user space (VFIO).
    #[command(after_help = datapath::PKTGEN_HELP)]
    Pktgen {
        #[command(flatten)]
        common: datapath::Common,
        /// Destination MAC (unicast, multicast or broadcast).
        #[arg(long, value_name = "MAC", allow_hyphen_values = true)]
        dst: String,
        /// Frames to send.
        #[arg(long, value_name = "C", allow_hyphen_values = true)]
        count: String,
        /// Frame size in bytes, 60 to 1514 (FCS excluded).
        #[arg(long, value_name = "S", allow_hyphen_values = true)]
        size: String,
        /// Frames per second (default: as fast as possible).
        #[arg(long, value_name = "PPS", allow_hyphen_values = true)]
        rate: Option<String>,
    },
    /// Send every frame a VF receives back to its sender (VFIO, user space).
    #[command(after_help = datapath::ECHO_HELP)]
    Echo {
        #[command(flatten)]
        rx: datapath::Receive,
    },
    /// Print the frames a VF receives (VFIO, user space).
    #[command(after_help = datapath::RXDUMP_HELP)]
    Rxdump {
        #[command(flatten)]
        rx: datapath::Receive,
    },
}

/// An error caused by the user's input: exit status 2, nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn host(root: &Option<PathBuf>) -> Result<Box<dyn Host>> {
    Ok(match root {
        Some(r) => {
            if !r.join("sys/bus/pci/devices").is_dir() {
                return Err(BadInput(format!(
                    "--sysfs-root {}: no sys/bus/pci/devices below it (expected a sysfs fixture tree)",
                    r.display()
                ))
                .into());
            }
            Box::new(System::fixture(r))
        }
        None => Box::new(System::live()),
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sriov", &mut std::io::stdout());
            Ok(())
        }
        Cmd::List { json } => render::list(&*host(&cli.sysfs_root)?, None, json),
        Cmd::Show { device, json } => render::list(&*host(&cli.sysfs_root)?, Some(&device), json),
        Cmd::Set {
            device,
            value,
            waterfall,
            ..
        } => configure::set_numvfs(&*host(&cli.sysfs_root)?, &device, &value, waterfall),
        Cmd::Vf {
            cmd:
                VfCmd::Set {
                    device,
                    vf,
                    settings,
                    reprobe,
                },
        } => {
            // `--reprobe` may also come after the settings
            let reprobe = reprobe || settings.iter().any(|s| s == "--reprobe");
            let attrs = vfargs::parse(&settings)?;
            let vf = vfargs::parse_index(&vf)?;
            configure::vf_set(&*host(&cli.sysfs_root)?, &device, vf, &attrs, reprobe)
        }
        Cmd::Vf {
            cmd: VfCmd::Bind { device, vf, driver },
        } => {
            let vf = vfargs::parse_index(&vf)?;
            sriov_core::types::parse_driver(&driver)?;
            configure::vf_bind(&*host(&cli.sysfs_root)?, &device, vf, &driver)
        }
        Cmd::Vf {
            cmd:
                VfCmd::Pktgen {
                    common,
                    dst,
                    count,
                    size,
                    rate,
                },
        } => datapath::pktgen(
            &*host(&cli.sysfs_root)?,
            cli.sysfs_root.is_some(),
            &common,
            &dst,
            &count,
            &size,
            rate.as_deref(),
        ),
        Cmd::Vf {
            cmd: VfCmd::Echo { rx },
        } => datapath::echo(&*host(&cli.sysfs_root)?, cli.sysfs_root.is_some(), &rx),
        Cmd::Vf {
            cmd: VfCmd::Rxdump { rx },
        } => datapath::rxdump(&*host(&cli.sysfs_root)?, cli.sysfs_root.is_some(), &rx),
        Cmd::Policy { cmd } => policy::run(&*host(&cli.sysfs_root)?, cmd),
        Cmd::Plan {
            file,
            json,
            reprobe,
        } => configure::plan(&*host(&cli.sysfs_root)?, &file, json, reprobe),
        Cmd::Apply {
            file,
            reprobe,
            journal,
            json,
        } => configure::apply(
            &*host(&cli.sysfs_root)?,
            &file,
            reprobe,
            journal.as_deref(),
            json,
        ),
    }
}

/// Exit status 2 for input errors (ours or the library's), 1 otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<BadInput>()
            || cause.is::<sriov_core::config::ConfigError>()
            || cause.is::<sriov_core::policy::file::PolicyError>()
            || cause.is::<sriov_core::types::InvalidValue>()
        {
            return 2;
        }
        if let Some(core) = cause.downcast_ref::<sriov_core::Error>() {
            return if core.is_bad_input() { 2 } else { 1 };
        }
        if let Some(a) = cause.downcast_ref::<sriov_core::apply::ApplyError>() {
            return if a.index == 0 && a.source.is_bad_input() {
                2
            } else {
                1
            };
        }
    }
    1
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let color = std::io::stderr().is_terminal();
            let prefix = if color {
                "\x1b[1;31merror:\x1b[0m"
            } else {
                "error:"
            };
            eprintln!("{prefix} {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
