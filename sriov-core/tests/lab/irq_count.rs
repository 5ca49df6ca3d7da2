//! The eBPF IRQ counter counts exactly the interrupts of a VF's MSI-X vectors.
use std::{net::UdpSocket, time::Duration};

use sriov_core::ebpf::{LoadOptions, Probes};

use crate::guest::{self, msi_irqs, netdev_of, proc_interrupts, sh, vf_bdf, wait_for};

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn irq_counter_counts_exactly_the_vf_msix_vectors() {
    guest::set_numvfs(1);
    let vf = vf_bdf(0);
    let ifname = netdev_of(&vf);
    sh("ip", &["addr", "add", "192.0.2.1/24", "dev", &ifname]);
    sh("ip", &["link", "set", "dev", &ifname, "up"]);
    wait_for(
        &format!("MSI-X vectors of {vf}"),
        Duration::from_secs(10),
        || msi_irqs(&vf).len() == 3,
    );
    let irqs = msi_irqs(&vf);
    // igbvf requests (names) its vectors when the netdev comes up
    wait_for(
        "the VF's vectors in /proc/interrupts",
        Duration::from_secs(10),
        || {
            let now = proc_interrupts();
            irqs.iter().all(|i| now.contains_key(i))
        },
    );

    // a VF only transmits once it has carrier, which follows the PF's link
    // (re-negotiated after each numvfs change)
    guest::wait_carrier(&ifname, guest::CARRIER_WAIT);
    // watch only the VF's first vector: the kernel side must count exactly
    // that one, though its other vectors fire too
    let (watched, others) = (irqs[0], &irqs[1..]);
    let before_attach = proc_interrupts();
    let mut probes = Probes::load(LoadOptions::default()).expect("load the eBPF programs");
    probes.watch_irq(watched).expect("watch");
    let start = proc_interrupts();

    // traffic on the VF: UDP broadcasts leave through its TX queue
    let sock = UdpSocket::bind("192.0.2.1:0").expect("bind on the VF's address");
    sock.set_broadcast(true).expect("SO_BROADCAST");
    for i in 0..300u32 {
        sock.send_to(&i.to_be_bytes(), "192.0.2.255:9")
            .expect("send");
    }
    std::thread::sleep(Duration::from_millis(500));

    let end = proc_interrupts();
    let counts = probes.irq_counts().expect("read IRQ_COUNTS");
    let unwatched: Vec<u64> = others
        .iter()
        .map(|&i| probes.irq_count(i).unwrap())
        .collect();
    let after = proc_interrupts();
    drop(probes);

    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [watched]);
    let got = counts[&watched];
    let low = end[&watched] - start[&watched];
    let high = after[&watched] - before_attach[&watched];
    assert!(
        got > 0,
        "no interrupts counted on IRQ {watched} ({ifname}); /proc/interrupts delta {low}"
    );
    assert!(
        (low..=high).contains(&got),
        "IRQ {watched}: counted {got}, /proc/interrupts says between {low} and {high}"
    );
    let fired: Vec<u64> = others.iter().map(|i| end[i] - start[i]).collect();
    assert!(
        fired.iter().any(|&d| d > 0),
        "the VF's other vectors did not fire: {fired:?}"
    );
    assert!(
        unwatched.iter().all(|&c| c == 0),
        "unwatched vectors {others:?} counted {unwatched:?} (they fired {fired:?})"
    );
    sh("ip", &["link", "set", "dev", &ifname, "down"]);
    guest::set_numvfs(0);
}
