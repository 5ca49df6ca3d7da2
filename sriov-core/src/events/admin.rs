//! `admin_change`: an administrative change of a VF (MAC, VLAN, spoofchk,
//! trust, rate, driver) or of a PF's VF count, with its old and new values
//! and who made it. The new value and the actor come from the kernel (the
//! PF driver's `ndo_set_vf_*`, `driver_set_override`, `bind_store`,
//! `unbind_store`, `sriov_numvfs_store`); the old value is the state the
//! last scan saw, updated by each change since ([`AdminState`]).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sriov_ebpf::record::{
    ADMIN_BIND, ADMIN_DRIVER_OVERRIDE, ADMIN_LINK_STATE, ADMIN_MAC, ADMIN_NUMVFS, ADMIN_RATE,
    ADMIN_SPOOFCHK, ADMIN_TRUST, ADMIN_UNBIND, ADMIN_VLAN, AdminRecord,
};

use super::lookup::{device_dir, text};
use crate::{
    discover::{Inventory, Vf},
    host::Host,
    types::MacAddr,
};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminField {
    Mac,
    Vlan,
    Spoofchk,
    Trust,
    Rate,
    LinkState,
    Numvfs,
    DriverOverride,
    /// A driver bound (`drivers/<drv>/bind`).
    Bind,
    /// A driver unbound (`drivers/<drv>/unbind`).
    Unbind,
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub pid: u32,
    pub uid: u32,
    pub comm: String,
    /// The executable's path while the process lives (`/proc/PID/exe`),
    /// else the name of its file as the kernel saw it.
    pub exe: Option<String>,
    /// cgroup v2 id (the cgroup directory's inode).
    pub cgroup_id: u64,
    /// Its path, while the process lives (`/proc/PID/cgroup`).
    pub cgroup: Option<String>,
}

/// An administrative change ([`super::Event::AdminChange`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminChange {
    pub field: AdminField,
    /// BDF of the PF.
    pub pf: Option<String>,
    /// The VF's index, for changes made through the PF.
    pub vf_index: Option<u32>,
    /// BDF of the device changed (the VF; the PF for `numvfs`).
    pub device: Option<String>,
    /// The value before, as the last scan (or change) saw it.
    pub old: Option<Value>,
    pub new: Value,
    /// 0 or bytes consumed, or -errno (the change failed).
    pub ret: i64,
    pub actor: Actor,
}

/// A VF's administrative settings by name (`mac`, `vlan`, `spoofchk`,
/// `trust`, `rate`, `driver_override`) as the values `admin_change` and
/// `vf_drift` report.
pub(super) type Settings = BTreeMap<&'static str, Value>;

/// The settings of `vf` in the PF driver's view (none without it).
pub(super) fn settings_of(vf: &Vf) -> Settings {
    let mut s = Settings::new();
    if let Some(c) = &vf.config {
        s.insert("mac", c.mac.map_or(Value::Null, |m| json!(m.to_string())));
        s.insert("vlan", vlan_value(u64::from(c.vlan), u64::from(c.qos)));
        if let Some(v) = c.spoofchk {
            s.insert("spoofchk", Value::Bool(v));
        }
        if let Some(v) = c.trust {
            s.insert("trust", Value::Bool(v));
        }
        s.insert(
            "rate",
            rate_value(u64::from(c.min_tx_rate), u64::from(c.max_tx_rate)),
        );
    }
    s
}

impl AdminField {
    /// The name of the setting this field changes (`None` for the VF
    /// count and driver binding).
    pub(super) fn setting(self) -> Option<&'static str> {
        Some(match self {
            Self::Mac => "mac",
            Self::Vlan => "vlan",
            Self::Spoofchk => "spoofchk",
            Self::Trust => "trust",
            Self::Rate => "rate",
            Self::DriverOverride => "driver_override",
            Self::LinkState | Self::Numvfs | Self::Bind | Self::Unbind => return None,
        })
    }
}

/// One VF's administrative state.
#[derive(Debug, Clone, Default, PartialEq)]
struct VfAdmin {
    bdf: String,
    settings: Settings,
    driver: Option<String>,
}

/// The state the last scan saw: PFs by netdev, VFs by (PF, index).
#[derive(Debug, Default)]
pub(super) struct AdminState {
    pf_of_netdev: BTreeMap<String, String>,
    numvfs: BTreeMap<String, u32>,
    vfs: BTreeMap<(String, u32), VfAdmin>,
}

fn vlan_value(vlan: u64, qos: u64) -> Value {
    json!({ "vlan": vlan, "qos": qos })
}

fn rate_value(min: u64, max: u64) -> Value {
    json!({ "min_tx_rate": min, "max_tx_rate": max })
}

/// Text written to sysfs, without its newline; `None` when empty.
fn written(bytes: &[u8]) -> Option<String> {
    let t = text(bytes);
    let t = t.trim_end_matches('\n').trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl AdminState {
    /// Remember the state of every VF of `inv` (and each VF's
    /// `driver_override`, read from sysfs).
    pub(super) fn load(&mut self, host: &dyn Host, inv: &Inventory) {
        self.rebuild(inv, |_, vf| {
            host.read(&device_dir(&vf.bdf).join("driver_override"))
                .ok()
                .and_then(|t| written(t.as_bytes()))
                .filter(|t| t != "(null)")
                .map_or(Value::Null, Value::String)
        });
    }

    /// [`load`](Self::load) from a tick that kept the last scan's devices:
    /// each VF's `driver_override` stays as last known (a write to it is a
    /// record, and makes the next scan whole).
    pub(super) fn follow(&mut self, inv: &Inventory) {
        let old = std::mem::take(&mut self.vfs);
        self.rebuild(inv, |key, vf| {
            old.get(key)
                .filter(|o| o.bdf == vf.bdf)
                .and_then(|o| o.settings.get("driver_override").cloned())
                .unwrap_or(Value::Null)
        });
    }

    fn rebuild(&mut self, inv: &Inventory, driver_override: impl Fn(&(String, u32), &Vf) -> Value) {
        self.pf_of_netdev.clear();
        self.numvfs.clear();
        self.vfs.clear();
        for pf in &inv.pfs {
            if let Some(n) = &pf.netdev {
                self.pf_of_netdev.insert(n.clone(), pf.bdf.clone());
            }
            self.numvfs.insert(pf.bdf.clone(), pf.num_vfs);
            for vf in &pf.vfs {
                let key = (pf.bdf.clone(), vf.index);
                let mut settings = settings_of(vf);
                settings.insert("driver_override", driver_override(&key, vf));
                let state = VfAdmin {
                    bdf: vf.bdf.clone(),
                    settings,
                    driver: vf.driver.clone(),
                };
                self.vfs.insert(key, state);
            }
        }
    }

    fn by_bdf(&mut self, bdf: &str) -> Option<(&(String, u32), &mut VfAdmin)> {
        self.vfs.iter_mut().find(|(_, v)| v.bdf == bdf)
    }

    /// The change a record describes. The state takes the new value when
    /// the change succeeded.
    pub(super) fn change(&mut self, host: &dyn Host, r: &AdminRecord) -> AdminChange {
        let ok = r.ret >= 0;
        let dev = text(&r.dev);
        let actor = actor(host, r);
        let (field, pf, vf_index, device, old, new) = match r.what {
            ADMIN_NUMVFS => {
                let new = written(&r.text).map_or(Value::Null, |t| {
                    t.parse::<u32>().map_or(Value::String(t), |n| json!(n))
                });
                let old = self.numvfs.get(&dev).map(|n| json!(n));
                if ok && let Some(n) = new.as_u64() {
                    self.numvfs.insert(dev.clone(), n as u32);
                }
                let pf = Some(dev);
                (AdminField::Numvfs, pf.clone(), None, pf, old, new)
            }
            ADMIN_DRIVER_OVERRIDE | ADMIN_BIND | ADMIN_UNBIND => {
                let (field, bdf, new) = match r.what {
                    ADMIN_DRIVER_OVERRIDE => (
                        AdminField::DriverOverride,
                        dev,
                        written(&r.text).map_or(Value::Null, Value::String),
                    ),
                    ADMIN_BIND => (
                        AdminField::Bind,
                        written(&r.text).unwrap_or_default(),
                        Value::String(dev),
                    ),
                    _ => (
                        AdminField::Unbind,
                        written(&r.text).unwrap_or_default(),
                        Value::Null,
                    ),
                };
                let (pf, vf_index, old) = match self.by_bdf(&bdf) {
                    Some(((pf, i), v)) => {
                        let old = if field == AdminField::DriverOverride {
                            let old = v.settings.get("driver_override").cloned();
                            if ok {
                                v.settings.insert("driver_override", new.clone());
                            }
                            old.unwrap_or(Value::Null)
                        } else {
                            let old = v.driver.clone().map_or(Value::Null, Value::String);
                            if ok {
                                v.driver = new.as_str().map(str::to_string);
                            }
                            old
                        };
                        (Some(pf.clone()), Some(*i), Some(old))
                    }
                    None => (None, None, None),
                };
                (field, pf, vf_index, Some(bdf), old, new)
            }
            _ => return self.ndo_change(r, dev, actor),
        };
        AdminChange {
            field,
            pf,
            vf_index,
            device,
            old,
            new,
            ret: r.ret,
            actor,
        }
    }

    /// An `ndo_set_vf_*` on the PF netdev `netdev`.
    fn ndo_change(&mut self, r: &AdminRecord, netdev: String, actor: Actor) -> AdminChange {
        // an unknown netdev (not a PF the last scan saw) leaves pf empty
        let (field, new) = match r.what {
            ADMIN_MAC => {
                let mut m = [0u8; 6];
                m.copy_from_slice(&r.text[..6]);
                (AdminField::Mac, json!(MacAddr(m).to_string()))
            }
            ADMIN_VLAN => {
                let mut v = vlan_value(r.a & 0xfff, r.b & 0xff);
                // __be16 as the kernel holds it: 0x0081 is 802.1Q
                let proto = u16::from_be((r.c & 0xffff) as u16);
                if proto != 0x8100 && proto != 0 {
                    v["proto"] = json!(format!("{proto:#06x}"));
                }
                (AdminField::Vlan, v)
            }
            ADMIN_SPOOFCHK => (AdminField::Spoofchk, Value::Bool(r.a & 0xff != 0)),
            ADMIN_TRUST => (AdminField::Trust, Value::Bool(r.a & 0xff != 0)),
            ADMIN_RATE => (
                AdminField::Rate,
                rate_value(r.a & 0xffff_ffff, r.b & 0xffff_ffff),
            ),
            ADMIN_LINK_STATE => (AdminField::LinkState, json!(r.a & 0xffff_ffff)),
            _ => (AdminField::LinkState, Value::Null),
        };
        let pf = self.pf_of_netdev.get(&netdev).cloned();
        let index = u32::try_from(r.vf).ok();
        let vf = match (&pf, index) {
            (Some(p), Some(i)) => self.vfs.get_mut(&(p.clone(), i)),
            _ => None,
        };
        let (device, old) = match vf {
            Some(v) => {
                let old = field.setting().and_then(|k| {
                    let old = v.settings.get(k).cloned();
                    if r.ret == 0 {
                        v.settings.insert(k, new.clone());
                    }
                    old
                });
                (Some(v.bdf.clone()), old)
            }
            None => (None, None),
        };
        AdminChange {
            field,
            pf,
            vf_index: index,
            device,
            old,
            new,
            ret: r.ret,
            actor,
        }
    }
}

/// Who made the change: the record's task, with its executable's and
/// cgroup's paths while it lives.
fn actor(host: &dyn Host, r: &AdminRecord) -> Actor {
    let proc = PathBuf::from(format!("/proc/{}", r.hdr.pid));
    let name = written(&r.exe);
    let exe = host
        .read_link(&proc.join("exe"))
        .ok()
        .filter(|p| {
            // the same process still (its executable has the kernel's name)
            name.as_deref()
                .is_some_and(|n| p.file_name().is_some_and(|f| f == Path::new(n)))
        })
        .map(|p| p.display().to_string())
        .or(name);
    let cgroup = host.read(&proc.join("cgroup")).ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_string)
    });
    Actor {
        pid: r.hdr.pid,
        uid: r.uid,
        comm: text(&r.hdr.comm),
        exe,
        cgroup_id: r.cgroup,
        cgroup,
    }
}
