//! Helpers for tests running in the lab guest: locate the 82576 PF, change
//! its VF count, wait for sysfs to settle, read `/proc/interrupts`.
#![allow(dead_code)]
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// The PF's BDF, as found by the lab's /init.
pub fn pf() -> String {
    std::env::var("SRIOV_LAB_PF").expect(
        "SRIOV_LAB_PF is set by the lab's /init; run these tests with `cargo xtask vm-test`",
    )
}

pub fn dev(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

pub fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

pub fn write(path: impl AsRef<Path>, value: &str) {
    let path = path.as_ref();
    fs::write(path, value)
        .unwrap_or_else(|e| panic!("writing {value:?} to {}: {e}", path.display()));
}

/// Last path component of a symlink's target (driver name, BDF, group).
pub fn link_name(path: impl AsRef<Path>) -> Option<String> {
    fs::read_link(path.as_ref())
        .ok()?
        .file_name()?
        .to_str()
        .map(String::from)
}

/// How long a VF's netdev may take to get carrier after `ip link set up`:
/// igbvf learns the PF's link from its watchdog over the mailbox, which
/// took over 20 s in one VM of four under TCG (CI rehearsal, 6.1).
pub const CARRIER_WAIT: Duration = Duration::from_secs(60);

/// Wait until netdev `ifname` has carrier (its `carrier` file reads 1).
pub fn wait_carrier(ifname: &str, limit: Duration) {
    wait_for(&format!("carrier on {ifname}"), limit, || {
        fs::read_to_string(format!("/sys/class/net/{ifname}/carrier"))
            .is_ok_and(|c| c.trim() == "1")
    });
}

/// Poll `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Set the PF's VF count the way an operator does (0 first), and wait until
/// every VF is bound to a driver with a netdev.
/// Whether the running kernel has function `name`, by its own symbol
/// table (`/proc/kallsyms`, as root).
pub fn kernel_has(name: &str) -> bool {
    read("/proc/kallsyms")
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(name))
}

pub fn set_numvfs(n: u32) {
    let pf = dev(&pf());
    if read(pf.join("sriov_numvfs")) != "0" {
        write(pf.join("sriov_numvfs"), "0");
    }
    if n > 0 {
        write(pf.join("sriov_numvfs"), &n.to_string());
        wait_for(
            &format!("{n} VFs bound with netdevs"),
            Duration::from_secs(30),
            || {
                (0..n).all(|i| {
                    let vf = pf.join(format!("virtfn{i}"));
                    vf.join("driver").exists() && vf.join("net").is_dir()
                })
            },
        );
    }
}

/// BDF of VF `i` of the lab PF.
pub fn vf_bdf(i: u32) -> String {
    link_name(dev(&pf()).join(format!("virtfn{i}")))
        .unwrap_or_else(|| panic!("PF has no virtfn{i}"))
}

pub fn netdev_of(bdf: &str) -> String {
    let dir = dev(bdf).join("net");
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .next()
        .and_then(|e| e.file_name().into_string().ok())
        .unwrap_or_else(|| panic!("{bdf} has no netdev"))
}

/// IRQ numbers in the device's `msi_irqs` directory.
pub fn msi_irqs(bdf: &str) -> Vec<u32> {
    let dir = dev(bdf).join("msi_irqs");
    let mut v: Vec<u32> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Total count per IRQ number from /proc/interrupts (summed over CPUs).
pub fn proc_interrupts() -> BTreeMap<u32, u64> {
    let text = read("/proc/interrupts");
    let mut lines = text.lines();
    let ncpu = lines
        .next()
        .map(|h| h.split_whitespace().count())
        .unwrap_or(0);
    lines
        .filter_map(|l| {
            let (irq, rest) = l.trim_start().split_once(':')?;
            let irq: u32 = irq.parse().ok()?;
            let sum = rest
                .split_whitespace()
                .take(ncpu)
                .filter_map(|c| c.parse::<u64>().ok())
                .sum();
            Some((irq, sum))
        })
        .collect()
}

/// Run a command (iproute2 and friends) and panic with its stderr on failure.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "`{cmd} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bring a VF's netdev up with 192.0.2.1/24, wait for carrier (it follows
/// the PF's link) and send `packets` UDP broadcasts through it, so its TX and
/// RX vectors fire. Returns the netdev name.
pub fn vf_traffic(vf: &str, packets: u32) -> String {
    vf_traffic_from(vf, "192.0.2.1", packets)
}

/// [`vf_traffic`] from `addr`/24 (given to the netdev unless it has it
/// already, so it can be called again), for several VFs at once.
pub fn vf_traffic_from(vf: &str, addr: &str, packets: u32) -> String {
    let ifname = netdev_of(vf);
    let cidr = format!("{addr}/24");
    if !sh("ip", &["-o", "addr", "show", "dev", &ifname]).contains(&format!("inet {cidr} ")) {
        sh("ip", &["addr", "add", &cidr, "dev", &ifname]);
    }
    sh("ip", &["link", "set", "dev", &ifname, "up"]);
    wait_carrier(&ifname, CARRIER_WAIT);
    let sock = std::net::UdpSocket::bind(format!("{addr}:0")).expect("bind on the VF's address");
    sock.set_broadcast(true).expect("SO_BROADCAST");
    for i in 0..packets {
        sock.send_to(&i.to_be_bytes(), "192.0.2.255:9")
            .expect("send");
    }
    ifname
}

/// A command's stdout and stderr, trimmed, one after the other.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Open `/dev/vfio/<group>` as `uid` in a shell: "opened" or the error.
pub fn open_group_as(group: &str, uid: u32) -> String {
    use std::os::unix::process::CommandExt as _;
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("exec 3< /dev/vfio/{group} && echo opened")])
        .uid(uid)
        .output()
        .expect("sh");
    output_text(&out)
}

/// SIGINT to `child`, which must exit with status 0 within 10 s.
pub fn interrupt_and_wait(child: std::process::Child) {
    signal_and_wait(child, nix::sys::signal::Signal::SIGINT);
}

/// `sig` to `child`, which must exit with status 0 within 10 s.
pub fn signal_and_wait(mut child: std::process::Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{child:?} exited with {status} after {sig}"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the process did not stop on {sig}");
}

/// The guest's writable 9p share (`target/lab/out` on the host).
pub const OUT_DIR: &str = "/out";

/// Keep a captured `sriov-top --json` stream for the host: copied to
/// `/out/streams/<name>.ndjson`, where `cargo xtask vm-test` validates every
/// line against `docs/schema/events-v1.json` after the VM ends (the guest
/// has no validator). `name` is unique per test (`[A-Za-z0-9_-]`).
pub fn keep_stream(path: impl AsRef<Path>, name: &str) {
    let path = path.as_ref();
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "keep_stream: {name:?} is not a plain file name ([A-Za-z0-9_-])"
    );
    let mounts = read("/proc/mounts");
    assert!(
        mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(OUT_DIR)),
        "keep_stream: {OUT_DIR} is not mounted (the lab's writable 9p share; \
         run these tests with `cargo xtask vm-test`): {} cannot be kept",
        path.display()
    );
    let data =
        fs::read(path).unwrap_or_else(|e| panic!("keep_stream: reading {}: {e}", path.display()));
    let dir = Path::new(OUT_DIR).join("streams");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let dst = dir.join(format!("{name}.ndjson"));
    let mut f =
        fs::File::create(&dst).unwrap_or_else(|e| panic!("creating {}: {e}", dst.display()));
    std::io::Write::write_all(&mut f, &data)
        .and_then(|()| f.sync_all())
        .unwrap_or_else(|e| panic!("writing {}: {e}", dst.display()));
}
