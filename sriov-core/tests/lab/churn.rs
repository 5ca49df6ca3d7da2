//! The stream's numbers across VF churn, against the kernel's own counts:
//! VFs removed and re-created with the same BDFs, IRQ numbers that change
//! hands between VFs and the PF.
use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;

use crate::{
    guest::{self, msi_irqs, pf, proc_interrupts, vf_bdf, vf_traffic_from, wait_for},
    json_stream::{JsonStream, mono_ns, stats_of},
};

fn sum(counts: &BTreeMap<u32, u64>, irqs: &[u32]) -> u64 {
    irqs.iter()
        .map(|i| counts.get(i).copied().unwrap_or(0))
        .sum()
}

/// `sriov_numvfs` 4 → 0 → 2 with traffic on VF 0 before and on VFs 0 and
/// 1 after: the PF and the re-created VFs take IRQ numbers the first VF 0
/// had. Each VF's `irqs_total` must stay inside what `/proc/interrupts`
/// counted for exactly that VF's vectors (which the kernel counts from
/// their allocation), and the re-created VFs must be new incarnations.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn irq_counts_follow_the_vectors_when_vfs_are_recreated() {
    guest::set_numvfs(0);
    let mut stream = JsonStream::start("churn", "0.3");
    guest::set_numvfs(4);
    let first0 = vf_bdf(0);
    vf_traffic_from(&first0, "192.0.2.1", 200);
    let old_irqs = msi_irqs(&first0);
    assert_eq!(old_irqs.len(), 3, "VF 0's vectors: {old_irqs:?}");
    wait_for(
        "stats for the first VF 0 with interrupts",
        Duration::from_secs(30),
        || {
            stats_of(&stream.lines(), &first0, 0)
                .iter()
                .any(|s| s["irqs_total"].as_u64() > Some(0))
        },
    );
    let removed_at = mono_ns();
    guest::set_numvfs(0);
    let pf_after_remove = msi_irqs(&pf());
    guest::set_numvfs(2);
    let recreated_at = mono_ns();
    let vfs = [vf_bdf(0), vf_bdf(1)];
    assert_eq!(vfs[0], first0, "VF 0 is re-created with the same BDF");
    vf_traffic_from(&vfs[0], "192.0.2.1", 100);
    vf_traffic_from(&vfs[1], "192.0.2.2", 100);
    let new_irqs: Vec<Vec<u32>> = vfs.iter().map(|v| msi_irqs(v)).collect();
    let pf_now = msi_irqs(&pf());
    // the scenario must move numbers: the PF or a new VF owns one of the
    // first VF 0's, or the new VF 0 has the same numbers again
    let moved: Vec<u32> = old_irqs
        .iter()
        .copied()
        .filter(|i| {
            pf_after_remove.contains(i)
                || pf_now.contains(i)
                || new_irqs.iter().flatten().any(|n| n == i)
        })
        .collect();
    eprintln!(
        "first VF 0 {old_irqs:?}; PF after removal {pf_after_remove:?}, now {pf_now:?}; new VFs {new_irqs:?}; moved {moved:?}"
    );
    assert!(
        !moved.is_empty(),
        "no IRQ number changed hands: the scenario proves nothing"
    );

    // both new VFs are watched (stats with interrupts), then a window of
    // traffic measured by the kernel
    wait_for(
        "stats with interrupts for both re-created VFs",
        Duration::from_secs(30),
        || {
            let ev = stream.lines();
            vfs.iter().all(|v| {
                stats_of(&ev, v, recreated_at)
                    .iter()
                    .any(|s| s["irqs_total"].as_u64() > Some(0))
            })
        },
    );
    let k_a = proc_interrupts();
    vf_traffic_from(&vfs[0], "192.0.2.1", 100);
    vf_traffic_from(&vfs[1], "192.0.2.2", 100);
    std::thread::sleep(Duration::from_millis(300));
    let k_b = proc_interrupts();
    let t_b = mono_ns();
    wait_for("stats after the traffic", Duration::from_secs(30), || {
        let ev = stream.lines();
        vfs.iter().all(|v| !stats_of(&ev, v, t_b).is_empty())
    });
    let k_c = proc_interrupts();
    stream.stop();
    guest::keep_stream(stream.path(), "churn");
    let ev = stream.lines();

    for (v, irqs) in vfs.iter().zip(&new_irqs) {
        assert_eq!(&msi_irqs(v), irqs, "{v}'s vectors changed during the test");
        let line = stats_of(&ev, v, t_b)[0];
        let ours = line["irqs_total"].as_u64().unwrap();
        let high = sum(&k_c, irqs);
        let low = sum(&k_b, irqs) - sum(&k_a, irqs);
        assert!(
            ours <= high,
            "{v}: the stream counted {ours} interrupts; /proc/interrupts has {high} for its vectors {irqs:?} since they were allocated: {line}"
        );
        assert!(
            ours >= low,
            "{v}: the stream counted {ours}, but its vectors {irqs:?} fired {low} times in a window the stream watched: {line}"
        );
    }

    // incarnations: the re-created VF 0 is not the first one
    let added: Vec<&Value> = ev
        .iter()
        .filter(|l| l["kind"] == "vf_added" && l["vf"]["bdf"] == first0.as_str())
        .collect();
    assert_eq!(added.len(), 2, "two vf_added for {first0}: {added:#?}");
    let created: Vec<u64> = added
        .iter()
        .map(|a| {
            a["vf"]["created_ns"]
                .as_u64()
                .unwrap_or_else(|| panic!("vf_added without vf.created_ns: {a}"))
        })
        .collect();
    assert_ne!(created[0], created[1]);
    let readded_at = added[1]["ts_ns"].as_u64().unwrap();
    assert!(removed_at < readded_at && readded_at < recreated_at);
    for s in stats_of(&ev, &first0, 0) {
        let c = s["vf"]["created_ns"].as_u64();
        let ts = s["ts_ns"].as_u64().unwrap();
        let want = if ts < readded_at {
            created[0]
        } else {
            created[1]
        };
        assert_eq!(c, Some(want), "stats of the wrong incarnation: {s}");
    }
    guest::set_numvfs(0);
}
