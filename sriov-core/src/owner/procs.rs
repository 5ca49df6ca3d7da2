//! The processes that hold a VF through VFIO: `/proc/<pid>/fd` links to the
//! VF's IOMMU group (`/dev/vfio/<group>`, the legacy group/container
//! interface) or to its VFIO device cdev (`/dev/vfio/devices/vfioN`, the
//! iommufd interface), with what the process is: a QEMU and the VM it runs,
//! a container, or just a comm and exe.
//!
//! One listing of `/proc` and one of each process's `fd` directory; the
//! other files of a process are read only when it holds a VFIO fd. A process
//! that exits or refuses (EACCES) mid-scan is left out. None of it when no
//! VF can be opened through VFIO now: `/dev/vfio` has no node of a VF's
//! IOMMU group and no device cdev (see `vfio_reachable`).
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use super::Holder;
use crate::{discover::Pf, host::Host};

const PROC: &str = "/proc";
const GROUP_PREFIX: &str = "/dev/vfio/";
const CDEV_PREFIX: &str = "/dev/vfio/devices/";
const DEV_VFIO: &str = "/dev/vfio";
const DEV_VFIO_DEVICES: &str = "/dev/vfio/devices";

/// The holders of each VF, by VF BDF: one [`Holder`] per (process, VF),
/// sorted by pid. A process that has the VF open through several fds (or
/// both its group and its cdev) appears once, with the group's path; one that
/// holds several VFs (an IOMMU group with two VFs, or two groups) appears
/// under each. VFs nobody holds are absent.
pub fn vfio_holders(host: &dyn Host, pfs: &[Pf]) -> BTreeMap<String, Vec<Holder>> {
    let vfs = VfIndex::new(pfs);
    let mut out: BTreeMap<String, Vec<Holder>> = BTreeMap::new();
    if vfs.bdfs.is_empty() || !vfio_reachable(host, &vfs) {
        return out;
    }
    let mut cdevs: Option<HashMap<String, String>> = None;
    let pids = host.list_dir(Path::new(PROC)).unwrap_or_default();
    for pid in pids.iter().filter_map(|p| p.parse::<u32>().ok()) {
        let opened = vfio_paths(host, pid);
        if opened.is_empty() {
            continue;
        }
        // (VF BDF, path), the first path per VF
        let mut held: BTreeMap<String, String> = BTreeMap::new();
        for path in opened {
            for bdf in vfs.resolve(host, &path, &mut cdevs) {
                held.entry(bdf).or_insert_with(|| path.clone());
            }
        }
        if held.is_empty() {
            continue;
        }
        let Some(info) = ProcInfo::read(host, pid) else {
            continue;
        };
        for (bdf, path) in held {
            out.entry(bdf).or_default().push(info.holder(path));
        }
    }
    for holders in out.values_mut() {
        holders.sort_by_key(|h| h.pid);
    }
    out
}

/// Whether a process may hold one of `vfs` through VFIO now: `/dev/vfio`
/// has the node of a VF's IOMMU group (VFIO made it when a device of the
/// group was bound to a VFIO driver), or `/dev/vfio/devices` has any
/// device cdev. A holder's link names a node that exists: one that was
/// removed reads `... (deleted)`, which is no VF's. A `/dev/vfio` that is
/// absent (no VFIO here, or a container without the host's) or cannot be
/// listed tells nothing: the scan decides.
fn vfio_reachable(host: &dyn Host, vfs: &VfIndex) -> bool {
    let Ok(nodes) = host.list_dir(Path::new(DEV_VFIO)) else {
        return true;
    };
    let group_node = nodes.iter().any(|n| {
        n.parse::<u32>()
            .is_ok_and(|g| vfs.by_group.contains_key(&g))
    });
    group_node
        || (nodes.iter().any(|n| n == "devices")
            && host
                .list_dir(Path::new(DEV_VFIO_DEVICES))
                .map_or(true, |cdevs| !cdevs.is_empty()))
}

/// The VFIO paths (`/dev/vfio/<N>`, `/dev/vfio/devices/vfioN`) process
/// `pid` has open, without the container `/dev/vfio/vfio`; empty when its
/// fds cannot be read.
fn vfio_paths(host: &dyn Host, pid: u32) -> BTreeSet<String> {
    let dir = PathBuf::from(format!("{PROC}/{pid}/fd"));
    let Ok(fds) = host.list_dir(&dir) else {
        return BTreeSet::new();
    };
    fds.iter()
        .filter_map(|fd| host.read_link(&dir.join(fd)).ok())
        .filter_map(|t| t.to_str().map(str::to_string))
        .filter(|t| is_vfio_path(t))
        .collect()
}

fn is_vfio_path(target: &str) -> bool {
    group_of(target).is_some() || cdev_of(target).is_some()
}

/// `/dev/vfio/12` → 12 (not `/dev/vfio/vfio`, the container).
fn group_of(target: &str) -> Option<u32> {
    let n = target.strip_prefix(GROUP_PREFIX)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// `/dev/vfio/devices/vfio0` → `vfio0`.
fn cdev_of(target: &str) -> Option<&str> {
    let name = target.strip_prefix(CDEV_PREFIX)?;
    let n = name.strip_prefix("vfio")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// The VFs of the scan, by IOMMU group and (read on first need) by VFIO
/// cdev name.
struct VfIndex {
    by_group: HashMap<u32, Vec<String>>,
    bdfs: Vec<String>,
}

impl VfIndex {
    fn new(pfs: &[Pf]) -> Self {
        let mut by_group: HashMap<u32, Vec<String>> = HashMap::new();
        let mut bdfs = Vec::new();
        for vf in pfs.iter().flat_map(|pf| &pf.vfs) {
            if let Some(g) = vf.iommu_group {
                by_group.entry(g).or_default().push(vf.bdf.clone());
            }
            bdfs.push(vf.bdf.clone());
        }
        Self { by_group, bdfs }
    }

    /// The VFs an open VFIO path stands for. The cdev map is made once per
    /// scan, when the first cdev is seen: one listing of each VF's
    /// `vfio-dev` directory.
    fn resolve(
        &self,
        host: &dyn Host,
        path: &str,
        cdevs: &mut Option<HashMap<String, String>>,
    ) -> Vec<String> {
        if let Some(g) = group_of(path) {
            return self.by_group.get(&g).cloned().unwrap_or_default();
        }
        let Some(name) = cdev_of(path) else {
            return Vec::new();
        };
        let map = cdevs.get_or_insert_with(|| self.cdev_map(host));
        map.get(name).cloned().into_iter().collect()
    }

    fn cdev_map(&self, host: &dyn Host) -> HashMap<String, String> {
        let mut map = HashMap::new();
        for bdf in &self.bdfs {
            let dir = Path::new(crate::discover::PCI_DEVICES)
                .join(bdf)
                .join("vfio-dev");
            for name in host.list_dir(&dir).unwrap_or_default() {
                map.insert(name, bdf.clone());
            }
        }
        map
    }
}

/// What a holding process is, read once per process.
struct ProcInfo {
    pid: u32,
    comm: String,
    exe: Option<String>,
    cgroup: Option<String>,
    vm: Option<String>,
    container: Option<String>,
}

impl ProcInfo {
    /// `None` when the process is gone (its `comm` cannot be read).
    fn read(host: &dyn Host, pid: u32) -> Option<Self> {
        let dir = PathBuf::from(format!("{PROC}/{pid}"));
        let comm = host.read(&dir.join("comm")).ok()?.trim_end().to_string();
        let exe = host
            .read_link(&dir.join("exe"))
            .ok()
            .and_then(|p| p.to_str().map(str::to_string));
        let cgroups = host.read(&dir.join("cgroup")).unwrap_or_default();
        let cgroup = unified_cgroup(&cgroups).map(str::to_string);
        // the v2 path first, then the v1 hierarchies (a v1-only host)
        let paths: Vec<&str> = cgroup
            .as_deref()
            .into_iter()
            .chain(cgroups.lines().filter_map(|l| l.splitn(3, ':').nth(2)))
            .collect();
        let is_qemu = comm.starts_with("qemu")
            || exe
                .as_deref()
                .and_then(|e| Path::new(e).file_name()?.to_str())
                .is_some_and(|b| b.starts_with("qemu"));
        let from_cmdline = if is_qemu {
            host.read_bytes(&dir.join("cmdline"))
                .ok()
                .and_then(|c| qemu_name(&c))
        } else {
            None
        };
        let vm = from_cmdline.or_else(|| paths.iter().find_map(|p| libvirt_domain(p)));
        let container = paths.iter().find_map(|p| container_id(p));
        Some(Self {
            pid,
            comm,
            exe,
            cgroup,
            vm,
            container,
        })
    }

    fn holder(&self, path: String) -> Holder {
        Holder {
            pid: self.pid,
            comm: self.comm.clone(),
            exe: self.exe.clone(),
            cgroup: self.cgroup.clone(),
            path,
            vm: self.vm.clone(),
            container: self.container.clone(),
        }
    }
}

/// The path of the `0::` line of `/proc/<pid>/cgroup` (cgroup v2).
pub fn unified_cgroup(cgroups: &str) -> Option<&str> {
    cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| !p.is_empty())
}

/// The VM name of a QEMU command line (`/proc/<pid>/cmdline`, NUL-separated):
/// `-name guest=NAME,...`, `-name NAME` or `-name NAME,debug-threads=on`
/// (also `--name`, and `-name=...`), with QEMU's `,,` for a literal comma.
pub fn qemu_name(cmdline: &[u8]) -> Option<String> {
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut value = None;
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "-name" | "--name" => value = args.get(i + 1).cloned(),
            _ => {
                if let Some(v) = a.strip_prefix("-name=").or(a.strip_prefix("--name=")) {
                    value = Some(v.to_string());
                }
            }
        }
    }
    // the last -name wins, as in QEMU
    let opts = qemu_opts(&value?);
    let name = opts
        .iter()
        .enumerate()
        .find_map(|(i, o)| match o.split_once('=') {
            Some(("guest", v)) => Some(v.to_string()),
            None if i == 0 => Some(o.clone()),
            _ => None,
        })?;
    (!name.is_empty()).then_some(name)
}

/// Split a QEMU option string at single commas; `,,` is a literal comma.
fn qemu_opts(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                if let Some(cur) = out.last_mut() {
                    cur.push(',');
                }
            }
            ',' => out.push(String::new()),
            c => {
                if let Some(cur) = out.last_mut() {
                    cur.push(c);
                }
            }
        }
    }
    out
}

/// The libvirt domain of a cgroup path in a `machine.slice` scope:
/// `/machine.slice/machine-qemu\x2d3\x2ddb\x2dprimary.scope/libvirt/emulator`
/// → `db-primary`. libvirt names the machine `qemu-<id>-<name>` (older
/// versions `qemu-<name>`) and shortens long names, so this is the
/// command line's second best.
pub fn libvirt_domain(cgroup: &str) -> Option<String> {
    cgroup.split('/').rev().find_map(|c| {
        let unit = c.strip_prefix("machine-")?.strip_suffix(".scope")?;
        let machine = systemd_unescape(unit);
        let rest = machine.strip_prefix("qemu-")?;
        let name = match rest.split_once('-') {
            Some((id, name)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => rest,
        };
        (!name.is_empty()).then(|| name.to_string())
    })
}

/// Undo systemd's unit name escaping: `\xNN` is the byte NN.
pub fn systemd_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            b[i],
            b.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The container id (64 hex digits) of a cgroup path, innermost first:
/// systemd-driver scopes (`docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope`) and cgroupfs-driver directories
/// (`/docker/<id>`, `/kubepods/besteffort/pod<uid>/<id>`).
pub fn container_id(cgroup: &str) -> Option<String> {
    const PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];
    cgroup.split('/').rev().find_map(|c| {
        let unit = c.strip_suffix(".scope").unwrap_or(c);
        let id = PREFIXES
            .iter()
            .find_map(|p| unit.strip_prefix(p))
            .unwrap_or(unit);
        is_container_id(id).then(|| id.to_string())
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
#[path = "tests_procs.rs"]
mod tests;
