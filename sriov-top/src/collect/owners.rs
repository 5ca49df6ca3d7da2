//! Who holds each VF, for the inventory: VFIO holders and netns (a scan of
//! `/proc` at most every [`SCAN_EVERY`], at once after an event that can
//! change them), and pods from the kubelet (a task of its own, every
//! [`KUBELET_EVERY`]).
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sriov_core::{
    discover::Pf,
    events::{Event, EventEnvelope},
    host::Host,
    owner::{self, Holder, Netns, Pod, kubelet, netns, procs},
};

/// Between two scans of `/proc` when nothing happened.
pub const SCAN_EVERY: Duration = Duration::from_secs(5);
/// Between two kubelet queries.
pub const KUBELET_EVERY: Duration = Duration::from_secs(10);
/// How long a kubelet query may take.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the kubelet is, and whether its absence is worth a warning.
#[derive(Debug, Clone)]
pub struct OwnerOptions {
    pub kubelet_socket: PathBuf,
    /// Say once that there is no kubelet (the agent); the UI and `--json`
    /// stay quiet about a host without Kubernetes.
    pub warn_no_kubelet: bool,
}

impl Default for OwnerOptions {
    fn default() -> Self {
        Self {
            kubelet_socket: kubelet::DEFAULT_SOCKET.into(),
            warn_no_kubelet: false,
        }
    }
}

/// The pods by device id, and the kubelet's last warning (taken once).
#[derive(Debug, Default)]
struct Pods {
    by_device: BTreeMap<String, Pod>,
    warning: Option<String>,
}

#[derive(Debug, Default)]
pub struct Owners {
    last_scan: Option<Instant>,
    dirty: bool,
    holders: BTreeMap<String, Vec<Holder>>,
    netns: BTreeMap<String, Netns>,
    pods: Arc<Mutex<Pods>>,
    /// Warnings already given (each once).
    said: Vec<String>,
}

impl Owners {
    /// Start the kubelet task (on the current tokio runtime).
    pub fn start(opts: &OwnerOptions) -> Self {
        let me = Self::default();
        let pods = me.pods.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            loop {
                let found = kubelet::pod_devices(
                    &opts.kubelet_socket,
                    kubelet::DEFAULT_CHECKPOINT.as_ref(),
                    kubelet::DEFAULT_POD_LOGS.as_ref(),
                    KUBELET_TIMEOUT,
                )
                .await;
                if let Ok(mut p) = pods.lock() {
                    p.by_device = found.pods;
                    if !found.no_kubelet || opts.warn_no_kubelet {
                        p.warning = found
                            .warning
                            .map(|w| format!("{w}: VF owners are shown without pods"));
                    }
                }
                tokio::time::sleep(KUBELET_EVERY).await;
            }
        });
        me
    }

    /// Note an event after which the holders may have changed.
    pub fn on_event(&mut self, ev: &EventEnvelope) {
        if matches!(
            ev.event,
            Event::VfioDevice { .. }
                | Event::DriverProbe { .. }
                | Event::AdminChange(_)
                | Event::VfAdded { .. }
                | Event::VfRemoved { .. }
                | Event::IommuGroupAdded { .. }
        ) {
            self.dirty = true;
        }
    }

    /// Set each VF's `owner` in `pfs`, scanning first when due. Returns a
    /// warning to give (each different one once).
    pub fn attach(&mut self, host: &dyn Host, pfs: &mut [Pf], now: Instant) -> Option<String> {
        let due = self.dirty
            || self
                .last_scan
                .is_none_or(|t| now.duration_since(t) >= SCAN_EVERY);
        if due {
            self.holders = procs::vfio_holders(host, pfs);
            self.netns = netns::netns_of(host, pfs);
            self.last_scan = Some(now);
            self.dirty = false;
        }
        let (pods, warning) = match self.pods.lock() {
            Ok(mut p) => (p.by_device.clone(), p.warning.take()),
            Err(_) => (BTreeMap::new(), None),
        };
        owner::fill(pfs, &self.holders, &self.netns, &pods);
        let w = warning.filter(|w| !self.said.contains(w))?;
        self.said.push(w.clone());
        Some(w)
    }
}
