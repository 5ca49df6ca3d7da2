//! The `sriov vf pktgen|echo|rxdump` commands on the emulated 82576: what
//! they send arrives exactly, what they reflect comes back with the MACs
//! swapped (VF 1 on vfio-pci driven by `sriov`, VF 0 on igbvf).
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use sriov_core::{types::MacAddr, vf::frame};

use crate::{
    datapath::{PacketSock, len_of, setup},
    guest::{self, netdev_of, pf},
};

/// `sriov ...` running in the background, its stderr lines on a channel.
pub(crate) struct SriovCli {
    pub(crate) child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl SriovCli {
    pub(crate) fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new("sriov")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start sriov {args:?}: {e}"));
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("sriov: {line}");
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// The first stderr line containing `pat` (60 s at most).
    pub(crate) fn wait_for_line(&mut self, pat: &str) -> String {
        let t = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(l) if l.contains(pat) => return l,
                Ok(_) => {}
                Err(_) => {
                    if let Some(st) = self.child.try_wait().unwrap() {
                        panic!("sriov exited before printing {pat:?}: {st}");
                    }
                    assert!(t.elapsed() < Duration::from_secs(60), "no {pat:?} in 60 s");
                }
            }
        }
    }

    /// The MAC of the "up in user space, MAC X, ..." line.
    fn wait_for_mac(&mut self) -> MacAddr {
        let l = self.wait_for_line("up in user space");
        let m = l
            .split("MAC ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("no MAC in {l:?}"));
        m.parse().unwrap_or_else(|e| panic!("MAC {m:?}: {e}"))
    }

    /// Wait for the exit; its status must be 0. Returns stdout.
    fn success(self) -> String {
        let out = self.child.wait_with_output().expect("wait for sriov");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "sriov: {}; stdout: {stdout}",
            out.status
        );
        stdout
    }
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn cli_pktgen_sends_and_echo_reflects_exact_frames() {
    const N: u64 = 500;
    const SIZE: usize = 200;
    let lab = setup();
    let pf_if = netdev_of(&pf());
    let sock = PacketSock::new();
    let dst = lab.vf0_mac.to_string();

    // pktgen on VF 1: VF 0's netdev receives every frame, exactly
    let mut pktgen = SriovCli::spawn(&[
        "vf",
        "pktgen",
        &pf_if,
        "1",
        "--dst",
        &dst,
        "--count",
        &N.to_string(),
        "--size",
        &SIZE.to_string(),
    ]);
    let src = pktgen.wait_for_mac();
    let out = pktgen.success();
    assert!(
        out.contains(&format!(
            "sent {N} frames of {SIZE} bytes from {src} to {dst}"
        )),
        "{out}"
    );
    let mut got: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut vf0_addr = None;
    let mut buf = vec![0u8; 4096];
    let t = Instant::now();
    while (got.len() as u64) < N && t.elapsed() < Duration::from_secs(20) {
        if let Some((n, a)) = sock.recv_on(lab.vf0_index, &mut buf)
            && let Some(seq) = frame::test_seq(&buf[..n])
        {
            assert!(
                got.insert(seq, buf[..n].to_vec()).is_none(),
                "frame {seq} twice"
            );
            vf0_addr = Some(a);
        }
    }
    assert_eq!(got.len() as u64, N, "frames from pktgen on VF 0");
    for (seq, f) in &got {
        assert!(
            *f == frame::test_frame(lab.vf0_mac, src, SIZE, *seq),
            "frame {seq} differs"
        );
    }
    let vf0_addr = vf0_addr.expect("VF 0's address");

    // echo on VF 1: frames VF 0 sends come back with the MACs swapped
    let mut echo = SriovCli::spawn(&["vf", "echo", &pf_if, "1"]);
    let echo_mac = echo.wait_for_mac();
    let seqs = 1000..1100u64;
    let mut back: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for s in seqs.clone() {
        sock.send(
            &frame::test_frame(echo_mac, lab.vf0_mac, len_of(s), s),
            &vf0_addr,
        );
    }
    let t = Instant::now();
    while back.len() < 100 && t.elapsed() < Duration::from_secs(20) {
        if let Some((n, _)) = sock.recv_on(lab.vf0_index, &mut buf)
            && let Some(seq) = frame::test_seq(&buf[..n])
        {
            back.insert(seq, buf[..n].to_vec());
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(echo.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = echo.success();
    assert_eq!(
        back.keys().copied().collect::<Vec<_>>(),
        seqs.clone().collect::<Vec<_>>()
    );
    for (seq, f) in &back {
        let want = frame::test_frame(lab.vf0_mac, echo_mac, len_of(*seq), *seq);
        assert!(*f == want, "echoed frame {seq} differs");
    }
    assert!(out.contains("echo: received"), "{out}");
    guest::set_numvfs(0);
}
