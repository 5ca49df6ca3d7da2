//! SIGTERM stops sriov-top as SIGINT does, in every mode: the terminal UI
//! (live and `--replay`, in a tmux pane of its own) quits as on `q`, exit
//! 0 with the terminal restored; `--json` ends its stream, exit 0 (root
//! only: the stream needs the probes).
#![allow(clippy::unwrap_used)]

mod term;

use term::{MOUSE, Tmux, wait_file};

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// `sriov-top ARGS` in a 120x30 tmux pane, its UI up: the pane, the
/// directory of its pid file and exit file, its pid.
fn start_ui(name: &str, args: &str) -> (Tmux, tempfile::TempDir, i32) {
    let bin = assert_cmd::cargo::cargo_bin("sriov-top");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let exit_file = dir.path().join("exit");
    let tmux = Tmux {
        socket: format!("sriov-top-{name}-{}", std::process::id()),
    };
    let cmd = format!(
        "cd {} && sh -c 'echo $$ > {}; exec {} {args}'; echo EXIT=$? > {}; sleep 60",
        env!("CARGO_MANIFEST_DIR"),
        pid_file.display(),
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
    let pid: i32 = wait_file(&pid_file, 10)
        .expect("no pid")
        .trim()
        .parse()
        .unwrap();
    tmux.wait_for("the UI", 30, |s| s.contains("sriov-top  [VFs]"));
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "1"
    );
    (tmux, dir, pid)
}

/// `sriov-top ARGS` in a tmux pane; once its UI is up, `sig` to it: it
/// must exit 0 (not killed: 128 + the signal) within 10 s, and leave the
/// terminal as it found it.
fn ui_stops_on(name: &str, args: &str, sig: Signal) {
    let (tmux, dir, pid) = start_ui(name, args);
    kill(Pid::from_raw(pid), sig).unwrap();
    let exit = wait_file(&dir.path().join("exit"), 10).unwrap_or_else(|| {
        // not left behind (on a dead terminal, it may spin)
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        panic!(
            "sriov-top did not exit on {sig}; the screen:\n{}",
            tmux.screen()
        )
    });
    assert_eq!(exit.trim(), "EXIT=0", "on {sig}:\n{}", tmux.screen());
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim(),
        "0",
        "left on the alternate screen"
    );
    assert_eq!(tmux.run(&["display", "-p", "-t", "t", MOUSE]).trim(), "000");
    let s = tmux.screen();
    assert!(
        !s.contains("sriov-top  [VFs]"),
        "the UI is still shown:\n{s}"
    );
}

/// Whether `pid` has exited (gone, or a zombie not reaped yet).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

const REPLAY: &str = "--replay tests/fixtures/lab.ndjson --speed 100";

#[test]
fn replay_quits_on_sigint() {
    // before: no listener in replay mode, SIGINT killed it (EXIT=130) in
    // raw mode on the alternate screen
    ui_stops_on("replay-int", REPLAY, Signal::SIGINT);
}

#[test]
fn replay_quits_on_sigterm() {
    ui_stops_on("replay-term", REPLAY, Signal::SIGTERM);
}

/// Live on this host: with or without SR-IOV devices, root or not (the UI
/// goes on without the probes).
#[test]
fn live_ui_quits_on_sigint() {
    // before: SIGINT stopped the collector only; the UI stayed ("source
    // ended") until q
    ui_stops_on("live-int", "", Signal::SIGINT);
}

#[test]
fn live_ui_quits_on_sigterm() {
    ui_stops_on("live-term", "", Signal::SIGTERM);
}

/// `sriov-top --json` until its first line, then `sig`: exit 0, every line
/// whole JSON.
fn json_stops_on(sig: Signal) {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("--json needs root (the probes): not tested here");
        return;
    }
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sriov-top"))
        .args(["--json", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"kind\":\"started\""), "{first}");
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("sriov-top --json did not stop on {sig}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "on {sig}: {status}\n{stderr}");
    for line in out.lines() {
        let line = line.unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn json_stops_on_sigint() {
    json_stops_on(Signal::SIGINT);
}

#[test]
fn json_stops_on_sigterm() {
    json_stops_on(Signal::SIGTERM);
}

/// The terminal goes away under the live UI (tmux killed: a closed
/// window, a lost ssh session): SIGHUP, and the UI must end. After the
/// collector ended (`--duration`), so that no redraw fails on the dead
/// terminal and ends it by chance.
#[test]
fn live_ui_ends_when_its_terminal_hangs_up() {
    // before: the collector's SIGHUP handler (policy reload) outlived it
    // and kept the process alive, its input thread spinning on read() = 0
    // at a full core, for ever
    let (tmux, _dir, pid) = start_ui("live-hup", "--duration 0.5");
    tmux.wait_for("the collector's end", 10, |s| s.contains("source ended"));
    drop(tmux);
    let t = Instant::now();
    while !exited(pid) {
        if t.elapsed() > Duration::from_secs(10) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            panic!("sriov-top still runs 10 s after its terminal hung up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
