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

thread_local! {
    /// `[6.1] ` while VMs run side by side: whose line it is.
    pub(crate) static PREFIX: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `println!`, each line after the prefix of the VM this thread runs.
macro_rules! say {
    ($($t:tt)*) => {{
        let text = format!($($t)*);
        $crate::vmtest::PREFIX.with(|p| {
            let p = p.borrow();
            for l in text.split('\n') {
                println!("{p}{l}");
            }
        });
    }};
}

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
    after_help = "Examples:\n  cargo xtask vm-test\n  cargo xtask vm-test irq_counter\n  cargo xtask vm-test --kernel all policy::\n  cargo xtask vm-test --kernel all --jobs 1   # one VM at a time\n  cargo xtask vm-test --sabotage policy redteam   # must fail: a broken build\n  cargo xtask vm-test --hazards kprobe --repeat 40 --test-timeout 60   # hunt the fentry/kprobe hang"
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
    /// Lab VMs at once. The tests of each kernel are dealt over
    /// ceil(JOBS / kernels) VMs; 1 runs them one kernel after the other in
    /// one VM each.
    #[arg(long, default_value_t = DEFAULT_JOBS, value_parser = clap::value_parser!(u32).range(1..=4))]
    jobs: u32,
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
            jobs: DEFAULT_JOBS,
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

/// Four VMs at once, two per kernel: one TCG VM keeps about a third of
/// this 2-core machine busy (its guest mostly sleeps in the kernel's SR-IOV
/// and RCU waits). Both kernels' suites took 955 s this way, against about
/// 2,600 s one VM after another.
const DEFAULT_JOBS: u32 = 4;

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

#[derive(Debug)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    /// Not run on this kernel, each with its reason printed.
    pub skipped: u32,
    /// No failure, and the guest reported exit code 0.
    pub ok: bool,
    /// One entry per VM restart after a wedge (`wedge during TEST`).
    pub restarts: Vec<String>,
    /// What failed, by name (`[6.1/2] policy::x`, or why a VM failed).
    pub failures: Vec<String>,
}

impl Summary {
    fn empty(skipped: u32) -> Self {
        Self {
            passed: 0,
            failed: 0,
            skipped,
            ok: true,
            restarts: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Add one VM's results (its restarts named after `label`, its
    /// failures after `failure_label`, if not empty).
    fn add(&mut self, s: &Summary, label: &str, failure_label: &str) {
        self.passed += s.passed;
        self.failed += s.failed;
        self.skipped += s.skipped;
        self.ok &= s.ok;
        self.restarts.extend(s.restarts.iter().map(|r| {
            if label.is_empty() {
                r.clone()
            } else {
                format!("{label}: {r}")
            }
        }));
        self.failures.extend(s.failures.iter().map(|r| {
            if failure_label.is_empty() {
                r.clone()
            } else {
                format!("[{failure_label}] {r}")
            }
        }));
    }
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

/// Every kernel of `o.kernel`, its tests dealt over `--jobs` VMs that run
/// side by side (one VM per kernel by default; the tests are built once);
/// one summary over them. A VM that fails to run is a failure in the
/// summary and the others still run.
pub fn run(o: Options) -> Result<Summary> {
    let t0 = Instant::now();
    let built = build(&o)?;
    let plan = plan(&o, &built);
    let built_after = t0.elapsed();
    let mut skipped_by_kernel: Vec<(GuestKernel, u32)> = Vec::new();
    for (k, (t, why)) in &built.skipped {
        say!("test {t} ... skipped on {k}: {why}");
        match skipped_by_kernel.iter_mut().find(|(x, _)| x == k) {
            Some((_, n)) => *n += 1,
            None => skipped_by_kernel.push((*k, 1)),
        }
    }
    if plan.is_empty() {
        if !built.skipped.is_empty() {
            let n = built.skipped.len() as u32;
            say!("vm-test: 0 passed, 0 failed, {n} skipped");
            return Ok(Summary::empty(n));
        }
        bail!(
            "no lab test matches {:?}",
            o.filter.as_deref().unwrap_or("")
        );
    }
    let side_by_side = plan.len() > 1 && o.jobs > 1;
    let results = run_plan(&o, &built, &plan, side_by_side, built_after);
    let mut all = Summary::empty(0);
    let mut lines = Vec::new();
    for k in o.kernel.kernels() {
        let skipped = skipped_by_kernel
            .iter()
            .find(|(x, _)| *x == k)
            .map_or(0, |(_, n)| *n);
        let mut ks = Summary::empty(skipped);
        let mut any = false;
        for (vm, r) in plan.iter().zip(&results) {
            if vm.kernel != k {
                continue;
            }
            any = true;
            match r {
                Ok(s) => ks.add(s, &vm.label(side_by_side), &vm.label(true)),
                Err(e) => {
                    lines.push(format!(
                        "vm-test: {}: the lab run failed: {e:#}",
                        vm.label(true)
                    ));
                    ks.failed += 1;
                    ks.ok = false;
                    ks.failures
                        .push(format!("[{}] the lab run failed: {e:#}", vm.label(true)));
                }
            }
        }
        if !any && skipped == 0 {
            continue;
        }
        lines.push(format!(
            "vm-test: {} passed, {} failed, {} skipped on {k}{}",
            ks.passed,
            ks.failed,
            ks.skipped,
            restart_note(&ks.restarts)
        ));
        all.add(&ks, "", "");
    }
    // one VM has said it all already
    if plan.len() > 1 {
        for l in lines {
            say!("{l}");
        }
    }
    if o.kernel.kernels().len() > 1 {
        say!(
            "vm-test: {} passed, {} failed, {} skipped{}",
            all.passed,
            all.failed,
            all.skipped,
            restart_note(&all.restarts)
        );
    }
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
mod runner;
mod vms;
use runner::run_vm;
use vms::{VmPlan, build, plan, run_plan};
use watch::*;
pub(crate) use watch::{Watch, Wedge};
