//! The policy maps shared by the enforcement programs (BPF LSM, TC) and
//! `sriov-core::policy::enforce`.
//!
//! User space writes [`Rule`] and [`Conf`] values as bytes ([`Rule::encode`],
//! [`Conf::encode`]) with the offsets fixed here; the kernel side reads the
//! same bytes as the `#[repr(C)]` structs. Rules are double-buffered: slot
//! `gen * MAX_VFS + vf` of `VF_RULES`, with `Conf::active` naming the live
//! half, so a reload writes the other half and flips `active` in one update.

/// VFs and PFs a policy can name.
pub const MAX_VFS: u32 = 256;
pub const MAX_PFS: u32 = 64;
pub const MAX_DRIVER_NAMES: u32 = 128;

pub const MAX_UIDS: usize = 8;
pub const MAX_CGROUPS: usize = 8;
pub const MAX_EXES: usize = 8;
/// Cgroup levels looked at above the caller's own (`cgroups` match descendants).
pub const MAX_CGROUP_LEVELS: i32 = 16;
pub const MAX_DRIVERS: usize = 8;
pub const MAX_MACS: usize = 8;
pub const MAX_VLANS: usize = 16;
/// Bytes of a driver name kept (NUL padded).
pub const DRIVER_LEN: usize = 32;
/// Bytes of a PCI address kept as a map key (`0000:01:10.2`, NUL padded).
pub const BDF_LEN: usize = 16;

// Rule flags: which rules a `Rule` carries.
pub const RULE_DMA_QUOTA: u32 = 1;
pub const RULE_VFIO_OPEN: u32 = 2;
pub const RULE_DRIVERS: u32 = 4;
pub const RULE_SRC_MACS: u32 = 8;
pub const RULE_VLANS: u32 = 16;
pub const RULE_MAX_PPS: u32 = 32;
pub const RULE_NUMVFS_RANGE: u32 = 64;
pub const RULE_NUMVFS_WRITERS: u32 = 128;

// `Conf::mode`.
pub const MODE_OFF: u32 = 0;
pub const MODE_ENFORCE: u32 = 1;
pub const MODE_AUDIT: u32 = 2;

// Indexes of `Conf::offsets` (struct member offsets from the kernel's BTF).
pub const OFF_FILE_INODE: usize = 0;
pub const OFF_INODE_RDEV: usize = 1;
pub const OFF_INODE_INO: usize = 2;
pub const OFF_TASK_FILES: usize = 3;
pub const OFF_FILES_FDT: usize = 4;
pub const OFF_FDT_FD: usize = 5;
pub const OFF_TASK_MM: usize = 6;
pub const OFF_INODE_SB: usize = 7;
pub const OFF_SB_DEV: usize = 8;
pub const OFF_MM_EXE_FILE: usize = 9;
pub const OFF_IOMMU_GROUP_ID: usize = 10;
pub const OFF_INODE_CDEV: usize = 11;
pub const OFF_CDEV_KOBJ: usize = 12;
pub const OFF_KOBJ_PARENT: usize = 13;
pub const OFF_KOBJ_NAME: usize = 14;
pub const OFF_DEVICE_KOBJ: usize = 15;
pub const OFF_DEVICE_DEVT: usize = 16;
pub const OFF_FILE_FOP: usize = 17;
pub const OFF_KERNFS_NAME: usize = 18;
pub const OFF_KERNFS_PRIV: usize = 19;
pub const OFF_DEVICE_DRIVER: usize = 20;
pub const OFF_DRIVER_NAME: usize = 21;
pub const N_OFFSETS: usize = 22;

// `SysfsFile::kind`.
pub const SYSFS_NUMVFS: u32 = 1;
pub const SYSFS_DRIVER_OVERRIDE: u32 = 2;
pub const SYSFS_BIND: u32 = 3;
/// A driver's `new_id` (`slot`: its index in `DRIVER_NAMES`).
pub const SYSFS_NEW_ID: u32 = 4;
/// `/sys/bus/pci/drivers_probe`: the kernel picks the driver.
pub const SYSFS_DRIVERS_PROBE: u32 = 5;
/// A PF's `sriov_drivers_autoprobe`.
pub const SYSFS_AUTOPROBE: u32 = 6;

// `Conf::flags`.
/// Some VF has L2 rules (source MAC, VLAN, rate): routes around TC egress
/// are refused.
pub const CONF_L2: u32 = 1;
/// Some VF would get a driver it may not have if the kernel picked one by
/// ID (`drivers_probe` with text the program cannot read is refused).
pub const CONF_PROBE_RISK: u32 = 2;

// `PolicyRecord::value` of a `V_DRIVER` record: the route.
pub const DRIVER_VIA_OVERRIDE: u64 = 0;
pub const DRIVER_VIA_BIND: u64 = 1;
pub const DRIVER_VIA_NEW_ID: u64 = 2;
pub const DRIVER_VIA_PROBE: u64 = 3;
pub const DRIVER_VIA_AUTOPROBE: u64 = 4;
/// Refused where the kernel binds it (whatever the route: a module load,
/// a text changed after the check, ...).
pub const DRIVER_AT_BIND: u64 = 5;

/// `IommuState::slot` of a container that serves no VF with a quota.
pub const NO_SLOT: u32 = u32::MAX;

/// Map names.
pub mod maps {
    /// `Array<Conf>` of 1.
    pub const POLICY_CONF: &str = "POLICY_CONF";
    /// `Array<Rule>` of `2 * MAX_VFS`.
    pub const VF_RULES: &str = "VF_RULES";
    /// `Array<Rule>` of `2 * MAX_PFS`.
    pub const PF_RULES: &str = "PF_RULES";
    /// `HashMap<u32 kernel dev_t, u32 VF slot>`: `/dev/vfio/<group>` nodes.
    pub const GROUP_VF: &str = "GROUP_VF";
    /// `HashMap<u64 struct file *, u32 VF slot>`: VFIO container files.
    pub const CONTAINERS: &str = "CONTAINERS";
    /// `HashMap<u32 IOMMU group id, u32 VF slot>`.
    pub const GROUPID_VF: &str = "GROUPID_VF";
    /// `HashMap<u64 struct vfio_iommu *, IommuState>`: the type1 containers
    /// opened while the policy is loaded, with the bytes they have pinned.
    pub const IOMMU_STATE: &str = "IOMMU_STATE";
    /// `HashMap<u64 driver index << 32 | vendor << 16 | device, u32 VF
    /// slot>`: a `new_id` that would let a driver take a VF it may not
    /// have (`device`/`vendor` all ones: any ID, for `PCI_ANY_ID`).
    pub const NEWID_GUARD: &str = "NEWID_GUARD";
    /// `Array<u64>` by VF slot: bytes DMA-mapped through VFIO now.
    pub const DMA_USED: &str = "DMA_USED";
    /// `HashMap<u32 ifindex, u32 VF slot>`: VF netdevs.
    pub const NETDEV_VF: &str = "NETDEV_VF";
    /// `PerCpuArray<[u64; 4]>` by VF slot: frames dropped (src MAC, VLAN,
    /// rate, passed).
    pub const TC_COUNTS: &str = "TC_COUNTS";
    /// `HashMap<SysfsKey, SysfsFile>`: the sysfs files the policy guards.
    pub const SYSFS_FILES: &str = "SYSFS_FILES";
    /// `HashMap<[u8; BDF_LEN], u32 VF slot>`.
    pub const BDF_VF: &str = "BDF_VF";
    /// `HashMap<[u8; BDF_LEN], u32 PF slot>`: PFs with `numvfs` rules.
    pub const BDF_PF: &str = "BDF_PF";
    /// `Array<[u8; DRIVER_LEN]>` of `MAX_DRIVER_NAMES`: driver names of
    /// `bind` files.
    pub const DRIVER_NAMES: &str = "DRIVER_NAMES";
    /// `PerCpuArray<u64>` of `MAX_RULE_CODES`, by `record::V_*` code:
    /// violations reported (denied, audited or dropped) since the load.
    pub const VIOLATIONS: &str = "VIOLATIONS";
    /// `HashMap<u32 VF slot, u32 driver index or NO_SLOT>`: VFs a driver
    /// that matches their ID (the one the kernel picks with no override)
    /// may not have; the value names it in `DRIVER_NAMES` when loaded.
    pub const PROBE_RISK: &str = "PROBE_RISK";
    /// `Array<u32>` of `MAX_VFS + 1`: by VF slot, the epoch + 1 in which
    /// the VF's `driver_override` was set to a driver it may have (0: not);
    /// at `OVERRIDE_EPOCH`, the epoch, advanced by every approved
    /// `sriov_numvfs` write. Written by the programs as they see the writes
    /// (user space seeds a slot when it is first given).
    pub const OVERRIDE_OK: &str = "OVERRIDE_OK";
    /// `Array<u32>` by `SysfsFile::probe`: a PF's `sriov_drivers_autoprobe`.
    pub const AUTOPROBE: &str = "AUTOPROBE";
}

/// Index of the epoch in `maps::OVERRIDE_OK`.
pub const OVERRIDE_EPOCH: u32 = MAX_VFS;

/// Entries of `maps::VIOLATIONS` (`record::V_*` codes are below it).
pub const MAX_RULE_CODES: u32 = 32;

/// Program names.
pub mod programs {
    pub const FILE_IOCTL: &str = "policy_file_ioctl";
    pub const FILE_OPEN: &str = "policy_file_open";
    pub const FILE_PERMISSION: &str = "policy_file_permission";
    pub const TC_EGRESS: &str = "policy_tc_egress";
    pub const FILE_FREE: &str = "policy_file_free";
    pub const SOCKET_SETSOCKOPT: &str = "policy_socket_setsockopt";
    pub const SOCKET_BIND: &str = "policy_socket_bind";
    pub const KERNFS_INIT: &str = "policy_kernfs_init";
    /// Tracepoints that keep `GROUPID_VF` as VFs join and leave IOMMU
    /// groups: (program, `iommu` event).
    /// The kprobe that learns each new `/dev/vfio/<group>` node's device
    /// number as VFIO adds it (`cdev_device_add`): (program, function).
    pub const CDEV_KPROBE: (&str, &str) = ("policy_cdev_add", "cdev_device_add");
    pub const GROUP_TRACEPOINTS: [(&str, &str); 2] = [
        ("policy_group_add", "add_device_to_group"),
        ("policy_group_remove", "remove_device_from_group"),
    ];
    /// The kprobes that follow what VFIO type1 really pins and unpins:
    /// (program, kernel function), in the module `vfio_iommu_type1`.
    pub const DMA_KPROBES: [(&str, &str); 12] = [
        ("policy_iommu_open_exit", "vfio_iommu_type1_open"),
        ("policy_ioctl_enter", "vfio_iommu_type1_ioctl"),
        ("policy_ioctl_leave", "vfio_iommu_type1_ioctl"),
        ("policy_attach_enter", "vfio_iommu_type1_attach_group"),
        ("policy_attach_leave", "vfio_iommu_type1_attach_group"),
        ("policy_detach_enter", "vfio_iommu_type1_detach_group"),
        ("policy_detach_leave", "vfio_iommu_type1_detach_group"),
        ("policy_release_enter", "vfio_iommu_type1_release"),
        ("policy_release_leave", "vfio_iommu_type1_release"),
        ("policy_pin_enter", "vfio_pin_pages_remote"),
        ("policy_pin_leave", "vfio_pin_pages_remote"),
        ("policy_unpin_enter", "vfio_unpin_pages_remote"),
    ];
}

/// Policy-wide settings (`POLICY_CONF[0]`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conf {
    /// Which half of `VF_RULES`/`PF_RULES` is live (0 or 1).
    pub active: u32,
    pub mode: u32,
    pub offsets: [u32; N_OFFSETS],
    /// `CONF_*` bits.
    pub flags: u32,
    /// Major number of the `/dev/vfio/<group>` nodes (0: VFIO not loaded).
    pub vfio_major: u32,
    /// Address of the kernel's `kernfs_file_fops` (every sysfs file's
    /// `f_op`): `file_permission` leaves at once for other files. 0: not
    /// known (`/proc/kallsyms` hides it), every written file is looked up.
    pub kernfs_fops: u64,
}

impl Conf {
    pub const SIZE: usize = 24 + 4 * N_OFFSETS;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.active.to_le_bytes());
        b[4..8].copy_from_slice(&self.mode.to_le_bytes());
        for (i, o) in self.offsets.iter().enumerate() {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&o.to_le_bytes());
        }
        b[8 + 4 * N_OFFSETS..12 + 4 * N_OFFSETS].copy_from_slice(&self.flags.to_le_bytes());
        b[12 + 4 * N_OFFSETS..16 + 4 * N_OFFSETS].copy_from_slice(&self.vfio_major.to_le_bytes());
        b[16 + 4 * N_OFFSETS..].copy_from_slice(&self.kernfs_fops.to_le_bytes());
        b
    }
}

/// One VF's (or PF's) rules.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub flags: u32,
    pub n_uids: u32,
    pub n_cgroups: u32,
    pub n_exes: u32,
    pub n_drivers: u32,
    pub n_macs: u32,
    pub n_vlans: u32,
    pub numvfs_min: u32,
    pub numvfs_max: u32,
    pub _pad: u32,
    pub dma_quota: u64,
    pub max_pps: u64,
    pub uids: [u32; MAX_UIDS],
    pub cgroups: [u64; MAX_CGROUPS],
    /// Executable files: inode (8 bytes LE), device (4, kernel encoding), 4 of padding.
    pub exes: [[u8; 16]; MAX_EXES],
    pub drivers: [[u8; DRIVER_LEN]; MAX_DRIVERS],
    /// 6 bytes of MAC, 2 of padding.
    pub macs: [[u8; 8]; MAX_MACS],
    pub vlans: [u16; MAX_VLANS],
}

impl Rule {
    pub const SIZE: usize = 632;

    pub const EMPTY: Self = Self {
        flags: 0,
        n_uids: 0,
        n_cgroups: 0,
        n_exes: 0,
        n_drivers: 0,
        n_macs: 0,
        n_vlans: 0,
        numvfs_min: 0,
        numvfs_max: 0,
        _pad: 0,
        dma_quota: 0,
        max_pps: 0,
        uids: [0; MAX_UIDS],
        cgroups: [0; MAX_CGROUPS],
        exes: [[0; 16]; MAX_EXES],
        drivers: [[0; DRIVER_LEN]; MAX_DRIVERS],
        macs: [[0; 8]; MAX_MACS],
        vlans: [0; MAX_VLANS],
    };

    /// The bytes of the `#[repr(C)]` layout, little endian.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        let words = [
            self.flags,
            self.n_uids,
            self.n_cgroups,
            self.n_exes,
            self.n_drivers,
            self.n_macs,
            self.n_vlans,
            self.numvfs_min,
            self.numvfs_max,
            0,
        ];
        for (i, w) in words.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        b[40..48].copy_from_slice(&self.dma_quota.to_le_bytes());
        b[48..56].copy_from_slice(&self.max_pps.to_le_bytes());
        for (i, u) in self.uids.iter().enumerate() {
            b[56 + 4 * i..60 + 4 * i].copy_from_slice(&u.to_le_bytes());
        }
        for (i, c) in self.cgroups.iter().enumerate() {
            b[88 + 8 * i..96 + 8 * i].copy_from_slice(&c.to_le_bytes());
        }
        for (i, c) in self.exes.iter().enumerate() {
            b[152 + 16 * i..168 + 16 * i].copy_from_slice(c);
        }
        for (i, d) in self.drivers.iter().enumerate() {
            b[280 + DRIVER_LEN * i..280 + DRIVER_LEN * (i + 1)].copy_from_slice(d);
        }
        for (i, m) in self.macs.iter().enumerate() {
            b[536 + 8 * i..544 + 8 * i].copy_from_slice(m);
        }
        for (i, v) in self.vlans.iter().enumerate() {
            b[600 + 2 * i..602 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// Key of `SYSFS_FILES`: the inode of a sysfs file (`st_ino`) and its
/// file system (`st_dev` in the kernel's encoding, major << 20 | minor).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysfsKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

impl SysfsKey {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.ino.to_le_bytes());
        b[8..12].copy_from_slice(&self.dev.to_le_bytes());
        b
    }
}

/// Value of `SYSFS_FILES`: what the file is and whose.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysfsFile {
    pub kind: u32,
    /// PF slot (`sriov_numvfs`, [`NO_SLOT`] for a PF without `numvfs`
    /// rules), VF slot (`driver_override`) or index in `DRIVER_NAMES`
    /// (`bind`, `new_id`).
    pub slot: u32,
    /// `sriov_numvfs`, `sriov_drivers_autoprobe`: a VF of the PF that the
    /// driver the kernel picks by ID may not have, or [`NO_SLOT`].
    pub risk: u32,
    /// `sriov_numvfs`, `sriov_drivers_autoprobe`: the PF's entry in
    /// `AUTOPROBE`, or [`NO_SLOT`].
    pub probe: u32,
}

impl SysfsFile {
    pub const SIZE: usize = 16;

    /// A file with no PF-level fields.
    pub const fn new(kind: u32, slot: u32) -> Self {
        Self {
            kind,
            slot,
            risk: NO_SLOT,
            probe: NO_SLOT,
        }
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        for (i, w) in [self.kind, self.slot, self.risk, self.probe]
            .iter()
            .enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        b
    }
}

/// The kernel's `dev_t` encoding (`MKDEV`): 12 bits of major, 20 of minor.
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & 0xf_ffff)
}

const _: () = assert!(core::mem::size_of::<Rule>() == Rule::SIZE);
const _: () = assert!(core::mem::size_of::<Conf>() == Conf::SIZE);
const _: () = assert!(core::mem::size_of::<SysfsKey>() == SysfsKey::SIZE);
const _: () = assert!(core::mem::size_of::<SysfsFile>() == SysfsFile::SIZE);
const _: () = assert!(core::mem::offset_of!(Rule, dma_quota) == 40);
const _: () = assert!(core::mem::offset_of!(Rule, uids) == 56);
const _: () = assert!(core::mem::offset_of!(Rule, cgroups) == 88);
const _: () = assert!(core::mem::offset_of!(Rule, exes) == 152);
const _: () = assert!(core::mem::offset_of!(Rule, drivers) == 280);
const _: () = assert!(core::mem::offset_of!(Rule, macs) == 536);
const _: () = assert!(core::mem::offset_of!(Rule, vlans) == 600);

/// An executable file as a `Rule` holds it.
pub fn exe_key(ino: u64, dev: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&ino.to_le_bytes());
    b[8..12].copy_from_slice(&dev.to_le_bytes());
    b
}

/// Value of `IOMMU_STATE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IommuState {
    /// The VF with a DMA quota this container serves, or [`NO_SLOT`].
    pub slot: u32,
    pub _pad: u32,
    /// Bytes VFIO has pinned for it (pages pinned minus pages unpinned).
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<IommuState>() == 16);
