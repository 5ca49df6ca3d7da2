//! What attribution reads about a record: sysfs and procfs lookups, and
//! the record's own bytes as text.
use std::path::{Path, PathBuf};

use sriov_ebpf::record::{self, Header};

use super::Process;
use crate::{discover::PCI_DEVICES, host::Host};

pub(super) fn device_dir(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

/// A name that is safe to use as one path component (a BDF from a record
/// could be anything: never let it walk out of `/sys/bus/pci/devices`).
pub(super) fn is_bdf_like(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= record::NAME_LEN
        && name
            .bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        && name.bytes().any(|c| c.is_ascii_hexdigit())
}

/// IRQ numbers in a device's `msi_irqs` directory, ascending; empty when
/// it has none or vanished.
pub(super) fn msi_irqs(host: &dyn Host, bdf: &str) -> Vec<u32> {
    let mut v: Vec<u32> = host
        .list_dir(&device_dir(bdf).join("msi_irqs"))
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// `/dev/vfio/<N>` files open in process `pid`, ascending, deduplicated.
pub(super) fn open_vfio_groups(host: &dyn Host, pid: u32) -> Vec<u32> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let mut groups: Vec<u32> = host
        .list_dir(&dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|fd| {
            let target = host.read_link(&dir.join(fd)).ok()?;
            target
                .strip_prefix("/dev/vfio")
                .ok()?
                .to_str()?
                .parse()
                .ok()
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// A NUL-terminated name as text (invalid UTF-8 replaced).
pub(super) fn text(bytes: &[u8]) -> String {
    match record::name(bytes) {
        Some(s) => s.to_string(),
        None => {
            let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
        }
    }
}

/// The number in the text written to `sriov_numvfs` (`"3\n"`).
pub(super) fn parse_numvfs(value: &[u8]) -> Option<u32> {
    text(value).trim().parse().ok()
}

pub(super) fn process(hdr: &Header) -> Process {
    Process {
        pid: hdr.pid,
        tid: hdr.tid,
        comm: text(&hdr.comm),
    }
}

/// The record's detail bytes as text: a MAC for the source-MAC rule, the
/// NUL-terminated text otherwise (`None` when empty).
pub(super) fn policy_detail(
    rule: Option<super::PolicyRule>,
    d: &[u8; record::NAME_LEN],
) -> Option<String> {
    if rule == Some(super::PolicyRule::AllowedSrcMacs) {
        let mut m = [0u8; 6];
        m.copy_from_slice(&d[..6]);
        return Some(crate::types::MacAddr(m).to_string());
    }
    let t = text(d);
    (!t.is_empty()).then_some(t)
}
