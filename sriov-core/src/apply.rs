//! Applying a plan: each step is journaled; if one fails, everything already
//! changed is put back to the state from before (a snapshot taken first),
//! and the error names the failing step.
use std::time::Instant;

use serde::Serialize;

use crate::{
    Error, Result,
    config::DesiredState,
    discover::{self, Inventory, Pf},
    host::{Host, VfAttr, VfNetInfo},
    ops::{self, Progress},
    plan::{self, Plan, PlanOptions, Step},
};

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    pub step: String,
    /// "ok", "unchanged" (already as wanted when executed), "failed: ...".
    pub outcome: String,
    pub writes: usize,
    pub duration_us: u64,
    /// Part of the rollback after a failure.
    pub rollback: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ApplyReport {
    pub plan: Plan,
    pub journal: Vec<JournalEntry>,
    /// Writes made to sysfs and rtnetlink.
    pub writes: usize,
    pub duration_us: u64,
}

/// A failed apply: which step, why, and whether the rollback worked.
#[derive(Debug, thiserror::Error)]
#[error("step {index}/{total} failed: {step}: {source}{}", rollback_summary(.rollback_errors, *.rolled_back))]
pub struct ApplyError {
    pub index: usize,
    pub total: usize,
    pub step: String,
    #[source]
    pub source: Error,
    pub rolled_back: bool,
    pub rollback_errors: Vec<String>,
    pub report: Box<ApplyReport>,
}

fn rollback_summary(errors: &[String], rolled_back: bool) -> String {
    if rolled_back && errors.is_empty() {
        "; rolled back: the system is as it was before".to_string()
    } else if errors.is_empty() {
        String::new()
    } else {
        format!("; ROLLBACK INCOMPLETE: {}", errors.join("; "))
    }
}

fn find_pf<'a>(inv: &'a Inventory, bdf: &str) -> Result<&'a Pf> {
    inv.pfs
        .iter()
        .find(|p| p.bdf == bdf)
        .ok_or_else(|| Error::DeviceNotFound {
            device: bdf.to_string(),
            hint: " (vanished while applying)".into(),
        })
}

fn live_vf(host: &dyn Host, ifname: &str, vf: u32) -> Option<VfNetInfo> {
    host.netlink()?
        .vf_info(ifname)
        .ok()?
        .into_iter()
        .find(|v| v.vf == vf)
}

fn attr_matches(attr: &VfAttr, v: &VfNetInfo) -> bool {
    match *attr {
        VfAttr::Mac(m) => v.mac == Some(m),
        VfAttr::Vlan { vlan, qos } => v.vlan == vlan && v.qos == qos,
        VfAttr::SpoofChk(b) => v.spoofchk == Some(b),
        VfAttr::Trust(b) => v.trust == Some(b),
        VfAttr::State(s) => v.link_state == Some(s),
        VfAttr::Rate { min, max } => v.min_tx_rate == min && v.max_tx_rate == max,
    }
}

/// Execute one step (not SetVf: those go in batches). Returns whether
/// anything had to change.
fn execute(host: &dyn Host, step: &Step, progress: &mut dyn FnMut(Progress)) -> Result<bool> {
    match step {
        Step::NumVfs { pf, to, .. } => {
            let inv = discover::discover(host)?;
            let r = ops::set_numvfs(host, find_pf(&inv, pf)?, *to, progress)?;
            Ok(r.writes > 0)
        }
        Step::SetVf {
            ifname, vf, attr, ..
        } => set_vf_batch(host, ifname, *vf, &[(attr, None)]),
        Step::Reprobe { pf, vf } => {
            let inv = discover::discover(host)?;
            ops::reprobe(host, ops::vf_bdf(find_pf(&inv, pf)?, *vf)?)?;
            Ok(true)
        }
        Step::Bind { pf, vf, to, .. } => {
            let inv = discover::discover(host)?;
            let p = find_pf(&inv, pf)?;
            let bdf = ops::vf_bdf(p, *vf)?;
            if p.vfs
                .iter()
                .any(|v| v.index == *vf && v.driver.as_deref() == Some(to.as_str()))
            {
                return Ok(false);
            }
            ops::bind(host, bdf, to)?;
            Ok(true)
        }
    }
}

/// Set several attributes of one VF in one message. Attributes whose old
/// value the plan did not know (VFs re-created by a numvfs change) are
/// checked against the live state first and left out when already right.
fn set_vf_batch(
    host: &dyn Host,
    ifname: &str,
    vf: u32,
    attrs: &[(&VfAttr, Option<&VfAttr>)],
) -> Result<bool> {
    let live = if attrs.iter().any(|(_, from)| from.is_none()) {
        live_vf(host, ifname, vf)
    } else {
        None
    };
    let todo: Vec<VfAttr> = attrs
        .iter()
        .filter(|(a, _)| !live.as_ref().is_some_and(|v| attr_matches(a, v)))
        .map(|(a, _)| **a)
        .collect();
    if todo.is_empty() {
        return Ok(false);
    }
    let nl = host.netlink().ok_or_else(|| Error::NoNetlink {
        device: ifname.to_string(),
    })?;
    nl.set_vf(ifname, vf, &todo)?;
    Ok(true)
}

/// How many steps from `i` on set attributes of the same VF.
fn batch_len(steps: &[Step], i: usize) -> usize {
    let Step::SetVf { ifname, vf, .. } = &steps[i] else {
        return 1;
    };
    steps[i..]
        .iter()
        .take_while(|s| matches!(s, Step::SetVf { ifname: n, vf: v, .. } if n == ifname && v == vf))
        .count()
}

fn run_steps(
    host: &dyn Host,
    steps: &[Step],
    rollback: bool,
    journal: &mut Vec<JournalEntry>,
    progress: &mut dyn FnMut(Progress),
) -> std::result::Result<(), (usize, Error)> {
    let mut i = 0;
    while i < steps.len() {
        let n = batch_len(steps, i);
        let w0 = host.writes();
        let t = Instant::now();
        let r = match &steps[i] {
            Step::SetVf { ifname, vf, .. } => {
                let attrs: Vec<(&VfAttr, Option<&VfAttr>)> = steps[i..i + n]
                    .iter()
                    .filter_map(|s| match s {
                        Step::SetVf { attr, from, .. } => Some((attr, from.as_ref())),
                        _ => None,
                    })
                    .collect();
                set_vf_batch(host, ifname, *vf, &attrs)
            }
            step => execute(host, step, progress),
        };
        let outcome = match &r {
            Ok(true) => "ok".to_string(),
            Ok(false) => "unchanged".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        for (k, step) in steps[i..i + n].iter().enumerate() {
            journal.push(JournalEntry {
                step: step.to_string(),
                outcome: outcome.clone(),
                // one message for the batch: counted on its first step
                writes: if k == 0 { host.writes() - w0 } else { 0 },
                duration_us: if k == 0 {
                    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
                } else {
                    0
                },
                rollback,
            });
        }
        if let Err(e) = r {
            return Err((i, e));
        }
        i += n;
    }
    Ok(())
}

/// Plan against the live system without changing anything.
pub fn plan(host: &dyn Host, desired: &DesiredState, opts: PlanOptions) -> Result<Plan> {
    let inv = discover::discover(host)?;
    plan::plan(host, &inv, desired, opts)
}

/// Make the system match `desired`. Bad input (unknown PF, index out of
/// range, unknown driver, ...) is an `Err(ApplyError)` with `index` 0 and no
/// write made. A failing step triggers a rollback to the snapshot.
#[allow(
    clippy::result_large_err,
    reason = "the error carries the journal; apply runs once per command"
)]
pub fn apply(
    host: &dyn Host,
    desired: &DesiredState,
    opts: PlanOptions,
    progress: &mut dyn FnMut(Progress),
) -> std::result::Result<ApplyReport, ApplyError> {
    let t0 = Instant::now();
    let w0 = host.writes();
    let early = |e: Error| ApplyError {
        index: 0,
        total: 0,
        step: "planning".into(),
        source: e,
        rolled_back: false,
        rollback_errors: vec![],
        report: Box::default(),
    };
    let inv = discover::discover(host).map_err(early)?;
    let the_plan = plan::plan(host, &inv, desired, opts).map_err(early)?;
    let mut report = ApplyReport {
        plan: the_plan.clone(),
        ..Default::default()
    };
    if the_plan.is_empty() {
        return Ok(report);
    }
    let mut touched: Vec<&str> = Vec::new();
    for s in &the_plan.steps {
        let pf = match s {
            Step::NumVfs { pf, .. }
            | Step::SetVf { pf, .. }
            | Step::Reprobe { pf, .. }
            | Step::Bind { pf, .. } => pf.as_str(),
        };
        if !touched.contains(&pf) {
            touched.push(pf);
        }
    }
    let before = plan::snapshot(&inv, &touched);
    // driver_override only changes through Bind steps
    let overrides = if the_plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::Bind { .. }))
    {
        driver_overrides(host, &inv, &touched)
    } else {
        Vec::new()
    };

    let result = run_steps(host, &the_plan.steps, false, &mut report.journal, progress);
    let finish = |report: &mut ApplyReport| {
        report.writes = host.writes() - w0;
        report.duration_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
    };
    let Err((i, e)) = result else {
        finish(&mut report);
        return Ok(report);
    };

    // roll back: plan from the current state to the snapshot and run it
    let mut rollback_errors = Vec::new();
    match discover::discover(host)
        .and_then(|now| plan::plan(host, &now, &before, PlanOptions::default()))
    {
        Ok(back) => {
            if let Err((j, e2)) = run_steps(host, &back.steps, true, &mut report.journal, progress)
            {
                rollback_errors.push(format!("{}: {e2}", back.steps[j]));
            }
        }
        Err(e2) => rollback_errors.push(format!("planning the rollback: {e2}")),
    }
    restore_overrides(host, &overrides, &mut rollback_errors);
    finish(&mut report);
    Err(ApplyError {
        index: i + 1,
        total: the_plan.steps.len(),
        step: the_plan.steps[i].to_string(),
        source: e,
        rolled_back: rollback_errors.is_empty(),
        rollback_errors,
        report: Box::new(report),
    })
}

/// `driver_override` of every VF of the touched PFs.
fn driver_overrides(host: &dyn Host, inv: &Inventory, pfs: &[&str]) -> Vec<(String, String)> {
    inv.pfs
        .iter()
        .filter(|p| pfs.contains(&p.bdf.as_str()))
        .flat_map(|p| p.vfs.iter())
        .filter_map(|v| {
            let path = std::path::Path::new(discover::PCI_DEVICES)
                .join(&v.bdf)
                .join("driver_override");
            Some((v.bdf.clone(), discover::read_opt(host, &path).ok()??))
        })
        .collect()
}

fn restore_overrides(host: &dyn Host, saved: &[(String, String)], errors: &mut Vec<String>) {
    for (bdf, value) in saved {
        let path = std::path::Path::new(discover::PCI_DEVICES)
            .join(bdf)
            .join("driver_override");
        let now = discover::read_opt(host, &path).ok().flatten();
        if now.as_deref() == Some(value.as_str()) || now.is_none() {
            continue;
        }
        let v = if value == "(null)" {
            "\n"
        } else {
            value.as_str()
        };
        if let Err(e) = host.write(&path, v) {
            errors.push(format!("restoring driver_override of {bdf}: {e}"));
        }
    }
}
