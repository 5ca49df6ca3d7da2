//! The streams the lab tests kept, validated on the host against
//! docs/schema/events-v1.json.
use super::*;
/// Move the `*.ndjson` of `from` into `to` (replacing files of the same
/// name unless `keep` — then those stay); returns how many moved.
pub(super) fn move_streams(from: &Path, to: &Path, keep: bool) -> Result<usize> {
    let files = kept_streams(from)?;
    if files.is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut n = 0;
    for f in files {
        let dst = to.join(f.file_name().expect("a file"));
        if keep && dst.exists() {
            continue;
        }
        std::fs::rename(&f, &dst)
            .with_context(|| format!("moving {} to {}", f.display(), dst.display()))?;
        n += 1;
    }
    Ok(n)
}

/// Debian's Python, the one `python3-jsonschema` installs into (as in
/// `sriov-core/tests/support/schema.rs`).
pub(super) const PYTHON: &str = "/usr/bin/python3";

/// Prefix of the per-stream schema check names.
pub(super) const STREAM_CHECK: &str = "schema::lab_stream::";

/// At most this many validator lines per failed stream on the console.
pub(super) const REPORT_LINES: usize = 40;

/// The streams the guest kept: `*.ndjson` in `dir`, sorted by name.
pub(super) fn kept_streams(dir: &Path) -> Result<Vec<PathBuf>> {
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
pub(super) fn check_stream(python: &Path, schema_dir: &Path, file: &Path) -> Result<(), String> {
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
/// (passed, names of the failed checks)
pub(super) fn check_streams(
    python: &Path,
    schema_dir: &Path,
    files: &[PathBuf],
) -> (u32, Vec<String>) {
    if files.is_empty() {
        return (0, Vec::new());
    }
    say!(
        "\nrunning {} schema checks of the kept streams ({} {} {})",
        files.len(),
        python.display(),
        schema_dir.join("validate.py").display(),
        schema_dir.join("events-v1.json").display()
    );
    let (mut passed, mut failed) = (0, Vec::new());
    for f in files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match check_stream(python, schema_dir, f) {
            Ok(()) => {
                passed += 1;
                say!("test {STREAM_CHECK}{name} ... ok");
            }
            Err(report) => {
                say!("test {STREAM_CHECK}{name} ... FAILED");
                failed.push(format!("{STREAM_CHECK}{name}"));
                let lines: Vec<&str> = report.lines().collect();
                for l in lines.iter().take(REPORT_LINES) {
                    say!("    {l}");
                }
                if lines.len() > REPORT_LINES {
                    say!(
                        "    ... {} more lines (run the validator on {})",
                        lines.len() - REPORT_LINES,
                        f.display()
                    );
                }
            }
        }
    }
    say!(
        "schema checks: {} {passed} passed; {} failed",
        if failed.is_empty() { "ok." } else { "FAILED." },
        failed.len()
    );
    (passed, failed)
}
