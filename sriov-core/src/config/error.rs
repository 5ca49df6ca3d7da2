//! [`ConfigError`]: why a config file was refused, with the position, the
//! field, the value as written and the values that would have been accepted.
use std::{fmt, io, path::PathBuf};

/// A 1-based line and column (counted in characters) in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters (not bytes).
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`. Offsets past the end, or in
    /// the middle of a character, are clamped rather than refused.
    pub fn at(text: &str, offset: usize) -> Self {
        let before = &text.as_bytes()[..offset.min(text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        // Count characters by counting the bytes that start one.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count()
            + 1;
        Self { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a config file was refused.
///
/// `field` is the path of the offending key: `version`, `pf[0].device`,
/// `pf[1].vf[2].vlan`, where the numbers count the `[[pf]]` and `[[pf.vf]]`
/// tables in file order from 0 (so `vf[2]` is the third `[[pf.vf]]` table,
/// whatever its `index`). Messages show only the key as written in the file
/// (`vlan = 5000`), since the position already says where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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

    /// A key this file format does not have.
    #[error("{at}: unknown key `{key}` in {table}; allowed keys: {}{hint}", .allowed.join(", "))]
    UnknownKey {
        /// Position of the key.
        at: Position,
        /// Path of the unknown key, e.g. `pf[0].vf[1].speed`.
        field: String,
        /// The key as written.
        key: String,
        /// The table it is in: `the top level`, `[[pf]]` or `[[pf.vf]]`.
        table: &'static str,
        /// The keys that table may have.
        allowed: &'static [&'static str],
        /// Extra advice for a likely mix-up (starts with a space), or empty.
        hint: &'static str,
    },

    /// A value of the wrong TOML type (`vlan = "ten"`, `spoofchk = "no"`).
    #[error("{at}: {} = {value}: expected {expected}, found {found}; must be {allowed}", key(.field))]
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

    /// A value of the right type that is out of range, malformed, or
    /// inconsistent with another key of the same table.
    #[error("{at}: {} = {value}: {}must be {allowed}", key(.field), Problem(.problem))]
    Invalid {
        /// Position of the value.
        at: Position,
        /// Path of the key.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// What is wrong, when "must be ..." alone would not say it
        /// (e.g. `VF index 5 is not below numvfs = 4`).
        problem: Option<String>,
        /// The values the key accepts.
        allowed: String,
    },

    /// A value that must be unique (PF device, VF index in a PF, MAC in the
    /// file) appears a second time.
    #[error(
        "{at}: {} = {value}: also used by the {table} at line {first_line}; must be {allowed}",
        key(.field)
    )]
    Duplicate {
        /// Position of the second occurrence.
        at: Position,
        /// Path of the key of the second occurrence.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// The kind of table that has it first: `[[pf]]` or `[[pf.vf]]`.
        table: &'static str,
        /// 1-based line of that table.
        first_line: usize,
        /// What uniqueness is required.
        allowed: &'static str,
    },

    /// A required key is absent.
    #[error("{}{table} has no {}; it must be {allowed}", Loc(.at), key(.field))]
    Missing {
        /// Position of the table that lacks it (none for the top level).
        at: Option<Position>,
        /// Path of the missing key.
        field: String,
        /// The table that lacks it: `the file`, `[[pf]]` or `[[pf.vf]]`.
        table: &'static str,
        /// The values the key accepts.
        allowed: String,
    },

    /// The file describes no PF at all.
    #[error("no [[pf]] table: the file must have at least one [[pf]] table with a device")]
    NoPf,
}

// The constructors the TOML reader uses, and `line()` and `column()`.
super::toml_util::file_error!(ConfigError);

impl ConfigError {
    /// Where in the text the error is, when it has a position.
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Io { .. } | Self::NoPf => None,
            Self::Syntax { at, .. } | Self::Missing { at, .. } => *at,
            Self::UnknownKey { at, .. }
            | Self::WrongType { at, .. }
            | Self::Invalid { at, .. }
            | Self::Duplicate { at, .. } => Some(*at),
        }
    }

    /// The path of the offending key (`pf[0].vf[2].vlan`), if the error is
    /// about one; `pf` for [`ConfigError::NoPf`].
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Io { .. } | Self::Syntax { .. } => None,
            Self::NoPf => Some("pf"),
            Self::UnknownKey { field, .. }
            | Self::WrongType { field, .. }
            | Self::Invalid { field, .. }
            | Self::Duplicate { field, .. }
            | Self::Missing { field, .. } => Some(field),
        }
    }
}

/// The last component of a field path: `pf[0].vf[1].vlan` -> `vlan`.
fn key(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// `line L, column C: ` for a known position, nothing otherwise.
pub(crate) struct Loc<'a>(pub(crate) &'a Option<Position>);

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, "{at}: "),
            None => Ok(()),
        }
    }
}

/// `` at `TEXT` `` for a non-empty text, nothing otherwise.
pub(crate) struct Near<'a>(pub(crate) &'a str);

impl fmt::Display for Near<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " at `{}`", self.0)
        }
    }
}

/// `PROBLEM; ` for a known problem, nothing otherwise.
pub(crate) struct Problem<'a>(pub(crate) &'a Option<String>);

impl fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{p}; "),
            None => Ok(()),
        }
    }
}
