//! The single choke point between the library and the system: every sysfs
//! read and write and every rtnetlink call goes through [`Host`]. The real
//! implementation is [`System`]; tests use fixture trees (a [`System`] rooted
//! at a temporary directory) and [`fake::FakeKernel`], which also plays the
//! kernel's part on writes.
pub mod fake;
pub mod netlink;

use std::{
    cell::Cell,
    fs, io,
    path::{Path, PathBuf},
};

pub use netlink::{NetlinkError, RtNetlink, VfAttr, VfNetInfo, VfStats, VfNetlink};

/// Sysfs and netlink access. Paths are absolute system paths
/// (`/sys/bus/pci/devices/...`); an implementation may map them elsewhere.
pub trait Host {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Names of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    /// rtnetlink, if this host has it (fixture trees do not).
    fn netlink(&self) -> Option<&dyn VfNetlink>;
    /// Writes (sysfs and netlink) done through this host so far.
    fn writes(&self) -> usize;
}

/// The real system, or a fixture tree when `root` is not `/`.
pub struct System {
    root: PathBuf,
    netlink: Option<RtNetlink>,
    writes: Cell<usize>,
}

impl System {
    /// The live system: sysfs at `/sys`, rtnetlink in this network namespace.
    pub fn live() -> Self {
        Self { root: PathBuf::from("/"), netlink: Some(RtNetlink::new()), writes: Cell::new(0) }
    }

    /// A sysfs fixture tree: `root/sys/bus/pci/devices/...`; no netlink.
    pub fn fixture(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), netlink: None, writes: Cell::new(0) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn map(&self, path: &Path) -> PathBuf {
        match path.strip_prefix("/") {
            Ok(rel) => self.root.join(rel),
            Err(_) => self.root.join(path),
        }
    }

    fn count_write(&self) {
        self.writes.set(self.writes.get() + 1);
    }
}

impl Host for System {
    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(self.map(path))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.count_write();
        fs::write(self.map(path), value)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(self.map(path))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(self.map(path))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        Ok(v)
    }

    fn exists(&self, path: &Path) -> bool {
        self.map(path).exists()
    }

    fn netlink(&self) -> Option<&dyn VfNetlink> {
        self.netlink.as_ref().map(|n| n as &dyn VfNetlink)
    }

    fn writes(&self) -> usize {
        self.writes.get() + self.netlink.as_ref().map_or(0, RtNetlink::writes)
    }
}
