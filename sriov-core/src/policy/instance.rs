//! Who owns the loaded policy. One process at a time loads a policy and
//! owns its pins (`/sys/fs/bpf/sriov-top`): it holds an `flock`ed lock file
//! (`/run/sriov-top/policy.lock`) for as long as it runs and writes an owner
//! record beside it (`/run/sriov-top/policy.json`: file, mode, pid,
//! persist, start time, pin dir). bpffs cannot hold regular files, hence
//! `/run`.
//!
//! - [`claim`] takes the policy for a new load: refused while another
//!   process holds the lock ([`Error::PolicyOwned`], naming its pid and
//!   file) or while a `--persist` policy is in force with nobody behind it
//!   ([`Error::PolicyPersisted`]: `sriov policy unload` first). Pins left by
//!   an owner that died without `--persist` are removed (a warning).
//! - The [`Claim`] removes its pins and its record when it is dropped,
//!   unless [`Claim::keep`] (a `--persist` policy stays in force).
//! - [`observe`] says what is there without taking the lock
//!   (`sriov policy status`); [`begin_unload`] takes it for
//!   `sriov policy unload`.
//!
//! The lock decides: a lock nobody holds means no live owner, whatever the
//! record says (its pid may have been reused). The lock file itself is
//! never removed (a process could otherwise lock a file that is gone).
use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};
use serde::{Deserialize, Serialize};

use super::Mode;
use crate::{Error, Result};

/// Where the owner record and the lock live.
pub const RUN_DIR: &str = "/run/sriov-top";
pub const RECORD_FILE: &str = "policy.json";
pub const LOCK_FILE: &str = "policy.lock";
/// Below the pin dir: the pinned LSM links of a `--persist` policy.
pub const LINKS_DIR: &str = "links";

/// The directories of one policy instance: [`Paths::system`] in use,
/// temporary directories in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The owner record and the lock file (`/run/sriov-top`).
    pub run_dir: PathBuf,
    /// The pinned maps, and links with `--persist` (`/sys/fs/bpf/sriov-top`).
    pub pin_dir: PathBuf,
}

impl Paths {
    /// `/run/sriov-top` and `/sys/fs/bpf/sriov-top`.
    pub fn system() -> Self {
        Self {
            run_dir: RUN_DIR.into(),
            pin_dir: super::enforce::PIN_DIR.into(),
        }
    }

    pub fn record(&self) -> PathBuf {
        self.run_dir.join(RECORD_FILE)
    }

    pub fn lock(&self) -> PathBuf {
        self.run_dir.join(LOCK_FILE)
    }

    pub fn links(&self) -> PathBuf {
        self.pin_dir.join(LINKS_DIR)
    }
}

/// The owner record (`policy.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The policy file (absolute when it could be resolved).
    pub file: PathBuf,
    /// The mode of the file when it was loaded (a reload may change it;
    /// `POLICY_CONF` has the mode in force).
    pub mode: Mode,
    pub pid: u32,
    /// Loaded with `--persist`: stays in force after the process exits.
    pub persist: bool,
    /// When it was loaded, seconds since the Unix epoch.
    pub started_unix: u64,
    pub pin_dir: PathBuf,
}

impl Owner {
    /// This process, loading `file` now.
    pub fn new(file: &Path, mode: Mode, persist: bool, paths: &Paths) -> Self {
        Self {
            file: fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
            mode,
            pid: std::process::id(),
            persist,
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            pin_dir: paths.pin_dir.clone(),
        }
    }
}

/// An I/O error on the policy state: a permission error says that root is
/// needed, any other keeps the operation, path and errno.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl Fn(io::Error) -> Error {
    let path = path.to_path_buf();
    move |e| match e.raw_os_error() {
        Some(errno) if errno == libc::EACCES || errno == libc::EPERM => Error::PolicyPermission {
            op,
            path: path.clone(),
            errno,
        },
        _ => Error::sysfs(op, path.clone(), e),
    }
}

/// Whether `path` exists (a permission error is an error, not a no).
fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

/// Remove `dir` and what is in it; gone already is fine.
fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
        _ => Ok(()),
    }
}

fn remove_record(paths: &Paths) -> Result<()> {
    let p = paths.record();
    match fs::remove_file(&p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &p)(e)),
        _ => Ok(()),
    }
}

/// The owner record, if there is one that can be read as such (a record
/// that is not JSON is as good as none: the lock and the pins decide).
pub fn read_record(paths: &Paths) -> Result<Option<Owner>> {
    let p = paths.record();
    match fs::read(&p) {
        Ok(b) => Ok(serde_json::from_slice(&b).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &p)(e)),
    }
}

/// Write the record whole (a temporary file renamed over it), mode 0644.
fn write_record(paths: &Paths, owner: &Owner) -> Result<()> {
    let p = paths.record();
    let tmp = paths.run_dir.join(format!(".{RECORD_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(owner).map_err(|e| io_err("encode", &p)(e.into()))?;
    fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).map_err(io_err("chmod", &tmp))?;
    fs::rename(&tmp, &p).map_err(io_err("rename", &p))
}

/// Whether process `pid` exists (signal 0).
fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // pid 0 would be this process group
    raw > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
            Err(Errno::ESRCH)
        )
}

/// The pid holding an `flock` on the file `(major, minor, ino)`, from the
/// text of `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`;
/// lines with `->` are waiters, not holders).
pub(crate) fn parse_lock_holder(text: &str, major: u32, minor: u32, ino: u64) -> Option<u32> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let maj = u32::from_str_radix(id.next()?, 16).ok()?;
        let min = u32::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && i == ino)
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

/// Who holds the lock file now: from `/proc/locks`; without it, the
/// record's pid when that process exists.
fn holder(lock: &Path, record: Option<&Owner>) -> Option<u32> {
    match fs::read_to_string("/proc/locks") {
        Ok(text) => {
            let m = fs::metadata(lock).ok()?;
            parse_lock_holder(&text, libc::major(m.dev()), libc::minor(m.dev()), m.ino())
        }
        Err(_) => record.map(|r| r.pid).filter(|&p| pid_alive(p)),
    }
}

/// What [`Error::PolicyOwned`] says.
pub fn owned_message(unload: bool, pid: Option<u32>, file: Option<&Path>, lock: &Path) -> String {
    let file = file
        .map(|f| format!(" {}", f.display()))
        .unwrap_or_default();
    let lock = lock.display();
    match (pid, unload) {
        (Some(pid), false) => format!(
            "the policy{file} is in force, loaded by sriov-top pid {pid}, which is running (it holds {lock}); \
             one policy at a time, nothing was loaded: stop it first (kill -TERM {pid}), or edit its file and \
             reload it (kill -HUP {pid})"
        ),
        (Some(pid), true) => format!(
            "the policy{file} belongs to the running sriov-top pid {pid} (it holds {lock}), which removes it \
             when it stops: stop it: kill -TERM {pid} (started with --persist, it leaves the policy in \
             force: then run `sriov policy unload` again)"
        ),
        (None, _) => format!(
            "another process holds {lock} (a sriov-top with a policy, or a `sriov policy unload` under way); \
             nothing was changed: try again when it is done"
        ),
    }
}

/// The lock, held.
struct Held {
    lock: Flock<File>,
    record: Option<Owner>,
}

/// Take the lock without waiting; `unload` only changes the message when
/// another process holds it.
fn lock(paths: &Paths, unload: bool) -> Result<Held> {
    let dir = &paths.run_dir;
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", dir))?;
    let path = paths.lock();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Held {
            lock,
            record: read_record(paths)?,
        }),
        Err((_, Errno::EWOULDBLOCK)) => {
            let record = read_record(paths).ok().flatten();
            let pid = holder(&path, record.as_ref());
            // the record is the holder's only when the pids agree
            let file = record.filter(|r| Some(r.pid) == pid).map(|r| r.file);
            Err(Error::PolicyOwned {
                unload,
                pid,
                file,
                lock: path,
                errno: libc::EWOULDBLOCK,
            })
        }
        Err((_, e)) => Err(io_err("lock", &path)(io::Error::from(e))),
    }
}

/// The policy, owned by this process until dropped.
pub struct Claim {
    paths: Paths,
    owner: Owner,
    _lock: Flock<File>,
    keep: bool,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("paths", &self.paths)
            .field("owner", &self.owner)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// Take the policy for a load by `owner` (this process).
///
/// # Errors
///
/// [`Error::PolicyOwned`] while another process holds the lock,
/// [`Error::PolicyPersisted`] while a `--persist` policy is in force
/// (`pin_dir/links` exists); nothing is changed then. I/O errors with the
/// path ([`Error::PolicyPermission`] without root).
pub fn claim(paths: &Paths, owner: Owner) -> Result<Claim> {
    let held = lock(paths, false)?;
    if exists(&paths.links())? {
        return Err(Error::PolicyPersisted {
            file: held.record.map(|r| r.file),
            pin_dir: paths.pin_dir.clone(),
        });
    }
    let mut warnings = Vec::new();
    if exists(&paths.pin_dir)? {
        // no live owner, no links: the programs went with their process
        let who = held
            .record
            .as_ref()
            .map(|r| format!(" (pid {}, policy {})", r.pid, r.file.display()))
            .unwrap_or_default();
        remove_tree(&paths.pin_dir)?;
        warnings.push(format!(
            "removed the stale pins under {} of a sriov-top that stopped without removing them{who}",
            paths.pin_dir.display()
        ));
    }
    write_record(paths, &owner)?;
    Ok(Claim {
        paths: paths.clone(),
        owner,
        _lock: held.lock,
        keep: false,
        warnings,
    })
}

impl Claim {
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Where the maps are to be pinned.
    pub fn pin_dir(&self) -> &Path {
        &self.paths.pin_dir
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// What the claim had to clean up (stale pins), once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Let go of the policy but leave it in force (`--persist`): the pins
    /// and the record stay (marked `persist`), the lock is released.
    pub fn keep(mut self) {
        self.keep = true;
        if !self.owner.persist {
            self.owner.persist = true;
            if let Err(e) = write_record(&self.paths, &self.owner) {
                tracing::warn!("policy owner record: {e}");
            }
        }
    }
}

impl Drop for Claim {
    /// The pins (this owner's only: it holds the lock), then the record.
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = remove_tree(&self.paths.pin_dir).and_then(|()| remove_record(&self.paths)) {
            tracing::warn!("removing the policy: {e}");
        }
    }
}

/// What is there, seen without taking the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub record: Option<Owner>,
    /// The process that holds the lock (the live owner).
    pub holder: Option<u32>,
    /// The pin dir exists.
    pub pins: bool,
    /// `pin_dir/links` exists (a `--persist` policy).
    pub links: bool,
}

/// The state of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Nothing loaded.
    None,
    /// A live process owns it.
    Running,
    /// In force with no process behind it (`--persist`).
    Persisted,
    /// Pins of an owner that died: the programs are gone.
    Stale,
}

impl Observed {
    pub fn state(&self) -> State {
        if self.holder.is_some() {
            State::Running
        } else if self.links {
            State::Persisted
        } else if self.pins {
            State::Stale
        } else {
            State::None
        }
    }
}

/// The record, the lock's holder and the pins as they are now.
pub fn observe(paths: &Paths) -> Result<Observed> {
    let record = read_record(paths)?;
    let holder = holder(&paths.lock(), record.as_ref());
    Ok(Observed {
        holder,
        pins: exists(&paths.pin_dir)?,
        links: exists(&paths.links())?,
        record,
    })
}

/// `sriov policy unload` holds the lock: no sriov-top can load meanwhile.
pub struct Unload {
    paths: Paths,
    _lock: Flock<File>,
    /// The record of the last owner.
    pub record: Option<Owner>,
    pub pins: bool,
    pub links: bool,
}

/// Take the lock to unload.
///
/// # Errors
///
/// [`Error::PolicyOwned`] while a live process owns the policy (stop it);
/// I/O errors with the path.
pub fn begin_unload(paths: &Paths) -> Result<Unload> {
    let held = lock(paths, true)?;
    Ok(Unload {
        paths: paths.clone(),
        _lock: held.lock,
        record: held.record,
        pins: exists(&paths.pin_dir)?,
        links: exists(&paths.links())?,
    })
}

impl Unload {
    /// Remove the pins (unpinned links detach their programs) and the
    /// record, then let go of the lock.
    pub fn finish(self) -> Result<()> {
        remove_tree(&self.paths.pin_dir)?;
        remove_record(&self.paths)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
