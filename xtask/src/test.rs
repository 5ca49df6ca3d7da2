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

/// Run `cargo test --workspace`, streaming its output; returns (passed, failed).
fn host_tests() -> Result<(u32, u32, bool)> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--workspace"])
        .current_dir(util::workspace_root())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| util::display(&cmd))?;
    let (mut passed, mut failed) = (0, 0);
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = vmtest::parse_result(&line) {
            passed += p;
            failed += f;
        }
    }
    let ok = child.wait()?.success();
    Ok((passed, failed, ok))
}

pub fn run_test(o: Options) -> Result<u8> {
    let t0 = Instant::now();
    let (hp, hf, host_ok) = host_tests()?;
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
                (r.passed, r.failed, r.ok)
            }
            Err(e) => {
                eprintln!("error: lab tests: {e:#}");
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
            ..Default::default()
        }) {
            Ok(0) => (fuzz::TARGETS.len() as u32, 0),
            Ok(_) => (0, 1),
            Err(e) => {
                eprintln!("error: fuzzing: {e:#}");
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
