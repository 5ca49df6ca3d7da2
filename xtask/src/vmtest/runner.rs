//! One lab VM: boot, run its tests one after another, boot again after a
//! wedge and go on.
use super::*;

/// Boot `vm.kernel` in the VM's own lab directory and run its tests
/// (booting it again after a wedge); prints `vm-test: N passed, M failed`.
pub(super) fn run_vm(
    o: &Options,
    vm: &VmPlan,
    bins: &[(String, PathBuf)],
    built: Duration,
) -> Result<Summary> {
    let kernel = vm.kernel;
    let dir = vm.dir();
    std::fs::create_dir_all(dir.path())?;
    let skipped = 0;
    let tests = &vm.tests;
    // a real Prometheus on the host for the agent's test
    let (prometheus, prometheus_error) = if tests
        .iter()
        .any(|(_, n)| n.contains(prom::NEEDS_PROMETHEUS))
    {
        match prom::Prometheus::start(dir.path()) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        }
    } else {
        (None, None)
    };
    // the VM's tests in order; each boot runs a tail of it
    let all: &[(String, String)] = tests;
    let mut injections: Vec<(Inject, String)> = Vec::new();
    for (kind, opt, pats) in [
        (Inject::Wedge, "--inject-wedge", &o.inject_wedge),
        (Inject::Hang, "--inject-hang", &o.inject_hang),
    ] {
        for p in pats {
            if !all.iter().any(|(_, n)| n.contains(p.as_str())) {
                bail!("{opt} {p}: no selected lab test has it in its name");
            }
            injections.push((kind, p.clone()));
        }
    }

    // what earlier VMs of this run leave: their streams, their consoles
    let aside = dir.path().join("streams-of-wedged-vms");
    let wedged_log = |k: usize| dir.path().join(format!("console-wedged-{k}.log"));
    let _ = std::fs::remove_dir_all(&aside);
    for k in 1..=MAX_RESTARTS + 1 {
        let _ = std::fs::remove_file(wedged_log(k));
    }
    let out_streams = dir.out().join("streams");

    let mut totals = Totals::default();
    // tests that wedged a VM (index in `all`)
    let mut wedged: Vec<usize> = Vec::new();
    let mut from = 0;
    let (out, last) = loop {
        let tail = &all[from..];
        let placed = place_injections(tail, &injections);
        let inject: Vec<(usize, Inject)> = placed.iter().map(|&(i, k, _)| (i, k)).collect();
        let script = script(tail, o.test_timeout, &inject);
        let run = lab::Run {
            job: lab::Job::Exec,
            cmd: Some(&script),
            bins,
            accel: o.accel,
            kernel,
            timeout: Duration::from_secs(o.timeout),
            verbose: o.verbose,
            agent_port: prometheus.as_ref().map(|p| p.agent_port),
            dir: &dir,
        };
        let mut tally = Tally::default();
        let mut watch = Watch::new(Duration::from_secs(o.test_timeout) + NO_PROGRESS_GRACE);
        let out = lab::boot_watched(
            &run,
            |line| {
                say!("{line}");
                tally.line(line);
            },
            |now, line| watch.event(now, line).map(|w| w.why()),
        )?;
        let vm = totals.restarts.len() + 1;
        say!(
            "vm-test: {} {} (ready after {})",
            if vm == 1 {
                format!("build {}, VM", util::secs(built))
            } else {
                format!("VM {vm}:")
            },
            util::secs(out.wall),
            out.ready_after
                .map(util::secs)
                .unwrap_or_else(|| "-".into())
        );
        totals.add(&tally);
        let (Some(wedge), Some(_)) = (watch.wedge.clone(), &out.stopped) else {
            break (out, tally);
        };
        let why = wedge.why();
        let r = resume(
            from,
            all.len(),
            &tally,
            &wedged,
            MAX_RESTARTS - totals.restarts.len(),
        );
        // the injections that fired in this VM are spent
        let mut spent: Vec<usize> = placed
            .iter()
            .filter(|&&(i, _, _)| from + i < r.begun)
            .map(|&(_, _, k)| k)
            .collect();
        spent.sort_unstable();
        for k in spent.into_iter().rev() {
            injections.remove(k);
        }
        let log = wedged_log(vm);
        let _ = std::fs::rename(dir.console_log(), &log);
        let place = match &r.during {
            Some((i, Fate::Failed(_))) if wedged.contains(i) => {
                format!("wedged again during {}", all[*i].1)
            }
            Some((i, Fate::Counted | Fate::Verdict(_))) => {
                format!("wedged during {} after its result", all[*i].1)
            }
            Some((i, _)) => format!("wedged during {}", all[*i].1),
            None if r.begun == 0 => "wedged before the first test".into(),
            None => format!("wedged after {}", all[r.begun - 1].1),
        };
        if let Some((i, fate)) = &r.during {
            totals.charge(&all[*i].1, fate, &why);
            if *fate == Fate::Rerun {
                wedged.push(*i);
            }
        }
        let charged = match &r.during {
            Some((i, Fate::Failed(reason))) => {
                format!("; {} counted as failed ({reason})", all[*i].1)
            }
            _ => String::new(),
        };
        let Some(next) = r.next else {
            if r.exhausted {
                let not_run = match all.len() - r.begun {
                    0 => String::new(),
                    n if r.during.is_some() => format!("; the {n} after it did not run"),
                    n => format!("; the {n} remaining did not run"),
                };
                say!(
                    "vm-test: the VM {place} ({why}){charged}; no VM restart left ({MAX_RESTARTS} \
                     done){not_run} (console: {})",
                    log.display()
                );
            } else {
                say!(
                    "vm-test: the VM {place} ({why}){charged}; no test left to run (console: {})",
                    log.display()
                );
            }
            break (out, tally);
        };
        // the streams this VM kept (the next one empties /out); a test run
        // again replaces its own
        move_streams(&out_streams, &aside, false)?;
        prom::set_aside(&dir.out(), &aside)?;
        totals.restarts.push(match &r.during {
            Some((i, _)) => format!("wedge during {}", all[*i].1),
            None if r.begun == 0 => "wedge at boot".into(),
            None => format!("wedge after {}", all[r.begun - 1].1),
        });
        let rerun = r.during.as_ref().is_some_and(|d| d.1 == Fate::Rerun);
        say!(
            "vm-test: the VM {place} ({why}){charged}; restarted, {} (console of the wedged VM: {})",
            what_next(all, next, rerun),
            log.display()
        );
        from = next;
    };
    for b in &totals.broken {
        say!("vm-test: {b}");
    }
    // the streams the tests kept, of every VM: one result each (none
    // kept, none added)
    move_streams(&aside, &out_streams, true)?;
    let streams = kept_streams(&out_streams)?;
    let (sp, sf) = check_streams(
        Path::new(PYTHON),
        &util::workspace_root().join("docs").join("schema"),
        &streams,
    );
    let mut failures = totals.named_failures();
    let (mut passed, mut failed) = (totals.passed + sp, totals.failed + sf.len() as u32);
    failures.extend(sf);
    prom::take_back(&aside, &dir.out())?;
    if let Some(p) = &prometheus {
        let (pp, pf) = p.check(&dir.out());
        passed += pp;
        failed += pf.len() as u32;
        failures.extend(pf);
    }
    if let Some(e) = &prometheus_error {
        say!("test prometheus::agent::start ... FAILED\n    {e}");
        failed += 1;
        failures.push("prometheus::agent::start".into());
    }
    let note = restart_note(&totals.restarts);
    let which = if vm.of > 1 {
        format!(" (VM {} of {})", vm.shard, vm.of)
    } else {
        String::new()
    };
    if let Some(f) = out.failure.as_deref()
        && out.stopped.is_none()
    {
        say!(
            "vm-test: {passed} passed, {failed} failed, {skipped} skipped on {kernel}{which}{note}"
        );
        let during = last
            .current
            .map(|c| format!(" during test {}", c.name))
            .unwrap_or_default();
        bail!("the lab VM failed{during}: {f}");
    }
    let expected = all.len() as u32 + streams.len() as u32;
    if passed + failed < expected {
        say!(
            "vm-test: {} of {expected} tests gave no result",
            expected - passed - failed
        );
        failures.push(format!(
            "{} test(s) gave no result",
            expected - passed - failed
        ));
        failed = expected - passed;
    }
    say!("vm-test: {passed} passed, {failed} failed, {skipped} skipped on {kernel}{which}{note}");
    Ok(Summary {
        passed,
        failed,
        skipped,
        // a VM stopped for a wedge has no exit code: what counts then is
        // that every test gave a result (checked just above)
        ok: failed == 0 && (out.exit_code == Some(0) || out.stopped.is_some()),
        restarts: totals.restarts,
        failures,
    })
}
