//! The lifetime of a loaded policy (issue #12): pins belong to one
//! sriov-top. A `--persist` policy outlives its sriov-top, refuses a new
//! load until `sriov policy unload`, and `sriov policy status` shows it; a
//! second sriov-top while the first runs is refused naming the first, whose
//! policy stays in force until it stops.
use std::{
    fs,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::guest::{self, dev, pf, wait_for};

const FILE: &str = "/tmp/lifetime.toml";
const FILE2: &str = "/tmp/lifetime2.toml";
const OUT: &str = "/tmp/lifetime.ndjson";
const PINS: &str = "/sys/fs/bpf/sriov-top";
const RECORD: &str = "/run/sriov-top/policy.json";

/// `sriov_numvfs` of the PF may be 0 to `max`.
fn numvfs_policy(path: &str, max: u32) {
    fs::write(
        path,
        format!(
            "version = 1\nmode = \"enforce\"\n\n[[pf]]\ndevice = \"{}\"\nnumvfs = {{ min = 0, max = {max} }}\n",
            pf()
        ),
    )
    .unwrap();
}

/// Write `n` to the PF's `sriov_numvfs`: `Ok` or the errno.
fn write_numvfs(n: u32) -> Result<(), Option<i32>> {
    fs::write(dev(&pf()).join("sriov_numvfs"), n.to_string()).map_err(|e| e.raw_os_error())
}

fn sriov(args: &[&str]) -> Output {
    Command::new("sriov")
        .args(args)
        .output()
        .expect("run sriov")
}

/// `sriov policy unload`; nothing left in force for the next test.
fn unload() -> Output {
    sriov(&["policy", "unload"])
}

fn status() -> Value {
    let out = sriov(&["policy", "status", "--json"]);
    assert!(out.status.success(), "{}", guest::output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A sriov-top with a policy; killed (and its policy unloaded) if the test
/// fails before it is stopped.
struct Top(Option<Child>);

impl Top {
    fn start(file: &str, persist: bool) -> Self {
        let _ = fs::remove_file(OUT);
        let mut cmd = Command::new("sriov-top");
        cmd.args([
            "--json",
            "--interval",
            "0.5",
            "--output",
            OUT,
            "--policy",
            file,
        ]);
        if persist {
            cmd.arg("--persist");
        }
        let top = Top(Some(cmd.stderr(Stdio::inherit()).spawn().unwrap()));
        wait_for("the policy_loaded line", Duration::from_secs(60), || {
            fs::read_to_string(OUT).is_ok_and(|t| t.contains("\"policy_loaded\""))
        });
        top
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// SIGTERM; it must exit with status 0 within 10 s.
    fn terminate(mut self) {
        guest::signal_and_wait(
            self.0.take().expect("running"),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = unload();
        }
    }
}

/// A second sriov-top with `file`: it must be refused at once (exit 1,
/// nothing loaded); `--duration` ends it if it is not. Its stderr.
fn second_is_refused(file: &str) -> String {
    let t = Instant::now();
    let out = Command::new("sriov-top")
        .args(["--json", "--duration", "5", "--policy", file])
        .output()
        .unwrap();
    let text = guest::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "refused before anything ran: {text}"
    );
    assert!(out.stdout.is_empty(), "no event written: {text}");
    text
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_persisted_policy_refuses_a_new_load_until_unloaded() {
    guest::set_numvfs(0);
    let _ = unload();
    numvfs_policy(FILE, 2);
    numvfs_policy(FILE2, 7);
    let top = Top::start(FILE, true);
    top.terminate();
    assert!(Path::new(PINS).join("links").is_dir(), "links pinned");
    assert_eq!(write_numvfs(3), Err(Some(libc::EPERM)), "still enforced");

    let err = second_is_refused(FILE2);
    assert!(err.contains("--persist policy"), "{err}");
    assert!(err.contains(FILE), "names the policy in force: {err}");
    assert!(err.contains("sriov policy unload"), "{err}");
    // the first policy is untouched
    assert_eq!(write_numvfs(3), Err(Some(libc::EPERM)), "still enforced");
    assert!(Path::new(PINS).join("links").is_dir());

    let st = status();
    assert_eq!(st["state"], "persisted", "{st}");
    assert_eq!(st["in_force"], true, "{st}");
    assert_eq!(st["mode"], "enforce", "{st}");
    assert_eq!(st["file"], FILE, "{st}");
    assert_eq!(st["persisted"], true, "{st}");
    assert_eq!(st["owner"]["alive"], false, "{st}");
    assert_eq!(st["owner"]["persist"], true, "{st}");
    assert!(
        st["violations"]["numvfs"].as_u64().unwrap_or(0) >= 2,
        "the two denied writes are counted: {st}"
    );
    let text = sriov(&["policy", "status"]);
    let text = guest::output_text(&text);
    assert!(text.contains(&format!("policy: {FILE}")), "{text}");
    assert!(text.contains("mode: enforce"), "{text}");

    let out = unload();
    let msg = guest::output_text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("unloaded the policy") && msg.contains(FILE),
        "{msg}"
    );
    assert!(!Path::new(PINS).exists(), "pins removed");
    assert!(!Path::new(RECORD).exists(), "record removed");
    // mode off first: the write goes through at once
    assert_eq!(write_numvfs(3), Ok(()));
    assert_eq!(guest::read(dev(&pf()).join("sriov_numvfs")), "3");
    guest::set_numvfs(0);
    assert_eq!(status()["state"], "none");
    let again = unload();
    assert!(guest::output_text(&again).contains("no policy in force"));
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_second_instance_is_refused_naming_the_first_whose_pins_stay() {
    guest::set_numvfs(0);
    let _ = unload();
    numvfs_policy(FILE, 2);
    numvfs_policy(FILE2, 7);
    let top = Top::start(FILE, false);
    let pid = top.pid();
    let conf = Path::new(PINS).join("POLICY_CONF");
    assert!(conf.exists());
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&conf).unwrap());

    let err = second_is_refused(FILE2);
    assert!(
        err.contains(&format!("pid {pid}")),
        "names the first: {err}"
    );
    assert!(err.contains(FILE), "and its policy: {err}");
    assert!(err.contains(&format!("kill -TERM {pid}")), "{err}");
    // the first one's pins and policy are intact
    let after = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&conf).unwrap());
    assert_eq!(inode, after, "the pin was not replaced");
    assert_eq!(write_numvfs(3), Err(Some(libc::EPERM)), "still enforced");
    let st = status();
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(st["owner"]["pid"], pid, "{st}");
    assert_eq!(st["owner"]["alive"], true, "{st}");
    assert_eq!(st["file"], FILE, "{st}");
    // unload refuses a running owner
    let out = unload();
    let msg = guest::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains(&format!("kill -TERM {pid}")), "{msg}");
    assert!(conf.exists(), "unload changed nothing");

    top.terminate();
    assert!(!Path::new(PINS).exists(), "pins removed with the owner");
    assert!(!Path::new(RECORD).exists(), "record removed with the owner");
    assert_eq!(write_numvfs(3), Ok(()), "policy gone");
    guest::set_numvfs(0);
    // free for the next one
    let top = Top::start(FILE2, false);
    top.terminate();
}
