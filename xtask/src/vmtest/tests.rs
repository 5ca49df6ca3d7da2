#![allow(clippy::unwrap_used)]
use std::path::{Path, PathBuf};

use std::time::Duration;

use super::{
    Fate, Inject, PYTHON, Resume, STALL_GRACE, STREAM_CHECK, Tally, Totals, Watch, Wedge,
    check_stream, check_streams, kept_streams, move_streams, parse_result, place_injections,
    restart_note, resume, script, what_next,
};

fn schema_dir() -> PathBuf {
    crate::util::workspace_root().join("docs").join("schema")
}

/// A scratch directory of its own under the target dir.
fn scratch(name: &str) -> PathBuf {
    let d = crate::util::target_dir()
        .join("xtask-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const STARTED: &str = r#"{"schema":"sriov-top.events/v1","time":"2025-03-04T10:14:40.511100000Z","node":"lab","ts_ns":391009180229,"vf":null,"process":null,"kind":"started","hooks_attached":["tracepoint:irq:irq_handler_entry"],"hooks_missing":0}"#;

#[test]
fn parses_libtest_summary() {
    assert_eq!(
        parse_result(
            "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.21s"
        ),
        Some((2, 0))
    );
    assert_eq!(
        parse_result("test result: FAILED. 1 passed; 1 failed; 0 ignored"),
        Some((1, 1))
    );
    assert_eq!(parse_result("running 2 tests"), None);
}

#[test]
fn tally_charges_a_test_that_printed_no_result() {
    let mut t = Tally::default();
    for l in [
        ">>> test lab-tests a::one",
        "test result: ok. 1 passed; 0 failed; 0 ignored",
        "<<< exit 0",
        ">>> test lab-tests a::two",
        "<<< exit 137",
        ">>> test lab-tests a::three",
        "test result: FAILED. 0 passed; 1 failed; 0 ignored",
        "<<< exit 101",
        ">>> test lab-tests a::four",
    ] {
        t.line(l);
    }
    assert_eq!((t.passed, t.failed), (1, 2));
    assert_eq!(t.broken, vec!["a::two (exit 137, no result line)"]);
    assert_eq!(t.failures, vec!["a::three"]);
    assert_eq!(t.current.as_ref().map(|c| c.name.as_str()), Some("a::four"));
    assert_eq!(t.started, 4);
    // the end of the run names both, the one without a result with why
    let mut totals = Totals::default();
    totals.add(&t);
    assert_eq!(
        totals.named_failures(),
        vec!["a::three", "a::two (exit 137, no result line)"]
    );
}

#[test]
fn kept_streams_are_the_ndjson_files_sorted_and_none_without_a_dir() {
    let d = scratch("kept");
    assert!(kept_streams(&d.join("streams")).unwrap().is_empty());
    for f in ["b.ndjson", "a.ndjson", "notes.txt"] {
        std::fs::write(d.join(f), "x").unwrap();
    }
    assert_eq!(
        kept_streams(&d).unwrap(),
        vec![d.join("a.ndjson"), d.join("b.ndjson")]
    );
}

#[test]
fn an_empty_stream_or_a_missing_validator_fails_and_names_the_fix() {
    let d = scratch("empty");
    let f = d.join("s.ndjson");
    std::fs::write(&f, "\n").unwrap();
    let e = check_stream(Path::new(PYTHON), &schema_dir(), &f).unwrap_err();
    assert!(e.contains("empty"), "{e}");
    std::fs::write(&f, "{}\n").unwrap();
    let e = check_stream(Path::new("/nonexistent/python3"), &schema_dir(), &f).unwrap_err();
    assert!(e.contains("cargo xtask setup"), "{e}");
    // a validator that cannot run its script (exit 2) is no pass either
    let e = check_stream(Path::new(PYTHON), &d, &f).unwrap_err();
    assert!(e.contains("cargo xtask setup"), "{e}");
    assert_eq!(
        check_streams(Path::new(PYTHON), &d, &[f]),
        (0, vec![format!("{STREAM_CHECK}s")])
    );
}

/// Needs Debian's python3-jsonschema (`cargo xtask setup`), as the
/// schema tests of `cargo test --workspace` do.
#[test]
fn a_valid_stream_passes_and_a_bad_line_fails_with_its_line_number() {
    let d = scratch("validate");
    let good = d.join("good.ndjson");
    std::fs::write(&good, format!("{STARTED}\n")).unwrap();
    assert_eq!(
        check_stream(Path::new(PYTHON), &schema_dir(), &good),
        Ok(())
    );
    let bad = d.join("bad.ndjson");
    std::fs::write(
        &bad,
        format!(
            "{STARTED}\n{}\n",
            STARTED.replace(r#""hooks_missing":0"#, r#""hooks_missing":"0""#)
        ),
    )
    .unwrap();
    let e = check_stream(Path::new(PYTHON), &schema_dir(), &bad).unwrap_err();
    assert!(e.contains("bad.ndjson:2: at /hooks_missing"), "{e}");
    assert_eq!(
        check_streams(Path::new(PYTHON), &schema_dir(), &[good, bad]),
        (1, vec![format!("{STREAM_CHECK}bad")])
    );
}

fn tests(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| ("b".to_string(), n.to_string()))
        .collect()
}

#[test]
fn script_runs_each_test_alone_under_timeout() {
    let s = script(&tests(&["m::t", "m::t"]), 30, &[]);
    assert_eq!(s.matches("one b m::t\n").count(), 2, "{s}");
    assert!(s.contains("\"$1\" --ignored --exact \"$2\""), "{s}");
    assert!(s.contains("( sleep 30; "), "{s}");
    assert!(!s.contains("wedge()") && !s.contains("hang()"), "{s}");
    assert!(s.ends_with("exit $rc\n"));
}

#[test]
fn an_injected_wedge_prints_what_the_watch_takes_for_one() {
    let s = script(
        &tests(&["a", "b", "c"]),
        30,
        &[(1, Inject::Wedge), (2, Inject::Hang)],
    );
    assert!(
        s.contains("one b a\nwedge b b\nhang b c\nexit $rc\n"),
        "{s}"
    );
    // the lines the fake report echoes, as the console shows them
    let mut w = Watch::new(Duration::from_secs(300));
    let echoed: Vec<&str> = s
        .lines()
        .filter_map(|l| l.trim().strip_prefix("echo '[  600."))
        .collect();
    assert_eq!(echoed.len(), 3, "{s}");
    assert_eq!(w.event(Duration::ZERO, Some(echoed[0])), None);
    assert!(s.contains("timer wakeup didn't happen"), "{s}");
    assert_eq!(
        w.event(Duration::ZERO, Some(echoed[2])),
        Some(Wedge::TimerStall)
    );
    assert!(s.contains("sleep 30\n"), "{s}");
}

#[test]
fn injections_land_on_the_first_untaken_matching_test() {
    let t = tests(&["x::one", "y::two", "x::one"]);
    let pending = vec![
        (Inject::Wedge, "one".to_string()),
        (Inject::Wedge, "one".to_string()),
        (Inject::Hang, "two".to_string()),
        (Inject::Hang, "none".to_string()),
    ];
    assert_eq!(
        place_injections(&t, &pending),
        vec![
            (0, Inject::Wedge, 0),
            (2, Inject::Wedge, 1),
            (1, Inject::Hang, 2)
        ]
    );
}

/// The console of the wedged run (`/tmp/vmall.log`), with host times.
const WEDGED: &[(u64, &str)] = &[
    (
        580,
        ">>> test sriov-core-lab-tests redteam::audit_mode_lets_the_map_after_a_fake_unmap_through_and_reports_it",
    ),
    (580, ""),
    (580, "running 1 test"),
    (
        601,
        "test redteam::audit_mode_lets_the_map_after_a_fake_unmap_through_and_reports_it ... [  600.649805] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    ),
    (
        601,
        "[  600.651695] rcu: \t0-...!: (0 ticks this GP) idle=b878/0/0x0 softirq=17266/17266 fqs=0 (false positive?)",
    ),
    (
        601,
        "[  600.652130] rcu: \t(detected by 1, t=5252 jiffies, g=28973, q=28 ncpus=2)",
    ),
    (
        601,
        "[  600.658163] rcu: rcu_preempt kthread timer wakeup didn't happen for 5251 jiffies! g28973 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402",
    ),
    (
        601,
        "[  600.659037] rcu: \tPossible timer handling issue on cpu=0 timer-softirq=12477",
    ),
];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_watch_calls_the_rcu_timer_stall_a_wedge_at_its_timer_line() {
    let mut w = Watch::new(secs(300));
    let mut first = None;
    for (i, (t, l)) in WEDGED.iter().enumerate() {
        if let Some(x) = w.event(secs(*t), Some(l)) {
            first.get_or_insert((i, x));
        }
    }
    assert_eq!(first, Some((6, Wedge::TimerStall)));
    // it stays wedged
    assert_eq!(w.event(secs(602), None), Some(Wedge::TimerStall));
    assert!(Wedge::TimerStall.why().contains("lab infrastructure"));
}

#[test]
fn a_plain_rcu_stall_is_a_wedge_only_without_progress_after_it() {
    let stall = "[  100.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:";
    let mut w = Watch::new(secs(300));
    assert_eq!(w.event(secs(100), Some(">>> test b a::one")), None);
    assert_eq!(w.event(secs(130), Some(stall)), None);
    assert_eq!(w.event(secs(130) + STALL_GRACE - secs(1), None), None);
    assert_eq!(w.event(secs(130) + STALL_GRACE, None), Some(Wedge::Stall));
    // the guest got over it: a result came in time
    let mut w = Watch::new(secs(300));
    assert_eq!(w.event(secs(130), Some(stall)), None);
    assert_eq!(
        w.event(
            secs(150),
            Some("test result: ok. 1 passed; 0 failed; 0 ignored")
        ),
        None
    );
    assert_eq!(w.event(secs(130) + STALL_GRACE + secs(5), None), None);
}

#[test]
fn no_progress_past_the_limit_is_a_wedge_and_any_progress_resets_it() {
    let mut w = Watch::new(secs(300));
    // boot counts: no first test within the limit
    assert_eq!(w.event(secs(299), None), None);
    assert_eq!(w.event(secs(299), Some(">>> test b a::one")), None);
    // chatter (a hung-task report, the watchdog's line) is no progress
    for l in [
        "[  615.646054] INFO: task rcu_tasks_kthre:14 blocked for more than 30 seconds.",
        "vm-test: a::one still running after 240 s; blocked tasks:",
        "test a::one ... ok",
    ] {
        assert_eq!(w.event(secs(350), Some(l)), None);
    }
    assert_eq!(w.event(secs(400), Some("<<< exit 0")), None);
    assert_eq!(w.event(secs(699), None), None);
    assert_eq!(w.event(secs(700), None), Some(Wedge::NoProgress(secs(300))));
}

#[test]
fn a_normal_run_is_never_a_wedge() {
    let mut w = Watch::new(secs(300));
    let mut t = 0;
    for _ in 0..60 {
        for l in [
            ">>> test sriov-core-lab-tests churn::irq_counts",
            "running 1 test",
            "test churn::irq_counts ... Error: ipv4: Address already assigned.",
            "ok",
            "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 58 filtered out; finished in 21.10s",
            "<<< exit 0",
        ] {
            t += 40;
            assert_eq!(w.event(secs(t), None), None);
            assert_eq!(w.event(secs(t), Some(l)), None, "{l}");
        }
    }
}

/// Feed `lines` to a fresh tally.
fn tally(lines: &[&str]) -> Tally {
    let mut t = Tally::default();
    for l in lines {
        t.line(l);
    }
    t
}

const PASS: &str = "test result: ok. 1 passed; 0 failed; 0 ignored";
const FAIL: &str = "test result: FAILED. 0 passed; 1 failed; 0 ignored";

#[test]
fn resume_re_runs_the_wedged_test_once_then_counts_it_failed() {
    // tests 0..5; a VM from 1 began 1 and 2, wedged in 2
    let t = tally(&[
        ">>> test b t1",
        PASS,
        "<<< exit 0",
        ">>> test b t2",
        "running 1 test",
    ]);
    assert_eq!(
        resume(1, 5, &t, &[], 2),
        Resume {
            during: Some((2, Fate::Rerun)),
            begun: 3,
            next: Some(2),
            exhausted: false
        }
    );
    // the same test wedged an earlier VM: failed, on with the next
    assert_eq!(
        resume(1, 5, &t, &[2], 1),
        Resume {
            during: Some((2, Fate::Failed("it wedged the VM twice"))),
            begun: 3,
            next: Some(3),
            exhausted: false
        }
    );
    // no restart left: failed, and no next VM
    let r = resume(1, 5, &t, &[], 0);
    assert_eq!(
        r.during,
        Some((
            2,
            Fate::Failed("it wedged the VM and no VM restart was left")
        ))
    );
    assert_eq!((r.next, r.exhausted), (None, true));
}

#[test]
fn resume_never_re_runs_a_test_with_a_result_or_a_verdict() {
    // FAILED given, no result line yet
    let t = tally(&[">>> test b t0", "test t0 ... FAILED"]);
    assert_eq!(
        resume(0, 3, &t, &[], 2),
        Resume {
            during: Some((0, Fate::Verdict(false))),
            begun: 1,
            next: Some(1),
            exhausted: false
        }
    );
    // `ok` after the test's own output
    let t = tally(&[">>> test b t0", "test t0 ... some output", "ok"]);
    assert_eq!(
        resume(0, 3, &t, &[], 2).during,
        Some((0, Fate::Verdict(true)))
    );
    // result printed, hung on the way out
    let t = tally(&[">>> test b t0", FAIL]);
    assert_eq!(resume(0, 3, &t, &[], 2).during, Some((0, Fate::Counted)));
    // ... and it was the last: nothing left to run, no restart
    let t = tally(&[">>> test b t2", PASS]);
    assert_eq!(
        resume(2, 3, &t, &[], 2),
        Resume {
            during: Some((2, Fate::Counted)),
            begun: 3,
            next: None,
            exhausted: false
        }
    );
}

#[test]
fn resume_between_tests_or_at_boot_goes_on_with_the_next() {
    let t = tally(&[">>> test b t0", PASS, "<<< exit 0"]);
    assert_eq!(
        resume(0, 3, &t, &[], 2),
        Resume {
            during: None,
            begun: 1,
            next: Some(1),
            exhausted: false
        }
    );
    assert_eq!(resume(1, 3, &tally(&[]), &[], 1).next, Some(1));
    assert!(resume(1, 3, &tally(&[]), &[], 0).exhausted);
}

/// A run of `all` over VMs that each see `lines` and wedge unless
/// they end with `<<< exit` of the last test: the `run` loop without
/// a VM.
fn run_through(all: usize, vms: &[&[&str]]) -> (Totals, usize) {
    let mut totals = Totals::default();
    let mut wedged = Vec::new();
    let mut from = 0;
    for (k, lines) in vms.iter().enumerate() {
        let t = tally(lines);
        totals.add(&t);
        if k == vms.len() - 1 {
            break;
        }
        let r = resume(from, all, &t, &wedged, 2 - totals.restarts.len());
        if let Some((i, f)) = &r.during {
            totals.charge(&format!("t{i}"), f, "why");
            if *f == Fate::Rerun {
                wedged.push(*i);
            }
        }
        totals.restarts.push(format!("wedge in VM {}", k + 1));
        from = r.next.unwrap();
    }
    (totals, from)
}

#[test]
fn the_tally_across_restarts_counts_each_test_once() {
    // t0 passes, t1 fails, t2 wedges; VM 2: t2 and t3 pass
    let (t, from) = run_through(
        4,
        &[
            &[
                ">>> test b t0",
                PASS,
                "<<< exit 0",
                ">>> test b t1",
                FAIL,
                "<<< exit 101",
                ">>> test b t2",
                "test t2 ... [ 1.0] rcu: INFO: rcu_preempt detected stalls",
            ],
            &[
                ">>> test b t2",
                PASS,
                "<<< exit 0",
                ">>> test b t3",
                PASS,
                "<<< exit 0",
            ],
        ],
    );
    assert_eq!(from, 2, "resumed at the wedged test, not the failed one");
    assert_eq!((t.passed, t.failed, t.restarts.len()), (3, 1, 1));
    assert!(t.broken.is_empty(), "{:?}", t.broken);
}

#[test]
fn a_test_that_wedges_twice_counts_failed_and_the_rest_still_run() {
    let (t, from) = run_through(
        3,
        &[
            &[">>> test b t0", PASS, "<<< exit 0", ">>> test b t1"],
            &[">>> test b t1"],
            &[">>> test b t2", PASS, "<<< exit 0"],
        ],
    );
    assert_eq!(from, 2);
    assert_eq!((t.passed, t.failed, t.restarts.len()), (2, 1, 2));
    assert_eq!(t.broken, vec!["t1 (it wedged the VM twice: why)"]);
}

#[test]
fn the_restart_lines_say_what_runs_next() {
    let all = tests(&["a", "b", "c"]);
    assert_eq!(what_next(&all, 1, true), "re-running b and the 1 after it");
    assert_eq!(what_next(&all, 2, true), "re-running c and none after it");
    assert_eq!(what_next(&all, 1, false), "running the 2 after it");
    assert_eq!(restart_note(&[]), "");
    assert_eq!(
        restart_note(&["wedge during a".into()]),
        " (1 VM restart: wedge during a)"
    );
    assert_eq!(
        restart_note(&["wedge during a".into(), "wedge during b".into()]),
        " (2 VM restarts: wedge during a, wedge during b)"
    );
}

#[test]
fn streams_of_a_wedged_vm_are_set_aside_and_back_the_later_ones_win() {
    let d = scratch("aside");
    let (out, aside) = (d.join("out"), d.join("aside"));
    std::fs::create_dir_all(&out).unwrap();
    // VM 1 kept a and b (b by the test it wedged in)
    std::fs::write(out.join("a.ndjson"), "vm1").unwrap();
    std::fs::write(out.join("b.ndjson"), "vm1").unwrap();
    assert_eq!(move_streams(&out, &aside, false).unwrap(), 2);
    assert!(kept_streams(&out).unwrap().is_empty());
    // VM 2 (empty /out) re-ran b and ran c
    std::fs::write(out.join("b.ndjson"), "vm2").unwrap();
    std::fs::write(out.join("c.ndjson"), "vm2").unwrap();
    assert_eq!(move_streams(&aside, &out, true).unwrap(), 1);
    let text = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
    assert_eq!(
        (text("a.ndjson"), text("b.ndjson"), text("c.ndjson")),
        ("vm1".into(), "vm2".into(), "vm2".into())
    );
    // nothing set aside: nothing moves
    assert_eq!(move_streams(&d.join("none"), &out, true).unwrap(), 0);
}

#[test]
fn tests_are_dealt_longest_first_to_the_least_loaded_vm_and_none_is_lost() {
    let t = |n: &str| ("bin".to_string(), n.to_string());
    let tests = vec![
        t("a::one"),
        t("agent::fifty_scrapes_a_second_for_a_minute"),
        t("b::two"),
        t("redteam_bind::a_numvfs_text_changed_after_the_check_x"),
        t("c::three"),
    ];
    let vms = super::vms::deal(&tests, 2);
    let names = |v: &[(String, String)]| v.iter().map(|x| x.1.clone()).collect::<Vec<_>>();
    // the two long ones apart; the short ones to whichever has less
    assert_eq!(
        names(&vms[0]),
        ["agent::fifty_scrapes_a_second_for_a_minute", "b::two"]
    );
    assert_eq!(
        names(&vms[1]),
        [
            "redteam_bind::a_numvfs_text_changed_after_the_check_x",
            "a::one",
            "c::three"
        ]
    );
    // one VM: everything, the long ones first
    assert_eq!(super::vms::deal(&tests, 1)[0].len(), 5);
    // more VMs than tests: the extra ones get none
    let many = super::vms::deal(&tests[..1], 3);
    assert_eq!(many.iter().map(Vec::len).sum::<usize>(), 1);
}
