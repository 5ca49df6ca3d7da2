//! The declarative config file of `sriov plan FILE` / `sriov apply FILE`.
//!
//! A TOML file describes the desired SR-IOV state of some PFs and their VFs:
//!
//! ```toml
//! version = 1
//!
//! [[pf]]
//! device = "0000:01:00.0"   # PCI address or netdev name
//! numvfs = 4
//!
//! [[pf.vf]]
//! index = 0
//! mac = "02:00:00:00:00:01"
//! vlan = 10
//! qos = 3
//! spoofchk = false
//! trust = false
//! state = "auto"
//! min_tx_rate = 0
//! max_tx_rate = 1000
//! driver = "vfio-pci"
//! ```
//!
//! [`DesiredState::parse`] does every check that needs only the file: syntax,
//! types, ranges, unknown keys, duplicates, and consistency within a table.
//! Checks against the system (does the PF exist, is `numvfs` within
//! `sriov_totalvfs`, is the driver present) happen later, and can point back
//! into the file with [`PfConfig::line`] and [`VfConfig::line`].
//!
//! Every [`ConfigError`] names the position, the key, the value as written
//! and what would be accepted, e.g.
//! `line 7, column 8: vlan = 5000: must be an integer from 0 (no VLAN) to 4094`.
pub(crate) mod error;
#[cfg(test)]
mod tests;
pub(crate) mod toml_util;

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
    path::Path,
};

use serde::Serialize;
use toml::de::DeTable;

pub use self::error::{ConfigError, Position};
use self::toml_util::{Reader, Value, allowed_text};
use crate::types::{
    Bdf, InvalidValue, MacAddr, VLAN_MAX, VfLinkState, parse_driver, parse_qos, parse_rate,
    parse_vlan,
};

/// The only config format version there is.
pub const CONFIG_VERSION: u32 = 1;

/// The highest `numvfs` a config may ask for (VF indexes go up to one less).
/// Whether a PF supports that many is checked later, against sysfs.
pub const NUMVFS_MAX: u32 = 256;

/// The desired state of the PFs a config file lists, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DesiredState {
    /// One entry per `[[pf]]` table.
    pub pfs: Vec<PfConfig>,
}

/// The desired state of one PF (a `[[pf]]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PfConfig {
    /// The PF as written: a PCI address (`0000:01:00.0`) or a netdev name
    /// (`eth0`). Its syntax is checked; whether it exists is not.
    pub device: String,
    /// Desired `sriov_numvfs`, if given.
    pub numvfs: Option<u32>,
    /// The VFs to configure, by VF index.
    pub vfs: BTreeMap<u32, VfConfig>,
    /// 1-based line of the `[[pf]]` table, for errors found later.
    pub line: usize,
}

/// The desired settings of one VF (a `[[pf.vf]]` table). `None` leaves a
/// setting as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VfConfig {
    /// Unicast, non-zero MAC address.
    pub mac: Option<MacAddr>,
    /// VLAN id, 0 (no VLAN) to 4094.
    pub vlan: Option<u16>,
    /// 802.1p priority, 0 to 7; only set together with a non-zero `vlan`.
    pub qos: Option<u8>,
    /// MAC/VLAN spoof checking.
    pub spoofchk: Option<bool>,
    /// Trusted mode.
    pub trust: Option<bool>,
    /// Administrative link state.
    pub state: Option<VfLinkState>,
    /// Minimum TX rate in Mbit/s.
    pub min_tx_rate: Option<u32>,
    /// Maximum TX rate in Mbit/s (0 = no limit).
    pub max_tx_rate: Option<u32>,
    /// Driver to bind the VF to (syntax checked only).
    pub driver: Option<String>,
    /// 1-based line of the `[[pf.vf]]` table, for errors found later.
    pub line: usize,
}

impl DesiredState {
    /// Parse and check a config file's text. Does not look at the system.
    ///
    /// # Errors
    ///
    /// The first problem found, roughly in file order: malformed TOML, an
    /// unknown key, a value of the wrong type or out of range, a duplicate,
    /// or a missing `version`, `device` or `index`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut parser = Parser {
            toml: Reader::new(text, misplaced_key_hint),
            devices: HashMap::new(),
            macs: HashMap::new(),
        };
        let doc = parser.toml.document()?;
        parser.document(doc.get_ref())
    }

    /// Read a config file and [`parse`](Self::parse) it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] with the path if the file cannot be read (or is
    /// not UTF-8), otherwise as for [`parse`](Self::parse).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        toml_util::read_to_string(path).and_then(|text| Self::parse(&text))
    }
}

const TOP_KEYS: &[&str] = &["version", "pf"];
const PF_KEYS: &[&str] = &["device", "numvfs", "vf"];
const VF_KEYS: &[&str] = &[
    "index",
    "mac",
    "vlan",
    "qos",
    "spoofchk",
    "trust",
    "state",
    "min_tx_rate",
    "max_tx_rate",
    "driver",
];

pub(crate) const DEVICE_ALLOWED: &str = "a PCI address (dddd:bb:dd.f, e.g. 0000:01:00.0) or a network interface name \
     (1 to 15 characters, no '/', ':' or whitespace, not \".\" or \"..\")";

/// The state of one parse: the text (for positions) and what must be unique
/// across the whole file.
struct Parser<'t> {
    toml: Reader<'t, ConfigError>,
    /// Canonical device -> line of its `[[pf]]`.
    devices: HashMap<String, usize>,
    /// MAC -> line of the `[[pf.vf]]` that has it.
    macs: HashMap<MacAddr, usize>,
}

impl Parser<'_> {
    fn document(&mut self, doc: &DeTable<'_>) -> Result<DesiredState, ConfigError> {
        let toml = self.toml;
        // A given version is checked first: a file of another version may
        // well have keys this parser does not know, and that is the real
        // problem. A missing one is reported last, so that a `version`
        // misplaced into a `[[pf]]` is reported as such.
        let version = doc.get("version");
        if let Some(version) = version {
            toml.integer("version", version, parse_version)?;
        }

        let mut pfs = Vec::new();
        for (key, value) in toml.entries(doc, "", "the top-level table", TOP_KEYS)? {
            if key == "pf" {
                let tables = toml.tables(
                    "pf",
                    value,
                    "[[pf]]",
                    "one [[pf]] table per physical function",
                )?;
                for (i, (table, span)) in tables.into_iter().enumerate() {
                    pfs.push(self.pf(&format!("pf[{i}]"), table, span)?);
                }
            }
        }
        if version.is_none() {
            return Err(ConfigError::Missing {
                at: None,
                field: "version".to_owned(),
                table: "the file",
                allowed: CONFIG_VERSION.to_string(),
            });
        }
        if pfs.is_empty() {
            return Err(ConfigError::NoPf);
        }
        Ok(DesiredState { pfs })
    }

    fn pf(
        &mut self,
        path: &str,
        table: &DeTable<'_>,
        span: Range<usize>,
    ) -> Result<PfConfig, ConfigError> {
        let toml = self.toml;
        let at = toml.pos(span.start);
        let mut device = None;
        let mut numvfs = None;
        let mut vf_tables = None;
        for (key, value) in toml.entries(table, path, "[[pf]]", PF_KEYS)? {
            let field = format!("{path}.{key}");
            match key {
                "device" => {
                    device = Some((toml.string(&field, value, parse_device)?, field, value))
                }
                "numvfs" => numvfs = Some(toml.integer(&field, value, parse_numvfs)?),
                "vf" => vf_tables = Some((field, value)),
                _ => {} // entries() yields only PF_KEYS
            }
        }

        let Some((device, field, value)) = device else {
            return Err(ConfigError::Missing {
                at: Some(at),
                field: format!("{path}.device"),
                table: "[[pf]]",
                allowed: DEVICE_ALLOWED.to_owned(),
            });
        };
        let canonical = device
            .parse::<Bdf>()
            .map_or_else(|_| device.clone(), |bdf| bdf.to_string());
        if let Some(&first) = self.devices.get(&canonical) {
            return Err(self.duplicate(
                field,
                value,
                "[[pf]]",
                first,
                "unique among the [[pf]] tables",
            ));
        }
        self.devices.insert(canonical, at.line);

        let mut pf = PfConfig {
            device,
            numvfs,
            vfs: BTreeMap::new(),
            line: at.line,
        };
        if let Some((field, value)) = vf_tables {
            let tables = toml.tables(&field, value, "[[pf.vf]]", "one [[pf.vf]] table per VF")?;
            for (j, (table, span)) in tables.into_iter().enumerate() {
                let (index, vf) = self.vf(&format!("{field}[{j}]"), table, span, &pf)?;
                pf.vfs.insert(index, vf);
            }
        }
        Ok(pf)
    }

    /// One `[[pf.vf]]` table of `pf` (which has the VFs before it).
    fn vf(
        &mut self,
        path: &str,
        table: &DeTable<'_>,
        span: Range<usize>,
        pf: &PfConfig,
    ) -> Result<(u32, VfConfig), ConfigError> {
        let toml = self.toml;
        let at = toml.pos(span.start);
        let mut vf = VfConfig {
            line: at.line,
            ..VfConfig::default()
        };
        let mut index = None;
        let mut mac_at = None;
        let mut qos_at = None;
        let mut min_rate_at = None;
        for (key, value) in toml.entries(table, path, "[[pf.vf]]", VF_KEYS)? {
            let field = format!("{path}.{key}");
            match key {
                "index" => index = Some((toml.integer(&field, value, parse_index)?, field, value)),
                "mac" => {
                    vf.mac = Some(toml.string(&field, value, str::parse::<MacAddr>)?);
                    mac_at = Some((field, value));
                }
                "vlan" => vf.vlan = Some(toml.integer(&field, value, parse_vlan)?),
                "qos" => {
                    vf.qos = Some(toml.integer(&field, value, parse_qos)?);
                    qos_at = Some((field, value));
                }
                "spoofchk" => vf.spoofchk = Some(toml.boolean(&field, value)?),
                "trust" => vf.trust = Some(toml.boolean(&field, value)?),
                "state" => {
                    vf.state = Some(toml.string(&field, value, str::parse::<VfLinkState>)?)
                }
                "min_tx_rate" => {
                    vf.min_tx_rate =
                        Some(toml.integer(&field, value, |s| parse_rate("min_tx_rate", s))?);
                    min_rate_at = Some((field, value));
                }
                "max_tx_rate" => {
                    vf.max_tx_rate =
                        Some(toml.integer(&field, value, |s| parse_rate("max_tx_rate", s))?);
                }
                "driver" => vf.driver = Some(toml.string(&field, value, parse_driver)?),
                _ => {} // entries() yields only VF_KEYS
            }
        }

        let Some((index, field, value)) = index else {
            return Err(ConfigError::Missing {
                at: Some(at),
                field: format!("{path}.index"),
                table: "[[pf.vf]]",
                allowed: allowed_text(parse_index("")),
            });
        };
        if let Some(numvfs) = pf.numvfs.filter(|n| index >= *n) {
            let problem = format!("VF index {index} is not below numvfs = {numvfs}");
            let allowed = match numvfs.checked_sub(1) {
                Some(last) => {
                    format!("an integer from 0 to {last} (raise numvfs or remove this [[pf.vf]])")
                }
                None => "below numvfs (raise numvfs or remove this [[pf.vf]])".to_owned(),
            };
            return Err(toml.invalid(field, value, Some(problem), allowed));
        }
        if let Some(first) = pf.vfs.get(&index) {
            let allowed = "unique among the [[pf.vf]] tables of this [[pf]]";
            return Err(self.duplicate(field, value, "[[pf.vf]]", first.line, allowed));
        }
        if let Some((field, value)) = qos_at
            && vf.vlan.is_none_or(|v| v == 0)
        {
            let problem = match vf.vlan {
                None => "qos needs a VLAN, but vlan is not set",
                Some(_) => "qos needs a VLAN, but vlan = 0",
            };
            let allowed = format!("set only together with a vlan from 1 to {VLAN_MAX}");
            return Err(toml.invalid(field, value, Some(problem.to_owned()), allowed));
        }
        if let (Some((field, value)), Some(min), Some(max)) =
            (min_rate_at, vf.min_tx_rate, vf.max_tx_rate)
            && max > 0
            && min > max
        {
            let problem = format!("min_tx_rate {min} is above max_tx_rate = {max}");
            let allowed = format!("at most max_tx_rate ({max}), unless max_tx_rate = 0 (no limit)");
            return Err(toml.invalid(field, value, Some(problem), allowed));
        }
        if let (Some(mac), Some((field, value))) = (vf.mac, mac_at) {
            if let Some(&first) = self.macs.get(&mac) {
                return Err(self.duplicate(field, value, "[[pf.vf]]", first, "unique in the file"));
            }
            self.macs.insert(mac, vf.line);
        }
        Ok((index, vf))
    }

    fn duplicate(
        &self,
        field: String,
        value: &Value<'_>,
        table: &'static str,
        first_line: usize,
        allowed: &'static str,
    ) -> ConfigError {
        let toml_util::Spot { at, field, value } = self.toml.spot(field, value);
        ConfigError::Duplicate {
            at,
            field,
            value,
            table,
            first_line,
            allowed,
        }
    }
}

/// The format version: [`CONFIG_VERSION`].
fn parse_version(s: &str) -> Result<u32, InvalidValue> {
    toml_util::parse_version(s, CONFIG_VERSION, "config")
}

/// A desired `sriov_numvfs`: up to [`NUMVFS_MAX`].
fn parse_numvfs(s: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n <= NUMVFS_MAX)
        .ok_or_else(|| InvalidValue::new("numvfs", s, format!("an integer from 0 to {NUMVFS_MAX}")))
}

/// A VF index: below [`NUMVFS_MAX`].
pub(crate) fn parse_index(s: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .ok()
        .filter(|i| *i < NUMVFS_MAX)
        .ok_or_else(|| {
            InvalidValue::new(
                "index",
                s,
                format!("an integer from 0 to {}", NUMVFS_MAX - 1),
            )
        })
}

/// A PF: a PCI address, or a name the kernel would accept for a netdev
/// (`dev_valid_name`: at most IFNAMSIZ - 1 bytes, no '/', ':' or whitespace).
pub(crate) fn parse_device(s: &str) -> Result<String, InvalidValue> {
    let ifname = (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ifname || s.parse::<Bdf>().is_ok() {
        Ok(s.to_owned())
    } else {
        Err(InvalidValue::new("device", s, DEVICE_ALLOWED))
    }
}

/// Advice for a key that belongs to another table: TOML puts every key after
/// a `[[pf]]` header into that table, which catches people out.
fn misplaced_key_hint(table: &str, key: &str) -> &'static str {
    match (table, key) {
        ("[[pf]]" | "[[pf.vf]]", "version") => " (version must come before the first [[pf]])",
        ("the top-level table", "device" | "numvfs") => " (PF keys go in a [[pf]] table)",
        ("[[pf.vf]]", "device" | "numvfs") => {
            " (PF keys must come before the first [[pf.vf]] of their [[pf]])"
        }
        ("the top-level table" | "[[pf]]", _) if VF_KEYS.contains(&key) => {
            " (VF settings go in a [[pf.vf]] table)"
        }
        _ => "",
    }
}
