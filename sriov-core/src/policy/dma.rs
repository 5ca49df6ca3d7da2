//! What the DMA quota needs besides the LSM: the kprobes on
//! `vfio_iommu_type1` that follow what VFIO really pins and unpins
//! (`sriov_ebpf::policy::programs::DMA_KPROBES`), and the check that no VF
//! with a quota is already in use when the policy loads (its container's
//! bytes would be unknown).
use std::{fs, path::Path, process::Command};

use aya::{Ebpf, programs::KProbe};
use sriov_ebpf::policy as k;

use crate::{Error, Result};

const MODULE: &str = "vfio_iommu_type1";

fn unsupported(message: String) -> Error {
    Error::Unsupported {
        device: "kernel".into(),
        message,
    }
}

/// Load `vfio_iommu_type1` when it is not (its functions are what the
/// kprobes attach to; a VFIO container loads it on first use anyway).
fn ensure_module() -> Result<()> {
    if Path::new("/sys/module").join(MODULE).exists() {
        return Ok(());
    }
    let out = Command::new("modprobe").arg(MODULE).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(unsupported(format!(
            "the DMA quota needs the {MODULE} module, and `modprobe {MODULE}` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(unsupported(format!(
            "the DMA quota needs the {MODULE} module; running modprobe failed: {e}"
        ))),
    }
}

/// Load and attach every DMA kprobe; the first that fails names the
/// kernel function and why.
pub fn attach(ebpf: &mut Ebpf) -> Result<Vec<String>> {
    ensure_module()?;
    let mut attached = Vec::new();
    for (name, function) in k::programs::DMA_KPROBES {
        let fail = |e: &dyn std::fmt::Display| {
            unsupported(format!(
                "the DMA quota needs a kprobe on {function} ({MODULE}) for {name}: {e}"
            ))
        };
        let prog = ebpf.program_mut(name).ok_or(Error::EbpfMissing {
            kind: "program",
            name,
        })?;
        let kp: &mut KProbe = prog.try_into().map_err(|e| fail(&e))?;
        kp.load().map_err(|e| fail(&e))?;
        kp.attach(function, 0).map_err(|e| fail(&e))?;
        attached.push(format!("kprobe:{function}"));
    }
    Ok(attached)
}

/// The processes that have `/dev/vfio/<group>` open.
pub fn group_users(group: u32) -> Vec<u32> {
    let node = format!("/dev/vfio/{group}");
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l == Path::new(&node)))
        {
            pids.push(pid);
        }
    }
    pids
}

/// iommufd gives a second way to a VF's DMA and to the VF itself
/// (`/dev/iommu`, `/dev/vfio/devices/vfioN`, and a `/dev/vfio/vfio` of its
/// own with `CONFIG_IOMMUFD_VFIO_CONTAINER`) that the programs do not
/// follow: an enforced policy with `dma_quota_bytes` or `vfio_open` refuses
/// to load while it is there. `sys` is the root of sysfs (`/sys`).
pub fn iommufd_check(policy: &super::Policy, sys: &Path) -> Result<()> {
    if policy.mode != super::Mode::Enforce || !sys.join("module/iommufd").exists() {
        return Ok(());
    }
    let Some(v) = policy
        .vfs
        .iter()
        .find(|v| v.rules.dma_quota_bytes.is_some() || v.rules.vfio_open.is_some())
    else {
        return Ok(());
    };
    Err(Error::Unsupported {
        device: v.bdf.clone(),
        message: "iommufd is loaded: a VF opened through /dev/vfio/devices/vfioN and DMA \
                  mapped through /dev/iommu are not followed by the policy, so dma_quota_bytes \
                  and vfio_open cannot be enforced; unload it (modprobe -r iommufd) or load the \
                  policy in audit mode"
            .into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::{Mode, Policy, VfPolicy, VfRules};

    fn policy(mode: Mode, quota: Option<u64>) -> Policy {
        Policy {
            mode,
            vfs: vec![VfPolicy {
                pf_bdf: "0000:01:00.0".into(),
                pf_netdev: None,
                index: 1,
                bdf: "0000:01:10.2".into(),
                netdev: None,
                iommu_group: Some(9),
                mac: None,
                rules: VfRules {
                    dma_quota_bytes: quota,
                    ..Default::default()
                },
            }],
            pfs: vec![],
        }
    }

    #[test]
    fn an_enforced_quota_refuses_to_load_beside_iommufd() {
        let sys = tempfile::tempdir().unwrap();
        let p = policy(Mode::Enforce, Some(1 << 20));
        assert!(iommufd_check(&p, sys.path()).is_ok(), "no iommufd");
        fs::create_dir_all(sys.path().join("module/iommufd")).unwrap();
        let e = iommufd_check(&p, sys.path()).unwrap_err().to_string();
        assert!(e.contains("0000:01:10.2") && e.contains("iommufd"), "{e}");
        assert!(iommufd_check(&policy(Mode::Audit, Some(1)), sys.path()).is_ok());
        assert!(iommufd_check(&policy(Mode::Enforce, None), sys.path()).is_ok());
    }
}
