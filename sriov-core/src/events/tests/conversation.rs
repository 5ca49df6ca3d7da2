//! Mailbox pairing, config access names and rate limit, admin changes'
//! old values and actors (issue #14), against records made here.
use serde_json::json;
use sriov_ebpf::record::{
    ADMIN_DRIVER_OVERRIDE, ADMIN_VLAN, AdminRecord, ConfigRecord, Header, KIND_ADMIN,
    KIND_CONFIG_ACCESS, KIND_MAILBOX, MBX_FROM_VF, MBX_TO_VF, MBX_WORDS, MailboxRecord, NAME_LEN,
};

use super::*;
use crate::{
    mbxproto::{Args, Direction, Verdict},
    types::MacAddr,
};

fn hdr(kind: u32, ts_ns: u64) -> Header {
    let mut comm = [0u8; record::COMM_LEN];
    comm[..2].copy_from_slice(b"ip");
    Header {
        kind,
        cpu: 0,
        ts_ns,
        tid: 77,
        pid: 77,
        comm,
    }
}

fn name(s: &str) -> [u8; NAME_LEN] {
    let mut n = [0u8; NAME_LEN];
    n[..s.len()].copy_from_slice(s.as_bytes());
    n
}

fn mbx(dir: u32, vf: u32, ts_ns: u64, words: &[u32]) -> Record {
    let mut w = [0u32; MBX_WORDS];
    w[..words.len()].copy_from_slice(words);
    Record::Mailbox(MailboxRecord {
        hdr: hdr(KIND_MAILBOX, ts_ns),
        pf: name(PF),
        vf,
        dir,
        ret: 0,
        size: words.len() as u32,
        words: w,
        hw: 0xffff_8880_0000_0000,
    })
}

fn mailbox(ev: &EventEnvelope) -> &MailboxMessage {
    match &ev.event {
        Event::Mailbox(m) => m,
        e => panic!("not a mailbox event: {e:?}"),
    }
}

#[test]
fn a_reply_is_paired_with_its_request_and_a_nack_names_what_was_refused() {
    let (_d, _s, host) = lab(2);
    let mut attr = Attributor::new(&host).unwrap();
    let mac = MacAddr([2, 0, 0, 0, 0x14, 0x99]);
    let [w1, w2] = crate::vf::mailbox::mac_to_words(mac);
    let req = attr.from_record(&host, &mbx(MBX_FROM_VF, 1, 1_000, &[0x02, w1, w2]));
    let m = mailbox(&req);
    assert_eq!(
        (m.direction, m.msg.as_str(), m.verdict, m.latency_ns),
        (Direction::VfToPf, "SET_MAC_ADDR", None, None)
    );
    assert_eq!(m.args, Args::Mac { mac });
    assert_eq!(req.vf.as_ref().unwrap().bdf, VF1);
    // read in the PF's interrupt handler: the task it interrupted is no actor
    assert_eq!(req.process, None);
    // the PF writes one word back: NACK | CTS | the type
    let reply = attr.from_record(&host, &mbx(MBX_TO_VF, 1, 42_000, &[0x6000_0002]));
    let m = mailbox(&reply);
    assert_eq!(m.verdict, Some(Verdict::Nack));
    assert!(m.cts);
    assert_eq!(m.latency_ns, Some(41_000));
    assert_eq!(m.args, Args::Mac { mac }, "the refused MAC");
    assert_eq!(m.words, vec![0x6000_0002]);
    assert_eq!(reply.vf.as_ref().unwrap().bdf, VF1);
}

#[test]
fn replies_pair_only_with_their_own_vf_and_type() {
    let (_d, _s, host) = lab(2);
    let mut attr = Attributor::new(&host).unwrap();
    attr.from_record(&host, &mbx(MBX_FROM_VF, 0, 1_000, &[0x05, 1522]));
    // VF 1's reply does not answer VF 0's request
    let other = attr.from_record(&host, &mbx(MBX_TO_VF, 1, 2_000, &[0x8000_0005]));
    assert_eq!(mailbox(&other).latency_ns, None);
    // another type does not either, and uses the request up
    let wrong = attr.from_record(&host, &mbx(MBX_TO_VF, 0, 3_000, &[0x8000_0004]));
    assert_eq!(mailbox(&wrong).latency_ns, None);
    let late = attr.from_record(&host, &mbx(MBX_TO_VF, 0, 4_000, &[0x8000_0005]));
    assert_eq!(mailbox(&late).latency_ns, None);
    // a PF control message is no reply
    let ping = attr.from_record(&host, &mbx(MBX_TO_VF, 0, 5_000, &[0x0100]));
    assert_eq!(mailbox(&ping).msg, "PF_CONTROL");
    assert_eq!(mailbox(&ping).verdict, None);
}

fn access(ts_ns: u64, offset: u32, value: u64, total: u64) -> Record {
    Record::ConfigAccess(ConfigRecord {
        hdr: hdr(KIND_CONFIG_ACCESS, ts_ns),
        dev: name(VF1),
        offset,
        count: 2,
        value,
        ret: 2,
        write: 0,
        _pad: 0,
        latency_ns: 900,
        vdev: 0xffff_8880_1234_0000,
        total,
    })
}

fn counts(evs: &[EventEnvelope]) -> Vec<(u64, u64, Option<u64>, u64, u64)> {
    evs.iter()
        .map(|ev| match &ev.event {
            Event::ConfigAccess(a) => (ev.ts_ns, a.count, a.value, a.total, a.span_ns),
            e => panic!("not a config access: {e:?}"),
        })
        .collect()
}

#[test]
fn config_accesses_are_named_and_counted_accesses_become_one_line() {
    let (d, _s, host) = lab(2);
    // the VF's config space: MSI-X at 0x70, PCIe at 0xa0
    let mut cfg = vec![0u8; 256];
    cfg[0x06] = 0x10;
    cfg[0x34] = 0x70;
    cfg[0x70] = 0x11;
    cfg[0x71] = 0xa0;
    cfg[0xa0] = 0x10;
    fs::write(vf_dir(d.path(), VF1).join("config"), &cfg).unwrap();
    let mut attr = Attributor::new(&host).unwrap();
    let mut traps = ConfigTraps::new();
    let rec = access(10, 0xa8, 0x2810, 1);
    let ev = attr.from_record(&host, &rec);
    match &ev.event {
        Event::ConfigAccess(a) => {
            assert_eq!(a.register, "PCIe.DEVICE_CONTROL");
            assert_eq!(
                (a.op, a.offset, a.width, a.count),
                (AccessOp::Read, 0xa8, 2, 1)
            );
            assert_eq!(a.value, Some(0x2810));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(ev.vf.as_ref().unwrap().bdf, VF1);
    assert_eq!(
        counts(&traps.admit(&rec, ev)),
        vec![(10, 1, Some(0x2810), 1, 0)]
    );
    let msix = access(20, 0x72, 2, 1);
    let ev = attr.from_record(&host, &msix);
    match &ev.event {
        Event::ConfigAccess(a) => assert_eq!(a.register, "MSI-X.MESSAGE_CONTROL"),
        e => panic!("{e:?}"),
    }
    assert_eq!(traps.admit(&msix, ev).len(), 1);
    let key = match &rec {
        Record::ConfigAccess(r) => r.key(),
        _ => unreachable!(),
    };
    let msix_key = match &msix {
        Record::ConfigAccess(r) => r.key(),
        _ => unreachable!(),
    };
    // the kernel counted 5 more device control reads (the last at 5010),
    // none of MSI-X: one line for the five, values unknown
    let t = vec![(key, 6, 5_010), (msix_key, 1, 20)];
    assert_eq!(
        counts(&traps.on_totals(&t)),
        vec![(5_010, 5, None, 6, 5_000)]
    );
    // nothing new: nothing
    assert!(traps.on_totals(&t).is_empty());
    // the next window's record, after 3 more counted: their line first
    let rec = access(2_000_000_000, 0xa8, 0x2811, 10);
    let ev = attr.from_record(&host, &rec);
    assert_eq!(
        counts(&traps.admit(&rec, ev)),
        vec![
            (2_000_000_000, 3, None, 9, 2_000_000_000 - 5_010),
            (2_000_000_000, 1, Some(0x2811), 10, 0)
        ]
    );
    // other kinds pass
    assert_eq!(
        traps
            .admit(&rec, EventEnvelope::new(1, Event::Lost { records: 1 }))
            .len(),
        1
    );
    // a register the kernel no longer counts (LRU) is forgotten
    assert!(traps.on_totals(&[]).is_empty());
    assert!(traps.on_totals(&[(key, 20, 3)]).is_empty(), "forgotten");
}

fn admin(what: u32, ts_ns: u64, ret: i64, dev: &str, vf: i32, a: u64, text: &str) -> Record {
    Record::Admin(AdminRecord {
        hdr: hdr(KIND_ADMIN, ts_ns),
        what,
        vf,
        ret,
        uid: 4321,
        _pad: 0,
        cgroup: 99,
        dev: name(dev),
        a,
        b: 0,
        c: 0x0081,
        text: name(text),
        exe: name("vlan-setter"),
    })
}

fn change(ev: &EventEnvelope) -> &AdminChange {
    match &ev.event {
        Event::AdminChange(c) => c,
        e => panic!("not an admin change: {e:?}"),
    }
}

#[test]
fn admin_changes_carry_the_old_value_the_new_one_and_the_actor() {
    let (_d, _s, host) = lab(2);
    let mut inv = crate::discover::discover(&host).unwrap();
    for vf in &mut inv.pfs[0].vfs {
        vf.config = Some(net_info(vf.index, 0));
    }
    let mut attr = Attributor::default();
    attr.refresh_with(&host, &inv);
    let ev = attr.from_record(&host, &admin(ADMIN_VLAN, 5, 0, "eth0", 1, 42, ""));
    let c = change(&ev);
    assert_eq!(c.field, AdminField::Vlan);
    assert_eq!(
        (c.pf.as_deref(), c.vf_index, c.device.as_deref()),
        (Some(PF), Some(1), Some(VF1))
    );
    assert_eq!(c.old, Some(json!({"vlan": 0, "qos": 0})));
    assert_eq!(c.new, json!({"vlan": 42, "qos": 0}));
    assert_eq!(
        (c.actor.uid, c.actor.pid, c.actor.comm.as_str()),
        (4321, 77, "ip")
    );
    assert_eq!(c.actor.cgroup_id, 99);
    // the process is gone (no /proc here): the kernel's name of its file
    assert_eq!(c.actor.exe.as_deref(), Some("vlan-setter"));
    assert_eq!(ev.vf.as_ref().unwrap().bdf, VF1);
    // the next change's old value is this one's new value
    let ev = attr.from_record(&host, &admin(ADMIN_VLAN, 6, 0, "eth0", 1, 7, ""));
    assert_eq!(change(&ev).old, Some(json!({"vlan": 42, "qos": 0})));
    // a failed change is reported, and changes nothing
    let ev = attr.from_record(&host, &admin(ADMIN_VLAN, 7, -22, "eth0", 1, 4095, ""));
    assert_eq!(change(&ev).ret, -22);
    let ev = attr.from_record(&host, &admin(ADMIN_VLAN, 8, 0, "eth0", 1, 0, ""));
    assert_eq!(change(&ev).old, Some(json!({"vlan": 7, "qos": 0})));
    // a netdev that is no PF: no PF, no VF, no old value
    let ev = attr.from_record(&host, &admin(ADMIN_VLAN, 9, 0, "lo", 1, 5, ""));
    let c = change(&ev);
    assert_eq!(
        (c.pf.as_ref(), c.device.as_ref(), c.old.as_ref()),
        (None, None, None)
    );
}

#[test]
fn driver_override_written_by_hand_has_old_and_new() {
    let (_d, _s, host) = lab(2);
    let mut attr = Attributor::new(&host).unwrap();
    let ev = attr.from_record(
        &host,
        &admin(ADMIN_DRIVER_OVERRIDE, 5, 0, VF0, -1, 0, "vfio-pci\n"),
    );
    let c = change(&ev);
    assert_eq!(c.field, AdminField::DriverOverride);
    assert_eq!((c.device.as_deref(), c.vf_index), (Some(VF0), Some(0)));
    assert_eq!(
        (c.old.clone(), c.new.clone()),
        (Some(serde_json::Value::Null), json!("vfio-pci"))
    );
    let ev = attr.from_record(&host, &admin(ADMIN_DRIVER_OVERRIDE, 6, 0, VF0, -1, 0, "\n"));
    let c = change(&ev);
    assert_eq!(
        (c.old.clone(), c.new.clone()),
        (Some(json!("vfio-pci")), serde_json::Value::Null)
    );
}
