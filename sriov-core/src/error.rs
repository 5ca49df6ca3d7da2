//! The library's error type. Every variant names the device or object it is
//! about and keeps the OS error (errno) where there is one.
use std::{io, path::PathBuf};

use crate::{
    host::{NetlinkError, netlink},
    types::InvalidValue,
};

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

    // ---- the user-space VF driver (`crate::vf`); each keeps the BDF and
    // the errno (the kernel's, or the one the kernel would give when the
    // problem was found before the system call) ----
    /// The VF is not bound to vfio-pci.
    #[error(
        "{bdf}: VF {index} of {pf} is bound to {driver}, not vfio-pci; hand it to VFIO first: `sriov vf bind {pf} {index} vfio-pci`"
    )]
    VfNotVfio {
        bdf: String,
        pf: String,
        index: u32,
        /// The current driver, or "no driver".
        driver: String,
        errno: i32,
    },
    /// No `iommu_group` link: no IOMMU, so no VFIO.
    #[error(
        "{bdf}: has no IOMMU group (no /sys/bus/pci/devices/{bdf}/iommu_group): the IOMMU is off; boot with intel_iommu=on (AMD: amd_iommu=on) and load vfio-pci"
    )]
    NoIommu { bdf: String, errno: i32 },
    /// Another device of the IOMMU group is bound to a host driver.
    #[error(
        "{bdf}: IOMMU group {group} is not viable: other devices in it are bound to host drivers: {others}; bind them to vfio-pci too or unbind them (see /sys/bus/pci/devices/{bdf}/iommu_group/devices)"
    )]
    VfioGroupNotViable {
        bdf: String,
        group: u32,
        /// `bdf (driver)`, comma separated.
        others: String,
        errno: i32,
    },
    /// Opening a VFIO node failed for lack of rights.
    #[error("{bdf}: cannot open {path}: {msg}; {hint}", msg = netlink::strerror(*errno))]
    VfioPermission {
        bdf: String,
        path: String,
        errno: i32,
        hint: &'static str,
    },
    /// The device disappeared (VFs removed, hot-unplug) before or while it
    /// was used.
    #[error(
        "{bdf}: the device vanished ({what}); were the VFs removed (sriov_numvfs changed) or the device unplugged?"
    )]
    DeviceVanished {
        bdf: String,
        what: String,
        errno: i32,
    },
    /// A VFIO operation failed.
    #[error("{bdf}: {op}: {message}{hint}")]
    Vfio {
        bdf: String,
        op: &'static str,
        errno: i32,
        message: String,
        /// What to do about it, when known (starts with "; ").
        hint: &'static str,
    },
    /// A register access outside the mapped BAR, or misaligned.
    #[error("{bdf}: register access at {offset:#x} ({len:#x} bytes mapped): {reason}")]
    Mmio {
        bdf: String,
        offset: usize,
        len: usize,
        reason: &'static str,
        errno: i32,
    },
    /// DMA memory: allocation, IOMMU mapping, or an access out of bounds.
    #[error("{bdf}: DMA memory: {op} ({size} bytes): {message}{hint}")]
    Dma {
        bdf: String,
        op: &'static str,
        size: usize,
        errno: i32,
        message: String,
        hint: &'static str,
    },
    /// The PF answered a mailbox request with NACK.
    #[error("{bdf}: the PF refused {request} (NACK): {hint}")]
    MailboxNack {
        bdf: String,
        request: &'static str,
        hint: String,
        errno: i32,
    },
    /// The PF did not answer in time.
    #[error(
        "{bdf}: mailbox: no answer from the PF after {ms} ms waiting for {what} (is the PF driver loaded and the PF up?)"
    )]
    MailboxTimeout {
        bdf: String,
        what: &'static str,
        ms: u64,
        errno: i32,
    },
    /// A reply that does not belong to the request.
    #[error("{bdf}: mailbox: unexpected reply {reply:#010x} to {request}")]
    MailboxProtocol {
        bdf: String,
        request: &'static str,
        reply: u32,
        errno: i32,
    },
    // ---- the lifetime of a loaded policy (`crate::policy::instance`) ----
    /// The policy belongs to a running process: it holds the lock file
    /// `lock` (`errno` is EWOULDBLOCK, from `flock`). `pid` and `file`
    /// come from the lock's holder and the owner record, when known.
    #[error("{}", crate::policy::instance::owned_message(*.unload, *.pid, .file.as_deref(), .lock))]
    PolicyOwned {
        /// Refused to `sriov policy unload` (else to a load).
        unload: bool,
        pid: Option<u32>,
        file: Option<PathBuf>,
        lock: PathBuf,
        errno: i32,
    },
    /// A `--persist` policy is in force (its LSM links are pinned under
    /// `pin_dir/links`) and no process owns it: a new load must not take it over.
    #[error(
        "a --persist policy{} is in force (pinned under {pin_dir}); nothing was loaded: run `sriov policy unload` first",
        .file.as_ref().map(|f| format!(" ({})", f.display())).unwrap_or_default(),
        pin_dir = .pin_dir.display()
    )]
    PolicyPersisted {
        file: Option<PathBuf>,
        pin_dir: PathBuf,
    },
    /// The policy state (owner record, lock, pins) cannot be read or
    /// changed without root.
    #[error(
        "{op} {path}: {msg}: the policy state needs root (run it with sudo)",
        path = .path.display(),
        msg = netlink::strerror(*errno)
    )]
    PolicyPermission {
        op: &'static str,
        path: PathBuf,
        errno: i32,
    },
    /// The device did not reach a state in time (queue enable, reset).
    #[error("{bdf}: timed out after {ms} ms waiting for {what}")]
    DeviceTimeout {
        bdf: String,
        what: &'static str,
        ms: u64,
        errno: i32,
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
            Self::VfNotVfio { errno, .. }
            | Self::NoIommu { errno, .. }
            | Self::VfioGroupNotViable { errno, .. }
            | Self::VfioPermission { errno, .. }
            | Self::DeviceVanished { errno, .. }
            | Self::Vfio { errno, .. }
            | Self::Mmio { errno, .. }
            | Self::Dma { errno, .. }
            | Self::MailboxNack { errno, .. }
            | Self::MailboxTimeout { errno, .. }
            | Self::MailboxProtocol { errno, .. }
            | Self::DeviceTimeout { errno, .. }
            | Self::PolicyOwned { errno, .. }
            | Self::PolicyPermission { errno, .. } => Some(*errno),
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
