//! `sriov policy ...`: the per-VF policy (docs/policy.md). `check`: read a
//! file, resolve it against this system, and say what it means for each VF
//! and PF, changing nothing. `status`: what is in force (owner record and
//! pinned maps). `unload`: remove a `--persist` policy.
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use sriov_core::{
    discover::{self, Inventory},
    host::Host,
    policy::{
        Allow, PfPolicy, Policy, StormAction, VfPolicy,
        file::{PolicyError, PolicyFile, human_bytes},
        instance::{Paths, State},
        pinned::{self, Status, Unloaded, VfUsage},
    },
};

pub const POLICY_HELP: &str = "\
File format: docs/policy.md

Examples:
  sriov policy check /etc/sriov-policy.toml          # the rules of every VF and PF
  sriov policy check /etc/sriov-policy.toml --json   # the resolved policy, as JSON
  sudo sriov policy status                           # what is in force, per VF
  sudo sriov policy unload                           # remove a --persist policy";

pub const STATUS_HELP: &str = "\
Shows the policy in force: its file, its mode (from the kernel map), who owns
it (the sriov-top pid, running or not, --persist or not), and per VF the DMA
quota and the bytes mapped now, the frames dropped (source MAC, VLAN, rate)
and passed, and the violations since the load by rule. Read from the owner
record (/run/sriov-top/policy.json) and the pinned maps
(/sys/fs/bpf/sriov-top): needs root.

Exit status: 0 (also when no policy is in force: `no policy in force`),
1 the state cannot be read (without root: the pins are root's).

Examples:
  sudo sriov policy status
  sudo sriov policy status --json | jq '.vfs[] | {bdf, dma_used_bytes}'";

pub const UNLOAD_HELP: &str = "\
Removes a policy that outlived its sriov-top (`sriov-top --policy FILE
--persist`): switches it off in the kernel first (the programs let everything
through at once), then removes its pins (the LSM links: the programs are
detached; the maps) and the owner record. Refused while a running sriov-top
owns the policy: stop that one (kill -TERM PID; it removes its policy unless
it runs with --persist). Also removes the pins a crashed sriov-top left.

Exit status: 0 (also when nothing is loaded: `no policy in force`), 1 refused
(a running owner) or failed (without root: the pins are root's).

Examples:
  sudo sriov policy unload
  sudo sriov policy status && sudo sriov policy unload";

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
    /// Show the policy in force: file, mode, owner, per-VF DMA and frame counts, violations.
    #[command(after_help = STATUS_HELP)]
    Status {
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a --persist policy (mode off, then its pins and owner record).
    #[command(after_help = UNLOAD_HELP)]
    Unload,
}

pub fn run(host: &dyn Host, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Check { file, json } => check(host, &file, json),
        PolicyCmd::Status { json } => status(json),
        PolicyCmd::Unload => unload(),
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
    for n in policy.limits() {
        eprintln!("note: {n}");
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

fn status(json: bool) -> Result<()> {
    let st = pinned::status(&Paths::system())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        print!("{}", status_text(&st, now_unix()));
    }
    Ok(())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `1h 2m 3s`.
fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// The owner line: who loaded it, running or not.
fn owner_line(st: &Status, now: u64) -> String {
    let Some(o) = &st.owner else {
        return "owner: unknown (no owner record)".to_owned();
    };
    let since = format!(
        "loaded {} ago",
        duration(now.saturating_sub(o.started_unix))
    );
    match (o.alive, st.persisted) {
        (true, true) => format!(
            "owner: sriov-top pid {} (running, --persist: stays in force after it exits), {since}",
            o.pid
        ),
        (true, false) => format!(
            "owner: sriov-top pid {} (running; removed when it exits), {since}",
            o.pid
        ),
        (false, _) => format!(
            "owner: sriov-top pid {} (exited; persisted with --persist: `sriov policy unload` removes it), {since}",
            o.pid
        ),
    }
}

/// The text `status` prints.
fn status_text(st: &Status, now: u64) -> String {
    let pid = st.owner.as_ref().map(|o| o.pid);
    match st.state {
        State::None => return "no policy in force\n".to_owned(),
        State::Stale => {
            return format!(
                "no policy in force (stale pins of a stopped sriov-top{} under {}: the next load or \
                 `sriov policy unload` removes them)\n",
                pid.map(|p| format!(" pid {p}")).unwrap_or_default(),
                st.pin_dir.display()
            );
        }
        State::Running | State::Persisted => {}
    }
    let mut out = String::new();
    let file = st.file.as_ref().map(|f| f.display().to_string());
    out.push_str(&format!(
        "policy: {}\n",
        file.as_deref().unwrap_or("unknown")
    ));
    let mode = match st.mode {
        Some("enforce") => "enforce (violations are denied and reported)",
        Some("audit") => "audit (violations are reported only)",
        Some("off") => "off (everything passes)",
        Some(m) => m,
        None => "unknown (its owner has not pinned the maps yet)",
    };
    out.push_str(&format!("mode: {mode}\n"));
    out.push_str(&owner_line(st, now));
    out.push('\n');
    out.push_str(&format!("pins: {}\n", st.pin_dir.display()));
    out.push_str(&vf_table(&st.vfs));
    let v: Vec<String> = st
        .violations
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect();
    out.push_str(&format!(
        "violations: {}\n",
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    ));
    out
}

/// One row per VF: quota, bytes mapped, frames dropped and passed.
fn vf_table(vfs: &[VfUsage]) -> String {
    if vfs.is_empty() {
        return "VFs: none\n".to_owned();
    }
    let mut out = format!(
        "{:<14} {:>10} {:>10} {:>12} {:>12} {:>12} {:>10}\n",
        "VF", "DMA QUOTA", "DMA USED", "DROP SRCMAC", "DROP VLAN", "DROP RATE", "PASSED"
    );
    for v in vfs {
        let quota = v
            .dma_quota_bytes
            .map_or_else(|| "-".to_owned(), human_bytes);
        out.push_str(&format!(
            "{:<14} {:>10} {:>10} {:>12} {:>12} {:>12} {:>10}\n",
            v.bdf,
            quota,
            human_bytes(v.dma_used_bytes),
            v.dropped_src_mac,
            v.dropped_vlan,
            v.dropped_rate,
            v.passed
        ));
    }
    out
}

fn unload() -> Result<()> {
    let paths = Paths::system();
    match pinned::unload(&paths)? {
        Unloaded::Nothing => println!("no policy in force: nothing to unload"),
        Unloaded::Removed {
            record,
            was_in_force: true,
            ..
        } => println!(
            "unloaded the policy {}: switched off, LSM links unpinned (its programs are detached), pins removed from {}",
            record.map_or_else(
                || "(no owner record)".to_owned(),
                |r| r.file.display().to_string()
            ),
            paths.pin_dir.display()
        ),
        Unloaded::Removed { record, .. } => println!(
            "no policy was in force; removed the stale pins of a stopped sriov-top{} from {}",
            record
                .map(|r| format!(" (pid {})", r.pid))
                .unwrap_or_default(),
            paths.pin_dir.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
