//! Host tests of [`super`] on fixture trees: `/proc/<pid>/{fd/,comm,exe,
//! cgroup,cmdline}` with real symlinks (the fd links dangle in the fixture,
//! as readlink needs only their target text), and sysfs `vfio-dev`
//! directories.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use super::*;
use crate::{
    discover::{Pf, Vf},
    host::{Host, System, VfNetlink},
};

const DOCKER_ID: &str = "4c1d5bd0a6a7e0ea0d6f6a1f5bb3e2d2c9c8a5f4e3d2c1b0a99887766554433a";
const CONTAINERD_ID: &str = "9e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
const CRIO_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const POD_UID: &str = "1f4a2c9e_5b7d_4e21_9c3a_8d6e0f1b2a3c";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        // /proc's other entries: not processes
        for name in ["self", "sys", "net", "cpuinfo"] {
            std::fs::create_dir_all(f.path(&format!("/proc/{name}"))).unwrap();
        }
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    fn host(&self) -> System {
        System::fixture(self.dir.path())
    }

    /// A process as the kernel shows it; `fds` are (fd, link target).
    fn process(&self, pid: u32, comm: &str, exe: Option<&str>, cgroup: &str, cmdline: &[&str]) {
        let dir = self.path(&format!("/proc/{pid}"));
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        let mut c = cmdline.join("\0");
        c.push('\0');
        std::fs::write(dir.join("cmdline"), c).unwrap();
        if let Some(exe) = exe {
            symlink(exe, dir.join("exe")).unwrap();
        }
        // the fds every process has
        self.fds(
            pid,
            &[(0, "/dev/null"), (1, "pipe:[31337]"), (2, "socket:[4711]")],
        );
    }

    /// The fds of `pid`; a VFIO node one of them names exists in
    /// `/dev/vfio`, as it does while it is open.
    fn fds(&self, pid: u32, fds: &[(u32, &str)]) {
        let dir = self.path(&format!("/proc/{pid}/fd"));
        for (fd, target) in fds {
            symlink(target, dir.join(fd.to_string())).unwrap();
            if target.starts_with("/dev/vfio/") {
                self.node(target);
            }
        }
    }

    /// A device node (a plain file here).
    fn node(&self, path: &str) {
        let p = self.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }

    /// The iommufd cdev of a VF bound to vfio-pci.
    fn cdev(&self, bdf: &str, name: &str) {
        let dir = self.path(&format!("/sys/bus/pci/devices/{bdf}/vfio-dev/{name}"));
        std::fs::create_dir_all(dir).unwrap();
    }
}

/// VF `n` of PF 0000:01:00.0 is 0000:01:10.<n>, in IOMMU group 12 + n.
fn bdf(n: u32) -> String {
    format!("0000:01:10.{n}")
}

fn pfs(vfs: &[(u32, Option<u32>)]) -> Vec<Pf> {
    vec![Pf {
        bdf: "0000:01:00.0".into(),
        vendor_id: "0x8086".into(),
        device_id: "0x10c9".into(),
        vendor_name: None,
        device_name: None,
        driver: Some("igb".into()),
        netdev: Some("enp1s0".into()),
        link: None,
        total_vfs: 7,
        num_vfs: u32::try_from(vfs.len()).unwrap(),
        numa_node: None,
        vfs: vfs
            .iter()
            .map(|&(n, group)| Vf {
                index: n,
                bdf: bdf(n),
                device_id: Some("0x10ca".into()),
                driver: Some("vfio-pci".into()),
                netdev: None,
                iommu_group: group,
                config: None,
                owner: None,
            })
            .collect(),
    }]
}

/// Four VFs, each in its own group 12..=15.
fn four_vfs() -> Vec<Pf> {
    pfs(&[(0, Some(12)), (1, Some(13)), (2, Some(14)), (3, Some(15))])
}

fn pids(map: &BTreeMap<String, Vec<Holder>>) -> BTreeMap<String, Vec<u32>> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|h| h.pid).collect()))
        .collect()
}

/// A libvirt QEMU: the full command line's `-name guest=...` beats the
/// domain name of its scope (which libvirt shortens to 20 characters), the
/// VF is found through its group, and duplicated group fds and the
/// container fd give one holder.
#[test]
fn a_libvirt_qemu_holding_a_group_is_the_vm_named_on_its_command_line() {
    let f = Fixture::new();
    let cgroup = "0::/machine.slice/machine-qemu\\x2d1\\x2dweb1\\x2dproduction\\x2ddata.scope/libvirt/emulator\n";
    f.process(
        4242,
        "qemu-system-x86",
        Some("/usr/bin/qemu-system-x86_64"),
        cgroup,
        &[
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=web1-production-database,debug-threads=on",
            "-S",
            "-machine",
            "pc-q35-7.2,usb=off,dump-guest-core=off",
            "-device",
            "{\"driver\":\"vfio-pci\",\"host\":\"0000:01:10.0\",\"id\":\"hostdev0\"}",
        ],
    );
    f.fds(
        4242,
        &[
            (19, "/dev/kvm"),
            (20, "/dev/vfio/vfio"),
            (21, "/dev/vfio/12"),
            (22, "anon_inode:[eventfd]"),
            (23, "/dev/vfio/12"),
        ],
    );
    let got = vfio_holders(&f.host(), &four_vfs());
    let want = Holder {
        pid: 4242,
        comm: "qemu-system-x86".into(),
        exe: Some("/usr/bin/qemu-system-x86_64".into()),
        cgroup: Some(
            "/machine.slice/machine-qemu\\x2d1\\x2dweb1\\x2dproduction\\x2ddata.scope/libvirt/emulator"
                .into(),
        ),
        path: "/dev/vfio/12".into(),
        vm: Some("web1-production-database".into()),
        container: None,
    };
    assert_eq!(got, BTreeMap::from([(bdf(0), vec![want])]));
}

/// Without `-name` on its command line, a QEMU's VM is the libvirt domain
/// of its `machine.slice` scope, unescaped.
#[test]
fn without_a_name_on_the_command_line_the_vm_is_the_libvirt_scope_domain() {
    let f = Fixture::new();
    f.process(
        777,
        "qemu-kvm",
        Some("/usr/libexec/qemu-kvm"),
        "0::/machine.slice/machine-qemu\\x2d3\\x2ddb\\x2dprimary.scope/libvirt/emulator\n",
        &["/usr/libexec/qemu-kvm", "-S", "-m", "4096"],
    );
    f.fds(777, &[(30, "/dev/vfio/13")]);
    let got = vfio_holders(&f.host(), &four_vfs());
    assert_eq!(pids(&got), BTreeMap::from([(bdf(1), vec![777])]));
    assert_eq!(got[&bdf(1)][0].vm.as_deref(), Some("db-primary"));
    assert_eq!(got[&bdf(1)][0].container, None);
}

#[test]
fn libvirt_scope_names_decode_to_the_domain() {
    let cases = [
        (
            "/machine.slice/machine-qemu\\x2d3\\x2ddb\\x2dprimary.scope",
            Some("db-primary"),
        ),
        (
            "/machine.slice/machine-qemu\\x2d12\\x2dvm1.scope/libvirt/vcpu0",
            Some("vm1"),
        ),
        // libvirt before 3.x: no id
        (
            "/machine.slice/machine-qemu\\x2dlegacy.scope",
            Some("legacy"),
        ),
        ("/machine.slice/machine-lxc\\x2d5\\x2dct1.scope", None),
        ("/system.slice/libvirtd.service", None),
    ];
    for (path, want) in cases {
        assert_eq!(libvirt_domain(path).as_deref(), want, "{path}");
    }
    assert_eq!(systemd_unescape("a\\x2db\\x5cc\\x2"), "a-b\\c\\x2");
}

#[test]
fn qemu_name_reads_every_form_of_the_name_option() {
    let cmd = |args: &[&str]| {
        let mut c = args.join("\0");
        c.push('\0');
        qemu_name(c.as_bytes())
    };
    let q = "qemu-system-x86_64";
    assert_eq!(cmd(&[q, "-name", "web1"]).as_deref(), Some("web1"));
    assert_eq!(
        cmd(&[q, "-name", "web1,debug-threads=on"]).as_deref(),
        Some("web1")
    );
    assert_eq!(
        cmd(&[q, "-name", "guest=a,,b,debug-threads=on", "-m", "1G"]).as_deref(),
        Some("a,b")
    );
    assert_eq!(
        cmd(&[q, "-name", "process=qemu-x,guest=vm2"]).as_deref(),
        Some("vm2")
    );
    assert_eq!(cmd(&[q, "--name", "vm3"]).as_deref(), Some("vm3"));
    assert_eq!(cmd(&[q, "-m", "1G", "-name"]), None);
    assert_eq!(cmd(&[q, "-m", "1G"]), None);
}

/// DPDK apps in containers of docker (systemd driver), containerd under
/// Kubernetes and CRI-O: the container id comes from the cgroup path.
#[test]
fn containers_holding_groups_are_named_by_their_cgroup_ids() {
    let f = Fixture::new();
    let cases = [
        (
            1001,
            format!("0::/system.slice/docker-{DOCKER_ID}.scope\n"),
            DOCKER_ID,
        ),
        (
            1002,
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UID}.slice/cri-containerd-{CONTAINERD_ID}.scope\n"
            ),
            CONTAINERD_ID,
        ),
        (
            1003,
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID}.slice/crio-{CRIO_ID}.scope\n"
            ),
            CRIO_ID,
        ),
    ];
    for (i, (pid, cgroup, _)) in cases.iter().enumerate() {
        f.process(
            *pid,
            "dpdk-testpmd",
            Some("/usr/bin/dpdk-testpmd"),
            cgroup,
            &["dpdk-testpmd", "-l", "0-1"],
        );
        let group = 12 + u32::try_from(i).unwrap();
        f.fds(
            *pid,
            &[(5, "/dev/vfio/vfio"), (6, &format!("/dev/vfio/{group}"))],
        );
    }
    let got = vfio_holders(&f.host(), &four_vfs());
    assert_eq!(got.len(), 3);
    for (i, (pid, _, id)) in cases.iter().enumerate() {
        let h = &got[&bdf(u32::try_from(i).unwrap())];
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].pid, h[0].container.as_deref()), (*pid, Some(*id)));
        assert_eq!(h[0].vm, None);
    }
}

#[test]
fn container_ids_in_every_cgroup_layout() {
    let cases = [
        format!("/system.slice/docker-{DOCKER_ID}.scope"),
        format!("/system.slice/docker-{DOCKER_ID}.scope/init.scope"),
        format!("/docker/{DOCKER_ID}"),
        format!("/kubepods/besteffort/pod{POD_UID}/{DOCKER_ID}"),
        format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UID}.slice/cri-containerd-{DOCKER_ID}.scope"
        ),
        format!("/machine.slice/libpod-{DOCKER_ID}.scope/container"),
        format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{DOCKER_ID}.scope"
        ),
        format!("/crio-{DOCKER_ID}.scope"),
    ];
    for path in &cases {
        assert_eq!(container_id(path).as_deref(), Some(DOCKER_ID), "{path}");
    }
    for path in [
        "/system.slice/sshd.service".to_string(),
        format!("/system.slice/crio-conmon-{DOCKER_ID}.scope"),
        format!("/docker/{}", &DOCKER_ID[..63]),
        format!("/docker/{}", DOCKER_ID.to_uppercase()),
    ] {
        assert_eq!(container_id(&path), None, "{path}");
    }
}

/// iommufd: QEMU opens `/dev/iommu` and the VF's cdev, which sysfs lists in
/// the VF's `vfio-dev` directory.
#[test]
fn an_iommufd_cdev_maps_to_the_vf_whose_vfio_dev_lists_it() {
    let f = Fixture::new();
    f.cdev(&bdf(1), "vfio0");
    f.cdev(&bdf(2), "vfio1");
    f.process(
        5000,
        "qemu-system-x86",
        Some("/usr/bin/qemu-system-x86_64"),
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        &["qemu-system-x86_64", "-name", "cdev-vm"],
    );
    f.fds(5000, &[(10, "/dev/iommu"), (11, "/dev/vfio/devices/vfio1")]);
    let got = vfio_holders(&f.host(), &four_vfs());
    assert_eq!(pids(&got), BTreeMap::from([(bdf(2), vec![5000])]));
    let h = &got[&bdf(2)][0];
    assert_eq!(h.path, "/dev/vfio/devices/vfio1");
    assert_eq!(h.vm.as_deref(), Some("cdev-vm"));
    assert_eq!(
        h.cgroup.as_deref(),
        Some("/user.slice/user-1000.slice/session-3.scope")
    );
    // the group and the cdev of one VF: one holder, with the group
    f.process(5001, "vfio-user", None, "0::/\n", &["vfio-user"]);
    f.fds(
        5001,
        &[
            (3, "/dev/vfio/devices/vfio0"),
            (4, "/dev/vfio/13"),
            (5, "/dev/vfio/devices/vfio0"),
        ],
    );
    let got = vfio_holders(&f.host(), &four_vfs());
    assert_eq!(got[&bdf(1)].len(), 1);
    assert_eq!(got[&bdf(1)][0].path, "/dev/vfio/13");
}

/// The VFIO container `/dev/vfio/vfio` is no VF: a process with only it is
/// nobody's holder, and one with a group too is reported with the group.
#[test]
fn the_vfio_container_is_not_a_holding() {
    let f = Fixture::new();
    f.process(60, "app", None, "0::/\n", &["app"]);
    f.fds(60, &[(3, "/dev/vfio/vfio")]);
    f.process(61, "app", None, "0::/\n", &["app"]);
    f.fds(61, &[(3, "/dev/vfio/vfio"), (4, "/dev/vfio/15")]);
    let got = vfio_holders(&f.host(), &four_vfs());
    assert_eq!(pids(&got), BTreeMap::from([(bdf(3), vec![61])]));
    let h = &got[&bdf(3)][0];
    assert_eq!(h.path, "/dev/vfio/15");
    // no exe link (a kernel thread, or EACCES): None; `0::/` is the root
    assert_eq!((h.exe.as_deref(), h.cgroup.as_deref()), (None, Some("/")));
}

/// One process with two groups is a holder of both VFs; a group with two VFs
/// (behind one bridge without ACS) makes its holder hold both.
#[test]
fn a_process_holding_two_groups_holds_both_vfs_and_a_shared_group_both_its_vfs() {
    let f = Fixture::new();
    f.process(
        90,
        "dpdk-testpmd",
        None,
        "0::/system.slice/dpdk.service\n",
        &["dpdk-testpmd"],
    );
    f.fds(90, &[(7, "/dev/vfio/12"), (8, "/dev/vfio/14")]);
    f.process(
        9,
        "vpp_main",
        None,
        "0::/system.slice/vpp.service\n",
        &["vpp"],
    );
    f.fds(9, &[(7, "/dev/vfio/14")]);
    let pfs = pfs(&[(0, Some(12)), (1, Some(14)), (2, Some(14)), (3, None)]);
    let got = vfio_holders(&f.host(), &pfs);
    assert_eq!(
        pids(&got),
        BTreeMap::from([
            (bdf(0), vec![90]),
            (bdf(1), vec![9, 90]),
            (bdf(2), vec![9, 90]),
        ])
    );
    assert_eq!(got[&bdf(1)][1].path, "/dev/vfio/14");
    assert_eq!(got[&bdf(0)][0].path, "/dev/vfio/12");
}

/// A fixture host that refuses some paths, as `/proc` does for a process
/// of another user (EACCES) or one that exited mid-scan (ENOENT).
struct Refusing {
    inner: System,
    refused: Vec<(PathBuf, i32)>,
}

impl Refusing {
    fn check(&self, path: &Path) -> io::Result<()> {
        match self.refused.iter().find(|(p, _)| p == path) {
            Some((_, errno)) => Err(io::Error::from_raw_os_error(*errno)),
            None => Ok(()),
        }
    }
}

impl Host for Refusing {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.check(path)?;
        self.inner.read(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.inner.write(path, value)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.check(path)?;
        self.inner.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.check(path)?;
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn netlink(&self) -> Option<&dyn VfNetlink> {
        None
    }
    fn writes(&self) -> usize {
        0
    }
}

/// Processes that cannot be read are left out, and the scan goes on: an
/// fd directory refused (EACCES), one gone (the process exited), a process
/// whose comm vanished after its fds were read, an fd link that vanished.
#[test]
fn unreadable_and_vanished_processes_are_skipped() {
    let f = Fixture::new();
    for pid in [100, 101, 102, 103] {
        f.process(
            pid,
            "holder",
            Some("/usr/bin/holder"),
            "0::/\n",
            &["holder"],
        );
        f.fds(pid, &[(3, "/dev/vfio/12"), (4, "/dev/vfio/13")]);
    }
    let host = Refusing {
        inner: f.host(),
        refused: vec![
            (PathBuf::from("/proc/100/fd"), libc::EACCES),
            (PathBuf::from("/proc/101/fd"), libc::ENOENT),
            (PathBuf::from("/proc/102/comm"), libc::ESRCH),
            (PathBuf::from("/proc/103/fd/3"), libc::ENOENT),
        ],
    };
    let got = vfio_holders(&host, &four_vfs());
    assert_eq!(pids(&got), BTreeMap::from([(bdf(1), vec![103])]));
}

/// No VFs, or a `/proc` that cannot be listed: nothing, no panic.
#[test]
fn nothing_to_hold_or_no_proc_gives_an_empty_map() {
    let f = Fixture::new();
    f.process(1, "init", None, "0::/init.scope\n", &["/sbin/init"]);
    f.fds(1, &[(3, "/dev/vfio/12")]);
    assert!(vfio_holders(&f.host(), &[]).is_empty());
    let host = Refusing {
        inner: f.host(),
        refused: vec![(PathBuf::from("/proc"), libc::EACCES)],
    };
    assert!(vfio_holders(&host, &four_vfs()).is_empty());
    assert_eq!(pids(&vfio_holders(&f.host(), &four_vfs()))[&bdf(0)], [1]);
}

#[test]
fn the_unified_cgroup_is_the_0_line() {
    let hybrid =
        "12:devices:/system.slice/docker.service\n1:name=systemd:/init.scope\n0::/init.scope\n";
    assert_eq!(unified_cgroup(hybrid), Some("/init.scope"));
    assert_eq!(unified_cgroup("12:devices:/\n1:name=systemd:/\n"), None);
}

/// With `/dev/vfio` there but no node of a VF's group in it and no device
/// cdev, no process can hold a VF through VFIO: `/proc` is not read at all
/// (a host whose VFs all have kernel drivers pays nothing every few
/// seconds). The container's and other groups' nodes do not count; a cdev
/// or the group's node makes the scan run, and so does a `/dev/vfio` that
/// is absent or cannot be listed (it tells nothing).
#[test]
fn proc_is_read_only_when_a_vf_can_be_opened_through_vfio() {
    let f = Fixture::new();
    f.process(7, "qemu", None, "0::/init.scope\n", &["qemu"]);
    let counted = |host: &dyn Host| {
        let c = crate::host::counted::Counted::new(host);
        let got = pids(&vfio_holders(&c, &four_vfs()));
        (got, c.take().1)
    };
    // no /dev/vfio: the scan runs (the 3 fd links read, none a VF's)
    assert_eq!(counted(&f.host()), (BTreeMap::new(), 3));
    // the container and another device's group: nothing read
    f.fds(7, &[(3, "/dev/vfio/vfio"), (4, "/dev/vfio/40")]);
    assert_eq!(counted(&f.host()), (BTreeMap::new(), 0));
    // an empty cdev directory: nothing
    std::fs::create_dir_all(f.path("/dev/vfio/devices")).unwrap();
    assert_eq!(counted(&f.host()), (BTreeMap::new(), 0));
    // /dev/vfio unreadable: the scan runs
    let refusing = Refusing {
        inner: f.host(),
        refused: vec![(PathBuf::from("/dev/vfio"), libc::EACCES)],
    };
    assert_eq!(counted(&refusing), (BTreeMap::new(), 5));
    // a cdev: the scan runs (6 fd links, then the holder's exe) and finds
    // the holder through the VF's vfio-dev
    f.cdev(&bdf(2), "vfio3");
    f.fds(7, &[(5, "/dev/vfio/devices/vfio3")]);
    assert_eq!(counted(&f.host()), (BTreeMap::from([(bdf(2), vec![7])]), 7));
    // only the VF's group node: the scan runs too
    let g = Fixture::new();
    g.process(8, "dpdk", None, "0::/init.scope\n", &["dpdk"]);
    g.fds(8, &[(3, "/dev/vfio/13")]);
    assert_eq!(counted(&g.host()).0, BTreeMap::from([(bdf(1), vec![8])]));
}
