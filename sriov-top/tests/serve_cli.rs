//! `sriov-top serve`'s bad input: exit 2, a message naming what is wrong
//! and how to fix it, nothing loaded (these run on the build host, where
//! the probes would not load anyway: the refusal comes first).
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use predicates::prelude::*;

fn serve() -> Command {
    let mut c = Command::cargo_bin("sriov-top").unwrap();
    c.timeout(std::time::Duration::from_secs(30)).arg("serve");
    c
}

#[test]
fn an_address_that_does_not_parse_is_refused() {
    for bad in [
        "nope",
        "127.0.0.1",
        "localhost:10025",
        "1.2.3.4:99999",
        ":x",
    ] {
        serve()
            .args(["--listen", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("not an address to listen on"));
    }
}

#[test]
fn a_taken_port_is_refused_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    serve()
        .args(["--listen", &addr])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("cannot listen on {addr}")))
        .stderr(predicate::str::contains(
            "choose another port with --listen",
        ));
}

#[test]
fn a_textfile_directory_must_be_a_writable_directory() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("plain");
    std::fs::write(&file, "").unwrap();
    for (dir, why) in [
        (d.path().join("missing"), "No such file or directory"),
        (file, "not a directory"),
    ] {
        serve()
            .args(["--listen", "127.0.0.1:0", "--textfile"])
            .arg(&dir)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "--textfile {}",
                dir.display()
            )))
            .stderr(predicate::str::contains(why));
    }
}

#[test]
fn an_unknown_user_and_user_with_a_policy_are_refused() {
    serve()
        .args(["--listen", "127.0.0.1:0", "--user", "no-such-user-here"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such user"));
    let d = tempfile::tempdir().unwrap();
    let policy = d.path().join("p.toml");
    // a policy file that need not even be valid: the combination is refused
    // before the file is read
    std::fs::write(&policy, "not toml at all").unwrap();
    serve()
        .args(["--listen", "127.0.0.1:0", "--user", "nobody", "--policy"])
        .arg(&policy)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--user cannot be combined with --policy",
        ));
}

#[test]
fn a_kubelet_socket_that_cannot_be_reached_is_refused_a_missing_one_is_not() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("plain");
    std::fs::write(&file, "").unwrap();
    // a path through a file: ENOTDIR, whatever the user
    let through = file.join("kubelet.sock");
    serve()
        .args(["--listen", "127.0.0.1:0", "--kubelet-socket"])
        .arg(&through)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "--kubelet-socket {}",
            through.display()
        )));
    // missing: not bad input (the run goes on, and fails later here only
    // because the build host cannot load the probes, or ends at --duration)
    let out = serve()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "1",
            "--kubelet-socket",
        ])
        .arg(d.path().join("none.sock"))
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nothing_to_do_and_json_with_serve_are_refused() {
    serve()
        .arg("--no-listen")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--no-listen leaves nothing to do"));
    let mut c = Command::cargo_bin("sriov-top").unwrap();
    c.args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--json and `serve` exclude each other",
        ));
}

#[test]
fn help_has_examples() {
    serve()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("[default: [::]:10025]"));
}
