//! The JSON Schemas of `docs/schema/` against what the product writes,
//! checked by an independent validator (Python's jsonschema, draft 2020-12;
//! `cargo xtask setup` installs it, and these tests fail, not skip, without
//! it):
//!
//! - every JSON example of docs/events.md and docs/discovery.md validates;
//! - one event of every `Event` variant, with every `Option` set and unset,
//!   written by `NdjsonWriter`, validates, and the schema's kinds are
//!   exactly `Event::KINDS` (its enums exactly the Rust enums);
//! - the schemas reject what they must (each case on its own), so a pass
//!   means the validator looked;
//! - `sriov list --json` / `sriov show --json` of fixture hosts validate.
//!
//! The sample values below are struct literals on purpose: a field added to
//! `VfIdentity`, `VfActivity`, `Pf`, ... does not compile here until it has
//! a value, and then does not validate until the schema has it.
#![allow(clippy::unwrap_used)]

#[path = "../../sriov-core/tests/support/schema.rs"]
mod schema;

use std::{
    collections::BTreeSet,
    time::{Duration, UNIX_EPOCH},
};

use assert_cmd::Command;
use serde_json::{Value, json};
use sriov_core::{
    discover::{self, Pf, Vf},
    events::{
        AccessOp, Actor, AdminChange, AdminField, Clock, ConfigAccess, DmaLatency, DmaOp, Drift,
        Event, EventEnvelope, IrqLatency, MailboxMessage, NdjsonWriter, Phase, PolicyAction,
        PolicyRule, Process, VfActivity, VfDrift, VfIdentity, VfioOp, Waterfall,
    },
    fixture::{self, PfSpec},
    host::{VfAttr, VfNetInfo, VfNetlink as _, VfStats, fake::FakeKernel},
    mbxproto::{Args, Direction, Verdict},
    owner::{Holder, Netns, Pod, PodSource, VfOwner},
    policy::Mode,
    types::{MacAddr, VfLinkState},
};

use self::schema::{discovery_schema, events_schema, validate, validate_document};

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced ```json blocks of a Markdown file.
fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```json") => block = Some(String::new()),
            (Some(_), "```") => blocks.extend(block.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

// ------------------------------------------------------------ docs

#[test]
fn every_example_of_docs_events_md_validates() {
    let doc = include_str!("../../docs/events.md");
    let lines = json_blocks(doc).concat();
    let kinds: BTreeSet<String> = lines
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["kind"].as_str().unwrap().to_string()
        })
        .collect();
    let all: BTreeSet<String> = Event::KINDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(kinds, all, "docs/events.md has one example per kind");
    validate(&events_schema(), &lines)
        .unwrap_or_else(|e| panic!("docs/events.md examples against the schema:\n{e}"));
}

#[test]
fn every_example_of_docs_discovery_md_validates() {
    let blocks = json_blocks(include_str!("../../docs/discovery.md"));
    assert!(!blocks.is_empty(), "docs/discovery.md has a JSON example");
    for b in &blocks {
        validate_document(&discovery_schema(), b)
            .unwrap_or_else(|e| panic!("docs/discovery.md example against the schema:\n{e}\n{b}"));
    }
}

/// Streams recorded in the lab (`lab-capture.ndjson` unedited).
#[test]
fn recorded_streams_validate() {
    for name in ["lab.ndjson", "lab-capture.ndjson"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        validate(&events_schema(), &text)
            .unwrap_or_else(|e| panic!("{} against the schema:\n{e}", path.display()));
    }
}

// ------------------------------------------------------------ samples

const PF0: &str = "0000:01:00.0";
const VF0: &str = "0000:01:10.0";

fn identity(full: bool) -> VfIdentity {
    VfIdentity {
        pf: PF0.into(),
        pf_netdev: full.then(|| "eth0".into()),
        index: if full { u32::MAX } else { 0 },
        bdf: VF0.into(),
        netdev: full.then(|| "eth1".into()),
        iommu_group: full.then_some(u32::MAX),
        created_ns: full.then_some(u64::MAX),
    }
}

fn process() -> Process {
    Process {
        pid: u32::MAX,
        tid: 0,
        comm: "qemu-system-x86".into(),
    }
}

fn vf_stats() -> VfStats {
    VfStats {
        rx_packets: u64::MAX,
        tx_packets: 1,
        rx_bytes: 2,
        tx_bytes: 3,
        broadcast: 4,
        multicast: 5,
        rx_dropped: 6,
        tx_dropped: 0,
    }
}

fn vf_net_info(full: bool) -> VfNetInfo {
    VfNetInfo {
        vf: if full { u32::MAX } else { 0 },
        mac: full.then_some(MacAddr([0x02, 0xab, 0, 0, 0, 1])),
        vlan: if full { u16::MAX } else { 0 },
        qos: if full { u8::MAX } else { 0 },
        spoofchk: full.then_some(true),
        trust: full.then_some(false),
        link_state: full.then_some(VfLinkState::Disable),
        min_tx_rate: 0,
        max_tx_rate: u32::MAX,
        stats: full.then(vf_stats),
    }
}

fn vf(full: bool, config: Option<VfNetInfo>) -> Vf {
    Vf {
        index: if full { 6 } else { 0 },
        bdf: VF0.into(),
        device_id: full.then(|| "0x10ca".into()),
        driver: full.then(|| "igbvf".into()),
        netdev: full.then(|| "eth1".into()),
        iommu_group: full.then_some(u32::MAX),
        config,
        owner: full.then(|| VfOwner {
            processes: vec![Holder {
                pid: u32::MAX,
                comm: "qemu-system-x86".into(),
                exe: Some("/usr/bin/qemu-system-x86_64".into()),
                cgroup: Some("/machine.slice/machine-qemu\\x2d1\\x2dweb1.scope".into()),
                path: "/dev/vfio/12".into(),
                vm: Some("web1".into()),
                container: Some("ab".repeat(32)),
            }],
            netns: Some(Netns {
                inode: u64::MAX,
                name: Some("blue".into()),
                netdev: Some("eth9".into()),
                pid: Some(1),
            }),
            pod: Some(Pod {
                namespace: "default".into(),
                name: "dpdk-0".into(),
                container: "app".into(),
                resource: "intel.com/sriov".into(),
                source: PodSource::PodResources,
            }),
        }),
    }
}

fn pf(full: bool) -> Pf {
    Pf {
        bdf: PF0.into(),
        vendor_id: "0x8086".into(),
        device_id: "0x10c9".into(),
        vendor_name: full.then(|| "Intel Corporation".into()),
        device_name: full.then(|| "82576 Gigabit Network Connection".into()),
        driver: full.then(|| "igb".into()),
        netdev: full.then(|| "eth0".into()),
        link: full.then(|| "up".into()),
        total_vfs: if full { u32::MAX } else { 0 },
        num_vfs: if full { 3 } else { 0 },
        numa_node: full.then_some(i32::MAX),
        vfs: if full {
            vec![
                vf(true, Some(vf_net_info(true))),
                vf(true, Some(vf_net_info(false))),
                vf(false, None),
            ]
        } else {
            Vec::new()
        },
    }
}

/// Every rule; the match does not compile when one is added.
fn all_rules() -> Vec<PolicyRule> {
    use PolicyRule::*;
    let all = vec![
        DmaQuota,
        VfioOpen,
        AllowedDrivers,
        AllowedSrcMacs,
        AllowedVlans,
        MaxPps,
        Numvfs,
        NumvfsWriters,
        IrqStorm,
        FrameBypass,
    ];
    for r in &all {
        match r {
            DmaQuota | VfioOpen | AllowedDrivers | AllowedSrcMacs | AllowedVlans | MaxPps
            | Numvfs | NumvfsWriters | IrqStorm | FrameBypass => {}
        }
    }
    all
}

/// Every action; the match does not compile when one is added.
fn all_actions() -> Vec<PolicyAction> {
    use PolicyAction::*;
    let all = vec![Denied, Audited, Dropped, Alert, LinkDown];
    for a in &all {
        match a {
            Denied | Audited | Dropped | Alert | LinkDown => {}
        }
    }
    all
}

fn all_modes() -> Vec<Mode> {
    let all = vec![Mode::Enforce, Mode::Audit];
    for m in &all {
        match m {
            Mode::Enforce | Mode::Audit => {}
        }
    }
    all
}

fn all_link_states() -> Vec<VfLinkState> {
    let all = vec![VfLinkState::Auto, VfLinkState::Enable, VfLinkState::Disable];
    for s in &all {
        match s {
            VfLinkState::Auto | VfLinkState::Enable | VfLinkState::Disable => {}
        }
    }
    all
}

fn all_dma_ops() -> Vec<DmaOp> {
    let all = vec![DmaOp::Map, DmaOp::Unmap];
    for o in &all {
        match o {
            DmaOp::Map | DmaOp::Unmap => {}
        }
    }
    all
}

fn policy_violation(full: bool, rule: PolicyRule, action: PolicyAction) -> Event {
    Event::PolicyViolation {
        rule,
        action,
        pf: full.then(|| PF0.into()),
        uid: full.then_some(u32::MAX),
        cgroup: full.then_some(u64::MAX),
        value: if full { u64::MAX } else { 0 },
        limit: if full { u64::MAX } else { 0 },
        detail: full.then(|| "vfio-pci".into()),
    }
}

/// One event of every variant, with every `Option` of the payload set
/// (`full`) or unset, and the extremes of the integer types where `full`.
/// The match has no `_` arm: a new variant does not compile until it is
/// listed here (and `every_variant_is_sampled` wants a sample of it).
fn samples(full: bool) -> Vec<Event> {
    let u64x = if full { u64::MAX } else { 0 };
    let i32x = if full { i32::MIN } else { -16 };
    let s = |v: &str| full.then(|| v.to_string());
    let list = vec![
        Event::SriovConfigure {
            pf: PF0.into(),
            numvfs: full.then_some(u32::MAX),
            ret: if full { i64::MIN } else { i64::MAX },
            latency_ns: u64x,
        },
        Event::VfAdded {
            pf: s(PF0),
            vf_index: u32::MAX,
            vf_bdf: s(VF0),
            ret: i32x,
            latency_ns: u64x,
        },
        Event::VfRemoved {
            pf: s(PF0),
            vf_index: 0,
            vf_bdf: s(VF0),
            ret: i32::MAX,
            latency_ns: u64x,
        },
        Event::IommuGroupAdded {
            device: VF0.into(),
            group: i32x,
        },
        Event::DriverProbe {
            device: VF0.into(),
            driver: "vfio-pci".into(),
            ret: i32x,
            latency_ns: u64x,
        },
        Event::MsiAlloc {
            device: VF0.into(),
            nvec: i32::MAX,
            ret: i32x,
            irqs: if full { vec![0, u32::MAX] } else { vec![] },
            latency_ns: u64x,
        },
        Event::IrqFree {
            device: s(VF0),
            irqs: if full { vec![0, u32::MAX] } else { vec![] },
        },
        Event::VfioDma {
            op: if full { DmaOp::Map } else { DmaOp::Unmap },
            iova: u64x,
            size: u64::MAX,
            vaddr: u64x,
            ret: i32x,
            latency_ns: u64x,
            iommu_groups: if full { vec![9, u32::MAX] } else { vec![] },
        },
        Event::Stats(VfActivity {
            irq_per_s: if full { 212.5 } else { 0.0 },
            irqs_total: u64x,
            irqs_interval: u64x,
            interval_ns: u64x,
            irq_latency_ns: full.then_some(IrqLatency {
                p50: 2047,
                p99: 8191,
                max: u64::MAX,
            }),
            irq_latency_interval_ns: full.then_some(IrqLatency {
                p50: 0,
                p99: 1,
                max: u64::MAX,
            }),
            irq_latency_log2_ns: if full { vec![0, u64::MAX] } else { vec![] },
            irq_handler_ns_total: if full { u64::MAX } else { 0 },
            vfio_irqs_total: u64x,
            dma_bytes_mapped: u64x,
            dma_bytes_unmapped: u64x,
            dma_map_latency_ns: full.then_some(DmaLatency {
                p50: 0,
                p99: u64::MAX,
            }),
            dma_map_latency_interval_ns: full.then_some(DmaLatency { p50: 1, p99: 2 }),
            net: full.then(vf_stats),
        }),
        Event::Lost { records: u64x },
        Event::HookMissing {
            hook: "msi_entry".into(),
            attach: "kprobe:msi_domain_alloc_irqs_all_locked".into(),
            reason: "no such function in this kernel".into(),
        },
        Event::Started {
            hooks_attached: if full {
                vec!["tracepoint:irq:irq_handler_entry".into()]
            } else {
                vec![]
            },
            hooks_missing: if full { usize::MAX } else { 0 },
        },
        Event::Inventory {
            pfs: vec![pf(full), pf(!full)],
        },
        Event::PolicyLoaded {
            file: "/etc/sriov/policy.toml".into(),
            mode: if full { Mode::Enforce } else { Mode::Audit },
            vfs: if full { usize::MAX } else { 0 },
            pfs: 0,
            attached: if full {
                vec!["lsm:file_ioctl".into(), "tc:eth1:egress".into()]
            } else {
                vec![]
            },
        },
        policy_violation(full, PolicyRule::DmaQuota, PolicyAction::Denied),
        Event::Mailbox(MailboxMessage {
            pf: s(PF0),
            vf_index: if full { u32::MAX } else { 0 },
            direction: if full {
                Direction::PfToVf
            } else {
                Direction::VfToPf
            },
            msg: "SET_MAC_ADDR".into(),
            msg_type: 2,
            verdict: full.then_some(Verdict::Nack),
            cts: full,
            args: if full {
                Args::Mac {
                    mac: MacAddr([2, 0, 0, 0, 0, 0x99]),
                }
            } else {
                Args::None
            },
            words: if full {
                vec![0x6000_0002, u32::MAX]
            } else {
                vec![]
            },
            ret: i32x,
            latency_ns: full.then_some(u64::MAX),
        }),
        Event::ConfigAccess(ConfigAccess {
            device: VF0.into(),
            op: if full {
                AccessOp::Write
            } else {
                AccessOp::Read
            },
            offset: if full { 0xFFF } else { 0 },
            width: 2,
            register: "PCIe.DEVICE_CONTROL".into(),
            value: full.then_some(u64::MAX),
            ret: if full { i64::MIN } else { 2 },
            count: if full { u64::MAX } else { 1 },
            span_ns: u64x,
            latency_ns: u64x,
            total: u64::MAX,
        }),
        Event::AdminChange(AdminChange {
            field: if full {
                AdminField::Vlan
            } else {
                AdminField::DriverOverride
            },
            pf: s(PF0),
            vf_index: full.then_some(1),
            device: s(VF0),
            old: full.then(|| json!({"vlan": 0, "qos": 0})),
            new: if full {
                json!({"vlan": 42, "qos": 0})
            } else {
                Value::Null
            },
            ret: if full { i64::MIN } else { 0 },
            actor: Actor {
                pid: u32::MAX,
                uid: if full { u32::MAX } else { 0 },
                comm: "ip".into(),
                exe: full.then(|| "/usr/bin/ip".into()),
                cgroup_id: u64x,
                cgroup: full.then(|| "/user.slice".into()),
            },
        }),
        Event::SriovPhase {
            pf: PF0.into(),
            phase: "pci_enable_sriov".into(),
            numvfs: full.then_some(u32::MAX),
            ret: i32x,
            latency_ns: u64x,
        },
        Event::VfCreated(Waterfall {
            pf: PF0.into(),
            numvfs: if full { u32::MAX } else { 1 },
            wall_ns: u64x,
            explained_ns: u64x,
            unexplained_ns: 0,
            phases: if full {
                vec![Phase {
                    name: "VF 0: igbvf probe".into(),
                    vf_index: Some(0),
                    depth: 2,
                    start_ns: u64::MAX,
                    duration_ns: u64::MAX,
                }]
            } else {
                vec![]
            },
        }),
        Event::VfDrift(VfDrift {
            device: VF0.into(),
            pf: PF0.into(),
            vf_index: if full { u32::MAX } else { 0 },
            driver: "vfio-pci".into(),
            handed_out_ns: u64x,
            released_by: "unbind".into(),
            left: if full {
                vec![Drift {
                    field: "vlan".into(),
                    handed_out: json!({"vlan": 0, "qos": 0}),
                    now: json!({"vlan": 42, "qos": 0}),
                }]
            } else {
                vec![]
            },
        }),
        Event::VfioDevice {
            device: VF0.into(),
            op: if full { VfioOp::Close } else { VfioOp::Open },
        },
    ];
    for e in &list {
        match e {
            Event::SriovConfigure { .. }
            | Event::VfAdded { .. }
            | Event::VfRemoved { .. }
            | Event::IommuGroupAdded { .. }
            | Event::DriverProbe { .. }
            | Event::MsiAlloc { .. }
            | Event::IrqFree { .. }
            | Event::VfioDma { .. }
            | Event::Stats(_)
            | Event::Lost { .. }
            | Event::HookMissing { .. }
            | Event::Started { .. }
            | Event::Inventory { .. }
            | Event::PolicyLoaded { .. }
            | Event::PolicyViolation { .. }
            | Event::Mailbox(_)
            | Event::ConfigAccess(_)
            | Event::AdminChange(_)
            | Event::SriovPhase { .. }
            | Event::VfCreated(_)
            | Event::VfDrift(_)
            | Event::VfioDevice { .. } => {}
        }
    }
    list
}

/// The events as `NdjsonWriter` writes them, each in three envelopes: VF
/// and process set (`full` events, the largest `ts_ns`), a VF whose own
/// `Option`s are unset and no process, neither (`ts_ns` 0).
fn lines() -> String {
    // the lab's clock pairing: CLOCK_MONOTONIC 1 s at 2025-03-04T10:15:02Z
    let clock = Clock::from_parts(
        1_000_000_000,
        UNIX_EPOCH + Duration::from_secs(1_741_083_302),
    );
    let mut w = NdjsonWriter::new(Vec::new(), clock, "lab");
    let mut extra: Vec<Event> = all_rules()
        .into_iter()
        .zip(all_actions().into_iter().cycle())
        .map(|(r, a)| policy_violation(true, r, a))
        .collect();
    extra.extend(
        all_actions()
            .into_iter()
            .map(|a| policy_violation(false, PolicyRule::Numvfs, a)),
    );
    for event in samples(true).into_iter().chain(extra) {
        let mut ev = EventEnvelope::new(u64::MAX, event);
        ev.vf = Some(identity(true));
        ev.process = Some(process());
        w.write(&ev).unwrap();
    }
    for event in samples(false) {
        let mut ev = EventEnvelope::new(1_500_000_000, event.clone());
        ev.vf = Some(identity(false));
        w.write(&ev).unwrap();
        w.write(&EventEnvelope::new(0, event)).unwrap();
    }
    String::from_utf8(w.into_inner()).unwrap()
}

#[test]
fn every_variant_is_sampled() {
    for full in [true, false] {
        let kinds: Vec<&str> = samples(full).iter().map(Event::kind).collect();
        assert_eq!(kinds, Event::KINDS);
    }
}

#[test]
fn events_of_every_kind_as_written_validate() {
    let lines = lines();
    validate(&events_schema(), &lines)
        .unwrap_or_else(|e| panic!("NdjsonWriter's lines against the schema:\n{e}\n{lines}"));
}

/// The kinds the schema defines are exactly `Event::KINDS`: in the `kind`
/// enum, as `if kind = K then $defs/K` branches, and as `$defs/K` whose
/// `kind` is K. So a kind the schema does not describe fails.
#[test]
fn schema_kinds_are_the_kinds_of_this_build() {
    let s = read_json(&events_schema());
    let kinds: BTreeSet<&str> = Event::KINDS.iter().copied().collect();
    let enumerated: BTreeSet<&str> = s["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(enumerated, kinds, "properties.kind.enum of events-v1.json");
    let mut branches = BTreeSet::new();
    for b in s["allOf"].as_array().unwrap() {
        let k = b["if"]["properties"]["kind"]["const"].as_str().unwrap();
        assert_eq!(b["if"]["required"], json!(["kind"]), "{b}");
        assert_eq!(b["then"]["$ref"], format!("#/$defs/{k}"), "{b}");
        let def = &s["$defs"][k];
        assert_eq!(def["properties"]["kind"]["const"], k, "$defs/{k}");
        assert_eq!(def["additionalProperties"], false, "$defs/{k}");
        assert!(branches.insert(k), "two branches for {k}");
    }
    assert_eq!(branches, kinds, "allOf branches of events-v1.json");
}

/// How serde writes each value (all of them strings).
fn strings<T: serde::Serialize>(values: Vec<T>) -> BTreeSet<String> {
    values
        .into_iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The strings of a schema's `enum` (its `null` left out).
fn schema_enum(v: &Value) -> BTreeSet<String> {
    v["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum: {v}"))
        .iter()
        .filter(|x| !x.is_null())
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// The string enums of the schemas are exactly the Rust enums' values.
#[test]
fn schema_enums_are_the_rust_enums() {
    let s = read_json(&events_schema());
    let d = &s["$defs"];
    let p = |def: &str, field: &str| schema_enum(&d[def]["properties"][field]);
    assert_eq!(p("vfio_dma", "op"), strings(all_dma_ops()));
    assert_eq!(p("policy_violation", "rule"), strings(all_rules()));
    assert_eq!(p("policy_violation", "action"), strings(all_actions()));
    assert_eq!(p("policy_loaded", "mode"), strings(all_modes()));
    assert_eq!(p("vf_net_info", "link_state"), strings(all_link_states()));
    let disc = read_json(&discovery_schema());
    assert_eq!(
        schema_enum(&disc["$defs"]["vf_net_info"]["properties"]["link_state"]),
        strings(all_link_states())
    );
}

/// The discovery objects inside `inventory` events are described the same
/// way in both schemas.
#[test]
fn shared_definitions_are_the_same_in_both_schemas() {
    let (e, d) = (read_json(&events_schema()), read_json(&discovery_schema()));
    for def in [
        "pf",
        "vf",
        "vf_owner",
        "vf_holder",
        "vf_net_info",
        "vf_stats",
        "bdf",
        "u8",
        "u16",
        "u32",
        "u64",
    ] {
        assert!(
            d["$defs"][def].is_object(),
            "discovery-v1.json has no $defs/{def}"
        );
        assert_eq!(
            e["$defs"][def], d["$defs"][def],
            "$defs/{def} differs between events-v1.json and discovery-v1.json"
        );
    }
}

// ------------------------------------------------------------ rejections

/// One valid line of `kind`, full envelope, as the writer writes it.
fn line_of(kind: &str) -> Value {
    lines()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["kind"] == kind && v["vf"].is_object() && v["process"].is_object())
        .unwrap()
}

/// `value` fails against `schema` with `message` at `at` (a JSON pointer).
#[track_caller]
fn rejects(schema: &std::path::Path, value: &Value, at: &str, message: &str) {
    let report = match validate(schema, &value.to_string()) {
        Ok(()) => panic!("accepted, expected {message:?} at {at}:\n{value}"),
        Err(e) => e,
    };
    assert!(
        report.contains(&format!("at {at}: ")) && report.contains(message),
        "expected {message:?} at {at}, got:\n{report}"
    );
}

#[test]
fn the_baselines_of_the_rejections_are_valid() {
    for kind in ["vfio_dma", "inventory", "stats"] {
        validate(&events_schema(), &line_of(kind).to_string()).unwrap();
    }
}

#[test]
fn rejects_a_string_for_a_number() {
    let mut v = line_of("vfio_dma");
    v["size"] = json!("1048576");
    rejects(&events_schema(), &v, "/size", "is not of type 'integer'");
}

#[test]
fn rejects_a_missing_required_field() {
    let mut v = line_of("vfio_dma");
    v.as_object_mut().unwrap().remove("latency_ns");
    rejects(
        &events_schema(),
        &v,
        "(document)",
        "'latency_ns' is a required property",
    );
    let mut v = line_of("vfio_dma");
    v.as_object_mut().unwrap().remove("node");
    rejects(
        &events_schema(),
        &v,
        "(document)",
        "'node' is a required property",
    );
}

#[test]
fn rejects_an_unknown_kind() {
    let mut v = line_of("lost");
    v["kind"] = json!("vf_exploded");
    rejects(&events_schema(), &v, "/kind", "'vf_exploded' is not one of");
}

#[test]
fn rejects_an_extra_field() {
    let mut v = line_of("vfio_dma");
    v["extra"] = json!(1);
    rejects(
        &events_schema(),
        &v,
        "(document)",
        "Additional properties are not allowed ('extra' was unexpected)",
    );
}

#[test]
fn rejects_an_extra_field_in_a_nested_object() {
    let mut v = line_of("vfio_dma");
    v["vf"]["extra"] = json!(1);
    rejects(&events_schema(), &v, "/vf", "('extra' was unexpected)");
    let mut v = line_of("inventory");
    v["pfs"][0]["vfs"][0]["config"]["stats"]["extra"] = json!(1);
    rejects(
        &events_schema(),
        &v,
        "/pfs/0/vfs/0/config/stats",
        "('extra' was unexpected)",
    );
    let mut v = line_of("stats");
    v["irq_latency_ns"]["p90"] = json!(1);
    rejects(
        &events_schema(),
        &v,
        "/irq_latency_ns",
        "('p90' was unexpected)",
    );
}

#[test]
fn rejects_null_where_the_rust_type_is_not_an_option() {
    let mut v = line_of("vfio_dma");
    v["ret"] = Value::Null;
    rejects(
        &events_schema(),
        &v,
        "/ret",
        "None is not of type 'integer'",
    );
}

#[test]
fn rejects_integers_out_of_range() {
    let mut v = line_of("vfio_dma");
    v["process"]["pid"] = json!(u64::from(u32::MAX) + 1);
    rejects(
        &events_schema(),
        &v,
        "/process/pid",
        "is greater than the maximum of 4294967295",
    );
    let mut v = line_of("vfio_dma");
    v["ret"] = json!(i64::from(i32::MIN) - 1);
    rejects(
        &events_schema(),
        &v,
        "/ret",
        "is less than the minimum of -2147483648",
    );
    let mut v = line_of("vfio_dma");
    v["iova"] = json!(-1);
    rejects(
        &events_schema(),
        &v,
        "/iova",
        "is less than the minimum of 0",
    );
}

#[test]
fn rejects_a_value_outside_an_enum() {
    let mut v = line_of("vfio_dma");
    v["op"] = json!("remap");
    rejects(&events_schema(), &v, "/op", "'remap' is not one of");
}

#[test]
fn rejects_another_schema_version() {
    let mut v = line_of("lost");
    v["schema"] = json!("sriov-top.events/v2");
    rejects(
        &events_schema(),
        &v,
        "/schema",
        "'sriov-top.events/v1' was expected",
    );
}

/// `stats.net` is `#[serde(default)]`: v1 lines written before it existed
/// lack it, and are valid; a `null` one is valid too.
#[test]
fn accepts_stats_without_net() {
    let mut v = line_of("stats");
    v["net"] = Value::Null;
    validate(&events_schema(), &v.to_string()).unwrap();
    v.as_object_mut().unwrap().remove("net");
    validate(&events_schema(), &v.to_string()).unwrap();
}

#[test]
fn discovery_schema_rejects_an_extra_field_and_a_missing_one() {
    let pfs = serde_json::to_value(vec![pf(true)]).unwrap();
    let inv = json!({
        "schema": discover::SCHEMA,
        "netlink": "ok",
        "pfs": pfs,
        "warnings": [],
    });
    validate_document(&discovery_schema(), &inv.to_string()).unwrap();
    let mut v = inv.clone();
    v["pfs"][0]["vfs"][1]["extra"] = json!(1);
    let report = validate_document(&discovery_schema(), &v.to_string()).unwrap_err();
    assert!(
        report.contains("at /pfs/0/vfs/1: ") && report.contains("('extra' was unexpected)"),
        "{report}"
    );
    let mut v = inv.clone();
    v.as_object_mut().unwrap().remove("warnings");
    let report = validate_document(&discovery_schema(), &v.to_string()).unwrap_err();
    assert!(
        report.contains("'warnings' is a required property"),
        "{report}"
    );
    let mut v = inv;
    v["pfs"][0]["total_vfs"] = json!("7");
    let report = validate_document(&discovery_schema(), &v.to_string()).unwrap_err();
    assert!(
        report.contains("at /pfs/0/total_vfs: '7' is not of type 'integer'"),
        "{report}"
    );
}

// ------------------------------------------------------------ discovery

/// `sriov list --json` and `sriov show DEV --json` (PF and VF) of fixture
/// hosts: two PFs with 3 VFs, a PF with no VF (no rtnetlink there, so
/// `config` is null).
#[test]
fn sriov_list_and_show_json_of_a_fixture_host_validate() {
    let d = tempfile::tempdir().unwrap();
    let specs = fixture::generate(d.path(), 2, 3).unwrap();
    let mut bare = PfSpec::i82576("0000:40:00.0".parse().unwrap(), "eth9", 0);
    bare.vf_driver = None;
    fixture::add_pf(d.path(), &bare).unwrap();
    let vf = specs[1].vf_bdf(2).to_string();
    for args in [
        vec!["list", "--json"],
        vec!["show", "enp0", "--json"],
        vec!["show", &vf, "--json"],
        vec!["show", "eth9", "--json"],
    ] {
        let out = Command::cargo_bin("sriov")
            .unwrap()
            .arg("--sysfs-root")
            .arg(d.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sriov {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = String::from_utf8(out.stdout).unwrap();
        validate_document(&discovery_schema(), &json)
            .unwrap_or_else(|e| panic!("sriov {args:?} against the schema:\n{e}\n{json}"));
    }
}

/// Discovery with rtnetlink (the fake kernel's): every VF has a `config`,
/// serialized as `sriov list --json` does it.
#[test]
fn discovery_with_netlink_validates() {
    let d = tempfile::tempdir().unwrap();
    let k = FakeKernel::new(
        d.path(),
        vec![PfSpec::i82576(PF0.parse().unwrap(), "eth0", 3)],
    )
    .unwrap();
    k.set_vf(
        "eth0",
        1,
        &[
            VfAttr::Mac(MacAddr([0x02, 0, 0, 0, 0, 1])),
            VfAttr::Vlan { vlan: 10, qos: 2 },
            VfAttr::State(VfLinkState::Disable),
            VfAttr::Rate { min: 10, max: 1000 },
        ],
    )
    .unwrap();
    let inv = discover::discover(&k).unwrap();
    assert_eq!(inv.netlink, "ok");
    assert!(inv.pfs[0].vfs.iter().all(|v| v.config.is_some()), "{inv:?}");
    let json = serde_json::to_string_pretty(&inv).unwrap();
    validate_document(&discovery_schema(), &json)
        .unwrap_or_else(|e| panic!("discovery with netlink against the schema:\n{e}\n{json}"));
}
