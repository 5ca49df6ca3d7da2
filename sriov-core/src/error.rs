//! The library's error type. Every variant names the device or object it is
//! about and keeps the OS error (errno) where there is one.
use std::{io, path::PathBuf};

use crate::{host::NetlinkError, types::InvalidValue};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sysfs or file operation failed.
    #[error("{op} {path}: {source}")]
    Sysfs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("{0}")]
    Invalid(#[from] InvalidValue),
    #[error("no SR-IOV PF or VF matches {device:?}{hint}")]
    DeviceNotFound { device: String, hint: String },
    #[error("{device}: VF index {index} does not exist (sriov_numvfs is {numvfs}; valid indexes are 0 to {max})", max = numvfs.saturating_sub(1))]
    VfIndexOutOfRange {
        device: String,
        index: u32,
        numvfs: u32,
    },
    #[error(
        "{device}: numvfs {requested} is more than sriov_totalvfs {total} (allowed: 0 to {total})"
    )]
    NumVfsTooLarge {
        device: String,
        requested: u32,
        total: u32,
    },
    #[error(
        "driver {driver:?} does not exist (not in /sys/bus/pci/drivers; load its module first, e.g. `modprobe {driver}`); available: {available}"
    )]
    UnknownDriver { driver: String, available: String },
    #[error("{device}: {message}")]
    Unsupported { device: String, message: String },
    #[error("{device}: has no netdev, so its VF settings cannot be changed through rtnetlink")]
    NoNetdev { device: String },
    #[error("{device}: rtnetlink is not available here (fixture tree?)")]
    NoNetlink { device: String },
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("eBPF: loading the sriov-ebpf object failed: {0}")]
    EbpfLoad(#[source] Box<aya::EbpfError>),
    #[error("eBPF: program `{program}`: {source}{hint}")]
    EbpfProgram {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
        /// What to do about it, when known (starts with a newline).
        hint: &'static str,
    },
    #[error("eBPF: map `{map}`: {source}")]
    EbpfMap {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A line of an event stream (`sriov-top.events`) that cannot be read:
    /// not JSON, another major schema version, or a known kind with
    /// missing fields. `line` counts from 1.
    #[error("line {line}: {message}")]
    EventLine { line: usize, message: String },
    #[error("eBPF: the object has no {kind} named `{name}` (build mismatch)")]
    EbpfMissing {
        kind: &'static str,
        name: &'static str,
    },
}

impl Error {
    pub fn sysfs(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Sysfs {
            op,
            path: path.into(),
            source,
        }
    }

    /// The OS error number behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Sysfs { source, .. } => source.raw_os_error(),
            Self::Netlink(e) => Some(e.errno),
            _ => None,
        }
    }

    /// True for errors caused by the caller's input (CLI exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_)
                | Self::DeviceNotFound { .. }
                | Self::VfIndexOutOfRange { .. }
                | Self::NumVfsTooLarge { .. }
                | Self::UnknownDriver { .. }
                | Self::EventLine { .. }
        )
    }
}
