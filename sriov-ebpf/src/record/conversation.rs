//! Records of what is said to and about a VF: the PF↔VF mailbox, config
//! space accesses trapped by VFIO, and administrative changes (issue #14).
use super::{DecodeError, Header, NAME_LEN, Reader};

pub const KIND_MAILBOX: u32 = 10;
pub const KIND_CONFIG_ACCESS: u32 = 11;
pub const KIND_ADMIN: u32 = 12;
pub const KIND_SPAN: u32 = 13;
pub const KIND_VFIO_DEV: u32 = 14;

/// `VfioDevRecord::op`: a VFIO user opened the device
/// (`vfio_pci_core_enable`, at its first open).
pub const VFIO_DEV_OPEN: u32 = 1;
/// Its last holder closed it (`vfio_pci_core_close_device`).
pub const VFIO_DEV_CLOSE: u32 = 2;

/// A device driven through VFIO opened by its user, or closed by its last.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfioDevRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    /// `VFIO_DEV_*`.
    pub op: u32,
    pub _pad: u32,
}

impl VfioDevRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 8;
}

impl TryFrom<&[u8]> for VfioDevRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        let op = r.u32(72)?;
        if op != VFIO_DEV_OPEN && op != VFIO_DEV_CLOSE {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "op",
            });
        }
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            op,
            _pad: 0,
        })
    }
}

/// `SpanRecord::what` of `pci_enable_sriov(pf, n)`: `arg` is n.
pub const SPAN_ENABLE_SRIOV: u32 = 1;

/// A kernel function's run inside a `sriov_numvfs` write, timed: a phase of
/// VF creation or removal (`crate::programs::SPANS` says which function;
/// the write around it is `SriovConfigureRecord`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    /// `SPAN_*`.
    pub what: u32,
    pub ret: i32,
    pub arg: u64,
    pub latency_ns: u64,
}

impl SpanRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 24;
}

impl TryFrom<&[u8]> for SpanRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        let what = r.u32(72)?;
        if crate::programs::span_function(what).is_none() {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "what",
            });
        }
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            what,
            ret: r.i32(76)?,
            arg: r.u64(80)?,
            latency_ns: r.u64(88)?,
        })
    }
}

/// Words of a mailbox message kept (the 82576 mailbox is 16 words).
pub const MBX_WORDS: usize = 16;

/// `MailboxRecord::dir`: the PF read a VF's message (`igb_read_mbx`).
pub const MBX_FROM_VF: u32 = 1;
/// `MailboxRecord::dir`: the PF wrote a message to a VF (`igb_write_mbx`).
pub const MBX_TO_VF: u32 = 2;

/// One mailbox message, as the PF driver read or wrote it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxRecord {
    pub hdr: Header,
    /// The PF (its BDF), through the driver's private data; empty when the
    /// loader found no BTF for it.
    pub pf: [u8; NAME_LEN],
    /// The VF's mailbox (its index on the PF).
    pub vf: u32,
    /// [`MBX_FROM_VF`] or [`MBX_TO_VF`].
    pub dir: u32,
    /// The driver function's result (0: done).
    pub ret: i32,
    /// Words in `words` (at most [`MBX_WORDS`]).
    pub size: u32,
    pub words: [u32; MBX_WORDS],
    /// The `struct e1000_hw *` (names the PF when `pf` is empty).
    pub hw: u64,
}

impl MailboxRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 16 + 4 * MBX_WORDS + 8;
}

impl TryFrom<&[u8]> for MailboxRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        let dir = r.u32(76)?;
        if dir != MBX_FROM_VF && dir != MBX_TO_VF {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "dir",
            });
        }
        let mut words = [0u32; MBX_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = r.u32(88 + 4 * i)?;
        }
        Ok(Self {
            hdr,
            pf: r.arr(40)?,
            vf: r.u32(72)?,
            dir,
            ret: r.i32(80)?,
            size: r.u32(84)?,
            words,
            hw: r.u64(152)?,
        })
    }
}

/// One read or write of a device's config space through VFIO
/// (`vfio_pci_config_rw`): by a VM's VMM or a user-space driver.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigRecord {
    pub hdr: Header,
    pub dev: [u8; NAME_LEN],
    /// Offset in config space.
    pub offset: u32,
    /// Bytes asked for.
    pub count: u32,
    /// The first (up to 8) bytes read or written, little-endian.
    pub value: u64,
    /// Bytes done, or -errno.
    pub ret: i64,
    /// 1 for a write.
    pub write: u32,
    pub _pad: u32,
    pub latency_ns: u64,
    /// The device (`crate::ConfigKey::vdev`).
    pub vdev: u64,
    /// Accesses to this register (device, offset, width, direction) since
    /// the probes were loaded, this one included.
    pub total: u64,
}

impl ConfigRecord {
    pub const SIZE: usize = Header::SIZE + NAME_LEN + 8 + 8 + 8 + 8 + 8 + 16;

    /// The kernel side's key of the register this access was to.
    pub fn key(&self) -> crate::ConfigKey {
        crate::ConfigKey {
            vdev: self.vdev,
            offset: self.offset,
            width_op: self.count
                | if self.write == 1 {
                    crate::ConfigKey::WRITE
                } else {
                    0
                },
        }
    }
}

impl TryFrom<&[u8]> for ConfigRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        Ok(Self {
            hdr,
            dev: r.arr(40)?,
            offset: r.u32(72)?,
            count: r.u32(76)?,
            value: r.u64(80)?,
            ret: r.i64(88)?,
            write: r.u32(96)?,
            _pad: 0,
            latency_ns: r.u64(104)?,
            vdev: r.u64(112)?,
            total: r.u64(120)?,
        })
    }
}

// `AdminRecord::what`: the administrative change.
/// `ndo_set_vf_mac(netdev, vf, mac)`: `text` holds the 6 bytes.
pub const ADMIN_MAC: u32 = 1;
/// `ndo_set_vf_vlan(netdev, vf, vlan, qos, proto)`: `a`, `b`, `c`.
pub const ADMIN_VLAN: u32 = 2;
/// `ndo_set_vf_spoofchk(netdev, vf, on)`: `a`.
pub const ADMIN_SPOOFCHK: u32 = 3;
/// `ndo_set_vf_trust(netdev, vf, on)`: `a`.
pub const ADMIN_TRUST: u32 = 4;
/// `ndo_set_vf_rate(netdev, vf, min, max)` (Mbit/s): `a`, `b`.
pub const ADMIN_RATE: u32 = 5;
/// `ndo_set_vf_link_state(netdev, vf, state)`: `a`.
pub const ADMIN_LINK_STATE: u32 = 6;
/// A write to a PF's `sriov_numvfs`: `dev` is the PF, `text` what was written.
pub const ADMIN_NUMVFS: u32 = 7;
/// A write to a device's `driver_override` (`sysfs_kf_write`): `dev` is
/// the device, `text` what was written.
pub const ADMIN_DRIVER_OVERRIDE: u32 = 8;
/// `bind_store(drv, text)`: `dev` is the driver, `text` the device.
pub const ADMIN_BIND: u32 = 9;
/// `unbind_store(drv, text)`.
pub const ADMIN_UNBIND: u32 = 10;

/// An administrative change of a VF (or of a PF's VF count), with who made
/// it: the header's task plus its uid, cgroup and executable's name.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminRecord {
    pub hdr: Header,
    /// `ADMIN_*`.
    pub what: u32,
    /// The VF index for an `ndo_set_vf_*` (else -1).
    pub vf: i32,
    /// The result: 0 or bytes consumed, or -errno.
    pub ret: i64,
    pub uid: u32,
    pub _pad: u32,
    pub cgroup: u64,
    /// The PF's netdev (`ndo_*`), the device (`driver_override`,
    /// `sriov_numvfs`) or the driver (`bind`/`unbind`).
    pub dev: [u8; NAME_LEN],
    pub a: u64,
    pub b: u64,
    pub c: u64,
    /// A MAC's bytes, or the text written.
    pub text: [u8; NAME_LEN],
    /// The name of the task's executable file (`mm->exe_file`).
    pub exe: [u8; NAME_LEN],
}

impl AdminRecord {
    pub const SIZE: usize = Header::SIZE + 8 + 8 + 8 + 8 + NAME_LEN + 24 + 2 * NAME_LEN;
}

impl TryFrom<&[u8]> for AdminRecord {
    type Error = DecodeError;
    fn try_from(b: &[u8]) -> Result<Self, DecodeError> {
        let hdr = Header::try_from(b)?;
        let r = Reader::new(b, hdr.kind, Self::SIZE)?;
        let what = r.u32(40)?;
        if !(ADMIN_MAC..=ADMIN_UNBIND).contains(&what) {
            return Err(DecodeError::BadField {
                kind: hdr.kind,
                field: "what",
            });
        }
        Ok(Self {
            hdr,
            what,
            vf: r.i32(44)?,
            ret: r.i64(48)?,
            uid: r.u32(56)?,
            _pad: 0,
            cgroup: r.u64(64)?,
            dev: r.arr(72)?,
            a: r.u64(104)?,
            b: r.u64(112)?,
            c: r.u64(120)?,
            text: r.arr(128)?,
            exe: r.arr(160)?,
        })
    }
}

const _: () = {
    assert!(core::mem::size_of::<MailboxRecord>() == MailboxRecord::SIZE);
    assert!(core::mem::size_of::<ConfigRecord>() == ConfigRecord::SIZE);
    assert!(core::mem::size_of::<AdminRecord>() == AdminRecord::SIZE);
    assert!(core::mem::size_of::<SpanRecord>() == SpanRecord::SIZE);
    assert!(core::mem::size_of::<VfioDevRecord>() == VfioDevRecord::SIZE);
    assert!(core::mem::offset_of!(MailboxRecord, hw) == 152);
    assert!(core::mem::offset_of!(ConfigRecord, latency_ns) == 104);
    assert!(core::mem::offset_of!(ConfigRecord, total) == 120);
    assert!(core::mem::offset_of!(AdminRecord, cgroup) == 64);
    assert!(core::mem::offset_of!(AdminRecord, exe) == 160);
};
