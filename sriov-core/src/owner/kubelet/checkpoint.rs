//! The kubelet device manager's checkpoint
//! (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`), for
//! when the pod-resources API is off or unreachable.
//!
//! The file is the JSON of the kubelet's `checkpoint.Data`:
//!
//! ```json
//! {"Data":{"PodDeviceEntries":[{"PodUID":"…","ContainerName":"…",
//!   "ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:01:10.0"]},
//!   "AllocResp":"base64…"}],
//!  "RegisteredDevices":{"intel.com/sriov":["0000:01:10.0"]}},
//!  "Checksum":123}
//! ```
//!
//! `DeviceIDs` maps a NUMA node to device ids since Kubernetes 1.20; before
//! that it was a plain list. Both are read. Go writes nil slices and maps
//! as `null`, which reads as empty. The checksum is not checked: a file
//! caught mid-write fails to parse instead.
use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::Path,
};

use serde::Deserialize;

use super::{KubeletError, WHAT_CHECKPOINT, insert_devices};
use crate::owner::{Pod, PodSource};

#[derive(Deserialize)]
struct CheckpointFile {
    #[serde(rename = "Data")]
    data: CheckpointData,
}

#[derive(Deserialize)]
struct CheckpointData {
    #[serde(rename = "PodDeviceEntries", default)]
    entries: Option<Vec<PodDevicesEntry>>,
}

#[derive(Deserialize)]
struct PodDevicesEntry {
    #[serde(rename = "PodUID")]
    pod_uid: String,
    #[serde(rename = "ContainerName")]
    container: String,
    #[serde(rename = "ResourceName")]
    resource: String,
    #[serde(rename = "DeviceIDs", default)]
    device_ids: Option<DeviceIds>,
}

/// `DeviceIDs`: per NUMA node (current kubelets) or a plain list (1.19 and
/// older).
#[derive(Deserialize)]
#[serde(untagged)]
enum DeviceIds {
    PerNuma(BTreeMap<String, Option<Vec<String>>>),
    Flat(Vec<String>),
}

impl DeviceIds {
    fn ids(&self) -> Vec<&String> {
        match self {
            DeviceIds::PerNuma(nodes) => nodes.values().flatten().flatten().collect(),
            DeviceIds::Flat(ids) => ids.iter().collect(),
        }
    }
}

/// The pod of every device id in the device manager's `checkpoint`, keyed
/// by device id (PCI addresses normalised to `dddd:bb:dd.f`).
///
/// The checkpoint names pods by UID only: namespace and name come from the
/// kubelet's pod log directory `pods_log_dir/<namespace>_<name>_<uid>/`.
/// For a pod with no such directory (or when `pods_log_dir` cannot be
/// read), the namespace is `""` and the name is the pod UID.
///
/// The checkpoint lists pods the device manager still holds devices for,
/// which can include pods that have just ended.
pub fn checkpoint_pod_devices(
    checkpoint: &Path,
    pods_log_dir: &Path,
) -> Result<BTreeMap<String, Pod>, KubeletError> {
    let text = fs::read(checkpoint).map_err(|e| {
        KubeletError::from_io(WHAT_CHECKPOINT, checkpoint, e, |path, source| {
            KubeletError::Read { path, source }
        })
    })?;
    let file: CheckpointFile =
        serde_json::from_slice(&text).map_err(|source| KubeletError::Parse {
            path: checkpoint.to_path_buf(),
            source,
        })?;
    let entries = file.data.entries.unwrap_or_default();
    let names = pod_names(pods_log_dir);
    let mut map = BTreeMap::new();
    for entry in &entries {
        let Some(ids) = &entry.device_ids else {
            continue;
        };
        let (namespace, name) = match names.get(entry.pod_uid.as_str()) {
            Some((namespace, name)) => (namespace.clone(), name.clone()),
            None => (String::new(), entry.pod_uid.clone()),
        };
        let pod = Pod {
            namespace,
            name,
            container: entry.container.clone(),
            resource: entry.resource.clone(),
            source: PodSource::Checkpoint,
        };
        insert_devices(&mut map, ids.ids(), &pod);
    }
    Ok(map)
}

/// Pod UID → (namespace, name), from the directory names
/// `<namespace>_<name>_<uid>` under `dir` (neither a namespace nor a pod
/// name can hold `_`). Empty when `dir` cannot be read.
fn pod_names(dir: &Path) -> HashMap<String, (String, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        tracing::debug!(dir = %dir.display(), "pod log directory not readable");
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let mut parts = name.splitn(3, '_');
            let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
            (!namespace.is_empty() && !pod.is_empty() && !uid.is_empty())
                .then(|| (uid.to_string(), (namespace.to_string(), pod.to_string())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID_A: &str = "6a1c3e9e-6a5f-4e0c-9d43-1f1f2b3c4d5e";
    const UID_B: &str = "0b7d9c41-1111-4222-8333-944455566677";
    const UID_GONE: &str = "ffffffff-0000-4000-8000-000000000000";

    /// Current kubelets: DeviceIDs per NUMA node. Also a `null` DeviceIDs
    /// and a pod without a log directory.
    fn current_checkpoint() -> String {
        format!(
            r#"{{"Data":{{"PodDeviceEntries":[
{{"PodUID":"{UID_A}","ContainerName":"dpdk","ResourceName":"intel.com/sriov_vfio",
  "DeviceIDs":{{"0":["0000:01:10.0"],"1":["0000:81:10.1"]}},"AllocResp":"CiIKHlBDSURFVklDRV9JTlRFTF9DT00=="}},
{{"PodUID":"{UID_B}","ContainerName":"app","ResourceName":"intel.com/sriov_netdevice",
  "DeviceIDs":{{"-1":["01:10.2"]}},"AllocResp":null}},
{{"PodUID":"{UID_GONE}","ContainerName":"c","ResourceName":"intel.com/sriov_netdevice",
  "DeviceIDs":{{"0":["0000:01:10.3"]}},"AllocResp":""}},
{{"PodUID":"{UID_B}","ContainerName":"init","ResourceName":"intel.com/sriov_netdevice",
  "DeviceIDs":null,"AllocResp":null}}
],"RegisteredDevices":{{"intel.com/sriov_vfio":["0000:01:10.0","0000:81:10.1"],
  "intel.com/sriov_netdevice":["0000:01:10.2","0000:01:10.3"]}}}},"Checksum":1234567890,
  "BootID":"2f4d6b1e-0000-4000-8000-000000000001"}}"#
        )
    }

    /// Kubernetes 1.19 and older: DeviceIDs a plain list.
    fn v1_checkpoint() -> String {
        format!(
            r#"{{"Data":{{"PodDeviceEntries":[{{"PodUID":"{UID_A}","ContainerName":"dpdk",
"ResourceName":"intel.com/sriov","DeviceIDs":["0000:01:10.4","0000:01:10.5"],"AllocResp":"e30="}}],
"RegisteredDevices":{{"intel.com/sriov":["0000:01:10.4","0000:01:10.5"]}}}},"Checksum":42}}"#
        )
    }

    fn pod(namespace: &str, name: &str, container: &str, resource: &str) -> Pod {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            container: container.into(),
            resource: resource.into(),
            source: PodSource::Checkpoint,
        }
    }

    /// A `/var/log/pods` with the two pods, plus stray entries.
    fn pod_logs(dir: &Path) {
        for d in [
            format!("default_vnf-0_{UID_A}"),
            format!("telco_upf-7d9f_{UID_B}"),
            "not-a-pod-dir".to_string(),
        ] {
            fs::create_dir_all(dir.join(d).join("app")).expect("mkdir");
        }
    }

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("kubelet_internal_checkpoint");
        fs::write(&path, text).expect("write checkpoint");
        path
    }

    #[test]
    fn current_format_with_pod_names_from_log_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("pods");
        pod_logs(&logs);
        let cp = write(tmp.path(), &current_checkpoint());
        let got = checkpoint_pod_devices(&cp, &logs).expect("parse");
        let vfio = pod("default", "vnf-0", "dpdk", "intel.com/sriov_vfio");
        let want = BTreeMap::from([
            ("0000:01:10.0".to_string(), vfio.clone()),
            ("0000:81:10.1".to_string(), vfio),
            (
                "0000:01:10.2".to_string(),
                pod("telco", "upf-7d9f", "app", "intel.com/sriov_netdevice"),
            ),
            (
                "0000:01:10.3".to_string(),
                pod("", UID_GONE, "c", "intel.com/sriov_netdevice"),
            ),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn old_flat_list_format_and_no_log_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cp = write(tmp.path(), &v1_checkpoint());
        let got = checkpoint_pod_devices(&cp, &tmp.path().join("missing")).expect("parse");
        let p = pod("", UID_A, "dpdk", "intel.com/sriov");
        let want = BTreeMap::from([
            ("0000:01:10.4".to_string(), p.clone()),
            ("0000:01:10.5".to_string(), p),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn empty_checkpoint_of_a_fresh_kubelet() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cp = write(
            tmp.path(),
            r#"{"Data":{"PodDeviceEntries":null,"RegisteredDevices":{}},"Checksum":0}"#,
        );
        let got = checkpoint_pod_devices(&cp, tmp.path()).expect("parse");
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn corrupt_checkpoint_names_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for text in [
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"#,
            "",
            r#"{"Checksum":1}"#,
        ] {
            let cp = write(tmp.path(), text);
            let err = checkpoint_pod_devices(&cp, tmp.path()).expect_err(text);
            assert!(matches!(err, KubeletError::Parse { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("device plugin checkpoint {}: ", cp.display())),
                "{msg}"
            );
        }
    }

    #[test]
    fn missing_checkpoint_is_not_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cp = tmp.path().join("kubelet_internal_checkpoint");
        let err = checkpoint_pod_devices(&cp, tmp.path()).expect_err("missing");
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("device plugin checkpoint {}: not found", cp.display())
        );
        // a directory where the file should be: another read error
        let err = checkpoint_pod_devices(tmp.path(), tmp.path()).expect_err("dir");
        assert!(matches!(err, KubeletError::Read { .. }), "{err:?}");
    }
}
