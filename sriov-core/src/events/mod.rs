//! Events: what the eBPF programs saw, attributed to VFs, as NDJSON.
//!
//! The pipeline, one step per submodule:
//!
//! - [`Attributor`] turns a ring-buffer record
//!   ([`sriov_ebpf::record::Record`]) into an [`EventEnvelope`]: the
//!   [`Event`] plus the process that caused it and the VF it is about
//!   ([`VfIdentity`]), found through sysfs (and `/proc/<pid>/fd` for VFIO).
//! - [`StatsAggregator`] folds events and the IRQ maps into one periodic
//!   [`Event::Stats`] per active VF (and [`Event::Lost`] when records were
//!   dropped).
//! - [`Clock`] maps kernel `CLOCK_MONOTONIC` timestamps to wall time.
//! - [`NdjsonWriter`] writes one JSON object per line, schema
//!   [`SCHEMA`] (`docs/events.md`); [`NdjsonLine`] and [`NdjsonReader`]
//!   read such a stream back (replay), skipping kinds this build does not
//!   know and refusing another major schema version.
//!
//! Nothing here fails because a device vanished: fields that could not be
//! read are left empty.
use serde::{Deserialize, Serialize};

use crate::{discover::Pf, host::VfStats};

mod admin;
mod attribute;
mod clock;
mod conversation;
mod drift;
pub mod irqs;
mod lookup;
mod ndjson;
mod stats;
#[cfg(test)]
mod tests;
mod traps;
mod waterfall;

pub use admin::{Actor, AdminChange, AdminField};
pub use attribute::{Attributor, Births};
pub use clock::Clock;
pub use conversation::{AccessOp, ConfigAccess, MailboxMessage};
pub use drift::{DRIFT_FILE, Drift, Drifts, VfDrift, read_drifts, record_drift, still_left};
pub use ndjson::{
    NdjsonLine, NdjsonReader, NdjsonWriter, ReadLine, SCHEMA, check_schema, hostname,
};
pub use stats::StatsAggregator;
pub use traps::ConfigTraps;
pub use waterfall::{Phase, Waterfall, Waterfalls};

/// The VF an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfIdentity {
    /// BDF of the PF.
    pub pf: String,
    pub pf_netdev: Option<String>,
    /// VF index on the PF (`virtfnN`).
    pub index: u32,
    /// BDF of the VF.
    pub bdf: String,
    pub netdev: Option<String>,
    pub iommu_group: Option<u32>,
    /// Which incarnation of the VF this is: when it was created, in kernel
    /// time (`CLOCK_MONOTONIC`, like `ts_ns`): as `pci_iov_add_virtfn`
    /// began, from the probes' `VF_BIRTHS` ([`Births`]); without that, the
    /// time of its `vf_added` or of the scan that first found it; `None` for
    /// a VF that existed before the stream began. A VF removed
    /// and created again with the same BDF is a new incarnation, and all
    /// its counters start from zero.
    #[serde(default)]
    pub created_ns: Option<u64>,
}

/// The task that was running when the kernel made the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process id (thread group id).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// `comm` (at most 15 bytes), lossy UTF-8.
    pub comm: String,
}

/// Direction of a VFIO DMA request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaOp {
    Map,
    Unmap,
}

/// What happened to a device driven through VFIO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VfioOp {
    Open,
    Close,
}

/// IRQ handler time of a VF, from the kernel's log2 histograms: `p50` and
/// `p99` are the upper bound of the power-of-two bucket the percentile falls
/// in, clamped to `max` (so at most 2x the true value, never below it).
/// Since start `max` is exact; over an interval it is exact when the
/// longest run since start happened in the interval, else the upper bound
/// of the highest bucket the interval used (see [`StatsAggregator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqLatency {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// VFIO DMA map latency percentiles of a VF (3 significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaLatency {
    pub p50: u64,
    pub p99: u64,
}

/// Periodic statistics of one VF incarnation ([`Event::Stats`]). Totals
/// count since the stream first watched this incarnation (its creation, when
/// the stream saw it); the `*_interval*` fields cover the last `interval_ns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VfActivity {
    /// Interrupts per second over the interval (0 on the first snapshot).
    pub irq_per_s: f64,
    pub irqs_total: u64,
    /// Interrupts in the interval.
    #[serde(default)]
    pub irqs_interval: u64,
    /// Length of the interval: since the previous snapshot (0 on the first).
    #[serde(default)]
    pub interval_ns: u64,
    /// Handler time since start; `None` when none was recorded.
    pub irq_latency_ns: Option<IrqLatency>,
    /// Handler time in the interval; `None` when no handler ran in it.
    #[serde(default)]
    pub irq_latency_interval_ns: Option<IrqLatency>,
    /// The histogram behind `irq_latency_ns`, for consumers that aggregate:
    /// entry i counts handler runs of [2^i, 2^(i+1)) ns (entry 0 also holds
    /// runs under 1 ns); empty buckets at the end are left out.
    #[serde(default)]
    pub irq_latency_log2_ns: Vec<u64>,
    /// Handler time summed over every timed run since start (the `_sum` of
    /// a histogram made from `irq_latency_log2_ns`).
    #[serde(default)]
    pub irq_handler_ns_total: u64,
    /// Interrupts VFIO forwarded to user space (eventfd).
    pub vfio_irqs_total: u64,
    pub dma_bytes_mapped: u64,
    pub dma_bytes_unmapped: u64,
    /// VFIO DMA map latency since start (HDR histogram, 3 significant
    /// digits); `None` when no map succeeded.
    pub dma_map_latency_ns: Option<DmaLatency>,
    /// The same over the interval; `None` when no map succeeded in it.
    #[serde(default)]
    pub dma_map_latency_interval_ns: Option<DmaLatency>,
    /// The PF driver's IFLA_VF_STATS counters of the VF, read at the
    /// snapshot (cumulative; `None` when the driver reports none or
    /// rtnetlink is not available). Absent in streams written before the
    /// field existed.
    #[serde(default)]
    pub net: Option<VfStats>,
}

/// What happened. Serialized internally tagged: `"kind": "vf_added"`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A write to a PF's `sriov_numvfs`.
    SriovConfigure {
        /// BDF of the PF.
        pf: String,
        /// The number written, when it parses.
        numvfs: Option<u32>,
        /// Bytes consumed, or -errno.
        ret: i64,
        latency_ns: u64,
    },
    /// `pci_iov_add_virtfn`.
    VfAdded {
        pf: Option<String>,
        vf_index: u32,
        vf_bdf: Option<String>,
        ret: i32,
        latency_ns: u64,
    },
    /// `pci_iov_remove_virtfn`.
    VfRemoved {
        pf: Option<String>,
        vf_index: u32,
        vf_bdf: Option<String>,
        ret: i32,
        latency_ns: u64,
    },
    /// A device joined an IOMMU group.
    IommuGroupAdded { device: String, group: i32 },
    /// A driver probed a device.
    DriverProbe {
        device: String,
        driver: String,
        ret: i32,
        latency_ns: u64,
    },
    /// MSI/MSI-X vectors allocated; `irqs` from the device's `msi_irqs`.
    MsiAlloc {
        device: String,
        nvec: i32,
        ret: i32,
        irqs: Vec<u32>,
        latency_ns: u64,
    },
    /// IRQ numbers given back to the kernel (`irq_free_descs`): no longer
    /// counted for their owner from this instant. `device`: whose MSI/MSI-X
    /// vectors they were, when freed through the MSI layer.
    IrqFree {
        device: Option<String>,
        irqs: Vec<u32>,
    },
    /// `VFIO_IOMMU_MAP_DMA` / `VFIO_IOMMU_UNMAP_DMA`; `iommu_groups` are the
    /// VFIO groups the process has open.
    VfioDma {
        op: DmaOp,
        iova: u64,
        size: u64,
        vaddr: u64,
        ret: i32,
        latency_ns: u64,
        iommu_groups: Vec<u32>,
    },
    /// Periodic statistics of one VF.
    Stats(VfActivity),
    /// A PF↔VF mailbox message, at the PF driver.
    Mailbox(MailboxMessage),
    /// Config space accesses to a device through VFIO.
    ConfigAccess(ConfigAccess),
    /// An administrative change of a VF (or a PF's VF count), and who
    /// made it.
    AdminChange(AdminChange),
    /// A timed phase of a `sriov_numvfs` write on the PF:
    /// `pci_enable_sriov` or `pci_disable_sriov`.
    SriovPhase {
        pf: String,
        phase: String,
        /// The VF count asked of `pci_enable_sriov`.
        numvfs: Option<u32>,
        ret: i32,
        latency_ns: u64,
    },
    /// Where the time of a `sriov_numvfs` write that created VFs went.
    VfCreated(Waterfall),
    /// A VF released by the driver it was handed out to, with what its
    /// user left changed.
    VfDrift(VfDrift),
    /// A device driven through VFIO: opened by its user (`open`, the
    /// first open), or closed by its last holder (`close`).
    VfioDevice { device: String, op: VfioOp },
    /// Records the kernel dropped (ring buffer full) since the last report.
    Lost { records: u64 },
    /// A hook that could not be attached.
    HookMissing {
        hook: String,
        attach: String,
        reason: String,
    },
    /// The first line of a stream: the hooks that are attached (and how
    /// many are missing; each also comes as a `hook_missing` line).
    Started {
        hooks_attached: Vec<String>,
        hooks_missing: usize,
    },
    /// What discovery sees: the PFs with their VFs (driver, netdev, IOMMU
    /// group, and the PF driver's view: MAC, VLAN, link state, spoofchk,
    /// trust, IFLA_VF_STATS counters). Sent after `started` (and its
    /// `hook_missing`s), then whenever something other than the counters
    /// changed.
    Inventory { pfs: Vec<Pf> },
    /// A policy was loaded or reloaded (`sriov-top --policy FILE`).
    PolicyLoaded {
        file: String,
        mode: crate::policy::Mode,
        /// VFs and PFs with rules.
        vfs: usize,
        pfs: usize,
        /// Where the programs are attached (`lsm:file_ioctl`,
        /// `tc:eth1:egress`, ...).
        attached: Vec<String>,
    },
    /// A policy rule was met (docs/policy.md): the request was denied
    /// (enforce), let through (audit), a frame dropped, or an alert raised.
    PolicyViolation {
        rule: PolicyRule,
        action: PolicyAction,
        /// BDF of the PF, for the `numvfs` rules (no VF identity then).
        pf: Option<String>,
        /// The caller's uid and cgroup id (absent for frames).
        uid: Option<u32>,
        cgroup: Option<u64>,
        /// What was asked: bytes to map, the numvfs value, the VLAN, the
        /// frames/s or IRQs/s limit (rule-dependent, see docs/policy.md).
        value: u64,
        /// What it met: bytes mapped already, the quota, frames dropped so
        /// far, ...
        limit: u64,
        /// The driver, source MAC or text written, when there is one.
        detail: Option<String>,
    },
}

/// The rule a [`Event::PolicyViolation`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyRule {
    DmaQuota,
    VfioOpen,
    AllowedDrivers,
    AllowedSrcMacs,
    AllowedVlans,
    MaxPps,
    Numvfs,
    NumvfsWriters,
    IrqStorm,
    /// A route around the TC egress program (`PACKET_QDISC_BYPASS`,
    /// AF_XDP) while a VF has L2 rules.
    FrameBypass,
}

impl PolicyRule {
    /// From a record's `V_*` code.
    pub fn from_code(v: u32) -> Option<Self> {
        use sriov_ebpf::record as r;
        Some(match v {
            r::V_DMA_QUOTA => Self::DmaQuota,
            r::V_VFIO_OPEN => Self::VfioOpen,
            r::V_DRIVER => Self::AllowedDrivers,
            r::V_SRC_MAC => Self::AllowedSrcMacs,
            r::V_VLAN => Self::AllowedVlans,
            r::V_MAX_PPS => Self::MaxPps,
            r::V_NUMVFS_RANGE => Self::Numvfs,
            r::V_NUMVFS_WRITER => Self::NumvfsWriters,
            r::V_IRQ_STORM => Self::IrqStorm,
            r::V_FRAME_BYPASS => Self::FrameBypass,
            _ => return None,
        })
    }

    /// The key of the policy file.
    pub fn key(self) -> &'static str {
        match self {
            Self::DmaQuota => "dma_quota_bytes",
            Self::VfioOpen => "vfio_open",
            Self::AllowedDrivers => "allowed_drivers",
            Self::AllowedSrcMacs => "allowed_src_macs",
            Self::AllowedVlans => "allowed_vlans",
            Self::MaxPps => "max_pps",
            Self::Numvfs => "numvfs",
            Self::NumvfsWriters => "numvfs_writers",
            Self::IrqStorm => "irq_storm_per_s",
            Self::FrameBypass => "allowed_src_macs/allowed_vlans/max_pps",
        }
    }
}

/// What was done about a [`Event::PolicyViolation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Refused with EPERM (enforce mode).
    Denied,
    /// Let through, reported only (audit mode).
    Audited,
    /// Frames dropped (enforce mode, TC).
    Dropped,
    /// Reported (an IRQ storm with `irq_storm_action = "alert"`).
    Alert,
    /// The VF's link state was set to disable.
    LinkDown,
}

impl Event {
    /// Every `kind` tag of this build, in declaration order. A line with
    /// another kind comes from a newer writer (see [`NdjsonLine`]).
    pub const KINDS: &'static [&'static str] = &[
        "sriov_configure",
        "vf_added",
        "vf_removed",
        "iommu_group_added",
        "driver_probe",
        "msi_alloc",
        "irq_free",
        "vfio_dma",
        "stats",
        "lost",
        "hook_missing",
        "started",
        "inventory",
        "policy_loaded",
        "policy_violation",
        "mailbox",
        "config_access",
        "admin_change",
        "sriov_phase",
        "vf_created",
        "vf_drift",
        "vfio_device",
    ];

    /// The `kind` tag this event serializes with.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SriovConfigure { .. } => "sriov_configure",
            Self::VfAdded { .. } => "vf_added",
            Self::Started { .. } => "started",
            Self::VfRemoved { .. } => "vf_removed",
            Self::IommuGroupAdded { .. } => "iommu_group_added",
            Self::DriverProbe { .. } => "driver_probe",
            Self::MsiAlloc { .. } => "msi_alloc",
            Self::IrqFree { .. } => "irq_free",
            Self::VfioDma { .. } => "vfio_dma",
            Self::Stats(_) => "stats",
            Self::Lost { .. } => "lost",
            Self::HookMissing { .. } => "hook_missing",
            Self::Inventory { .. } => "inventory",
            Self::PolicyLoaded { .. } => "policy_loaded",
            Self::PolicyViolation { .. } => "policy_violation",
            Self::Mailbox(_) => "mailbox",
            Self::ConfigAccess(_) => "config_access",
            Self::AdminChange(_) => "admin_change",
            Self::SriovPhase { .. } => "sriov_phase",
            Self::VfCreated(_) => "vf_created",
            Self::VfDrift(_) => "vf_drift",
            Self::VfioDevice { .. } => "vfio_device",
        }
    }
}

/// An [`Event`] with when it happened, who caused it and which VF it is
/// about. Serializes as `{"ts_ns", "vf", "process", "kind", ...payload}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Kernel `CLOCK_MONOTONIC` time (see [`Clock`]).
    pub ts_ns: u64,
    pub vf: Option<VfIdentity>,
    /// Set for events that came from a ring-buffer record.
    pub process: Option<Process>,
    #[serde(flatten)]
    pub event: Event,
}

impl EventEnvelope {
    /// An event made in user space (no process, no VF).
    pub fn new(ts_ns: u64, event: Event) -> Self {
        Self {
            ts_ns,
            vf: None,
            process: None,
            event,
        }
    }
}
