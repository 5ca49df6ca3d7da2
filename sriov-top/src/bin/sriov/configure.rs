//! Commands that change the system: `set numvfs`, `vf set`, `vf bind`,
//! `plan`, `apply`. Input is validated completely before the first write.
use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sriov_core::{
    apply,
    config::DesiredState,
    discover,
    host::{Host, VfAttr},
    ops::{self, Progress},
    plan::PlanOptions,
};

use crate::{BadInput, vfargs::Settings};

/// A progress bar on stderr (hidden when stderr is not a terminal), with
/// per-VF timing lines printed either way.
fn progress_bar() -> impl FnMut(Progress) {
    let mut bar: Option<ProgressBar> = None;
    move |p| match p {
        Progress::Started { what, total } => {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} VFs {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_message(what.clone());
            eprintln!("{what}");
            bar = Some(b);
        }
        Progress::Advanced { what, elapsed } => {
            let line = format!("  {what} ready at +{:.3} s", elapsed.as_secs_f64());
            match &bar {
                Some(b) => {
                    b.println(&line);
                    b.inc(1);
                }
                None => eprintln!("{line}"),
            }
        }
        Progress::Finished { elapsed } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("  done in {:.3} s", elapsed.as_secs_f64());
        }
    }
}

pub fn set_numvfs(host: &dyn Host, device: &str, value: &str, waterfall: bool) -> Result<()> {
    let n: u32 = value.parse().map_err(|_| {
        BadInput(format!(
            "invalid numvfs {value:?}: a whole number from 0 to sriov_totalvfs"
        ))
    })?;
    let inv = discover::discover(host)?;
    let pf = inv.pf(device)?;
    ops::check_numvfs(pf, n)?;
    let watch = waterfall
        .then(|| crate::waterfall::Watch::start(host))
        .transpose()?;
    let r = ops::set_numvfs(host, pf, n, &mut progress_bar())?;
    if r.from == r.to {
        println!("{}: numvfs is already {n}; no change", pf.bdf);
    } else {
        println!(
            "{}: numvfs {} -> {} in {:.3} s (the sriov_numvfs write, in which the kernel creates and probes the VFs: {:.3} s)",
            pf.bdf,
            r.from,
            r.to,
            r.total.as_secs_f64(),
            r.write.as_secs_f64()
        );
    }
    if let Some(w) = watch {
        let ws = w.finish(host)?;
        if ws.is_empty() && r.to > 0 && r.from != r.to {
            eprintln!("no waterfall: the probes saw no VF-creating write (a hook missing?)");
        }
        for w in &ws {
            print!("{}", crate::waterfall::render(w));
        }
    }
    Ok(())
}

pub fn vf_set(host: &dyn Host, device: &str, vf: u32, s: &Settings, reprobe: bool) -> Result<()> {
    let inv = discover::discover(host)?;
    let pf = inv.pf(device)?;
    ops::check_vf_attrs(host, pf, vf)?;
    let mut attrs = s.attrs.clone();
    if s.min_tx_rate.is_some() || s.max_tx_rate.is_some() {
        // IFLA_VF_RATE sets both; keep the one not given
        let cur = pf
            .vfs
            .iter()
            .find(|v| v.index == vf)
            .and_then(|v| v.config.as_ref());
        let min = s.min_tx_rate.or(cur.map(|c| c.min_tx_rate)).unwrap_or(0);
        let max = s.max_tx_rate.or(cur.map(|c| c.max_tx_rate)).unwrap_or(0);
        if max != 0 && min > max {
            return Err(BadInput(format!(
                "min-tx-rate {min} would be above max-tx-rate {max}"
            ))
            .into());
        }
        attrs.push(VfAttr::Rate { min, max });
    }
    ops::set_vf(host, pf, vf, &attrs)?;
    let ifname = pf.netdev.as_deref().unwrap_or(&pf.bdf);
    for a in &attrs {
        println!("{ifname} vf {vf}: {}", a.describe());
    }
    if reprobe && attrs.iter().any(|a| matches!(a, VfAttr::Mac(_))) {
        let bdf = ops::vf_bdf(pf, vf)?;
        ops::reprobe(host, bdf)?;
        println!("{ifname} vf {vf}: driver re-probed ({bdf})");
    }
    Ok(())
}

pub fn vf_bind(host: &dyn Host, device: &str, vf: u32, driver: &str) -> Result<()> {
    let inv = discover::discover(host)?;
    let pf = inv.pf(device)?;
    let bdf = ops::vf_bdf(pf, vf)?;
    ops::check_driver(host, driver)?;
    let before = pf
        .vfs
        .iter()
        .find(|v| v.index == vf)
        .and_then(|v| v.driver.clone());
    ops::bind(host, bdf, driver)?;
    println!(
        "{} vf {vf} ({bdf}): driver {} -> {driver}",
        pf.bdf,
        before.as_deref().unwrap_or("(none)")
    );
    Ok(())
}

fn load(file: &Path) -> Result<DesiredState> {
    Ok(DesiredState::from_file(file)?)
}

pub fn plan(host: &dyn Host, file: &Path, json: bool, reprobe: bool) -> Result<()> {
    let desired = load(file)?;
    let p = apply::plan(
        host,
        &desired,
        PlanOptions {
            reprobe_after_mac: reprobe,
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else if p.is_empty() {
        println!("no changes");
    } else {
        for (i, s) in p.steps.iter().enumerate() {
            println!("{:>3}. {s}", i + 1);
        }
        println!(
            "{} change(s); run `sriov apply {}` to make them",
            p.steps.len(),
            file.display()
        );
    }
    Ok(())
}

pub fn apply(
    host: &dyn Host,
    file: &Path,
    reprobe: bool,
    journal: Option<&Path>,
    json: bool,
) -> Result<()> {
    let desired = load(file)?;
    let result = apply::apply(
        host,
        &desired,
        PlanOptions {
            reprobe_after_mac: reprobe,
        },
        &mut progress_bar(),
    );
    let report = match &result {
        Ok(r) => r,
        Err(e) => &e.report,
    };
    if let Some(path) = journal {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text)
            .with_context(|| format!("writing the journal to {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        for j in &report.journal {
            println!(
                "{}{} ... {} ({} write{}, {:.1} ms)",
                if j.rollback { "rollback: " } else { "" },
                j.step,
                j.outcome,
                j.writes,
                if j.writes == 1 { "" } else { "s" },
                Duration::from_micros(j.duration_us).as_secs_f64() * 1e3
            );
        }
    }
    let r = result?;
    if json {
        return Ok(());
    }
    if r.plan.is_empty() {
        println!("no changes (0 writes)");
    } else {
        println!(
            "applied {} step(s) with {} writes in {:.3} s",
            r.plan.steps.len(),
            r.writes,
            Duration::from_micros(r.duration_us).as_secs_f64()
        );
    }
    Ok(())
}
