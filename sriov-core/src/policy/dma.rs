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
