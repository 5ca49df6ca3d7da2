//! `vf_drift` from the event stream: hand-outs, releases, what is left.
use serde_json::json;

use super::*;

fn inventory(vlan1: u16, vf0_netdev: bool) -> EventEnvelope {
    let (_d, _s, host) = lab(2);
    let mut inv = crate::discover::discover(&host).unwrap();
    for vf in &mut inv.pfs[0].vfs {
        vf.config = Some(net_info(vf.index, if vf.index == 1 { vlan1 } else { 0 }));
        if vf.index == 0 && !vf0_netdev {
            vf.netdev = None;
        }
    }
    EventEnvelope::new(1, Event::Inventory { pfs: inv.pfs })
}

fn probe(device: &str, driver: &str, ts_ns: u64) -> EventEnvelope {
    EventEnvelope::new(
        ts_ns,
        Event::DriverProbe {
            device: device.into(),
            driver: driver.into(),
            ret: 0,
            latency_ns: 1,
        },
    )
}

fn vfio(device: &str, op: VfioOp, ts_ns: u64) -> EventEnvelope {
    EventEnvelope::new(
        ts_ns,
        Event::VfioDevice {
            device: device.into(),
            op,
        },
    )
}

fn left(evs: &[EventEnvelope]) -> Vec<(String, String, serde_json::Value)> {
    evs.iter()
        .map(|e| match &e.event {
            Event::VfDrift(d) => (
                d.device.clone(),
                d.released_by.clone(),
                serde_json::to_value(&d.left).unwrap(),
            ),
            e => panic!("not a drift: {e:?}"),
        })
        .collect()
}

#[test]
fn a_vf_changed_while_out_drifts_at_each_kind_of_release() {
    let mut d = Drifts::new();
    assert!(d.on_event(&inventory(0, true)).is_empty());
    // handed out to vfio-pci, released as it was: nothing
    assert!(d.on_event(&probe(VF1, "vfio-pci", 2)).is_empty());
    assert!(d.on_event(&probe(VF1, "igbvf", 3)).is_empty());
    // out again, a VLAN while out (seen by a scan), another driver: drift
    assert!(d.on_event(&probe(VF1, "vfio-pci", 4)).is_empty());
    assert!(d.on_event(&inventory(42, true)).is_empty());
    let vlan = json!([{"field": "vlan", "handed_out": {"vlan": 0, "qos": 0}, "now": {"vlan": 42, "qos": 0}}]);
    assert_eq!(
        left(&d.on_event(&probe(VF1, "igbvf", 5))),
        vec![(VF1.to_string(), "igbvf".to_string(), vlan.clone())]
    );
    // a VFIO user: the open is the hand-out, the last close the release
    // (the VLAN it found is not its drift), and the VF is out again as it
    // was closed
    assert!(d.on_event(&probe(VF1, "vfio-pci", 6)).is_empty());
    assert!(d.on_event(&vfio(VF1, VfioOp::Open, 7)).is_empty());
    assert!(d.on_event(&inventory(7, true)).is_empty());
    let to7 = json!([{"field": "vlan", "handed_out": {"vlan": 42, "qos": 0}, "now": {"vlan": 7, "qos": 0}}]);
    assert_eq!(
        left(&d.on_event(&vfio(VF1, VfioOp::Close, 8))),
        vec![(VF1.to_string(), "vfio_close".to_string(), to7)]
    );
    assert!(
        d.on_event(&probe(VF1, "igbvf", 9)).is_empty(),
        "released already"
    );
    // a netdev to another namespace and back, a VLAN of VF 1 meanwhile is
    // not VF 0's
    assert!(d.on_event(&inventory(7, false)).is_empty());
    assert!(d.on_event(&inventory(8, false)).is_empty());
    assert!(
        d.on_event(&inventory(8, true)).is_empty(),
        "VF 0 came back as it left"
    );
    // a removed VF is no longer out
    assert!(d.on_event(&probe(VF0, "vfio-pci", 10)).is_empty());
    let removed = EventEnvelope::new(
        11,
        Event::VfRemoved {
            pf: Some(PF.into()),
            vf_index: 0,
            vf_bdf: Some(VF0.into()),
            ret: 0,
            latency_ns: 1,
        },
    );
    assert!(d.on_event(&removed).is_empty());
    assert!(d.on_event(&probe(VF0, "igbvf", 12)).is_empty());
}
