//! Text -> [`PolicyFile`]: every check that needs only the file.
use std::{collections::HashMap, ops::Range};

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    AllowSpec, At, NumVfs, PF_RULE_KEYS, POLICY_VERSION, PfSection, PolicyError, PolicyFile,
    RULE_KEYS, Rules, Selector, Spot, VfSection,
    values::{
        BYTES_ALLOWED, parse_bytes, parse_cgroup, parse_comm, parse_mode, parse_numvfs,
        parse_positive, parse_storm_action, parse_uid, parse_version,
    },
};
use crate::{
    config::{self, NUMVFS_MAX, Position},
    policy::{MAX_CGROUPS, MAX_DRIVERS, MAX_EXECUTABLES, MAX_SRC_MACS, MAX_UIDS, MAX_VLANS, Mode},
    types::{Bdf, InvalidValue, MacAddr, parse_driver, parse_vlan},
};

/// A parsed TOML value with its byte span.
type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["version", "mode", "defaults", "vf", "pf"];
const SELECTOR_KEYS: &[&str] = &["pf", "index", "bdf", "mac"];
const VF_KEYS: &[&str] = &[
    "pf",
    "index",
    "bdf",
    "mac",
    "dma_quota_bytes",
    "vfio_open",
    "allowed_drivers",
    "allowed_src_macs",
    "allowed_vlans",
    "max_pps",
    "irq_storm_per_s",
    "irq_storm_action",
];
const PF_KEYS: &[&str] = &["device", "numvfs", "numvfs_writers"];
const ALLOW_KEYS: &[&str] = &["uids", "cgroups", "executables"];
const NUMVFS_KEYS: &[&str] = &["min", "max"];

const SELECTOR_ALLOWED: &str = "exactly one selector per [[vf]]: pf + index, bdf, or mac";
const ALLOW_ALLOWED: &str = "a table with any of uids = [..], cgroups = [..], executables = [..] \
     (empty: nobody)";

pub(super) fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let span = e.span();
        PolicyError::Syntax {
            at: span.as_ref().map(|s| Position::at(text, s.start)),
            near: span.map(|s| config::written(text, s)).unwrap_or_default(),
            message: e.message().to_owned(),
        }
    })?;
    Parser { text }.document(doc.get_ref())
}

struct Parser<'t> {
    text: &'t str,
}

impl Parser<'_> {
    fn document(&self, doc: &DeTable<'_>) -> Result<PolicyFile, PolicyError> {
        // As in the config file: a given version is checked first (a file of
        // another version may have keys this parser does not know), a
        // missing one last (so that a misplaced one is reported as such).
        let version = doc.get("version");
        if let Some(version) = version {
            self.integer("version", version, parse_version)?;
        }

        let mut file = PolicyFile {
            mode: Mode::default(),
            defaults: Rules::default(),
            vfs: Vec::new(),
            pfs: Vec::new(),
        };
        // canonical device -> line of its [[pf]]
        let mut devices = HashMap::new();
        for (key, value) in self.entries(doc, "", "the top-level table", TOP_KEYS)? {
            match key {
                "mode" => file.mode = self.string("mode", value, parse_mode)?,
                "defaults" => {
                    let table = self.table("defaults", value, "a table of rules")?;
                    for (key, value) in self.entries(table, "defaults", "[defaults]", RULE_KEYS)? {
                        self.rule(&mut file.defaults, key, &format!("defaults.{key}"), value)?;
                    }
                }
                "vf" => {
                    let tables = self.tables("vf", value, "[[vf]]", "one [[vf]] table per VF")?;
                    for (i, (table, span)) in tables.into_iter().enumerate() {
                        file.vfs.push(self.vf(&format!("vf[{i}]"), table, span)?);
                    }
                }
                "pf" => {
                    let tables = self.tables("pf", value, "[[pf]]", "one [[pf]] table per PF")?;
                    for (i, (table, span)) in tables.into_iter().enumerate() {
                        let pf = self.pf(&format!("pf[{i}]"), table, span, &mut devices)?;
                        file.pfs.push(pf);
                    }
                }
                _ => {} // version: checked above; entries() yields only TOP_KEYS
            }
        }
        if version.is_none() {
            return Err(PolicyError::Missing {
                at: None,
                field: "version".to_owned(),
                table: "the file",
                allowed: format!("{POLICY_VERSION} (the only policy format version)"),
            });
        }
        // An action for VFs that can never have a rate is a mistake. (A
        // [[vf]] action is checked per VF when resolving, after merging.)
        if let Some(action) = &file.defaults.irq_storm_action
            && file.defaults.irq_storm_per_s.is_none()
            && file.vfs.iter().all(|s| s.rules.irq_storm_per_s.is_none())
        {
            return Err(PolicyError::Invalid {
                at: action.spot.at,
                field: action.spot.field.clone(),
                value: action.spot.value.clone(),
                problem: Some("no [defaults] or [[vf]] sets irq_storm_per_s".to_owned()),
                allowed: "set together with irq_storm_per_s (the rate it acts on)".to_owned(),
            });
        }
        Ok(file)
    }

    /// One `[[vf]]` section.
    fn vf(
        &self,
        path: &str,
        table: &DeTable<'_>,
        span: Range<usize>,
    ) -> Result<VfSection, PolicyError> {
        let at = self.pos(span.start);
        let mut rules = Rules::default();
        let (mut pf, mut index, mut bdf, mut mac) = (None, None, None, None);
        // (kind, key, line) of the first selector key
        let mut first: Option<(&str, &str, usize)> = None;
        for (key, value) in self.entries(table, path, "[[vf]]", VF_KEYS)? {
            let field = format!("{path}.{key}");
            if SELECTOR_KEYS.contains(&key) {
                let kind = if key == "index" { "pf" } else { key };
                match first {
                    None => first = Some((kind, key, self.pos(value.span().start).line)),
                    Some((k, first_key, line)) if k != kind => {
                        let problem = format!(
                            "this [[vf]] already selects its VF by {first_key} (line {line})"
                        );
                        return Err(self.invalid(field, value, Some(problem), SELECTOR_ALLOWED));
                    }
                    Some(_) => {}
                }
            }
            match key {
                "pf" => {
                    let device = self.string(&field, value, config::parse_device)?;
                    pf = Some(self.located(field, value, device));
                }
                "index" => {
                    let i = self.integer(&field, value, config::parse_index)?;
                    index = Some(self.located(field, value, i));
                }
                "bdf" => {
                    let b = self.string(&field, value, str::parse::<Bdf>)?;
                    bdf = Some(self.located(field, value, b));
                }
                "mac" => {
                    let m = self.string(&field, value, str::parse::<MacAddr>)?;
                    mac = Some(self.located(field, value, m));
                }
                _ => self.rule(&mut rules, key, &field, value)?,
            }
        }
        let selector = match (pf, index, bdf, mac) {
            (Some(pf), Some(index), None, None) => Selector::Index { pf, index },
            (None, None, Some(bdf), None) => Selector::Bdf(bdf),
            (None, None, None, Some(mac)) => Selector::Mac(mac),
            (Some(_), None, ..) => {
                return Err(PolicyError::Missing {
                    at: Some(at),
                    field: format!("{path}.index"),
                    table: "[[vf]]",
                    allowed: format!(
                        "given with pf: the VF's index, {}",
                        config::allowed_text(config::parse_index(""))
                    ),
                });
            }
            (None, Some(_), ..) => {
                return Err(PolicyError::Missing {
                    at: Some(at),
                    field: format!("{path}.pf"),
                    table: "[[vf]]",
                    allowed: format!("given with index: the VF's PF, {}", config::DEVICE_ALLOWED),
                });
            }
            // none at all (two kinds were refused above)
            _ => {
                return Err(PolicyError::NoSelector {
                    at,
                    field: path.to_owned(),
                });
            }
        };
        if rules.is_empty() {
            return Err(PolicyError::NoRule {
                at,
                field: path.to_owned(),
                table: "[[vf]]",
                allowed: RULE_KEYS,
            });
        }
        Ok(VfSection { selector, rules })
    }

    /// One `[[pf]]` section; `devices` has the devices of those before it.
    fn pf(
        &self,
        path: &str,
        table: &DeTable<'_>,
        span: Range<usize>,
        devices: &mut HashMap<String, usize>,
    ) -> Result<PfSection, PolicyError> {
        let at = self.pos(span.start);
        let (mut device, mut numvfs, mut writers) = (None, None, None);
        for (key, value) in self.entries(table, path, "[[pf]]", PF_KEYS)? {
            let field = format!("{path}.{key}");
            match key {
                "device" => {
                    let d = self.string(&field, value, config::parse_device)?;
                    device = Some(self.located(field, value, d));
                }
                "numvfs" => numvfs = Some(self.numvfs(&field, value)?),
                "numvfs_writers" => {
                    writers = Some(self.allow(&field, value, "the numvfs_writers table")?)
                }
                _ => {} // entries() yields only PF_KEYS
            }
        }
        let Some(device) = device else {
            return Err(PolicyError::Missing {
                at: Some(at),
                field: format!("{path}.device"),
                table: "[[pf]]",
                allowed: config::DEVICE_ALLOWED.to_owned(),
            });
        };
        let canonical = device
            .value
            .parse::<Bdf>()
            .map_or_else(|_| device.value.clone(), |bdf| bdf.to_string());
        if let Some(&first_line) = devices.get(&canonical) {
            return Err(PolicyError::Duplicate {
                at: device.spot.at,
                field: device.spot.field,
                value: device.spot.value,
                table: "[[pf]]",
                first_line,
                allowed: "unique among the [[pf]] sections",
            });
        }
        devices.insert(canonical, at.line);
        if numvfs.is_none() && writers.is_none() {
            return Err(PolicyError::NoRule {
                at,
                field: path.to_owned(),
                table: "[[pf]]",
                allowed: PF_RULE_KEYS,
            });
        }
        Ok(PfSection {
            line: at.line,
            device,
            numvfs,
            writers,
        })
    }

    /// `numvfs = { min = A, max = B }` or `numvfs = N` (exactly N).
    fn numvfs(&self, field: &str, value: &Value<'_>) -> Result<NumVfs, PolicyError> {
        let allowed = || {
            format!(
                "{{ min = A, max = B }} (inclusive; a missing min is 0, a missing max sriov_totalvfs) \
                 or one integer N (exactly N), from 0 to {NUMVFS_MAX}"
            )
        };
        let table = match value.get_ref() {
            DeValue::Integer(_) => {
                let n = self.integer(field, value, parse_numvfs)?;
                let n = self.located(field.to_owned(), value, n);
                return Ok(NumVfs {
                    min: Some(n.clone()),
                    max: Some(n),
                });
            }
            DeValue::Table(table) => table,
            _ => return Err(self.wrong_type(field, value, "a table or an integer", allowed())),
        };
        let (mut min, mut max) = (None, None);
        for (key, v) in self.entries(table, field, "the numvfs table", NUMVFS_KEYS)? {
            let f = format!("{field}.{key}");
            let n = self.integer(&f, v, parse_numvfs)?;
            let n = Some(self.located(f, v, n));
            if key == "min" { min = n } else { max = n }
        }
        match (&min, &max) {
            (None, None) => {
                let problem = Some("an empty table".to_owned());
                Err(self.invalid(field.to_owned(), value, problem, &allowed()))
            }
            (Some(lo), Some(hi)) if lo.value > hi.value => Err(PolicyError::Invalid {
                at: lo.spot.at,
                field: lo.spot.field.clone(),
                value: lo.spot.value.clone(),
                problem: Some(format!("min {} is above max = {}", lo.value, hi.value)),
                allowed: format!("at most max ({})", hi.value),
            }),
            _ => Ok(NumVfs { min, max }),
        }
    }

    /// One rule key of `[defaults]` or a `[[vf]]`.
    fn rule(
        &self,
        rules: &mut Rules,
        key: &str,
        field: &str,
        value: &Value<'_>,
    ) -> Result<(), PolicyError> {
        match key {
            "dma_quota_bytes" => rules.dma_quota_bytes = Some(self.bytes(field, value)?),
            "vfio_open" => {
                rules.vfio_open = Some(self.allow(field, value, "the vfio_open table")?)
            }
            "allowed_drivers" => {
                let l = self.list(
                    field,
                    value,
                    (MAX_DRIVERS, "MAX_DRIVERS"),
                    false,
                    parse_driver,
                )?;
                rules.allowed_drivers = Some(values(l));
            }
            "allowed_src_macs" => {
                let limit = (MAX_SRC_MACS, "MAX_SRC_MACS");
                let l = self.list(field, value, limit, false, str::parse::<MacAddr>)?;
                rules.allowed_src_macs = Some(values(l));
            }
            "allowed_vlans" => {
                let l = self.list(field, value, (MAX_VLANS, "MAX_VLANS"), true, parse_vlan)?;
                rules.allowed_vlans = Some(values(l));
            }
            "max_pps" => rules.max_pps = Some(self.integer(field, value, parse_positive)?),
            "irq_storm_per_s" => {
                rules.irq_storm_per_s = Some(self.integer(field, value, parse_positive)?)
            }
            "irq_storm_action" => {
                let a = self.string(field, value, parse_storm_action)?;
                rules.irq_storm_action = Some(self.located(field.to_owned(), value, a));
            }
            _ => {} // callers pass only rule keys
        }
        Ok(())
    }

    /// `dma_quota_bytes`: an integer, or a string with a unit.
    fn bytes(&self, field: &str, value: &Value<'_>) -> Result<u64, PolicyError> {
        match value.get_ref() {
            DeValue::Integer(_) => self.integer(field, value, |s| {
                parse_positive(s)
                    .map_err(|_| InvalidValue::new("dma_quota_bytes", s, BYTES_ALLOWED))
            }),
            DeValue::String(_) => self.string(field, value, parse_bytes),
            _ => Err(self.wrong_type(
                field,
                value,
                "an integer or a string",
                config::allowed_text(parse_bytes("")),
            )),
        }
    }

    /// `vfio_open` / `numvfs_writers`: who may.
    fn allow(
        &self,
        field: &str,
        value: &Value<'_>,
        table_name: &'static str,
    ) -> Result<AllowSpec, PolicyError> {
        let table = self.table(field, value, ALLOW_ALLOWED)?;
        let mut allow = AllowSpec::default();
        for (key, v) in self.entries(table, field, table_name, ALLOW_KEYS)? {
            let f = format!("{field}.{key}");
            match key {
                "uids" => {
                    allow.uids =
                        values(self.list(&f, v, (MAX_UIDS, "MAX_UIDS"), true, parse_uid)?)
                }
                "cgroups" => {
                    allow.cgroups =
                        self.list(&f, v, (MAX_CGROUPS, "MAX_CGROUPS"), false, parse_cgroup)?
                }
                "executables" => {
                    let limit = (MAX_EXECUTABLES, "MAX_EXECUTABLES");
                    allow.executables = values(self.list(&f, v, limit, false, parse_comm)?);
                }
                _ => {} // entries() yields only ALLOW_KEYS
            }
        }
        Ok(allow)
    }

    /// A list of at most `limit.0` distinct values, each an integer (or a
    /// string) checked by `validate`.
    fn list<T: PartialEq>(
        &self,
        field: &str,
        value: &Value<'_>,
        (max, limit): (usize, &'static str),
        integers: bool,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<Vec<At<T>>, PolicyError> {
        let each = config::allowed_text(validate(""));
        let DeValue::Array(items) = value.get_ref() else {
            let allowed = format!("a list of at most {max} entries, each {each}");
            return Err(self.wrong_type(field, value, "an array", allowed));
        };
        if let Some(extra) = items.get(max) {
            return Err(PolicyError::Invalid {
                at: self.pos(extra.span().start),
                field: field.to_owned(),
                value: config::written(self.text, value.span()),
                problem: Some(format!(
                    "{} entries, over the limit of {max} (policy::{limit})",
                    items.len()
                )),
                allowed: format!(
                    "a list of at most {max} entries (the kernel side keeps a fixed-size array)"
                ),
            });
        }
        let mut out: Vec<At<T>> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let v = if integers {
                self.integer(&f, item, &validate)?
            } else {
                self.string(&f, item, &validate)?
            };
            if let Some(j) = out.iter().position(|o| o.value == v) {
                let problem = Some(format!("the same as {field}[{j}]"));
                return Err(self.invalid(f, item, problem, "listed only once"));
            }
            out.push(self.located(f, item, v));
        }
        Ok(out)
    }

    /// The entries of `table` in file order, refusing keys not in `allowed`.
    fn entries<'a, 'i>(
        &self,
        table: &'a DeTable<'i>,
        path: &str,
        table_name: &'static str,
        allowed: &'static [&'static str],
    ) -> Result<Vec<(&'a str, &'a Value<'i>)>, PolicyError> {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
            .into_iter()
            .map(|(key, value)| {
                let name: &str = key.get_ref();
                if allowed.contains(&name) {
                    return Ok((name, value));
                }
                Err(PolicyError::UnknownKey {
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

    /// A table (`[defaults]`, `vfio_open = { .. }`).
    fn table<'a, 'i>(
        &self,
        field: &str,
        value: &'a Value<'i>,
        allowed: &str,
    ) -> Result<&'a DeTable<'i>, PolicyError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            _ => Err(self.wrong_type(field, value, "a table", allowed.to_owned())),
        }
    }

    /// An array of tables (`[[vf]]`), with each table's span.
    fn tables<'a, 'i>(
        &self,
        field: &str,
        value: &'a Value<'i>,
        table_name: &'static str,
        allowed: &str,
    ) -> Result<Vec<(&'a DeTable<'i>, Range<usize>)>, PolicyError> {
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

    /// An integer, checked by `validate` (a types.rs-style validator given
    /// the decimal text).
    fn integer<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, PolicyError> {
        let DeValue::Integer(n) = value.get_ref() else {
            let allowed = config::allowed_text(validate(""));
            return Err(self.wrong_type(field, value, "an integer", allowed));
        };
        // One beyond i64 (which TOML does not allow either) is refused with
        // the validator's allowed text.
        let checked = match i64::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) => validate(&n.to_string()),
            Err(_) => validate(""),
        };
        checked.map_err(|e| self.invalid(field.to_owned(), value, None, &e.allowed))
    }

    /// A string, checked by `validate`.
    fn string<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, PolicyError> {
        let DeValue::String(s) = value.get_ref() else {
            let allowed = config::allowed_text(validate(""));
            return Err(self.wrong_type(field, value, "a string", allowed));
        };
        validate(s).map_err(|e| self.invalid(field.to_owned(), value, None, &e.allowed))
    }

    fn pos(&self, offset: usize) -> Position {
        Position::at(self.text, offset)
    }

    fn located<T>(&self, field: String, value: &Value<'_>, v: T) -> At<T> {
        At {
            value: v,
            spot: Spot {
                at: self.pos(value.span().start),
                field,
                value: config::written(self.text, value.span()),
            },
        }
    }

    fn wrong_type(
        &self,
        field: &str,
        value: &Value<'_>,
        expected: &'static str,
        allowed: String,
    ) -> PolicyError {
        PolicyError::WrongType {
            at: self.pos(value.span().start),
            field: field.to_owned(),
            value: config::written(self.text, value.span()),
            expected,
            found: config::type_name(value.get_ref()),
            allowed,
        }
    }

    fn invalid(
        &self,
        field: String,
        value: &Value<'_>,
        problem: Option<String>,
        allowed: &str,
    ) -> PolicyError {
        PolicyError::Invalid {
            at: self.pos(value.span().start),
            field,
            value: config::written(self.text, value.span()),
            problem,
            allowed: allowed.to_owned(),
        }
    }
}

fn values<T>(list: Vec<At<T>>) -> Vec<T> {
    list.into_iter().map(|a| a.value).collect()
}

/// Advice for a key that belongs to another table: TOML puts every key
/// after a table header into that table.
fn misplaced_key_hint(table: &str, key: &str) -> &'static str {
    let rule = RULE_KEYS.contains(&key);
    match (table, key) {
        ("[defaults]" | "[[vf]]" | "[[pf]]", "version" | "mode") => {
            " (version and mode must come before the first table)"
        }
        ("the top-level table", _) if rule => " (rules go in [defaults] or a [[vf]] table)",
        ("the top-level table", "index" | "bdf" | "mac") => " (selectors go in a [[vf]] table)",
        (
            "the top-level table" | "[defaults]" | "[[vf]]",
            "device" | "numvfs" | "numvfs_writers",
        ) => " (numvfs rules go in a [[pf]] table)",
        ("[defaults]", "pf" | "index" | "bdf" | "mac") => {
            " ([defaults] applies to every VF; selectors go in a [[vf]] table)"
        }
        ("[[pf]]", _) if rule => " (VF rules go in [defaults] or a [[vf]] table)",
        ("[[pf]]", "pf" | "index" | "bdf" | "mac") => {
            " (a [[pf]] names its PF with device; VF selectors go in a [[vf]] table)"
        }
        ("[[vf]]" | "[defaults]", "uids" | "cgroups" | "executables") => {
            " (who may open the VF goes in vfio_open = { .. })"
        }
        _ => "",
    }
}
