//! `sriov-top --json` end to end on the emulated 82576: hot-plug, vector
//! allocation, IRQ statistics and VFIO DMA events, attributed to the right
//! VFs, read back from the NDJSON it wrote.
use std::{
    process::{Child, Command},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

use crate::guest::{self, dev, msi_irqs, pf, vf_bdf, wait_for};

const OUT: &str = "/tmp/stream.ndjson";

fn lines() -> Vec<Value> {
    std::fs::read_to_string(OUT)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

fn start() -> Child {
    let _ = std::fs::remove_file(OUT);
    let child = Command::new("sriov-top")
        .args(["--json", "--interval", "0.5", "--output", OUT])
        .spawn()
        .expect("start sriov-top");
    wait_for("sriov-top's started line", Duration::from_secs(60), || {
        lines().iter().any(|l| l["kind"] == "started")
    });
    child
}

fn of_kind<'a>(v: &'a [Value], kind: &str) -> Vec<&'a Value> {
    v.iter().filter(|l| l["kind"] == kind).collect()
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn json_stream_attributes_hotplug_irq_and_dma_events_to_vfs() {
    guest::set_numvfs(0);
    let child = start();
    let started = of_kind(&lines(), "started")[0].clone();
    assert_eq!(started["hooks_missing"], 0, "{started}");

    guest::set_numvfs(3);
    let vfs: Vec<String> = (0..3).map(vf_bdf).collect();

    // VF 0 up with traffic: its vectors fire
    guest::vf_traffic(&vfs[0], 200);

    // VF 1 to VFIO, one 1 MiB DMA mapping
    sriov_core::ops::bind(&sriov_core::host::System::live(), &vfs[1], "vfio-pci").unwrap();
    {
        let container = Arc::new(VfioContainer::new(None).unwrap());
        let _device =
            VfioDevice::new(&dev(&vfs[1]), container.clone() as Arc<dyn VfioOps>, false).unwrap();
        let mut raw = vec![0u8; (1 << 20) + 4096];
        let off = (4096 - (raw.as_ptr() as usize % 4096)) % 4096;
        let ptr = raw[off..].as_mut_ptr();
        // SAFETY: `raw` outlives the mapping, which is removed right after.
        unsafe { container.vfio_dma_map(0x20_0000, 1 << 20, ptr) }.unwrap();
        container.vfio_dma_unmap(0x20_0000, 1 << 20).unwrap();
    }
    wait_for(
        "stats for VF 0 with interrupts",
        Duration::from_secs(20),
        || {
            of_kind(&lines(), "stats")
                .iter()
                .any(|s| s["vf"]["bdf"] == vfs[0].as_str() && s["irqs_total"].as_u64() > Some(0))
        },
    );
    guest::interrupt_and_wait(child);
    guest::keep_stream(OUT, "stream_hotplug_irq_dma");
    let ev = lines();

    let conf = of_kind(&ev, "sriov_configure");
    let conf: Vec<_> = conf.iter().filter(|c| c["numvfs"] == 3).collect();
    assert_eq!(conf.len(), 1, "{conf:#?}");
    assert_eq!(conf[0]["pf"], pf().as_str());
    let total = conf[0]["latency_ns"].as_u64().unwrap();

    let added = of_kind(&ev, "vf_added");
    let added_bdfs: Vec<&str> = added
        .iter()
        .filter_map(|a| a["vf"]["bdf"].as_str())
        .collect();
    assert_eq!(
        added_bdfs,
        vfs.iter().map(String::as_str).collect::<Vec<_>>(),
        "{added:#?}"
    );
    for a in &added {
        let l = a["latency_ns"].as_u64().unwrap();
        assert!(l > 0 && l <= total, "VF add {l} ns vs enable {total} ns");
        assert_eq!(a["vf"]["pf"], pf().as_str());
    }
    for v in &vfs {
        assert!(
            of_kind(&ev, "driver_probe")
                .iter()
                .any(|p| p["vf"]["bdf"] == v.as_str() && p["driver"] == "igbvf" && p["ret"] == 0),
            "no igbvf probe event for {v}"
        );
    }

    let msi = of_kind(&ev, "msi_alloc");
    let vf0_msi = msi
        .iter()
        .find(|m| m["vf"]["bdf"] == vfs[0].as_str())
        .unwrap_or_else(|| panic!("no msi_alloc for {}: {msi:#?}", vfs[0]));
    let irqs: Vec<u64> = vf0_msi["irqs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(
        irqs,
        msi_irqs(&vfs[0])
            .iter()
            .map(|&i| u64::from(i))
            .collect::<Vec<_>>()
    );

    // stats: only VF 0 had interrupts
    for s in of_kind(&ev, "stats") {
        if s["vf"]["bdf"] != vfs[0].as_str() {
            assert_eq!(s["irqs_total"], 0, "interrupts counted on another VF: {s}");
        }
    }

    let dma = of_kind(&ev, "vfio_dma");
    assert_eq!(dma.len(), 2, "{dma:#?}");
    for (d, op) in dma.iter().zip(["map", "unmap"]) {
        assert_eq!(d["op"], op);
        assert_eq!(d["size"], 1 << 20);
        assert_eq!(
            d["vf"]["bdf"],
            vfs[1].as_str(),
            "DMA attributed to the VF the process opened: {d}"
        );
        assert_eq!(d["process"]["pid"], std::process::id());
    }
    sriov_core::ops::bind(&sriov_core::host::System::live(), &vfs[1], "igbvf").unwrap();
    guest::set_numvfs(0);
}
