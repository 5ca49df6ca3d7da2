//! `cargo xtask lab`: the QEMU SR-IOV lab.
//!
//! q35 + intel-iommu (interrupt remapping) + QEMU's `igb` (Intel 82576, 7 VFs)
//! behind a pcie-root-port, Debian's 6.12 kernel, an initramfs written here in
//! Rust, and the project's binaries on a read-only 9p share at `/lab`. A
//! second, writable 9p share at `/out` (`target/lab/out` on the host, emptied
//! at each boot) carries what tests keep for the host to check after the run
//! (`/out/streams/*.ndjson`, validated by `cargo xtask vm-test`).
mod cpio;
mod image;
mod modules;
mod qemu;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};
pub use qemu::Accel;

use crate::{
    kernels::{self, GuestKernel},
    util,
};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  cargo xtask lab\n  cargo xtask lab --kernel 6.1\n  cargo xtask lab --exec 'cat /sys/bus/pci/devices/*/sriov_totalvfs'\n  cargo xtask lab --exec 'echo 3 > /sys/bus/pci/devices/$SRIOV_LAB_PF/sriov_numvfs; lspci -nn'"
)]
pub struct Options {
    /// Run CMD (a busybox sh command line) as root in the guest once igb,
    /// igbvf and vfio-pci are loaded; stream its output and exit with its code.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Accelerator. Default: KVM if /dev/kvm works and a KVM boot was seen to
    /// succeed on this machine (probed once, cached), else TCG.
    #[arg(long, value_enum)]
    accel: Option<Accel>,
    /// Hard timeout for the whole VM run, in seconds (default: 600, none
    /// when the main job runs on a terminal).
    #[arg(long)]
    timeout: Option<u64>,
    /// VFs the main job creates (no --exec).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=7))]
    vfs: u32,
    /// Do not build the project binaries first; share what is already built.
    #[arg(long)]
    no_build: bool,
    /// Guest kernel: Debian's 6.12 or bookworm's 6.1 LTS.
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: GuestKernel,
    /// Also print the boot console (kernel, init) before the ready line.
    #[arg(long, short)]
    verbose: bool,
}

/// Everything one VM run needs.
pub struct Run<'a> {
    pub job: image::Job,
    pub cmd: Option<&'a str>,
    /// (name in /lab/bin, host path)
    pub bins: &'a [(String, PathBuf)],
    pub accel: Option<Accel>,
    /// The guest kernel it boots.
    pub kernel: GuestKernel,
    pub timeout: Duration,
    pub verbose: bool,
    /// See `qemu::Vm::agent_port`.
    pub agent_port: Option<u16>,
    /// Where this VM keeps its image, shares, console log and lock.
    pub dir: &'a LabDir,
}

pub use image::Job;

pub fn lab_dir() -> PathBuf {
    util::target_dir().join("lab")
}

/// The directory of one lab VM: its initramfs, its two shares, its console
/// log, its monitor socket and its lock. VMs in different directories can
/// run at the same time (`cargo xtask vm-test --kernel all` runs one per
/// kernel); the main job and the benchmarks use `target/lab` itself.
#[derive(Clone, Debug)]
pub struct LabDir(PathBuf);

impl LabDir {
    /// `target/lab`.
    pub fn main() -> Self {
        Self(lab_dir())
    }

    /// `target/lab/NAME` (for a VM that may run beside others).
    pub fn named(name: &str) -> Self {
        Self(lab_dir().join(name))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The host side of the guest's writable `/out`.
    pub fn out(&self) -> PathBuf {
        self.0.join("out")
    }

    /// The console log of the last (or running) VM of this directory.
    pub fn console_log(&self) -> PathBuf {
        self.0.join("console.log")
    }
}

/// Lay out the read-only share: `/lab/bin/*` and `/lab/run/cmd.sh`.
fn prepare_share(dir: &LabDir, bins: &[(String, PathBuf)], cmd: Option<&str>) -> Result<PathBuf> {
    let share = dir.path().join("share");
    let _ = fs::remove_dir_all(&share);
    fs::create_dir_all(share.join("bin"))?;
    fs::create_dir_all(share.join("run"))?;
    for (name, src) in bins {
        let dst = share.join("bin").join(name);
        if fs::hard_link(src, &dst).is_err() {
            fs::copy(src, &dst)
                .with_context(|| format!("copying {} into the lab share", src.display()))?;
        }
    }
    if let Some(cmd) = cmd {
        fs::write(share.join("run/cmd.sh"), format!("{cmd}\n"))?;
    }
    Ok(share)
}

/// Empty the writable share: nothing of an earlier run can be taken for a
/// result of this one.
fn prepare_out(dir: &LabDir) -> Result<PathBuf> {
    let out = dir.out();
    match fs::remove_dir_all(&out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("emptying {}", out.display())),
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(out)
}

fn kvm_probe_file() -> PathBuf {
    util::cache_dir().join("kvm-probe")
}

/// TCG unless KVM is asked for, or has been seen to really boot the lab here.
fn pick_accel(asked: Option<Accel>, kernel_info: &kernels::KernelTree) -> Result<Accel> {
    if let Some(a) = asked {
        return Ok(a);
    }
    if !qemu::kvm_device_usable() {
        return Ok(Accel::Tcg);
    }
    let cached = || match fs::read_to_string(kvm_probe_file())
        .as_deref()
        .map(str::trim)
    {
        Ok("ok") => Some(Accel::Kvm),
        Ok("fail") => Some(Accel::Tcg),
        _ => None,
    };
    if let Some(a) = cached() {
        return Ok(a);
    }
    // one probe at a time (VMs of other lab dirs may be starting too)
    let probe_dir = LabDir::named("kvm-probe");
    fs::create_dir_all(probe_dir.path())?;
    let _lock = lock_lab(probe_dir.path())?;
    if let Some(a) = cached() {
        return Ok(a);
    }
    eprintln!(
        "lab: /dev/kvm is present; checking once whether a KVM guest really boots (cached in {})",
        kvm_probe_file().display()
    );
    let modules = util::cache_dir().join("modules");
    let vmlinuz = kernel_info.vmlinuz();
    let initrd = probe_dir.path().join("initramfs.cpio");
    image::build(kernel_info, &Job::Exec, &[], &modules, &initrd)?;
    let share = prepare_share(&probe_dir, &[], Some("exit 0"))?;
    let out = prepare_out(&probe_dir)?;
    let vm = qemu::Vm {
        accel: Accel::Kvm,
        kernel: &vmlinuz,
        initrd: &initrd,
        share: &share,
        out: &out,
        append_extra: "",
        interactive: false,
        raw_console: false,
        timeout: Duration::from_secs(60),
        log: probe_dir.console_log(),
        agent_port: None,
    };
    let ok = matches!(vm.run(|_| {}), Ok(o) if o.exit_code == Some(0) && o.failure.is_none());
    fs::create_dir_all(util::cache_dir())?;
    fs::write(kvm_probe_file(), if ok { "ok\n" } else { "fail\n" })?;
    eprintln!(
        "lab: KVM {}",
        if ok {
            "works; using it"
        } else {
            "does not boot the lab here; using TCG"
        }
    );
    Ok(if ok { Accel::Kvm } else { Accel::Tcg })
}

/// One lab VM per lab directory at a time: the image, the shares and the
/// console log live there. Waits (saying so) while another run holds it.
fn lock_lab(dir: &Path) -> Result<Flock<fs::File>> {
    let path = dir.join(".lock");
    let f = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(l),
        Err((f, Errno::EWOULDBLOCK)) => {
            eprintln!(
                "lab: another lab VM of this lab directory is running ({} is locked); waiting for it",
                path.display()
            );
            Flock::lock(f, FlockArg::LockExclusive)
                .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", path.display()))
        }
        Err((_, e)) => bail!("locking {}: {e}", path.display()),
    }
}

/// Boot the lab once. Returns the guest job's outcome.
pub fn boot(run: &Run<'_>, on_line: impl FnMut(&str)) -> Result<qemu::Outcome> {
    boot_watched(run, on_line, |_, _| None)
}

/// `boot`, with a watcher that may stop the VM (`qemu::Vm::run_watched`).
pub fn boot_watched(
    run: &Run<'_>,
    mut on_line: impl FnMut(&str),
    watch: impl FnMut(Duration, Option<&str>) -> Option<String>,
) -> Result<qemu::Outcome> {
    qemu::ensure_qemu()?;
    let kernel = kernels::tree(run.kernel)?;
    let dir = run.dir.path();
    fs::create_dir_all(dir)?;
    let _lock = lock_lab(dir)?;
    let vmlinuz = kernel.vmlinuz();
    let accel = pick_accel(run.accel, &kernel)?;
    let bin_paths: Vec<PathBuf> = run.bins.iter().map(|(_, p)| p.clone()).collect();
    let initrd = dir.join("initramfs.cpio");
    let built = image::build(
        &kernel,
        &run.job,
        &bin_paths,
        &util::cache_dir().join("modules"),
        &initrd,
    )?;
    let share = prepare_share(run.dir, run.bins, run.cmd)?;
    let out_share = prepare_out(run.dir)?;
    if run.verbose {
        eprintln!(
            "lab: initramfs {} ({:.1} MiB), kernel {}, accel {accel:?}",
            built.path.display(),
            built.bytes as f64 / 1048576.0,
            kernel.version
        );
    }
    let vm = qemu::Vm {
        accel,
        kernel: &vmlinuz,
        initrd: &initrd,
        share: &share,
        out: &out_share,
        append_extra: "",
        interactive: matches!(run.job, Job::Main { .. }),
        raw_console: matches!(run.job, Job::Main { tty: Some(_), .. }),
        timeout: run.timeout,
        log: run.dir.console_log(),
        agent_port: run.agent_port,
    };
    let verbose = run.verbose;
    let out = vm.run_watched(|l| on_line(l), watch)?;
    if verbose || (out.failure.is_some() && out.stopped.is_none()) {
        eprintln!("lab: console log: {}", run.dir.console_log().display());
    }
    Ok(out)
}

/// Build the project's binaries (host target, shared target dir).
pub fn build_project_bins() -> Result<Vec<(String, PathBuf)>> {
    build_project_bins_with(&[])
}

/// [`build_project_bins`] with extra cargo arguments (`--features ...`).
pub fn build_project_bins_with(extra: &[String]) -> Result<Vec<(String, PathBuf)>> {
    util::run(
        Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--workspace", "--bins"])
            .args(extra)
            .current_dir(util::workspace_root()),
    )?;
    Ok(project_bins("debug"))
}

/// The project's binaries already built in `target/<profile>`, as
/// (name in /lab/bin, host path).
pub fn project_bins(profile: &str) -> Vec<(String, PathBuf)> {
    let dir = util::target_dir().join(profile);
    ["sriov", "sriov-top"]
        .iter()
        .map(|n| (n.to_string(), dir.join(n)))
        .filter(|(_, p)| p.exists())
        .collect()
}

/// The terminal on stdin (size from `stty size`), if stdin is one.
fn host_tty() -> Option<image::Tty> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let out = Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (rows, cols) = match (it.next(), it.next()) {
        (Some(Ok(r)), Some(Ok(c))) if r > 0 && c > 0 => (r, c),
        _ => (24, 80),
    };
    let term: String = std::env::var("TERM")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._+-".contains(*c))
        .collect();
    Some(image::Tty {
        rows,
        cols,
        term: if term.is_empty() {
            "linux".into()
        } else {
            term
        },
    })
}

pub fn run_lab(o: Options) -> Result<u8> {
    let bins = if o.no_build {
        project_bins("debug")
    } else {
        build_project_bins()?
    };
    let job = match o.exec {
        Some(_) => Job::Exec,
        None => Job::Main {
            vfs: o.vfs,
            tty: host_tty(),
        },
    };
    let on_tty = matches!(job, Job::Main { tty: Some(_), .. });
    let timeout = o
        .timeout
        .unwrap_or(if on_tty { 7 * 24 * 3600 } else { 600 });
    let run = Run {
        job,
        cmd: o.exec.as_deref(),
        bins: &bins,
        accel: o.accel,
        kernel: o.kernel,
        timeout: Duration::from_secs(timeout),
        verbose: o.verbose,
        agent_port: None,
        dir: &LabDir::main(),
    };
    let out = boot(&run, |l| println!("{l}"))?;
    if let Some(f) = &out.failure {
        bail!("{f}");
    }
    let code = out.exit_code.unwrap_or(1);
    eprintln!(
        "lab: exit {code}; ready after {}, wall {}",
        out.ready_after
            .map(util::secs)
            .unwrap_or_else(|| "-".into()),
        util::secs(out.wall)
    );
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
