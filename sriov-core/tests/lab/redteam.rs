//! The policy against a process that wants around it (issue #12). Each test
//! is one way that got through the first programs: another encoding of the
//! same value, another route to the same action, a forged identity, an
//! argument the program cannot read, a racing thread, a container closed
//! without an ioctl. Each asserts the kernel's errno, that nothing changed
//! (VF count, driver, the kernel's own count of pinned pages) and the
//! `policy_violation` record.
use std::{
    ffi::c_void,
    fs,
    io::Read as _,
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use sriov_core::{
    discover::discover,
    host::System,
    ops,
    policy::{Mode, Policy, VfRules, file::PolicyFile},
};
use sriov_ebpf::{
    VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
    record::{
        ACTION_AUDITED, ACTION_DENIED, PolicyRecord, V_DMA_QUOTA, V_DRIVER, V_NUMVFS_RANGE,
        V_NUMVFS_WRITER,
    },
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

use crate::{
    guest::{self, dev, pf, vf_bdf},
    policy::{enforce, pf_policy, policy, runtime, vfio_vf1, violations, write_as},
};

const MIB: u64 = 1 << 20;
const QUOTA: u64 = MIB;

/// `struct vfio_iommu_type1_dma_map`; `iova` and `size` atomics (the same
/// layout as `u64`) so that a second thread may change them.
#[repr(C)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: AtomicU64,
    size: AtomicU64,
}

impl DmaMap {
    fn new(vaddr: *mut u8, iova: u64, size: u64) -> Self {
        Self {
            argsz: size_of::<Self>() as u32,
            flags: 3, // READ | WRITE
            vaddr: vaddr as u64,
            iova: AtomicU64::new(iova),
            size: AtomicU64::new(size),
        }
    }
}

/// `struct vfio_iommu_type1_dma_unmap`.
#[repr(C)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

/// `ioctl(fd, cmd, arg)`: 0 or the errno.
fn ioctl(fd: i32, cmd: u32, arg: *const c_void) -> i32 {
    // SAFETY: `arg` points at the struct `cmd` reads (and may write back);
    // it outlives the call.
    let r = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

fn map(fd: i32, vaddr: *mut u8, iova: u64, size: u64) -> i32 {
    let m = DmaMap::new(vaddr, iova, size);
    ioctl(fd, VFIO_IOMMU_MAP_DMA, (&raw const m).cast())
}

/// Anonymous memory for DMA, `len` bytes, page aligned.
fn anon(len: u64) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; never unmapped (the test
    // process or the child ends first).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p.cast()
}

/// The kernel's own count of this process's pinned pages: VFIO type1
/// charges every page it pins to `mm->locked_vm` (`VmLck`), in bytes.
fn locked_bytes() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmLck in /proc/self/status");
    kb * 1024
}

/// The VF through VFIO: its container (the fd DMA maps go to) and device.
fn open_vf(vf: &str) -> (Arc<VfioContainer>, VfioDevice) {
    let container = Arc::new(VfioContainer::new(None).expect("open /dev/vfio/vfio"));
    let device = VfioDevice::new(&dev(vf), container.clone() as Arc<dyn VfioOps>, false)
        .expect("open the VF through VFIO");
    (container, device)
}

fn quota_policy(mode: Mode) -> Policy {
    let rules = VfRules {
        dma_quota_bytes: Some(QUOTA),
        ..Default::default()
    };
    policy(mode, 1, rules, vec![])
}

fn quota_records(v: &[PolicyRecord]) -> Vec<&PolicyRecord> {
    v.iter().filter(|x| x.rule == V_DMA_QUOTA).collect()
}

fn back_to_igbvf(vf: &str) {
    ops::bind(&System::live(), vf, "igbvf").expect("back to igbvf");
    guest::set_numvfs(0);
}

/// Run `attack` in a child process (a racing or exiting attacker must not
/// take the test with it). It reports through `out`, a pipe, line by line.
/// Returns what it wrote and how it ended.
fn in_child(attack: impl FnOnce(&mut fs::File)) -> (String, nix::sys::wait::WaitStatus) {
    use nix::unistd::{ForkResult, fork, pipe};
    let (r, w) = pipe().unwrap();
    // SAFETY: the test runs alone in its process (vm-test runs each test
    // with --test-threads=1); the child only runs `attack` and _exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(r);
            let mut out = fs::File::from(w);
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attack(&mut out)));
            // SAFETY: ends the child without running the parent's atexit
            // handlers or libtest.
            unsafe { libc::_exit(if ok.is_ok() { 0 } else { 101 }) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut text = String::new();
            let mut f = fs::File::from(r);
            let _ = f.read_to_string(&mut text);
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            (text, status)
        }
    }
}

fn say(out: &mut fs::File, line: &str) {
    use std::io::Write as _;
    let _ = writeln!(out, "{line}");
}

// ------------------------------------------------------------- DMA quota

/// `VFIO_IOMMU_UNMAP_DMA` of 16 MiB where nothing is mapped: it succeeds
/// and the kernel writes back that it unmapped nothing.
fn unmap_nothing(fd: i32) {
    let u = DmaUnmap {
        argsz: size_of::<DmaUnmap>() as u32,
        flags: 0,
        iova: 0x4000_0000,
        size: 16 * MIB,
    };
    assert_eq!(ioctl(fd, VFIO_IOMMU_UNMAP_DMA, (&raw const u).cast()), 0);
    assert_eq!(u.size, 0, "the kernel unmapped nothing");
}

/// Map the whole quota, then what `attack` does on the container fd: the
/// errno of one more map of 1 MiB after it, and the kernel's pinned bytes.
fn after(mode: Mode, attack: impl FnOnce(i32, *mut u8)) -> (i32, u64, Vec<PolicyRecord>) {
    let vf = vfio_vf1();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &quota_policy(mode));
    let (container, device) = open_vf(&vf);
    let fd = container.as_raw_fd();
    let buf = anon(4 * MIB);
    let before = locked_bytes();
    assert_eq!(map(fd, buf, 0x100_0000, QUOTA), 0, "the quota itself fits");
    attack(fd, buf);
    let errno = map(fd, buf, 0x800_0000, MIB);
    let pinned = locked_bytes() - before;
    eprintln!("used {:?}, pinned {pinned}", enf.dma_used());
    drop(device);
    drop(container);
    let v = violations(&rt, &mut ring);
    eprintln!("{v:#?}");
    assert_eq!(
        enf.dma_used().get(&vf),
        Some(&0),
        "closing the container gave every byte back"
    );
    drop(enf);
    drop(probes);
    back_to_igbvf(&vf);
    (errno, pinned, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn an_unmap_of_nothing_refunds_nothing() {
    let (errno, pinned, v) = after(Mode::Enforce, |fd, _| {
        unmap_nothing(fd);
    });
    assert_eq!(errno, libc::EPERM, "the quota is still used up");
    assert_eq!(pinned, QUOTA, "the kernel pinned the quota, no more");
    let q = quota_records(&v);
    assert_eq!(q.len(), 1, "{v:#?}");
    assert_eq!(
        (q[0].action, q[0].value, q[0].limit),
        (ACTION_DENIED, MIB, QUOTA)
    );
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_map_whose_struct_the_program_cannot_read_is_denied() {
    let (errno, pinned, v) = after(Mode::Enforce, |fd, buf| {
        // the struct on a page of a file that this process has not touched:
        // a non-faulting read of it fails, the kernel's copy faults it in
        let path = "/tmp/dma_map.bin";
        let m = DmaMap::new(buf, 0x400_0000, MIB);
        // SAFETY: the bytes of a plain #[repr(C)] struct.
        let bytes =
            unsafe { std::slice::from_raw_parts((&raw const m).cast::<u8>(), size_of::<DmaMap>()) };
        fs::write(path, bytes).unwrap();
        let f = fs::File::open(path).unwrap();
        // SAFETY: a fresh read-only shared mapping of the file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(ioctl(fd, VFIO_IOMMU_MAP_DMA, p), libc::EPERM, "fail closed");
    });
    assert_eq!(errno, libc::EPERM);
    assert_eq!(pinned, QUOTA);
    assert!(
        v.iter()
            .any(|x| x.rule == V_DMA_QUOTA && x.value == u64::MAX),
        "the unreadable argument is reported as such: {v:#?}"
    );
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn set_container_on_a_file_that_is_no_group_keeps_the_tracking() {
    let (errno, pinned, _) = after(Mode::Enforce, |fd, _| {
        let null = fs::File::open("/dev/null").unwrap();
        let arg: i32 = fd;
        assert_ne!(
            ioctl(
                null.as_raw_fd(),
                VFIO_GROUP_SET_CONTAINER,
                (&raw const arg).cast()
            ),
            0
        );
    });
    assert_eq!(errno, libc::EPERM);
    assert_eq!(pinned, QUOTA);
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_the_map_after_a_fake_unmap_through_and_reports_it() {
    let (errno, pinned, v) = after(Mode::Audit, |fd, _| {
        unmap_nothing(fd);
    });
    assert_eq!(errno, 0, "audit: the map goes through");
    assert_eq!(pinned, QUOTA + MIB);
    let q = quota_records(&v);
    assert!(
        !q.is_empty() && q.iter().all(|x| x.action == ACTION_AUDITED),
        "{v:#?}"
    );
}

/// A second thread flips the struct's `size` between 4 KiB and 64 MiB
/// while the first maps: whatever the program reads, the kernel copies the
/// struct again. The child says how many bytes the kernel had pinned for
/// it after each successful map.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_racing_thread_cannot_map_past_the_quota() {
    const BIG: u64 = 64 * MIB;
    let vf = vfio_vf1();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &quota_policy(Mode::Enforce));
    let (said, status) = in_child(|out| {
        let (container, _device) = open_vf(&vf);
        let fd = container.as_raw_fd();
        let buf = anon(BIG);
        let m = Arc::new(DmaMap::new(buf, 0, 4096));
        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    m.size.store(BIG, Ordering::Relaxed);
                    m.size.store(4096, Ordering::Relaxed);
                }
            })
        };
        let base = locked_bytes();
        for i in 0..400u64 {
            m.iova.store((1 << 32) + i * BIG, Ordering::Relaxed);
            if ioctl(fd, VFIO_IOMMU_MAP_DMA, Arc::as_ptr(&m).cast()) == 0 {
                say(out, &format!("pinned {}", locked_bytes() - base));
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        say(out, "done");
    });
    let pinned: Vec<u64> = said
        .lines()
        .filter_map(|l| l.strip_prefix("pinned ")?.parse().ok())
        .collect();
    let v = violations(&rt, &mut ring);
    eprintln!(
        "child: {status:?}, {} maps, max pinned {:?}, violations {}",
        pinned.len(),
        pinned.iter().max(),
        v.len()
    );
    let used = enf.dma_used();
    drop(enf);
    drop(probes);
    back_to_igbvf(&vf);
    assert!(
        pinned.iter().all(|&p| p <= QUOTA),
        "the kernel never held more than the quota for the VF: {:?}",
        pinned.iter().max()
    );
    assert_eq!(used.get(&vf), Some(&0), "all given back with the container");
    assert!(!quota_records(&v).is_empty(), "{v:#?}");
}

/// A process maps and exits without unmapping: the kernel unmaps its
/// container with no ioctl. The bytes come back; the next user of the VF
/// (a restarted VM) maps as before.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn bytes_come_back_when_a_process_exits_without_unmapping() {
    let vf = vfio_vf1();
    let rt = runtime();
    let (probes, _ring, enf) = enforce(&rt, &quota_policy(Mode::Enforce));
    let (said, status) = in_child(|out| {
        let (container, _device) = open_vf(&vf);
        let r = map(container.as_raw_fd(), anon(MIB), 0x100_0000, MIB);
        say(out, &format!("map {r}"));
        // SAFETY: exit at once: the kernel closes the fds, no unmap
        unsafe { libc::_exit(0) }
    });
    assert_eq!(said.trim(), "map 0", "{status:?}");
    let used_after_exit = enf.dma_used().get(&vf).copied();
    let (container, device) = open_vf(&vf);
    let again = map(container.as_raw_fd(), anon(MIB), 0x100_0000, MIB);
    drop(device);
    drop(container);
    drop(enf);
    drop(probes);
    back_to_igbvf(&vf);
    assert_eq!(used_after_exit, Some(0), "the exit gave the bytes back");
    assert_eq!(again, 0, "the next process maps within the quota");
}

// ------------------------------------------------------------- numvfs

fn numvfs_path() -> String {
    dev(&pf())
        .join("sriov_numvfs")
        .to_str()
        .unwrap()
        .to_string()
}

/// `write(2)` of `text` to `path`: 0 or the errno.
fn write_errno(path: &str, text: &[u8]) -> i32 {
    match fs::write(path, text) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn pf_only(mode: Mode, writers: Option<sriov_core::policy::Allow>) -> Policy {
    Policy {
        mode,
        vfs: vec![],
        pfs: vec![pf_policy(0, 2, writers)],
    }
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn numvfs_is_parsed_as_the_kernel_parses_it() {
    guest::set_numvfs(0);
    let path = numvfs_path();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &pf_only(Mode::Enforce, None));
    // (text, errno, VF count after): from 0 each time; max 2
    let cases: [(&str, i32, &str); 10] = [
        ("0x5", libc::EPERM, "0"),
        ("05", libc::EPERM, "0"),
        ("+5", libc::EPERM, "0"),
        ("0X3\n", libc::EPERM, "0"),
        ("0010", libc::EPERM, "0"),
        ("0x2", 0, "2"),
        ("0", 0, "0"),
        ("+02\n", 0, "2"),
        ("0x0", 0, "0"),
        ("2", 0, "2"),
    ];
    let mut got = Vec::new();
    for (text, _, _) in cases {
        let e = write_errno(&path, text.as_bytes());
        got.push((text, e, guest::read(&path)));
    }
    guest::set_numvfs(0);
    let v = violations(&rt, &mut ring);
    drop(enf);
    drop(probes);
    let want: Vec<_> = cases
        .iter()
        .map(|&(t, e, n)| (t, e, n.to_string()))
        .collect();
    assert_eq!(got, want);
    let values: Vec<u64> = v
        .iter()
        .filter(|x| x.rule == V_NUMVFS_RANGE)
        .map(|x| x.value)
        .collect();
    assert_eq!(values, [5, 5, 5, 3, 8], "the kernel's value in each record");
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_a_hex_numvfs_through_and_reports_its_value() {
    guest::set_numvfs(0);
    let path = numvfs_path();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &pf_only(Mode::Audit, None));
    let e = write_errno(&path, b"0x3");
    let n = guest::read(&path);
    guest::set_numvfs(0);
    let v = violations(&rt, &mut ring);
    drop(enf);
    drop(probes);
    assert_eq!((e, n.as_str()), (0, "3"));
    assert!(
        v.iter()
            .any(|x| x.rule == V_NUMVFS_RANGE && x.value == 3 && x.action == ACTION_AUDITED),
        "{v:#?}"
    );
}

// ------------------------------------------------------------- drivers

/// VF 1 off igbvf with `allowed_drivers = ["igbvf"]`; what `attack` does.
fn driver_attack(mode: Mode, attack: impl FnOnce(&str)) -> (Option<String>, Vec<PolicyRecord>) {
    guest::set_numvfs(2);
    let _ = guest::sh("modprobe", &["vfio-pci"]);
    let vf = vf_bdf(1);
    let rt = runtime();
    let rules = VfRules {
        allowed_drivers: Some(vec!["igbvf".into()]),
        ..Default::default()
    };
    let (probes, mut ring, enf) = enforce(&rt, &policy(mode, 1, rules, vec![]));
    guest::write(dev(&vf).join("driver/unbind"), &vf);
    attack(&vf);
    let driver = guest::link_name(dev(&vf).join("driver"));
    let v = violations(&rt, &mut ring);
    eprintln!("driver {driver:?}, {v:#?}");
    drop(enf);
    drop(probes);
    let _ = fs::write("/sys/bus/pci/drivers/vfio-pci/remove_id", "8086 10ca");
    if driver.is_some() {
        let _ = fs::write(dev(&vf).join("driver/unbind"), &vf);
    }
    let _ = fs::write("/sys/bus/pci/drivers/igbvf/bind", &vf);
    guest::set_numvfs(0);
    (driver, v)
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn new_id_cannot_hand_a_vf_to_a_driver_not_allowed() {
    let (driver, v) = driver_attack(Mode::Enforce, |_| {
        let e = write_errno("/sys/bus/pci/drivers/vfio-pci/new_id", b"8086 10ca");
        assert_eq!(e, libc::EPERM, "new_id");
        let e = write_errno("/sys/bus/pci/drivers/vfio-pci/new_id", b"0x8086 0x10CA\n");
        assert_eq!(e, libc::EPERM, "new_id in another spelling");
        // an ID no guarded VF has
        let e = write_errno("/sys/bus/pci/drivers/vfio-pci/new_id", b"1234 5678");
        assert_eq!(e, 0, "an unrelated new_id");
        let _ = fs::write("/sys/bus/pci/drivers/vfio-pci/remove_id", "1234 5678");
    });
    assert_eq!(driver, None, "VF 1 stays unbound");
    assert_eq!(v.iter().filter(|x| x.rule == V_DRIVER).count(), 2, "{v:#?}");
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn a_bind_with_junk_after_a_nul_is_still_a_bind_of_that_vf() {
    let (driver, v) = driver_attack(Mode::Enforce, |vf| {
        let mut text = vf.as_bytes().to_vec();
        text.extend_from_slice(b"\0junk");
        let e = write_errno("/sys/bus/pci/drivers/vfio-pci/bind", &text);
        assert_eq!(e, libc::EPERM, "bind with junk");
        let e = write_errno(
            "/sys/bus/pci/drivers/vfio-pci/bind",
            format!("{vf}\n").as_bytes(),
        );
        assert_eq!(e, libc::EPERM, "bind with a newline");
    });
    assert_eq!(driver, None, "VF 1 stays unbound");
    assert_eq!(v.iter().filter(|x| x.rule == V_DRIVER).count(), 2, "{v:#?}");
}

#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn audit_mode_lets_new_id_through_and_reports_it() {
    let (driver, v) = driver_attack(Mode::Audit, |_| {
        let e = write_errno("/sys/bus/pci/drivers/vfio-pci/new_id", b"8086 10ca");
        assert_eq!(e, 0);
    });
    assert_eq!(driver.as_deref(), Some("vfio-pci"));
    assert!(
        v.iter()
            .any(|x| x.rule == V_DRIVER && x.action == ACTION_AUDITED),
        "{v:#?}"
    );
}

/// `numvfs_writers` by executable: a process that names itself after the
/// allowed program (`prctl(PR_SET_NAME)`, or a symlink) is still what it
/// runs. The policy is parsed and resolved from its file, as `sriov-top
/// --policy` does.
#[test]
#[ignore = "needs root and an SR-IOV kernel: run with `cargo xtask vm-test`"]
fn numvfs_writers_go_by_the_executable_file_not_the_process_name() {
    guest::set_numvfs(0);
    let me = std::env::current_exe().unwrap();
    let text = format!(
        "version = 1\nmode = \"enforce\"\n\n[[pf]]\ndevice = \"{}\"\nnumvfs = {{ min = 0, max = 2 }}\n\
         numvfs_writers = {{ uids = [4242], executables = [\"{}\"] }}\n",
        pf(),
        me.display()
    );
    let inv = discover(&System::live()).unwrap();
    let pol = PolicyFile::parse(&text)
        .and_then(|f| f.resolve(&inv))
        .expect("the policy resolves");
    let path = numvfs_path();
    let rt = runtime();
    let (probes, mut ring, enf) = enforce(&rt, &pol);
    let comm = me.file_name().unwrap().to_str().unwrap();
    let comm = &comm[..comm.len().min(15)];
    // a shell named like this test program, through a symlink
    let forged = write_as(comm, &path, "1");
    // a process of this program, which renames itself
    // (the text on the heap: a forked child's read-only data pages are not
    // mapped until touched, and a buffer the program cannot read is refused)
    let (renamed, _) = in_child(|out| {
        nix::sys::prctl::set_name(c"intruder").unwrap();
        let on_the_heap = vec![b'1'];
        say(out, &format!("{}", write_errno(&path, &on_the_heap)));
    });
    let after_attacks = guest::read(&path);
    // this program itself: allowed
    let allowed = write_errno(&path, b"1");
    let after_allowed = guest::read(&path);
    let v = violations(&rt, &mut ring);
    eprintln!(
        "forged {forged:?}, renamed child {renamed:?}, after them {after_attacks}, \
         this program {allowed} then {after_allowed}: {v:#?}"
    );
    guest::set_numvfs(0);
    drop(enf);
    drop(probes);
    assert!(forged.contains("Operation not permitted"), "{forged}");
    assert_eq!(
        renamed.trim(),
        "0",
        "the renamed process is still this program"
    );
    assert_eq!(after_attacks, "1");
    assert_eq!((allowed, after_allowed.as_str()), (0, "1"));
    assert_eq!(
        v.iter().filter(|x| x.rule == V_NUMVFS_WRITER).count(),
        1,
        "{v:#?}"
    );
}
