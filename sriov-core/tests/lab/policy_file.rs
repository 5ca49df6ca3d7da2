//! The lab's policies go through a policy file, as a user's do: each test
//! states the policy it means as a [`Policy`]; [`through_file`] writes it as
//! the TOML of docs/policy.md, reads that back with `PolicyFile::load` and
//! resolves it against the live system (selectors, cgroup ids, executable
//! inodes). What the file gives is what gets enforced, and it must be what
//! the test meant: a parser or resolver that drops or changes a rule fails
//! here, before the kernel is asked anything.
use std::{fmt::Write as _, fs, path::Path};

use sriov_core::{
    discover::discover,
    host::System,
    policy::{Allow, Mode, Policy, StormAction, VfRules, file::PolicyFile},
};

/// Where the file is written in the guest (kept for a failing test's log).
const PATH: &str = "/tmp/lab-policy.toml";

/// `pol` written as a policy file, loaded and resolved on this system.
pub(crate) fn through_file(pol: &Policy) -> Policy {
    let text = to_toml(pol);
    fs::write(PATH, &text).unwrap();
    let file = PolicyFile::load(Path::new(PATH))
        .unwrap_or_else(|e| panic!("the lab's own policy file does not parse: {e}\n{text}"));
    let inv = discover(&System::live()).unwrap();
    let got = file
        .resolve(&inv)
        .unwrap_or_else(|e| panic!("the lab's policy file does not resolve here: {e}\n{text}"));
    assert_eq!(got.mode, pol.mode, "{text}");
    let rules = |p: &Policy| -> Vec<(String, VfRules)> {
        // a VF without any rule is left alone: no section in the file
        p.vfs
            .iter()
            .filter(|v| !v.rules.is_empty())
            .map(|v| (v.bdf.clone(), v.rules.clone()))
            .collect()
    };
    assert_eq!(rules(&got), rules(pol), "the VF rules, read back\n{text}");
    let pfs = |p: &Policy| -> Vec<_> {
        p.pfs
            .iter()
            .map(|f| {
                (
                    f.bdf.clone(),
                    f.numvfs_min,
                    f.numvfs_max,
                    f.numvfs_writers.clone(),
                )
            })
            .collect()
    };
    assert_eq!(pfs(&got), pfs(pol), "the PF rules, read back\n{text}");
    got
}

/// The policy file (docs/policy.md) that says `pol`.
pub(crate) fn to_toml(pol: &Policy) -> String {
    let mut t = String::from("version = 1\n");
    let mode = match pol.mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    };
    writeln!(t, "mode = \"{mode}\"").unwrap();
    for v in pol.vfs.iter().filter(|v| !v.rules.is_empty()) {
        writeln!(t, "\n[[vf]]\nbdf = {:?}", v.bdf).unwrap();
        rules(&mut t, &v.rules);
    }
    for p in &pol.pfs {
        writeln!(t, "\n[[pf]]\ndevice = {:?}", p.bdf).unwrap();
        writeln!(
            t,
            "numvfs = {{ min = {}, max = {} }}",
            p.numvfs_min, p.numvfs_max
        )
        .unwrap();
        if let Some(w) = &p.numvfs_writers {
            writeln!(t, "numvfs_writers = {}", allow(w)).unwrap();
        }
    }
    t
}

fn rules(t: &mut String, r: &VfRules) {
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    if let Some(q) = r.dma_quota_bytes {
        writeln!(t, "dma_quota_bytes = {q}").unwrap();
    }
    if let Some(a) = &r.vfio_open {
        writeln!(t, "vfio_open = {}", allow(a)).unwrap();
    }
    if let Some(d) = &r.allowed_drivers {
        let d = d.iter().map(|s| format!("{s:?}")).collect();
        writeln!(t, "allowed_drivers = {}", list(d)).unwrap();
    }
    if let Some(m) = &r.allowed_src_macs {
        let m = m.iter().map(|m| format!("\"{m}\"")).collect();
        writeln!(t, "allowed_src_macs = {}", list(m)).unwrap();
    }
    if let Some(v) = &r.allowed_vlans {
        let v = v.iter().map(u16::to_string).collect();
        writeln!(t, "allowed_vlans = {}", list(v)).unwrap();
    }
    if let Some(p) = r.max_pps {
        writeln!(t, "max_pps = {p}").unwrap();
    }
    if let Some(s) = r.irq_storm_per_s {
        writeln!(t, "irq_storm_per_s = {s}").unwrap();
        let action = match r.irq_storm_action {
            StormAction::Alert => "alert",
            StormAction::LinkDown => "link_down",
        };
        writeln!(t, "irq_storm_action = \"{action}\"").unwrap();
    }
}

/// `{ uids = [...], cgroups = [...], executables = [...] }`; the ids are
/// the resolver's to find.
fn allow(a: &Allow) -> String {
    let mut parts = Vec::new();
    if !a.uids.is_empty() {
        let u: Vec<String> = a.uids.iter().map(u32::to_string).collect();
        parts.push(format!("uids = [{}]", u.join(", ")));
    }
    let paths = |ps: &[std::path::PathBuf]| -> String {
        ps.iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !a.cgroups.is_empty() {
        parts.push(format!("cgroups = [{}]", paths(&a.cgroups)));
    }
    if !a.executables.is_empty() {
        parts.push(format!("executables = [{}]", paths(&a.executables)));
    }
    format!("{{ {} }}", parts.join(", "))
}
