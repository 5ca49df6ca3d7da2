//! Per-VF policy enforced in the kernel (BPF LSM, TC), with violation events.
//!
//! - [`file`](mod@file): the TOML policy file: parse, validate, resolve against the
//!   inventory into a [`Policy`] (one [`VfPolicy`] per VF, one [`PfPolicy`]
//!   per PF), with errors that name the line, the field and the allowed
//!   values.
//! - [`btf`]: struct member offsets from the running kernel's BTF, handed to
//!   the eBPF programs (which have no CO-RE here).
//! - [`enforce`]: load the policy into the kernel maps (atomically, pinned
//!   under `/sys/fs/bpf/sriov-top`).
//! - [`instance`]: who owns the loaded policy (one process at a time: an
//!   owner record and a lock under `/run/sriov-top`).
//! - [`pinned`]: the policy in force read (and switched off) through its
//!   pins: `sriov policy status` and `unload`.
use std::path::PathBuf;

use serde::Serialize;

use crate::types::MacAddr;

pub mod btf;
pub mod dma;
pub mod enforce;
pub mod file;
mod identity;
pub mod instance;
pub mod modalias;
pub mod pinned;
pub mod rules;

/// A `dev_t` as `stat` gives it, in the kernel's encoding (what the
/// programs read from `super_block::s_dev` and `inode::i_rdev`).
pub fn kernel_dev(dev: u64) -> u32 {
    sriov_ebpf::policy::kernel_dev(libc::major(dev), libc::minor(dev))
}

/// At most this many entries in each list of a rule (the kernel side keeps
/// fixed-size arrays).
pub const MAX_UIDS: usize = 8;
pub const MAX_CGROUPS: usize = 8;
pub const MAX_EXECUTABLES: usize = 8;
pub const MAX_DRIVERS: usize = 8;
pub const MAX_SRC_MACS: usize = 8;
pub const MAX_VLANS: usize = 16;

/// `enforce`: deny and report; `audit`: report only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

/// Who may do something: a process passes when its uid is listed, when it
/// is in a listed cgroup or one below it, or when it runs a listed
/// executable file (by inode and device: what it runs, not what it calls
/// itself). Empty lists all around: nobody.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Allow {
    pub uids: Vec<u32>,
    /// cgroup v2 directories as written in the file.
    pub cgroups: Vec<PathBuf>,
    /// Their cgroup ids (the directory's inode number, what
    /// `bpf_get_current_cgroup_id` returns), same order.
    pub cgroup_ids: Vec<u64>,
    /// Executable files as written in the file (absolute paths).
    pub executables: Vec<PathBuf>,
    /// Their (inode, device in the kernel's encoding), same order.
    pub exe_ids: Vec<(u64, u32)>,
}

/// What to do when a VF's interrupt rate passes `irq_storm_per_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StormAction {
    /// A `policy_violation` event only.
    #[default]
    Alert,
    /// Also set the VF's link state to disable through the PF (netlink).
    LinkDown,
}

/// The rules for one VF (the defaults merged with every matching section,
/// later sections winning). `None`: no such rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VfRules {
    /// Most bytes that may be DMA-mapped through VFIO for this VF.
    pub dma_quota_bytes: Option<u64>,
    /// Who may open the VF's `/dev/vfio/<group>`.
    pub vfio_open: Option<Allow>,
    /// Drivers this VF may be bound to.
    pub allowed_drivers: Option<Vec<String>>,
    /// Source MACs the VF's netdev may send from.
    pub allowed_src_macs: Option<Vec<MacAddr>>,
    /// VLANs the VF's netdev may send on; 0 stands for untagged frames.
    pub allowed_vlans: Option<Vec<u16>>,
    /// Most frames per second the VF's netdev may send.
    pub max_pps: Option<u64>,
    /// Interrupts per second above which the VF is reported (and acted on).
    pub irq_storm_per_s: Option<u64>,
    pub irq_storm_action: StormAction,
}

impl VfRules {
    pub fn is_empty(&self) -> bool {
        self.dma_quota_bytes.is_none()
            && self.vfio_open.is_none()
            && self.allowed_drivers.is_none()
            && self.allowed_src_macs.is_none()
            && self.allowed_vlans.is_none()
            && self.max_pps.is_none()
            && self.irq_storm_per_s.is_none()
    }
}

/// One VF and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfPolicy {
    pub pf_bdf: String,
    pub pf_netdev: Option<String>,
    pub index: u32,
    pub bdf: String,
    pub netdev: Option<String>,
    pub iommu_group: Option<u32>,
    pub mac: Option<MacAddr>,
    pub rules: VfRules,
}

/// One PF's `sriov_numvfs` rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PfPolicy {
    pub bdf: String,
    pub netdev: Option<String>,
    /// Allowed range of `sriov_numvfs` values, inclusive.
    pub numvfs_min: u32,
    pub numvfs_max: u32,
    /// Who may write `sriov_numvfs`; `None`: anyone the kernel lets.
    pub numvfs_writers: Option<Allow>,
}

/// A policy file resolved against the system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Policy {
    pub mode: Mode,
    /// Every VF of every SR-IOV PF that has at least one rule.
    pub vfs: Vec<VfPolicy>,
    /// Every PF with a `numvfs` rule.
    pub pfs: Vec<PfPolicy>,
}

impl Policy {
    /// What the rules of this policy cannot see, one note per kind of
    /// rule in use (`sriov policy check` prints them): the routes of the
    /// route table in docs/policy.md that are not covered.
    pub fn limits(&self) -> Vec<String> {
        let vfs = |f: fn(&VfRules) -> bool| -> Vec<&str> {
            self.vfs
                .iter()
                .filter(|v| f(&v.rules))
                .map(|v| v.bdf.as_str())
                .collect()
        };
        let mut out = Vec::new();
        let l2 = vfs(|r| {
            r.allowed_src_macs.is_some() || r.allowed_vlans.is_some() || r.max_pps.is_some()
        });
        if !l2.is_empty() {
            out.push(format!(
                "{}: allowed_src_macs, allowed_vlans and max_pps hold on the VF netdev's TC \
                 egress only; frames a VFIO driver in user space sends through the VF, and an \
                 XDP program on its netdev, are not seen (the PF's `spoofchk on` and `vlan N` \
                 hold there); PACKET_QDISC_BYPASS and AF_XDP are refused while the policy is \
                 in force",
                l2.join(", ")
            ));
        }
        let drivers = vfs(|r| r.allowed_drivers.is_some());
        if !drivers.is_empty() {
            out.push(format!(
                "{}: allowed_drivers guards the sysfs routes; loading a driver module \
                 (modprobe) binds every unbound device it matches and is not guarded",
                drivers.join(", ")
            ));
        }
        let dma = vfs(|r| r.dma_quota_bytes.is_some() || r.vfio_open.is_some());
        if !dma.is_empty() && self.mode == Mode::Enforce {
            out.push(format!(
                "{}: dma_quota_bytes and vfio_open follow VFIO's group and type1 container; \
                 the policy refuses to load while iommufd is loaded",
                dma.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vf(bdf: &str, rules: VfRules) -> VfPolicy {
        VfPolicy {
            pf_bdf: "0000:01:00.0".into(),
            pf_netdev: None,
            index: 0,
            bdf: bdf.into(),
            netdev: None,
            iommu_group: None,
            mac: None,
            rules,
        }
    }

    #[test]
    fn limits_name_the_vfs_whose_rules_have_uncovered_routes() {
        let p = Policy {
            mode: Mode::Enforce,
            vfs: vec![
                vf(
                    "0000:01:10.0",
                    VfRules {
                        allowed_vlans: Some(vec![0]),
                        ..Default::default()
                    },
                ),
                vf(
                    "0000:01:10.2",
                    VfRules {
                        max_pps: Some(10),
                        allowed_drivers: Some(vec!["vfio-pci".into()]),
                        ..Default::default()
                    },
                ),
            ],
            pfs: vec![],
        };
        let l = p.limits();
        assert_eq!(l.len(), 2, "{l:#?}");
        assert!(
            l[0].starts_with("0000:01:10.0, 0000:01:10.2: allowed_src_macs"),
            "{}",
            l[0]
        );
        assert!(l[0].contains("VFIO driver in user space"), "{}", l[0]);
        assert!(
            l[1].starts_with("0000:01:10.2: allowed_drivers"),
            "{}",
            l[1]
        );
        assert!(Policy::default().limits().is_empty());
    }
}
