//! `/metrics`, `/healthz` and the state behind them, from events as the
//! collector sends them; the exposition checked by `promtool`.
#![allow(clippy::unwrap_used)]
use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hyper::Method;
use sriov_core::{
    discover::{Pf, discover},
    events::{
        DmaOp, Event, EventEnvelope, MailboxMessage, PolicyAction, PolicyRule, VfActivity,
        VfIdentity,
    },
    fixture::{self, PfSpec},
    host::{System, VfNetInfo, VfStats},
    mbxproto::{Args, Direction, Verdict},
    owner::{Holder, VfOwner},
    types::MacAddr,
};

use super::{AgentState, encode, health::Health, http};

fn pfs(n: u32) -> Vec<Pf> {
    let dir = tempfile::tempdir().unwrap();
    let spec = PfSpec::i82576("0000:01:00.0".parse().unwrap(), "eth0", n);
    fixture::add_pf(dir.path(), &spec).unwrap();
    let mut pfs = discover(&System::fixture(dir.path())).unwrap().pfs;
    for vf in &mut pfs[0].vfs {
        vf.config = Some(VfNetInfo {
            vf: vf.index,
            mac: Some(MacAddr([2, 0, 0, 0, 0, vf.index as u8])),
            vlan: 42,
            stats: Some(VfStats {
                rx_packets: 100 + u64::from(vf.index),
                tx_bytes: 9000,
                ..VfStats::default()
            }),
            ..VfNetInfo::default()
        });
    }
    pfs[0].vfs[1].owner = Some(VfOwner {
        processes: vec![Holder {
            pid: 4242,
            comm: "qemu-system-x86".into(),
            exe: Some("/usr/bin/qemu-system-x86_64".into()),
            cgroup: None,
            path: "/dev/vfio/9".into(),
            vm: Some("web\"1".into()),
            container: None,
        }],
        ..VfOwner::default()
    });
    pfs
}

fn ev(vf: Option<&VfIdentity>, event: Event) -> EventEnvelope {
    EventEnvelope {
        ts_ns: 1,
        vf: vf.cloned(),
        process: None,
        event,
    }
}

fn id(pfs: &[Pf], i: usize, created_ns: Option<u64>) -> VfIdentity {
    let v = &pfs[0].vfs[i];
    VfIdentity {
        pf: pfs[0].bdf.clone(),
        pf_netdev: pfs[0].netdev.clone(),
        index: v.index,
        bdf: v.bdf.clone(),
        netdev: v.netdev.clone(),
        iommu_group: v.iommu_group,
        created_ns,
    }
}

fn stats(irqs: u64, log2: Vec<u64>, sum: u64) -> Event {
    Event::Stats(VfActivity {
        irq_per_s: 0.0,
        irqs_total: irqs,
        irqs_interval: 0,
        interval_ns: 0,
        irq_latency_ns: None,
        irq_latency_interval_ns: None,
        irq_latency_log2_ns: log2,
        irq_handler_ns_total: sum,
        vfio_irqs_total: 7,
        dma_bytes_mapped: 8192,
        dma_bytes_unmapped: 4096,
        dma_map_latency_ns: None,
        dma_map_latency_interval_ns: None,
        net: None,
    })
}

fn dma(op: DmaOp, latency_ns: u64) -> Event {
    Event::VfioDma {
        op,
        iova: 0,
        size: 4096,
        vaddr: 0,
        ret: 0,
        latency_ns,
        iommu_groups: vec![9],
    }
}

fn nack(pf: &str) -> Event {
    Event::Mailbox(MailboxMessage {
        pf: Some(pf.into()),
        vf_index: 0,
        direction: Direction::PfToVf,
        msg: "SET_MAC_ADDR".into(),
        msg_type: 2,
        verdict: Some(Verdict::Nack),
        cts: true,
        args: Args::None,
        words: vec![0x8000_0002],
        ret: 0,
        latency_ns: Some(1000),
    })
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn render(state: &Arc<Mutex<AgentState>>, om: bool) -> String {
    encode::Exposition::new(state.clone()).render(om).unwrap()
}

/// `promtool check metrics` on `text`: its complaints (none is clean).
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; run `cargo xtask setup`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() && s.is_empty() {
        s = format!("promtool failed: {}", out.status);
    }
    s
}

const VF0: &str = r#"node="n1",pf="0000:01:00.0",vf="0",bdf="0000:01:10.0""#;

fn fed() -> (Arc<Mutex<AgentState>>, Vec<Pf>) {
    let pfs = pfs(3);
    let mut s = AgentState::new("n1");
    s.on_event(&ev(
        None,
        Event::Started {
            hooks_attached: vec!["a".into(), "b".into()],
            hooks_missing: 1,
        },
    ));
    s.on_event(&ev(None, Event::Inventory { pfs: pfs.clone() }));
    let vf0 = id(&pfs, 0, Some(5));
    // 3 runs of [1024, 2048) ns and one of [2^20, 2^21)
    let mut log2 = vec![0; 21];
    log2[10] = 3;
    log2[20] = 1;
    s.on_event(&ev(Some(&vf0), stats(42, log2, 3 * 1500 + 1_500_000)));
    s.on_event(&ev(Some(&vf0), dma(DmaOp::Map, 3000)));
    s.on_event(&ev(Some(&vf0), dma(DmaOp::Map, 5000)));
    s.on_event(&ev(Some(&vf0), dma(DmaOp::Unmap, 100)));
    s.on_event(&ev(Some(&vf0), nack(&pfs[0].bdf)));
    s.on_event(&ev(
        None,
        Event::PolicyViolation {
            rule: PolicyRule::DmaQuota,
            action: PolicyAction::Denied,
            pf: None,
            uid: Some(0),
            cgroup: None,
            value: 1,
            limit: 2,
            detail: None,
        },
    ));
    s.on_event(&ev(None, Event::Lost { records: 3 }));
    s.on_event(&ev(
        None,
        Event::VfAdded {
            pf: Some(pfs[0].bdf.clone()),
            vf_index: 0,
            vf_bdf: None,
            ret: 0,
            latency_ns: 3_000_000,
        },
    ));
    (Arc::new(Mutex::new(s)), pfs)
}

#[test]
fn the_exposition_carries_each_vf_with_its_counters_and_histograms() {
    let (state, _) = fed();
    let text = render(&state, false);
    let m = samples(&text);
    let get = |k: &str| {
        m.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in\n{text}"))
    };
    assert_eq!(get(r#"sriovtop_up{node="n1"}"#), "1");
    assert_eq!(get(r#"sriovtop_hooks_missing{node="n1"}"#), "1");
    assert_eq!(get(&format!("sriovtop_vf_irqs_total{{{VF0}}}")), "42");
    assert_eq!(get(&format!("sriovtop_vf_vfio_irqs_total{{{VF0}}}")), "7");
    assert_eq!(
        get(&format!("sriovtop_vf_rx_packets_total{{{VF0}}}")),
        "100"
    );
    assert_eq!(get(&format!("sriovtop_vf_tx_bytes_total{{{VF0}}}")), "9000");
    assert_eq!(
        get(&format!("sriovtop_vf_dma_mapped_bytes{{{VF0}}}")),
        "4096"
    );
    assert_eq!(get(&format!("sriovtop_vf_dma_maps_total{{{VF0}}}")), "2");
    assert_eq!(get(&format!("sriovtop_vf_dma_unmaps_total{{{VF0}}}")), "1");
    // the log2 buckets as le buckets (per PF, over its VFs): 1023 ns holds
    // nothing (the runs are >= 1024), 4095 ns the three, 2^22 - 1 ns all
    const PF: &str = r#"node="n1",pf="0000:01:00.0""#;
    let b = |le: &str| {
        get(&format!(
            "sriovtop_pf_vf_irq_handler_seconds_bucket{{{PF},le=\"{le}\"}}"
        ))
        .to_string()
    };
    assert_eq!(b("1.023e-06"), "0");
    assert_eq!(b("4.095e-06"), "3");
    assert_eq!(b("0.001048575"), "3");
    assert_eq!(b("0.004194303"), "4");
    assert_eq!(b("+Inf"), "4");
    assert_eq!(
        get(&format!("sriovtop_pf_vf_irq_handler_seconds_count{{{PF}}}")),
        "4"
    );
    assert_eq!(
        get(&format!("sriovtop_pf_vf_irq_handler_seconds_sum{{{PF}}}")),
        "0.0015045"
    );
    // each VF's total handler time; its histogram only when asked for
    assert_eq!(
        get(&format!("sriovtop_vf_irq_handler_seconds_total{{{VF0}}}")),
        "0.0015045"
    );
    assert!(!text.contains("sriovtop_vf_irq_handler_duration_seconds"));
    state.lock().unwrap().vf_histograms = true;
    let with = samples(&render(&state, false));
    let key = format!("sriovtop_vf_irq_handler_duration_seconds_bucket{{{VF0},le=\"4.095e-06\"}}");
    assert_eq!(with.get(&key).map(String::as_str), Some("3"), "{key}");
    assert_eq!(
        get(&format!("sriovtop_vf_dma_map_seconds_count{{{VF0}}}")),
        "2"
    );
    assert_eq!(
        get(&format!(
            r#"sriovtop_vf_mailbox_messages_total{{{VF0},direction="pf_to_vf",message="SET_MAC_ADDR"}}"#
        )),
        "1"
    );
    assert_eq!(
        get(&format!(
            r#"sriovtop_vf_mailbox_nacks_total{{{VF0},message="SET_MAC_ADDR"}}"#
        )),
        "1"
    );
    assert_eq!(
        get(r#"sriovtop_policy_violations_total{node="n1",rule="dma_quota",action="denied"}"#),
        "1"
    );
    assert_eq!(get(r#"sriovtop_lost_events_total{node="n1"}"#), "3");
    assert_eq!(
        get(r#"sriovtop_vf_hotplug_seconds_count{node="n1",pf="0000:01:00.0",op="add"}"#),
        "1"
    );
    // the changing facts only on _info, the owner's quote escaped
    let info = m
        .keys()
        .find(|k| k.starts_with("sriovtop_vf_info{") && k.contains(r#"vf="1""#))
        .unwrap();
    assert!(
        info.contains(r#"vm="web\"1""#) && info.contains(r#"pid="4242""#),
        "{info}"
    );
    assert!(
        info.contains(r#"mac="02:00:00:00:00:01""#) && info.contains(r#"vlan="42""#),
        "{info}"
    );
    assert!(
        !m.keys()
            .any(|k| k.starts_with("sriovtop_vf_irqs_total") && k.contains("mac="))
    );
    assert_eq!(promtool(&text), "", "promtool check metrics on\n{text}");
    // and promtool does complain about what is wrong
    assert_ne!(promtool("# TYPE x counter\nx 1\n"), "");
}

#[test]
fn a_removed_vf_drops_out_and_a_new_incarnation_counts_from_zero() {
    let (state, pfs) = fed();
    let vf2 = &pfs[0].vfs[2].bdf;
    assert!(render(&state, false).contains(vf2.as_str()));
    let mut fewer = pfs.clone();
    fewer[0].vfs.truncate(2);
    fewer[0].num_vfs = 2;
    state
        .lock()
        .unwrap()
        .on_event(&ev(None, Event::Inventory { pfs: fewer }));
    let text = render(&state, false);
    assert!(!text.contains(vf2.as_str()), "{text}");
    assert!(
        text.contains(r#"sriovtop_pf_vfs{node="n1",pf="0000:01:00.0"} 2"#),
        "{text}"
    );
    // VF 0 created again: its own counters start from zero
    let again = id(&pfs, 0, Some(99));
    state
        .lock()
        .unwrap()
        .on_event(&ev(Some(&again), dma(DmaOp::Map, 10)));
    let m = samples(&render(&state, false));
    assert_eq!(m[&format!("sriovtop_vf_dma_maps_total{{{VF0}}}")], "1");
    assert!(!m.contains_key(&format!(
        r#"sriovtop_vf_mailbox_nacks_total{{{VF0},message="SET_MAC_ADDR"}}"#
    )));
}

#[test]
fn openmetrics_when_the_scraper_asks_for_it() {
    let (state, _) = fed();
    let shared = http::Shared {
        metrics: encode::Exposition::new(state),
        health: Arc::new(Mutex::new(Health::new(Duration::from_secs(1)))),
    };
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let r = http::respond(&Method::GET, "/metrics", Some(prom), &shared);
    assert_eq!(r.headers()["content-type"], encode::OPENMETRICS);
    let r = http::respond(&Method::GET, "/metrics", Some("text/plain"), &shared);
    assert_eq!(r.headers()["content-type"], encode::PROMETHEUS_TEXT);
    assert!(!http::wants_openmetrics(Some(
        "application/openmetrics-text;q=0,text/plain"
    )));
    assert!(!http::wants_openmetrics(None));
    let om = render(&shared_state(&shared), true);
    assert!(
        om.ends_with("# EOF\n") && om.contains("# TYPE sriovtop_vf_irqs counter"),
        "{om}"
    );
    assert_eq!(
        http::respond(&Method::POST, "/metrics", None, &shared).status(),
        405
    );
    assert_eq!(
        http::respond(&Method::GET, "/nope", None, &shared).status(),
        404
    );
    // /healthz: 503 until the probes are attached and the collector ticks
    assert_eq!(
        http::respond(&Method::GET, "/healthz", None, &shared).status(),
        503
    );
    shared.health.lock().unwrap().on_started(Instant::now());
    shared.health.lock().unwrap().on_tick(Instant::now());
    assert_eq!(
        http::respond(&Method::GET, "/healthz", None, &shared).status(),
        200
    );
}

/// A fresh state fed the same way (the registry holds its own).
fn shared_state(_: &http::Shared) -> Arc<Mutex<AgentState>> {
    fed().0
}

#[test]
fn the_server_answers_over_tcp_while_a_client_misbehaves() {
    let (state, _) = fed();
    let shared = Arc::new(http::Shared {
        metrics: encode::Exposition::new(state),
        health: Arc::new(Mutex::new(Health::new(Duration::from_secs(1)))),
    });
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    std_l.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _server = std::thread::spawn(move || {
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(std_l).unwrap();
            http::serve(l, shared).await
        })
    });
    // a client that connects and says nothing does not hold up the others
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    let get = |path: &str| {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let r = get("/metrics");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains(&format!("sriovtop_vf_irqs_total{{{VF0}}} 42")),
        "{r}"
    );
    assert!(get("/healthz").starts_with("HTTP/1.1 503"));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
}

#[test]
fn a_scrape_between_two_changes_is_not_encoded_again() {
    let (state, pfs) = fed();
    let m = encode::Exposition::new(state.clone());
    let a = m.scrape(false).unwrap();
    let b = m.scrape(false).unwrap();
    // the same buffer, not an equal one
    assert_eq!(a.as_ptr(), b.as_ptr());
    let om = m.scrape(true).unwrap();
    assert!(om.ends_with(b"# EOF\n"));
    // an event changes the state: the next scrape shows it
    let vf0 = id(&pfs, 0, Some(5));
    state
        .lock()
        .unwrap()
        .on_event(&ev(Some(&vf0), dma(DmaOp::Map, 10)));
    let c = m.scrape(false).unwrap();
    assert_ne!(a.as_ptr(), c.as_ptr());
    let text = String::from_utf8(c.to_vec()).unwrap();
    assert!(
        text.contains(&format!("sriovtop_vf_dma_maps_total{{{VF0}}} 3")),
        "{text}"
    );
    // and a tick does too
    state.lock().unwrap().on_tick(Vec::new(), 1.0);
    assert_ne!(c.as_ptr(), m.scrape(false).unwrap().as_ptr());
}
