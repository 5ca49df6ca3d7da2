//! Helpers shared by the `sriov` CLI tests (`mod common;` in each): a sysfs
//! fixture tree, a snapshot of it for "nothing changed", and the `sriov`
//! command pointed at it.
#![allow(clippy::unwrap_used)]

use std::{
    fs,
    path::{Path, PathBuf},
};

use assert_cmd::Command;
use sriov_core::fixture::{self, PfSpec};

/// eth0 (0000:01:00.0, an 82576) with 2 VFs.
#[allow(dead_code)] // not every test file uses it
pub fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fixture::add_pf(
        d.path(),
        &PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", 2),
    )
    .unwrap();
    d
}

/// Every file, its content, and every link target, for "nothing changed".
pub fn snapshot(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.push((
                    p.clone(),
                    format!("-> {}", fs::read_link(&p).unwrap().display()),
                ));
            } else if ft.is_dir() {
                out.push((p.clone(), "dir".into()));
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `sriov --sysfs-root ROOT`.
pub fn sriov(root: &Path) -> Command {
    let mut c = Command::cargo_bin("sriov").unwrap();
    c.arg("--sysfs-root").arg(root);
    c
}
