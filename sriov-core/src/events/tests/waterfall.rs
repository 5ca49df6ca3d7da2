//! The creation waterfall from a write's events, nested by time.
use super::*;

fn at(ts_ns: u64, event: Event) -> EventEnvelope {
    EventEnvelope::new(ts_ns, event)
}

fn phase(pf: &str, name: &str, end: u64, latency_ns: u64) -> EventEnvelope {
    at(
        end,
        Event::SriovPhase {
            pf: pf.into(),
            phase: name.into(),
            numvfs: None,
            ret: 0,
            latency_ns,
        },
    )
}

#[test]
fn a_write_becomes_nested_phases_and_its_uncovered_time_is_unexplained() {
    let mut w = Waterfalls::new();
    // the write: [1000, 11000]; the PF driver [1500, 10900] with
    // pci_enable_sriov [8000, 10800] inside, and VF 0's add in that
    let mut vf0 = identity(0, VF0, 6);
    vf0.pf = PF.into();
    let evs = vec![
        at(
            9_000,
            Event::VfAdded {
                pf: Some(PF.into()),
                vf_index: 0,
                vf_bdf: Some(VF0.into()),
                ret: 0,
                latency_ns: 800,
            },
        ),
        phase(PF, "pci_enable_sriov", 10_800, 2_800),
        phase(PF, "igb_pci_sriov_configure", 10_900, 9_400),
        // another PF's phase is not this write's
        phase("0000:02:00.0", "pci_enable_sriov", 10_000, 5_000),
    ];
    for e in &evs {
        assert!(w.on_event(e).is_none());
    }
    let mut probe = at(
        8_900,
        Event::DriverProbe {
            device: VF0.into(),
            driver: "igbvf".into(),
            ret: 0,
            latency_ns: 500,
        },
    );
    probe.vf = Some(vf0);
    assert!(w.on_event(&probe).is_none());
    let end = at(
        11_000,
        Event::SriovConfigure {
            pf: PF.into(),
            numvfs: Some(1),
            ret: 2,
            latency_ns: 10_000,
        },
    );
    let Some(EventEnvelope {
        event: Event::VfCreated(wf),
        ..
    }) = w.on_event(&end)
    else {
        panic!("no vf_created");
    };
    assert_eq!(
        (wf.wall_ns, wf.explained_ns, wf.unexplained_ns),
        (10_000, 9_400, 600)
    );
    let got: Vec<(&str, u32, u64, u64)> = wf
        .phases
        .iter()
        .map(|p| (p.name.as_str(), p.depth, p.start_ns, p.duration_ns))
        .collect();
    assert_eq!(
        got,
        vec![
            ("igb_pci_sriov_configure", 0, 500, 9_400),
            ("igb_pci_sriov_configure (own work)", 1, 500, 6_600),
            ("pci_enable_sriov", 1, 7_000, 2_800),
            ("pci_enable_sriov (own work)", 2, 7_000, 2_000),
            ("VF 0: pci_iov_add_virtfn", 2, 7_200, 800),
            ("VF 0: pci_iov_add_virtfn (own work)", 3, 7_200, 300),
            ("VF 0: igbvf probe", 3, 7_400, 500),
        ]
    );
    // a disabling write makes no waterfall
    let off = at(
        20_000,
        Event::SriovConfigure {
            pf: PF.into(),
            numvfs: Some(0),
            ret: 2,
            latency_ns: 1_000,
        },
    );
    assert!(w.on_event(&off).is_none());
}
