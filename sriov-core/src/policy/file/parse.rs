//! Text -> [`PolicyFile`]: every check that needs only the file.
use std::{collections::HashMap, ops::Range};

use toml::de::{DeTable, DeValue};

use super::{
    AllowSpec, At, NumVfs, PF_RULE_KEYS, POLICY_VERSION, PfSection, PolicyError, PolicyFile,
    RULE_KEYS, Rules, Selector, VfSection,
    values::{
        BYTES_ALLOWED, parse_bytes, parse_cgroup, parse_exe, parse_mode, parse_numvfs,
        parse_positive, parse_storm_action, parse_uid, parse_version,
    },
};
use crate::{
    config::{
        self, NUMVFS_MAX,
        toml_util::{Reader, Value, allowed_text},
    },
    policy::{MAX_CGROUPS, MAX_DRIVERS, MAX_EXECUTABLES, MAX_SRC_MACS, MAX_UIDS, MAX_VLANS, Mode},
    types::{Bdf, InvalidValue, MacAddr, parse_driver, parse_vlan},
};

const TOP_KEYS: &[&str] = &["version", "mode", "defaults", "vf", "pf"];
const SELECTOR_KEYS: &[&str] = &["pf", "index", "bdf", "mac"];
/// The keys of a `[[vf]]`: its selector, then its rules.
const VF_KEYS: &[&str] =
    &concat_keys::<{ SELECTOR_KEYS.len() + RULE_KEYS.len() }>(SELECTOR_KEYS, RULE_KEYS);
const PF_KEYS: &[&str] = &["device", "numvfs", "numvfs_writers"];
const ALLOW_KEYS: &[&str] = &["uids", "cgroups", "executables"];
const NUMVFS_KEYS: &[&str] = &["min", "max"];

const SELECTOR_ALLOWED: &str = "exactly one selector per [[vf]]: pf + index, bdf, or mac";
const ALLOW_ALLOWED: &str = "a table with any of uids = [..], cgroups = [..], executables = [..] \
     (empty: nobody)";

pub(super) fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
    let parser = Parser {
        toml: Reader::new(text, misplaced_key_hint),
    };
    let doc = parser.toml.document()?;
    parser.document(doc.get_ref())
}

struct Parser<'t> {
    toml: Reader<'t, PolicyError>,
}

impl Parser<'_> {
    fn document(&self, doc: &DeTable<'_>) -> Result<PolicyFile, PolicyError> {
        let toml = self.toml;
        // As in the config file: a given version is checked first (a file of
        // another version may have keys this parser does not know), a
        // missing one last (so that a misplaced one is reported as such).
        let version = doc.get("version");
        if let Some(version) = version {
            toml.integer("version", version, parse_version)?;
        }

        let mut file = PolicyFile {
            mode: Mode::default(),
            defaults: Rules::default(),
            vfs: Vec::new(),
            pfs: Vec::new(),
        };
        // canonical device -> line of its [[pf]]
        let mut devices = HashMap::new();
        for (key, value) in toml.entries(doc, "", "the top-level table", TOP_KEYS)? {
            match key {
                "mode" => file.mode = toml.string("mode", value, parse_mode)?,
                "defaults" => {
                    let table = toml.table("defaults", value, "a table of rules")?;
                    for (key, value) in toml.entries(table, "defaults", "[defaults]", RULE_KEYS)? {
                        self.rule(&mut file.defaults, key, &format!("defaults.{key}"), value)?;
                    }
                }
                "vf" => {
                    let tables = toml.tables("vf", value, "[[vf]]", "one [[vf]] table per VF")?;
                    for (i, (table, span)) in tables.into_iter().enumerate() {
                        file.vfs.push(self.vf(&format!("vf[{i}]"), table, span)?);
                    }
                }
                "pf" => {
                    let tables = toml.tables("pf", value, "[[pf]]", "one [[pf]] table per PF")?;
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
        let toml = self.toml;
        let at = toml.pos(span.start);
        let mut rules = Rules::default();
        let (mut pf, mut index, mut bdf, mut mac) = (None, None, None, None);
        // (kind, key, line) of the first selector key
        let mut first: Option<(&str, &str, usize)> = None;
        for (key, value) in toml.entries(table, path, "[[vf]]", VF_KEYS)? {
            let field = format!("{path}.{key}");
            if SELECTOR_KEYS.contains(&key) {
                let kind = if key == "index" { "pf" } else { key };
                match first {
                    None => first = Some((kind, key, toml.pos(value.span().start).line)),
                    Some((k, first_key, line)) if k != kind => {
                        let problem = format!(
                            "this [[vf]] already selects its VF by {first_key} (line {line})"
                        );
                        let allowed = SELECTOR_ALLOWED.to_owned();
                        return Err(toml.invalid(field, value, Some(problem), allowed));
                    }
                    Some(_) => {}
                }
            }
            match key {
                "pf" => {
                    let device = toml.string(&field, value, config::parse_device)?;
                    pf = Some(self.located(field, value, device));
                }
                "index" => {
                    let i = toml.integer(&field, value, config::parse_index)?;
                    index = Some(self.located(field, value, i));
                }
                "bdf" => {
                    let b = toml.string(&field, value, str::parse::<Bdf>)?;
                    bdf = Some(self.located(field, value, b));
                }
                "mac" => {
                    let m = toml.string(&field, value, str::parse::<MacAddr>)?;
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
                        allowed_text(config::parse_index(""))
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
        let toml = self.toml;
        let at = toml.pos(span.start);
        let (mut device, mut numvfs, mut writers) = (None, None, None);
        for (key, value) in toml.entries(table, path, "[[pf]]", PF_KEYS)? {
            let field = format!("{path}.{key}");
            match key {
                "device" => {
                    let d = toml.string(&field, value, config::parse_device)?;
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
        let toml = self.toml;
        let allowed = || {
            format!(
                "{{ min = A, max = B }} (inclusive; a missing min is 0, a missing max sriov_totalvfs) \
                 or one integer N (exactly N), from 0 to {NUMVFS_MAX}"
            )
        };
        let table = match value.get_ref() {
            DeValue::Integer(_) => {
                let n = toml.integer(field, value, parse_numvfs)?;
                let n = self.located(field.to_owned(), value, n);
                return Ok(NumVfs {
                    min: Some(n.clone()),
                    max: Some(n),
                });
            }
            DeValue::Table(table) => table,
            _ => return Err(toml.wrong_type(field, value, "a table or an integer", allowed())),
        };
        let (mut min, mut max) = (None, None);
        for (key, v) in toml.entries(table, field, "the numvfs table", NUMVFS_KEYS)? {
            let f = format!("{field}.{key}");
            let n = toml.integer(&f, v, parse_numvfs)?;
            let n = Some(self.located(f, v, n));
            if key == "min" { min = n } else { max = n }
        }
        match (&min, &max) {
            (None, None) => {
                let problem = Some("an empty table".to_owned());
                Err(toml.invalid(field.to_owned(), value, problem, allowed()))
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
        let toml = self.toml;
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
            "max_pps" => rules.max_pps = Some(toml.integer(field, value, parse_positive)?),
            "irq_storm_per_s" => {
                rules.irq_storm_per_s = Some(toml.integer(field, value, parse_positive)?)
            }
            "irq_storm_action" => {
                let a = toml.string(field, value, parse_storm_action)?;
                rules.irq_storm_action = Some(self.located(field.to_owned(), value, a));
            }
            _ => {} // callers pass only rule keys
        }
        Ok(())
    }

    /// `dma_quota_bytes`: an integer, or a string with a unit.
    fn bytes(&self, field: &str, value: &Value<'_>) -> Result<u64, PolicyError> {
        let toml = self.toml;
        match value.get_ref() {
            DeValue::Integer(_) => toml.integer(field, value, |s| {
                parse_positive(s)
                    .map_err(|_| InvalidValue::new("dma_quota_bytes", s, BYTES_ALLOWED))
            }),
            DeValue::String(_) => toml.string(field, value, parse_bytes),
            _ => Err(toml.wrong_type(
                field,
                value,
                "an integer or a string",
                allowed_text(parse_bytes("")),
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
        let toml = self.toml;
        let table = toml.table(field, value, ALLOW_ALLOWED)?;
        let mut allow = AllowSpec::default();
        for (key, v) in toml.entries(table, field, table_name, ALLOW_KEYS)? {
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
                    allow.executables = self.list(&f, v, limit, false, parse_exe)?;
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
        let toml = self.toml;
        let each = allowed_text(validate(""));
        let DeValue::Array(items) = value.get_ref() else {
            let allowed = format!("a list of at most {max} entries, each {each}");
            return Err(toml.wrong_type(field, value, "an array", allowed));
        };
        if let Some(extra) = items.get(max) {
            return Err(PolicyError::Invalid {
                at: toml.pos(extra.span().start),
                field: field.to_owned(),
                value: toml.written(value),
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
                toml.integer(&f, item, &validate)?
            } else {
                toml.string(&f, item, &validate)?
            };
            if let Some(j) = out.iter().position(|o| o.value == v) {
                let problem = Some(format!("the same as {field}[{j}]"));
                return Err(toml.invalid(f, item, problem, "listed only once".to_owned()));
            }
            out.push(self.located(f, item, v));
        }
        Ok(out)
    }

    fn located<T>(&self, field: String, value: &Value<'_>, v: T) -> At<T> {
        At {
            value: v,
            spot: self.toml.spot(field, value),
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

/// `a` then `b`, in an array of their length `N`.
const fn concat_keys<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    assert!(
        a.len() + b.len() == N,
        "N must be the length of a and b together"
    );
    let mut keys = [""; N];
    let mut i = 0;
    while i < N {
        keys[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    keys
}
