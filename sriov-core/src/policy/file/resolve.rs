//! [`PolicyFile`] + [`Inventory`] -> [`Policy`]: selectors matched against
//! the discovered PFs and VFs, cgroup paths turned into cgroup ids,
//! `[defaults]` merged with the `[[vf]]` sections.
use std::{collections::HashMap, os::unix::fs::MetadataExt as _};

use std::path::PathBuf;

use super::{AllowSpec, At, PfSection, PolicyError, PolicyFile, Rules, Selector, Spot};
use crate::{
    discover::{Inventory, Pf, Target},
    policy::{Allow, PfPolicy, Policy, VfPolicy, VfRules},
    types::{Bdf, MacAddr},
};

/// At most this many devices are listed in a "must be one of" text.
const LIST_MAX: usize = 16;

impl PolicyFile {
    /// Match the file against a discovered system.
    ///
    /// Every VF of every PF in `inv` gets the `[defaults]` rules, then those
    /// of each `[[vf]]` section that selects it, in file order: a later
    /// section overrides an earlier one (and the defaults) for the keys it
    /// sets; `vfio_open` is replaced as a whole. [`Policy::vfs`] lists the
    /// VFs that end up with at least one rule, by PF address then VF index;
    /// [`Policy::pfs`] the `[[pf]]` sections, by PF address. Cgroup
    /// directories are looked up on this machine (not below a fixture
    /// root).
    ///
    /// # Errors
    ///
    /// [`PolicyError::NotFound`] for a selector or device that matches
    /// nothing in `inv` (the message lists what exists), `numvfs` above the
    /// PF's `sriov_totalvfs`, or a cgroup directory that does not exist;
    /// [`PolicyError::Invalid`] for a MAC selector that matches several VFs
    /// or an `irq_storm_action` that ends up without an `irq_storm_per_s`;
    /// [`PolicyError::Duplicate`] for two `[[pf]]` sections that name the
    /// same PF in different ways.
    pub fn resolve(&self, inv: &Inventory) -> Result<Policy, PolicyError> {
        let defaults = resolve_rules(&self.defaults)?;
        let sections = self
            .vfs
            .iter()
            .map(|s| resolve_rules(&s.rules))
            .collect::<Result<Vec<_>, _>>()?;
        // (PF position, VF position) -> the sections that select it, in order
        let mut matched: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (s, section) in self.vfs.iter().enumerate() {
            for vf in select(inv, &section.selector)? {
                matched.entry(vf).or_default().push(s);
            }
        }

        let mut vfs = Vec::new();
        for (p, pf) in inv.pfs.iter().enumerate() {
            for (v, vf) in pf.vfs.iter().enumerate() {
                let mut rules = defaults.clone();
                // the [[vf]] irq_storm_action that won, if any
                let mut action: Option<&Spot> = None;
                for &s in matched.get(&(p, v)).into_iter().flatten() {
                    let from = &self.vfs[s].rules;
                    overlay(&mut rules, &sections[s], from);
                    if let Some(a) = &from.irq_storm_action {
                        action = Some(&a.spot);
                    }
                }
                if let Some(spot) = action
                    && rules.irq_storm_per_s.is_none()
                {
                    return Err(PolicyError::Invalid {
                        at: spot.at,
                        field: spot.field.clone(),
                        value: spot.value.clone(),
                        problem: Some(format!(
                            "{} gets no irq_storm_per_s from this [[vf]], an earlier one or [defaults]",
                            vf_name(pf, vf.index, &vf.bdf)
                        )),
                        allowed: "set together with irq_storm_per_s (the rate it acts on)"
                            .to_owned(),
                    });
                }
                if rules.is_empty() {
                    continue;
                }
                vfs.push(VfPolicy {
                    pf_bdf: pf.bdf.clone(),
                    pf_netdev: pf.netdev.clone(),
                    index: vf.index,
                    bdf: vf.bdf.clone(),
                    netdev: vf.netdev.clone(),
                    iommu_group: vf.iommu_group,
                    // all zeros: the PF driver has no MAC set for the VF
                    mac: vf
                        .config
                        .as_ref()
                        .and_then(|c| c.mac)
                        .filter(|m| !m.is_zero()),
                    rules,
                });
            }
        }
        vfs.sort_by_key(|v| (bdf_key(&v.pf_bdf), v.index));

        // PF address -> line of the [[pf]] that names it
        let mut seen = HashMap::new();
        let mut pfs = Vec::with_capacity(self.pfs.len());
        for section in &self.pfs {
            let pf = &inv.pfs[find_pf(inv, &section.device.value, &section.device.spot)?];
            if let Some(&first_line) = seen.get(&pf.bdf) {
                let spot = &section.device.spot;
                return Err(PolicyError::Duplicate {
                    at: spot.at,
                    field: spot.field.clone(),
                    value: spot.value.clone(),
                    table: "[[pf]]",
                    first_line,
                    allowed: "unique among the [[pf]] sections (a PCI address and a netdev name of the same PF count as the same)",
                });
            }
            seen.insert(pf.bdf.clone(), section.line);
            pfs.push(resolve_pf(pf, section)?);
        }
        pfs.sort_by_key(|p| bdf_key(&p.bdf));

        Ok(Policy {
            mode: self.mode,
            vfs,
            pfs,
        })
    }
}

/// Sort key of a PCI address string (parsed when it parses).
fn bdf_key(s: &str) -> (Option<Bdf>, String) {
    (s.parse().ok(), s.to_owned())
}

/// One table's rules, with cgroup ids looked up.
fn resolve_rules(r: &Rules) -> Result<VfRules, PolicyError> {
    Ok(VfRules {
        dma_quota_bytes: r.dma_quota_bytes,
        vfio_open: r.vfio_open.as_ref().map(resolve_allow).transpose()?,
        allowed_drivers: r.allowed_drivers.clone(),
        allowed_src_macs: r.allowed_src_macs.clone(),
        allowed_vlans: r.allowed_vlans.clone(),
        max_pps: r.max_pps,
        irq_storm_per_s: r.irq_storm_per_s,
        irq_storm_action: r
            .irq_storm_action
            .as_ref()
            .map(|a| a.value)
            .unwrap_or_default(),
    })
}

/// The keys `from` (resolved: `resolved`) sets, over `into`.
fn overlay(into: &mut VfRules, resolved: &VfRules, from: &Rules) {
    fn set<T: Clone>(into: &mut Option<T>, from: &Option<T>) {
        if from.is_some() {
            into.clone_from(from);
        }
    }
    set(&mut into.dma_quota_bytes, &resolved.dma_quota_bytes);
    set(&mut into.vfio_open, &resolved.vfio_open);
    set(&mut into.allowed_drivers, &resolved.allowed_drivers);
    set(&mut into.allowed_src_macs, &resolved.allowed_src_macs);
    set(&mut into.allowed_vlans, &resolved.allowed_vlans);
    set(&mut into.max_pps, &resolved.max_pps);
    set(&mut into.irq_storm_per_s, &resolved.irq_storm_per_s);
    if from.irq_storm_action.is_some() {
        into.irq_storm_action = resolved.irq_storm_action;
    }
}

/// The path of `at` looked up: its metadata, or a `NotFound` naming the
/// field and what it must be.
fn look_up(at: &At<PathBuf>, allowed: &str) -> Result<std::fs::Metadata, PolicyError> {
    std::fs::metadata(&at.value).map_err(|e| PolicyError::NotFound {
        at: at.spot.at,
        field: at.spot.field.clone(),
        value: at.spot.value.clone(),
        problem: format!("cannot look it up: {e}"),
        allowed: allowed.to_owned(),
    })
}

fn not_a(at: &At<PathBuf>, problem: &str, allowed: &str) -> PolicyError {
    PolicyError::NotFound {
        at: at.spot.at,
        field: at.spot.field.clone(),
        value: at.spot.value.clone(),
        problem: problem.to_owned(),
        allowed: allowed.to_owned(),
    }
}

/// An [`Allow`] with each cgroup directory's inode number as its id and
/// each executable's (inode, device).
fn resolve_allow(a: &AllowSpec) -> Result<Allow, PolicyError> {
    const CGROUP: &str =
        "an existing cgroup v2 directory on this machine (its inode number is the cgroup id)";
    const EXE: &str = "an existing executable file on this machine (matched by inode and device)";
    let mut cgroup_ids = Vec::with_capacity(a.cgroups.len());
    for cg in &a.cgroups {
        let meta = look_up(cg, CGROUP)?;
        if !meta.is_dir() {
            return Err(not_a(cg, "not a directory", CGROUP));
        }
        cgroup_ids.push(meta.ino());
    }
    let mut exe_ids = Vec::with_capacity(a.executables.len());
    for exe in &a.executables {
        let meta = look_up(exe, EXE)?;
        if !meta.is_file() || meta.mode() & 0o111 == 0 {
            return Err(not_a(exe, "not an executable file", EXE));
        }
        exe_ids.push((meta.ino(), crate::policy::kernel_dev(meta.dev())));
    }
    Ok(Allow {
        uids: a.uids.clone(),
        cgroups: a.cgroups.iter().map(|c| c.value.clone()).collect(),
        cgroup_ids,
        executables: a.executables.iter().map(|e| e.value.clone()).collect(),
        exe_ids,
    })
}

/// The `[[pf]]` rules against its PF.
fn resolve_pf(pf: &Pf, section: &PfSection) -> Result<PfPolicy, PolicyError> {
    let total = pf.total_vfs;
    let too_many = |spot: &Spot, n: u32| PolicyError::NotFound {
        at: spot.at,
        field: spot.field.clone(),
        value: spot.value.clone(),
        problem: format!("{n} is above sriov_totalvfs = {total} of {}", pf_name(pf)),
        allowed: format!("an integer from 0 to {total}"),
    };
    let (min, max) = match &section.numvfs {
        None => (None, None),
        Some(n) => (n.min.as_ref(), n.max.as_ref()),
    };
    for bound in [max, min].into_iter().flatten() {
        if bound.value > total {
            return Err(too_many(&bound.spot, bound.value));
        }
    }
    Ok(PfPolicy {
        bdf: pf.bdf.clone(),
        netdev: pf.netdev.clone(),
        numvfs_min: min.map_or(0, |m| m.value),
        numvfs_max: max.map_or(total, |m| m.value),
        numvfs_writers: section.writers.as_ref().map(resolve_allow).transpose()?,
    })
}

/// `0000:01:00.0 (eth0)`.
fn pf_name(pf: &Pf) -> String {
    match &pf.netdev {
        Some(n) => format!("{} ({n})", pf.bdf),
        None => pf.bdf.clone(),
    }
}

/// `0000:01:10.2 (eth0 vf 1)`.
fn vf_name(pf: &Pf, index: u32, bdf: &str) -> String {
    format!(
        "{bdf} ({} vf {index})",
        pf.netdev.as_deref().unwrap_or(&pf.bdf)
    )
}

/// Up to [`LIST_MAX`] items, comma separated, with the count beyond.
fn listing(items: Vec<String>) -> String {
    let n = items.len();
    let mut s = items
        .into_iter()
        .take(LIST_MAX)
        .collect::<Vec<_>>()
        .join(", ");
    if n > LIST_MAX {
        s.push_str(&format!(", ... ({n} in all)"));
    }
    s
}

fn not_found(spot: &Spot, problem: String, allowed: String) -> PolicyError {
    PolicyError::NotFound {
        at: spot.at,
        field: spot.field.clone(),
        value: spot.value.clone(),
        problem,
        allowed,
    }
}

/// The PF a `pf` selector or `device` names.
fn find_pf(inv: &Inventory, name: &str, spot: &Spot) -> Result<usize, PolicyError> {
    let allowed = || format!("an SR-IOV PF{}", inv.known_pfs_hint());
    match inv.resolve(name) {
        Some(Target::Pf(p)) => Ok(p),
        Some(Target::Vf(p, v)) => {
            let pf = &inv.pfs[p];
            let vf = &pf.vfs[v];
            let problem = format!(
                "{name} is a VF ({}), not a PF",
                vf_name(pf, vf.index, &vf.bdf)
            );
            Err(not_found(spot, problem, allowed()))
        }
        None => Err(not_found(
            spot,
            format!("no SR-IOV PF is named {name}"),
            allowed(),
        )),
    }
}

/// The VFs (PF position, VF position) a selector selects: exactly one.
fn select(inv: &Inventory, selector: &Selector) -> Result<Vec<(usize, usize)>, PolicyError> {
    match selector {
        Selector::Index { pf, index } => {
            let p = find_pf(inv, &pf.value, &pf.spot)?;
            let pf_ = &inv.pfs[p];
            let i = index.value;
            if let Some(v) = pf_.vfs.iter().position(|vf| vf.index == i) {
                return Ok(vec![(p, v)]);
            }
            let name = pf_name(pf_);
            let n = pf_.num_vfs;
            let (problem, allowed) = if i >= n {
                (
                    format!("{name} has no VF {i} (sriov_numvfs = {n})"),
                    match n.checked_sub(1) {
                        Some(last) => format!("an integer from 0 to {last}"),
                        None => format!(
                            "below sriov_numvfs, which is 0 (create VFs first: sriov set {} numvfs N)",
                            pf_.netdev.as_deref().unwrap_or(&pf_.bdf)
                        ),
                    },
                )
            } else {
                (
                    format!("VF {i} of {name} was not found (it vanished during the scan)"),
                    format!(
                        "the index of a VF of {name}: {}",
                        listing(pf_.vfs.iter().map(|v| v.index.to_string()).collect())
                    ),
                )
            };
            Err(not_found(&index.spot, problem, allowed))
        }
        Selector::Bdf(bdf) => {
            let want = bdf.value.to_string();
            for (p, pf) in inv.pfs.iter().enumerate() {
                if let Some(v) = pf.vfs.iter().position(|vf| vf.bdf == want) {
                    return Ok(vec![(p, v)]);
                }
            }
            let problem = if inv.pfs.iter().any(|pf| pf.bdf == want) {
                format!("{want} is a PF, not a VF (a [[pf]] section is about PFs)")
            } else {
                format!("no VF has the PCI address {want}")
            };
            let vfs: Vec<String> = inv
                .pfs
                .iter()
                .flat_map(|pf| pf.vfs.iter().map(move |vf| vf_name(pf, vf.index, &vf.bdf)))
                .collect();
            let allowed = if vfs.is_empty() {
                "the PCI address of a VF, but this system has no VFs".to_owned()
            } else {
                format!("the PCI address of a VF; VFs here: {}", listing(vfs))
            };
            Err(not_found(&bdf.spot, problem, allowed))
        }
        Selector::Mac(mac) => {
            // the VFs with a MAC set, as their PFs report them
            let known: Vec<(MacAddr, (usize, usize))> = inv
                .pfs
                .iter()
                .enumerate()
                .flat_map(|(p, pf)| {
                    pf.vfs.iter().enumerate().filter_map(move |(v, vf)| {
                        let m = vf.config.as_ref()?.mac?;
                        (!m.is_zero()).then_some((m, (p, v)))
                    })
                })
                .collect();
            let name = |(p, v): (usize, usize)| {
                let pf = &inv.pfs[p];
                vf_name(pf, pf.vfs[v].index, &pf.vfs[v].bdf)
            };
            let hits: Vec<(usize, usize)> = known
                .iter()
                .filter(|(m, _)| *m == mac.value)
                .map(|(_, vf)| *vf)
                .collect();
            match hits.as_slice() {
                [_] => Ok(hits),
                [] => {
                    let allowed = if known.is_empty() && inv.netlink != "ok" {
                        format!(
                            "the MAC of a VF as its PF reports it, but no VF MACs are known here: rtnetlink {}",
                            inv.netlink
                        )
                    } else if known.is_empty() {
                        "the MAC of a VF as its PF reports it, but no VF has a MAC set".to_owned()
                    } else {
                        let macs = known
                            .iter()
                            .map(|&(m, vf)| format!("{m} on {}", name(vf)))
                            .collect();
                        format!(
                            "the MAC of a VF as its PF reports it; VF MACs here: {}",
                            listing(macs)
                        )
                    };
                    Err(not_found(
                        &mac.spot,
                        format!("no VF has MAC {}", mac.value),
                        allowed,
                    ))
                }
                many => Err(PolicyError::Invalid {
                    at: mac.spot.at,
                    field: mac.spot.field.clone(),
                    value: mac.spot.value.clone(),
                    problem: Some(format!(
                        "{} VFs have MAC {}: {}",
                        many.len(),
                        mac.value,
                        listing(many.iter().map(|&vf| name(vf)).collect())
                    )),
                    allowed: "the MAC of exactly one VF (select these by bdf or pf + index)"
                        .to_owned(),
                }),
            }
        }
    }
}
