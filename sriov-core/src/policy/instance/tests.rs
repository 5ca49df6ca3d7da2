//! Claims, their refusals and their release, in temporary directories.
use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use super::*;

/// A pid no process has (above any `pid_max`).
const DEAD_PID: u32 = i32::MAX as u32;

fn paths(d: &tempfile::TempDir) -> Paths {
    Paths {
        run_dir: d.path().join("run"),
        pin_dir: d.path().join("bpf").join("sriov-top"),
    }
}

fn owner(p: &Paths, file: &str, persist: bool) -> Owner {
    Owner::new(Path::new(file), Mode::Enforce, persist, p)
}

/// What `pin_maps` would leave: a pin dir with a map in it.
fn fake_pins(p: &Paths) {
    fs::create_dir_all(&p.pin_dir).unwrap();
    fs::write(p.pin_dir.join("POLICY_CONF"), "").unwrap();
}

/// The record an owner that is gone left behind.
fn dead_record(p: &Paths, persist: bool) {
    fs::create_dir_all(&p.run_dir).unwrap();
    let mut o = owner(p, "/etc/old.toml", persist);
    o.pid = DEAD_PID;
    write_record(p, &o).unwrap();
}

#[test]
fn a_claim_writes_the_record_and_holds_the_lock() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    let c = claim(&p, owner(&p, "/etc/p.toml", false)).unwrap();
    let r = read_record(&p).unwrap().unwrap();
    assert_eq!(r.pid, std::process::id());
    assert_eq!(r.file, Path::new("/etc/p.toml"));
    assert_eq!(r.mode, Mode::Enforce);
    assert!(!r.persist);
    assert_eq!(r.pin_dir, p.pin_dir);
    assert!(r.started_unix > 1_600_000_000, "{r:?}");
    let mode = fs::metadata(p.record()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let seen = observe(&p).unwrap();
    assert_eq!(seen.holder, Some(std::process::id()), "{seen:?}");
    assert_eq!(seen.state(), State::Running);
    drop(c);
}

#[test]
fn a_second_claim_is_refused_naming_the_owner_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    let first = claim(&p, owner(&p, "/etc/first.toml", false)).unwrap();
    fake_pins(&p);
    let e = claim(&p, owner(&p, "/etc/second.toml", true)).unwrap_err();
    let me = std::process::id();
    match &e {
        Error::PolicyOwned {
            unload: false,
            pid,
            file,
            ..
        } => {
            assert_eq!(*pid, Some(me));
            assert_eq!(file.as_deref(), Some(Path::new("/etc/first.toml")));
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&format!("pid {me}")), "{msg}");
    assert!(msg.contains("/etc/first.toml"), "{msg}");
    assert!(msg.contains(&format!("kill -TERM {me}")), "{msg}");
    assert_eq!(e.errno(), Some(libc::EWOULDBLOCK));
    // the first one's record and pins are untouched
    assert_eq!(
        read_record(&p).unwrap().unwrap().file,
        Path::new("/etc/first.toml")
    );
    assert!(p.pin_dir.join("POLICY_CONF").exists());
    drop(first);
}

#[test]
fn the_stale_pins_of_a_dead_owner_are_removed_and_the_claim_taken_over() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    dead_record(&p, false);
    fake_pins(&p);
    assert_eq!(observe(&p).unwrap().state(), State::Stale);
    let mut c = claim(&p, owner(&p, "/etc/new.toml", false)).unwrap();
    let w = c.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains(&format!("pid {DEAD_PID}")), "{w:?}");
    assert!(w[0].contains("/etc/old.toml"), "{w:?}");
    assert!(!p.pin_dir.exists(), "the stale pins are gone");
    let r = read_record(&p).unwrap().unwrap();
    assert_eq!(r.pid, std::process::id());
    assert_eq!(r.file, Path::new("/etc/new.toml"));
    drop(c);
}

#[test]
fn a_persisted_policy_without_owner_refuses_a_claim() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    dead_record(&p, true);
    fake_pins(&p);
    fs::create_dir(p.links()).unwrap();
    assert_eq!(observe(&p).unwrap().state(), State::Persisted);
    let e = claim(&p, owner(&p, "/etc/new.toml", false)).unwrap_err();
    assert!(
        matches!(&e, Error::PolicyPersisted { file: Some(f), .. } if f == Path::new("/etc/old.toml")),
        "{e:?}"
    );
    assert!(e.to_string().contains("sriov policy unload"), "{e}");
    // nothing touched
    assert!(p.links().exists() && p.pin_dir.join("POLICY_CONF").exists());
    assert_eq!(read_record(&p).unwrap().unwrap().pid, DEAD_PID);
}

#[test]
fn dropping_the_claim_removes_its_pins_and_record_and_frees_the_lock() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    let c = claim(&p, owner(&p, "/etc/p.toml", false)).unwrap();
    fake_pins(&p);
    drop(c);
    assert!(!p.record().exists(), "record removed");
    assert!(!p.pin_dir.exists(), "pins removed");
    let seen = observe(&p).unwrap();
    assert_eq!((seen.holder, seen.state()), (None, State::None));
    // free for the next one
    drop(claim(&p, owner(&p, "/etc/q.toml", false)).unwrap());
}

#[test]
fn a_kept_claim_leaves_a_persisted_policy_that_unload_removes() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    let c = claim(&p, owner(&p, "/etc/p.toml", false)).unwrap();
    fake_pins(&p);
    fs::create_dir(p.links()).unwrap();
    c.keep();
    let seen = observe(&p).unwrap();
    assert_eq!(seen.state(), State::Persisted, "{seen:?}");
    assert!(seen.record.as_ref().unwrap().persist, "marked persist");
    let u = begin_unload(&p).unwrap();
    assert!(u.pins && u.links);
    // a load meanwhile is refused: the unload holds the lock
    assert!(matches!(
        claim(&p, owner(&p, "/etc/q.toml", false)),
        Err(Error::PolicyOwned { .. })
    ));
    u.finish().unwrap();
    assert!(!p.pin_dir.exists() && !p.record().exists());
    assert_eq!(observe(&p).unwrap().state(), State::None);
}

#[test]
fn unload_is_refused_while_the_owner_runs() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    let c = claim(&p, owner(&p, "/etc/p.toml", true)).unwrap();
    fake_pins(&p);
    let Err(e) = begin_unload(&p) else {
        panic!("unload went ahead")
    };
    let me = std::process::id();
    assert!(
        matches!(&e, Error::PolicyOwned { unload: true, pid: Some(pid), .. } if *pid == me),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("kill -TERM {me}")), "{e}");
    assert!(p.pin_dir.exists() && p.record().exists());
    drop(c);
}

#[test]
fn the_lock_holder_is_read_from_proc_locks() {
    let text = "\
1: POSIX  ADVISORY  WRITE 77 00:1a:99 0 EOF
2: FLOCK  ADVISORY  WRITE 1234 fe:01:5333021 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4321 00:1a:42 0 EOF
3: FLOCK  ADVISORY  WRITE 555 00:1a:42 0 EOF
";
    assert_eq!(parse_lock_holder(text, 0xfe, 1, 5_333_021), Some(1234));
    assert_eq!(
        parse_lock_holder(text, 0, 0x1a, 42),
        Some(555),
        "not the waiter"
    );
    assert_eq!(
        parse_lock_holder(text, 0, 0x1a, 99),
        None,
        "POSIX locks are not ours"
    );
    assert_eq!(parse_lock_holder(text, 0, 0x1b, 42), None);
    assert_eq!(parse_lock_holder("", 0, 0x1a, 42), None);
}

#[test]
fn a_record_that_is_not_json_counts_as_none() {
    let d = tempfile::tempdir().unwrap();
    let p = paths(&d);
    fs::create_dir_all(&p.run_dir).unwrap();
    fs::write(p.record(), "{ half").unwrap();
    assert_eq!(read_record(&p).unwrap(), None);
    let c = claim(&p, owner(&p, "/etc/p.toml", false)).unwrap();
    assert_eq!(
        read_record(&p).unwrap().unwrap().file,
        Path::new("/etc/p.toml")
    );
    drop(c);
}
