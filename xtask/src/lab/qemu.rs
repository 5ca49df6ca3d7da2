//! Boot QEMU, stream the serial console, find the guest's markers, enforce a
//! hard timeout. A kernel panic, a hang or a VM that stops without reporting
//! an exit code is a failure, never a pass.
use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::image::{MARK_EXIT, MARK_INIT, MARK_READY};
use crate::util;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
}

pub struct Vm<'a> {
    pub accel: Accel,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub share: &'a Path,
    /// The writable share, mounted at `/out` in the guest: what tests keep
    /// for the host to check after the run (see `super::prepare_out`).
    pub out: &'a Path,
    pub append_extra: &'a str,
    pub interactive: bool,
    /// After the ready marker, copy the console to stdout byte for byte as
    /// it comes (a terminal UI runs on it), not line by line.
    pub raw_console: bool,
    pub timeout: Duration,
    pub log: PathBuf,
    /// The host's loopback port forwarded to the guest's 10.0.2.15:10025
    /// (`sriov-top serve`), for a Prometheus on the host.
    pub agent_port: Option<u16>,
}

pub struct Outcome {
    /// Exit code of the guest job (from the exit marker).
    pub exit_code: Option<i32>,
    /// Host time from QEMU start to the ready marker.
    pub ready_after: Option<Duration>,
    pub guest_ready_uptime: Option<String>,
    pub wall: Duration,
    pub failure: Option<String>,
    /// The host's watcher stopped the VM (see `Vm::run_watched`), saying why;
    /// `failure` says so too.
    pub stopped: Option<String>,
}

fn qemu_bin() -> Result<PathBuf> {
    util::which("qemu-system-x86_64")
        .context("qemu-system-x86_64 not found.\nFix: cargo xtask setup   (installs QEMU 10 from bookworm-backports)")
}

impl Vm<'_> {
    pub fn command(&self) -> Result<Command> {
        let mut c = Command::new(qemu_bin()?);
        // TCG: no TSC-deadline timer (the guest then uses the local APIC's
        // one-shot count). It was meant to stop a vCPU halting for good with
        // its timer never firing (RCU stall "Possible timer handling issue on
        // cpu=0", then every test that waits on that CPU hangs); it did not
        // (about 1 full vm-test run in 5 still wedges), so `cargo xtask
        // vm-test` restarts a wedged VM. Tried: `-accel tcg,thread=single`
        // costs little (policy:: 193 s either way; a full run 8.5% slower
        // than one earlier in the day) but nothing showed it prevents the
        // wedge: not kept.
        let (accel, cpu) = match self.accel {
            Accel::Tcg => ("tcg", "max,tsc-deadline=off"),
            Accel::Kvm => ("kvm", "host"),
        };
        c.args([
            "-machine",
            "q35,kernel-irqchip=split",
            "-accel",
            accel,
            "-cpu",
            cpu,
        ])
        .args([
            "-smp",
            "2",
            "-m",
            "2048",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args(["-no-reboot"])
        .args([
            "-serial",
            if self.interactive {
                "mon:stdio"
            } else {
                "stdio"
            },
        ])
        .args(if self.interactive {
            vec![]
        } else {
            // the timeout path injects an NMI through it (see `run`)
            vec![
                "-monitor".to_string(),
                format!("unix:{},server=on,wait=off", self.monitor().display()),
            ]
        })
        .args([
            "-device",
            "intel-iommu,intremap=on,caching-mode=on,device-iotlb=off",
        ])
        // the 82576 behind a root port: directly on pcie.0 each VF probe
        // waits ~2 s for a PF reset
        // restrict=on: the guest reaches nothing; an explicit hostfwd still
        // lets the host's loopback in
        .args([
            "-netdev",
            &match self.agent_port {
                Some(p) => format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{p}-:10025"),
                None => "user,id=n0,restrict=on".to_string(),
            },
        ])
        .args(["-device", "pcie-root-port,id=rp0,chassis=1,slot=0"])
        .args(["-device", "igb,bus=rp0,netdev=n0,mac=52:54:00:12:34:56"])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=lab,security_model=none,readonly=on",
            self.share.display()
        ))
        // writable, for results only: security_model=none, files are created
        // as the user running QEMU
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag={},security_model=none",
            self.out.display(),
            super::image::OUT_TAG
        ))
        .arg("-kernel")
        .arg(self.kernel)
        .arg("-initrd")
        .arg(self.initrd)
        // rcu_expedited: each eBPF link closed waits for an RCU grace
        // period; expedited ones halve the time a process with ~40 links
        // takes to exit under TCG (4.6 s -> 2.3 s, measured with and
        // without in the same session)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 intel_iommu=on iommu=pt lsm=lockdown,capability,landlock,yama,bpf \
                 rcupdate.rcu_expedited=1 panic=-1 quiet loglevel=3 {}",
            self.append_extra
        ));
        Ok(c)
    }

    /// The QEMU monitor socket of a non-interactive run, beside the log.
    fn monitor(&self) -> PathBuf {
        self.log.with_file_name("monitor.sock")
    }

    /// Ask QEMU to inject an NMI: the guest (`unknown_nmi_panic`) panics
    /// and prints every CPU's backtrace, so a frozen guest says where.
    fn inject_nmi(&self) -> bool {
        std::os::unix::net::UnixStream::connect(self.monitor())
            .and_then(|mut m| m.write_all(b"nmi\n"))
            .is_ok()
    }

    pub fn run(&self, on_line: impl FnMut(&str)) -> Result<Outcome> {
        self.run_watched(on_line, |_, _| None)
    }

    /// `run`, and `watch` sees every console line (`Some`, the boot console
    /// too) and, at least once a second, the time (`None`): both with the
    /// time since QEMU started. When it answers `Some(why)`, QEMU is killed
    /// at once and the outcome is a failure with `stopped` set.
    pub fn run_watched(
        &self,
        mut on_line: impl FnMut(&str),
        mut watch: impl FnMut(Duration, Option<&str>) -> Option<String>,
    ) -> Result<Outcome> {
        let mut cmd = self.command()?;
        let t0 = Instant::now();
        if self.interactive {
            cmd.stdin(Stdio::inherit());
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", util::display(&cmd)))?;
        let mut log = std::fs::File::create(&self.log)
            .with_context(|| format!("creating {}", self.log.display()))?;
        writeln!(log, "# {}", util::display(&cmd))?;

        // (line, already shown): lines go to the log and the marker checks;
        // with `raw_console`, what follows the ready line is also copied to
        // stdout as it arrives
        let (tx, rx) = mpsc::channel::<Option<(String, bool)>>();
        let stdout = child.stdout.take().expect("piped");
        let tx_out = tx.clone();
        let raw = self.raw_console;
        thread::spawn(move || {
            let mut r = stdout;
            let mut chunk = [0u8; 4096];
            let mut line = Vec::new();
            let mut passing = false;
            loop {
                let n = match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let data = &chunk[..n];
                let shown = raw && passing;
                if shown {
                    let mut o = std::io::stdout().lock();
                    let end = find(data, MARK_EXIT.as_bytes()).unwrap_or(data.len());
                    let _ = o.write_all(&data[..end]);
                    let _ = o.flush();
                }
                for &b in data {
                    if b != b'\n' {
                        line.push(b);
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line).replace('\r', "");
                    line.clear();
                    passing |= text.starts_with(MARK_READY);
                    if tx_out.send(Some((text, shown))).is_err() {
                        return;
                    }
                }
            }
            let _ = tx_out.send(None);
        });
        let mut stderr = child.stderr.take().expect("piped");
        let err_thread = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });

        let mut deadline = t0 + self.timeout;
        let mut out = Outcome {
            exit_code: None,
            ready_after: None,
            guest_ready_uptime: None,
            wall: Duration::ZERO,
            failure: None,
            stopped: None,
        };
        let mut nmi_sent = false;
        let mut ready = false;
        let mut stop: Option<String> = None;
        loop {
            if let Some(why) = stop.take() {
                writeln!(log, "# stopped by the host: {why}")?;
                out.failure = Some(format!("stopped by the host: {why}"));
                out.stopped = Some(why);
                break;
            }
            let now = Instant::now();
            if now >= deadline && ready && !nmi_sent && !self.interactive && self.inject_nmi() {
                // a few seconds more for the guest's panic report
                nmi_sent = true;
                deadline = now + Duration::from_secs(8);
                writeln!(log, "# timeout: NMI injected for a backtrace")?;
                continue;
            }
            if now >= deadline {
                out.failure = Some(format!(
                    "timeout: the VM did not finish within {} s ({}); killed{}",
                    self.timeout.as_secs(),
                    if ready {
                        "hung after ready"
                    } else {
                        "never became ready"
                    },
                    if nmi_sent {
                        "; an NMI was injected first: the guest's backtraces are in the console log"
                    } else {
                        ""
                    }
                ));
                break;
            }
            match rx.recv_timeout((deadline - now).min(WATCH_TICK)) {
                Ok(Some((line, shown))) => {
                    writeln!(log, "[{:8.3}] {line}", t0.elapsed().as_secs_f64())?;
                    stop = watch(t0.elapsed(), Some(&line));
                    if let Some(rest) = line.strip_prefix(MARK_READY) {
                        ready = true;
                        out.ready_after = Some(t0.elapsed());
                        out.guest_ready_uptime = rest.split_whitespace().next().map(String::from);
                        let info = rest
                            .split_whitespace()
                            .skip(1)
                            .collect::<Vec<_>>()
                            .join(" ");
                        eprintln!(
                            "lab: ready in {} (guest uptime {} s; {info})",
                            util::secs(t0.elapsed()),
                            out.guest_ready_uptime.as_deref().unwrap_or("?"),
                        );
                        continue;
                    }
                    if let Some(rest) = line.strip_prefix(MARK_EXIT) {
                        out.exit_code = rest.trim().parse().ok();
                        continue;
                    }
                    if line.starts_with(MARK_INIT) {
                        continue;
                    }
                    if line.contains("Kernel panic") {
                        out.failure = Some(format!("guest kernel panic: {line}"));
                    }
                    let exited = out.exit_code.is_some();
                    if !shown
                        && ((ready && !exited) || self.interactive || line.contains("sriov lab:"))
                    {
                        on_line(&line);
                    }
                }
                Ok(None) => break, // QEMU closed its console
                Err(mpsc::RecvTimeoutError::Timeout) => stop = watch(t0.elapsed(), None),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if nmi_sent
            && out.stopped.is_none()
            && !out
                .failure
                .as_deref()
                .is_some_and(|f| f.starts_with("timeout"))
        {
            // the panic came from our NMI: the timeout is what happened
            out.failure = Some(format!(
                "timeout: the VM did not finish within {} s (hung after ready); an NMI was \
                 injected: the guest's backtraces are in the console log",
                self.timeout.as_secs()
            ));
        }
        let status = finish(&mut child, out.failure.is_some() && out.exit_code.is_none())?;
        let err = err_thread.join().unwrap_or_default();
        if !err.trim().is_empty() {
            writeln!(log, "# qemu stderr:\n{err}")?;
        }
        out.wall = t0.elapsed();
        if out.failure.is_none() && out.exit_code.is_none() {
            out.failure = Some(format!(
                "the VM stopped ({status}) without reporting an exit code{}",
                if err.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", err.trim())
                }
            ));
        }
        Ok(out)
    }
}

/// How often `Vm::run_watched`'s watcher hears the time when the console
/// is quiet.
const WATCH_TICK: Duration = Duration::from_secs(1);

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Wait for QEMU (the guest powers off after its job); kill it if asked or
/// if it lingers.
fn finish(child: &mut Child, kill_now: bool) -> Result<String> {
    if !kill_now {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Some(s) = child.try_wait()? {
                return Ok(s.to_string());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let s = child.wait()?;
    Ok(format!("killed, {s}"))
}

/// Is KVM usable here? `/dev/kvm` may exist while nested KVM still fails, so
/// callers verify with a real boot (see `super::pick_accel`).
pub fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

pub fn ensure_qemu() -> Result<()> {
    let q = qemu_bin()?;
    let v = util::output(Command::new(&q).arg("--version"))?;
    let ver = v.split_whitespace().nth(3).unwrap_or("0");
    let major: u32 = ver
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 8 {
        bail!(
            "{} is QEMU {ver}; the igb (82576) device needs QEMU >= 8.\nFix: cargo xtask setup",
            q.display()
        );
    }
    Ok(())
}
