//! The Kubernetes pod each VF was allocated to, from the kubelet.
//!
//! Two sources, in this order ([`pod_devices`]):
//!
//! 1. The pod-resources API ([`list_pod_devices`]): gRPC
//!    `v1.PodResourcesLister/List` on the kubelet's unix socket
//!    ([`DEFAULT_SOCKET`]). Every device id a device plugin handed to a
//!    container, with its pod, namespace and container.
//! 2. The device plugin checkpoint ([`checkpoint_pod_devices`]): the JSON
//!    file the kubelet's device manager keeps ([`DEFAULT_CHECKPOINT`]). It
//!    names pods only by UID; namespace and name come from the pod log
//!    directories (`/var/log/pods/<namespace>_<name>_<uid>`, [`DEFAULT_POD_LOGS`]).
//!
//! Device ids are keys as the device plugin reported them, except that PCI
//! addresses (what the SR-IOV network device plugin reports) are normalised
//! to the full lower-case `dddd:bb:dd.f` form, so they compare equal to a
//! [`Bdf`]'s `to_string()`. When one device id shows up
//! for several containers (an init container's devices reused by the app
//! container), the first one listed wins.
use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use super::Pod;
use crate::types::Bdf;

mod checkpoint;
mod grpc;
mod proto;

#[cfg(test)]
mod grpc_tests;

pub use checkpoint::checkpoint_pod_devices;
pub use grpc::list_pod_devices;

/// The kubelet pod-resources socket.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// The kubelet device manager's checkpoint file.
pub const DEFAULT_CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";
/// The kubelet's pod log directories, `<namespace>_<name>_<uid>`.
pub const DEFAULT_POD_LOGS: &str = "/var/log/pods";

/// What [`KubeletError::NotFound`] and [`KubeletError::Permission`] are
/// about, as the messages say it.
pub const WHAT_SOCKET: &str = "kubelet pod-resources socket";
/// See [`WHAT_SOCKET`].
pub const WHAT_CHECKPOINT: &str = "device plugin checkpoint";

/// Why the kubelet could not tell which pod holds which device. Every
/// variant names the socket or file.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The socket or checkpoint does not exist: no kubelet on this host, or
    /// the API is off. Callers treat this as a warning.
    #[error("{what} {}: not found", path.display())]
    NotFound {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// EACCES/EPERM on the socket or checkpoint.
    #[error("{what} {}: permission denied (it needs root)", path.display())]
    Permission {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The socket is there but the connection failed (nobody listening, or
    /// the HTTP/2 connection could not be set up).
    #[error("{WHAT_SOCKET} {}: cannot connect: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The kubelet answered `List` with a gRPC error.
    #[error("{WHAT_SOCKET} {}: List failed: {code:?}: {message}", path.display())]
    Rpc {
        path: PathBuf,
        code: tonic::Code,
        message: String,
    },
    /// No answer in time.
    #[error("{WHAT_SOCKET} {}: no answer within {} ms", path.display(), timeout.as_millis())]
    Timeout { path: PathBuf, timeout: Duration },
    /// Reading the checkpoint failed for another reason.
    #[error("{WHAT_CHECKPOINT} {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The checkpoint is not the JSON the kubelet writes.
    #[error("{WHAT_CHECKPOINT} {}: not a kubelet device manager checkpoint: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl KubeletError {
    /// The socket or file is missing (no kubelet, or the API is off).
    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeletError::NotFound { .. })
    }

    /// An I/O error on `path` (`what` is [`WHAT_SOCKET`] or
    /// [`WHAT_CHECKPOINT`]): NotFound, Permission, else `other`.
    fn from_io(
        what: &'static str,
        path: &Path,
        source: io::Error,
        other: impl FnOnce(PathBuf, io::Error) -> KubeletError,
    ) -> KubeletError {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound => KubeletError::NotFound { what, path, source },
            io::ErrorKind::PermissionDenied => KubeletError::Permission { what, path, source },
            _ => other(path, source),
        }
    }
}

/// What [`pod_devices`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodLookup {
    /// The pod of every device id.
    pub pods: BTreeMap<String, Pod>,
    /// What failed and what was used instead, when something failed.
    pub warning: Option<String>,
    /// Neither the socket nor the checkpoint exists: no kubelet on this
    /// host (the warning then says so too).
    pub no_kubelet: bool,
}

/// The pod of every device id: from the pod-resources API on `socket`,
/// else from the device plugin `checkpoint` (names from `pods_log_dir`).
///
/// The warning, when there is one, says what failed and what was used
/// instead, e.g. `kubelet pod-resources socket /var/lib/kubelet/pod-resources/kubelet.sock:
/// not found; using the device plugin checkpoint /var/lib/...`. When both
/// fail the map is empty and the warning names both (on a host without a
/// kubelet, both are "not found", and `no_kubelet` is set; warning once is
/// the caller's business).
pub async fn pod_devices(
    socket: &Path,
    checkpoint: &Path,
    pods_log_dir: &Path,
    timeout: Duration,
) -> PodLookup {
    let api_err = match list_pod_devices(socket, timeout).await {
        Ok(pods) => {
            return PodLookup {
                pods,
                ..PodLookup::default()
            };
        }
        Err(e) => e,
    };
    match checkpoint_pod_devices(checkpoint, pods_log_dir) {
        Ok(pods) => PodLookup {
            pods,
            warning: Some(format!(
                "{api_err}; using the {WHAT_CHECKPOINT} {}",
                checkpoint.display()
            )),
            no_kubelet: false,
        },
        Err(cp_err) => {
            let no_kubelet = api_err.is_not_found() && cp_err.is_not_found();
            let hint = if no_kubelet {
                " (no kubelet on this host?)"
            } else {
                ""
            };
            PodLookup {
                pods: BTreeMap::new(),
                warning: Some(format!("{api_err}; {cp_err}{hint}")),
                no_kubelet,
            }
        }
    }
}

/// A device id as the maps key it: a PCI address in the full lower-case
/// `dddd:bb:dd.f` form (`01:10.0` and `0000:01:10.0` alike), anything else
/// unchanged.
fn device_key(id: &str) -> String {
    id.trim()
        .parse::<Bdf>()
        .map(|bdf| bdf.to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// Adds `pod` for every id of `ids`, keeping an earlier entry for the same
/// device.
fn insert_devices<'a>(
    map: &mut BTreeMap<String, Pod>,
    ids: impl IntoIterator<Item = &'a String>,
    pod: &Pod,
) {
    for id in ids {
        map.entry(device_key(id)).or_insert_with(|| pod.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys_are_full_lower_case_pci_addresses() {
        assert_eq!(device_key("0000:01:10.0"), "0000:01:10.0");
        assert_eq!(device_key("01:10.1"), "0000:01:10.1");
        assert_eq!(device_key("0000:3B:02.7"), "0000:3b:02.7");
        assert_eq!(device_key("mlx5_core.sf.4"), "mlx5_core.sf.4");
        assert_eq!(
            device_key("GPU-fef8089b-4820-abfc-e83e-94318197576e"),
            "GPU-fef8089b-4820-abfc-e83e-94318197576e"
        );
    }

    #[test]
    fn io_errors_map_to_not_found_and_permission() {
        let path = Path::new("/x/kubelet.sock");
        let other = |path, source| KubeletError::Read { path, source };
        let e = KubeletError::from_io(
            WHAT_SOCKET,
            path,
            io::Error::from_raw_os_error(libc::ENOENT),
            other,
        );
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "kubelet pod-resources socket /x/kubelet.sock: not found"
        );
        let e = KubeletError::from_io(
            WHAT_SOCKET,
            path,
            io::Error::from_raw_os_error(libc::EACCES),
            other,
        );
        assert!(matches!(e, KubeletError::Permission { .. }), "{e:?}");
        assert!(e.to_string().contains("/x/kubelet.sock: permission denied"));
        let e = KubeletError::from_io(
            WHAT_SOCKET,
            path,
            io::Error::from_raw_os_error(libc::EIO),
            other,
        );
        assert!(matches!(e, KubeletError::Read { .. }), "{e:?}");
    }
}
