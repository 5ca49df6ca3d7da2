//! The text of `sriov policy status` for each state.
#![allow(clippy::unwrap_used)]
use std::{collections::BTreeMap, path::PathBuf};

use sriov_core::policy::{
    Mode,
    instance::State,
    pinned::{OwnerStatus, Status, VfUsage},
};

use super::{duration, status_text};

const NOW: u64 = 1_800_000_000;

fn status(state: State, alive: bool, persisted: bool) -> Status {
    Status {
        state,
        in_force: matches!(state, State::Running | State::Persisted),
        file: Some(PathBuf::from("/etc/p.toml")),
        owner: Some(OwnerStatus {
            pid: 4242,
            alive,
            persist: persisted,
            started_unix: NOW - 3723,
            mode_at_load: Mode::Enforce,
        }),
        persisted,
        pin_dir: PathBuf::from("/sys/fs/bpf/sriov-top"),
        mode: Some("enforce"),
        vfs: vec![VfUsage {
            bdf: "0000:01:10.2".into(),
            slot: 0,
            dma_quota_bytes: Some(1 << 20),
            dma_used_bytes: 8192,
            dropped_src_mac: 3,
            dropped_vlan: 0,
            dropped_rate: 7,
            passed: 120,
        }],
        violations: BTreeMap::from([("numvfs".to_owned(), 2), ("vfio_open".to_owned(), 1)]),
    }
}

#[test]
fn a_running_policy_shows_file_mode_owner_vfs_and_violations() {
    let t = status_text(&status(State::Running, true, false), NOW);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "policy: /etc/p.toml");
    assert_eq!(
        lines[1],
        "mode: enforce (violations are denied and reported)"
    );
    assert_eq!(
        lines[2],
        "owner: sriov-top pid 4242 (running; removed when it exits), loaded 1h 2m 3s ago"
    );
    assert_eq!(lines[3], "pins: /sys/fs/bpf/sriov-top");
    assert!(
        lines[4].starts_with("VF ") && lines[4].contains("DMA QUOTA"),
        "{t}"
    );
    let row: Vec<&str> = lines[5].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "0000:01:10.2",
            "1.0",
            "MiB",
            "8.0",
            "KiB",
            "3",
            "0",
            "7",
            "120"
        ],
        "{t}"
    );
    assert_eq!(lines[6], "violations: numvfs 2, vfio_open 1");
    assert_eq!(lines.len(), 7, "{t}");
}

#[test]
fn a_persisted_policy_says_unload_removes_it() {
    let t = status_text(&status(State::Persisted, false, true), NOW);
    assert!(
        t.contains("owner: sriov-top pid 4242 (exited; persisted with --persist: `sriov policy unload` removes it)"),
        "{t}"
    );
    let mut st = status(State::Persisted, false, true);
    st.vfs.clear();
    st.violations.clear();
    st.mode = Some("audit");
    let t = status_text(&st, NOW);
    assert!(
        t.contains("mode: audit (violations are reported only)\n"),
        "{t}"
    );
    assert!(
        t.contains("VFs: none\n") && t.ends_with("violations: none\n"),
        "{t}"
    );
}

#[test]
fn nothing_or_stale_pins_are_no_policy_in_force() {
    let mut st = status(State::None, false, false);
    st.owner = None;
    assert_eq!(status_text(&st, NOW), "no policy in force\n");
    let t = status_text(&status(State::Stale, false, false), NOW);
    assert!(t.starts_with("no policy in force (stale pins of a stopped sriov-top pid 4242 under /sys/fs/bpf/sriov-top"), "{t}");
}

#[test]
fn durations_are_short() {
    assert_eq!(duration(5), "5s");
    assert_eq!(duration(65), "1m 5s");
    assert_eq!(duration(7200), "2h 0m 0s");
}
