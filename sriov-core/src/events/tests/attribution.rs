//! Records to events, and which VF they are about.
use std::fs;

use super::*;

#[test]
fn vf_add_record_becomes_event_with_vf_identity() {
    let (_dir, _spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_ADD, PF, 1));
    assert_eq!(ev.ts_ns, 42_000);
    assert_eq!(
        ev.process,
        Some(Process {
            pid: 100,
            tid: 101,
            comm: "bash".into()
        })
    );
    assert_eq!(
        ev.event,
        Event::VfAdded {
            pf: Some(PF.into()),
            vf_index: 1,
            vf_bdf: Some(VF1.into()),
            ret: 0,
            latency_ns: 1234,
        }
    );
    // the scan found VF 1 after this add: the add dates its incarnation,
    // from when the creation began (the record's time less its latency)
    let mut want = identity(1, VF1, 486);
    want.created_ns = Some(42_000 - 1234);
    assert_eq!(ev.vf, Some(want));
}

#[test]
fn vf_created_after_the_scan_is_found_by_rescanning() {
    let (dir, spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 4).unwrap();
    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_ADD, PF, 3));
    let mut want = identity(3, "0000:01:10.6", 490);
    want.created_ns = Some(42_000 - 1234);
    assert_eq!(ev.vf, Some(want));
}

/// The record's header with another kernel time.
fn at(mut rec: Record, ts_ns: u64) -> Record {
    match &mut rec {
        Record::VfAdd(r) | Record::VfRemove(r) => r.hdr.ts_ns = ts_ns,
        _ => unreachable!(),
    }
    rec
}

/// VFs removed and created again with the same BDFs: a new incarnation,
/// seen through the records, and through the sysfs directory alone when the
/// records are missed.
#[test]
fn a_recreated_vf_is_a_new_incarnation() {
    let (dir, spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF0, &[40]);
    let mut attr = Attributor::new(&host).unwrap();
    assert_eq!(
        attr.vf(VF0).unwrap().created_ns,
        None,
        "there before the stream"
    );
    let owner0 = attr.irq_owners()[&40].clone();
    assert_eq!(owner0.created_ns, None);
    let now = Clock::now_ns().unwrap();

    // through the records
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    let ev = attr.from_record(
        &host,
        &at(vf_record(record::KIND_VF_REMOVE, PF, 0), now + 1),
    );
    assert_eq!(ev.vf.and_then(|v| v.created_ns), None, "the removed one");
    assert!(attr.vf(VF0).is_none());
    assert!(attr.irq_owners().is_empty(), "its IRQs went with it");
    fixture::set_num_vfs(dir.path(), &spec, 3).unwrap();
    let ev = attr.from_record(&host, &at(vf_record(record::KIND_VF_ADD, PF, 0), now + 2));
    let born = now + 2 - 1234;
    assert_eq!(ev.vf.as_ref().and_then(|v| v.created_ns), Some(born));
    assert!(!attr.is_current(&owner0));
    // a later scan keeps it
    attr.refresh(&host).unwrap();
    assert_eq!(attr.vf(VF0).unwrap().created_ns, Some(born));

    // through sysfs alone: removed and created again between two scans
    // (the old directory held open, so that a disk file system cannot give
    // its inode to the new one, which kernfs never does)
    let held = fs::File::open(vf_dir(dir.path(), VF0)).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 3).unwrap();
    drop(held);
    attr.refresh(&host).unwrap();
    let c = attr.vf(VF0).unwrap().created_ns.unwrap();
    assert!(c > now + 2, "a new incarnation, dated by the scan: {c}");
    // and a stale removal record does not end the new one
    attr.from_record(
        &host,
        &at(vf_record(record::KIND_VF_REMOVE, PF, 0), now + 3),
    );
    assert_eq!(attr.vf(VF0).map(|v| v.created_ns), Some(Some(c)));
}

/// The kernel's births map holding one birth: (PF, index, time).
#[derive(Debug)]
struct OneBirth(&'static str, u32, u64);

impl Births for OneBirth {
    fn created_ns(&self, pf: &str, index: u32) -> Option<u64> {
        (pf == self.0 && index == self.1).then_some(self.2)
    }
}

/// A `vf_added` read only after its VF was removed and created again (the
/// births map already holds the second birth, and a scan found it) names
/// the incarnation it created, from its own time less its latency; the
/// maps keep the second one. With the map's birth instead, both
/// `vf_added` of the VF carried the second one (a CI run, 6.12).
#[test]
fn a_vf_added_read_after_the_vf_was_created_again_dates_its_own_incarnation() {
    let (dir, spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    // the kernel: VF 0 born at 48,766, removed, born again at 68,766
    attr.set_births(Box::new(OneBirth(PF, 0, 70_000 - 1234)));
    let first = at(vf_record(record::KIND_VF_ADD, PF, 0), 50_000);
    let removed = at(vf_record(record::KIND_VF_REMOVE, PF, 0), 60_000);
    let second = at(vf_record(record::KIND_VF_ADD, PF, 0), 70_000);
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 3).unwrap();
    attr.refresh(&host).unwrap();
    assert_eq!(attr.vf(VF0).unwrap().created_ns, Some(68_766));
    // the records, read late
    let ev = attr.from_record(&host, &first);
    assert_eq!(ev.vf.and_then(|v| v.created_ns), Some(48_766), "its own");
    assert_eq!(attr.vf(VF0).unwrap().created_ns, Some(68_766), "kept");
    attr.from_record(&host, &removed);
    assert_eq!(
        attr.vf(VF0).unwrap().created_ns,
        Some(68_766),
        "the removal ended the first, not the second"
    );
    let ev = attr.from_record(&host, &second);
    assert_eq!(ev.vf.and_then(|v| v.created_ns), Some(68_766));
}

/// `irq_free`: the VF whose vectors they were; the numbers leave the map.
#[test]
fn irq_free_names_the_owner_and_drops_the_numbers() {
    let (dir, _spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF1, &[50, 51]);
    let mut attr = Attributor::new(&host).unwrap();
    let ev = attr.from_record(&host, &irq_free("", 50, 1));
    assert_eq!(
        ev.event,
        Event::IrqFree {
            device: None,
            irqs: vec![50]
        }
    );
    assert_eq!(ev.vf.map(|v| v.bdf), Some(VF1.to_string()));
    assert_eq!(attr.irq_owners().keys().copied().collect::<Vec<_>>(), [51]);
    let ev = attr.from_record(&host, &irq_free(VF1, 51, 1));
    assert!(matches!(&ev.event, Event::IrqFree { device: Some(d), .. } if d == VF1));
    assert_eq!(ev.vf.map(|v| v.bdf), Some(VF1.to_string()));
    assert!(attr.irq_owners().is_empty());
}

#[test]
fn records_read_after_a_rescan_no_longer_shows_the_vf_still_name_it_until_its_removal() {
    // the collector rescans (a tick) before it reads the ring's records of
    // the removal: they still name the VF, until its vf_removed is read
    let (dir, spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF0, &[35, 36]);
    let mut attr = Attributor::new(&host).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    attr.refresh(&host).unwrap();
    let ev = attr.from_record(&host, &irq_free(VF0, 35, 2));
    assert!(matches!(&ev.event, Event::IrqFree { device: Some(d), .. } if d == VF0));
    assert_eq!(ev.vf.map(|v| v.bdf), Some(VF0.to_string()));
    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_REMOVE, PF, 0));
    assert!(matches!(&ev.event, Event::VfRemoved { vf_bdf: Some(b), .. } if b == VF0));
    assert_eq!(ev.vf.map(|v| v.bdf), Some(VF0.to_string()));
    // its removal read: a later record of that BDF names no VF
    let ev = attr.from_record(&host, &irq_free(VF0, 35, 1));
    assert_eq!(ev.vf, None);
}

#[test]
fn a_vf_being_created_is_named_before_its_pfs_virtfn_link_exists() {
    // the kernel adds the device, its IOMMU group and its probe before the
    // PF's virtfnN link, which discovery follows
    let (dir, spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 5).unwrap();
    let (vf3, vf4) = ("0000:01:10.6", "0000:01:11.0");
    fs::remove_file(vf_dir(dir.path(), PF).join("virtfn3")).unwrap();
    fs::remove_file(vf_dir(dir.path(), PF).join("virtfn4")).unwrap();
    let ev = attr.from_record(&host, &probe_record(vf3, "igbvf"));
    let vf = ev.vf.expect("the VF being created is named");
    assert_eq!((vf.pf.as_str(), vf.index, vf.bdf.as_str()), (PF, 3, vf3));
    assert_eq!(vf.pf_netdev.as_deref(), Some("eth0"));
    // on 6.1 even its physfn link comes after its IOMMU group: the PF's
    // routing names it
    fs::remove_file(vf_dir(dir.path(), vf4).join("physfn")).unwrap();
    let ev = attr.from_record(&host, &probe_record(vf4, "igbvf"));
    let vf = ev.vf.expect("named by the PF's routing");
    assert_eq!((vf.pf.as_str(), vf.index), (PF, 4));
    // a device with no physfn is no VF
    let ev = attr.from_record(&host, &probe_record(PF, "igb"));
    assert_eq!(ev.vf, None);
}

#[test]
fn vf_removed_is_attributed_from_the_map_after_its_link_is_gone() {
    let (dir, spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_REMOVE, PF, 2));
    assert!(matches!(&ev.event, Event::VfRemoved { vf_bdf: Some(b), .. } if b == VF2));
    assert_eq!(ev.vf, Some(identity(2, VF2, 488)));
}

#[test]
fn sriov_configure_parses_numvfs_and_has_no_vf() {
    let (_dir, _spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    let ev = attr.from_record(&host, &sriov_configure(PF, "3\n", 2));
    assert_eq!(
        ev.event,
        Event::SriovConfigure {
            pf: PF.into(),
            numvfs: Some(3),
            ret: 2,
            latency_ns: 777
        }
    );
    assert_eq!(ev.vf, None);
    let ev = attr.from_record(&host, &sriov_configure(PF, "x", -22));
    assert!(matches!(
        ev.event,
        Event::SriovConfigure {
            numvfs: None,
            ret: -22,
            ..
        }
    ));
}

#[test]
fn msi_irqs_attribute_irqs_to_vfs() {
    let (dir, _spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF0, &[42, 40, 41]);
    let mut attr = Attributor::new(&host).unwrap();
    assert_eq!(attr.vf_of_irq(41), Some(identity(0, VF0, 484)));
    assert_eq!(attr.vf_of_irq(99), None);

    // vectors allocated later: the msi_alloc record brings them in
    add_msi_irqs(dir.path(), VF1, &[51, 50]);
    let ev = attr.from_record(&host, &msi_record(VF1, 2));
    assert_eq!(
        ev.event,
        Event::MsiAlloc {
            device: VF1.into(),
            nvec: 2,
            ret: 0,
            irqs: vec![50, 51],
            latency_ns: 66
        }
    );
    assert_eq!(ev.vf, Some(identity(1, VF1, 486)));
    assert_eq!(attr.vf_of_irq(50), Some(identity(1, VF1, 486)));
    assert_eq!(attr.irqs().collect::<Vec<_>>(), vec![40, 41, 42, 50, 51]);
}

#[test]
fn vfio_dma_is_attributed_through_the_process_open_groups() {
    let (dir, _spec, host) = lab(3);
    add_fds(
        dir.path(),
        4242,
        &["/dev/null", "/dev/vfio/vfio", "/dev/vfio/486"],
    );
    add_fds(
        dir.path(),
        5000,
        &["/dev/vfio/484", "/dev/vfio/488", "/dev/vfio/484"],
    );
    let mut attr = Attributor::new(&host).unwrap();

    let ev = attr.from_record(&host, &dma_record(4242, record::DMA_MAP, 4096, 1_000));
    assert_eq!(
        ev.event,
        Event::VfioDma {
            op: DmaOp::Map,
            iova: 0x10_0000,
            size: 4096,
            vaddr: 0x7f00_0000_0000,
            ret: 0,
            latency_ns: 2_500,
            iommu_groups: vec![486],
        }
    );
    assert_eq!(ev.vf, Some(identity(1, VF1, 486)));
    assert_eq!(
        ev.process.as_ref().map(|p| (p.pid, p.tid)),
        Some((4242, 4243))
    );

    // two VFs in the process's groups: no single identity
    let ev = attr.from_record(&host, &dma_record(5000, record::DMA_UNMAP, 4096, 1_000));
    assert!(
        matches!(&ev.event, Event::VfioDma { op: DmaOp::Unmap, iommu_groups, .. }
        if *iommu_groups == [484, 488])
    );
    assert_eq!(ev.vf, None);
}

/// Seen on the 6.1 lab guest: a process mapped, unmapped and closed its
/// VF before the collector read the records, so its fds showed no group.
/// The ring's own `vfio_device` open (before the maps) names the VF until
/// the ring's close.
#[test]
fn vfio_dma_after_the_fds_are_closed_is_attributed_by_the_rings_open() {
    let (_dir, _spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    // pid 7000 has no /proc entry (it exited): only the ring says
    let ev = attr.from_record(
        &host,
        &vfio_dev_record(7000, VF1, record::VFIO_DEV_OPEN, 900),
    );
    assert_eq!(ev.vf, Some(identity(1, VF1, 486)));
    for op in [record::DMA_MAP, record::DMA_UNMAP] {
        let ev = attr.from_record(&host, &dma_record(7000, op, 4096, 1_000));
        assert_eq!(ev.vf, Some(identity(1, VF1, 486)), "{op}");
        assert!(matches!(&ev.event, Event::VfioDma { iommu_groups, .. } if *iommu_groups == [486]));
    }
    // another process is not the opener
    let ev = attr.from_record(&host, &dma_record(7100, record::DMA_MAP, 4096, 1_000));
    assert_eq!(ev.vf, None);
    // after the ring's close, the VF is no longer the process's
    attr.from_record(
        &host,
        &vfio_dev_record(7000, VF1, record::VFIO_DEV_CLOSE, 1_100),
    );
    let ev = attr.from_record(
        &host,
        &dma_record(7000, record::DMA_MAP, 4096, 10_000_000_000),
    );
    assert_eq!(ev.vf, None);
}

#[test]
fn vanished_devices_give_events_without_identity() {
    let (dir, spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF2, &[60]);
    let mut attr = Attributor::new(&host).unwrap();
    fixture::set_num_vfs(dir.path(), &spec, 0).unwrap();
    attr.refresh(&host).unwrap();
    assert_eq!(attr.vf_of_irq(60), None);
    // its removal read (until then its records still name it, see
    // records_read_after_a_rescan_no_longer_shows_the_vf_...)
    attr.from_record(&host, &vf_record(record::KIND_VF_REMOVE, PF, 2));

    let ev = attr.from_record(&host, &probe_record(VF2, "vfio-pci"));
    assert_eq!(ev.vf, None);
    assert!(matches!(&ev.event, Event::DriverProbe { device, ret: -19, .. } if device == VF2));

    let ev = attr.from_record(&host, &msi_record(VF2, 3));
    assert_eq!(ev.vf, None);
    assert!(matches!(&ev.event, Event::MsiAlloc { irqs, .. } if irqs.is_empty()));

    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_ADD, "0000:09:00.0", 0));
    assert_eq!(ev.vf, None);
    assert!(matches!(ev.event, Event::VfAdded { vf_bdf: None, .. }));

    // no /proc/<pid> (the process exited)
    let ev = attr.from_record(&host, &dma_record(999, record::DMA_MAP, 1, 1));
    assert_eq!(ev.vf, None);
    assert!(matches!(&ev.event, Event::VfioDma { iommu_groups, .. } if iommu_groups.is_empty()));

    // names that are not BDFs never become paths
    let ev = attr.from_record(&host, &msi_record("../../../etc", 1));
    assert_eq!(ev.vf, None);

    // the whole tree gone
    fs::remove_dir_all(dir.path()).unwrap();
    assert!(attr.refresh(&host).is_err());
    let ev = attr.from_record(&host, &sriov_configure(PF, "0\n", 2));
    assert_eq!(ev.vf, None);
    // the BDF of a removed VF still follows from the PF's routing (offset,
    // stride) learnt at the last scan, and its identity from the scan that
    // last showed it (its removal had not been read)
    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_REMOVE, PF, 0));
    assert_eq!(ev.vf.map(|v| v.bdf), Some(VF0.to_string()));
    assert!(
        matches!(&ev.event, Event::VfRemoved { vf_bdf: Some(b), .. } if b == VF0),
        "{:?}",
        ev.event
    );
}

#[test]
fn policy_records_name_the_vf_of_their_slot_or_the_pf() {
    use crate::events::{PolicyAction, PolicyRule};
    let (_dir, _spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    attr.set_policy_slots(vec![VF2.into(), VF1.into()], vec![PF.into()]);
    let dma = decode(&policy_bytes(
        record::V_DMA_QUOTA,
        record::ACTION_DENIED,
        1,
        2 << 20,
        b"",
    ));
    let ev = attr.from_record(&host, &dma);
    assert_eq!(ev.vf, Some(identity(1, VF1, 486)));
    assert_eq!(ev.process.as_ref().map(|p| p.pid), Some(300));
    assert_eq!(
        ev.event,
        Event::PolicyViolation {
            rule: PolicyRule::DmaQuota,
            action: PolicyAction::Denied,
            pf: None,
            uid: Some(1000),
            cgroup: Some(7),
            value: 2 << 20,
            limit: 512,
            detail: None,
        }
    );
    // a frame: the source MAC as text
    let mac = decode(&policy_bytes(
        record::V_SRC_MAC,
        record::ACTION_DROPPED,
        0,
        0,
        &[0x02, 0xde, 0xad, 0xbe, 0xef, 0x01],
    ));
    let ev = attr.from_record(&host, &mac);
    assert_eq!(ev.vf.as_ref().map(|v| v.bdf.as_str()), Some(VF2));
    assert!(
        matches!(&ev.event, Event::PolicyViolation { detail: Some(d), action: PolicyAction::Dropped, .. } if d == "02:de:ad:be:ef:01"),
        "{:?}",
        ev.event
    );
    // numvfs: about the PF, no VF
    let numvfs = decode(&policy_bytes(
        record::V_NUMVFS_RANGE,
        record::ACTION_AUDITED,
        0,
        3,
        b"3",
    ));
    let ev = attr.from_record(&host, &numvfs);
    assert_eq!(ev.vf, None);
    assert!(
        matches!(&ev.event, Event::PolicyViolation { pf: Some(p), rule: PolicyRule::Numvfs, action: PolicyAction::Audited, detail: Some(d), .. } if p == PF && d == "3"),
        "{:?}",
        ev.event
    );
    // a slot the loaded policy does not have: no identity, no panic
    let stale = decode(&policy_bytes(
        record::V_VFIO_OPEN,
        record::ACTION_DENIED,
        9,
        0,
        b"",
    ));
    assert_eq!(attr.from_record(&host, &stale).vf, None);
}

#[test]
fn policy_records_with_unknown_codes_or_short_are_refused() {
    let bad_rule = policy_bytes(99, record::ACTION_DENIED, 0, 0, b"");
    assert!(matches!(
        Record::decode(&bad_rule),
        Err(record::DecodeError::BadField { field: "rule", .. })
    ));
    let bad_action = policy_bytes(record::V_VLAN, 0, 0, 0, b"");
    assert!(matches!(
        Record::decode(&bad_action),
        Err(record::DecodeError::BadField {
            field: "action",
            ..
        })
    ));
    let ok = policy_bytes(record::V_VLAN, record::ACTION_DROPPED, 0, 20, b"");
    assert!(matches!(
        Record::decode(&ok[..ok.len() - 1]),
        Err(record::DecodeError::Short { .. })
    ));
}
