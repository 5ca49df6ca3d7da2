//! [`PolicyError`]: why a policy file was refused, with the position, the
//! field, the value as written and the values that would have been accepted.
//! The same shape as [`ConfigError`](crate::config::ConfigError), but
//! messages name the whole field path (`vf[1].vfio_open.uids[2]`): a policy
//! file nests deeper, and the key alone would be ambiguous.
use std::{io, path::PathBuf};

use crate::config::{
    Position,
    error::{Loc, Near, Problem},
    toml_util,
};

/// Why a policy file was refused, or could not be resolved against the
/// system.
///
/// `field` is the path of the offending key: `version`,
/// `defaults.max_pps`, `vf[0].allowed_vlans[2]`, `pf[1].numvfs.max`, where
/// the numbers count the `[[vf]]` and `[[pf]]` sections (and list entries)
/// in file order from 0.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// The text is not valid TOML (bad syntax, a key defined twice, ...).
    #[error("{}invalid TOML{}: {message}", Loc(.at), Near(.near))]
    Syntax {
        /// Where the parser gave up, when it says.
        at: Option<Position>,
        /// The text at that position, shortened (may be empty).
        near: String,
        /// The TOML parser's description, including what it expected.
        message: String,
    },

    /// A key the policy format does not have (in this table).
    #[error("{at}: unknown key `{field}` in {table}; allowed keys: {}{hint}", .allowed.join(", "))]
    UnknownKey {
        /// Position of the key.
        at: Position,
        /// Path of the unknown key, e.g. `vf[0].max_bps`.
        field: String,
        /// The key as written.
        key: String,
        /// The table it is in: `the top-level table`, `[defaults]`,
        /// `[[vf]]`, `[[pf]]`, `vfio_open`, ...
        table: &'static str,
        /// The keys that table may have.
        allowed: &'static [&'static str],
        /// Extra advice for a likely mix-up (starts with a space), or empty.
        hint: &'static str,
    },

    /// A value of the wrong TOML type (`max_pps = "fast"`).
    #[error("{at}: {field} = {value}: expected {expected}, found {found}; must be {allowed}")]
    WrongType {
        /// Position of the value.
        at: Position,
        /// Path of the key.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// The TOML type the key takes, e.g. `an integer`.
        expected: &'static str,
        /// The TOML type that was given, e.g. `a string`.
        found: &'static str,
        /// The values the key accepts.
        allowed: String,
    },

    /// A value of the right type that is out of range, malformed, over a
    /// list limit, or inconsistent with another key.
    #[error("{at}: {field} = {value}: {}must be {allowed}", Problem(.problem))]
    Invalid {
        /// Position of the value.
        at: Position,
        /// Path of the key.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// What is wrong, when "must be ..." alone would not say it.
        problem: Option<String>,
        /// The values the key accepts.
        allowed: String,
    },

    /// A value that does not fit this system: a selector or device that
    /// names nothing here (an unknown PF, a VF index at or above
    /// `sriov_numvfs`, an unknown VF address or MAC), `numvfs` above the
    /// PF's `sriov_totalvfs`, a cgroup directory that does not exist.
    /// `allowed` says what exists.
    #[error("{at}: {field} = {value}: {problem}; must be {allowed}")]
    NotFound {
        /// Position of the value.
        at: Position,
        /// Path of the key.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// What was not found.
        problem: String,
        /// What exists.
        allowed: String,
    },

    /// A value that must be unique (the device of a `[[pf]]`) appears a
    /// second time.
    #[error(
        "{at}: {field} = {value}: also used by the {table} at line {first_line}; must be {allowed}"
    )]
    Duplicate {
        /// Position of the second occurrence.
        at: Position,
        /// Path of the key of the second occurrence.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// The kind of section that has it first: `[[pf]]`.
        table: &'static str,
        /// 1-based line of that section.
        first_line: usize,
        /// What uniqueness is required.
        allowed: &'static str,
    },

    /// A required key is absent.
    #[error("{}{field} is missing from {table}; it must be {allowed}", Loc(.at))]
    Missing {
        /// Position of the table that lacks it (none for the top level).
        at: Option<Position>,
        /// Path of the missing key.
        field: String,
        /// The table that lacks it: `the file`, `[[vf]]`, `[[pf]]`.
        table: &'static str,
        /// The values the key accepts.
        allowed: String,
    },

    /// A `[[vf]]` section without a selector.
    #[error(
        "{at}: {field} ([[vf]]) selects no VF; it must have exactly one selector: pf + index, bdf or mac"
    )]
    NoSelector {
        /// Position of the section.
        at: Position,
        /// Path of the section, e.g. `vf[2]`.
        field: String,
    },

    /// A section that sets nothing.
    #[error("{at}: {field} ({table}) sets no rule; it must set at least one of: {}", .allowed.join(", "))]
    NoRule {
        /// Position of the section.
        at: Position,
        /// Path of the section, e.g. `vf[2]`.
        field: String,
        /// `[[vf]]` or `[[pf]]`.
        table: &'static str,
        /// The rule keys of that section.
        allowed: &'static [&'static str],
    },
}

// The constructors the TOML reader uses, and `line()` and `column()`.
toml_util::file_error!(PolicyError);

impl PolicyError {
    /// Where in the text the error is, when it has a position.
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Io { .. } => None,
            Self::Syntax { at, .. } | Self::Missing { at, .. } => *at,
            Self::UnknownKey { at, .. }
            | Self::WrongType { at, .. }
            | Self::Invalid { at, .. }
            | Self::NotFound { at, .. }
            | Self::Duplicate { at, .. }
            | Self::NoSelector { at, .. }
            | Self::NoRule { at, .. } => Some(*at),
        }
    }

    /// The path of the offending key or section (`vf[0].allowed_vlans[2]`),
    /// if the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Io { .. } | Self::Syntax { .. } => None,
            Self::UnknownKey { field, .. }
            | Self::WrongType { field, .. }
            | Self::Invalid { field, .. }
            | Self::NotFound { field, .. }
            | Self::Duplicate { field, .. }
            | Self::Missing { field, .. }
            | Self::NoSelector { field, .. }
            | Self::NoRule { field, .. } => Some(field),
        }
    }

    /// True when the file itself is fine but does not fit this system (a
    /// selector or device that matches nothing, `numvfs.max` above
    /// `sriov_totalvfs`, a cgroup directory that does not exist): the same
    /// file may resolve on another host, or after VFs are created.
    pub fn is_system_mismatch(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}
