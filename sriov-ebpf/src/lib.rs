//! Types shared between the eBPF programs (kernel side) and `sriov-core`
//! (user side).
//!
//! Everything here is `#[repr(C)]` plain data with explicit padding so that
//! the byte layout is identical on `bpfel` and on the host. User space never
//! transmutes these: `sriov-core` decodes raw map values and ring-buffer
//! records with `TryFrom<&[u8]>`, using the offsets and sizes declared here.
#![no_std]

pub mod policy;
pub mod record;
pub mod text;

/// Names of the maps in the eBPF object, used by the loader.
pub mod maps {
    /// `Array<u8>` by IRQ number: non-zero for IRQs (a VF's `msi_irqs`) to count.
    pub const WATCH_IRQS: &str = "WATCH_IRQS";
    /// `PerCpuArray<u64>` by IRQ number: interrupts seen per watched IRQ.
    pub const IRQ_COUNTS: &str = "IRQ_COUNTS";
    /// `PerCpuArray<IrqStats>` by IRQ number: handler time per watched IRQ.
    pub const IRQ_STATS: &str = "IRQ_STATS";
    /// `PerCpuArray<u64>` by IRQ number: interrupts VFIO forwarded (eventfd).
    pub const VFIO_IRQ_COUNTS: &str = "VFIO_IRQ_COUNTS";
    /// `RingBuf`: the records of [`crate::record`].
    pub const EVENTS: &str = "EVENTS";
    /// `PerCpuArray<u64>` of 1: records dropped because `EVENTS` was full.
    pub const LOST: &str = "LOST";
    /// `PerCpuArray<u64>` of 2: IOMMU pages mapped / unmapped (bytes), all devices.
    pub const IOMMU_BYTES: &str = "IOMMU_BYTES";
    /// `HashMap<VfKey, u64>`: when each VF (PF name, index) was created
    /// (`bpf_ktime_get_ns` as `pci_iov_add_virtfn` began); removed with it.
    pub const VF_BIRTHS: &str = "VF_BIRTHS";
    /// `Array<u32>` of [`crate::PROBE_CONF_LEN`]: what the loader found in the
    /// kernel's BTF for the probes ([`crate::CONF_PCI_DEV_DEV`] and on).
    pub const PROBE_CONF: &str = "PROBE_CONF";
    /// `LruHashMap<ConfigKey, ConfigWindow>`: config space accesses through
    /// VFIO per device, register and direction: how many, and the window
    /// in which only the first one is sent as a record.
    pub const CONFIG_WINDOWS: &str = "CONFIG_WINDOWS";
}

/// A VFIO device's config register, as the kernel side counts accesses.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigKey {
    /// The `struct vfio_pci_core_device *` (user space learns its name
    /// from the records; the pointer is never shown).
    pub vdev: u64,
    pub offset: u32,
    /// Bytes asked for, with bit 31 set for a write.
    pub width_op: u32,
}

impl ConfigKey {
    pub const SIZE: usize = 16;
    pub const WRITE: u32 = 1 << 31;

    /// A key as the map holds it.
    pub fn from_le_bytes(b: [u8; Self::SIZE]) -> Self {
        let [
            v0,
            v1,
            v2,
            v3,
            v4,
            v5,
            v6,
            v7,
            o0,
            o1,
            o2,
            o3,
            w0,
            w1,
            w2,
            w3,
        ] = b;
        Self {
            vdev: u64::from_le_bytes([v0, v1, v2, v3, v4, v5, v6, v7]),
            offset: u32::from_le_bytes([o0, o1, o2, o3]),
            width_op: u32::from_le_bytes([w0, w1, w2, w3]),
        }
    }
}

/// Accesses to one [`ConfigKey`]: since the probes were loaded, and when
/// the current window began (an access after `window_ns` of it is sent as
/// a record and begins the next).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigWindow {
    pub total: u64,
    pub window_start_ns: u64,
    /// The latest access.
    pub last_ns: u64,
}

impl ConfigWindow {
    pub const SIZE: usize = 24;

    /// A value as the map holds it.
    pub fn from_le_bytes(b: [u8; Self::SIZE]) -> Self {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[8 * i..8 * i + 8]);
            u64::from_le_bytes(a)
        };
        Self {
            total: u64_at(0),
            window_start_ns: u64_at(1),
            last_ns: u64_at(2),
        }
    }
}

/// Length of a `config_access` window (kernel ns): per register, one record
/// per window, the rest only counted.
pub const CONFIG_WINDOW_NS: u64 = 1_000_000_000;

const _: () = assert!(core::mem::size_of::<ConfigKey>() == ConfigKey::SIZE);
const _: () = assert!(core::mem::size_of::<ConfigWindow>() == ConfigWindow::SIZE);

// `PROBE_CONF` slots: struct member offsets from the kernel's BTF (and
// its modules'), each stored as offset + 1 (0: not found, and the hooks
// that need it leave that field empty).
/// `offsetof(struct pci_dev, dev)`.
pub const CONF_PCI_DEV_DEV: u32 = 0;
/// igb: `offsetof(struct e1000_hw, back)` (the `igb_adapter`).
pub const CONF_IGB_HW_BACK: u32 = 1;
/// igb: `offsetof(struct igb_adapter, pdev)`.
pub const CONF_IGB_ADAPTER_PDEV: u32 = 2;
/// vfio-pci-core: `offsetof(struct vfio_pci_core_device, pdev)`.
pub const CONF_VFIO_PCI_PDEV: u32 = 3;
/// `offsetof(struct task_struct, mm)`.
pub const CONF_TASK_MM: u32 = 4;
/// `offsetof(struct mm_struct, exe_file)`.
pub const CONF_MM_EXE_FILE: u32 = 5;
/// `offsetof(struct file, f_path) + offsetof(struct path, dentry)`.
pub const CONF_FILE_DENTRY: u32 = 6;
/// `offsetof(struct dentry, d_name) + offsetof(struct qstr, name)`.
pub const CONF_DENTRY_NAME: u32 = 7;
/// `offsetof(struct net_device, name)`.
pub const CONF_NETDEV_NAME: u32 = 8;
/// `offsetof(struct kernfs_open_file, kn)`.
pub const CONF_KOF_KN: u32 = 9;
/// `offsetof(struct kernfs_node, name)`.
pub const CONF_KN_NAME: u32 = 10;
/// `offsetof(struct kernfs_node, parent)`.
pub const CONF_KN_PARENT: u32 = 11;
pub const PROBE_CONF_LEN: u32 = 12;

/// Key of `VF_BIRTHS`: the PF's device name (its BDF, NUL-padded) and the
/// VF index.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfKey {
    pub pf: [u8; record::NAME_LEN],
    pub index: u32,
    pub _pad: u32,
}

impl VfKey {
    pub const SIZE: usize = record::NAME_LEN + 8;

    /// The key of VF `index` of the PF named `pf` (longer names are cut).
    pub fn new(pf: &str, index: u32) -> Self {
        let mut k = Self {
            pf: [0; record::NAME_LEN],
            index,
            _pad: 0,
        };
        let n = pf.len().min(record::NAME_LEN - 1);
        k.pf[..n].copy_from_slice(&pf.as_bytes()[..n]);
        k
    }
}

const _: () = assert!(core::mem::size_of::<VfKey>() == VfKey::SIZE);

/// Default size of the `EVENTS` ring buffer (bytes, a power of two).
pub const EVENTS_BYTES: u32 = 1 << 20;

/// The share of the `EVENTS` ring (1/N) that must be waiting for a record
/// to wake its reader. Below, a record is submitted without a wake-up
/// (`BPF_RB_NO_WAKEUP`) and the reader drains the ring every
/// [`RING_POLL_MS`]: each wake-up is an `irq_work`, a self-interrupt on
/// the CPU of the hooked call, which every record paid before (the VFIO
/// `MAP_DMA` it follows took 3.2 times as long with the probes as without,
/// under TCG; 1.3 times with this). An eighth of the default 1 MiB ring
/// fills in about 100 ms at 100,000 records a second.
pub const RING_WAKE_SHARE: u64 = 8;

/// How often the reader drains the ring when no record woke it (ms),
/// while records come.
pub const RING_POLL_MS: u64 = 25;

/// The longest wait between two drains (ms): each drain that finds the
/// ring empty doubles the wait from [`RING_POLL_MS`] up to this, and one
/// that finds a record brings it back. Under TCG each drain cost about
/// 0.4 ms of the reader's CPU; 40 a second were 1.7 % of a core.
pub const RING_POLL_IDLE_MS: u64 = 200;

/// Names of the programs in the eBPF object, and where each attaches.
pub mod programs {
    /// Tracepoint `irq:irq_handler_entry`.
    pub const IRQ_HANDLER_ENTRY: &str = "irq_handler_entry";
    /// Tracepoint `irq:irq_handler_exit`.
    pub const IRQ_HANDLER_EXIT: &str = "irq_handler_exit";

    /// Programs that do nothing, one per attach type: benchmark baselines.
    pub const EMPTY_TRACEPOINT: &str = "empty_tracepoint";
    pub const EMPTY_KPROBE: &str = "empty_kprobe";
    pub const EMPTY_KRETPROBE: &str = "empty_kretprobe";
    pub const EMPTY_FENTRY: &str = "empty_fentry";
    pub const EMPTY_FEXIT: &str = "empty_fexit";

    /// What a program is and where it goes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Attach {
        Tracepoint {
            category: &'static str,
            name: &'static str,
        },
        Kprobe {
            function: &'static str,
        },
        Kretprobe {
            function: &'static str,
        },
        FEntry {
            function: &'static str,
        },
        FExit {
            function: &'static str,
        },
    }

    /// The BTF-typed twin of a kprobe/kretprobe program (fentry/fexit on the
    /// same function), which the loader tries first.
    pub const BTF_TWINS: &[(&str, &str)] = &[
        ("sriov_store_entry", "sriov_store_fentry"),
        ("sriov_store_exit", "sriov_store_fexit"),
        ("vf_add_entry", "vf_add_fentry"),
        ("vf_add_exit", "vf_add_fexit"),
        ("vf_remove_entry", "vf_remove_fentry"),
        ("vf_remove_exit", "vf_remove_fexit"),
        ("probe_entry", "probe_fentry"),
        ("probe_exit", "probe_fexit"),
        ("msi_entry", "msi_fentry"),
        ("msi_exit", "msi_fexit"),
        ("msi_free_entry", "msi_free_fentry"),
        ("msi_free_exit", "msi_free_fexit"),
        ("irq_free_entry", "irq_free_fentry"),
        ("msi_entry_descs", "msi_fentry_descs"),
        ("msi_exit_descs", "msi_fexit_descs"),
        ("msi_free_entry_descs", "msi_free_fentry_descs"),
        ("msi_free_exit_descs", "msi_free_fexit_descs"),
    ];

    /// Hooks on functions an older kernel does not have, and what stands
    /// in for each there: (program, stand-in program, the stand-in's attach
    /// point). The loader tries a stand-in (with its BTF twin first) only
    /// when the hook itself cannot attach. Before 6.2 MSI vectors were
    /// allocated and freed by `msi_domain_{alloc,free}_irqs_descs_locked`
    /// (Debian bookworm's 6.1), with the device as the second argument.
    pub const STAND_INS: &[(&str, &str, Attach)] = &[
        (
            "msi_entry",
            "msi_entry_descs",
            Attach::Kprobe {
                function: "msi_domain_alloc_irqs_descs_locked",
            },
        ),
        (
            "msi_exit",
            "msi_exit_descs",
            Attach::Kretprobe {
                function: "msi_domain_alloc_irqs_descs_locked",
            },
        ),
        (
            "msi_free_entry",
            "msi_free_entry_descs",
            Attach::Kprobe {
                function: "msi_domain_free_irqs_descs_locked",
            },
        ),
        (
            "msi_free_exit",
            "msi_free_exit_descs",
            Attach::Kretprobe {
                function: "msi_domain_free_irqs_descs_locked",
            },
        ),
    ];

    /// Functions timed inside a `sriov_numvfs` write, as phases of VF
    /// creation and removal (`SpanRecord`): (entry program, function, the
    /// record's `what`). One return program, `span_exit`, serves all.
    /// The PF driver's functions are igb's; another driver adds its own.
    pub const SPANS: &[(&str, &str, u32)] = &[
        ("span_enable_sriov", "pci_enable_sriov", 1),
        ("span_disable_sriov", "pci_disable_sriov", 2),
        ("span_igb_configure", "igb_pci_sriov_configure", 3),
        ("span_igb_enable", "igb_enable_sriov", 4),
        ("span_igb_disable", "igb_disable_sriov", 5),
        ("span_igb_reinit", "igb_sriov_reinit", 6),
        ("span_igb_close", "__igb_close", 7),
        ("span_igb_open", "__igb_open", 8),
        ("span_igb_reset", "igb_reset", 9),
    ];

    /// [`HOOKS`], then each span's entry kprobe and the shared return
    /// program: every hook the loader attaches besides the IRQ counter.
    pub fn all_hooks() -> impl Iterator<Item = (&'static str, Attach)> {
        HOOKS
            .iter()
            .copied()
            .chain(SPANS.iter().flat_map(|&(program, function, _)| {
                [
                    (program, Attach::Kprobe { function }),
                    ("span_exit", Attach::Kretprobe { function }),
                ]
            }))
    }

    /// The function a `SpanRecord::what` names.
    pub fn span_function(what: u32) -> Option<&'static str> {
        SPANS.iter().find(|s| s.2 == what).map(|s| s.1)
    }

    /// Every hook besides the IRQ counter: (program name, attach point);
    /// the [`SPANS`] come after these.
    pub const HOOKS: &[(&str, Attach)] = &[
        (
            "irq_handler_exit",
            Attach::Tracepoint {
                category: "irq",
                name: "irq_handler_exit",
            },
        ),
        (
            "sriov_store_entry",
            Attach::Kprobe {
                function: "sriov_numvfs_store",
            },
        ),
        (
            "sriov_store_exit",
            Attach::Kretprobe {
                function: "sriov_numvfs_store",
            },
        ),
        (
            "vf_add_entry",
            Attach::Kprobe {
                function: "pci_iov_add_virtfn",
            },
        ),
        (
            "vf_add_exit",
            Attach::Kretprobe {
                function: "pci_iov_add_virtfn",
            },
        ),
        (
            "vf_remove_entry",
            Attach::Kprobe {
                function: "pci_iov_remove_virtfn",
            },
        ),
        (
            "vf_remove_exit",
            Attach::Kretprobe {
                function: "pci_iov_remove_virtfn",
            },
        ),
        (
            "group_add",
            Attach::Tracepoint {
                category: "iommu",
                name: "add_device_to_group",
            },
        ),
        (
            "probe_entry",
            Attach::Kprobe {
                function: "really_probe",
            },
        ),
        (
            "probe_exit",
            Attach::Kretprobe {
                function: "really_probe",
            },
        ),
        (
            "msi_entry",
            Attach::Kprobe {
                function: "msi_domain_alloc_irqs_all_locked",
            },
        ),
        (
            "msi_exit",
            Attach::Kretprobe {
                function: "msi_domain_alloc_irqs_all_locked",
            },
        ),
        (
            "msi_free_entry",
            Attach::Kprobe {
                function: "msi_domain_free_irqs_all_locked",
            },
        ),
        (
            "msi_free_exit",
            Attach::Kretprobe {
                function: "msi_domain_free_irqs_all_locked",
            },
        ),
        (
            "irq_free_entry",
            Attach::Kprobe {
                function: "irq_free_descs",
            },
        ),
        (
            "vfio_irq",
            Attach::Kprobe {
                function: "vfio_msihandler",
            },
        ),
        // the PF side of the PF↔VF mailbox (igb module)
        (
            "mbx_read_entry",
            Attach::Kprobe {
                function: "igb_read_mbx",
            },
        ),
        (
            "mbx_exit",
            Attach::Kretprobe {
                function: "igb_read_mbx",
            },
        ),
        (
            "mbx_write_entry",
            Attach::Kprobe {
                function: "igb_write_mbx",
            },
        ),
        (
            "mbx_exit",
            Attach::Kretprobe {
                function: "igb_write_mbx",
            },
        ),
        // config space trapped by VFIO (vfio-pci-core module)
        (
            "config_entry",
            Attach::Kprobe {
                function: "vfio_pci_config_rw",
            },
        ),
        (
            "config_exit",
            Attach::Kretprobe {
                function: "vfio_pci_config_rw",
            },
        ),
        // a VF reaching its VFIO user and coming back (vfio-pci-core)
        (
            "vfio_dev_open",
            Attach::Kprobe {
                function: "vfio_pci_core_enable",
            },
        ),
        (
            "vfio_dev_close",
            Attach::Kprobe {
                function: "vfio_pci_core_close_device",
            },
        ),
        // administrative changes: the PF driver's ndo_set_vf_* (igb), and
        // the generic sysfs routes
        (
            "admin_mac",
            Attach::Kprobe {
                function: "igb_ndo_set_vf_mac",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "igb_ndo_set_vf_mac",
            },
        ),
        (
            "admin_vlan",
            Attach::Kprobe {
                function: "igb_ndo_set_vf_vlan",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "igb_ndo_set_vf_vlan",
            },
        ),
        (
            "admin_spoofchk",
            Attach::Kprobe {
                function: "igb_ndo_set_vf_spoofchk",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "igb_ndo_set_vf_spoofchk",
            },
        ),
        (
            "admin_trust",
            Attach::Kprobe {
                function: "igb_ndo_set_vf_trust",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "igb_ndo_set_vf_trust",
            },
        ),
        (
            "admin_rate",
            Attach::Kprobe {
                function: "igb_ndo_set_vf_bw",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "igb_ndo_set_vf_bw",
            },
        ),
        // every sysfs attribute write (PCI's driver_override_store has a
        // twin of the same name and does not call driver_set_override)
        (
            "admin_sysfs",
            Attach::Kprobe {
                function: "sysfs_kf_write",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "sysfs_kf_write",
            },
        ),
        (
            "admin_bind",
            Attach::Kprobe {
                function: "bind_store",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "bind_store",
            },
        ),
        (
            "admin_unbind",
            Attach::Kprobe {
                function: "unbind_store",
            },
        ),
        (
            "admin_exit",
            Attach::Kretprobe {
                function: "unbind_store",
            },
        ),
        (
            "vfio_ioctl_entry",
            Attach::Kprobe {
                function: "vfio_iommu_type1_ioctl",
            },
        ),
        (
            "vfio_ioctl_exit",
            Attach::Kretprobe {
                function: "vfio_iommu_type1_ioctl",
            },
        ),
        (
            "iommu_map",
            Attach::Tracepoint {
                category: "iommu",
                name: "map",
            },
        ),
        (
            "iommu_unmap",
            Attach::Tracepoint {
                category: "iommu",
                name: "unmap",
            },
        ),
    ];
}

/// `VFIO_IOMMU_MAP_DMA` = `_IO(';', 100 + 13)`.
pub const VFIO_IOMMU_MAP_DMA: u32 = (b';' as u32) << 8 | 113;
/// `VFIO_GROUP_SET_CONTAINER`: `_IO(VFIO_TYPE, VFIO_BASE + 4)`; the argument
/// points to the container's fd.
pub const VFIO_GROUP_SET_CONTAINER: u32 = (b';' as u32) << 8 | 104;
/// `VFIO_IOMMU_UNMAP_DMA` = `_IO(';', 100 + 14)`.
pub const VFIO_IOMMU_UNMAP_DMA: u32 = (b';' as u32) << 8 | 114;

/// IRQ numbers below this can be watched (the IRQ maps are arrays of this
/// size; 256 VFs x 4 vectors fit many times over).
pub const MAX_WATCHED_IRQS: u32 = 4096;

/// Byte offset of `int irq` in the `irq:irq_handler_entry` tracepoint record
/// (after the 8 bytes of common fields; see the event's `format` file).
pub const IRQ_HANDLER_ENTRY_IRQ_OFFSET: usize = 8;

/// Value stored in [`maps::WATCH_IRQS`] for an IRQ that is watched.
pub const WATCHED: u8 = 1;
