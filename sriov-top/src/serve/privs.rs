//! Privileges: once the probes are loaded and attached, the agent keeps
//! only the capabilities it still uses (docs/agent.md lists them), and
//! with `--user` switches to that user.
//!
//! What the running agent still does, and the capability each needs:
//!
//! - `CAP_SYS_PTRACE`: read other users' `/proc/<pid>/fd` and `exe` (who
//!   holds a VF's VFIO group);
//! - `CAP_DAC_READ_SEARCH`: read `/proc/<pid>/…` and the kubelet's files
//!   (device plugin checkpoint, `/var/log/pods`) whatever their modes;
//! - `CAP_DAC_OVERRIDE`: connect to the kubelet's pod-resources socket
//!   (root's, mode 0660) as another user — kept only with `--user` and
//!   when that socket exists at start;
//! - `CAP_SYS_ADMIN`: `setns` into another network namespace to find a
//!   VF netdev moved there.
//!
//! Reading the maps and the ring buffer, rtnetlink queries and sysfs need
//! none: the map and program fds are already open. A policy's reload
//! (SIGHUP) and removal need root, so `--user` is refused with `--policy`
//! and, with a policy, nothing is dropped.
//!
//! The process has one thread when this runs (the agent's runtime is
//! single-threaded), so the capability sets below are the process's.
use std::collections::HashSet;

use anyhow::{Context as _, Result};
use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid, User};

/// The capabilities the running agent keeps (see the module docs);
/// `kubelet_as_user`: a kubelet socket to connect to as another user.
pub fn keep(kubelet_as_user: bool) -> HashSet<Capability> {
    let mut k: HashSet<Capability> = [
        Capability::CAP_SYS_PTRACE,
        Capability::CAP_DAC_READ_SEARCH,
        Capability::CAP_SYS_ADMIN,
    ]
    .into();
    if kubelet_as_user {
        k.insert(Capability::CAP_DAC_OVERRIDE);
    }
    k
}

/// Drop every capability but `keep` (bounding, permitted, effective,
/// inheritable, ambient), then with `user` switch to its uid and gid
/// (supplementary groups: only its own) keeping `keep`, and set
/// `no_new_privs`.
pub fn drop_to(user: Option<&User>, keep: &HashSet<Capability>) -> Result<()> {
    // what we do not have cannot be kept (a container's reduced set)
    let had = caps::read(None, CapSet::Permitted).context("reading the permitted capabilities")?;
    let keep: HashSet<Capability> = keep.intersection(&had).copied().collect();
    // the bounding set: only what is in it (a kernel may not know every
    // capability this build names), and only with CAP_SETPCAP (without it,
    // as under a unit that leaves it out, the set stays as the unit made it)
    let effective =
        caps::read(None, CapSet::Effective).context("reading the effective capabilities")?;
    if effective.contains(&Capability::CAP_SETPCAP) {
        let bounding = caps::read(None, CapSet::Bounding).context("reading the bounding set")?;
        for cap in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("clearing the ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable capabilities")?;
    if let Some(u) = user {
        switch_user(u)?;
    }
    // effective first: it must stay within the permitted set
    caps::set(None, CapSet::Effective, &keep).context("setting the effective capabilities")?;
    caps::set(None, CapSet::Permitted, &keep).context("setting the permitted capabilities")?;
    nix::sys::prctl::set_no_new_privs().context("setting no_new_privs")?;
    Ok(())
}

/// setgroups, setresgid, setresuid to `u`, keeping the permitted
/// capabilities across the uid change (`PR_SET_KEEPCAPS`).
fn switch_user(u: &User) -> Result<()> {
    caps::securebits::set_keepcaps(true).context("PR_SET_KEEPCAPS")?;
    nix::unistd::setgroups(&[u.gid]).with_context(|| format!("setgroups({})", u.gid))?;
    nix::unistd::setresgid(u.gid, u.gid, u.gid).with_context(|| format!("setresgid({})", u.gid))?;
    nix::unistd::setresuid(u.uid, u.uid, u.uid).with_context(|| format!("setresuid({})", u.uid))?;
    caps::securebits::set_keepcaps(false).context("PR_SET_KEEPCAPS off")?;
    if Uid::current() != u.uid || Gid::current() != u.gid {
        anyhow::bail!(
            "still running as uid {} after switching to {}",
            Uid::current(),
            u.name
        );
    }
    Ok(())
}
