//! The policy file (TOML, version 1; docs/policy.md):
//!
//! ```toml
//! version = 1
//! mode = "enforce"                    # or "audit"
//!
//! [defaults]                          # every VF of every SR-IOV PF
//! dma_quota_bytes = "64MiB"
//! vfio_open = { uids = [0], cgroups = ["/sys/fs/cgroup/vms"], executables = ["qemu-system-x86"] }
//! allowed_vlans = [0, 10]
//!
//! [[vf]]                              # one VF: pf + index, bdf or mac
//! pf = "eth0"
//! index = 1
//! max_pps = 100000
//!
//! [[pf]]                              # sriov_numvfs rules of one PF
//! device = "eth0"
//! numvfs = { min = 0, max = 4 }
//! numvfs_writers = { uids = [0] }
//! ```
//!
//! [`PolicyFile::parse`] does every check that needs only the text (syntax,
//! types, ranges, list limits, unknown keys, selectors);
//! [`PolicyFile::resolve`] then matches the selectors against a discovered
//! [`Inventory`](crate::discover::Inventory), looks up the cgroup
//! directories, and merges `[defaults]` with the `[[vf]]` sections (later
//! sections override earlier ones, key by key) into a [`Policy`](super::Policy).
//!
//! Every [`PolicyError`] names the position, the field path, the value as
//! written and what would be accepted, e.g.
//! `line 9, column 22: vf[0].allowed_vlans[1] = 5000: must be an integer from 0 (no VLAN) to 4094`.
mod error;
mod parse;
mod resolve;
#[cfg(test)]
mod tests;
mod values;

use std::path::{Path, PathBuf};

pub use self::{
    error::PolicyError,
    values::{human_bytes, parse_bytes},
};
use super::{Mode, StormAction};
use crate::{
    config::toml_util::{self, Spot},
    types::{Bdf, MacAddr},
};

/// The only policy format version there is.
pub const POLICY_VERSION: u32 = 1;

/// A policy file, checked as far as the text alone allows, not yet matched
/// against a system ([`resolve`](Self::resolve) does that). It remembers
/// where each value was written, so that errors found while resolving point
/// back into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    mode: Mode,
    /// `[defaults]` (empty without one).
    defaults: Rules,
    /// The `[[vf]]` sections, in file order.
    vfs: Vec<VfSection>,
    /// The `[[pf]]` sections, in file order.
    pfs: Vec<PfSection>,
}

impl PolicyFile {
    /// Parse and check a policy file's text. Does not look at the system.
    ///
    /// # Errors
    ///
    /// The first problem found, roughly in file order: malformed TOML, an
    /// unknown key, a value of the wrong type or out of range, a list over
    /// its limit, a `[[vf]]` with no or two selectors, a duplicate `[[pf]]`,
    /// a missing `version`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        parse::parse(text)
    }

    /// Read a policy file and [`parse`](Self::parse) it.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Io`] with the path if the file cannot be read (or is
    /// not UTF-8), otherwise as for [`parse`](Self::parse).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        toml_util::read_to_string(path).and_then(|text| Self::parse(&text))
    }

    /// `enforce` (the default) or `audit`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many `[[vf]]` sections the file has.
    pub fn vf_sections(&self) -> usize {
        self.vfs.len()
    }

    /// How many `[[pf]]` sections the file has.
    pub fn pf_sections(&self) -> usize {
        self.pfs.len()
    }
}

/// A value and where it was written ([`Spot`]: for errors found after
/// parsing).
#[derive(Debug, Clone, PartialEq, Eq)]
struct At<T> {
    value: T,
    spot: Spot,
}

/// The rules of one table (`[defaults]` or a `[[vf]]`), before merging.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rules {
    dma_quota_bytes: Option<u64>,
    vfio_open: Option<AllowSpec>,
    allowed_drivers: Option<Vec<String>>,
    allowed_src_macs: Option<Vec<MacAddr>>,
    allowed_vlans: Option<Vec<u16>>,
    max_pps: Option<u64>,
    irq_storm_per_s: Option<u64>,
    irq_storm_action: Option<At<StormAction>>,
}

impl Rules {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An `Allow` as written: cgroups and executables are paths, not yet ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct AllowSpec {
    uids: Vec<u32>,
    cgroups: Vec<At<PathBuf>>,
    executables: Vec<At<PathBuf>>,
}

/// Which VF a `[[vf]]` section is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// `pf` (PCI address or netdev) and `index`.
    Index { pf: At<String>, index: At<u32> },
    /// The VF's PCI address.
    Bdf(At<Bdf>),
    /// The VF's MAC as its PF reports it.
    Mac(At<MacAddr>),
}

/// One `[[vf]]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VfSection {
    selector: Selector,
    rules: Rules,
}

/// One `[[pf]]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PfSection {
    /// 1-based line of the section.
    line: usize,
    device: At<String>,
    /// `numvfs`; `None`: 0 to `sriov_totalvfs`.
    numvfs: Option<NumVfs>,
    writers: Option<AllowSpec>,
}

/// The `numvfs` range as written; a missing bound is 0 or `sriov_totalvfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NumVfs {
    min: Option<At<u32>>,
    max: Option<At<u32>>,
}

/// The rule keys of `[defaults]` and `[[vf]]`.
pub const RULE_KEYS: &[&str] = &[
    "dma_quota_bytes",
    "vfio_open",
    "allowed_drivers",
    "allowed_src_macs",
    "allowed_vlans",
    "max_pps",
    "irq_storm_per_s",
    "irq_storm_action",
];

/// The rule keys of `[[pf]]`.
pub const PF_RULE_KEYS: &[&str] = &["numvfs", "numvfs_writers"];
