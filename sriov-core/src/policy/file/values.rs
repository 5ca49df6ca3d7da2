//! The validators of single values (types.rs style: the text in, the value
//! or an [`InvalidValue`] with the allowed values out), and byte counts.
use std::path::PathBuf;

use super::POLICY_VERSION;
use crate::{
    config::{NUMVFS_MAX, toml_util},
    policy::{Mode, StormAction},
    types::InvalidValue,
};

/// The format version: [`POLICY_VERSION`].
pub(super) fn parse_version(s: &str) -> Result<u32, InvalidValue> {
    toml_util::parse_version(s, POLICY_VERSION, "policy")
}

pub(super) fn parse_mode(s: &str) -> Result<Mode, InvalidValue> {
    match s {
        "enforce" => Ok(Mode::Enforce),
        "audit" => Ok(Mode::Audit),
        _ => Err(InvalidValue::new(
            "mode",
            s,
            "\"enforce\" (deny and report) or \"audit\" (report only)",
        )),
    }
}

pub(super) fn parse_storm_action(s: &str) -> Result<StormAction, InvalidValue> {
    match s {
        "alert" => Ok(StormAction::Alert),
        "link_down" => Ok(StormAction::LinkDown),
        _ => Err(InvalidValue::new(
            "irq_storm_action",
            s,
            "\"alert\" (report only) or \"link_down\" (also disable the VF's link through the PF)",
        )),
    }
}

/// A count or rate above 0 (TOML integers stop at i64::MAX).
pub(super) fn parse_positive(s: &str) -> Result<u64, InvalidValue> {
    s.parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && i64::try_from(*n).is_ok())
        .ok_or_else(|| InvalidValue::new("value", s, format!("an integer from 1 to {}", i64::MAX)))
}

/// A `sriov_numvfs` bound.
pub(super) fn parse_numvfs(s: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n <= NUMVFS_MAX)
        .ok_or_else(|| {
            InvalidValue::new(
                "numvfs",
                s,
                format!("an integer from 0 to {NUMVFS_MAX} (and at most the PF's sriov_totalvfs)"),
            )
        })
}

/// A user id; 4294967295 is (uid_t)-1, "no user".
pub(super) fn parse_uid(s: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .ok()
        .filter(|u| *u != u32::MAX)
        .ok_or_else(|| {
            InvalidValue::new(
                "uid",
                s,
                format!("a user id, an integer from 0 to {}", u32::MAX - 1),
            )
        })
}

/// A cgroup v2 directory, by absolute path (whether it exists is checked
/// when resolving).
pub(super) fn parse_cgroup(s: &str) -> Result<PathBuf, InvalidValue> {
    if s.starts_with('/') && !s.contains('\0') {
        Ok(PathBuf::from(s))
    } else {
        Err(InvalidValue::new(
            "cgroup",
            s,
            "the absolute path of a cgroup v2 directory (e.g. /sys/fs/cgroup/machine.slice)",
        ))
    }
}

/// An executable file, by absolute path (it is looked up when resolving:
/// the policy holds its inode and device, what the kernel runs).
pub(super) fn parse_exe(s: &str) -> Result<PathBuf, InvalidValue> {
    if s.starts_with('/') && !s.contains(['\0', '\n']) {
        Ok(PathBuf::from(s))
    } else {
        Err(InvalidValue::new(
            "executable",
            s,
            "the absolute path of an executable file (e.g. /usr/bin/qemu-system-x86_64); \
             a process is matched by the file it runs, not by its name",
        ))
    }
}

/// Round a byte count for people: `1.0 MiB`, `64.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// Parse a byte count as the policy file takes it in a string: a whole
/// number with an optional unit, `B`, `KiB`, `MiB`, `GiB` (`K`, `M`, `G`
/// are the same), above 0.
pub fn parse_bytes(s: &str) -> Result<u64, InvalidValue> {
    let err = || InvalidValue::new("dma_quota_bytes", s, BYTES_ALLOWED);
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim_start() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return Err(err()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(err)
}

pub(super) const BYTES_ALLOWED: &str = "a whole number of bytes above 0: an integer (1048576) or a string with a unit, \
     B, KiB, MiB or GiB (K, M, G are the same), e.g. \"64MiB\"";
