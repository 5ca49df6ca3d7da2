//! `sriov-top --replay` in a real terminal (tmux, on a socket of its own):
//! the table appears, a resize redraws it, `q` exits 0, and the terminal
//! is back on the normal screen.
#![allow(clippy::unwrap_used)]

mod term;

use term::{MOUSE, Tmux, wait_file};

const VFS: [&str; 3] = ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"];

/// `sriov-top --replay` of the lab fixture at speed 100 with `env` in a
/// 120x30 tmux session `t`; its exit status goes to the returned file.
fn start(socket: &str, env: &str) -> (Tmux, tempfile::TempDir, std::path::PathBuf) {
    let bin = assert_cmd::cargo::cargo_bin("sriov-top");
    let dir = tempfile::tempdir().unwrap();
    let exit_file = dir.path().join("exit");
    let tmux = Tmux {
        socket: format!("{socket}-{}", std::process::id()),
    };
    let cmd = format!(
        "cd {} && {env} {} --replay tests/fixtures/lab.ndjson --speed 100; echo EXIT=$? > {}; sleep 60",
        env!("CARGO_MANIFEST_DIR"),
        bin.display(),
        exit_file.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "30",
        &cmd,
    ]);
    (tmux, dir, exit_file)
}

#[test]
fn replay_in_tmux_shows_the_vfs_resizes_and_restores_the_terminal() {
    let (tmux, _dir, exit_file) = start("sriov-top-test", "");

    let s = tmux.wait_for("the 3 VFs in the table", 10, |s| {
        VFS.iter().all(|v| s.contains(v))
    });
    assert!(s.contains("replay lab.ndjson"), "{s}");
    assert!(s.contains("MAC"), "120 columns have room for the MAC:\n{s}");
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "1"
    );
    assert_ne!(
        tmux.run(&["display", "-p", "-t", "t", MOUSE]).trim(),
        "000",
        "mouse captured"
    );

    // narrower: the layout follows
    tmux.run(&["resize-window", "-t", "t", "-x", "64", "-y", "20"]);
    let s = tmux.wait_for("the narrow layout", 10, |s| {
        !s.contains("MAC") && VFS.iter().all(|v| s.contains(v))
    });
    assert!(s.lines().all(|l| l.chars().count() <= 64), "{s}");

    // the replay ends, the UI stays
    tmux.wait_for("replay ended", 10, |s| s.contains("replay ended"));

    tmux.run(&["send-keys", "-t", "t", "q"]);
    let exit = wait_file(&exit_file, 10).unwrap_or_else(|| {
        panic!(
            "sriov-top did not exit on q; the screen:\n{}",
            tmux.screen()
        )
    });
    assert_eq!(exit.trim(), "EXIT=0");
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "0",
        "left on the alternate screen"
    );
    let s = tmux.screen();
    assert!(
        !s.contains("sriov-top  [VFs]") && !VFS.iter().any(|v| s.contains(v)),
        "the UI is still on the normal screen:\n{s}"
    );
    // mouse reporting off again: tmux knows the pane's mode
    assert_eq!(tmux.run(&["display", "-p", "-t", "t", MOUSE]).trim(), "000");
}

#[test]
fn a_panic_restores_the_terminal_before_its_message() {
    let (tmux, _dir, exit_file) =
        start("sriov-top-panic", "RUST_BACKTRACE=0 SRIOV_TOP_TEST_PANIC=1");
    let exit = wait_file(&exit_file, 15)
        .unwrap_or_else(|| panic!("sriov-top did not end; the screen:\n{}", tmux.screen()));
    assert_eq!(exit.trim(), "EXIT=101", "a panic exits 101");
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "0",
        "left on the alternate screen"
    );
    assert_eq!(tmux.run(&["display", "-p", "-t", "t", MOUSE]).trim(), "000");
    let s = tmux.screen();
    // the message is on the normal screen, readable, not staircased by raw mode
    // (not staircased by raw mode: each line starts at column 0)
    assert!(
        s.lines()
            .any(|l| l.starts_with("thread 'main'") && l.contains("panicked at")),
        "no panic header on the normal screen:\n{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("SRIOV_TOP_TEST_PANIC is set: a deliberate panic")),
        "no panic message on the normal screen:\n{s}"
    );
    assert!(
        !s.contains("sriov-top  [VFs]"),
        "the UI is still shown:\n{s}"
    );
}
