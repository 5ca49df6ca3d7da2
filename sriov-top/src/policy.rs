//! `sriov-top --policy FILE`: the policy beside the probes. Loads it into
//! the kernel (`sriov_core::policy::enforce`), reloads it on SIGHUP or when
//! the file changes (a bad new file is a warning; the old policy stays),
//! follows the system each tick, and raises `irq_storm_per_s` alerts (and
//! their action) from the per-VF interrupt rates. One instance at a time
//! owns the policy ([`claim`], `sriov_core::policy::instance`).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use sriov_core::{
    discover::discover,
    ebpf::Probes,
    events::{Attributor, Event, EventEnvelope, PolicyAction, PolicyRule},
    host::{Host, VfAttr},
    ops,
    policy::{
        Mode, Policy, StormAction,
        enforce::Enforcer,
        file::{PolicyError, PolicyFile},
        instance::{self, Claim, Owner, Paths},
    },
    types::VfLinkState,
};

use crate::collect::Collected;

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub path: PathBuf,
    /// Keep the policy in force after exit.
    pub persist: bool,
}

/// Read, check and resolve the file against the system now.
pub fn load(host: &dyn Host, path: &Path) -> std::result::Result<Policy, LoadError> {
    let file = PolicyFile::load(path).map_err(LoadError::File)?;
    let inv = discover(host).map_err(|e| LoadError::System(e.to_string()))?;
    file.resolve(&inv).map_err(LoadError::File)
}

/// Take the policy for this process before anything is loaded: refused
/// while another sriov-top owns one (naming its pid and file) or while a
/// `--persist` policy is in force (`sriov policy unload` first). `mode` is
/// the file's, for the owner record.
pub fn claim(source: &PolicySource, mode: Mode) -> Result<Claim> {
    let paths = Paths::system();
    let owner = Owner::new(&source.path, mode, source.persist, &paths);
    instance::claim(&paths, owner)
        .with_context(|| format!("loading the policy {}", source.path.display()))
}

/// Why a policy could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file is wrong (or names what this host does not have): bad input.
    File(PolicyError),
    /// The system could not be read.
    System(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(e) => write!(f, "{e}"),
            Self::System(e) => write!(f, "reading the system: {e}"),
        }
    }
}

/// How often one VF's storm is reported while it lasts.
const STORM_REPEAT: Duration = Duration::from_secs(5);

/// The policy in force.
pub struct PolicyRuntime {
    source: PolicySource,
    mtime: Option<SystemTime>,
    enforcer: Enforcer,
    storm_last: BTreeMap<String, Instant>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn now() -> u64 {
    sriov_core::events::Clock::now_ns().unwrap_or(0)
}

impl PolicyRuntime {
    /// Load the policy into the kernel next to `probes`, as the owner of
    /// `claim` ([`claim`] first, when `None`).
    pub fn start(
        source: &PolicySource,
        claim: Option<Claim>,
        host: &dyn Host,
        probes: &mut Probes,
        attr: &mut Attributor,
    ) -> Result<(Self, Vec<Collected>)> {
        let policy = load(host, &source.path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut claim = match claim {
            Some(c) => c,
            None => self::claim(source, policy.mode)?,
        };
        let cleaned = claim.take_warnings();
        let pin_dir = claim.pin_dir().to_path_buf();
        let mut enforcer = Enforcer::start(probes.ebpf_mut(), &policy, Some(claim))
            .with_context(|| format!("loading the policy {}", source.path.display()))?;
        if source.persist {
            enforcer
                .persist(probes.ebpf_mut(), &pin_dir)
                .context("pinning the policy (--persist)")?;
        }
        let mut rt = Self {
            source: source.clone(),
            mtime: mtime(&source.path),
            enforcer,
            storm_last: BTreeMap::new(),
        };
        let mut out = rt.loaded(attr);
        out.extend(cleaned.into_iter().map(Collected::Warning));
        Ok((rt, out))
    }

    fn loaded(&mut self, attr: &mut Attributor) -> Vec<Collected> {
        let (vfs, pfs) = self.enforcer.slot_tables();
        attr.set_policy_slots(vfs, pfs);
        let mut out: Vec<Collected> = self
            .enforcer
            .warnings
            .drain(..)
            .map(Collected::Warning)
            .collect();
        let p = self.enforcer.policy();
        let p = Event::PolicyLoaded {
            file: self.source.path.display().to_string(),
            mode: p.mode,
            vfs: p.vfs.len(),
            pfs: p.pfs.len(),
            attached: self.enforcer.attached.clone(),
        };
        out.insert(0, Collected::Event(EventEnvelope::new(now(), p)));
        out
    }

    /// Reload from the file (SIGHUP, or it changed). A file that does not
    /// load is a warning and the policy in force stays.
    pub fn reload(
        &mut self,
        host: &dyn Host,
        probes: &mut Probes,
        attr: &mut Attributor,
    ) -> Vec<Collected> {
        self.mtime = mtime(&self.source.path);
        let policy = match load(host, &self.source.path) {
            Ok(p) => p,
            Err(e) => {
                return vec![Collected::Warning(format!(
                    "policy {} not reloaded, the one in force stays: {e}",
                    self.source.path.display()
                ))];
            }
        };
        match self.enforcer.reload(probes.ebpf_mut(), &policy) {
            Ok(()) => self.loaded(attr),
            Err(e) => vec![Collected::Warning(format!(
                "policy {} not reloaded: {e}",
                self.source.path.display()
            ))],
        }
    }

    /// Each tick: reload if the file changed, follow the system (VFIO
    /// nodes, netdevs), and check the IRQ rates of `snapshot` (the tick's
    /// `stats` events) against `irq_storm_per_s`.
    pub fn on_tick(
        &mut self,
        host: &dyn Host,
        probes: &mut Probes,
        attr: &mut Attributor,
        snapshot: &[Collected],
    ) -> Vec<Collected> {
        let mut out = Vec::new();
        if mtime(&self.source.path) != self.mtime {
            out.extend(self.reload(host, probes, attr));
        }
        if let Err(e) = self.enforcer.refresh(probes.ebpf_mut()) {
            out.push(Collected::Warning(format!("policy: {e}")));
        }
        out.extend(self.enforcer.warnings.drain(..).map(Collected::Warning));
        out.extend(self.storms(host, snapshot));
        out
    }

    fn storms(&mut self, host: &dyn Host, snapshot: &[Collected]) -> Vec<Collected> {
        let mut out = Vec::new();
        for c in snapshot {
            let Collected::Event(ev) = c else { continue };
            let (Event::Stats(a), Some(vf)) = (&ev.event, &ev.vf) else {
                continue;
            };
            let Some(p) = self.enforcer.policy().vfs.iter().find(|p| p.bdf == vf.bdf) else {
                continue;
            };
            let Some(limit) = p.rules.irq_storm_per_s else {
                continue;
            };
            // whole interrupts per second, compared and reported alike: an
            // event never says 5 against a limit of 5 (a measured 5.8/s
            // truncated in the report fired on 5.8 > 5 before)
            let rate = a.irq_per_s.round() as u64;
            if rate <= limit {
                continue;
            }
            if self
                .storm_last
                .get(&vf.bdf)
                .is_some_and(|t| t.elapsed() < STORM_REPEAT)
            {
                continue;
            }
            self.storm_last.insert(vf.bdf.clone(), Instant::now());
            let mut action = PolicyAction::Alert;
            let mut detail = None;
            if p.rules.irq_storm_action == StormAction::LinkDown
                && self.enforcer.policy().mode == sriov_core::policy::Mode::Enforce
            {
                match link_down(host, &p.pf_bdf, p.index) {
                    Ok(()) => action = PolicyAction::LinkDown,
                    Err(e) => detail = Some(format!("link_down failed: {e}")),
                }
            }
            let v = Event::PolicyViolation {
                rule: PolicyRule::IrqStorm,
                action,
                pf: None,
                uid: None,
                cgroup: None,
                value: rate,
                limit,
                detail,
            };
            let mut e = EventEnvelope::new(ev.ts_ns, v);
            e.vf = Some(vf.clone());
            out.push(Collected::Event(e));
        }
        out
    }
}

/// `ip link set dev PF vf N state disable`.
fn link_down(host: &dyn Host, pf_bdf: &str, index: u32) -> sriov_core::Result<()> {
    let inv = discover(host)?;
    let pf = inv.pf(pf_bdf)?;
    ops::set_vf(host, pf, index, &[VfAttr::State(VfLinkState::Disable)])
}
