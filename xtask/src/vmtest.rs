//! `cargo xtask vm-test`: build the integration tests that need root and a
//! real SR-IOV kernel (`sriov-core/tests/lab`), run them inside the lab and
//! end with `N passed, M failed`.
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use std::io::BufRead as _;

use crate::{lab, util};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  cargo xtask vm-test\n  cargo xtask vm-test irq_counter")]
pub struct Options {
    /// Only run lab tests whose name contains FILTER.
    filter: Option<String>,
    /// Accelerator (default: as `cargo xtask lab`).
    #[arg(long, value_enum)]
    accel: Option<lab::Accel>,
    /// Hard timeout for the VM, in seconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_S)]
    timeout: u64,
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
            verbose: false,
        }
    }
}

const DEFAULT_TIMEOUT_S: u64 = 900;

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

/// Build, boot, run; prints the `vm-test: N passed, M failed` line.
pub fn run(o: Options) -> Result<Summary> {
    let t0 = Instant::now();
    let mut bins = Vec::new();
    let mut script = String::from("set -u\nrc=0\n");
    for (package, target) in LAB_TEST_TARGETS {
        let exe = build_test(package, target)?;
        let name = format!("{package}-{target}-tests");
        script.push_str(&format!(
            "echo '>>> {name}'\n{name} --ignored --test-threads=1 --color never {} || rc=1\n",
            o.filter
                .as_deref()
                .map(|f| format!("'{}'", f.replace('\'', "")))
                .unwrap_or_default()
        ));
        bins.push((name, exe));
    }
    bins.extend(lab::build_project_bins()?);
    script.push_str("exit $rc\n");
    let built = t0.elapsed();

    let run = lab::Run {
        job: lab::Job::Exec,
        cmd: Some(&script),
        bins: &bins,
        accel: o.accel,
        timeout: Duration::from_secs(o.timeout),
        verbose: o.verbose,
    };
    let (mut passed, mut failed, mut results) = (0, 0, 0);
    let out = lab::boot(&run, |line| {
        println!("{line}");
        if let Some((p, f)) = parse_result(line) {
            passed += p;
            failed += f;
            results += 1;
        }
    })?;
    println!(
        "vm-test: build {}, VM {} (ready after {})",
        util::secs(built),
        util::secs(out.wall),
        out.ready_after
            .map(util::secs)
            .unwrap_or_else(|| "-".into())
    );
    if let Some(f) = out.failure {
        println!("vm-test: {passed} passed, {failed} failed");
        bail!("the lab VM failed: {f}");
    }
    if results < LAB_TEST_TARGETS.len() {
        failed += 1;
        eprintln!("vm-test: a test binary crashed or printed no result line");
    }
    println!("vm-test: {passed} passed, {failed} failed");
    if passed + failed == 0 {
        bail!("no lab test ran");
    }
    Ok(Summary {
        passed,
        failed,
        ok: failed == 0 && out.exit_code == Some(0),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_result;

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
}
