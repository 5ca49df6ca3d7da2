//! `vf_drift`: state a VF's user left behind. A VF is handed out when a
//! driver that gives it away binds (vfio-pci: to a VM or a user-space
//! driver); its administrative state then is remembered. When it is
//! released (unbound from that driver, or another driver probes it), its
//! state now is compared with that, and what differs is reported. Made from
//! the event stream alone (inventory, `admin_change`, `driver_probe`), so a
//! replay finds the same.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::path::Path;

use super::{
    AdminField, Event, EventEnvelope, VfioOp,
    admin::{Settings, settings_of},
};
use crate::{discover::Pf, host::Host};

/// Drivers that hand a VF out of the host's hands.
const HANDING_OUT: &[&str] = &["vfio-pci"];

/// One setting that differs from when the VF was handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// `mac`, `vlan`, `spoofchk`, `trust`, `rate`, `driver_override`.
    pub field: String,
    pub handed_out: Value,
    pub now: Value,
}

/// [`Event::VfDrift`]: what a VF's user left behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VfDrift {
    /// BDF of the VF.
    pub device: String,
    pub pf: String,
    pub vf_index: u32,
    /// The driver it was handed out to, and when (kernel ns).
    pub driver: String,
    pub handed_out_ns: u64,
    /// What released it: `unbind`, or the driver that probed it next.
    pub released_by: String,
    pub left: Vec<Drift>,
}

#[derive(Debug, Clone)]
struct HandedOut {
    driver: String,
    ts_ns: u64,
    settings: Settings,
}

/// Follows hand-outs and releases ([`Drifts::on_event`]).
#[derive(Debug, Default)]
pub struct Drifts {
    /// VF BDF to its (PF, index) and settings as last known.
    known: BTreeMap<String, (String, u32, Settings)>,
    out: BTreeMap<String, HandedOut>,
    /// VFs on a netdev driver whose netdev was seen here, and the driver.
    netdevs: BTreeMap<String, String>,
}

impl Drifts {
    pub fn new() -> Self {
        Self::default()
    }

    /// A scan: the settings as they are, and VFs whose netdev left this
    /// network namespace (handed out, e.g. to a container) or came back
    /// (released).
    fn on_inventory(&mut self, ev: &EventEnvelope, pfs: &[Pf]) -> Vec<EventEnvelope> {
        let mut known = BTreeMap::new();
        for pf in pfs {
            for vf in &pf.vfs {
                let mut s = settings_of(vf);
                // what only admin_change reports is kept
                if let Some((_, _, old)) = self.known.get(&vf.bdf)
                    && let Some(o) = old.get("driver_override")
                {
                    s.insert("driver_override", o.clone());
                }
                known.insert(vf.bdf.clone(), (pf.bdf.clone(), vf.index, s));
            }
        }
        self.known = known;
        self.out.retain(|bdf, _| self.known.contains_key(bdf));
        let mut drifts = Vec::new();
        for pf in pfs {
            for vf in &pf.vfs {
                let Some(driver) = vf.driver.as_deref().filter(|d| !HANDING_OUT.contains(d)) else {
                    self.netdevs.remove(&vf.bdf);
                    continue;
                };
                match (&vf.netdev, self.netdevs.get(&vf.bdf)) {
                    // its netdev went to another namespace: handed out
                    (None, Some(d)) if d == driver => {
                        let to = format!("{driver} (netdev in another namespace)");
                        self.hand_out(&vf.bdf, &to, ev.ts_ns);
                        self.netdevs.remove(&vf.bdf);
                    }
                    (Some(_), None) => {
                        self.netdevs.insert(vf.bdf.clone(), driver.to_string());
                        let back = self
                            .out
                            .get(&vf.bdf)
                            .is_some_and(|h| h.driver.starts_with(driver));
                        if back {
                            drifts.extend(self.release(&vf.bdf, ev, "netns"));
                        }
                    }
                    _ => {}
                }
            }
        }
        drifts
    }

    /// A hand-out of `device` to `driver` at `ts_ns`, as its settings are.
    fn hand_out(&mut self, device: &str, driver: &str, ts_ns: u64) {
        if let Some((_, _, s)) = self.known.get(device) {
            let h = HandedOut {
                driver: driver.to_string(),
                ts_ns,
                settings: s.clone(),
            };
            self.out.insert(device.to_string(), h);
        }
    }

    /// Take in `ev`; the `vf_drift`s of the VFs it releases that were left
    /// changed.
    pub fn on_event(&mut self, ev: &EventEnvelope) -> Vec<EventEnvelope> {
        self.on_event_one(ev).into_iter().flatten().collect()
    }

    fn on_event_one(&mut self, ev: &EventEnvelope) -> Option<Vec<EventEnvelope>> {
        match &ev.event {
            Event::Inventory { pfs } => return Some(self.on_inventory(ev, pfs)),
            Event::VfioDevice { device, op } => {
                return match op {
                    // its user has it now: what it gets is the hand-out
                    VfioOp::Open => {
                        self.hand_out(device, "vfio-pci", ev.ts_ns);
                        None
                    }
                    VfioOp::Close => {
                        let d = self.release(device, ev, "vfio_close");
                        // still bound: handed out again as it is now
                        self.hand_out(device, "vfio-pci", ev.ts_ns);
                        d.map(|d| vec![d])
                    }
                };
            }
            Event::AdminChange(c) => {
                let device = c.device.as_deref()?;
                if c.ret < 0 {
                    return None;
                }
                if c.field == AdminField::Unbind {
                    return self.release(device, ev, "unbind").map(|d| vec![d]);
                }
                let field = c.field.setting()?;
                if let Some((_, _, s)) = self.known.get_mut(device) {
                    let mut new = c.new.clone();
                    // the PF driver's view has no proto: compare like with like
                    if let Some(o) = new.as_object_mut() {
                        o.remove("proto");
                    }
                    s.insert(field, new);
                }
            }
            Event::DriverProbe {
                device,
                driver,
                ret,
                ..
            } if *ret == 0 => {
                if HANDING_OUT.contains(&driver.as_str()) {
                    self.hand_out(device, driver, ev.ts_ns);
                } else {
                    return self.release(device, ev, driver).map(|d| vec![d]);
                }
            }
            Event::VfRemoved {
                vf_bdf: Some(b), ..
            } => {
                self.out.remove(b);
            }
            _ => {}
        }
        None
    }

    /// `device` released by `ev`: what differs from its hand-out.
    fn release(&mut self, device: &str, ev: &EventEnvelope, by: &str) -> Option<EventEnvelope> {
        let h = self.out.remove(device)?;
        let (pf, index, now) = self.known.get(device)?;
        let mut left = Vec::new();
        for (field, value) in now {
            let before = h.settings.get(field).cloned().unwrap_or(Value::Null);
            if &before != value {
                left.push(Drift {
                    field: field.to_string(),
                    handed_out: before,
                    now: value.clone(),
                });
            }
        }
        if left.is_empty() {
            return None;
        }
        let mut out = EventEnvelope::new(
            ev.ts_ns,
            Event::VfDrift(VfDrift {
                device: device.to_string(),
                pf: pf.clone(),
                vf_index: *index,
                driver: h.driver,
                handed_out_ns: h.ts_ns,
                released_by: by.to_string(),
                left,
            }),
        );
        out.vf = ev.vf.clone();
        out.process = ev.process.clone();
        Some(out)
    }
}

/// Where `sriov-top` keeps the last drift of each VF, for `sriov list`.
pub const DRIFT_FILE: &str = "/run/sriov-top/drift.json";

/// The drifts in `DRIFT_FILE` by VF BDF (none when there is no file).
pub fn read_drifts(host: &dyn Host) -> crate::Result<BTreeMap<String, VfDrift>> {
    let path = Path::new(DRIFT_FILE);
    let text = match host.read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(crate::Error::sysfs("reading", path, e)),
    };
    serde_json::from_str(&text).map_err(|e| crate::Error::Unsupported {
        device: DRIFT_FILE.into(),
        message: format!("not a drift file: {e} (remove it; sriov-top writes it again)"),
    })
}

/// Keep `d` in `DRIFT_FILE` (replacing the VF's previous one).
pub fn record_drift(host: &dyn Host, d: &VfDrift) -> crate::Result<()> {
    let path = Path::new(DRIFT_FILE);
    let mut all = read_drifts(host).unwrap_or_default();
    all.insert(d.device.clone(), d.clone());
    if let Some(dir) = path.parent() {
        host.create_dir_all(dir)
            .map_err(|e| crate::Error::sysfs("creating", dir, e))?;
    }
    let text = serde_json::to_string_pretty(&all).map_err(|e| crate::Error::Unsupported {
        device: DRIFT_FILE.into(),
        message: e.to_string(),
    })?;
    host.write(path, &text)
        .map_err(|e| crate::Error::sysfs("writing", path, e))
}

/// The fields of `d` in which `vf` still differs from its hand-out.
pub fn still_left(d: &VfDrift, vf: &crate::discover::Vf) -> Vec<Drift> {
    let now = settings_of(vf);
    d.left
        .iter()
        .filter(|x| {
            now.get(x.field.as_str())
                // a field the scan cannot see (driver_override): as reported
                .is_none_or(|v| *v != x.handed_out)
        })
        .cloned()
        .collect()
}
