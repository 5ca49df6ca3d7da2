//! Every number `sriov-top --json` carries, against a witness that is not
//! the stream: sysfs, `/proc/interrupts`, the netdev's `statistics/`, the
//! eventfd counts the user-space driver read, the pages the kernel
//! accounted as pinned. Across VF churn: create, remove, create again with
//! another count, rebind to vfio-pci and back.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::Value;
use sriov_core::{host::System, ops, vf::VfDevice as _};

use crate::{
    datapath::{self, PacketSock},
    guest::{
        self, dev, link_name, msi_irqs, netdev_of, pf, proc_interrupts, vf_bdf, vf_traffic_from,
        wait_for,
    },
    json_stream::{JsonStream, mono_ns, next_stats, of_kind, stats_of},
};

fn sum(counts: &BTreeMap<u32, u64>, irqs: &[u32]) -> u64 {
    irqs.iter()
        .map(|i| counts.get(i).copied().unwrap_or(0))
        .sum()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Lines of `kind` about VF `bdf` stamped at or after `t`.
fn about<'a>(ev: &'a [Value], kind: &str, bdf: &str, t: u64) -> Vec<&'a Value> {
    of_kind(ev, kind)
        .into_iter()
        .filter(|l| l["vf"]["bdf"] == bdf && u(&l["ts_ns"]) >= t)
        .collect()
}

/// After `sriov_numvfs` became `n` at `t`: one `vf_added` per VF naming
/// the BDF its `virtfnN` link names, and one `driver_probe` per VF naming
/// the driver its `driver` link names.
fn check_created(s: &JsonStream, n: u32, t: u64) -> Vec<u64> {
    let vfs: Vec<String> = (0..n).map(vf_bdf).collect();
    wait_for(
        "the VFs' add and probe events",
        Duration::from_secs(30),
        || {
            let ev = s.lines();
            vfs.iter().all(|v| {
                !about(&ev, "vf_added", v, t).is_empty()
                    && !about(&ev, "driver_probe", v, t).is_empty()
            })
        },
    );
    let ev = s.lines();
    let mut created = Vec::new();
    for (i, v) in vfs.iter().enumerate() {
        let added = about(&ev, "vf_added", v, t);
        assert_eq!(added.len(), 1, "{added:#?}");
        let link = link_name(dev(&pf()).join(format!("virtfn{i}")));
        assert_eq!(added[0]["vf_bdf"].as_str(), link.as_deref(), "virtfn{i}");
        assert_eq!(added[0]["vf_index"], i);
        assert_eq!(added[0]["ret"], 0);
        // created as pci_iov_add_virtfn began: the add's time less its
        // latency, to the nanosecond (one clock read for both)
        let c = u(&added[0]["vf"]["created_ns"]);
        let (end, took) = (u(&added[0]["ts_ns"]), u(&added[0]["latency_ns"]));
        assert_eq!(c, end - took, "created {c}, added {end} after {took} ns");
        created.push(c);
        // iommu_group_added: the group its iommu_group link names
        let group = link_name(dev(v).join("iommu_group"));
        let joined = about(&ev, "iommu_group_added", v, t);
        assert_eq!(
            joined.last().map(|g| g["group"].to_string()),
            group,
            "{v}'s IOMMU group: {joined:#?}"
        );
        let driver = link_name(dev(v).join("driver"));
        let probe = about(&ev, "driver_probe", v, t);
        assert_eq!(
            probe.last().and_then(|p| p["driver"].as_str()),
            driver.as_deref(),
            "{v}'s driver"
        );
    }
    created
}

/// Hot-plug, probe, MSI, `irq_free` and the netdev counters, against sysfs
/// and the netdev's statistics, over create (3), remove, create (2).
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn hotplug_msi_irq_and_netdev_numbers_match_the_kernel_across_churn() {
    guest::set_numvfs(0);
    let mut s = JsonStream::start("witness-churn", "0.3");

    let t0 = mono_ns();
    guest::set_numvfs(3);
    let first = check_created(&s, 3, t0);
    let vf0 = vf_bdf(0);
    vf_traffic_from(&vf0, "192.0.2.1", 50);
    // msi_alloc: what msi_irqs lists
    let irqs0 = msi_irqs(&vf0);
    assert_eq!(irqs0.len(), 3);
    wait_for("msi_alloc of VF 0", Duration::from_secs(20), || {
        !about(&s.lines(), "msi_alloc", &vf0, t0).is_empty()
    });
    let ev = s.lines();
    let msi = about(&ev, "msi_alloc", &vf0, t0);
    let listed: Vec<u32> = msi.last().unwrap()["irqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| u(i) as u32)
        .collect();
    assert_eq!(listed, irqs0, "msi_alloc's irqs are the VF's msi_irqs");

    // IRQs: inside /proc/interrupts' window for exactly VF 0's vectors
    // a report, then the kernel's count: the window [k_a, k_b] lies
    // between the snapshots of `watched_from` and `line`
    let watched_from = next_stats(&s, &vf0);
    assert!(u(&watched_from["irqs_total"]) > 0, "{watched_from}");
    let k_a = proc_interrupts();
    vf_traffic_from(&vf0, "192.0.2.1", 100);
    let k_b = proc_interrupts();
    let line = next_stats(&s, &vf0);
    let k_c = proc_interrupts();
    let ours = u(&line["irqs_total"]);
    let since_a = ours - u(&watched_from["irqs_total"]);
    assert!(
        ours <= sum(&k_c, &irqs0),
        "{vf0}: {ours} > /proc/interrupts {} for {irqs0:?}: {line}",
        sum(&k_c, &irqs0)
    );
    assert!(
        since_a >= sum(&k_b, &irqs0) - sum(&k_a, &irqs0),
        "{vf0}: {since_a} counted while its vectors fired {} times: {line}",
        sum(&k_b, &irqs0) - sum(&k_a, &irqs0)
    );

    // rx/tx packets: between the netdev's statistics before and after
    let ifname = netdev_of(&vf0);
    let stat = |f: &str| -> u64 {
        guest::read(format!("/sys/class/net/{ifname}/statistics/{f}"))
            .parse()
            .unwrap()
    };
    let before = (stat("rx_packets"), stat("tx_packets"));
    let line = next_stats(&s, &vf0);
    let after = (stat("rx_packets"), stat("tx_packets"));
    let net = (u(&line["net"]["rx_packets"]), u(&line["net"]["tx_packets"]));
    assert!(after.1 >= 150, "the 150 UDP frames sent: {after:?}");
    assert!(
        before.0 <= net.0 && net.0 <= after.0 && before.1 <= net.1 && net.1 <= after.1,
        "{ifname}: stream (rx, tx) {net:?} outside statistics/ {before:?}..{after:?}"
    );

    // remove: vf_removed per VF, irq_free for VF 0's vectors, no stats of
    // the old incarnations after
    let t1 = mono_ns();
    guest::set_numvfs(0);
    let removed_at = mono_ns();
    wait_for("the removal events", Duration::from_secs(30), || {
        let ev = s.lines();
        (0..3).all(|i| {
            of_kind(&ev, "vf_removed")
                .iter()
                .any(|l| l["vf_index"] == i && u(&l["ts_ns"]) >= t1)
        })
    });
    let ev = s.lines();
    let freed: Vec<u32> = about(&ev, "irq_free", &vf0, t1)
        .iter()
        .flat_map(|l| l["irqs"].as_array().unwrap().iter().map(|i| u(i) as u32))
        .collect();
    for i in &irqs0 {
        assert!(
            freed.contains(i),
            "no irq_free of {vf0}'s IRQ {i}: {freed:?}"
        );
    }

    // create again, with another count: new incarnations
    let t2 = mono_ns();
    guest::set_numvfs(2);
    let second = check_created(&s, 2, t2);
    assert!(
        second.iter().all(|c| !first.contains(c)),
        "{first:?} {second:?}"
    );
    let line = next_stats(&s, &vf0);
    assert_eq!(u(&line["vf"]["created_ns"]), second[0], "{line}");
    let ev = s.lines();
    for v in (0..3).map(|i| first[i as usize]) {
        let late: Vec<_> = of_kind(&ev, "stats")
            .into_iter()
            .filter(|l| l["vf"]["created_ns"] == v && u(&l["ts_ns"]) > removed_at + 1_000_000_000)
            .collect();
        assert!(late.is_empty(), "stats of a removed incarnation: {late:#?}");
    }
    s.stop();
    guest::keep_stream(s.path(), "witness-churn");
    guest::set_numvfs(0);
}

/// VFIO: the interrupts VFIO forwarded against the eventfd counts the
/// user-space driver read, the handler runs against /proc/interrupts, the
/// DMA bytes against the pages the kernel accounted as pinned; then the VF
/// back on igbvf.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn vfio_interrupts_and_dma_match_the_driver_and_the_kernel() {
    guest::set_numvfs(0);
    let mut s = JsonStream::start("witness-vfio", "0.3");
    let lab = datapath::setup();
    let vf1 = lab.vf1.clone();
    assert_eq!(
        link_name(dev(&vf1).join("driver")).as_deref(),
        Some("vfio-pci")
    );
    wait_for("the vfio-pci probe event", Duration::from_secs(20), || {
        of_kind(&s.lines(), "driver_probe")
            .iter()
            .any(|p| p["device"] == vf1.as_str() && p["driver"] == "vfio-pci")
    });

    let locked_kb = || -> u64 {
        guest::read("/proc/self/status")
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmLck in /proc/self/status")
    };
    let locked0 = locked_kb();
    let t_open = mono_ns();
    let mut vf = datapath::open(&lab, true);
    assert!(locked_kb() > locked0, "VmLck did not grow on open");
    let irqs = msi_irqs(&vf1);
    assert_eq!(irqs.len(), 3, "VFIO allocated the VF's vectors");
    // the stream claims them on its msi_alloc; from the next report on
    wait_for("msi_alloc of the VFIO VF", Duration::from_secs(20), || {
        !about(&s.lines(), "msi_alloc", &vf1, t_open).is_empty()
    });
    next_stats(&s, &vf1);
    let e1 = vf.interrupts().unwrap();
    let k1 = proc_interrupts();

    // frames from VF 0 to our driver: RX interrupts through the eventfd
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sock = Arc::new(PacketSock::new());
    let (_, addr) = datapath::driver_to_vf0(&lab, &mut vf, sock.clone(), 0..1);
    let addr = addr.expect("VF 0 received the probe frame");
    let our = vf.mac();
    let mut got = 0;
    for seq in 0..40u64 {
        sock.send(
            &sriov_core::vf::frame::test_frame(our, lab.vf0_mac, 100, 1000 + seq),
            &addr,
        );
        let woke =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), vf.wait_rx()).await });
        assert!(woke.is_ok(), "no RX wakeup for frame {seq}");
        let mut b = Vec::new();
        vf.rx_batch(&mut b, 64).unwrap();
        got += b.len();
    }
    assert!(got >= 40, "frames received: {got}");
    let e2 = vf.interrupts().unwrap();
    let k2 = proc_interrupts();
    let line = next_stats(&s, &vf1);
    let e3 = vf.interrupts().unwrap();
    let k3 = proc_interrupts();
    let vfio = u(&line["vfio_irqs_total"]);
    assert!(
        e2 > e1,
        "the eventfds counted the frames' interrupts ({e1} -> {e2})"
    );
    assert!(
        vfio >= e2 - e1 && vfio <= e3,
        "{vf1}: vfio_irqs_total {vfio}, the driver read {} from its eventfds in a window the stream watched and {e3} in all: {line}",
        e2 - e1
    );
    let handled = u(&line["irqs_total"]);
    assert!(
        handled >= sum(&k2, &irqs) - sum(&k1, &irqs) && handled <= sum(&k3, &irqs),
        "{vf1}: irqs_total {handled} outside /proc/interrupts {}..{} for {irqs:?}: {line}",
        sum(&k2, &irqs) - sum(&k1, &irqs),
        sum(&k3, &irqs)
    );

    // DMA: what the driver mapped, as the kernel pinned it
    let pinned = (locked_kb() - locked0) * 1024;
    let mapped = u(&line["dma_bytes_mapped"]);
    assert_eq!(
        mapped, pinned,
        "{vf1}: dma_bytes_mapped vs the kernel's pinned-page accounting (VmLck): {line}"
    );
    let t_close = mono_ns();
    vf.close().unwrap();
    assert_eq!(locked_kb(), locked0, "close() unpins everything");
    let line = next_stats(&s, &vf1);
    assert_eq!(
        u(&line["dma_bytes_unmapped"]),
        mapped,
        "unmapped all that was mapped: {line}"
    );
    // VFIO freed the vectors with the device closed
    let ev = s.lines();
    let freed: Vec<u64> = about(&ev, "irq_free", &vf1, t_close)
        .iter()
        .flat_map(|l| l["irqs"].as_array().unwrap().iter().map(u))
        .collect();
    for i in &irqs {
        assert!(
            freed.contains(&u64::from(*i)),
            "no irq_free of IRQ {i}: {freed:?}"
        );
    }

    // back on igbvf
    let t_back = mono_ns();
    ops::bind(&System::live(), &vf1, "igbvf").unwrap();
    assert_eq!(
        link_name(dev(&vf1).join("driver")).as_deref(),
        Some("igbvf")
    );
    wait_for("the igbvf probe event", Duration::from_secs(20), || {
        about(&s.lines(), "driver_probe", &vf1, t_back)
            .iter()
            .any(|p| p["driver"] == "igbvf" && p["ret"] == 0)
    });
    s.stop();
    guest::keep_stream(s.path(), "witness-vfio");
    let _ = stats_of(&s.lines(), &vf1, 0);
    guest::set_numvfs(0);
}
