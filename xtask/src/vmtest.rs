//! `cargo xtask vm-test`: build the integration tests that need root and a
//! real SR-IOV kernel (`sriov-core/tests/lab`), run them inside the lab and
//! end with `N passed, M failed`.
//!
//! The streams the tests keep (`guest::keep_stream`: `/out/streams/*.ndjson`
//! in the guest, `target/lab/out/streams` here) are validated line by line
//! after the VM ends, on the host, by the independent validator
//! (`docs/schema/validate.py`, Python's jsonschema): one
//! `schema::lab_stream::<name>` result per file, in the same tally.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use std::io::BufRead as _;

use crate::{lab, util};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  cargo xtask vm-test\n  cargo xtask vm-test irq_counter\n  cargo xtask vm-test --hazards kprobe --repeat 40 --test-timeout 60   # hunt the fentry/kprobe hang"
)]
pub struct Options {
    /// Only run lab tests whose name contains FILTER.
    filter: Option<String>,
    /// Accelerator (default: as `cargo xtask lab`).
    #[arg(long, value_enum)]
    accel: Option<lab::Accel>,
    /// Hard timeout for the VM, in seconds.
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            filter: None,
            accel: None,
            timeout: DEFAULT_TIMEOUT_S,
            test_timeout: DEFAULT_TEST_TIMEOUT_S,
            repeat: 1,
            hazards: false,
            verbose: false,
        }
    }
}

/// The whole lab run (about 60 tests of 10-80 s each under TCG).
const DEFAULT_TIMEOUT_S: u64 = 2700;
const DEFAULT_TEST_TIMEOUT_S: u64 = 240;

/// Marks the start of one test in the guest's output.
const TEST_MARK: &str = ">>> test ";

/// Integration test targets that run in the guest: (package, test target).
const LAB_TEST_TARGETS: &[(&str, &str)] = &[("sriov-core", "lab")];

/// `cargo test --no-run` for one target; returns the test executable.
fn build_test(package: &str, target: &str) -> Result<PathBuf> {
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
    /// No failure, and the guest reported exit code 0.
    pub ok: bool,
}

pub fn run_vm_test(o: Options) -> Result<u8> {
    let s = run(o)?;
    Ok(if s.ok { 0 } else { 1 })
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

/// The guest script: each test in its own process, under `timeout`, so a
/// hang or crash is charged to the test by name and the rest still run.
fn script(tests: &[(String, String)], timeout_s: u64, repeat: u32) -> String {
    // a watchdog per test: past the limit it dumps the blocked tasks to the
    // console (a test stuck in the kernel cannot be killed) and kills it
    let mut s = String::from(
        "set -u\nrc=0\n\
         echo 4 > /proc/sys/kernel/printk\n\
         echo 30 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null\n\
         one() {\n\
         \techo \"{mark}$1 $2\"\n\
         \t\"$1\" --ignored --exact \"$2\" --test-threads=1 --color never &\n\
         \tpid=$!\n\
         \t( sleep {timeout_s}; echo \"vm-test: $2 still running after {timeout_s} s; blocked tasks:\"; \
         echo 8 > /proc/sys/kernel/printk; echo w > /proc/sysrq-trigger; sleep 1; kill -9 $pid ) &\n\
         \twd=$!\n\
         \twait $pid\n\
         \ts=$?\n\
         \tkill $wd 2>/dev/null\n\
         \t[ $s -eq 0 ] || rc=1\n\
         \techo \"<<< exit $s\"\n\
         }\n",
    )
    .replace("{mark}", TEST_MARK)
    .replace("{timeout_s}", &timeout_s.to_string());
    for _ in 0..repeat {
        for (bin, name) in tests {
            s.push_str(&format!("one {bin} {name}\n"));
        }
    }
    s.push_str("exit $rc\n");
    s
}

/// Follows the guest's output: counts libtest results per test, and charges
/// a test that ended without one (crashed, killed at its timeout).
#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
    /// The test running now, and whether it printed its result line.
    current: Option<(String, bool)>,
    /// Tests that printed no result.
    broken: Vec<String>,
}

impl Tally {
    fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix(TEST_MARK) {
            self.current = Some((rest.rsplit(' ').next().unwrap_or(rest).to_string(), false));
        } else if let Some((p, f)) = parse_result(line) {
            self.passed += p;
            self.failed += f;
            if let Some((_, seen)) = &mut self.current {
                *seen = true;
            }
        } else if let Some(code) = line.strip_prefix("<<< exit ")
            && let Some((name, false)) = self.current.take()
        {
            self.failed += 1;
            self.broken
                .push(format!("{name} (exit {code}, no result line)"));
        }
    }
}

/// Debian's Python, the one `python3-jsonschema` installs into (as in
/// `sriov-core/tests/support/schema.rs`).
const PYTHON: &str = "/usr/bin/python3";

/// Prefix of the per-stream schema check names.
const STREAM_CHECK: &str = "schema::lab_stream::";

/// At most this many validator lines per failed stream on the console.
const REPORT_LINES: usize = 40;

/// The streams the guest kept: `*.ndjson` in `dir`, sorted by name.
fn kept_streams(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut v = Vec::new();
    for e in rd {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "ndjson") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Validate every line of one NDJSON file with `python validate.py schema
/// FILE`. `Err` is the report: the validator's `FILE:LINE: at /ptr: message`
/// lines, or why nothing could be checked (an empty file, no validator) —
/// never a pass.
fn check_stream(python: &Path, schema_dir: &Path, file: &Path) -> Result<(), String> {
    let fix =
        "Fix: cargo xtask setup   (as root; installs python3-jsonschema for /usr/bin/python3)";
    match std::fs::read_to_string(file) {
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
        Ok(t) if t.trim().is_empty() => {
            return Err(format!(
                "{}: empty: the test kept no line to validate",
                file.display()
            ));
        }
        Ok(_) => {}
    }
    let script = schema_dir.join("validate.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(schema_dir.join("events-v1.json"))
        .arg(file)
        .stdin(Stdio::null());
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run the schema validator `{}`: {e}\n{fix}",
            util::display(&cmd)
        )
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(format!("{}{}", stdout.trim_end(), stderr.trim_end())),
        _ => Err(format!(
            "the schema validator could not run ({}): {}{}\n{fix}",
            out.status,
            stderr.trim_end(),
            stdout.trim_end()
        )),
    }
}

/// Validate the kept streams; prints one libtest-like line per stream (a
/// failure with the validator's report) and returns (passed, failed).
fn check_streams(python: &Path, schema_dir: &Path, files: &[PathBuf]) -> (u32, u32) {
    if files.is_empty() {
        return (0, 0);
    }
    println!(
        "\nrunning {} schema checks of the kept streams ({} {} {})",
        files.len(),
        python.display(),
        schema_dir.join("validate.py").display(),
        schema_dir.join("events-v1.json").display()
    );
    let (mut passed, mut failed) = (0, 0);
    for f in files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match check_stream(python, schema_dir, f) {
            Ok(()) => {
                passed += 1;
                println!("test {STREAM_CHECK}{name} ... ok");
            }
            Err(report) => {
                failed += 1;
                println!("test {STREAM_CHECK}{name} ... FAILED");
                let lines: Vec<&str> = report.lines().collect();
                for l in lines.iter().take(REPORT_LINES) {
                    println!("    {l}");
                }
                if lines.len() > REPORT_LINES {
                    println!(
                        "    ... {} more lines (run the validator on {})",
                        lines.len() - REPORT_LINES,
                        f.display()
                    );
                }
            }
        }
    }
    println!(
        "schema checks: {} {passed} passed; {failed} failed",
        if failed == 0 { "ok." } else { "FAILED." }
    );
    (passed, failed)
}

/// Build, boot, run; prints the `vm-test: N passed, M failed` line.
pub fn run(o: Options) -> Result<Summary> {
    let t0 = Instant::now();
    let mut bins = Vec::new();
    let mut tests = Vec::new();
    for (package, target) in LAB_TEST_TARGETS {
        let exe = build_test(package, target)?;
        let name = format!("{package}-{target}-tests");
        for t in list_tests(&exe, o.filter.as_deref(), o.hazards)? {
            tests.push((name.clone(), t));
        }
        bins.push((name, exe));
    }
    if tests.is_empty() {
        bail!(
            "no lab test matches {:?}",
            o.filter.as_deref().unwrap_or("")
        );
    }
    bins.extend(lab::build_project_bins()?);
    let script = script(&tests, o.test_timeout, o.repeat);
    let built = t0.elapsed();

    let run = lab::Run {
        job: lab::Job::Exec,
        cmd: Some(&script),
        bins: &bins,
        accel: o.accel,
        timeout: Duration::from_secs(o.timeout),
        verbose: o.verbose,
    };
    let mut tally = Tally::default();
    let out = lab::boot(&run, |line| {
        println!("{line}");
        tally.line(line);
    })?;
    println!(
        "vm-test: build {}, VM {} (ready after {})",
        util::secs(built),
        util::secs(out.wall),
        out.ready_after
            .map(util::secs)
            .unwrap_or_else(|| "-".into())
    );
    for b in &tally.broken {
        eprintln!("vm-test: {b}");
    }
    // the streams the tests kept: one result each (none kept, none added)
    let streams = kept_streams(&lab::out_dir().join("streams"))?;
    let (sp, sf) = check_streams(
        Path::new(PYTHON),
        &util::workspace_root().join("docs").join("schema"),
        &streams,
    );
    let (passed, mut failed) = (tally.passed + sp, tally.failed + sf);
    if let Some(f) = out.failure {
        println!("vm-test: {passed} passed, {failed} failed");
        let during = tally
            .current
            .map(|(name, _)| format!(" during test {name}"))
            .unwrap_or_default();
        bail!("the lab VM failed{during}: {f}");
    }
    let expected = tests.len() as u32 * o.repeat + streams.len() as u32;
    if passed + failed < expected {
        eprintln!(
            "vm-test: {} of {expected} tests gave no result",
            expected - passed - failed
        );
        failed = expected - passed;
    }
    println!("vm-test: {passed} passed, {failed} failed");
    Ok(Summary {
        passed,
        failed,
        ok: failed == 0 && out.exit_code == Some(0),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{PYTHON, Tally, check_stream, check_streams, kept_streams, parse_result, script};

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
        assert_eq!(t.current.map(|c| c.0).as_deref(), Some("a::four"));
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
        assert_eq!(check_streams(Path::new(PYTHON), &d, &[f]), (0, 1));
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
            (1, 1)
        );
    }

    #[test]
    fn script_runs_each_test_alone_under_timeout_repeat_times() {
        let s = script(&[("b".into(), "m::t".into())], 30, 2);
        assert_eq!(s.matches("one b m::t\n").count(), 2, "{s}");
        assert!(s.contains("\"$1\" --ignored --exact \"$2\""), "{s}");
        assert!(s.contains("( sleep 30; "), "{s}");
        assert!(s.ends_with("exit $rc\n"));
    }
}
