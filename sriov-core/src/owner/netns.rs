//! The network namespace a VF's netdev lives in, when it is not ours.
//!
//! A netdev moved to another namespace (`ip link set DEV netns NS`, a CNI
//! plugin handing a VF to a pod) leaves the VF's sysfs `net/` directory as
//! we see it, so discovery finds the VF with a netdev driver bound and no
//! netdev. Those VFs are the candidates ([`candidates`]); the namespaces are
//! those of `/proc/<pid>/ns/net` and the bind mounts in `/run/netns`
//! ([`other_namespaces`]); what each holds is a link dump inside it
//! ([`NsLinks`]: [`Setns`] on the live system), matched to a VF by the
//! link's parent device (IFLA_PARENT_DEV_NAME, the BDF, kernel 5.13 and
//! later) or, on older kernels, by the MAC the PF reports for the VF.
use std::{
    collections::BTreeMap,
    fs::File,
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};

use super::Netns;
use crate::{
    discover::{Pf, Vf},
    host::Host,
    types::MacAddr,
};

/// Named namespaces (`ip netns add NAME` bind-mounts one here).
pub const RUN_NETNS: &str = "/run/netns";
const PROC: &str = "/proc";
const OURS: &str = "/proc/self/ns/net";

/// One link of a namespace's `RTM_GETLINK` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsLink {
    pub ifname: String,
    /// IFLA_PARENT_DEV_NAME: the device's BDF for a PCI netdev (kernel 5.13
    /// and later); `None` for virtual links and on older kernels.
    pub parent: Option<String>,
    /// IFLA_ADDRESS, for an Ethernet-like link.
    pub mac: Option<MacAddr>,
    /// IFLA_INFO_KIND (`veth`, `vlan`, `macvlan`, ...): `None` for a
    /// physical device.
    pub kind: Option<String>,
}

/// A network namespace other than ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsHandle {
    /// The namespace's inode (`net:[INODE]`).
    pub inode: u64,
    /// A file that refers to it, to enter it: `/run/netns/<name>` when it
    /// has one, else `/proc/<pid>/ns/net` of its lowest pid.
    pub path: PathBuf,
    /// Its name under `/run/netns`.
    pub name: Option<String>,
    /// Its lowest pid, when a process is in it.
    pub pid: Option<u32>,
}

/// The links of a namespace: on the live system [`Setns`], in tests a fake.
pub trait NsLinks {
    /// The links of `ns`. An error of kind `PermissionDenied` means the
    /// namespace exists but cannot be entered (no CAP_SYS_ADMIN); any other
    /// that it is gone or not a namespace.
    fn links(&self, ns: &NsHandle) -> io::Result<Vec<NsLink>>;
}

/// The namespace of each VF whose netdev is in another network namespace,
/// by VF BDF, on the live system (namespaces entered with [`Setns`]).
/// VFs that are not candidates ([`candidates`]) or were found nowhere are
/// absent. For the live host only: [`Setns`] opens the namespace files at
/// their system paths (on a fixture tree, use [`netns_of_with`]).
pub fn netns_of(host: &dyn Host, pfs: &[Pf]) -> BTreeMap<String, Netns> {
    netns_of_with(host, pfs, &Setns)
}

/// [`netns_of`] with the links of each namespace from `links`.
///
/// Each namespace is asked once, in inode order; a link goes to the
/// candidate VF whose BDF is its parent device or, when no link of any
/// namespace has a parent device (a kernel before 5.13), to the one
/// candidate whose PF-reported MAC is its address (physical links only, not
/// a VLAN or macvlan that shares the MAC). When exactly one namespace
/// refused us (PermissionDenied) and the others were all read, the
/// candidates found nowhere that the PF reports over rtnetlink (so NIC VFs)
/// are put in it, without a netdev name: it is the only place left.
pub fn netns_of_with(host: &dyn Host, pfs: &[Pf], links: &dyn NsLinks) -> BTreeMap<String, Netns> {
    let cands = candidates(pfs);
    if cands.is_empty() {
        return BTreeMap::new();
    }
    let namespaces = other_namespaces(host);
    let mut read = Vec::new();
    let mut refused = Vec::new();
    for ns in &namespaces {
        match links.links(ns) {
            Ok(l) => read.push((ns, l)),
            Err(e) => {
                tracing::debug!(inode = ns.inode, path = %ns.path.display(), "netns links: {e}");
                if e.kind() == io::ErrorKind::PermissionDenied {
                    refused.push(ns);
                }
            }
        }
    }
    let mut out = match_links(&cands, &read);
    if let ([ns], true) = (&refused[..], read.len() + 1 == namespaces.len()) {
        for vf in cands.iter().filter(|v| v.config.is_some()) {
            out.entry(vf.bdf.clone()).or_insert_with(|| netns(ns, None));
        }
    }
    out
}

/// VFs whose netdev may be in another namespace: a netdev driver bound (not
/// vfio-pci or a vendor variant of it, pci-stub, or a UIO driver) and no
/// netdev in ours.
pub fn candidates(pfs: &[Pf]) -> Vec<&Vf> {
    pfs.iter()
        .flat_map(|pf| &pf.vfs)
        .filter(|vf| vf.netdev.is_none())
        .filter(|vf| {
            vf.driver
                .as_deref()
                .is_some_and(|d| !(d.contains("vfio") || d.contains("uio") || d == "pci-stub"))
        })
        .collect()
}

/// The network namespaces other than ours (`/proc/self/ns/net`), by inode:
/// one readlink of `/proc/<pid>/ns/net` per process and the inode of each
/// `/run/netns` entry.
pub fn other_namespaces(host: &dyn Host) -> Vec<NsHandle> {
    let ours = ns_inode(host, Path::new(OURS));
    let mut pids: Vec<u32> = host
        .list_dir(Path::new(PROC))
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut by_inode: BTreeMap<u64, NsHandle> = BTreeMap::new();
    for pid in pids {
        let path = PathBuf::from(format!("{PROC}/{pid}/ns/net"));
        let Some(inode) = ns_inode(host, &path) else {
            continue;
        };
        by_inode.entry(inode).or_insert(NsHandle {
            inode,
            path,
            name: None,
            pid: Some(pid),
        });
    }
    for name in host.list_dir(Path::new(RUN_NETNS)).unwrap_or_default() {
        let path = Path::new(RUN_NETNS).join(&name);
        let Some(inode) = host.inode(&path) else {
            continue;
        };
        let ns = by_inode.entry(inode).or_insert(NsHandle {
            inode,
            path: path.clone(),
            name: None,
            pid: None,
        });
        if ns.name.is_none() {
            ns.name = Some(name);
            ns.path = path;
        }
    }
    if let Some(ours) = ours {
        by_inode.remove(&ours);
    }
    by_inode.into_values().collect()
}

/// The inode of a namespace link: `net:[4026532281]` → 4026532281.
fn ns_inode(host: &dyn Host, path: &Path) -> Option<u64> {
    let target = host.read_link(path).ok()?;
    target
        .to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn netns(ns: &NsHandle, netdev: Option<&str>) -> Netns {
    Netns {
        inode: ns.inode,
        name: ns.name.clone(),
        netdev: netdev.map(str::to_string),
        pid: ns.pid,
    }
}

/// Match the links of each namespace to the candidates (see
/// [`netns_of_with`]); the first namespace to show a VF keeps it.
fn match_links(cands: &[&Vf], read: &[(&NsHandle, Vec<NsLink>)]) -> BTreeMap<String, Netns> {
    let mut out = BTreeMap::new();
    let parents_known = read
        .iter()
        .flat_map(|(_, links)| links)
        .any(|l| l.parent.is_some());
    for (ns, links) in read {
        for link in links {
            let vf = match &link.parent {
                Some(p) => cands.iter().find(|v| v.bdf == *p).copied(),
                None if !parents_known && link.kind.is_none() => link
                    .mac
                    .filter(|m| !m.is_zero())
                    .and_then(|m| by_mac(cands, m)),
                None => None,
            };
            if let Some(vf) = vf {
                out.entry(vf.bdf.clone())
                    .or_insert_with(|| netns(ns, Some(&link.ifname)));
            }
        }
    }
    out
}

/// The one candidate the PF reports with MAC `mac`.
fn by_mac<'a>(cands: &[&'a Vf], mac: MacAddr) -> Option<&'a Vf> {
    let mut it = cands
        .iter()
        .filter(|v| v.config.as_ref().and_then(|c| c.mac) == Some(mac));
    match (it.next(), it.next()) {
        (Some(vf), None) => Some(vf),
        _ => None,
    }
}

/// The live [`NsLinks`]: on a short-lived thread, `setns(CLONE_NEWNET)`
/// into the namespace (which moves only that thread) and an `RTM_GETLINK`
/// dump on a rtnetlink socket opened there. Nothing is restored: the thread
/// ends. Needs CAP_SYS_ADMIN; without it the error is PermissionDenied.
pub struct Setns;

impl NsLinks for Setns {
    fn links(&self, ns: &NsHandle) -> io::Result<Vec<NsLink>> {
        let file = File::open(&ns.path)?;
        // the pid may have exited and been reused since the scan
        if file.metadata()?.ino() != ns.inode {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name("sriov-netns".into())
                .spawn_scoped(s, || {
                    enter_netns(&file)?;
                    dump_links()
                })?;
            thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        })
    }
}

/// Move the calling thread into the network namespace `ns` refers to
/// (`setns(2)` moves the calling thread only: a thread of its own that ends
/// after the dump, so no other code runs in the namespace).
fn enter_netns(ns: &File) -> io::Result<()> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// The links of the calling thread's network namespace.
fn dump_links() -> io::Result<Vec<NsLink>> {
    let links = crate::host::netlink::dump_links_here()
        .map_err(|e| io::Error::from_raw_os_error(e.errno))?;
    Ok(links.iter().map(ns_link).collect())
}

fn ns_link(msg: &LinkMessage) -> NsLink {
    let mut link = NsLink {
        ifname: String::new(),
        parent: None,
        mac: None,
        kind: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.ifname = n.clone(),
            LinkAttribute::ParentDevName(p) => link.parent = Some(p.clone()),
            LinkAttribute::Address(a) => {
                link.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(MacAddr);
            }
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
#[path = "tests_netns.rs"]
mod tests;
