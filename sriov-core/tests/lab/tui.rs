//! `sriov-top` (the terminal UI, live) in a pty on the emulated 82576: the
//! screen shows the 3 VFs, and a VF's IRQ count rises after traffic on it.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::guest::{self, vf_bdf};

/// A tmux server of our own in the guest, killed at the end.
struct Tmux;

const SOCKET: &str = "sriov-top-lab";

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", SOCKET, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running tmux in the guest: {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                t.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", SOCKET, "kill-server"])
            .output();
    }
}

/// The total in the detail view's `IRQs N` field.
fn irqs_total(screen: &str) -> Option<u64> {
    let rest = &screen[screen.find(" IRQs ")? + " IRQs ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn tui_shows_the_three_vfs_and_a_vf_irq_count_rising_with_traffic() {
    guest::set_numvfs(3);
    let vfs: Vec<String> = (0..3).map(vf_bdf).collect();
    let tmux = Tmux;
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "140",
        "-y",
        "40",
        "sriov-top --interval 0.5; echo EXIT=$?; sleep 60",
    ]);
    let s = tmux.wait_for("the 3 VF BDFs", Duration::from_secs(60), |s| {
        vfs.iter().all(|v| s.contains(v.as_str()))
    });
    assert!(
        !s.contains("eBPF needs root") && !s.contains("no SR-IOV"),
        "a capability banner in the lab:\n{s}"
    );

    // the rows are the PF, then its VFs by BDF: down once is VF 0
    tmux.run(&["send-keys", "-t", "top", "Down", "Enter"]);
    let header = format!("VF {} ", vfs[0]);
    let before = tmux.wait_for(
        "VF 0's detail with its IRQ total",
        Duration::from_secs(20),
        |s| s.contains(&header) && irqs_total(s).is_some(),
    );
    let n0 = irqs_total(&before).unwrap();

    guest::vf_traffic(&vfs[0], 300);
    let after = tmux.wait_for(
        "VF 0's IRQ total to rise after traffic",
        Duration::from_secs(30),
        |s| irqs_total(s).is_some_and(|n| n > n0),
    );
    assert!(after.contains(&header), "{after}");

    tmux.run(&["send-keys", "-t", "top", "q"]);
    let s = tmux.wait_for("sriov-top to exit", Duration::from_secs(20), |s| {
        s.contains("EXIT=")
    });
    assert!(s.contains("EXIT=0"), "{s}");
}
