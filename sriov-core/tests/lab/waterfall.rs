//! `vf_created`: the waterfall of a `sriov_numvfs` write that creates VFs,
//! for 1, 3 and 7 VFs, checked against the write the test timed itself and
//! the stream's own per-VF events.
use std::{
    fs,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    guest::{self, dev, pf, wait_for},
    json_stream::{JsonStream, mono_ns, of_kind},
};

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn the_creation_waterfall_explains_the_write_for_1_3_and_7_vfs() {
    guest::set_numvfs(0);
    let numvfs = dev(&pf()).join("sriov_numvfs");
    let mut stream = JsonStream::start("waterfall", "1");
    for n in [1u32, 3, 7] {
        let t0 = mono_ns();
        let t = Instant::now();
        fs::write(&numvfs, n.to_string()).expect("write sriov_numvfs");
        let measured = t.elapsed().as_nanos() as u64;
        let created = |lines: &[Value]| -> Option<Value> {
            of_kind(lines, "vf_created")
                .into_iter()
                .find(|w| w["ts_ns"].as_u64().unwrap() > t0 && w["numvfs"] == n)
                .cloned()
        };
        wait_for(
            &format!("vf_created for {n}"),
            Duration::from_secs(30),
            || created(&stream.lines()).is_some(),
        );
        let lines = stream.lines();
        let w = created(&lines).unwrap();
        let wall = w["wall_ns"].as_u64().unwrap();
        let explained = w["explained_ns"].as_u64().unwrap();
        eprintln!(
            "{n} VFs: write {measured} ns (timed here), waterfall {wall} ns, {explained} explained"
        );
        assert_eq!(w["pf"], pf().as_str());
        // the kernel's write lies within the test's own timing of it
        assert!(
            wall <= measured && wall * 10 >= measured * 9,
            "wall {wall} ns vs the write timed here {measured} ns: {w}"
        );
        assert!(
            explained * 100 >= wall * 95,
            "{explained} of {wall} ns explained: {w:#}"
        );
        assert_eq!(
            w["unexplained_ns"].as_u64().unwrap(),
            wall - explained,
            "{w}"
        );
        let phases = w["phases"].as_array().unwrap();
        // one device add per new VF, each as long as its vf_added says
        let adds: Vec<&Value> = phases
            .iter()
            .filter(|p| p["name"].as_str().unwrap().ends_with("pci_iov_add_virtfn"))
            .collect();
        let mut idx: Vec<u64> = adds
            .iter()
            .map(|p| p["vf_index"].as_u64().unwrap())
            .collect();
        idx.sort_unstable();
        assert_eq!(idx, (0..u64::from(n)).collect::<Vec<_>>(), "{w:#}");
        for a in &adds {
            let i = a["vf_index"].as_u64().unwrap();
            let added = of_kind(&lines, "vf_added")
                .into_iter()
                .rev()
                .find(|e| e["ts_ns"].as_u64().unwrap() > t0 && e["vf_index"] == i)
                .unwrap_or_else(|| panic!("vf_added {i}"));
            assert_eq!(
                a["duration_ns"], added["latency_ns"],
                "VF {i}: {a} vs {added}"
            );
            // and its probe by igbvf (autoprobe), inside it
            assert!(
                phases
                    .iter()
                    .any(|p| p["vf_index"] == i
                        && p["name"].as_str().unwrap().ends_with("igbvf probe")),
                "VF {i}'s probe: {w:#}"
            );
        }
        // the phases directly in the write cover it (the PF driver around
        // pci_enable_sriov, and pci_enable_sriov)
        let top: u64 = phases
            .iter()
            .filter(|p| p["depth"] == 0)
            .map(|p| p["duration_ns"].as_u64().unwrap())
            .sum();
        assert!(top * 100 >= wall * 95, "depth 0: {top} of {wall}: {w:#}");
        fs::write(&numvfs, "0").expect("sriov_numvfs 0");
    }
    stream.stop();
    guest::keep_stream(stream.path(), "waterfall");
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn sriov_set_numvfs_prints_the_waterfall() {
    guest::set_numvfs(1);
    let out = std::process::Command::new("sriov")
        .args(["set", &pf(), "numvfs", "3", "--waterfall"])
        .output()
        .expect("sriov");
    let text = guest::output_text(&out);
    assert!(out.status.success(), "{text}");
    eprintln!("{text}");
    // one waterfall: the write of 3 (the write of 0 before it creates none)
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("where the time of the write"))
        .collect();
    assert_eq!(headers.len(), 1, "{text}");
    assert!(
        headers[0].contains(&format!("write of 3 to {}", pf())),
        "{text}"
    );
    let pct: f64 = headers[0]
        .split(", ")
        .find_map(|p| p.strip_suffix(" % explained"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no percentage in {:?}", headers[0]));
    assert!(pct >= 95.0, "{text}");
    for i in 0..3 {
        assert!(
            text.contains(&format!("VF {i}: igbvf probe")),
            "VF {i}'s probe: {text}"
        );
    }
    assert!(text.contains("pci_enable_sriov"), "{text}");
    guest::set_numvfs(0);
}
