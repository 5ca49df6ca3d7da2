//! `cargo xtask setup`: install everything the build, the tests and the lab
//! need on a fresh Debian 12 machine. Idempotent: each step checks first and
//! only acts when something is missing, so a second run takes seconds.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernels::{self, GuestKernel},
    util::{self, cache_dir, output, run, run_logged, succeeds},
};

/// Debian packages from bookworm itself.
const APT_PACKAGES: &[&str] = &[
    "busybox-static",
    "kmod",
    "cpio",
    "xz-utils",
    "iproute2",
    "pciutils",
    "bpftool",
    "tmux",
    "ethtool",
    // the independent JSON Schema validator of the schema tests
    // (docs/schema/validate.py under /usr/bin/python3; draft 2020-12)
    "python3-jsonschema",
    // `systemd-analyze verify` of deploy/systemd/sriov-top.service
    // (sriov-top/tests/deploy.rs); a Debian container image lacks it
    "systemd",
    // the venv of kubernetes-validate (step "kubernetes-validate" below)
    "python3-venv",
    // promtool, to check what `sriov-top serve` exports; the package's own
    // Prometheus server must never run here (step "prometheus service off")
    PROMETHEUS_PACKAGE,
];
const PROMETHEUS_PACKAGE: &str = "prometheus";
/// QEMU's `igb` (emulated 82576 with SR-IOV) needs QEMU >= 8.0; bookworm has
/// 7.2, bookworm-backports has 10.
const QEMU_PACKAGE: &str = "qemu-system-x86";
const QEMU_MIN_VERSION: &str = "1:8.0";
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/sriov-top-bookworm-backports.sources";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The Kubernetes manifest validator of sriov-top/tests/deploy.rs, in a
/// venv of the lab cache ([`kubernetes_validate_path`]). 1.37.0 ships the
/// schemas of Kubernetes 1.25 to 1.37; the test pins 1.37.
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
/// Everything it pulls in, pinned: the same venv on every machine.
const KUBERNETES_VALIDATE_DEPS: &[&str] = &[
    "attrs==26.1.0",
    "importlib_resources==7.1.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "packaging==26.4",
    "PyYAML==6.0.4",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "typing_extensions==4.16.0",
];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Only report what is missing; change nothing.
    #[arg(long)]
    check: bool,
}

struct Step {
    name: &'static str,
    /// Ok(None) when satisfied, Ok(Some(what is missing)) otherwise.
    check: fn() -> Result<Option<String>>,
    install: fn() -> Result<()>,
    fix_hint: &'static str,
}

const KERNEL_FIX: &str = "needs `apt-get download` to work (run `apt-get update`); the cache is $SRIOV_LAB_CACHE or ~/.cache/sriov-top";

const STEPS: &[Step] = &[
    Step {
        name: "apt packages (QEMU 10 from bookworm-backports, busybox, kmod, iproute2, bpftool, python3-jsonschema, systemd, prometheus, ...)",
        check: check_apt,
        install: install_apt,
        fix_hint: "check that the Debian archive is reachable (apt-get update) and that you are root",
    },
    Step {
        name: "Debian's prometheus service kept off (masked, disabled, not running; promtool is what we use)",
        check: check_prometheus_off,
        install: prometheus_off,
        fix_hint: "stop it by hand (`systemctl stop prometheus` or `/etc/init.d/prometheus stop`), then run setup again",
    },
    Step {
        name: "kubernetes-validate in a venv of the lab cache (for the deploy/kubernetes tests)",
        check: check_kubernetes_validate,
        install: install_kubernetes_validate,
        fix_hint: "needs python3-venv and PyPI; the venv is $SRIOV_LAB_CACHE/venv or ~/.cache/sriov-top/venv (remove it to start over)",
    },
    Step {
        name: "rust-src for the nightly toolchain",
        check: check_rust_src,
        install: install_rust_src,
        fix_hint: "run `rustup component add rust-src --toolchain nightly` by hand to see rustup's error",
    },
    Step {
        name: "bpf-linker built against nightly's LLVM",
        check: check_bpf_linker,
        install: install_bpf_linker,
        fix_hint: "needs the nightly toolchain (`rustup toolchain list`) and crates.io; see shared/lab/NOTES.md",
    },
    Step {
        name: "cargo-fuzz (for `cargo xtask fuzz`)",
        check: check_cargo_fuzz,
        install: install_cargo_fuzz,
        fix_hint: "run `cargo install cargo-fuzz --locked` by hand to see cargo's error",
    },
    Step {
        name: "guest kernel Debian 6.12 (unsigned) in the lab cache",
        check: || kernels::check(GuestKernel::V6_12),
        install: || kernels::install(GuestKernel::V6_12),
        fix_hint: KERNEL_FIX,
    },
    Step {
        name: "guest kernel Debian 6.1 LTS (bookworm, unsigned) in the lab cache",
        check: || kernels::check(GuestKernel::V6_1),
        install: || kernels::install(GuestKernel::V6_1),
        fix_hint: KERNEL_FIX,
    },
];

pub fn run_setup(opts: Options) -> Result<()> {
    let t0 = Instant::now();
    if !opts.check && !util::is_root() {
        bail!(
            "cargo xtask setup installs Debian packages and must run as root.\n\
             Fix: sudo -E cargo xtask setup   (or `cargo xtask setup --check` to only look)"
        );
    }
    let mut missing = 0;
    for (i, step) in STEPS.iter().enumerate() {
        let n = i + 1;
        let total = STEPS.len();
        match (step.check)().with_context(|| format!("checking: {}", step.name))? {
            None => println!("[{n}/{total}] ok       {}", step.name),
            Some(what) if opts.check => {
                missing += 1;
                println!("[{n}/{total}] MISSING  {}: {what}", step.name);
            }
            Some(what) => {
                println!("[{n}/{total}] install  {}: {what}", step.name);
                let ts = Instant::now();
                (step.install)().with_context(|| {
                    format!(
                        "setup step {n} failed: {}\nFix: {}",
                        step.name, step.fix_hint
                    )
                })?;
                if let Some(still) = (step.check)()? {
                    bail!(
                        "setup step {n} ran but is still not satisfied: {}: {still}\nFix: {}",
                        step.name,
                        step.fix_hint
                    );
                }
                println!(
                    "[{n}/{total}] done     {} in {}",
                    step.name,
                    util::secs(ts.elapsed())
                );
            }
        }
    }
    if missing > 0 {
        bail!("{missing} setup step(s) missing; run `cargo xtask setup` as root");
    }
    println!("setup complete in {}", util::secs(t0.elapsed()));
    Ok(())
}

// ------------------------------------------------------------------ apt

fn dpkg_version(pkg: &str) -> Option<String> {
    let out =
        output(Command::new("dpkg-query").args(["-W", "-f=${Status}\t${Version}", pkg])).ok()?;
    let (status, version) = out.split_once('\t')?;
    status.ends_with(" installed").then(|| version.to_string())
}

pub(crate) fn version_ge(a: &str, b: &str) -> bool {
    succeeds(Command::new("dpkg").args(["--compare-versions", a, "ge", b]))
}

fn missing_apt() -> (bool, Vec<&'static str>) {
    let qemu_ok = dpkg_version(QEMU_PACKAGE).is_some_and(|v| version_ge(&v, QEMU_MIN_VERSION));
    let rest = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| dpkg_version(p).is_none())
        .collect();
    (!qemu_ok, rest)
}

fn check_apt() -> Result<Option<String>> {
    let (qemu, rest) = missing_apt();
    let mut what = Vec::new();
    if qemu {
        what.push(format!(
            "{QEMU_PACKAGE} >= {QEMU_MIN_VERSION} (bookworm-backports)"
        ));
    }
    what.extend(rest.iter().map(|s| s.to_string()));
    Ok((!what.is_empty()).then(|| what.join(", ")))
}

/// The archive URI of the machine's own bookworm suite, so that backports
/// comes from the same mirror the machine already uses.
fn debian_archive_uri() -> Result<String> {
    let mut candidates: Vec<PathBuf> = vec!["/etc/apt/sources.list".into()];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        candidates.extend(rd.flatten().map(|e| e.path()));
    }
    for path in candidates {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        // deb822 stanzas
        for stanza in text.split("\n\n") {
            let field = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            };
            if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:"))
                && suites.split_whitespace().any(|s| s == "bookworm")
                && let Some(u) = uris.split_whitespace().next()
            {
                return Ok(u.to_string());
            }
        }
        // one-line format
        for l in text.lines() {
            let parts: Vec<_> = l.split_whitespace().collect();
            if parts.first() == Some(&"deb") {
                let rest: Vec<_> = parts[1..].iter().filter(|p| !p.starts_with('[')).collect();
                if rest.len() >= 2 && *rest[1] == "bookworm" {
                    return Ok(rest[0].to_string());
                }
            }
        }
    }
    bail!("no apt source for Debian bookworm found in /etc/apt; is this Debian 12?")
}

fn install_apt() -> Result<()> {
    let (qemu, rest) = missing_apt();
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    if qemu && !Path::new(BACKPORTS_LIST).exists() {
        let uri = debian_archive_uri()?;
        let stanza = format!(
            "# Added by `cargo xtask setup` (sriov-top): QEMU >= 8 for the emulated 82576.\n\
             Types: deb\nURIs: {uri}\nSuites: bookworm-backports\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        fs::write(BACKPORTS_LIST, stanza).with_context(|| format!("writing {BACKPORTS_LIST}"))?;
        println!("    added bookworm-backports ({BACKPORTS_LIST})");
    }
    let log = cache_dir().join("setup-apt.log");
    println!("    apt-get update + install (log: {})", log.display());
    // no package's service starts while we install (prometheus would
    // listen on 0.0.0.0:9090 at once); removed again when this returns
    let _no_starts = NoServiceStarts::install()?;
    run_logged(
        Command::new("apt-get").args(["update", "-qq"]).envs(env),
        &log,
    )?;
    if qemu {
        run_logged(
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-qq",
                    "-t",
                    "bookworm-backports",
                    QEMU_PACKAGE,
                ])
                .envs(env),
            &log,
        )?;
    }
    if !rest.is_empty() {
        run_logged(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&rest)
                .envs(env),
            &log,
        )?;
    }
    Ok(())
}

/// Debian's service start policy: while `/usr/sbin/policy-rc.d` exits 101,
/// `invoke-rc.d` and `deb-systemd-invoke` (what maintainer scripts start
/// services with) start nothing. Debian's container images ship one that
/// does just that; anywhere else one is written for the install (a policy
/// that allows starts is set aside) and the machine's is back on drop.
struct NoServiceStarts {
    written: bool,
    set_aside: bool,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const POLICY_RC_D_ASIDE: &str = "/usr/sbin/policy-rc.d.sriov-top-aside";

impl NoServiceStarts {
    fn install() -> Result<Self> {
        let forbids = |p: &str| {
            Command::new(p)
                .args(["prometheus", "start"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.code() == Some(101))
        };
        let mut guard = Self {
            written: false,
            set_aside: false,
        };
        if Path::new(POLICY_RC_D).exists() {
            if forbids(POLICY_RC_D) {
                return Ok(guard);
            }
            fs::rename(POLICY_RC_D, POLICY_RC_D_ASIDE)
                .with_context(|| format!("setting {POLICY_RC_D} aside"))?;
            guard.set_aside = true;
        }
        use std::os::unix::fs::PermissionsExt as _;
        fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# cargo xtask setup (sriov-top): no service starts while it installs packages\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        guard.written = true;
        fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755))?;
        Ok(guard)
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.written {
            let _ = fs::remove_file(POLICY_RC_D);
        }
        if self.set_aside {
            let _ = fs::rename(POLICY_RC_D_ASIDE, POLICY_RC_D);
        }
    }
}

// ------------------------------------------------------------------ prometheus

/// systemd's mask: a unit file that is a link to /dev/null never starts,
/// whatever enables it (the package's postinst does, on every upgrade).
const PROMETHEUS_MASK: &str = "/etc/systemd/system/prometheus.service";
const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// sysvinit start links of the package's init script (`update-rc.d
/// prometheus defaults` in its postinst).
fn prometheus_sysv_starts() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for level in ["2", "3", "4", "5"] {
        let Ok(rd) = fs::read_dir(format!("/etc/rc{level}.d")) else {
            continue;
        };
        found.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('S') && n.ends_with("prometheus"))
        }));
    }
    found
}

/// Pids of running Prometheus servers (`/proc/<pid>/exe`).
fn prometheus_pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = fs::read_link(e.path().join("exe")).ok()?;
            (exe == Path::new(PROMETHEUS_BIN)).then_some(pid)
        })
        .collect()
}

fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn check_prometheus_off() -> Result<Option<String>> {
    if dpkg_version(PROMETHEUS_PACKAGE).is_none() {
        // the apt step installs it; nothing to keep off
        return Ok(None);
    }
    let mut what = Vec::new();
    if fs::read_link(PROMETHEUS_MASK).ok().as_deref() != Some(Path::new("/dev/null")) {
        what.push(format!("{PROMETHEUS_MASK} is no link to /dev/null"));
    }
    let starts = prometheus_sysv_starts();
    if !starts.is_empty() {
        what.push(format!("sysvinit start links {starts:?}"));
    }
    let pids = prometheus_pids();
    if !pids.is_empty() {
        what.push(format!("{PROMETHEUS_BIN} running (pid {pids:?})"));
    }
    Ok((!what.is_empty()).then(|| what.join(", ")))
}

fn prometheus_off() -> Result<()> {
    if fs::symlink_metadata(PROMETHEUS_MASK).is_err() {
        std::os::unix::fs::symlink("/dev/null", PROMETHEUS_MASK)
            .with_context(|| format!("masking prometheus.service ({PROMETHEUS_MASK})"))?;
    }
    if !prometheus_sysv_starts().is_empty() {
        run(Command::new("update-rc.d").args(["prometheus", "disable"]))?;
    }
    if !prometheus_pids().is_empty() {
        if systemd_is_init() {
            run(Command::new("systemctl").arg("daemon-reload"))?;
            run(Command::new("systemctl").args(["stop", "prometheus.service"]))?;
        } else {
            // the init script, not invoke-rc.d: a policy-rc.d may forbid it
            run(Command::new("/etc/init.d/prometheus").arg("stop"))?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ kubernetes-validate

/// The venv's `kubernetes-validate`. sriov-top/tests/deploy.rs computes the
/// same path (`$SRIOV_LAB_CACHE`, else `$XDG_CACHE_HOME/sriov-top`, else
/// `~/.cache/sriov-top`, then `venv/bin/kubernetes-validate`): change both.
pub fn kubernetes_validate_path() -> PathBuf {
    cache_dir()
        .join("venv")
        .join("bin")
        .join("kubernetes-validate")
}

fn check_kubernetes_validate() -> Result<Option<String>> {
    let bin = kubernetes_validate_path();
    let version = output(Command::new(&bin).arg("--version")).ok();
    Ok(match version.as_deref().map(str::trim) {
        Some(KUBERNETES_VALIDATE_VERSION) => None,
        Some(other) => Some(format!(
            "{} is {other}, not {KUBERNETES_VALIDATE_VERSION}",
            bin.display()
        )),
        None => Some(format!("{} not installed", bin.display())),
    })
}

fn install_kubernetes_validate() -> Result<()> {
    let venv = cache_dir().join("venv");
    let log = cache_dir().join("setup-venv.log");
    println!(
        "    venv {} with kubernetes-validate {KUBERNETES_VALIDATE_VERSION} (log: {})",
        venv.display(),
        log.display()
    );
    // a venv of another version or a broken one: start over
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    // Debian's interpreter (python3-venv is for it), not the first on PATH
    run_logged(
        Command::new("/usr/bin/python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv),
        &log,
    )?;
    run_logged(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--no-input", "--disable-pip-version-check", "-q"])
            .arg(format!(
                "kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"
            ))
            .args(KUBERNETES_VALIDATE_DEPS),
        &log,
    )
}

// ------------------------------------------------------------------ rust

fn check_rust_src() -> Result<Option<String>> {
    let out = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context("the nightly toolchain is needed for the eBPF build (`rustup toolchain list`)")?;
    Ok((!out.lines().any(|l| l.starts_with("rust-src"))).then(|| "rust-src (nightly)".to_string()))
}

fn install_rust_src() -> Result<()> {
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn nightly_sysroot() -> Result<PathBuf> {
    Ok(PathBuf::from(
        output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim(),
    ))
}

/// nightly's own libLLVM (bpf-linker must use the same LLVM as rustc).
fn nightly_libllvm() -> Result<PathBuf> {
    let lib = nightly_sysroot()?.join("lib");
    let mut found: Vec<PathBuf> = fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") || n.starts_with("libLLVM-"))
        })
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM in {}; is the nightly toolchain complete?",
            lib.display()
        )
    })
}

fn llvm_major(lib: &Path) -> Option<String> {
    let name = lib.file_name()?.to_str()?;
    let digits: String = name
        .trim_start_matches("libLLVM.so.")
        .trim_start_matches("libLLVM-")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!digits.is_empty()).then_some(digits)
}

pub fn bpf_linker_path() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    cargo_home.join("bin").join("bpf-linker")
}

fn check_bpf_linker() -> Result<Option<String>> {
    let bin = bpf_linker_path();
    if !bin.exists() {
        return Ok(Some(format!("{} not installed", bin.display())));
    }
    let lib_dir = nightly_sysroot()?.join("lib");
    let ok = succeeds(
        Command::new(&bin)
            .arg("--version")
            .env("LD_LIBRARY_PATH", &lib_dir),
    );
    Ok((!ok).then(|| format!("{} does not run against nightly's LLVM", bin.display())))
}

fn install_bpf_linker() -> Result<()> {
    let lib = nightly_libllvm()?;
    let major = llvm_major(&lib).context("cannot tell nightly's LLVM major version")?;
    let prefix = cache_dir().join(format!("llvm-prefix-{major}"));
    let link = prefix.join("lib").join("libLLVM.so");
    fs::create_dir_all(link.parent().expect("has parent"))?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)
        .with_context(|| format!("linking {} -> {}", link.display(), lib.display()))?;
    println!(
        "    building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)",
        lib.display()
    );
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--force",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .env("LLVM_PREFIX", &prefix))
}

fn check_cargo_fuzz() -> Result<Option<String>> {
    let bin = bpf_linker_path().with_file_name("cargo-fuzz");
    let ok = succeeds(Command::new(&bin).arg("--version"));
    Ok((!ok).then(|| format!("{} not installed", bin.display())))
}

fn install_cargo_fuzz() -> Result<()> {
    println!("    building cargo-fuzz {CARGO_FUZZ_VERSION} (about a minute)");
    run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}
