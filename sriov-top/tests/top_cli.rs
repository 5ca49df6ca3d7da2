//! `sriov-top`'s command line: bad input exits 2 with a message naming the
//! file and line, before the terminal is touched (these run without one).
#![allow(clippy::unwrap_used)]

use std::{fs, path::Path};

use assert_cmd::Command;
use predicates::prelude::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lab.ndjson");

fn top() -> Command {
    let mut c = Command::cargo_bin("sriov-top").unwrap();
    c.timeout(std::time::Duration::from_secs(30));
    c
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn missing_replay_file_names_it() {
    top()
        .args(["--replay", "/nonexistent/capture.ndjson"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot open /nonexistent/capture.ndjson",
        ));
}

#[test]
fn unparsable_first_line_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "bad.ndjson", "\nthis is not json\n");
    top()
        .args(["--replay", &f])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{f}: line 2: not JSON")));
    let f = write(d.path(), "empty.ndjson", "");
    top()
        .args(["--replay", &f])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no events (the file is empty)"));
}

#[test]
fn another_major_schema_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let first = fs::read_to_string(FIXTURE)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .replace("events/v1", "events/v2");
    let f = write(d.path(), "v2.ndjson", &first);
    top().args(["--replay", &f]).assert().code(2).stderr(
        predicate::str::contains(format!("{f}: line 1: "))
            .and(predicate::str::contains("major version 2")),
    );
}

#[test]
fn speed_must_be_above_zero() {
    for bad in ["0", "-1", "fast", "inf"] {
        top()
            .args(["--replay", FIXTURE, &format!("--speed={bad}")])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("not a speed"));
    }
    top()
        .args(["--speed", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--replay"));
}

#[test]
fn replay_conflicts_with_json() {
    top()
        .args(["--replay", FIXTURE, "--json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn without_a_terminal_the_ui_refuses() {
    top()
        .args(["--replay", FIXTURE])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "sriov-top needs a terminal; use --json for a stream",
        ));
    // live: refused before any eBPF is loaded
    top()
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs a terminal"));
}

#[test]
fn help_has_examples() {
    top().arg("--help").assert().success().stdout(
        predicate::str::contains("sriov-top --replay capture.ndjson --speed 10")
            .and(predicate::str::contains("--json"))
            .and(predicate::str::contains("--speed <N>")),
    );
}
