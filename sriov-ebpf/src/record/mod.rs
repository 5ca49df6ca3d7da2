//! Ring-buffer records: what the kernel side sends, byte for byte.
//!
//! Every record starts with a [`Header`]; its `kind` says which record
//! follows. The layouts are `#[repr(C)]` with explicit padding and fixed
//! little-endian offsets; user space decodes them with `TryFrom<&[u8]>`
//! (bounds-checked, never a transmute), and [`Record::decode`] dispatches on
//! the kind.

/// Bytes of a device or driver name kept (a BDF is 12, `vfio-pci` 8).
pub const NAME_LEN: usize = 32;
/// `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

pub const KIND_SRIOV_CONFIGURE: u32 = 1;
pub const KIND_VF_ADD: u32 = 2;
pub const KIND_VF_REMOVE: u32 = 3;
pub const KIND_IOMMU_GROUP_ADD: u32 = 4;
pub const KIND_DRIVER_PROBE: u32 = 5;
pub const KIND_MSI_ALLOC: u32 = 6;
pub const KIND_VFIO_DMA: u32 = 7;
pub const KIND_POLICY: u32 = 8;
pub const KIND_IRQ_FREE: u32 = 9;

mod conversation;
pub use conversation::*;

// `PolicyRecord::rule`.
pub const V_DMA_QUOTA: u32 = 1;
pub const V_VFIO_OPEN: u32 = 2;
pub const V_DRIVER: u32 = 3;
pub const V_SRC_MAC: u32 = 4;
pub const V_VLAN: u32 = 5;
pub const V_MAX_PPS: u32 = 6;
pub const V_NUMVFS_RANGE: u32 = 7;
pub const V_NUMVFS_WRITER: u32 = 8;
pub const V_IRQ_STORM: u32 = 9;
/// A route around TC egress (`PACKET_QDISC_BYPASS`, AF_XDP) while a VF has
/// L2 rules.
pub const V_FRAME_BYPASS: u32 = 10;

// `PolicyRecord::action`.
/// Denied with EPERM (enforce mode).
pub const ACTION_DENIED: u32 = 1;
/// Let through and reported (audit mode).
pub const ACTION_AUDITED: u32 = 2;
/// A frame dropped (enforce mode, TC).
pub const ACTION_DROPPED: u32 = 3;

pub const DMA_MAP: u32 = 1;
pub const DMA_UNMAP: u32 = 2;

/// Why a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the record needs.
    Short { kind: u32, need: usize, got: usize },
    /// A kind this build does not know.
    UnknownKind(u32),
    /// A field with a value the kernel side never writes.
    BadField { kind: u32, field: &'static str },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short { kind, need, got } => {
                write!(f, "record kind {kind}: {got} bytes, need {need}")
            }
            Self::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            Self::BadField { kind, field } => write!(f, "record kind {kind}: bad {field}"),
        }
    }
}

/// Little-endian field reader over a byte slice, with bounds checks.
struct Reader<'a> {
    b: &'a [u8],
    kind: u32,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], kind: u32, need: usize) -> Result<Self, DecodeError> {
        if b.len() < need {
            return Err(DecodeError::Short {
                kind,
                need,
                got: b.len(),
            });
        }
        Ok(Self { b, kind })
    }
    fn arr<const N: usize>(&self, off: usize) -> Result<[u8; N], DecodeError> {
        let s = self.b.get(off..off + N).ok_or(DecodeError::Short {
            kind: self.kind,
            need: off + N,
            got: self.b.len(),
        })?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&self, off: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr(off)?))
    }
    fn i32(&self, off: usize) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.arr(off)?))
    }
    fn u64(&self, off: usize) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr(off)?))
    }
    fn i64(&self, off: usize) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.arr(off)?))
    }
}

/// Common to every record (40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub kind: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the record was made.
    pub ts_ns: u64,
    /// Thread id and process id of the current task.
    pub tid: u32,
    pub pid: u32,
    pub comm: [u8; COMM_LEN],
}

impl Header {
    pub const SIZE: usize = 40;
}

impl TryFrom<&[u8]> for Header {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let kind = b
            .get(..4)
            .map_or(0, |k| u32::from_le_bytes([k[0], k[1], k[2], k[3]]));
        let r = Reader::new(b, kind, Self::SIZE)?;
        Ok(Self {
            kind,
            cpu: r.u32(4)?,
            ts_ns: r.u64(8)?,
            tid: r.u32(16)?,
            pid: r.u32(20)?,
            comm: r.arr(24)?,
        })
    }
}

/// A write to a PF's `sriov_numvfs` (`sriov_numvfs_store` entry to return):
/// the PF, the text written, the result, the whole enable/disable time.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SriovConfigureRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    /// The first bytes written (e.g. `3\n`).
    pub value: [u8; 8],
    /// Bytes consumed, or -errno.
    pub ret: i64,
    pub latency_ns: u64,
}

impl SriovConfigureRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 8 + 8 + 8;
}

impl TryFrom<&[u8]> for SriovConfigureRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            value: r.arr(72)?,
            ret: r.i64(80)?,
            latency_ns: r.u64(88)?,
        })
    }
}

/// `pci_iov_add_virtfn` / `pci_iov_remove_virtfn`: one VF created or
/// removed. `pf` is the PF whose `sriov_numvfs` write this thread is in
/// (empty if the change came another way).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfRecord {
    pub hdr: Header,
    pub pf: [u8; NAME_LEN],
    pub vf_id: i32,
    pub ret: i32,
    pub latency_ns: u64,
}

impl VfRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 4 + 4 + 8;
}

impl TryFrom<&[u8]> for VfRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            pf: r.arr(40)?,
            vf_id: r.i32(72)?,
            ret: r.i32(76)?,
            latency_ns: r.u64(80)?,
        })
    }
}

/// `iommu:add_device_to_group`: a device (a new VF) joined an IOMMU group.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    pub group: i32,
    pub _pad: u32,
}

impl GroupRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 8;
}

impl TryFrom<&[u8]> for GroupRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            group: r.i32(72)?,
            _pad: 0,
        })
    }
}

/// `really_probe`: a driver probed a device (bind), with its latency.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    pub driver: [u8; NAME_LEN],
    /// 0, or -errno.
    pub ret: i32,
    pub _pad: u32,
    pub latency_ns: u64,
}

impl ProbeRecord {
    pub const SIZE: usize = Header::SIZE + 2 * NAME_LEN + 8 + 8;
}

impl TryFrom<&[u8]> for ProbeRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            driver: r.arr(72)?,
            ret: r.i32(104)?,
            _pad: 0,
            latency_ns: r.u64(112)?,
        })
    }
}

/// `msi_domain_alloc_irqs_all_locked`: MSI/MSI-X vectors allocated for a
/// device (user space reads the IRQ numbers from its `msi_irqs`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    /// Vectors asked for.
    pub nvec: i32,
    /// 0, or -errno.
    pub ret: i32,
    pub latency_ns: u64,
}

impl MsiRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 8 + 8;
}

impl TryFrom<&[u8]> for MsiRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            nvec: r.i32(72)?,
            ret: r.i32(76)?,
            latency_ns: r.u64(80)?,
        })
    }
}

/// `VFIO_IOMMU_MAP_DMA` / `VFIO_IOMMU_UNMAP_DMA` through
/// `vfio_iommu_type1_ioctl`: the user's request and the result.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaRecord {
    pub hdr: Header,
    /// [`DMA_MAP`] or [`DMA_UNMAP`].
    pub op: u32,
    /// 0, or -errno.
    pub ret: i32,
    pub iova: u64,
    pub size: u64,
    pub vaddr: u64,
    pub latency_ns: u64,
}

impl DmaRecord {
    pub const SIZE: usize = Header::SIZE + 8 + 4 * 8;
}

impl TryFrom<&[u8]> for DmaRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        let op = r.u32(40)?;
        if op != DMA_MAP && op != DMA_UNMAP {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "op",
            });
        }
        Ok(Self {
            hdr,
            op,
            ret: r.i32(44)?,
            iova: r.u64(48)?,
            size: r.u64(56)?,
            vaddr: r.u64(64)?,
            latency_ns: r.u64(72)?,
        })
    }
}

/// A policy decision against a rule (`sriov-core::policy`): which rule,
/// what was done, for which VF (or PF) slot, by whom, and the values.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRecord {
    pub hdr: Header,
    /// `V_*`.
    pub rule: u32,
    /// `ACTION_*`.
    pub action: u32,
    /// VF slot (PF slot for the `numvfs` rules) in the loaded policy.
    pub slot: u32,
    pub uid: u32,
    /// What was asked: bytes to map, the numvfs value, the VLAN, frames/s.
    pub value: u64,
    /// The limit or state it met: bytes mapped already, the quota, ...
    pub limit: u64,
    pub cgroup: u64,
    /// A name: the driver, the source MAC (6 bytes), the device written.
    pub detail: [u8; NAME_LEN],
}

impl PolicyRecord {
    pub const SIZE: usize = Header::SIZE + 4 * 4 + 3 * 8 + NAME_LEN;
}

const _: () = assert!(core::mem::size_of::<PolicyRecord>() == PolicyRecord::SIZE);

impl TryFrom<&[u8]> for PolicyRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        let rule = r.u32(40)?;
        if !(V_DMA_QUOTA..=V_FRAME_BYPASS).contains(&rule) {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "rule",
            });
        }
        let action = r.u32(44)?;
        if !(ACTION_DENIED..=ACTION_DROPPED).contains(&action) {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "action",
            });
        }
        Ok(Self {
            hdr,
            rule,
            action,
            slot: r.u32(48)?,
            uid: r.u32(52)?,
            value: r.u64(56)?,
            limit: r.u64(64)?,
            cgroup: r.u64(72)?,
            detail: r.arr(80)?,
        })
    }
}

/// `irq_free_descs(from, cnt)`: IRQ numbers given back to the kernel. The
/// kernel side has stopped counting them when this is sent, so their
/// counters hold the last owner's final values until user space hands the
/// numbers to a new owner.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqFreeRecord {
    pub hdr: Header,
    /// The device whose MSI/MSI-X vectors these were, when the free came
    /// through `msi_domain_free_irqs_all_locked` (empty otherwise).
    pub dev: [u8; NAME_LEN],
    /// First IRQ number.
    pub from: u32,
    /// How many numbers from `from`.
    pub cnt: u32,
}

impl IrqFreeRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 8;
}

impl TryFrom<&[u8]> for IrqFreeRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            from: r.u32(72)?,
            cnt: r.u32(76)?,
        })
    }
}

/// Any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    SriovConfigure(SriovConfigureRecord),
    VfAdd(VfRecord),
    VfRemove(VfRecord),
    IommuGroupAdd(GroupRecord),
    DriverProbe(ProbeRecord),
    MsiAlloc(MsiRecord),
    VfioDma(DmaRecord),
    Policy(PolicyRecord),
    IrqFree(IrqFreeRecord),
    Mailbox(MailboxRecord),
    ConfigAccess(ConfigRecord),
    Admin(AdminRecord),
    Span(SpanRecord),
    VfioDev(VfioDevRecord),
}

impl Record {
    /// Decode one ring-buffer record.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        Ok(match hdr.kind {
            KIND_SRIOV_CONFIGURE => Self::SriovConfigure(b.try_into()?),
            KIND_VF_ADD => Self::VfAdd(b.try_into()?),
            KIND_VF_REMOVE => Self::VfRemove(b.try_into()?),
            KIND_IOMMU_GROUP_ADD => Self::IommuGroupAdd(b.try_into()?),
            KIND_DRIVER_PROBE => Self::DriverProbe(b.try_into()?),
            KIND_MSI_ALLOC => Self::MsiAlloc(b.try_into()?),
            KIND_VFIO_DMA => Self::VfioDma(b.try_into()?),
            KIND_POLICY => Self::Policy(b.try_into()?),
            KIND_IRQ_FREE => Self::IrqFree(b.try_into()?),
            KIND_MAILBOX => Self::Mailbox(b.try_into()?),
            KIND_CONFIG_ACCESS => Self::ConfigAccess(b.try_into()?),
            KIND_ADMIN => Self::Admin(b.try_into()?),
            KIND_SPAN => Self::Span(b.try_into()?),
            KIND_VFIO_DEV => Self::VfioDev(b.try_into()?),
            k => return Err(DecodeError::UnknownKind(k)),
        })
    }
}

/// Per-IRQ handler statistics (`IRQ_STATS` values): count, total and
/// maximum handler time, and a log2 histogram (bucket i: [2^i, 2^(i+1)) ns).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqStats {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub log2_ns: [u64; IRQ_BUCKETS],
}

pub const IRQ_BUCKETS: usize = 32;

impl IrqStats {
    pub const SIZE: usize = 24 + 8 * IRQ_BUCKETS;
    pub const ZERO: Self = Self {
        count: 0,
        total_ns: 0,
        max_ns: 0,
        log2_ns: [0; IRQ_BUCKETS],
    };
}

impl TryFrom<&[u8]> for IrqStats {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let r = Reader::new(b, 0, Self::SIZE)?;
        let mut log2_ns = [0u64; IRQ_BUCKETS];
        for (i, v) in log2_ns.iter_mut().enumerate() {
            *v = r.u64(24 + 8 * i)?;
        }
        Ok(Self {
            count: r.u64(0)?,
            total_ns: r.u64(8)?,
            max_ns: r.u64(16)?,
            log2_ns,
        })
    }
}

/// Name bytes up to the first NUL, as UTF-8 (lossy on bad bytes: `None`).
pub fn name(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).ok()
}

// The declared sizes are the real layouts, on the host and on bpfel alike.
const _: () = {
    assert!(core::mem::size_of::<Header>() == Header::SIZE);
    assert!(core::mem::size_of::<SriovConfigureRecord>() == SriovConfigureRecord::SIZE);
    assert!(core::mem::size_of::<VfRecord>() == VfRecord::SIZE);
    assert!(core::mem::size_of::<GroupRecord>() == GroupRecord::SIZE);
    assert!(core::mem::size_of::<ProbeRecord>() == ProbeRecord::SIZE);
    assert!(core::mem::size_of::<MsiRecord>() == MsiRecord::SIZE);
    assert!(core::mem::size_of::<DmaRecord>() == DmaRecord::SIZE);
    assert!(core::mem::size_of::<IrqStats>() == IrqStats::SIZE);
    assert!(core::mem::size_of::<IrqFreeRecord>() == IrqFreeRecord::SIZE);
};
