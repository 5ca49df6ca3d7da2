//! A tmux server of its own for the terminal tests (`tmux.rs`,
//! `signals.rs`): run commands, read the pane, wait for the screen or a
//! file.
#![allow(dead_code)]
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

/// The pane's mouse reporting modes.
pub const MOUSE: &str = "#{mouse_any_flag}#{mouse_standard_flag}#{mouse_button_flag}";

/// A tmux server of our own, killed at the end (also on failure).
pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running tmux (is it installed?): {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Wait until `ok(screen)`; fail with the screen after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The file's text once it ends with a newline, polled every 50 ms for
/// `secs`.
pub fn wait_file(path: &Path, secs: u64) -> Option<String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
