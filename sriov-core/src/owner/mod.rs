//! Who holds each VF: the processes that have its VFIO group or device
//! open (with the VM or container they belong to), the network namespace
//! its netdev was moved to, and the Kubernetes pod it was allocated to.
//!
//! The sources, one submodule each:
//!
//! - [`procs`]: `/proc/<pid>/fd` links to `/dev/vfio/<group>` or
//!   `/dev/vfio/devices/vfioN`; comm, exe, cgroup; a QEMU's `-name
//!   guest=...` or its libvirt domain (`machine.slice` scope); a container
//!   id from the cgroup path.
//! - [`netns`]: the network namespace a VF's netdev lives in, when it is
//!   not the agent's own.
//! - [`kubelet`]: the kubelet pod-resources API (gRPC `List` on its unix
//!   socket), or the device plugin checkpoint file where that is off.
//!
//! Nothing here fails because a process or device vanished mid-scan: what
//! could not be read is left out.
use serde::{Deserialize, Serialize};

pub mod kubelet;
pub mod netns;
pub mod procs;

/// Who holds one VF. Empty when nobody does (then left out of the stream).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfOwner {
    /// Processes with the VF's VFIO group or device open, by pid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<Holder>,
    /// The network namespace the VF's netdev is in, when it is not the
    /// agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<Netns>,
    /// The Kubernetes pod the VF was allocated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
}

/// A process that has a VF's VFIO group or device open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// `/proc/<pid>/comm`.
    pub comm: String,
    /// `/proc/<pid>/exe`, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The unified (v2) cgroup path, from `/proc/<pid>/cgroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// What it has open: `/dev/vfio/12` or `/dev/vfio/devices/vfio0`.
    pub path: String,
    /// For a QEMU: the VM's name (`-name guest=NAME` or `-name NAME`), or
    /// the libvirt domain of its `machine.slice` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// The container id (hex) from the cgroup path (docker, containerd,
    /// CRI-O, podman).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// The network namespace a VF's netdev lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Netns {
    /// Inode of the namespace (`/proc/<pid>/ns/net`).
    pub inode: u64,
    /// Its name under `/run/netns`, for one made by `ip netns add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The netdev's name inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netdev: Option<String>,
    /// A process in it (the lowest pid), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// A Kubernetes pod a VF was allocated to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub container: String,
    /// The extended resource it was allocated as (`intel.com/sriov_netdevice`).
    pub resource: String,
    /// Where this came from.
    pub source: PodSource,
}

/// Which kubelet interface told us about a [`Pod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodSource {
    /// The pod-resources API (`List`).
    PodResources,
    /// The device plugin checkpoint file.
    Checkpoint,
}

impl VfOwner {
    /// True when nobody holds the VF.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.netns.is_none() && self.pod.is_none()
    }

    /// One short phrase for a table column or a label: the pod, else the
    /// VM, else the container, else the first process, else the netns.
    /// `None` when nobody holds the VF.
    pub fn summary(&self) -> Option<String> {
        if let Some(p) = &self.pod {
            return Some(format!("pod {}/{}", p.namespace, p.name));
        }
        if let Some(h) = self.processes.iter().find(|h| h.vm.is_some()) {
            return Some(format!("vm {}", h.vm.as_deref().unwrap_or_default()));
        }
        if let Some(h) = self.processes.iter().find(|h| h.container.is_some()) {
            let id = h.container.as_deref().unwrap_or_default();
            return Some(format!("container {}", &id[..id.len().min(12)]));
        }
        if let Some(h) = self.processes.first() {
            return Some(format!("{} {}", h.comm, h.pid));
        }
        self.netns.as_ref().map(|n| match &n.name {
            Some(name) => format!("netns {name}"),
            None => format!("netns {}", n.inode),
        })
    }
}

/// Set each VF's `owner` in `pfs` from what the sources found, by VF BDF
/// (`pods` by device id, which for SR-IOV device plugins is the BDF);
/// `None` for a VF nobody holds.
pub fn fill(
    pfs: &mut [crate::discover::Pf],
    holders: &std::collections::BTreeMap<String, Vec<Holder>>,
    netns: &std::collections::BTreeMap<String, Netns>,
    pods: &std::collections::BTreeMap<String, Pod>,
) {
    for vf in pfs.iter_mut().flat_map(|p| p.vfs.iter_mut()) {
        let o = VfOwner {
            processes: holders.get(&vf.bdf).cloned().unwrap_or_default(),
            netns: netns.get(&vf.bdf).cloned(),
            pod: pods.get(&vf.bdf).cloned(),
        };
        vf.owner = (!o.is_empty()).then_some(o);
    }
}

/// Look everything up now, on the live system (for `sriov list`): VFIO
/// holders, netns, and pods from the kubelet when there is one (waiting at
/// most `timeout` for it). Returns the kubelet's warning, if any, unless
/// there is simply no kubelet.
pub fn look_up(
    host: &dyn crate::host::Host,
    pfs: &mut [crate::discover::Pf],
    timeout: std::time::Duration,
) -> Option<String> {
    let holders = procs::vfio_holders(host, pfs);
    let ns = netns::netns_of(host, pfs);
    let found = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(kubelet::pod_devices(
            kubelet::DEFAULT_SOCKET.as_ref(),
            kubelet::DEFAULT_CHECKPOINT.as_ref(),
            kubelet::DEFAULT_POD_LOGS.as_ref(),
            timeout,
        )),
        Err(e) => kubelet::PodLookup {
            warning: Some(format!("kubelet lookup: {e}")),
            ..Default::default()
        },
    };
    fill(pfs, &holders, &ns, &found.pods);
    found.warning.filter(|_| !found.no_kubelet)
}
