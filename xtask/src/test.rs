//! `cargo xtask test`: every test behind one command: `cargo test
//! --workspace` on the host, then `cargo xtask vm-test --kernel all` in the
//! lab (6.12, then 6.1). Ends with one `N passed, M failed, K skipped` line
//! over both.
use std::{
    io::BufRead as _,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{fuzz, util, vmtest};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Skip the lab (host tests only).
    #[arg(long)]
    host_only: bool,
    /// Seconds per fuzz target (0: skip fuzzing).
    #[arg(long, default_value_t = 20)]
    fuzz_seconds: u64,
}

/// Run `cargo test --workspace`, streaming its output; returns (passed,
/// failed, cargo's success), and pushes the failed tests' names.
fn host_tests(failures: &mut Vec<String>) -> Result<(u32, u32, bool)> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--workspace"])
        .current_dir(util::workspace_root())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| util::display(&cmd))?;
    let (mut passed, mut failed) = (0, 0);
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(name) = failed_test(&line) {
            failures.push(format!("[host] {name}"));
        }
        if let Some((p, f)) = vmtest::parse_result(&line) {
            passed += p;
            failed += f;
        }
    }
    let ok = child.wait()?.success();
    Ok((passed, failed, ok))
}

/// `NAME` of libtest's `test NAME ... FAILED` line.
fn failed_test(line: &str) -> Option<&str> {
    line.trim_end()
        .strip_prefix("test ")?
        .strip_suffix(" ... FAILED")
}

pub fn run_test(o: Options) -> Result<u8> {
    let t0 = Instant::now();
    // every failure by name, printed again at the very end: CI shows the
    // end of the output
    let mut failures = Vec::new();
    let (hp, hf, host_ok) = host_tests(&mut failures)?;
    if !host_ok && hf == 0 {
        failures.push("[host] cargo test --workspace failed (a build error?)".into());
    }
    let th = t0.elapsed();
    println!("host: {hp} passed, {hf} failed in {}", util::secs(th));
    // the lab VM restarts after wedges (lab infrastructure), for the summary
    let mut restarts = Vec::new();
    let mut skipped = 0;
    // the fuzz targets build beside the lab, on what its VMs leave idle
    let fuzz_log = util::target_dir().join("fuzz-build.log");
    let mut fuzz_build = (o.fuzz_seconds > 0 && util::which("cargo-fuzz").is_some())
        .then(|| fuzz::start_background_build(&fuzz_log))
        .and_then(|r| {
            r.map_err(|e| eprintln!("note: the fuzz targets are built after the lab ({e:#})"))
                .ok()
        });
    let (lp, lf, lab_ok) = if o.host_only {
        (0, 0, true)
    } else {
        // the lab suite on every guest kernel (6.12, then 6.1)
        match vmtest::run(vmtest::Options::on(vmtest::KernelChoice::All)) {
            Ok(r) => {
                restarts = r.restarts;
                skipped = r.skipped;
                failures.extend(r.failures);
                if !r.ok && r.failed == 0 {
                    failures.push("[lab] a guest exited with an error".into());
                }
                (r.passed, r.failed, r.ok)
            }
            Err(e) => {
                eprintln!("error: lab tests: {e:#}");
                failures.push(format!("[lab] {e:#}"));
                (0, 1, false)
            }
        }
    };
    if let Some(b) = fuzz_build.as_mut() {
        // what did not build is built (and reported) by the runs below
        match b.wait() {
            Ok(s) if s.success() => println!("fuzz: targets built beside the lab"),
            _ => println!(
                "fuzz: the background build did not finish (log: {}); building again",
                fuzz_log.display()
            ),
        }
    }
    // fuzz smoke: each target for a while; a crash counts as a failure
    let (fp, ff) = if o.fuzz_seconds == 0 {
        (0, 0)
    } else {
        match fuzz::run_fuzz(fuzz::Options {
            seconds: o.fuzz_seconds,
            quiet: true,
            ..Default::default()
        }) {
            Ok(0) => (fuzz::TARGETS.len() as u32, 0),
            Ok(_) => {
                failures.push("[fuzz] a target crashed (see its lines above)".into());
                (0, 1)
            }
            Err(e) => {
                eprintln!("error: fuzzing: {e:#}");
                failures.push(format!("[fuzz] {e:#}"));
                (0, 1)
            }
        }
    };
    let failed = hf + lf + ff + u32::from(!host_ok && hf == 0);
    let (hp, lp) = (hp + fp, lp);
    println!(
        "timing: host tests {}, total {}",
        util::secs(th),
        util::secs(t0.elapsed())
    );
    if !failures.is_empty() {
        println!("failed:");
        for f in &failures {
            println!("  {f}");
        }
    }
    println!(
        "all: {} passed, {failed} failed, {skipped} skipped{}",
        hp + lp,
        vmtest::restart_note(&restarts)
    );
    if hp + lp == 0 {
        bail!("no test ran");
    }
    Ok(if failed > 0 || !host_ok || !lab_ok {
        1
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::failed_test;

    #[test]
    fn a_failed_tests_name_is_read_from_libtests_line() {
        assert_eq!(
            failed_test("test policy::a_b ... FAILED"),
            Some("policy::a_b")
        );
        assert_eq!(failed_test("test policy::a_b ... ok"), None);
        assert_eq!(failed_test("test result: FAILED. 1 passed; 1 failed"), None);
    }
}
