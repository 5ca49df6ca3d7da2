//! `sriov policy status` and `sriov policy unload` on the host: their help,
//! and "no policy in force" where nothing is loaded (the build machines
//! have no BPF LSM; the lab tests in sriov-core/tests/lab/lifetime.rs load
//! one). A host where a policy is loaded, or whose bpffs this user cannot
//! read, gets the matching check instead.
#![allow(clippy::unwrap_used)]

use std::{io::ErrorKind, path::Path};

use assert_cmd::Command;
use predicates::str::contains;
use sriov_core::policy::{enforce::PIN_DIR, instance::RUN_DIR};

fn sriov() -> Command {
    Command::cargo_bin("sriov").unwrap()
}

/// How this host's policy state looks to this user.
enum Host {
    Empty,
    Loaded,
    NoAccess,
}

fn host() -> Host {
    let record = Path::new(RUN_DIR).join("policy.json");
    match std::fs::symlink_metadata(PIN_DIR) {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Host::NoAccess,
        Ok(_) => Host::Loaded,
        Err(_) if record.exists() => Host::Loaded,
        Err(_) => Host::Empty,
    }
}

#[test]
fn status_and_unload_have_help_with_examples() {
    sriov()
        .args(["policy", "--help"])
        .assert()
        .success()
        .stdout(contains("status"))
        .stdout(contains("unload"))
        .stdout(contains("sudo sriov policy status"));
    sriov()
        .args(["policy", "status", "--help"])
        .assert()
        .success()
        .stdout(contains("--json"))
        .stdout(contains("Examples:"))
        .stdout(contains("no policy in force"))
        .stdout(contains("Exit status:"));
    sriov()
        .args(["policy", "unload", "--help"])
        .assert()
        .success()
        .stdout(contains("Examples:"))
        .stdout(contains("--persist"))
        .stdout(contains("kill -TERM"));
    // unload takes no file
    sriov()
        .args(["policy", "unload", "policy.toml"])
        .assert()
        .code(2);
}

#[test]
fn with_nothing_loaded_status_and_unload_say_so_and_change_nothing() {
    match host() {
        Host::Loaded => {
            eprintln!("a policy (or its record) is on this host: not checking \"nothing loaded\"");
            return;
        }
        Host::NoAccess => {
            sriov()
                .args(["policy", "status"])
                .assert()
                .code(1)
                .stderr(contains("needs root"));
            return;
        }
        Host::Empty => {}
    }
    let run_dir_before = Path::new(RUN_DIR).exists();
    sriov()
        .args(["policy", "status"])
        .assert()
        .success()
        .stdout("no policy in force\n");
    let out = sriov()
        .args(["policy", "status", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["state"], "none", "{v}");
    assert_eq!(v["in_force"], false, "{v}");
    assert_eq!(v["mode"], serde_json::Value::Null, "{v}");
    assert_eq!(v["pin_dir"], PIN_DIR, "{v}");
    assert_eq!(v["vfs"], serde_json::json!([]), "{v}");
    sriov()
        .args(["policy", "unload"])
        .assert()
        .success()
        .stdout("no policy in force: nothing to unload\n");
    assert_eq!(
        Path::new(RUN_DIR).exists(),
        run_dir_before,
        "nothing created"
    );
    assert!(!Path::new(PIN_DIR).exists());
}
