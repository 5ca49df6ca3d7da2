//! Lab benchmark (run by `cargo xtask bench`, inside the lab VM, as root):
//! the CPU of the live terminal UI, the shipped release binary
//! (`/lab/bin/sriov-top --interval 1`, eBPF probes loaded, as root), while
//! all 7 VFs of the lab PF carry traffic.
//!
//! - 7 VFs (`sriov_numvfs`), each on igbvf with its netdev up; one thread
//!   sends 60-byte frames from every VF netdev (AF_PACKET, the VF's own
//!   MAC as source, to a MAC nobody has: they leave through the port),
//!   paced at [`PPS_PER_VF`] per VF for the whole run; the rate achieved
//!   is what the netdevs counted (`tx_packets`).
//! - sriov-top on a pty this program allocates (160x50; its output read
//!   and discarded by a thread, so it never blocks), as its own session
//!   leader with the pty as controlling terminal.
//! - Once the probes are loaded (its BPF program fds are there and stable)
//!   and 5 s more, its CPU is sampled each second for 60 ticks
//!   (common::proc_cpu: /proc/<pid>/stat utime + stime, and the process
//!   CPU clock for per-tick figures finer than 10 ms); then SIGTERM, and it
//!   must exit 0.
//!
//! Beside it, not in the figure: the probes' own run time in the kernel
//! over the same ticks (bpf_stats: run_time_ns of sriov-top's programs),
//! which the kernel charges to whatever task the interrupt or call hit,
//! not to sriov-top. Goal: <= 1 % of a core at 1 Hz. There is no
//! baseline: the row's ratio is ours / the goal. The lab is QEMU TCG:
//! every instruction is emulated, so the figure is an upper bound of
//! what a real host would show.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the shared lab helpers end the program on a failure"
)]
mod common;

use std::{
    fs,
    io::{self, Read as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use common::proc_cpu::{self, Usage, Watch};
use nix::{
    libc,
    sys::{
        signal::{Signal, kill},
        socket::{MsgFlags, send},
    },
    unistd::Pid,
};
use sriov_core::{types::MacAddr, vf::frame};

const TOP: &str = "/lab/bin/sriov-top";
const VFS: usize = 7;
const TICKS: usize = 60;
/// Frames per second each VF sends.
const PPS_PER_VF: u64 = 1000;
/// Sending slots per second (each sends PPS_PER_VF / SLOTS per VF).
const SLOTS: u64 = 100;
const SIZE: usize = 60;
const ROWS: u16 = 50;
const COLS: u16 = 160;
/// After the probes are loaded, before the ticks are counted.
const SETTLE: Duration = Duration::from_secs(5);
const GOAL_PCT: f64 = 1.0;
const STDERR: &str = "/tmp/lab_bench_ui.sriov-top.stderr";

/// A VF's netdev, up.
struct VfNet {
    ifname: String,
    ifindex: i32,
    mac: MacAddr,
}

fn sys(path: &str) -> Result<String> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("reading {path}"))?
        .trim()
        .to_string())
}

/// `n` VFs on the PF, each netdev up with carrier.
fn create_vfs(pf: &str, n: usize) -> Result<Vec<VfNet>> {
    let dev = format!("/sys/bus/pci/devices/{pf}");
    fs::write(format!("{dev}/sriov_numvfs"), "0")?;
    fs::write(format!("{dev}/sriov_numvfs"), n.to_string())
        .with_context(|| format!("{n} VFs on {pf}"))?;
    let t = Instant::now();
    let mut out = Vec::new();
    for i in 0..n {
        let vf = fs::read_link(format!("{dev}/virtfn{i}"))?;
        let net = format!("{dev}/{}/net", vf.display());
        let ifname = loop {
            if let Some(e) = fs::read_dir(&net).ok().and_then(|mut d| d.next()) {
                break e?.file_name().to_string_lossy().into_owned();
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("VF {i} has no netdev (igbvf) after 60 s");
            }
            thread::sleep(Duration::from_millis(50));
        };
        let st = Command::new("/usr/bin/ip")
            .args(["link", "set", "dev", &ifname, "up"])
            .status()?;
        if !st.success() {
            bail!("ip link set dev {ifname} up: {st}");
        }
        let class = format!("/sys/class/net/{ifname}");
        out.push(VfNet {
            ifindex: sys(&format!("{class}/ifindex"))?.parse()?,
            mac: MacAddr::parse_any(&sys(&format!("{class}/address"))?)
                .with_context(|| format!("{ifname}'s MAC"))?,
            ifname,
        });
    }
    for v in &out {
        while sys(&format!("/sys/class/net/{}/carrier", v.ifname))
            .ok()
            .as_deref()
            != Some("1")
        {
            if t.elapsed() > Duration::from_secs(90) {
                bail!("no carrier on {}", v.ifname);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(out)
}

fn tx_packets(vfs: &[VfNet]) -> Result<Vec<u64>> {
    vfs.iter()
        .map(|v| {
            Ok(sys(&format!(
                "/sys/class/net/{}/statistics/tx_packets",
                v.ifname
            ))?
            .parse()?)
        })
        .collect()
}

/// The sending thread; stops when dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(u64, u64)>>>,
}

impl Traffic {
    /// Frames from every VF, `PPS_PER_VF` each, on a fixed schedule of
    /// `SLOTS` a second (a slot missed by more than 100 ms is skipped, not
    /// caught up in a burst).
    fn start(vfs: &[VfNet]) -> Result<Self> {
        let mut socks = Vec::new();
        for v in vfs {
            let fd = common::af_packet::socket()?;
            // protocol 0: sends on the VF's netdev, receives nothing
            common::af_packet::bind(&fd, v.ifindex, 0)?;
            socks.push((fd, frame::test_frame(common::DST, v.mac, SIZE, 0)));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let per_slot = PPS_PER_VF / SLOTS;
        let thread = thread::Builder::new()
            .name("traffic".into())
            .spawn(move || {
                let (mut calls, mut refused) = (0u64, 0u64);
                let slot = Duration::from_secs(1) / SLOTS as u32;
                let mut next = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    for (fd, f) in &socks {
                        for _ in 0..per_slot {
                            calls += 1;
                            match send(fd.as_raw_fd(), f, MsgFlags::MSG_DONTWAIT) {
                                Ok(_) => {}
                                Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::EAGAIN) => {
                                    refused += 1
                                }
                                Err(e) => return Err(e).context("AF_PACKET send"),
                            }
                        }
                    }
                    next += slot;
                    let now = Instant::now();
                    if now > next + Duration::from_millis(100) {
                        next = now;
                    }
                    thread::sleep(next.saturating_duration_since(now));
                }
                Ok((calls, refused))
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop; (send calls, refused).
    fn finish(mut self) -> Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the traffic thread panicked"),
            None => Ok((0, 0)),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn cloexec(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{F_SETFD, FdFlag, fcntl};
    fcntl(fd.as_raw_fd(), F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// A pty of `ROWS` x `COLS`: (master, slave).
fn openpty() -> Result<(OwnedFd, OwnedFd)> {
    let (mut m, mut s) = (-1, -1);
    let ws = libc::winsize {
        ws_row: ROWS,
        ws_col: COLS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `m` and `s` are live ints the call writes the fds to; no
    // name buffer (null), default termios (null); `ws` is a live winsize
    // only read during the call.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    if r != 0 {
        return Err(io::Error::last_os_error()).context("openpty");
    }
    // SAFETY: both were just opened by openpty and are owned by nothing
    // else.
    let fds = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    // not inherited by sriov-top beyond its stdio (the dup2s clear it)
    cloexec(&fds.0)?;
    cloexec(&fds.1)?;
    Ok(fds)
}

/// sriov-top on a pty of its own; its output counted and discarded.
struct Top {
    child: Child,
    out_bytes: Arc<AtomicU64>,
    reader: JoinHandle<()>,
}

impl Top {
    fn spawn() -> Result<Self> {
        let (master, slave) = openpty()?;
        let mut cmd = Command::new(TOP);
        cmd.args(["--interval", "1"])
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave))
            .stderr(fs::File::create(STDERR)?);
        // SAFETY: runs in the child between fork and exec, and calls only
        // async-signal-safe functions (setsid, ioctl); no allocation.
        unsafe {
            cmd.pre_exec(|| {
                // a session of its own, the pty its controlling terminal
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {TOP}"))?;
        // our copies of the slave go with `cmd`: the master then reads EIO
        // once sriov-top has exited
        drop(cmd);
        let out_bytes = Arc::new(AtomicU64::new(0));
        let count = out_bytes.clone();
        let reader = thread::Builder::new().name("pty".into()).spawn(move || {
            let mut f = fs::File::from(master);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // EIO: the other side is closed
                    Err(_) => return,
                }
            }
        })?;
        Ok(Self {
            child,
            out_bytes,
            reader,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn bytes(&self) -> u64 {
        self.out_bytes.load(Ordering::Relaxed)
    }

    /// Fails if sriov-top has exited.
    fn alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!("sriov-top exited early ({st}); its stderr:\n{}", stderr());
        }
        Ok(())
    }

    /// SIGTERM; how it exited (SIGKILL after 20 s).
    fn stop(mut self) -> Result<ExitStatus> {
        kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM)?;
        let t = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait()? {
                break st;
            }
            if t.elapsed() > Duration::from_secs(20) {
                self.child.kill()?;
                bail!("sriov-top did not exit within 20 s of SIGTERM (killed)");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let _ = self.reader.join();
        Ok(st)
    }
}

fn stderr() -> String {
    fs::read_to_string(STDERR).unwrap_or_default()
}

/// sriov-top's BPF program fds.
fn bpf_progs(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog")
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Wait until the probes are loaded: program fds there and unchanged for
/// 2 s, and output on the pty. The count of programs; 0 when none came in
/// 120 s (loading failed: sriov-top goes on without).
fn wait_ready(top: &mut Top) -> Result<usize> {
    let t = Instant::now();
    let (mut last, mut since) = (0, Instant::now());
    loop {
        top.alive()?;
        let n = bpf_progs(top.pid()).len();
        if n != last {
            (last, since) = (n, Instant::now());
        }
        if n > 0 && since.elapsed() >= Duration::from_secs(2) && top.bytes() > 0 {
            println!(
                "lab_bench_ui: sriov-top up in {:.1} s with {n} BPF programs loaded",
                t.elapsed().as_secs_f64()
            );
            return Ok(n);
        }
        if t.elapsed() > Duration::from_secs(120) {
            println!(
                "lab_bench_ui: NO BPF programs in sriov-top after 120 s: it runs without eBPF"
            );
            return Ok(0);
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// The sum of `run_time_ns` over sriov-top's programs (bpf_stats).
fn bpf_run_ns(pid: u32) -> u64 {
    bpf_progs(pid)
        .iter()
        .filter_map(|fd| fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.strip_prefix("run_time_ns:")?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// What one window of ticks measured.
struct Window {
    usage: Usage,
    threads: (proc_cpu::Threads, proc_cpu::Threads),
    frames: Vec<u64>,
    out_bytes: u64,
    bpf_ns: u64,
}

/// Sample sriov-top for [`TICKS`] ticks, with the traffic's and the
/// probes' counts over the same time.
fn measure(top: &mut Top, vfs: &[VfNet]) -> Result<Window> {
    let stats_were_on = sys(BPF_STATS).is_ok_and(|s| s != "0");
    if !stats_were_on {
        fs::write(BPF_STATS, "1").context("enabling bpf_stats")?;
    }
    let pid = top.pid();
    let watch = Watch::new(pid)?;
    let (tx0, bytes0, bpf0) = (tx_packets(vfs)?, top.bytes(), bpf_run_ns(pid));
    let before = proc_cpu::threads(pid);
    let samples = watch.ticks(TICKS, Duration::from_secs(1), |_, _| top.alive());
    let after = proc_cpu::threads(pid);
    let (tx1, bytes1, bpf1) = (tx_packets(vfs), top.bytes(), bpf_run_ns(pid));
    // back as it was, also when the ticks failed
    if !stats_were_on {
        fs::write(BPF_STATS, "0")?;
    }
    let (samples, tx1) = (samples?, tx1?);
    Ok(Window {
        usage: Usage::of(&samples)?,
        threads: (before, after),
        frames: tx1
            .iter()
            .zip(&tx0)
            .map(|(b, a)| b.saturating_sub(*a))
            .collect(),
        out_bytes: bytes1 - bytes0,
        bpf_ns: bpf1.saturating_sub(bpf0),
    })
}

fn report(w: &Window, progs: usize, sent: (u64, u64)) {
    let who = "lab_bench_ui";
    let u = &w.usage;
    let total: u64 = w.frames.iter().sum();
    let (lo, hi) = (
        w.frames.iter().min().copied().unwrap_or(0),
        w.frames.iter().max().copied().unwrap_or(0),
    );
    println!(
        "{who}: traffic: {VFS} VFs sent {total} frames in the window = {:.0} frames/s ({:.0} to {:.0} per VF; offered {PPS_PER_VF} per VF; {} of {} sends refused over the run)",
        total as f64 / u.wall_s,
        lo as f64 / u.wall_s,
        hi as f64 / u.wall_s,
        sent.1,
        sent.0,
    );
    u.print(who);
    let ticks = ((u.user_s + u.sys_s) * u.hz).round() as u64;
    proc_cpu::print_threads(who, &w.threads.0, &w.threads.1, ticks, u.hz);
    println!(
        "{who}: terminal output {:.0} bytes/s; the probes' in-kernel run time (bpf_stats, charged to the tasks they interrupt, not in the figure) {:.2} ms/s = {:.3} % of a core",
        w.out_bytes as f64 / u.wall_s,
        w.bpf_ns as f64 / 1e6 / u.wall_s,
        w.bpf_ns as f64 / 1e7 / u.wall_s,
    );
    let pct = u.pct();
    let probes = if progs > 0 {
        "eBPF on".to_string()
    } else {
        "eBPF NOT loaded".to_string()
    };
    common::bench_row(
        &format!(
            "sriov-top live UI CPU, lab (TCG), {VFS} VFs with traffic, {probes}, 1 s ticks, {} s (ratio: ours / goal)",
            u.tick_ms.len()
        ),
        &format!("{pct:.2} %"),
        "none",
        pct / GOAL_PCT,
        "<= 1 % of a core",
        pct <= GOAL_PCT && progs > 0,
    );
}

fn main() -> Result<()> {
    let pf = std::env::var("SRIOV_LAB_PF").context("run inside the lab (SRIOV_LAB_PF)")?;
    let vfs = create_vfs(&pf, VFS)?;
    println!(
        "lab_bench_ui: {VFS} VFs on {pf}: {}; {SIZE}-byte frames, {PPS_PER_VF}/s from each; {TOP} --interval 1 on a {COLS}x{ROWS} pty, {TICKS} ticks",
        vfs.iter()
            .map(|v| v.ifname.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    let traffic = Traffic::start(&vfs)?;
    let mut top = Top::spawn()?;
    let progs = wait_ready(&mut top)?;
    thread::sleep(SETTLE);
    let startup = proc_cpu::stat(top.pid())?;
    let hz = proc_cpu::clk_tck();
    println!(
        "lab_bench_ui: start-up (probes loaded, first inventory) and {} s: user {:.2} s + sys {:.2} s (not in the figures below)",
        SETTLE.as_secs(),
        startup.utime as f64 / hz,
        startup.stime as f64 / hz,
    );
    let window = measure(&mut top, &vfs);
    let status = top.stop();
    let sent = traffic.finish();
    fs::write(format!("/sys/bus/pci/devices/{pf}/sriov_numvfs"), "0")?;
    report(&window?, progs, sent?);
    let status = status?;
    if !status.success() {
        bail!(
            "sriov-top exited {status} on SIGTERM (0 expected); its stderr:\n{}",
            stderr()
        );
    }
    println!("lab_bench_ui: SIGTERM: sriov-top exited 0");
    Ok(())
}
