//! The kernel form of a resolved policy: each VF's and PF's rules as the
//! `Rule` bytes the programs read, and the slots (a stable index per BDF)
//! they live at.
use std::collections::{BTreeMap, BTreeSet};

use sriov_ebpf::policy::{self as k, Rule};

use super::{Allow, PfPolicy, VfRules};
use crate::{Error, Result};

/// `s` as NUL-padded bytes (cut at N).
pub fn copy_name<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    let n = b.len().min(N);
    out[..n].copy_from_slice(&b[..n]);
    out
}

fn who_into(rule: &mut Rule, a: &Allow) {
    rule.n_uids = a.uids.len().min(k::MAX_UIDS) as u32;
    for (d, u) in rule.uids.iter_mut().zip(&a.uids) {
        *d = *u;
    }
    rule.n_cgroups = a.cgroup_ids.len().min(k::MAX_CGROUPS) as u32;
    for (d, c) in rule.cgroups.iter_mut().zip(&a.cgroup_ids) {
        *d = *c;
    }
    rule.n_exes = a.exe_ids.len().min(k::MAX_EXES) as u32;
    for (d, &(ino, dev)) in rule.exes.iter_mut().zip(&a.exe_ids) {
        *d = k::exe_key(ino, dev);
    }
}

/// The kernel form of a VF's rules.
pub fn vf_rule(r: &VfRules) -> Rule {
    let mut rule = Rule::EMPTY;
    if let Some(q) = r.dma_quota_bytes {
        rule.flags |= k::RULE_DMA_QUOTA;
        rule.dma_quota = q;
    }
    if let Some(a) = &r.vfio_open {
        rule.flags |= k::RULE_VFIO_OPEN;
        who_into(&mut rule, a);
    }
    if let Some(d) = &r.allowed_drivers {
        rule.flags |= k::RULE_DRIVERS;
        rule.n_drivers = d.len().min(k::MAX_DRIVERS) as u32;
        for (dst, name) in rule.drivers.iter_mut().zip(d) {
            *dst = copy_name(name);
        }
    }
    if let Some(m) = &r.allowed_src_macs {
        rule.flags |= k::RULE_SRC_MACS;
        rule.n_macs = m.len().min(k::MAX_MACS) as u32;
        for (dst, mac) in rule.macs.iter_mut().zip(m) {
            dst[..6].copy_from_slice(&mac.0);
        }
    }
    if let Some(v) = &r.allowed_vlans {
        rule.flags |= k::RULE_VLANS;
        rule.n_vlans = v.len().min(k::MAX_VLANS) as u32;
        for (dst, vid) in rule.vlans.iter_mut().zip(v) {
            *dst = *vid;
        }
    }
    if let Some(p) = r.max_pps {
        rule.flags |= k::RULE_MAX_PPS;
        rule.max_pps = p;
    }
    rule
}

/// The kernel form of a PF's `numvfs` rules.
pub fn pf_rule(p: &PfPolicy) -> Rule {
    let mut rule = Rule::EMPTY;
    rule.flags |= k::RULE_NUMVFS_RANGE;
    rule.numvfs_min = p.numvfs_min;
    rule.numvfs_max = p.numvfs_max;
    if let Some(a) = &p.numvfs_writers {
        rule.flags |= k::RULE_NUMVFS_WRITERS;
        who_into(&mut rule, a);
    }
    rule
}

/// Slots by BDF, stable for the life of the [`Enforcer`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Slots {
    by_bdf: BTreeMap<String, u32>,
    max: u32,
}

impl Slots {
    pub fn new(max: u32) -> Self {
        Self {
            by_bdf: BTreeMap::new(),
            max,
        }
    }

    /// The slot of `bdf`, given a new one if it has none.
    pub fn slot(&mut self, bdf: &str) -> Result<u32> {
        if let Some(&s) = self.by_bdf.get(bdf) {
            return Ok(s);
        }
        let used: BTreeSet<u32> = self.by_bdf.values().copied().collect();
        let s = (0..self.max)
            .find(|s| !used.contains(s))
            .ok_or_else(|| Error::Unsupported {
                device: bdf.to_string(),
                message: format!("a policy covers at most {} devices", self.max),
            })?;
        self.by_bdf.insert(bdf.to_string(), s);
        Ok(s)
    }

    pub fn get(&self, bdf: &str) -> Option<u32> {
        self.by_bdf.get(bdf).copied()
    }

    /// BDFs in slot order (gaps are empty strings).
    pub fn table(&self) -> Vec<String> {
        let n = self.by_bdf.values().max().map_or(0, |m| m + 1) as usize;
        let mut t = vec![String::new(); n];
        for (b, &s) in &self.by_bdf {
            t[s as usize] = b.clone();
        }
        t
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{policy::StormAction, types::MacAddr};

    #[test]
    fn vf_rules_encode_to_the_kernel_layout() {
        let rules = VfRules {
            dma_quota_bytes: Some(1 << 20),
            vfio_open: Some(Allow {
                uids: vec![0, 1000],
                cgroups: vec![],
                cgroup_ids: vec![77],
                executables: vec!["/usr/bin/qemu".into()],
                exe_ids: vec![(0x0102_0304_0506_0708, 0x00a0_0001)],
            }),
            allowed_drivers: Some(vec!["vfio-pci".into()]),
            allowed_src_macs: Some(vec![MacAddr([2, 0, 0, 0, 0, 1])]),
            allowed_vlans: Some(vec![0, 10]),
            max_pps: Some(1000),
            irq_storm_per_s: Some(5),
            irq_storm_action: StormAction::Alert,
        };
        let r = vf_rule(&rules);
        assert_eq!(
            r.flags,
            k::RULE_DMA_QUOTA
                | k::RULE_VFIO_OPEN
                | k::RULE_DRIVERS
                | k::RULE_SRC_MACS
                | k::RULE_VLANS
                | k::RULE_MAX_PPS
        );
        let b = r.encode();
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(u32_at(4), 2, "n_uids");
        assert_eq!(u32_at(56 + 4), 1000, "uids[1]");
        assert_eq!(u64_at(40), 1 << 20, "dma_quota");
        assert_eq!(u64_at(48), 1000, "max_pps");
        assert_eq!(u64_at(88), 77, "cgroups[0]");
        assert_eq!(u32_at(12), 1, "n_exes");
        assert_eq!(u64_at(152), 0x0102_0304_0506_0708, "exes[0].ino");
        assert_eq!(u32_at(160), 0x00a0_0001, "exes[0].dev");
        assert_eq!(&b[280..288], b"vfio-pci");
        assert_eq!(&b[536..542], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(u16::from_le_bytes([b[602], b[603]]), 10, "vlans[1]");
        // no rules, no flags: the programs pass everything
        assert_eq!(vf_rule(&VfRules::default()).flags, 0);
    }

    #[test]
    fn pf_rules_carry_the_range_and_the_writers() {
        let p = PfPolicy {
            bdf: "0000:01:00.0".into(),
            netdev: None,
            numvfs_min: 1,
            numvfs_max: 4,
            numvfs_writers: Some(Allow {
                uids: vec![0],
                ..Default::default()
            }),
        };
        let r = pf_rule(&p);
        assert_eq!(r.flags, k::RULE_NUMVFS_RANGE | k::RULE_NUMVFS_WRITERS);
        assert_eq!((r.numvfs_min, r.numvfs_max, r.n_uids), (1, 4, 1));
        let b = r.encode();
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 4);
    }

    #[test]
    fn slots_are_stable_per_bdf_and_run_out() {
        let mut s = Slots::new(2);
        assert_eq!(s.slot("a").unwrap(), 0);
        assert_eq!(s.slot("b").unwrap(), 1);
        assert_eq!(s.slot("a").unwrap(), 0);
        let e = s.slot("c").unwrap_err();
        assert!(e.to_string().contains("at most 2"), "{e}");
        assert_eq!(s.table(), vec!["a".to_string(), "b".to_string()]);
    }
}
