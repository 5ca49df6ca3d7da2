//! Validation against the JSON Schemas of `docs/schema/` by an independent
//! validator: Python's jsonschema (`Draft202012Validator`, Debian's
//! `python3-jsonschema`, installed by `cargo xtask setup`), run through
//! `docs/schema/validate.py` with `/usr/bin/python3` (Debian's interpreter,
//! where that package is; not whatever `python3` comes first on `PATH`).
//!
//! A test support module, not a test target: include it with
//! `#[path = "<...>/sriov-core/tests/support/schema.rs"] mod schema;`
//! (from `sriov-core/tests/lab/`: `"../support/schema.rs"`). Paths are
//! found from `CARGO_MANIFEST_DIR`, so it works from any crate directly
//! under the workspace root.
//!
//! A validator that cannot run (no python3, no jsonschema, an invalid
//! schema) is a panic naming `cargo xtask setup`, never an `Err`: a test
//! that expects a rejection must not pass because nothing was checked.
#![allow(dead_code)] // each includer uses its part

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Debian's Python, the one `python3-jsonschema` installs into.
pub const PYTHON: &str = "/usr/bin/python3";

/// `docs/schema/` of the workspace.
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("schema")
}

/// The schema of `sriov-top --json` lines (`sriov-top.events/v1`).
pub fn events_schema() -> PathBuf {
    schema_dir().join("events-v1.json")
}

/// The schema of `sriov list --json` / `sriov show --json`
/// (`sriov-top.discovery/v1`).
pub fn discovery_schema() -> PathBuf {
    schema_dir().join("discovery-v1.json")
}

/// Validate NDJSON: every non-empty line of `lines` is one document
/// (`sriov-top --json`). `Err` holds the validator's report, one
/// `<stdin>:LINE: at /json/pointer: message` per failure; empty input is an
/// error too.
pub fn validate(schema: &Path, lines: &str) -> Result<(), String> {
    run(schema, lines, false)
}

/// Validate one JSON document, pretty-printed or not (`sriov list --json`).
pub fn validate_document(schema: &Path, json: &str) -> Result<(), String> {
    run(schema, json, true)
}

fn run(schema: &Path, input: &str, document: bool) -> Result<(), String> {
    let script = schema_dir().join("validate.py");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script).arg(schema);
    if document {
        cmd.arg("--document");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {PYTHON} {}: {e}\nFix: cargo xtask setup   (as root; installs python3-jsonschema)",
                script.display()
            )
        });
    // the script reads all of its input before it writes; a script that
    // stopped early (no jsonschema) closes the pipe: its exit status says why
    let _ = child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("waiting for validate.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(stdout),
        _ => panic!(
            "the schema validator could not run ({}): {stderr}{stdout}\n\
             Fix: cargo xtask setup   (as root; installs python3-jsonschema for {PYTHON})",
            out.status
        ),
    }
}
