//! The terminal UI without a terminal: the App fed from the lab fixture
//! (every line applied at once, no timers), drawn into ratatui's
//! TestBackend and compared with insta snapshots (tests/snapshots); and
//! the keys driving the App. After a deliberate change of the screens:
//! `INSTA_UPDATE=always cargo test -p sriov-top --test tui`, then read the
//! changed `.snap` files before committing them.
#![allow(clippy::unwrap_used)]

use std::io::BufReader;

use insta::assert_snapshot;
use ratatui::{
    Terminal,
    backend::TestBackend,
    crossterm::event::{
        Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
    },
    style::{Color, Modifier},
};
use sriov_core::events::{Event as Ev, EventEnvelope, NdjsonReader, ReadLine, VfIdentity};
use sriov_top::{
    collect::EbpfUnavailable,
    tui::{App, AppEvent, Mode, SourceInfo},
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lab.ndjson");
const VF0: &str = "0000:01:10.0";
const VF1: &str = "0000:01:10.2";
const VF2: &str = "0000:01:10.4";
const PF: &str = "0000:01:00.0";

fn fixture_events() -> Vec<EventEnvelope> {
    let f = std::fs::File::open(FIXTURE).unwrap();
    NdjsonReader::new(BufReader::new(f))
        .filter_map(|(_, r)| match r.unwrap() {
            ReadLine::Event(l) => Some(l.envelope),
            _ => None,
        })
        .collect()
}

/// The App after the whole fixture, as a replay at speed 100 that ended.
fn lab_app(w: u16, h: u16) -> App {
    let mut app = App::new(SourceInfo::Replay {
        name: "lab.ndjson".into(),
        speed: 100.0,
    });
    app.resize(w, h);
    for ev in fixture_events() {
        app.apply(&ev);
    }
    app.handle(AppEvent::SourceEnded);
    app
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(app, f.area())).unwrap();
    t
}

fn key(app: &mut App, code: KeyCode) {
    app.handle(AppEvent::Input(Event::Key(KeyEvent::new(
        code,
        KeyModifiers::NONE,
    ))));
}

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// The table's rows as BDFs, in order.
fn row_bdfs(app: &App) -> Vec<String> {
    app.rows().iter().map(|r| r.key.bdf().to_string()).collect()
}

fn selected(app: &App) -> String {
    app.selected_row().unwrap().key.bdf().to_string()
}

// ---- snapshots ----

#[test]
fn table_view() {
    let app = lab_app(120, 30);
    assert_snapshot!("table_120x30", draw(&app, 120, 30).backend());
}

#[test]
fn detail_view() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Detail(VF0.into()));
    assert_snapshot!("detail_120x30", draw(&app, 120, 30).backend());
}

/// The examples of docs/events.md (lab lines) of `kind`, as events.
fn doc_examples(kind: &str) -> Vec<EventEnvelope> {
    let doc = include_str!("../../docs/events.md");
    let lines: String = doc
        .lines()
        .filter(|l| l.starts_with('{') && l.contains(&format!("\"kind\":\"{kind}\"")))
        .map(|l| format!("{l}\n"))
        .collect();
    NdjsonReader::new(BufReader::new(lines.as_bytes()))
        .filter_map(|(_, r)| match r.unwrap() {
            ReadLine::Event(l) => Some(l.envelope),
            _ => None,
        })
        .collect()
}

/// A VF's life on one screen: its part of the creation waterfall, its IRQ
/// handler time as bars, and its mailbox and admin events in the log.
#[test]
fn detail_view_with_the_creation_waterfall_and_the_irq_histogram() {
    let mut app = lab_app(120, 50);
    for kind in ["vf_created", "mailbox", "admin_change"] {
        let evs = doc_examples(kind);
        assert!(!evs.is_empty(), "docs/events.md has a {kind} example");
        for ev in evs {
            app.apply(&ev);
        }
    }
    // VF 0's handler times: 3 runs in [4, 8) µs, 10 in [8, 16) µs, 1 in [64, 128) µs
    let mut stats = fixture_events()
        .into_iter()
        .rev()
        .find(|e| matches!(e.event, Ev::Stats(_)) && e.vf.as_ref().is_some_and(|v| v.bdf == VF0))
        .expect("a stats line of VF 0");
    if let Ev::Stats(a) = &mut stats.event {
        let mut b = vec![0u64; 17];
        b[12] = 3;
        b[13] = 10;
        b[16] = 1;
        a.irq_latency_log2_ns = b;
    }
    app.apply(&stats);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Detail(VF0.into()));
    let t = draw(&app, 120, 50);
    let text = format!("{:?}", t.backend());
    assert!(text.contains("creation (vf_created)"), "{text}");
    assert!(text.contains("VF 0: igbvf probe"), "{text}");
    assert!(text.contains("IRQ handler time since start"), "{text}");
    assert_snapshot!("detail_life_120x50", t.backend());
}

#[test]
fn detail_view_of_the_vfio_vf() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::End);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Detail(VF2.into()));
    assert_snapshot!("detail_vfio_120x30", draw(&app, 120, 30).backend());
}

#[test]
fn event_log() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.mode, Mode::Events);
    assert_snapshot!("events_120x30", draw(&app, 120, 30).backend());
}

#[test]
fn help_overlay() {
    let mut app = lab_app(120, 30);
    keys(&mut app, "?");
    assert_snapshot!("help_120x30", draw(&app, 120, 30).backend());
    key(&mut app, KeyCode::Esc);
    assert!(!app.help);
    assert!(!app.should_quit());
}

#[test]
fn filter_active() {
    let mut app = lab_app(120, 30);
    keys(&mut app, "/eth2");
    // typing: the input line shows, the rows are not filtered yet
    assert_eq!(app.rows().len(), 4);
    assert_snapshot!("filter_typing_120x30", draw(&app, 120, 30).backend());
    key(&mut app, KeyCode::Enter);
    assert_snapshot!("filter_applied_120x30", draw(&app, 120, 30).backend());
}

#[test]
fn banners_not_root_and_no_device() {
    let mut app = App::new(SourceInfo::Live);
    app.resize(120, 30);
    app.handle(AppEvent::EbpfUnavailable(EbpfUnavailable::NotRoot));
    app.apply(&EventEnvelope::new(1, Ev::Inventory { pfs: vec![] }));
    assert_snapshot!("banner_not_root_no_device", draw(&app, 120, 30).backend());
}

#[test]
fn banner_load_failed_with_devices() {
    let mut app = lab_app(120, 30);
    app.handle(AppEvent::EbpfUnavailable(EbpfUnavailable::LoadFailed(
        "program `really_probe`: permission denied".into(),
    )));
    let t = draw(&app, 120, 30);
    let text = format!("{}", t.backend());
    assert!(
        text.contains("eBPF load failed: program `really_probe`: permission denied"),
        "{text}"
    );
    assert!(text.contains(VF2), "the table is still there:\n{text}");
}

#[test]
fn narrow_terminal() {
    let app = lab_app(60, 20);
    assert_snapshot!("table_60x20", draw(&app, 60, 20).backend());
}

#[test]
fn selection_and_violations_are_styled() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::Down); // VF0 on screen line 2 (header, table header)
    app.note_policy_violation(VF1);
    let t = draw(&app, 120, 30);
    let buf = t.backend().buffer();
    let cell = |x: u16, y: u16| buf.cell((x, y)).unwrap().clone();
    assert!(
        cell(5, 3).modifier.contains(Modifier::REVERSED),
        "selected VF0"
    );
    assert!(!cell(5, 4).modifier.contains(Modifier::REVERSED));
    assert_eq!(cell(5, 4).fg, Color::Red, "VF1 violates a policy");
    let text = format!("{}", t.backend());
    assert!(text.contains("policy: 1 violations"), "{text}");
    assert!(text.contains("1 viol"), "{text}");
}

#[test]
fn policy_events_from_the_stream_drive_the_badge_the_row_and_the_log() {
    use sriov_core::{
        events::{PolicyAction, PolicyRule},
        policy::Mode as PolicyMode,
    };
    let mut app = lab_app(120, 30);
    assert!(format!("{}", draw(&app, 120, 30).backend()).contains("no policy loaded"));
    let loaded = Ev::PolicyLoaded {
        file: "p.toml".into(),
        mode: PolicyMode::Enforce,
        vfs: 1,
        pfs: 0,
        attached: vec!["lsm:file_open".into()],
    };
    app.apply(&EventEnvelope::new(1, loaded));
    assert!(format!("{}", draw(&app, 120, 30).backend()).contains("policy: ok"));
    let vf = fixture_events()
        .iter()
        .find_map(|e| e.vf.clone().filter(|v| v.bdf == VF2))
        .expect("VF2 in the fixture");
    let mut ev = EventEnvelope::new(
        2,
        Ev::PolicyViolation {
            rule: PolicyRule::VfioOpen,
            action: PolicyAction::Denied,
            pf: None,
            uid: Some(1000),
            cgroup: Some(1),
            value: 0,
            limit: 0,
            detail: None,
        },
    );
    ev.vf = Some(vf);
    app.apply(&ev);
    let text = format!("{}", draw(&app, 120, 30).backend());
    assert!(text.contains("policy: 1 violations"), "{text}");
    key(&mut app, KeyCode::Tab);
    let log = format!("{}", draw(&app, 120, 30).backend());
    assert!(log.contains("vfio_open denied uid 1000"), "{log}");
}

// ---- keys ----

#[test]
fn selection_moves_and_clamps() {
    let mut app = lab_app(120, 30);
    assert_eq!(row_bdfs(&app), [PF, VF0, VF1, VF2]);
    assert_eq!(selected(&app), PF);
    key(&mut app, KeyCode::Up);
    assert_eq!(selected(&app), PF, "clamped at the top");
    key(&mut app, KeyCode::Down);
    keys(&mut app, "j");
    assert_eq!(selected(&app), VF1);
    keys(&mut app, "jjjj");
    assert_eq!(selected(&app), VF2, "clamped at the bottom");
    keys(&mut app, "k");
    assert_eq!(selected(&app), VF1);
    key(&mut app, KeyCode::Home);
    assert_eq!(selected(&app), PF);
    key(&mut app, KeyCode::PageDown);
    assert_eq!(selected(&app), VF2);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(selected(&app), PF);
}

#[test]
fn enter_opens_the_selected_vf_and_esc_closes() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Table, "Enter on a PF row does nothing");
    keys(&mut app, "jj");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Detail(VF1.into()));
    assert_eq!(app.detail_vf().unwrap().bdf, VF1);
    // in detail, ↓ goes to the next VF
    key(&mut app, KeyCode::Down);
    assert_eq!(app.mode, Mode::Detail(VF2.into()));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Table);
    assert!(!app.should_quit());
    assert_eq!(selected(&app), VF2);
    key(&mut app, KeyCode::Esc);
    assert!(app.should_quit(), "Esc with nothing open quits");
}

#[test]
fn sort_cycles_columns_and_reverses() {
    let mut app = lab_app(120, 30);
    keys(&mut app, "S");
    assert_eq!(row_bdfs(&app), [PF, VF2, VF1, VF0], "BDF descending");
    keys(&mut app, "S");
    assert_eq!(row_bdfs(&app), [PF, VF0, VF1, VF2]);
    // s: netdev, driver, rx pps
    keys(&mut app, "sss");
    assert_eq!(app.sort.column().header(), "rx pps");
    // rx pps: VF1 50, VF2 300, VF0 1200
    assert_eq!(row_bdfs(&app), [PF, VF1, VF2, VF0]);
    keys(&mut app, "S");
    assert_eq!(row_bdfs(&app), [PF, VF0, VF2, VF1]);
    // the selection follows its row, not its position
    keys(&mut app, "j");
    assert_eq!(selected(&app), VF0);
    keys(&mut app, "S");
    assert_eq!(selected(&app), VF0);
    assert_eq!(app.selected_index(&app.rows()), Some(3));
    assert!(
        app.status_items().contains(&"sort: rx pps ↑".to_string()),
        "{:?}",
        app.status_items()
    );
}

#[test]
fn filter_narrows_rows_and_esc_clears() {
    let mut app = lab_app(120, 30);
    keys(&mut app, "/eth2");
    key(&mut app, KeyCode::Enter);
    assert_eq!(row_bdfs(&app), [PF, VF1]);
    // by MAC and by driver
    keys(&mut app, "/");
    for _ in 0..4 {
        key(&mut app, KeyCode::Backspace);
    }
    keys(&mut app, "02:00:00:00:00:03");
    key(&mut app, KeyCode::Enter);
    assert_eq!(row_bdfs(&app), [PF, VF2]);
    keys(&mut app, "/");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.rows().len(), 4, "Esc in the input clears the filter");
    keys(&mut app, "/VFIO");
    key(&mut app, KeyCode::Enter);
    assert_eq!(row_bdfs(&app), [PF, VF2], "case-insensitive, by driver");
    keys(&mut app, "/nothing-like-this");
    key(&mut app, KeyCode::Enter);
    assert!(app.rows().is_empty());
    // Esc clears an applied filter before it would quit
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.rows().len(), 4);
    assert!(!app.should_quit());
    // a PF match shows its VFs
    keys(&mut app, "/igb ");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.rows().len(), 4);
    // q while typing is text, not quit
    keys(&mut app, "/q");
    assert!(!app.should_quit());
}

#[test]
fn event_filter_by_kind_and_vf() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::Tab);
    keys(&mut app, "/vf_added 10.2");
    key(&mut app, KeyCode::Enter);
    let shown = app.log_window(100);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].kind, "vf_added");
    assert_eq!(shown[0].vf.as_deref(), Some(VF1));
    keys(&mut app, "/");
    key(&mut app, KeyCode::Esc);
    keys(&mut app, "/driver_probe");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.log_window(100).len(), 4);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.mode, Mode::Table);
    assert_eq!(app.rows().len(), 4, "the table's filter is its own");
}

#[test]
fn pause_buffers_log_entries_and_resume_applies_them() {
    let mut app = lab_app(120, 30);
    key(&mut app, KeyCode::Tab);
    let before = app.log.len();
    keys(&mut app, "p");
    assert!(app.log.paused());
    let lost = EventEnvelope::new(200_000_000_000, Ev::Lost { records: 3 });
    app.handle(AppEvent::Data(lost.clone()));
    app.handle(AppEvent::Data(lost));
    assert_eq!(app.log.len(), before, "held back");
    assert_eq!(app.log.pending(), 2);
    assert_eq!(app.model.lost_total, 17 + 6, "the data itself is applied");
    let t = format!("{}", draw(&app, 120, 30).backend());
    assert!(t.contains("PAUSED (2 new"), "{t}");
    keys(&mut app, "p");
    assert_eq!(app.log.len(), before + 2);
    assert_eq!(app.log.pending(), 0);
    let last = app.log_window(1);
    assert_eq!(last[0].kind, "lost");
}

#[test]
fn q_quits_and_ctrl_c_too() {
    let mut app = lab_app(120, 30);
    keys(&mut app, "q");
    assert!(app.should_quit());
    let mut app = lab_app(120, 30);
    app.handle(AppEvent::Input(Event::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    ))));
    assert!(app.should_quit());
}

#[test]
fn mouse_click_selects_and_wheel_moves() {
    let mut app = lab_app(120, 30);
    let mouse = |kind, row| {
        AppEvent::Input(Event::Mouse(MouseEvent {
            kind,
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        }))
    };
    // line 0 header, 1 table header, 2 PF, 3 VF0, 4 VF1, 5 VF2
    app.handle(mouse(MouseEventKind::Down(MouseButton::Left), 4));
    assert_eq!(selected(&app), VF1);
    app.handle(mouse(MouseEventKind::Down(MouseButton::Left), 20));
    assert_eq!(selected(&app), VF1, "below the rows: no change");
    app.handle(mouse(MouseEventKind::ScrollDown, 4));
    assert_eq!(selected(&app), VF2);
    app.handle(mouse(MouseEventKind::ScrollUp, 4));
    app.handle(mouse(MouseEventKind::ScrollUp, 4));
    assert_eq!(selected(&app), VF0);
}

#[test]
fn rates_come_from_successive_counters() {
    let app = lab_app(120, 30);
    let v = &app.model.vfs[VF0];
    assert_eq!(v.rx_pps, Some(1200.0));
    assert_eq!(v.tx_pps, Some(800.0));
    assert_eq!(v.rx_bps, Some(1200.0 * 1500.0));
    assert_eq!(v.irq_per_s, Some(212.5));
    assert_eq!(v.hist_irq.len(), 4);
    assert_eq!(
        v.hist_rx_pps.iter().copied().collect::<Vec<_>>(),
        [0, 1200, 1200, 1200]
    );
    assert_eq!(v.hotplug.unwrap().latency_ns, 41_200_331);
    assert_eq!(v.probe.as_ref().unwrap().0, "igbvf");
    let v2 = &app.model.vfs[VF2];
    assert_eq!(v2.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(v2.probe.as_ref().unwrap().0, "vfio-pci");
    assert_eq!(v2.dma_maps, 1);
    assert_eq!(v2.dma_bytes_mapped, 1 << 20);
    assert_eq!(app.model.lost_total, 17);
}

#[test]
fn inventory_removes_vfs_and_events_bring_them_back() {
    let mut app = lab_app(120, 30);
    let evs = fixture_events();
    let first_inventory = evs
        .iter()
        .find(|e| matches!(&e.event, Ev::Inventory { pfs } if pfs[0].vfs.is_empty()))
        .unwrap()
        .clone();
    app.apply(&first_inventory);
    assert_eq!(row_bdfs(&app), [PF]);
    let id = VfIdentity {
        pf: PF.into(),
        pf_netdev: Some("eth0".into()),
        index: 1,
        bdf: VF1.into(),
        netdev: None,
        iommu_group: Some(11),
        created_ns: None,
    };
    let mut added = EventEnvelope::new(
        300_000_000_000,
        Ev::VfAdded {
            pf: Some(PF.into()),
            vf_index: 1,
            vf_bdf: Some(VF1.into()),
            ret: 0,
            latency_ns: 5,
        },
    );
    added.vf = Some(id);
    app.apply(&added);
    assert_eq!(row_bdfs(&app), [PF, VF1]);
    assert_eq!(app.model.vfs[VF1].hotplug.unwrap().latency_ns, 5);
    // its history stayed
    assert_eq!(app.model.vfs[VF1].hist_irq.len(), 4);
}

/// A real capture: `sriov-top --json` in the lab while `echo 3 >
/// sriov_numvfs` ran and the VFs sent ARP broadcasts
/// (tests/fixtures/lab-capture.ndjson, unedited).
#[test]
fn a_real_lab_capture_replays_into_three_vfs_with_latencies_and_rates() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lab-capture.ndjson"
    );
    let mut app = App::new(SourceInfo::Replay {
        name: "lab-capture.ndjson".into(),
        speed: 1.0,
    });
    app.resize(140, 40);
    let f = std::fs::File::open(path).unwrap();
    let mut events = 0;
    for (_, r) in NdjsonReader::new(BufReader::new(f)) {
        if let ReadLine::Event(l) = r.unwrap() {
            assert_eq!(l.node, "sriov-lab");
            app.apply(&l.envelope);
            events += 1;
        }
    }
    assert_eq!(events, 45);
    app.handle(AppEvent::SourceEnded);
    assert_eq!(row_bdfs(&app), vec![PF, VF0, VF1, VF2]);

    let screen = format!("{:?}", draw(&app, 140, 40).backend());
    for (vf, netdev) in [(VF0, "eth1"), (VF1, "eth2"), (VF2, "eth3")] {
        let line = screen
            .lines()
            .find(|l| l.contains(vf))
            .unwrap_or_else(|| panic!("{vf} not on screen:\n{screen}"));
        assert!(line.contains(netdev) && line.contains("igbvf"), "{line}");
    }

    // VF 0's detail: hot-plug and probe latencies from the kernel records
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.mode, Mode::Detail { .. }), "{:?}", app.mode);
    let screen = format!("{:?}", draw(&app, 140, 40).backend());
    assert!(screen.contains(&format!("VF {VF0} ")), "{screen}");
    assert!(
        screen.contains("hot-plug (vf_added): ") && !screen.contains("hot-plug (vf_added): -"),
        "{screen}"
    );
    assert!(screen.contains("driver probe: igbvf "), "{screen}");
    assert!(screen.contains("IRQ all: p50 ≤"), "{screen}");
}

#[test]
fn who_holds_a_vf_is_a_column_and_a_detail_line() {
    let mut app = lab_app(220, 30);
    let mut inv = fixture_events()
        .into_iter()
        .rev()
        .find(|e| matches!(e.event, Ev::Inventory { .. }))
        .expect("an inventory");
    if let Ev::Inventory { pfs } = &mut inv.event {
        let vf = pfs[0].vfs.iter_mut().find(|v| v.bdf == VF2).unwrap();
        vf.owner = Some(sriov_core::owner::VfOwner {
            processes: vec![sriov_core::owner::Holder {
                pid: 4242,
                comm: "qemu-system-x86".into(),
                exe: None,
                cgroup: None,
                path: "/dev/vfio/8".into(),
                vm: Some("web1".into()),
                container: None,
            }],
            ..Default::default()
        });
    }
    app.apply(&inv);
    let text = format!("{:?}", draw(&app, 220, 30).backend());
    assert!(text.contains("owner"), "{text}");
    let row = text.lines().find(|l| l.contains(VF2)).unwrap();
    assert!(row.contains("vm web1"), "{row}");
    let vf0 = text.lines().find(|l| l.contains(VF0)).unwrap();
    assert!(!vf0.contains("vm web1"), "{vf0}");
    key(&mut app, KeyCode::End);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Detail(VF2.into()));
    let text = format!("{:?}", draw(&app, 220, 30).backend());
    assert!(text.contains("held by vm web1"), "{text}");
}
