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

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
    path::Path,
};

use serde::Serialize;
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

pub use self::error::{ConfigError, Position};
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
        let doc = DeTable::parse(text).map_err(|e| {
            let span = e.span();
            ConfigError::Syntax {
                at: span.as_ref().map(|s| Position::at(text, s.start)),
                near: span.map(|s| written(text, s)).unwrap_or_default(),
                message: e.message().to_owned(),
            }
        })?;
        Parser {
            text,
            devices: HashMap::new(),
            macs: HashMap::new(),
        }
        .document(doc.get_ref())
    }

    /// Read a config file and [`parse`](Self::parse) it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] with the path if the file cannot be read (or is
    /// not UTF-8), otherwise as for [`parse`](Self::parse).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }
}

/// A parsed TOML value with its byte span.
type Value<'i> = Spanned<DeValue<'i>>;

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
    text: &'t str,
    /// Canonical device -> line of its `[[pf]]`.
    devices: HashMap<String, usize>,
    /// MAC -> line of the `[[pf.vf]]` that has it.
    macs: HashMap<MacAddr, usize>,
}

impl Parser<'_> {
    fn document(&mut self, doc: &DeTable<'_>) -> Result<DesiredState, ConfigError> {
        // A given version is checked first: a file of another version may
        // well have keys this parser does not know, and that is the real
        // problem. A missing one is reported last, so that a `version`
        // misplaced into a `[[pf]]` is reported as such.
        let version = doc.get("version");
        if let Some(version) = version {
            self.integer("version", version, parse_version)?;
        }

        let mut pfs = Vec::new();
        for (key, value) in self.entries(doc, "", "the top-level table", TOP_KEYS)? {
            if key == "pf" {
                let tables = self.tables(
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
        let at = self.pos(span.start);
        let mut device = None;
        let mut numvfs = None;
        let mut vf_tables = None;
        for (key, value) in self.entries(table, path, "[[pf]]", PF_KEYS)? {
            let field = format!("{path}.{key}");
            match key {
                "device" => {
                    device = Some((self.string(&field, value, parse_device)?, field, value))
                }
                "numvfs" => numvfs = Some(self.integer(&field, value, parse_numvfs)?),
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
            let tables = self.tables(&field, value, "[[pf.vf]]", "one [[pf.vf]] table per VF")?;
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
        let at = self.pos(span.start);
        let mut vf = VfConfig {
            line: at.line,
            ..VfConfig::default()
        };
        let mut index = None;
        let mut mac_at = None;
        let mut qos_at = None;
        let mut min_rate_at = None;
        for (key, value) in self.entries(table, path, "[[pf.vf]]", VF_KEYS)? {
            let field = format!("{path}.{key}");
            match key {
                "index" => index = Some((self.integer(&field, value, parse_index)?, field, value)),
                "mac" => {
                    vf.mac = Some(self.string(&field, value, str::parse::<MacAddr>)?);
                    mac_at = Some((field, value));
                }
                "vlan" => vf.vlan = Some(self.integer(&field, value, parse_vlan)?),
                "qos" => {
                    vf.qos = Some(self.integer(&field, value, parse_qos)?);
                    qos_at = Some((field, value));
                }
                "spoofchk" => vf.spoofchk = Some(self.boolean(&field, value)?),
                "trust" => vf.trust = Some(self.boolean(&field, value)?),
                "state" => {
                    vf.state = Some(self.string(&field, value, str::parse::<VfLinkState>)?)
                }
                "min_tx_rate" => {
                    vf.min_tx_rate =
                        Some(self.integer(&field, value, |s| parse_rate("min_tx_rate", s))?);
                    min_rate_at = Some((field, value));
                }
                "max_tx_rate" => {
                    vf.max_tx_rate =
                        Some(self.integer(&field, value, |s| parse_rate("max_tx_rate", s))?);
                }
                "driver" => vf.driver = Some(self.string(&field, value, parse_driver)?),
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
            return Err(self.invalid(field, value, Some(problem), allowed));
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
            return Err(self.invalid(field, value, Some(problem.to_owned()), allowed));
        }
        if let (Some((field, value)), Some(min), Some(max)) =
            (min_rate_at, vf.min_tx_rate, vf.max_tx_rate)
            && max > 0
            && min > max
        {
            let problem = format!("min_tx_rate {min} is above max_tx_rate = {max}");
            let allowed = format!("at most max_tx_rate ({max}), unless max_tx_rate = 0 (no limit)");
            return Err(self.invalid(field, value, Some(problem), allowed));
        }
        if let (Some(mac), Some((field, value))) = (vf.mac, mac_at) {
            if let Some(&first) = self.macs.get(&mac) {
                return Err(self.duplicate(field, value, "[[pf.vf]]", first, "unique in the file"));
            }
            self.macs.insert(mac, vf.line);
        }
        Ok((index, vf))
    }

    /// The entries of `table` in file order, refusing keys not in `allowed`.
    fn entries<'a, 'i>(
        &self,
        table: &'a DeTable<'i>,
        path: &str,
        table_name: &'static str,
        allowed: &'static [&'static str],
    ) -> Result<Vec<(&'a str, &'a Value<'i>)>, ConfigError> {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
            .into_iter()
            .map(|(key, value)| {
                let name: &str = key.get_ref();
                if allowed.contains(&name) {
                    return Ok((name, value));
                }
                Err(ConfigError::UnknownKey {
                    at: self.pos(key.span().start),
                    field: if path.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    },
                    key: name.to_owned(),
                    table: table_name,
                    allowed,
                    hint: misplaced_key_hint(table_name, name),
                })
            })
            .collect()
    }

    /// An array of tables (`[[pf]]`), with each table's span.
    fn tables<'a, 'i>(
        &self,
        field: &str,
        value: &'a Value<'i>,
        table_name: &'static str,
        allowed: &str,
    ) -> Result<Vec<(&'a DeTable<'i>, Range<usize>)>, ConfigError> {
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.wrong_type(field, value, "an array of tables", allowed.to_owned()));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.get_ref() {
                DeValue::Table(table) => Ok((table, item.span())),
                _ => Err(self.wrong_type(
                    &format!("{field}[{i}]"),
                    item,
                    "a table",
                    format!("a {table_name} table"),
                )),
            })
            .collect()
    }

    /// An integer, checked by `validate` (a types.rs-style validator given the
    /// decimal text).
    fn integer<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, ConfigError> {
        let DeValue::Integer(n) = value.get_ref() else {
            return Err(self.wrong_type(field, value, "an integer", allowed_text(validate(""))));
        };
        // The parser keeps the digits unchecked: one beyond i64 (which TOML
        // does not allow either) is refused with the validator's allowed text.
        let checked = match i64::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) => validate(&n.to_string()),
            Err(_) => validate(""),
        };
        checked.map_err(|e| self.invalid(field.to_owned(), value, None, e.allowed))
    }

    /// A string, checked by `validate`.
    fn string<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, ConfigError> {
        let DeValue::String(s) = value.get_ref() else {
            return Err(self.wrong_type(field, value, "a string", allowed_text(validate(""))));
        };
        validate(s).map_err(|e| self.invalid(field.to_owned(), value, None, e.allowed))
    }

    fn boolean(&self, field: &str, value: &Value<'_>) -> Result<bool, ConfigError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type(field, value, "a boolean", "true or false".to_owned())),
        }
    }

    fn pos(&self, offset: usize) -> Position {
        Position::at(self.text, offset)
    }

    fn wrong_type(
        &self,
        field: &str,
        value: &Value<'_>,
        expected: &'static str,
        allowed: String,
    ) -> ConfigError {
        ConfigError::WrongType {
            at: self.pos(value.span().start),
            field: field.to_owned(),
            value: written(self.text, value.span()),
            expected,
            found: type_name(value.get_ref()),
            allowed,
        }
    }

    fn invalid(
        &self,
        field: String,
        value: &Value<'_>,
        problem: Option<String>,
        allowed: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.pos(value.span().start),
            field,
            value: written(self.text, value.span()),
            problem,
            allowed,
        }
    }

    fn duplicate(
        &self,
        field: String,
        value: &Value<'_>,
        table: &'static str,
        first_line: usize,
        allowed: &'static str,
    ) -> ConfigError {
        ConfigError::Duplicate {
            at: self.pos(value.span().start),
            field,
            value: written(self.text, value.span()),
            table,
            first_line,
            allowed,
        }
    }
}

/// The format version: [`CONFIG_VERSION`].
fn parse_version(s: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .ok()
        .filter(|v| *v == CONFIG_VERSION)
        .ok_or_else(|| {
            InvalidValue::new(
                "version",
                s,
                format!("{CONFIG_VERSION} (the only config format version)"),
            )
        })
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

/// The allowed-values text of a validator, from its refusal of the empty
/// string (which every validator used here refuses).
pub(crate) fn allowed_text<T>(refused: Result<T, InvalidValue>) -> String {
    refused.err().map(|e| e.allowed).unwrap_or_default()
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

/// The TOML type of a value, for messages.
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The text of `span` as written in the file: its first line, at most 40
/// characters, with `…` when shortened.
pub(crate) fn written(text: &str, span: Range<usize>) -> String {
    const MAX_CHARS: usize = 40;
    let full = text.get(span).unwrap_or_default();
    let first_line = full.lines().next().unwrap_or_default();
    let mut shown: String = first_line.chars().take(MAX_CHARS).collect();
    if shown.len() < full.len() {
        shown.push('…');
    }
    shown
}
