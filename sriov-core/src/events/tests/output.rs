//! Stats, clock and NDJSON.
use super::*;
use crate::{
    host::{VfNetInfo, VfStats},
    types::MacAddr,
};

// ---- stats ----

fn irq_stats(buckets: &[(usize, u64)], max_ns: u64) -> IrqStats {
    let mut s = IrqStats::ZERO;
    for &(i, n) in buckets {
        s.log2_ns[i] = n;
        s.count += n;
    }
    s.max_ns = max_ns;
    s
}

fn stats_of(ev: &EventEnvelope) -> &VfActivity {
    match &ev.event {
        Event::Stats(a) => a,
        other => panic!("not stats: {other:?}"),
    }
}

#[test]
fn log2_percentiles_are_bucket_upper_bounds_clamped_to_max() {
    let mut b = [0u64; IRQ_BUCKETS];
    b[3] = 50; // [8, 16)
    b[5] = 49; // [32, 64)
    b[10] = 1; // [1024, 2048)
    let l = stats::log2_latency(&b, 1500).unwrap();
    assert_eq!(
        l,
        IrqLatency {
            p50: 15,
            p99: 63,
            max: 1500
        }
    );

    // the bucket's upper bound 2047 is above the real maximum
    let mut b = [0u64; IRQ_BUCKETS];
    b[10] = 10;
    assert_eq!(
        stats::log2_latency(&b, 1500),
        Some(IrqLatency {
            p50: 1500,
            p99: 1500,
            max: 1500
        })
    );
    // no max known: the upper bound; the last bucket does not overflow
    let mut b = [0u64; IRQ_BUCKETS];
    b[IRQ_BUCKETS - 1] = 1;
    assert_eq!(
        stats::log2_latency(&b, 0).map(|l| l.p99),
        Some((1u64 << 32) - 1)
    );
    assert_eq!(stats::log2_latency(&[0; IRQ_BUCKETS], 0), None);
}

#[test]
fn snapshot_sums_histograms_and_rates_over_a_vf_irqs() {
    let (dir, _spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF0, &[40, 41]);
    add_msi_irqs(dir.path(), VF1, &[50]);
    let attr = Attributor::new(&host).unwrap();
    let mut agg = StatsAggregator::new();
    let stats = BTreeMap::from([
        (40, irq_stats(&[(3, 30)], 1500)),
        (41, irq_stats(&[(3, 20), (5, 49), (10, 1)], 1200)),
        (77, irq_stats(&[(20, 5)], 2_000_000)), // not a VF's IRQ
    ]);
    let vfio = BTreeMap::from([(41, 9)]);

    let counts = BTreeMap::from([(40, 100), (41, 50), (77, 1000)]);
    let out = agg.report(
        1_000_000_000,
        &by_owner(&attr, &counts, &stats, &vfio),
        0,
        &attr,
    );
    assert_eq!(out.len(), 1, "{out:?}"); // VF1 had no activity
    assert_eq!(out[0].vf, Some(identity(0, VF0, 484)));
    assert_eq!(out[0].ts_ns, 1_000_000_000);
    let s = stats_of(&out[0]);
    assert_eq!(s.irq_per_s, 0.0); // first snapshot
    assert_eq!(s.irqs_total, 150);
    assert_eq!(s.vfio_irqs_total, 9);
    assert_eq!(
        s.irq_latency_ns,
        Some(IrqLatency {
            p50: 15,
            p99: 63,
            max: 1500
        })
    );
    assert_eq!(s.dma_map_latency_ns, None);

    // 2 s later: 200 + 100 more on VF0, 10 on VF1 (IRQ new since then)
    let counts = BTreeMap::from([(40, 300), (41, 150), (50, 10), (77, 5000)]);
    let out = agg.report(
        3_000_000_000,
        &by_owner(&attr, &counts, &stats, &vfio),
        0,
        &attr,
    );
    assert_eq!(out.len(), 2);
    let s = stats_of(&out[0]);
    assert_eq!(s.irq_per_s, 150.0);
    assert_eq!(s.irqs_total, 450);
    assert_eq!(out[1].vf.as_ref().map(|v| v.bdf.as_str()), Some(VF1));
    assert_eq!(stats_of(&out[1]).irq_per_s, 5.0);
    assert_eq!(stats_of(&out[1]).irq_latency_ns, None);
}

#[test]
fn lost_is_reported_only_when_the_counter_grows() {
    let attr = Attributor::default();
    let mut agg = StatsAggregator::new();
    let lost = |total: u64, agg: &mut StatsAggregator| -> Vec<u64> {
        agg.report(1, &BTreeMap::new(), total, &attr)
            .iter()
            .map(|e| match e.event {
                Event::Lost { records } => records,
                _ => panic!("unexpected {e:?}"),
            })
            .collect()
    };
    assert_eq!(lost(0, &mut agg), Vec::<u64>::new());
    assert_eq!(lost(5, &mut agg), vec![5]);
    assert_eq!(lost(5, &mut agg), Vec::<u64>::new());
    assert_eq!(lost(8, &mut agg), vec![3]);
}

#[test]
fn dma_bytes_and_map_latency_per_vf() {
    let (_dir, _spec, host) = lab(3);
    let attr = Attributor::new(&host).unwrap();
    let mut agg = StatsAggregator::new();
    let dma = |op, size, ret, latency_ns, vf: Option<VfIdentity>| EventEnvelope {
        ts_ns: 1,
        vf,
        process: None,
        event: Event::VfioDma {
            op,
            iova: 0,
            size,
            vaddr: 0,
            ret,
            latency_ns,
            iommu_groups: vec![486],
        },
    };
    let vf1 = Some(identity(1, VF1, 486));
    agg.on_event(&dma(DmaOp::Map, 4096, 0, 1000, vf1.clone()));
    agg.on_event(&dma(DmaOp::Map, 8192, 0, 1000, vf1.clone()));
    agg.on_event(&dma(DmaOp::Map, 4096, 0, 1500, vf1.clone()));
    agg.on_event(&dma(DmaOp::Map, 1 << 30, -12, 9, vf1.clone())); // failed
    agg.on_event(&dma(DmaOp::Unmap, 4096, 0, 700, vf1.clone()));
    agg.on_event(&dma(DmaOp::Map, 4096, 0, 1000, None)); // not a VF's
    let out = agg.report(2, &BTreeMap::new(), 0, &attr);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].vf, vf1);
    let s = stats_of(&out[0]);
    assert_eq!((s.dma_bytes_mapped, s.dma_bytes_unmapped), (16384, 4096));
    assert_eq!(
        s.dma_map_latency_ns,
        Some(DmaLatency {
            p50: 1000,
            p99: 1500
        })
    );
    assert_eq!((s.irqs_total, s.irq_per_s), (0, 0.0));
}

// ---- clock and NDJSON ----

/// 2023-11-14T22:13:20Z at monotonic 1 s.
fn clock() -> Clock {
    Clock::from_parts(
        1_000_000_000,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
}

#[test]
fn clock_maps_monotonic_to_rfc3339() {
    assert_eq!(
        clock().rfc3339(2_500_000_007),
        "2023-11-14T22:13:21.500000007Z"
    );
    assert_eq!(clock().rfc3339(0), "2023-11-14T22:13:19.000000000Z");
    // clamped, never a panic in humantime
    let early = Clock::from_parts(10_000_000_000, UNIX_EPOCH + Duration::from_secs(1));
    assert_eq!(early.rfc3339(0), "1970-01-01T00:00:00.000000000Z");
    let late = Clock::from_parts(0, UNIX_EPOCH + Duration::from_secs(253_402_300_000));
    assert_eq!(late.rfc3339(u64::MAX), "9999-12-31T23:59:59.999999999Z");
    let live = Clock::new().unwrap();
    assert!(Clock::now_ns().unwrap() > 0);
    assert!(live.wall(Clock::now_ns().unwrap()) > UNIX_EPOCH + Duration::from_secs(1_600_000_000));
}

#[test]
fn ndjson_line_parses_back_with_every_envelope_field() {
    let (_dir, _spec, host) = lab(3);
    let mut attr = Attributor::new(&host).unwrap();
    let ev = attr.from_record(&host, &vf_record(record::KIND_VF_ADD, PF, 0));
    let mut w = NdjsonWriter::new(Vec::new(), clock(), "lab1");
    w.write(&ev).unwrap();
    w.write(&EventEnvelope::new(
        2_000_000_000,
        Event::Lost { records: 7 },
    ))
    .unwrap();
    let out = String::from_utf8(w.into_inner()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(out.ends_with('\n'));

    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["schema"], "sriov-top.events/v1");
    assert_eq!(v["time"], "2023-11-14T22:13:19.000042000Z");
    assert_eq!(v["ts_ns"], 42_000);
    assert_eq!(v["node"], "lab1");
    assert_eq!(v["kind"], "vf_added");
    assert_eq!(v["vf"]["pf"], PF);
    assert_eq!(v["vf"]["pf_netdev"], "eth0");
    assert_eq!(v["vf"]["index"], 0);
    assert_eq!(v["vf"]["bdf"], VF0);
    assert_eq!(v["vf"]["netdev"], "eth0v0");
    assert_eq!(v["vf"]["iommu_group"], 484);
    assert_eq!(
        v["process"],
        serde_json::json!({"pid": 100, "tid": 101, "comm": "bash"})
    );
    assert_eq!(v["vf_bdf"], VF0);
    assert_eq!(v["vf_index"], 0);
    assert_eq!(v["latency_ns"], 1234);

    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["kind"], "lost");
    assert_eq!(v["records"], 7);
    assert!(v["vf"].is_null() && v["process"].is_null());
    assert_eq!(v.as_object().unwrap().len(), 8, "{v}");
}

/// One event of every kind.
fn samples() -> Vec<Event> {
    vec![
        Event::SriovConfigure {
            pf: PF.into(),
            numvfs: Some(3),
            ret: 2,
            latency_ns: 1,
        },
        Event::VfAdded {
            pf: None,
            vf_index: 0,
            vf_bdf: None,
            ret: 0,
            latency_ns: 1,
        },
        Event::VfRemoved {
            pf: None,
            vf_index: 0,
            vf_bdf: None,
            ret: 0,
            latency_ns: 1,
        },
        Event::IommuGroupAdded {
            device: VF0.into(),
            group: 484,
        },
        Event::DriverProbe {
            device: VF0.into(),
            driver: "igbvf".into(),
            ret: 0,
            latency_ns: 1,
        },
        Event::MsiAlloc {
            device: VF0.into(),
            nvec: 3,
            ret: 0,
            irqs: vec![40],
            latency_ns: 1,
        },
        Event::IrqFree {
            device: Some(VF0.into()),
            irqs: vec![40],
        },
        Event::VfioDma {
            op: DmaOp::Unmap,
            iova: 0,
            size: 0,
            vaddr: 0,
            ret: 0,
            latency_ns: 0,
            iommu_groups: vec![],
        },
        Event::Stats(VfActivity {
            irq_per_s: 1.5,
            irqs_total: 3,
            irqs_interval: 2,
            interval_ns: 1_000_000_000,
            irq_latency_ns: None,
            irq_latency_interval_ns: Some(IrqLatency {
                p50: 3,
                p99: 7,
                max: 7,
            }),
            irq_latency_log2_ns: vec![0, 1, 1],
            irq_handler_ns_total: 7,
            vfio_irqs_total: 0,
            dma_bytes_mapped: 0,
            dma_bytes_unmapped: 0,
            dma_map_latency_ns: Some(DmaLatency { p50: 1, p99: 2 }),
            dma_map_latency_interval_ns: None,
            net: Some(VfStats {
                rx_packets: 10,
                tx_packets: 20,
                rx_bytes: 640,
                tx_bytes: 1280,
                ..VfStats::default()
            }),
        }),
        Event::Lost { records: 1 },
        Event::HookMissing {
            hook: "msi_entry".into(),
            attach: "kprobe msi_domain_alloc_irqs_all_locked".into(),
            reason: "no such function".into(),
        },
        Event::Started {
            hooks_attached: vec!["tracepoint:irq:irq_handler_entry".into()],
            hooks_missing: 0,
        },
        Event::Inventory {
            pfs: lab_pfs_with_config(),
        },
        Event::PolicyLoaded {
            file: "/etc/sriov/policy.toml".into(),
            mode: crate::policy::Mode::Enforce,
            vfs: 2,
            pfs: 1,
            attached: vec!["lsm:file_ioctl".into(), "tc:eth1:egress".into()],
        },
        Event::PolicyViolation {
            rule: crate::events::PolicyRule::DmaQuota,
            action: crate::events::PolicyAction::Denied,
            pf: None,
            uid: Some(0),
            cgroup: Some(1),
            value: 2 << 20,
            limit: 512 << 10,
            detail: None,
        },
        Event::Mailbox(MailboxMessage {
            pf: Some(PF.into()),
            vf_index: 1,
            direction: crate::mbxproto::Direction::PfToVf,
            msg: "SET_MAC_ADDR".into(),
            msg_type: 2,
            verdict: Some(crate::mbxproto::Verdict::Nack),
            cts: true,
            args: crate::mbxproto::Args::Mac {
                mac: MacAddr([2, 0, 0, 0, 0x14, 0x99]),
            },
            words: vec![0x6000_0002],
            ret: 0,
            latency_ns: Some(41_000),
        }),
        Event::ConfigAccess(ConfigAccess {
            device: "0000:01:10.2".into(),
            op: AccessOp::Read,
            offset: 0xa8,
            width: 2,
            register: "PCIe.DEVICE_CONTROL".into(),
            value: None,
            ret: 2,
            count: 300,
            span_ns: 3_279_990,
            latency_ns: 6_279,
            total: 301,
        }),
        Event::AdminChange(AdminChange {
            field: AdminField::Vlan,
            pf: Some(PF.into()),
            vf_index: Some(1),
            device: Some("0000:01:10.2".into()),
            old: Some(serde_json::json!({"vlan": 0, "qos": 0})),
            new: serde_json::json!({"vlan": 42, "qos": 0}),
            ret: 0,
            actor: Actor {
                pid: 9,
                uid: 4321,
                comm: "ip".into(),
                exe: Some("/usr/bin/ip".into()),
                cgroup_id: 1,
                cgroup: None,
            },
        }),
        Event::SriovPhase {
            pf: PF.into(),
            phase: "pci_enable_sriov".into(),
            numvfs: Some(3),
            ret: 0,
            latency_ns: 900_000_000,
        },
        Event::VfCreated(Waterfall {
            pf: PF.into(),
            numvfs: 3,
            wall_ns: 1_000_000_000,
            explained_ns: 1_000_000_000,
            unexplained_ns: 0,
            phases: vec![Phase {
                name: "pci_enable_sriov".into(),
                vf_index: None,
                depth: 0,
                start_ns: 50_000_000,
                duration_ns: 900_000_000,
            }],
        }),
        Event::VfDrift(VfDrift {
            device: "0000:01:10.2".into(),
            pf: PF.into(),
            vf_index: 1,
            driver: "vfio-pci".into(),
            handed_out_ns: 5,
            released_by: "unbind".into(),
            left: vec![Drift {
                field: "vlan".into(),
                handed_out: serde_json::json!({"vlan": 0, "qos": 0}),
                now: serde_json::json!({"vlan": 42, "qos": 0}),
            }],
        }),
        Event::VfioDevice {
            device: "0000:01:10.2".into(),
            op: VfioOp::Close,
        },
    ]
}

/// The lab's PF with 2 VFs as discovery sees it, with the PF driver's
/// view (rtnetlink) filled in as on a real host.
fn lab_pfs_with_config() -> Vec<crate::discover::Pf> {
    let (_dir, _spec, host) = lab(2);
    let mut inv = crate::discover::discover(&host).unwrap();
    for pf in &mut inv.pfs {
        for vf in &mut pf.vfs {
            vf.config = Some(VfNetInfo {
                vf: vf.index,
                mac: Some(MacAddr([2, 0, 0, 0, 0, vf.index as u8])),
                vlan: 100,
                spoofchk: Some(true),
                trust: Some(false),
                link_state: Some(crate::types::VfLinkState::Auto),
                stats: Some(VfStats {
                    rx_packets: 1000 + u64::from(vf.index),
                    ..VfStats::default()
                }),
                ..VfNetInfo::default()
            });
        }
    }
    inv.pfs
}

#[test]
fn every_kind_serializes_with_its_tag() {
    for e in samples() {
        let v = serde_json::to_value(EventEnvelope::new(1, e.clone())).unwrap();
        assert_eq!(v["kind"], e.kind(), "{v}");
        assert_eq!(v["ts_ns"], 1);
    }
}

/// The example lines of docs/events.md: one per kind, with exactly the
/// fields the code writes.
#[test]
fn docs_examples_match_the_schema() {
    let doc = include_str!("../../../../docs/events.md");
    let examples: Vec<serde_json::Value> = doc
        .lines()
        .filter(|l| l.starts_with("{\"schema\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let mut w = NdjsonWriter::new(Vec::new(), clock(), "lab");
    let mut ev = EventEnvelope::new(1, Event::Lost { records: 0 });
    ev.vf = Some(identity(0, VF0, 484));
    ev.process = Some(Process {
        pid: 1,
        tid: 1,
        comm: "x".into(),
    });
    for e in samples() {
        ev.event = e;
        w.write(&ev).unwrap();
    }
    let out = String::from_utf8(w.into_inner()).unwrap();
    for line in out.lines() {
        let ours: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = &ours["kind"];
        let doc: Vec<_> = examples.iter().filter(|d| d["kind"] == *kind).collect();
        assert!(!doc.is_empty(), "no example of {kind} in docs/events.md");
        for d in doc {
            assert_eq!(keys(d), keys(&ours), "{kind}");
            assert_eq!(d["schema"], SCHEMA);
            if d["vf"].is_object() {
                assert_eq!(keys(&d["vf"]), keys(&ours["vf"]), "{kind}");
            }
            if d["process"].is_object() {
                assert_eq!(keys(&d["process"]), keys(&ours["process"]), "{kind}");
            }
        }
    }
}

/// A reader that went away.
struct ClosedPipe;

impl io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn closed_pipe_is_reported_as_broken_pipe() {
    let mut w = NdjsonWriter::new(ClosedPipe, clock(), "lab1");
    let err = w
        .write(&EventEnvelope::new(1, Event::Lost { records: 1 }))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn hostname_from_proc_or_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let host = System::fixture(dir.path());
    assert_eq!(hostname(&host), "unknown");
    fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
    fs::write(dir.path().join("proc/sys/kernel/hostname"), "lab1\n").unwrap();
    assert_eq!(hostname(&host), "lab1");
}

#[test]
fn every_kind_is_listed_in_kinds() {
    let kinds: Vec<&str> = samples().iter().map(Event::kind).collect();
    assert_eq!(kinds, Event::KINDS);
}

/// What the writer writes, the reader reads back the same, every kind.
#[test]
fn every_kind_round_trips_through_a_line() {
    let mut w = NdjsonWriter::new(Vec::new(), clock(), "lab1");
    let mut evs = Vec::new();
    for (i, e) in samples().into_iter().enumerate() {
        let mut ev = EventEnvelope::new(1_000_000_000 + i as u64, e);
        if i % 2 == 0 {
            ev.vf = Some(identity(1, VF1, 486));
            ev.process = Some(Process {
                pid: 7,
                tid: 8,
                comm: "qemu".into(),
            });
        }
        w.write(&ev).unwrap();
        evs.push(ev);
    }
    let out = String::from_utf8(w.into_inner()).unwrap();
    let read: Vec<NdjsonLine> = NdjsonReader::new(out.as_bytes())
        .map(|(_, r)| match r.unwrap() {
            ReadLine::Event(l) => *l,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(read.len(), evs.len());
    for (l, ev) in read.iter().zip(&evs) {
        assert_eq!(&l.envelope, ev);
        assert_eq!(l.schema, SCHEMA);
        assert_eq!(l.node, "lab1");
        assert_eq!(l.time, clock().rfc3339(ev.ts_ns));
    }
}

#[test]
fn stats_lines_without_net_still_parse() {
    // a v1 line written before `net` existed
    let line = r#"{"schema":"sriov-top.events/v1","time":"t","node":"n","ts_ns":5,"vf":null,"process":null,"kind":"stats","irq_per_s":1.0,"irqs_total":2,"irq_latency_ns":null,"vfio_irqs_total":0,"dma_bytes_mapped":0,"dma_bytes_unmapped":0,"dma_map_latency_ns":null}"#;
    let ReadLine::Event(l) = NdjsonLine::parse(1, line).unwrap() else {
        panic!("not an event")
    };
    assert!(matches!(
        l.envelope.event,
        Event::Stats(VfActivity {
            irqs_total: 2,
            net: None,
            ..
        })
    ));
}

#[test]
fn reader_skips_unknown_kinds_and_blank_lines_and_names_bad_lines() {
    let text = concat!(
        r#"{"schema":"sriov-top.events/v1","time":"t","node":"n","ts_ns":1,"vf":null,"process":null,"kind":"lost","records":3}"#,
        "\n\n",
        r#"{"schema":"sriov-top.events/v1.4","time":"t","node":"n","ts_ns":2,"vf":null,"process":null,"kind":"future_kind","rule":"x"}"#,
        "\n",
        r#"{"schema":"sriov-top.events/v2","time":"t","node":"n","ts_ns":3,"vf":null,"process":null,"kind":"lost","records":3}"#,
        "\n",
        r#"{"schema":"sriov-top.events/v1","ts_ns":4,"kind":"lost"}"#,
        "\n",
        "{not json\n",
    );
    let got: Vec<(usize, crate::Result<ReadLine>)> = NdjsonReader::new(text.as_bytes()).collect();
    assert_eq!(got.len(), 6);
    assert!(
        matches!(&got[0], (1, Ok(ReadLine::Event(l))) if l.envelope.event == Event::Lost { records: 3 })
    );
    assert!(matches!(&got[1], (2, Ok(ReadLine::Blank))));
    assert!(matches!(&got[2], (3, Ok(ReadLine::UnknownKind(k))) if k == "future_kind"));
    let msg = |i: usize| match &got[i].1 {
        Err(e) => e.to_string(),
        Ok(other) => panic!("line {}: {other:?}", got[i].0),
    };
    let m = msg(3);
    assert!(m.starts_with("line 4: "), "{m}");
    assert!(m.contains("major version 2") && m.contains(SCHEMA), "{m}");
    let m = msg(4);
    assert!(m.starts_with("line 5: ") && m.contains("records"), "{m}");
    let m = msg(5);
    assert!(m.starts_with("line 6: not JSON"), "{m}");
    assert!(matches!(
        &got[5].1,
        Err(crate::Error::EventLine { line: 6, .. })
    ));
}

#[test]
fn schema_versions() {
    assert_eq!(check_schema(SCHEMA), Ok(()));
    assert_eq!(check_schema("sriov-top.events/v1.7"), Ok(()));
    for bad in [
        "sriov-top.events/v2",
        "sriov-top.events/v10",
        "sriov-top.events/vx",
        "sriov-top.discovery/v1",
        "",
    ] {
        assert!(check_schema(bad).is_err(), "{bad}");
    }
}

#[test]
fn stats_for_vfs_with_only_netlink_counters() {
    let (dir, _spec, host) = lab(3);
    add_msi_irqs(dir.path(), VF0, &[40]);
    let attr = Attributor::new(&host).unwrap();
    let mut agg = StatsAggregator::new();
    let mut inv = crate::discover::discover(&host).unwrap();
    // counters for VF1 only; VF2 has a config but no counters
    inv.pfs[0].vfs[1].config = Some(VfNetInfo {
        vf: 1,
        stats: Some(VfStats {
            rx_packets: 5,
            tx_bytes: 900,
            ..VfStats::default()
        }),
        ..VfNetInfo::default()
    });
    inv.pfs[0].vfs[2].config = Some(VfNetInfo {
        vf: 2,
        ..VfNetInfo::default()
    });
    agg.on_inventory(&inv.pfs);
    let counts = BTreeMap::from([(40, 7)]);
    let none = BTreeMap::new();
    let out = agg.report(
        10,
        &by_owner(&attr, &counts, &BTreeMap::new(), &none),
        0,
        &attr,
    );
    let bdfs: Vec<&str> = out
        .iter()
        .map(|e| e.vf.as_ref().unwrap().bdf.as_str())
        .collect();
    assert_eq!(bdfs, [VF0, VF1]);
    assert_eq!(stats_of(&out[0]).net, None);
    assert_eq!(out[1].vf, Some(identity(1, VF1, 486)));
    let s = stats_of(&out[1]);
    assert_eq!(s.irqs_total, 0);
    assert_eq!(s.net.map(|n| (n.rx_packets, n.tx_bytes)), Some((5, 900)));
    // counters are used once: no fresh inventory, no `net`
    let out = agg.report(
        20,
        &by_owner(&attr, &counts, &BTreeMap::new(), &none),
        0,
        &attr,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(stats_of(&out[0]).net, None);
}
