//! Declarative configuration: the difference between the desired state (a
//! [`DesiredState`] from a TOML file) and the system, as a list of steps.
//! Every check against the system happens here, before any write.
use std::fmt;

use serde::Serialize;

use crate::{
    Error, Result,
    config::{DesiredState, PfConfig, VfConfig},
    discover::{Inventory, Pf, Target},
    host::{Host, VfAttr, VfNetInfo},
    ops,
};

/// One change. `from` is what the system had when the plan was made
/// (`None`: not known, because the VF is re-created by a numvfs change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    NumVfs {
        pf: String,
        from: u32,
        to: u32,
    },
    SetVf {
        pf: String,
        ifname: String,
        vf: u32,
        #[serde(serialize_with = "ser_attr")]
        attr: VfAttr,
        #[serde(serialize_with = "ser_opt_attr")]
        from: Option<VfAttr>,
    },
    Reprobe {
        pf: String,
        vf: u32,
    },
    Bind {
        pf: String,
        vf: u32,
        from: Option<String>,
        to: String,
    },
}

fn ser_attr<S: serde::Serializer>(a: &VfAttr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&a.describe())
}

fn ser_opt_attr<S: serde::Serializer>(a: &Option<VfAttr>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Some(a) => s.collect_str(&a.describe()),
        None => s.serialize_none(),
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NumVfs { pf, from, to } => write!(f, "{pf}: numvfs {from} -> {to}"),
            Self::SetVf {
                ifname,
                vf,
                attr,
                from,
                ..
            } => match from {
                Some(old) => write!(
                    f,
                    "{ifname} vf {vf}: {} -> {}",
                    old.describe(),
                    attr.describe()
                ),
                None => write!(f, "{ifname} vf {vf}: {}", attr.describe()),
            },
            Self::Reprobe { pf, vf } => {
                write!(f, "{pf} vf {vf}: re-probe the VF driver (MAC change)")
            }
            Self::Bind { pf, vf, from, to } => {
                write!(
                    f,
                    "{pf} vf {vf}: driver {} -> {to}",
                    from.as_deref().unwrap_or("(none)")
                )
            }
        }
    }
}

/// Options for planning and applying.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Re-probe a VF's (kernel) driver after its MAC changed, as igb asks.
    pub reprobe_after_mac: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// What a VF has now, for comparison (`None`: unknown/new VF).
fn vf_attrs_wanted(cfg: &VfConfig, cur: Option<&VfNetInfo>) -> Vec<(VfAttr, Option<VfAttr>)> {
    let mut out = Vec::new();
    let mut want = |attr: VfAttr, from: Option<VfAttr>| {
        if Some(attr) != from {
            out.push((attr, from));
        }
    };
    if let Some(m) = cfg.mac {
        want(VfAttr::Mac(m), cur.and_then(|c| c.mac).map(VfAttr::Mac));
    }
    if cfg.vlan.is_some() || cfg.qos.is_some() {
        let vlan = cfg.vlan.or(cur.map(|c| c.vlan)).unwrap_or(0);
        let qos = cfg.qos.unwrap_or(0);
        want(
            VfAttr::Vlan { vlan, qos },
            cur.map(|c| VfAttr::Vlan {
                vlan: c.vlan,
                qos: c.qos,
            }),
        );
    }
    if let Some(b) = cfg.spoofchk {
        want(
            VfAttr::SpoofChk(b),
            cur.and_then(|c| c.spoofchk).map(VfAttr::SpoofChk),
        );
    }
    if let Some(b) = cfg.trust {
        want(
            VfAttr::Trust(b),
            cur.and_then(|c| c.trust).map(VfAttr::Trust),
        );
    }
    if let Some(s) = cfg.state {
        want(
            VfAttr::State(s),
            cur.and_then(|c| c.link_state).map(VfAttr::State),
        );
    }
    if cfg.min_tx_rate.is_some() || cfg.max_tx_rate.is_some() {
        let min = cfg.min_tx_rate.or(cur.map(|c| c.min_tx_rate)).unwrap_or(0);
        let max = cfg.max_tx_rate.or(cur.map(|c| c.max_tx_rate)).unwrap_or(0);
        want(
            VfAttr::Rate { min, max },
            cur.map(|c| VfAttr::Rate {
                min: c.min_tx_rate,
                max: c.max_tx_rate,
            }),
        );
    }
    out
}

fn resolve_pf<'a>(inv: &'a Inventory, cfg: &PfConfig) -> Result<&'a Pf> {
    match inv.resolve(&cfg.device) {
        Some(Target::Pf(p)) => Ok(&inv.pfs[p]),
        Some(Target::Vf(p, _)) => Err(Error::DeviceNotFound {
            device: cfg.device.clone(),
            hint: format!(
                " as a PF (line {}): it is a VF of {}; name the PF",
                cfg.line, inv.pfs[p].bdf
            ),
        }),
        None => Err(Error::DeviceNotFound {
            device: cfg.device.clone(),
            hint: format!(" (line {}){}", cfg.line, inv.known_pfs_hint()),
        }),
    }
}

/// Compute the steps that take the system from `inv` to `desired`.
pub fn plan(
    host: &dyn Host,
    inv: &Inventory,
    desired: &DesiredState,
    opts: PlanOptions,
) -> Result<Plan> {
    let mut steps = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    // the PCI drivers are only listed when the file names one
    let drivers = if desired
        .pfs
        .iter()
        .any(|p| p.vfs.values().any(|v| v.driver.is_some()))
    {
        crate::discover::pci_drivers(host)?
    } else {
        Vec::new()
    };
    for cfg in &desired.pfs {
        let pf = resolve_pf(inv, cfg)?;
        if seen.contains(&pf.bdf.as_str()) {
            return Err(Error::DeviceNotFound {
                device: cfg.device.clone(),
                hint: format!(
                    " (line {}): {} is configured twice in this file",
                    cfg.line, pf.bdf
                ),
            });
        }
        seen.push(&pf.bdf);
        let target = cfg.numvfs.unwrap_or(pf.num_vfs);
        ops::check_numvfs(pf, target)?;
        let recreate = target != pf.num_vfs;
        if recreate {
            steps.push(Step::NumVfs {
                pf: pf.bdf.clone(),
                from: pf.num_vfs,
                to: target,
            });
        }
        let mut binds = Vec::new();
        let mut reprobes = Vec::new();
        for (&index, vcfg) in &cfg.vfs {
            if index >= target {
                return Err(Error::VfIndexOutOfRange {
                    device: pf.bdf.clone(),
                    index,
                    numvfs: target,
                });
            }
            let vf = if recreate {
                None
            } else {
                pf.vfs.iter().find(|v| v.index == index)
            };
            let cur = vf.and_then(|v| v.config.as_ref());
            let attrs = vf_attrs_wanted(vcfg, cur);
            if !attrs.is_empty() {
                let ifname = pf.netdev.clone().ok_or_else(|| Error::NoNetdev {
                    device: pf.bdf.clone(),
                })?;
                if host.netlink().is_none() {
                    return Err(Error::NoNetlink {
                        device: pf.bdf.clone(),
                    });
                }
                let mac_changed = attrs.iter().any(|(a, _)| matches!(a, VfAttr::Mac(_)));
                for (attr, from) in attrs {
                    steps.push(Step::SetVf {
                        pf: pf.bdf.clone(),
                        ifname: ifname.clone(),
                        vf: index,
                        attr,
                        from,
                    });
                }
                let cur_driver = vf.and_then(|v| v.driver.as_deref());
                let final_driver = vcfg.driver.as_deref().or(cur_driver);
                let rebinding =
                    vcfg.driver.is_some() && (recreate || vcfg.driver.as_deref() != cur_driver);
                if opts.reprobe_after_mac
                    && mac_changed
                    && !rebinding
                    && final_driver.is_some_and(|d| d != "vfio-pci")
                {
                    reprobes.push(Step::Reprobe {
                        pf: pf.bdf.clone(),
                        vf: index,
                    });
                }
            }
            if let Some(driver) = &vcfg.driver {
                if !drivers.iter().any(|d| d == driver) {
                    return Err(Error::UnknownDriver {
                        driver: driver.clone(),
                        available: drivers.join(", "),
                    });
                }
                let from = vf.and_then(|v| v.driver.clone());
                if recreate || from.as_deref() != Some(driver.as_str()) {
                    binds.push(Step::Bind {
                        pf: pf.bdf.clone(),
                        vf: index,
                        from,
                        to: driver.clone(),
                    });
                }
            }
        }
        steps.extend(reprobes);
        steps.extend(binds);
    }
    Ok(Plan { steps })
}

/// The desired state that describes `pfs` exactly as they are now: used to
/// roll back. Every VF setting the PF driver reports is included.
pub fn snapshot(inv: &Inventory, pfs: &[&str]) -> DesiredState {
    let mut out = DesiredState::default();
    for pf in inv.pfs.iter().filter(|p| pfs.contains(&p.bdf.as_str())) {
        let mut cfg = PfConfig {
            device: pf.bdf.clone(),
            numvfs: Some(pf.num_vfs),
            vfs: Default::default(),
            line: 0,
        };
        for vf in &pf.vfs {
            let c = vf.config.as_ref();
            cfg.vfs.insert(
                vf.index,
                VfConfig {
                    mac: c.and_then(|c| c.mac),
                    vlan: c.map(|c| c.vlan),
                    qos: c.map(|c| c.qos),
                    spoofchk: c.and_then(|c| c.spoofchk),
                    trust: c.and_then(|c| c.trust),
                    state: c.and_then(|c| c.link_state),
                    min_tx_rate: c.map(|c| c.min_tx_rate),
                    max_tx_rate: c.map(|c| c.max_tx_rate),
                    driver: vf.driver.clone(),
                    line: 0,
                },
            );
        }
        out.pfs.push(cfg);
    }
    out
}
