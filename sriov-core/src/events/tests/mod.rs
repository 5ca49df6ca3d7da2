//! Tests of the events pipeline over sysfs fixture trees (the lab's 82576:
//! PF 0000:01:00.0 `eth0`, VFs 0000:01:10.0/.2/.4 in IOMMU groups 484/486/488).
#![allow(clippy::unwrap_used)]

mod attribution;
mod conversation;
mod drift;
mod intervals;
mod irqs;
mod output;
mod waterfall;

use std::{
    collections::BTreeMap,
    fs, io,
    os::unix::fs::symlink,
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use sriov_ebpf::record::{self, IRQ_BUCKETS, IrqStats, Record};

use super::*;
use crate::{
    fixture::{self, PfSpec},
    host::System,
};

const PF: &str = "0000:01:00.0";
const VF0: &str = "0000:01:10.0";
const VF1: &str = "0000:01:10.2";
const VF2: &str = "0000:01:10.4";

fn lab(num_vfs: u32) -> (tempfile::TempDir, PfSpec, System) {
    let dir = tempfile::tempdir().unwrap();
    let spec = PfSpec::i82576(PF.parse().unwrap(), "eth0", num_vfs);
    fixture::add_pf(dir.path(), &spec).unwrap();
    let host = System::fixture(dir.path());
    (dir, spec, host)
}

fn vf_dir(root: &Path, bdf: &str) -> std::path::PathBuf {
    root.join(fixture::DEVICES).join(bdf)
}

fn add_msi_irqs(root: &Path, bdf: &str, irqs: &[u32]) {
    let d = vf_dir(root, bdf).join("msi_irqs");
    fs::create_dir_all(&d).unwrap();
    for irq in irqs {
        fs::write(d.join(irq.to_string()), "msix\n").unwrap();
    }
}

fn add_fds(root: &Path, pid: u32, targets: &[&str]) {
    let d = root.join(format!("proc/{pid}/fd"));
    fs::create_dir_all(&d).unwrap();
    for (fd, t) in targets.iter().enumerate() {
        symlink(t, d.join(fd.to_string())).unwrap();
    }
}

/// Per-IRQ readings summed per owner, as the IRQ ledger does for numbers
/// claimed from zero.
fn by_owner(
    attr: &Attributor,
    counts: &BTreeMap<u32, u64>,
    stats: &BTreeMap<u32, IrqStats>,
    vfio: &BTreeMap<u32, u64>,
) -> BTreeMap<super::irqs::Owner, super::irqs::IrqSums> {
    let mut out: BTreeMap<super::irqs::Owner, super::irqs::IrqSums> = BTreeMap::new();
    for (irq, owner) in attr.irq_owners() {
        let r = super::irqs::IrqReading {
            count: counts.get(&irq).copied().unwrap_or(0),
            vfio: vfio.get(&irq).copied().unwrap_or(0),
            stats: stats.get(&irq).copied().unwrap_or(IrqStats::ZERO),
        };
        out.entry(owner).or_default().add(&r);
    }
    out
}

fn identity(index: u32, bdf: &str, group: u32) -> VfIdentity {
    VfIdentity {
        pf: PF.into(),
        pf_netdev: Some("eth0".into()),
        index,
        bdf: bdf.into(),
        netdev: Some(format!("eth0v{index}")),
        iommu_group: Some(group),
        created_ns: None,
    }
}

// ---- hand-built records, at the offsets documented in record.rs ----

/// The PF driver's view of VF `index` as the lab starts it: no MAC, VLAN
/// `vlan`, spoofchk on, trust off, no rate limit.
fn net_info(index: u32, vlan: u16) -> crate::host::VfNetInfo {
    crate::host::VfNetInfo {
        vf: index,
        mac: None,
        vlan,
        qos: 0,
        spoofchk: Some(true),
        trust: Some(false),
        link_state: None,
        min_tx_rate: 0,
        max_tx_rate: 0,
        stats: None,
    }
}

fn padded(s: &str, len: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(len, 0);
    v
}

fn header(kind: u32, ts_ns: u64, pid: u32, tid: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(kind.to_le_bytes()); // 0
    b.extend(3u32.to_le_bytes()); // 4 cpu
    b.extend(ts_ns.to_le_bytes()); // 8
    b.extend(tid.to_le_bytes()); // 16
    b.extend(pid.to_le_bytes()); // 20
    b.extend(padded("bash", record::COMM_LEN)); // 24
    assert_eq!(b.len(), record::Header::SIZE);
    b
}

fn decode(b: &[u8]) -> Record {
    Record::decode(b).unwrap()
}

fn sriov_configure(pf: &str, value: &str, ret: i64) -> Record {
    let mut b = header(record::KIND_SRIOV_CONFIGURE, 5_000, 100, 101);
    b.extend(padded(pf, record::NAME_LEN)); // 40
    b.extend(padded(value, 8)); // 72
    b.extend(ret.to_le_bytes()); // 80
    b.extend(777u64.to_le_bytes()); // 88
    assert_eq!(b.len(), record::SriovConfigureRecord::SIZE);
    decode(&b)
}

fn vf_record(kind: u32, pf: &str, vf_id: i32) -> Record {
    let mut b = header(kind, 42_000, 100, 101);
    b.extend(padded(pf, record::NAME_LEN)); // 40
    b.extend(vf_id.to_le_bytes()); // 72
    b.extend(0i32.to_le_bytes()); // 76
    b.extend(1234u64.to_le_bytes()); // 80
    assert_eq!(b.len(), record::VfRecord::SIZE);
    decode(&b)
}

fn probe_record(dev: &str, driver: &str) -> Record {
    let mut b = header(record::KIND_DRIVER_PROBE, 7_000, 1, 1);
    b.extend(padded(dev, record::NAME_LEN)); // 40
    b.extend(padded(driver, record::NAME_LEN)); // 72
    b.extend((-19i32).to_le_bytes()); // 104
    b.extend(0u32.to_le_bytes()); // 108
    b.extend(55u64.to_le_bytes()); // 112
    assert_eq!(b.len(), record::ProbeRecord::SIZE);
    decode(&b)
}

fn msi_record(dev: &str, nvec: i32) -> Record {
    let mut b = header(record::KIND_MSI_ALLOC, 8_000, 1, 1);
    b.extend(padded(dev, record::NAME_LEN)); // 40
    b.extend(nvec.to_le_bytes()); // 72
    b.extend(0i32.to_le_bytes()); // 76
    b.extend(66u64.to_le_bytes()); // 80
    assert_eq!(b.len(), record::MsiRecord::SIZE);
    decode(&b)
}

fn irq_free(dev: &str, from: u32, cnt: u32) -> Record {
    let mut b = header(record::KIND_IRQ_FREE, 8_500, 1, 1);
    b.extend(padded(dev, record::NAME_LEN)); // 40
    b.extend(from.to_le_bytes()); // 72
    b.extend(cnt.to_le_bytes()); // 76
    assert_eq!(b.len(), record::IrqFreeRecord::SIZE);
    decode(&b)
}

fn dma_record(pid: u32, op: u32, size: u64, ts_ns: u64) -> Record {
    let mut b = header(record::KIND_VFIO_DMA, ts_ns, pid, pid + 1);
    b.extend(op.to_le_bytes()); // 40
    b.extend(0i32.to_le_bytes()); // 44
    b.extend(0x10_0000u64.to_le_bytes()); // 48 iova
    b.extend(size.to_le_bytes()); // 56
    b.extend(0x7f00_0000_0000u64.to_le_bytes()); // 64 vaddr
    b.extend(2_500u64.to_le_bytes()); // 72
    assert_eq!(b.len(), record::DmaRecord::SIZE);
    decode(&b)
}

fn vfio_dev_record(pid: u32, dev: &str, op: u32, ts_ns: u64) -> Record {
    let mut b = header(record::KIND_VFIO_DEV, ts_ns, pid, pid);
    b.extend(padded(dev, record::NAME_LEN)); // 40
    b.extend(op.to_le_bytes()); // 72
    b.extend(0u32.to_le_bytes()); // 76
    assert_eq!(b.len(), record::VfioDevRecord::SIZE);
    decode(&b)
}

/// A `policy_violation` record's bytes.
fn policy_bytes(rule: u32, action: u32, slot: u32, value: u64, detail: &[u8]) -> Vec<u8> {
    let mut b = header(record::KIND_POLICY, 9_000, 300, 301);
    b.extend(rule.to_le_bytes()); // 40
    b.extend(action.to_le_bytes()); // 44
    b.extend(slot.to_le_bytes()); // 48
    b.extend(1000u32.to_le_bytes()); // 52 uid
    b.extend(value.to_le_bytes()); // 56
    b.extend(512u64.to_le_bytes()); // 64 limit
    b.extend(7u64.to_le_bytes()); // 72 cgroup
    let mut d = detail.to_vec();
    d.resize(record::NAME_LEN, 0);
    b.extend(d); // 80
    assert_eq!(b.len(), record::PolicyRecord::SIZE);
    b
}
