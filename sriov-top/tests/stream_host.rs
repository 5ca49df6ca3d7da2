//! `sriov-top --json` on the build host: whatever the kernel offers, the
//! stream is valid NDJSON and every hook that did not attach is named, both
//! as a warning and as a `hook_missing` event. Without root it must fail
//! with a message that says so.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;

#[test]
fn json_stream_on_the_build_host_names_missing_hooks() {
    let out = Command::cargo_bin("sriov-top")
        .unwrap()
        .args(["--json", "--duration", "1"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!out.status.success());
        assert!(stderr.contains("run as root"), "{stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for e in &events {
        assert_eq!(e["schema"], "sriov-top.events/v1");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        assert!(e["ts_ns"].as_u64().unwrap() > 0);
    }
    let missing: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "hook_missing")
        .map(|e| e["hook"].as_str().unwrap())
        .collect();
    let warned = stderr
        .lines()
        .filter(|l| l.contains("not attached"))
        .count();
    assert_eq!(
        missing.len(),
        warned,
        "every missing hook is both an event and a warning:\n{stderr}"
    );
    for m in &missing {
        assert!(stderr.contains(m), "{m} not named in the warnings");
    }
    // the IRQ tracepoint is the one hook that must work everywhere
    assert!(!missing.contains(&"irq_handler_entry"));
    // started, its hook_missing lines, then what discovery sees
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "started");
    assert_eq!(
        kinds.get(1 + missing.len()),
        Some(&"inventory"),
        "{kinds:?}"
    );
    assert!(events[1 + missing.len()]["pfs"].is_array());
    assert_eq!(
        kinds.iter().filter(|k| **k == "inventory").count(),
        1,
        "unchanged: sent once"
    );
}
