//! The TOML reading that the config file ([`super`]) and the policy file
//! ([`crate::policy::file`]) share: the document (a syntax error placed in
//! the text), a table's entries in file order (unknown keys refused, with a
//! hint), arrays of tables, values of a TOML type checked by a types.rs-style
//! validator, and the value as written for messages.
//!
//! Each format refuses with its own error type,
//! [`ConfigError`](super::ConfigError) or
//! [`PolicyError`](crate::policy::file::PolicyError): both have the variants
//! built here, with the same fields ([`FileError`], [`file_error!`]), but
//! word their messages differently.
use std::{io, marker::PhantomData, ops::Range, path::Path};

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::Position;
use crate::types::InvalidValue;

/// A parsed TOML value with its byte span.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Where a value was written, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spot {
    pub(crate) at: Position,
    /// Path of the key, e.g. `vf[0].pf`.
    pub(crate) field: String,
    /// The value as written (shortened).
    pub(crate) value: String,
}

/// The error of a file format, as far as [`Reader`] builds it: its variants
/// `Io`, `Syntax`, `UnknownKey`, `WrongType` and `Invalid`. Implemented by
/// [`file_error!`].
pub(crate) trait FileError {
    /// `Io`: the file could not be read.
    fn io(path: &Path, source: io::Error) -> Self;
    /// `Syntax`: the text is not valid TOML.
    fn syntax(at: Option<Position>, near: String, message: String) -> Self;
    /// `UnknownKey`: `key.value` is the key as written.
    fn unknown_key(
        key: Spot,
        table: &'static str,
        allowed: &'static [&'static str],
        hint: &'static str,
    ) -> Self;
    /// `WrongType`.
    fn wrong_type(spot: Spot, expected: &'static str, found: &'static str, allowed: String)
    -> Self;
    /// `Invalid`.
    fn invalid(spot: Spot, problem: Option<String>, allowed: String) -> Self;
}

/// For the error enum of a file format (which has the variants named in
/// [`FileError`], with the fields of [`ConfigError`](super::ConfigError)'s):
/// [`FileError`], and the `line()` and `column()` of its `position()`.
macro_rules! file_error {
    ($error:ty) => {
        impl $crate::config::toml_util::FileError for $error {
            fn io(path: &::std::path::Path, source: ::std::io::Error) -> Self {
                Self::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }

            fn syntax(at: Option<$crate::config::Position>, near: String, message: String) -> Self {
                Self::Syntax { at, near, message }
            }

            fn unknown_key(
                key: $crate::config::toml_util::Spot,
                table: &'static str,
                allowed: &'static [&'static str],
                hint: &'static str,
            ) -> Self {
                Self::UnknownKey {
                    at: key.at,
                    field: key.field,
                    key: key.value,
                    table,
                    allowed,
                    hint,
                }
            }

            fn wrong_type(
                spot: $crate::config::toml_util::Spot,
                expected: &'static str,
                found: &'static str,
                allowed: String,
            ) -> Self {
                let $crate::config::toml_util::Spot { at, field, value } = spot;
                Self::WrongType {
                    at,
                    field,
                    value,
                    expected,
                    found,
                    allowed,
                }
            }

            fn invalid(
                spot: $crate::config::toml_util::Spot,
                problem: Option<String>,
                allowed: String,
            ) -> Self {
                let $crate::config::toml_util::Spot { at, field, value } = spot;
                Self::Invalid {
                    at,
                    field,
                    value,
                    problem,
                    allowed,
                }
            }
        }

        impl $error {
            /// The 1-based line of the error, when it has a position.
            pub fn line(&self) -> Option<usize> {
                self.position().map(|p| p.line)
            }

            /// The 1-based column (in characters) of the error, when it has a
            /// position.
            pub fn column(&self) -> Option<usize> {
                self.position().map(|p| p.column)
            }
        }
    };
}
pub(crate) use file_error;

/// Read a file's text (`Io` with the path if it cannot be read, or is not
/// UTF-8).
pub(crate) fn read_to_string<E: FileError>(path: &Path) -> Result<String, E> {
    std::fs::read_to_string(path).map_err(|source| E::io(path, source))
}

/// Reads the values of one text, refusing with `E`. A copy is as good as a
/// borrow.
pub(crate) struct Reader<'t, E> {
    text: &'t str,
    /// Advice for a key in the wrong table: (table name, key) -> a text
    /// that starts with a space, or empty.
    hint: fn(&str, &str) -> &'static str,
    error: PhantomData<fn() -> E>,
}

// Not derived: that would ask for `E: Copy`.
impl<E> Clone for Reader<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Reader<'_, E> {}

impl<'t, E: FileError> Reader<'t, E> {
    pub(crate) fn new(text: &'t str, hint: fn(&str, &str) -> &'static str) -> Self {
        Self {
            text,
            hint,
            error: PhantomData,
        }
    }

    /// The text parsed as a TOML document.
    pub(crate) fn document(&self) -> Result<Spanned<DeTable<'t>>, E> {
        DeTable::parse(self.text).map_err(|e| {
            let span = e.span();
            E::syntax(
                span.as_ref().map(|s| self.pos(s.start)),
                span.map(|s| written(self.text, s)).unwrap_or_default(),
                e.message().to_owned(),
            )
        })
    }

    /// The entries of `table` in file order, refusing keys not in `allowed`.
    pub(crate) fn entries<'a, 'i>(
        &self,
        table: &'a DeTable<'i>,
        path: &str,
        table_name: &'static str,
        allowed: &'static [&'static str],
    ) -> Result<Vec<(&'a str, &'a Value<'i>)>, E> {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
            .into_iter()
            .map(|(key, value)| {
                let name: &str = key.get_ref();
                if allowed.contains(&name) {
                    return Ok((name, value));
                }
                let key = Spot {
                    at: self.pos(key.span().start),
                    field: if path.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    },
                    value: name.to_owned(),
                };
                Err(E::unknown_key(
                    key,
                    table_name,
                    allowed,
                    (self.hint)(table_name, name),
                ))
            })
            .collect()
    }

    /// A table (`[defaults]`, `vfio_open = { .. }`).
    pub(crate) fn table<'a, 'i>(
        &self,
        field: &str,
        value: &'a Value<'i>,
        allowed: &str,
    ) -> Result<&'a DeTable<'i>, E> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            _ => Err(self.wrong_type(field, value, "a table", allowed.to_owned())),
        }
    }

    /// An array of tables (`[[pf]]`), with each table's span.
    pub(crate) fn tables<'a, 'i>(
        &self,
        field: &str,
        value: &'a Value<'i>,
        table_name: &'static str,
        allowed: &str,
    ) -> Result<Vec<(&'a DeTable<'i>, Range<usize>)>, E> {
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
    pub(crate) fn integer<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, E> {
        let decimal = match value.get_ref() {
            // The parser keeps the digits unchecked: one beyond i64 (which
            // TOML does not allow either) is refused with the validator's
            // allowed text.
            DeValue::Integer(n) => Some(
                i64::from_str_radix(n.as_str(), n.radix())
                    .map_or_else(|_| String::new(), |n| n.to_string()),
            ),
            _ => None,
        };
        self.checked(field, value, "an integer", decimal.as_deref(), validate)
    }

    /// A string, checked by `validate`.
    pub(crate) fn string<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, E> {
        let text = match value.get_ref() {
            DeValue::String(s) => Some(&**s),
            _ => None,
        };
        self.checked(field, value, "a string", text, validate)
    }

    /// `text` (the value's, when it is of the `expected` type) checked by
    /// `validate`.
    fn checked<T>(
        &self,
        field: &str,
        value: &Value<'_>,
        expected: &'static str,
        text: Option<&str>,
        validate: impl Fn(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, E> {
        let Some(text) = text else {
            return Err(self.wrong_type(field, value, expected, allowed_text(validate(""))));
        };
        validate(text).map_err(|e| self.invalid(field.to_owned(), value, None, e.allowed))
    }

    pub(crate) fn boolean(&self, field: &str, value: &Value<'_>) -> Result<bool, E> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type(field, value, "a boolean", "true or false".to_owned())),
        }
    }

    pub(crate) fn pos(&self, offset: usize) -> Position {
        Position::at(self.text, offset)
    }

    /// The text of `value` as written (shortened: see [`written`]).
    pub(crate) fn written(&self, value: &Value<'_>) -> String {
        written(self.text, value.span())
    }

    /// Where and how `value` (of the key `field`) was written.
    pub(crate) fn spot(&self, field: String, value: &Value<'_>) -> Spot {
        Spot {
            at: self.pos(value.span().start),
            field,
            value: self.written(value),
        }
    }

    pub(crate) fn wrong_type(
        &self,
        field: &str,
        value: &Value<'_>,
        expected: &'static str,
        allowed: String,
    ) -> E {
        let spot = self.spot(field.to_owned(), value);
        E::wrong_type(spot, expected, type_name(value.get_ref()), allowed)
    }

    pub(crate) fn invalid(
        &self,
        field: String,
        value: &Value<'_>,
        problem: Option<String>,
        allowed: String,
    ) -> E {
        E::invalid(self.spot(field, value), problem, allowed)
    }
}

/// The allowed-values text of a validator, from its refusal of the empty
/// string (which every validator used here refuses).
pub(crate) fn allowed_text<T>(refused: Result<T, InvalidValue>) -> String {
    refused.err().map(|e| e.allowed).unwrap_or_default()
}

/// A format version: `version`, the only one there is of the `format`
/// (`config`, `policy`).
pub(crate) fn parse_version(s: &str, version: u32, format: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .ok()
        .filter(|v| *v == version)
        .ok_or_else(|| {
            InvalidValue::new(
                "version",
                s,
                format!("{version} (the only {format} format version)"),
            )
        })
}

/// The TOML type of a value, for messages.
fn type_name(value: &DeValue<'_>) -> &'static str {
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
fn written(text: &str, span: Range<usize>) -> String {
    const MAX_CHARS: usize = 40;
    let full = text.get(span).unwrap_or_default();
    let first_line = full.lines().next().unwrap_or_default();
    let mut shown: String = first_line.chars().take(MAX_CHARS).collect();
    if shown.len() < full.len() {
        shown.push('…');
    }
    shown
}
