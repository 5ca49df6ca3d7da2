//! `sriov policy ...`: the per-VF policy file (docs/policy.md). For now
//! `check`: read the file, resolve it against this system, and say what it
//! means for each VF and PF, changing nothing.
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use sriov_core::{
    discover::{self, Inventory},
    host::Host,
    policy::{
        Allow, PfPolicy, Policy, StormAction, VfPolicy,
        file::{PolicyError, PolicyFile, human_bytes},
    },
};

pub const POLICY_HELP: &str = "\
File format: docs/policy.md

Examples:
  sriov policy check /etc/sriov-policy.toml          # the rules of every VF and PF
  sriov policy check /etc/sriov-policy.toml --json   # the resolved policy, as JSON";

pub const CHECK_HELP: &str = "\
Reads FILE, matches its [[vf]] and [[pf]] sections against the PFs and VFs of
this system (--sysfs-root DIR: of a fixture tree), looks up its cgroup
directories, and prints the mode, one line per VF with rules, one per [[pf]]
rule, and `policy OK: N VFs, M PFs`. Nothing is changed.

A malformed file, a bad value or a selector that matches nothing is reported
with the file, line, column, field and the allowed values (exit status 2).

File format: docs/policy.md

Examples:
  sriov policy check policy.toml
  sriov policy check policy.toml --json | jq '.vfs[] | {bdf, rules}'
  sriov --sysfs-root ./fixture policy check policy.toml";

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Check a policy file against this system and print what it sets (nothing is changed).
    #[command(after_help = CHECK_HELP)]
    Check {
        /// The policy file (TOML, docs/policy.md).
        file: PathBuf,
        /// Print the resolved policy as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(host: &dyn Host, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Check { file, json } => check(host, &file, json),
    }
}

/// A policy error with the file it is about (an I/O error names it already).
fn in_file(file: &Path, e: PolicyError) -> anyhow::Error {
    match e {
        PolicyError::Io { .. } => e.into(),
        _ => anyhow::Error::new(e).context(file.display().to_string()),
    }
}

fn check(host: &dyn Host, file: &Path, json: bool) -> Result<()> {
    let parsed = PolicyFile::load(file).map_err(|e| in_file(file, e))?;
    let inv = discover::discover(host)?;
    let policy = parsed.resolve(&inv).map_err(|e| in_file(file, e))?;
    if inv.netlink != "ok" {
        eprintln!("note: rtnetlink {}", inv.netlink);
    }
    for w in &inv.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&policy)?);
    } else {
        print!("{}", summary(&policy, &inv));
    }
    Ok(())
}

/// The text `check` prints.
fn summary(policy: &Policy, inv: &Inventory) -> String {
    let mut out = format!(
        "mode: {}\n",
        match policy.mode {
            sriov_core::policy::Mode::Enforce => "enforce (violations are denied and reported)",
            sriov_core::policy::Mode::Audit => "audit (violations are reported only)",
        }
    );
    for vf in &policy.vfs {
        out.push_str(&vf_line(vf));
        out.push('\n');
    }
    for pf in &policy.pfs {
        out.push_str(&pf_line(pf, inv));
        out.push('\n');
    }
    out.push_str(&format!(
        "policy OK: {} VFs, {} PFs\n",
        policy.vfs.len(),
        policy.pfs.len()
    ));
    out
}

/// `[a,b,c]`.
fn list<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(","))
}

/// `uids [0] cgroups [/sys/fs/cgroup/vms] executables [qemu]`, or `nobody`.
fn allow(a: &Allow) -> String {
    let mut parts = Vec::new();
    if !a.uids.is_empty() {
        parts.push(format!("uids {}", list(&a.uids)));
    }
    if !a.cgroups.is_empty() {
        let paths: Vec<_> = a.cgroups.iter().map(|p| p.display()).collect();
        parts.push(format!("cgroups {}", list(&paths)));
    }
    if !a.executables.is_empty() {
        let paths: Vec<_> = a.executables.iter().map(|p| p.display()).collect();
        parts.push(format!("executables {}", list(&paths)));
    }
    if parts.is_empty() {
        "nobody".to_owned()
    } else {
        parts.join(" ")
    }
}

/// `0000:01:10.2 (eth0 vf 1): dma_quota 1.0 MiB, vfio_open uids [0], ...`.
fn vf_line(vf: &VfPolicy) -> String {
    let r = &vf.rules;
    let mut rules = Vec::new();
    if let Some(q) = r.dma_quota_bytes {
        rules.push(format!("dma_quota {}", human_bytes(q)));
    }
    if let Some(a) = &r.vfio_open {
        rules.push(format!("vfio_open {}", allow(a)));
    }
    if let Some(d) = &r.allowed_drivers {
        rules.push(format!("drivers {}", list(d)));
    }
    if let Some(m) = &r.allowed_src_macs {
        rules.push(format!("src_macs {}", m.len()));
    }
    if let Some(v) = &r.allowed_vlans {
        rules.push(format!("vlans {}", list(v)));
    }
    if let Some(p) = r.max_pps {
        rules.push(format!("max_pps {p}"));
    }
    if let Some(n) = r.irq_storm_per_s {
        let action = match r.irq_storm_action {
            StormAction::Alert => "alert",
            StormAction::LinkDown => "link_down",
        };
        rules.push(format!("irq_storm {n}/s {action}"));
    }
    format!(
        "{} ({} vf {}): {}",
        vf.bdf,
        vf.pf_netdev.as_deref().unwrap_or(&vf.pf_bdf),
        vf.index,
        rules.join(", ")
    )
}

/// `0000:01:00.0 (eth0): numvfs 0..=4 (now 2), writers uids [0]`.
fn pf_line(pf: &PfPolicy, inv: &Inventory) -> String {
    let name = match &pf.netdev {
        Some(n) => format!("{} ({n})", pf.bdf),
        None => pf.bdf.clone(),
    };
    let now = match inv.pfs.iter().find(|p| p.bdf == pf.bdf) {
        Some(p) if (pf.numvfs_min..=pf.numvfs_max).contains(&p.num_vfs) => {
            format!(" (now {})", p.num_vfs)
        }
        Some(p) => format!(" (now {}: outside the range)", p.num_vfs),
        None => String::new(),
    };
    let writers = pf
        .numvfs_writers
        .as_ref()
        .map_or_else(|| "anyone the kernel lets".to_owned(), allow);
    format!(
        "{name}: numvfs {}..={}{now}, writers {writers}",
        pf.numvfs_min, pf.numvfs_max
    )
}
