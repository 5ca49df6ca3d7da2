//! `cargo xtask vm-test`: build the integration tests that need root and a
//! real SR-IOV kernel (`sriov-core/tests/lab`), run them inside the lab and
//! end with `N passed, M failed`.
//!
//! The streams the tests keep (`guest::keep_stream`: `/out/streams/*.ndjson`
//! in the guest, `target/lab/out/streams` here) are validated line by line
//! after the VM ends, on the host, by the independent validator
//! (`docs/schema/validate.py`, Python's jsonschema): one
//! `schema::lab_stream::<name>` result per file, in the same tally.
//!
//! A TCG guest now and then wedges: one vCPU's timer stops firing, the
//! kernel reports an RCU stall ("timer wakeup didn't happen", "Possible timer
//! handling issue on cpu=0") and every later test hangs. The host watches the
//! console ([`Watch`]): on that report, or when a test makes no progress long
//! after its time limit, it kills QEMU, boots a fresh VM and goes on from the
//! test that was running (run once more; a test that wedges the VM twice
//! counts as failed), at most [`MAX_RESTARTS`] times per run, saying so in the
//! summary. The streams of earlier VMs are set aside and validated with those
//! of the last one.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use std::io::BufRead as _;

use crate::{kernels::GuestKernel, lab, util};

/// `--kernel`: one guest kernel or all of them.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    #[value(name = "6.12")]
    V6_12,
    #[value(name = "6.1")]
    V6_1,
    All,
}

/// `--sabotage`: which deliberately broken build (`sriov-core` features
/// `sabotage-*`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    Decoder,
    Policy,
}

impl Sabotage {
    fn name(self) -> &'static str {
        match self {
            Sabotage::Decoder => "decoder",
            Sabotage::Policy => "policy",
        }
    }
}

impl KernelChoice {
    pub fn kernels(self) -> Vec<GuestKernel> {
        match self {
            KernelChoice::V6_12 => vec![GuestKernel::V6_12],
            KernelChoice::V6_1 => vec![GuestKernel::V6_1],
            KernelChoice::All => GuestKernel::ALL.to_vec(),
        }
    }
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  cargo xtask vm-test\n  cargo xtask vm-test irq_counter\n  cargo xtask vm-test --kernel all policy::\n  cargo xtask vm-test --sabotage policy redteam   # must fail: a broken build\n  cargo xtask vm-test --hazards kprobe --repeat 40 --test-timeout 60   # hunt the fentry/kprobe hang"
)]
pub struct Options {
    /// Only run lab tests whose name contains FILTER.
    filter: Option<String>,
    /// Accelerator (default: as `cargo xtask lab`).
    #[arg(long, value_enum)]
    accel: Option<lab::Accel>,
    /// Guest kernel(s): Debian's 6.12, bookworm's 6.1 LTS, or both (one VM
    /// boot each, the tests built once).
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: KernelChoice,
    /// Hard timeout for each VM, in seconds (a VM restarted after a wedge
    /// gets its own).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_S)]
    timeout: u64,
    /// Time limit for each test, in seconds; a test over it is killed and
    /// counted as failed.
    #[arg(long, default_value_t = DEFAULT_TEST_TIMEOUT_S)]
    test_timeout: u64,
    /// Also run the `hazard_` tests: known to hang the guest now and then
    /// (kept to reproduce it), so not part of the default run.
    #[arg(long)]
    hazards: bool,
    /// Run the selected tests this many times (hunting flaky tests).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Print the boot console too.
    #[arg(long, short)]
    verbose: bool,
    /// Run against a deliberately broken build (a sriov-core feature, never
    /// in a shipped build): `decoder` drops the size of VFIO DMA records,
    /// `policy` loads every policy in audit mode. Exit 0 when some test
    /// fails (the tests caught it), 1 when all pass (they did not).
    #[arg(long, value_enum)]
    sabotage: Option<Sabotage>,
    /// Debug (the VM-restart path): the first attempt of the first test
    /// whose name contains TEST prints a fake RCU stall report and hangs, as
    /// in a wedged guest. Once more per repetition of the option.
    #[arg(long, value_name = "TEST", hide = true)]
    inject_wedge: Vec<String>,
    /// Debug (the no-progress path): as --inject-wedge, but the test hangs
    /// silently past its time limit and its watchdog cannot kill it.
    #[arg(long, value_name = "TEST", hide = true)]
    inject_hang: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            filter: None,
            accel: None,
            kernel: KernelChoice::V6_12,
            timeout: DEFAULT_TIMEOUT_S,
            test_timeout: DEFAULT_TEST_TIMEOUT_S,
            repeat: 1,
            hazards: false,
            verbose: false,
            sabotage: None,
            inject_wedge: Vec::new(),
            inject_hang: Vec::new(),
        }
    }
}

impl Options {
    /// Every lab test on the `kernel` choice, with the defaults.
    pub fn on(kernel: KernelChoice) -> Self {
        Self {
            kernel,
            ..Self::default()
        }
    }
}

/// The whole lab run (about 60 tests of 10-80 s each under TCG).
const DEFAULT_TIMEOUT_S: u64 = 2700;
const DEFAULT_TEST_TIMEOUT_S: u64 = 240;

/// Marks the start of one test in the guest's output.
const TEST_MARK: &str = ">>> test ";

/// Marks the end of one test in the guest's output (with its exit status).
const EXIT_MARK: &str = "<<< exit ";

/// At most this many fresh VMs per run after wedged ones.
const MAX_RESTARTS: usize = 2;

/// How long past its time limit (where the in-guest watchdog kills it) a
/// test may go without a result or an exit before the guest counts as
/// wedged: a test stuck in the kernel cannot be killed, and none after it
/// would run.
const NO_PROGRESS_GRACE: Duration = Duration::from_secs(60);

/// After an RCU stall report that names no stopped timer, how long the
/// guest has to make test progress before it counts as wedged.
const STALL_GRACE: Duration = Duration::from_secs(60);

/// Integration test targets that run in the guest: (package, test target).
const LAB_TEST_TARGETS: &[(&str, &str)] = &[("sriov-core", "lab")];

/// `cargo test --no-run` for one target; returns the test executable.
fn build_test(package: &str, target: &str, extra: &[String]) -> Result<PathBuf> {
    let mut cmd = Command::new(env!("CARGO"));
    // --workspace: the same feature unification as `cargo test --workspace`,
    // so the host test build is reused rather than rebuilt
    cmd.args([
        "test",
        "--workspace",
        "--no-run",
        "--test",
        target,
        "--message-format=json-render-diagnostics",
    ])
    .args(extra)
    .current_dir(util::workspace_root())
    .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| util::display(&cmd))?;
    let mut exe = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let pkg_ok = msg["package_id"].as_str().is_some_and(|id| {
            id.contains(&format!("/{package}#"))
                || id.contains(&format!("{package}@"))
                || id.contains(&format!("{package} "))
        });
        if msg["reason"] == "compiler-artifact"
            && pkg_ok
            && msg["target"]["name"] == target
            && msg["profile"]["test"] == true
            && let Some(p) = msg["executable"].as_str()
        {
            exe = Some(PathBuf::from(p));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "building the lab tests failed: `{}` ({status})",
            util::display(&cmd)
        );
    }
    exe.with_context(|| format!("cargo built no test executable for {package} --test {target}"))
}

/// Parse libtest's `test result: ok. 2 passed; 0 failed; ...` line.
pub fn parse_result(line: &str) -> Option<(u32, u32)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let num = |word: &str| -> Option<u32> {
        rest.split(';').find_map(|part| {
            let mut it = part.split_whitespace().rev();
            (it.next()? == word)
                .then(|| it.next()?.parse().ok())
                .flatten()
        })
    };
    Some((num("passed")?, num("failed")?))
}

pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    /// Not run on this kernel, each with its reason printed.
    pub skipped: u32,
    /// No failure, and the guest reported exit code 0.
    pub ok: bool,
    /// One entry per VM restart after a wedge (`wedge during TEST`).
    pub restarts: Vec<String>,
}

/// ` (1 VM restart: wedge during X)` for a summary line; empty without
/// restarts.
pub fn restart_note(restarts: &[String]) -> String {
    match restarts.len() {
        0 => String::new(),
        1 => format!(" (1 VM restart: {})", restarts[0]),
        n => format!(" ({n} VM restarts: {})", restarts.join(", ")),
    }
}

pub fn run_vm_test(o: Options) -> Result<u8> {
    let sabotage = o.sabotage;
    let s = run(o)?;
    if let Some(x) = sabotage {
        // the build is broken on purpose: failures are what is wanted
        let caught = s.failed > 0;
        println!(
            "vm-test: sabotaged build ({}): {}",
            x.name(),
            if caught {
                format!("{} test(s) failed: the lab tests caught it", s.failed)
            } else {
                "every test passed: the lab tests did NOT catch it".into()
            }
        );
        // rebuilt without the feature by the next plain build
        return Ok(if caught { 0 } else { 1 });
    }
    Ok(if s.ok { 0 } else { 1 })
}

/// Every kernel of `o.kernel` in turn (one VM boot each; the tests are
/// built once); one summary over them. A kernel whose VM fails to run is a
/// failure in the summary and the next kernel still runs.
pub fn run(o: Options) -> Result<Summary> {
    let kernels = o.kernel.kernels();
    if kernels.len() == 1 {
        return run_on(&o, kernels[0]);
    }
    let mut all = Summary {
        passed: 0,
        failed: 0,
        skipped: 0,
        ok: true,
        restarts: Vec::new(),
    };
    let mut lines = Vec::new();
    for k in kernels {
        println!("vm-test: === guest kernel {k} ===");
        match run_on(&o, k) {
            Ok(s) => {
                lines.push(format!(
                    "vm-test: {k}: {} passed, {} failed, {} skipped{}",
                    s.passed,
                    s.failed,
                    s.skipped,
                    restart_note(&s.restarts)
                ));
                all.passed += s.passed;
                all.failed += s.failed;
                all.skipped += s.skipped;
                all.ok &= s.ok;
                all.restarts
                    .extend(s.restarts.into_iter().map(|r| format!("{k}: {r}")));
            }
            Err(e) => {
                println!("vm-test: {k}: the lab run failed: {e:#}");
                lines.push(format!("vm-test: {k}: the lab run failed: {e:#}"));
                all.failed += 1;
                all.ok = false;
            }
        }
    }
    for l in lines {
        println!("{l}");
    }
    println!(
        "vm-test: {} passed, {} failed, {} skipped{}",
        all.passed,
        all.failed,
        all.skipped,
        restart_note(&all.restarts)
    );
    Ok(all)
}

/// The `--ignored` tests of a libtest executable whose name contains
/// `filter`, as libtest lists them (`module::name`); `hazard_*` tests only
/// with `hazards`.
fn list_tests(exe: &Path, filter: Option<&str>, hazards: bool) -> Result<Vec<String>> {
    let out = Command::new(exe)
        .args(["--list", "--ignored", "--format", "terse"])
        .output()
        .with_context(|| format!("listing the tests of {}", exe.display()))?;
    if !out.status.success() {
        bail!("{} --list failed ({})", exe.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|n| filter.is_none_or(|f| n.contains(f)))
        .filter(|n| {
            hazards
                || !n
                    .rsplit("::")
                    .next()
                    .is_some_and(|t| t.starts_with("hazard_"))
        })
        .map(str::to_string)
        .collect())
}

mod script;
mod skips;
mod streams;
#[cfg(test)]
mod tests;
mod watch;

use script::*;
use streams::*;
mod prom;
use watch::*;

/// Build, boot `kernel`, run; prints the `vm-test: N passed, M failed` line.
fn run_on(o: &Options, kernel: GuestKernel) -> Result<Summary> {
    let t0 = Instant::now();
    let mut bins = Vec::new();
    let mut tests = Vec::new();
    let mut skipped = 0;
    let sabotage_args: Vec<String> = o
        .sabotage
        .map(|s| {
            vec![
                "--features".into(),
                format!("sriov-core/sabotage-{}", s.name()),
            ]
        })
        .unwrap_or_default();
    for (package, target) in LAB_TEST_TARGETS {
        let exe = build_test(package, target, &sabotage_args)?;
        let name = format!("{package}-{target}-tests");
        for t in list_tests(&exe, o.filter.as_deref(), o.hazards)? {
            match skips::why_skipped(kernel, &t) {
                Some(why) => {
                    println!("test {t} ... skipped on {kernel}: {why}");
                    skipped += 1;
                }
                None => tests.push((name.clone(), t)),
            }
        }
        bins.push((name, exe));
    }
    if tests.is_empty() && skipped > 0 {
        println!("vm-test: 0 passed, 0 failed, {skipped} skipped on {kernel}");
        return Ok(Summary {
            passed: 0,
            failed: 0,
            skipped,
            ok: true,
            restarts: Vec::new(),
        });
    }
    if tests.is_empty() {
        bail!(
            "no lab test matches {:?}",
            o.filter.as_deref().unwrap_or("")
        );
    }
    bins.extend(lab::build_project_bins_with(&sabotage_args)?);
    let built = t0.elapsed();
    // a real Prometheus on the host for the agent's test
    let (prometheus, prometheus_error) = if tests
        .iter()
        .any(|(_, n)| n.contains(prom::NEEDS_PROMETHEUS))
    {
        match prom::Prometheus::start(&lab::lab_dir()) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        }
    } else {
        (None, None)
    };
    // the run's tests in order; each VM runs a tail of it
    let all: Vec<(String, String)> = (0..o.repeat).flat_map(|_| tests.iter().cloned()).collect();
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
    let aside = lab::lab_dir().join("streams-of-wedged-vms");
    let wedged_log = |k: usize| lab::lab_dir().join(format!("console-wedged-{k}.log"));
    let _ = std::fs::remove_dir_all(&aside);
    for k in 1..=MAX_RESTARTS + 1 {
        let _ = std::fs::remove_file(wedged_log(k));
    }
    let out_streams = lab::out_dir().join("streams");

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
            bins: &bins,
            accel: o.accel,
            kernel,
            timeout: Duration::from_secs(o.timeout),
            verbose: o.verbose,
            agent_port: prometheus.as_ref().map(|p| p.agent_port),
        };
        let mut tally = Tally::default();
        let mut watch = Watch::new(Duration::from_secs(o.test_timeout) + NO_PROGRESS_GRACE);
        let out = lab::boot_watched(
            &run,
            |line| {
                println!("{line}");
                tally.line(line);
            },
            |now, line| watch.event(now, line).map(|w| w.why()),
        )?;
        let vm = totals.restarts.len() + 1;
        println!(
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
        let _ = std::fs::rename(lab::console_log(), &log);
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
                println!(
                    "vm-test: the VM {place} ({why}){charged}; no VM restart left ({MAX_RESTARTS} \
                     done){not_run} (console: {})",
                    log.display()
                );
            } else {
                println!(
                    "vm-test: the VM {place} ({why}){charged}; no test left to run (console: {})",
                    log.display()
                );
            }
            break (out, tally);
        };
        // the streams this VM kept (the next one empties /out); a test run
        // again replaces its own
        move_streams(&out_streams, &aside, false)?;
        prom::set_aside(&lab::out_dir(), &aside)?;
        totals.restarts.push(match &r.during {
            Some((i, _)) => format!("wedge during {}", all[*i].1),
            None if r.begun == 0 => "wedge at boot".into(),
            None => format!("wedge after {}", all[r.begun - 1].1),
        });
        let rerun = r.during.as_ref().is_some_and(|d| d.1 == Fate::Rerun);
        println!(
            "vm-test: the VM {place} ({why}){charged}; restarted, {} (console of the wedged VM: {})",
            what_next(&all, next, rerun),
            log.display()
        );
        from = next;
    };
    for b in &totals.broken {
        eprintln!("vm-test: {b}");
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
    let (mut passed, mut failed) = (totals.passed + sp, totals.failed + sf);
    prom::take_back(&aside, &lab::out_dir())?;
    if let Some(p) = &prometheus {
        let (pp, pf) = p.check(&lab::out_dir());
        passed += pp;
        failed += pf;
    }
    if let Some(e) = &prometheus_error {
        println!("test prometheus::agent::start ... FAILED\n    {e}");
        failed += 1;
    }
    let note = restart_note(&totals.restarts);
    if let Some(f) = out.failure.as_deref()
        && out.stopped.is_none()
    {
        println!("vm-test: {passed} passed, {failed} failed, {skipped} skipped on {kernel}{note}");
        let during = last
            .current
            .map(|c| format!(" during test {}", c.name))
            .unwrap_or_default();
        bail!("the lab VM failed{during}: {f}");
    }
    let expected = all.len() as u32 + streams.len() as u32;
    if passed + failed < expected {
        eprintln!(
            "vm-test: {} of {expected} tests gave no result",
            expected - passed - failed
        );
        failed = expected - passed;
    }
    println!("vm-test: {passed} passed, {failed} failed, {skipped} skipped on {kernel}{note}");
    Ok(Summary {
        passed,
        failed,
        skipped,
        // a VM stopped for a wedge has no exit code: what counts then is
        // that every test gave a result (checked just above)
        ok: failed == 0 && (out.exit_code == Some(0) || out.stopped.is_some()),
        restarts: totals.restarts,
    })
}
