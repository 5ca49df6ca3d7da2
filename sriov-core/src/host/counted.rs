//! A host that counts what is read through it (tests).
use std::{
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use super::{Host, VfNetlink};

/// Counts the reads, readlinks and existence checks made through it; its
/// rtnetlink may be another than the host's ([`Counted::with_netlink`]).
pub struct Counted<'a> {
    host: &'a dyn Host,
    netlink: Option<&'a dyn VfNetlink>,
    reads: AtomicUsize,
    links: AtomicUsize,
    exists: AtomicUsize,
}

impl<'a> Counted<'a> {
    pub fn new(host: &'a dyn Host) -> Self {
        Self {
            host,
            netlink: None,
            reads: AtomicUsize::new(0),
            links: AtomicUsize::new(0),
            exists: AtomicUsize::new(0),
        }
    }

    /// `host`, answering rtnetlink with `netlink`.
    pub fn with_netlink(host: &'a dyn Host, netlink: &'a dyn VfNetlink) -> Self {
        Self {
            netlink: Some(netlink),
            ..Self::new(host)
        }
    }

    /// (reads, readlinks, existence checks) since the last call.
    pub fn take(&self) -> (usize, usize, usize) {
        (
            self.reads.swap(0, Ordering::Relaxed),
            self.links.swap(0, Ordering::Relaxed),
            self.exists.swap(0, Ordering::Relaxed),
        )
    }
}

impl Host for Counted<'_> {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.host.read(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.host.write(path, value)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.links.fetch_add(1, Ordering::Relaxed);
        self.host.read_link(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.host.list_dir(path)
    }
    fn dir_sign(&self, path: &Path, out: &mut Vec<u8>) -> io::Result<()> {
        self.host.dir_sign(path, out)
    }
    fn exists(&self, path: &Path) -> bool {
        self.exists.fetch_add(1, Ordering::Relaxed);
        self.host.exists(path)
    }
    fn netlink(&self) -> Option<&dyn VfNetlink> {
        self.netlink.or_else(|| self.host.netlink())
    }
    fn writes(&self) -> usize {
        self.host.writes()
    }
}
