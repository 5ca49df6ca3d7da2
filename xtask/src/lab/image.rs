//! The lab's initramfs: busybox, the guest kernel's modules, a few host tools
//! (the real `ip`, `bpftool`, `tmux`) with exactly the shared libraries `ldd`
//! lists for them and for the project binaries, and the `/init` script.
//! The project's own binaries are not in the image: they come over a
//! read-only 9p share at `/lab` (see `super::prepare_share`); results the
//! host checks after the run go to the writable 9p share at `/out` (see
//! `super::prepare_out`).
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{
    cpio::Cpio,
    modules::{LAB_MODULES, ModuleSet},
};
use crate::{
    kernels::KernelTree,
    util::{output, which},
};

/// Host programs copied into the image (with their libraries), if present.
const HOST_TOOLS: &[(&str, bool)] = &[
    // (name, required)
    ("ip", true),
    ("bpftool", false),
    ("ethtool", false),
    ("tmux", false),
    ("lspci", false),
    // util-linux: a lab test acts as another user with one capability
    ("setpriv", false),
    // where a lab process's time goes (`strace -c -f`), when the host has it
    ("strace", false),
];

/// Marker lines the guest prints on the serial console.
pub const MARK_READY: &str = "@@SRIOV-LAB-READY";
pub const MARK_EXIT: &str = "@@SRIOV-LAB-EXIT";
pub const MARK_INIT: &str = "@@SRIOV-LAB-INIT";

/// 9p mount tag of the writable share, mounted at `/out`.
pub const OUT_TAG: &str = "out";

/// What `/init` does once the lab is ready.
pub enum Job {
    /// Run `/lab/run/cmd.sh` and report its exit code.
    Exec,
    /// The main job: create `vfs` VFs, start traffic on them, then
    /// `sriov-top` on the console (and a shell after it) when the host's
    /// stdin is the terminal `tty`; else a few seconds of `sriov-top --json`.
    Main { vfs: u32, tty: Option<Tty> },
}

/// The host terminal the console is shown on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tty {
    pub rows: u16,
    pub cols: u16,
    /// `$TERM` (only `[A-Za-z0-9._+-]` is kept).
    pub term: String,
}

/// The main job's shell script (after the ready line).
fn main_job(vfs: u32, tty: Option<&Tty>) -> String {
    let mut s = format!(
        "echo {vfs} > /sys/bus/pci/devices/$PF/sriov_numvfs\n\
         for i in $(seq 100); do [ $(ls -d /sys/bus/pci/devices/$PF/virtfn*/net 2>/dev/null | wc -l) -ge {vfs} ] && break; sleep 0.1; done\n\
         echo; echo \"sriov lab: PF $PF ($PFN) with {vfs} VFs:\"\n\
         i=10\n\
         for v in /sys/bus/pci/devices/$PF/virtfn*; do\n\
         \tn=$(ls $v/net 2>/dev/null)\n\
         \techo \"  $(basename $v) -> $(basename $(readlink -f $v)) $n\"\n\
         \t[ -n \"$n\" ] || continue\n\
         \tip addr add 192.0.2.$i/24 dev $n; ip link set dev $n up; i=$((i+1))\n\
         \t# traffic: ARP broadcasts the 82576 switches to the PF and the other VFs\n\
         \t(while :; do arping -q -c 10 -I $n 192.0.2.99 >/dev/null 2>&1; done) &\n\
         done\n"
    );
    match tty {
        Some(t) => s.push_str(&format!(
            "stty rows {} cols {} 2>/dev/null\n\
             export TERM={}\n\
             echo 'starting sriov-top (q quits; then a shell, exit it to power off)'\n\
             sleep 1\n\
             setsid cttyhack sriov-top\n\
             echo 'project binaries are in /lab/bin (on PATH): sriov list, sriov-top --json, ...; exit the shell to power off'\n\
             setsid cttyhack /bin/sh -l\n",
            t.rows, t.cols, t.term
        )),
        None => s.push_str(
            "echo 'stdin is not a terminal: 5 s of `sriov-top --json` instead of the terminal UI'\n\
             sriov-top --json --duration 5\n",
        ),
    }
    s.push_str(&format!("echo \"{MARK_EXIT} 0\"\n"));
    s
}

/// Shared libraries (as absolute paths) that `bin` loads, per `ldd`.
fn ldd(bin: &Path) -> Result<BTreeSet<PathBuf>> {
    let out = output(Command::new("ldd").arg(bin));
    let out = match out {
        Ok(o) => o,
        // static binaries: "not a dynamic executable" exits 1
        Err(_) => return Ok(BTreeSet::new()),
    };
    let mut libs = BTreeSet::new();
    for line in out.lines() {
        if line.contains("not found") {
            bail!(
                "{}: a shared library is missing on the host: {}",
                bin.display(),
                line.trim()
            );
        }
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.insert(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn init_script(kver: &str, insmods: &str, job: &Job) -> String {
    let job = match job {
        Job::Exec => format!(
            "cd /tmp\n/bin/sh -c '. /etc/profile; . /lab/run/cmd.sh' </dev/null\nrc=$?\nsync\necho \"{MARK_EXIT} $rc\"\n"
        ),
        Job::Main { vfs, tty } => main_job(*vfs, tty.as_ref()),
    };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/lab/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=${{TERM:-linux}} SRIOV_LAB=1 LANG=C.UTF-8 RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /root /lab /out /sys/fs/bpf
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "{MARK_INIT} $(cut -d' ' -f1 /proc/uptime)"
fail() {{ echo "sriov lab: $*"; echo "{MARK_EXIT} 125"; poweroff -f; }}
{insmods}mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose lab /lab || fail "9p mount of the lab share failed"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,rw {OUT_TAG} /out || fail "9p mount of the writable out share failed"
ip link set lo up
hostname sriov-lab
# a hung guest gets an NMI from the host at its timeout: panic with every CPU's backtrace
echo 1 > /proc/sys/kernel/unknown_nmi_panic
echo 64 > /proc/sys/kernel/panic_print
PF=
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor):$(cat $d/device)" = "0x8086:0x10c9" ] && PF=$(basename $d)
done
[ -n "$PF" ] || fail "no 8086:10c9 (82576) PF found; lspci: $(lspci -nn 2>&1 | head -5)"
for i in $(seq 100); do [ -d /sys/bus/pci/devices/$PF/net ] && break; sleep 0.05; done
PFN=$(ls /sys/bus/pci/devices/$PF/net | head -1)
ip link set dev $PFN up || fail "cannot bring the PF $PFN up"
export SRIOV_LAB_PF=$PF SRIOV_LAB_PF_NETDEV=$PFN SRIOV_LAB_KVER={kver}
echo "{MARK_READY} $(cut -d' ' -f1 /proc/uptime) PF=$PF netdev=$PFN"
{job}poweroff -f
"#
    )
}

/// Add the regular files under `dir` (if it exists) at the same paths.
fn add_tree(img: &mut Cpio, dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e?;
        let p = e.path();
        let ty = e.file_type()?;
        if ty.is_dir() {
            add_tree(img, &p)?;
        } else if ty.is_file() {
            let data = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            img.file(&p.to_string_lossy(), 0o644, &data);
        }
    }
    Ok(())
}

pub struct Built {
    pub path: PathBuf,
    pub bytes: usize,
}

/// Write the initramfs for `job` to `out`. `extra_bins` are the binaries
/// that will run from the share (their libraries go into the image).
pub fn build(
    kernel: &KernelTree,
    job: &Job,
    extra_bins: &[PathBuf],
    module_cache: &Path,
    out: &Path,
) -> Result<Built> {
    let mut img = Cpio::new();
    for d in [
        "/bin",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
        "/etc",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/root",
        "/lab",
        "/out",
        "/var",
    ] {
        img.dir(d);
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() || !ldd(busybox)?.is_empty() {
        bail!(
            "/bin/busybox (static) is missing.\nFix: cargo xtask setup   (installs busybox-static)"
        );
    }
    img.file("/bin/busybox", 0o755, &fs::read(busybox)?);
    img.symlink("/bin/sh", "busybox");
    img.file(
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    img.file("/etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");

    let mut libs = BTreeSet::new();
    // Debian's busybox shell runs its own applets before PATH lookups, so the
    // real tools are wrapped in shell functions that /etc/profile defines.
    let mut profile = String::from("export PATH=/lab/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    for (tool, required) in HOST_TOOLS {
        match which(tool) {
            Some(p) => {
                libs.extend(ldd(&p)?);
                img.file(&format!("/usr/bin/{tool}"), 0o755, &fs::read(&p)?);
                profile.push_str(&format!("{tool}() {{ /usr/bin/{tool} \"$@\"; }}\n"));
            }
            None if *required => bail!("host tool `{tool}` not found.\nFix: cargo xtask setup"),
            None => {}
        }
    }
    img.file("/etc/profile", 0o644, profile.as_bytes());
    if which("tmux").is_some() {
        // tmux and TUIs need a terminfo entry for the console and for tmux itself
        for t in [
            "l/linux",
            "v/vt100",
            "x/xterm",
            "x/xterm-256color",
            "s/screen",
            "t/tmux",
            "t/tmux-256color",
        ] {
            for base in ["/usr/share/terminfo", "/lib/terminfo"] {
                let p = Path::new(base).join(t);
                if let Ok(data) = fs::read(&p) {
                    img.file(&format!("/usr/share/terminfo/{t}"), 0o644, &data);
                    break;
                }
            }
        }
    }
    // tmux refuses to start without a UTF-8 locale; glibc's C.UTF-8 is files
    add_tree(&mut img, Path::new("/usr/lib/locale/C.utf8"))?;
    if let Ok(ids) = fs::read("/usr/share/misc/pci.ids") {
        img.file("/usr/share/misc/pci.ids", 0o644, &ids);
    }
    for b in extra_bins {
        libs.extend(ldd(b).with_context(|| format!("inspecting {}", b.display()))?);
    }
    for lib in &libs {
        let real = fs::canonicalize(lib).with_context(|| format!("resolving {}", lib.display()))?;
        img.file(&lib.to_string_lossy(), 0o755, &fs::read(&real)?);
    }

    let set = ModuleSet::read(&kernel.modules_dir())?;
    let order = set.load_order(LAB_MODULES)?;
    let paths = set.install(
        &kernel.modules_dir(),
        &kernel.version,
        &order,
        &module_cache.join(&kernel.version),
        &mut img,
    )?;
    let insmods: String = paths
        .iter()
        .map(|p| format!("insmod {p} || fail \"insmod {p} failed\"\n"))
        .collect();

    img.file(
        "/init",
        0o755,
        init_script(&kernel.version, &insmods, job).as_bytes(),
    );
    let data = img.finish();
    fs::create_dir_all(out.parent().expect("has parent"))?;
    fs::write(out, &data).with_context(|| format!("writing {}", out.display()))?;
    Ok(Built {
        path: out.to_path_buf(),
        bytes: data.len(),
    })
}
