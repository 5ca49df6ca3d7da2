//! The single choke point between the library and the system: every sysfs
//! read and write and every rtnetlink call goes through [`Host`]. The real
//! implementation is [`System`]; tests use fixture trees (a [`System`] rooted
//! at a temporary directory) and [`fake::FakeKernel`], which also plays the
//! kernel's part on writes.
#[cfg(test)]
pub(crate) mod counted;
pub mod fake;
pub mod netlink;

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

pub use netlink::{NetlinkError, RtNetlink, VfAttr, VfNetInfo, VfNetlink, VfStats};

/// Sysfs and netlink access. Paths are absolute system paths
/// (`/sys/bus/pci/devices/...`); an implementation may map them elsewhere.
/// `Sync` so that discovery can scan PFs in parallel.
pub trait Host: Sync {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Names of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// A directory's listing as bytes to compare with an earlier one: each
    /// entry's name, a NUL, the inode number the listing gives (`d_ino`:
    /// no stat per entry), appended to `out` in the listing's order. In
    /// sysfs an entry's number changes when its device is removed and
    /// created again under the same name. The same entries may come in
    /// another order (then the bytes differ): this is for telling cheaply
    /// that nothing changed. By default the sorted names, inode 0 each.
    fn dir_sign(&self, path: &Path, out: &mut Vec<u8>) -> io::Result<()> {
        for name in self.list_dir(path)? {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(&0u64.to_le_bytes());
        }
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool;
    /// rtnetlink, if this host has it (fixture trees do not).
    fn netlink(&self) -> Option<&dyn VfNetlink>;
    /// Writes (sysfs and netlink) done through this host so far.
    fn writes(&self) -> usize;
    /// Create directory `path` and its parents (for state files under
    /// `/run`); by default unsupported.
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// A binary file's bytes (a device's `config`); by default [`read`](Self::read)'s.
    fn read_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read(path).map(String::into_bytes)
    }
    /// The inode number of the file or directory `path` resolves to: in
    /// sysfs, a device directory's changes when the device is removed and
    /// created again under the same name (kernfs ids are unique for the
    /// boot). `None` when unknown.
    fn inode(&self, _path: &Path) -> Option<u64> {
        None
    }
}

/// The real system, or a fixture tree when `root` is not `/`.
pub struct System {
    root: PathBuf,
    netlink: Option<RtNetlink>,
    writes: AtomicUsize,
}

impl System {
    /// The live system: sysfs at `/sys`, rtnetlink in this network namespace.
    pub fn live() -> Self {
        Self {
            root: PathBuf::from("/"),
            netlink: Some(RtNetlink::new()),
            writes: AtomicUsize::new(0),
        }
    }

    /// A sysfs fixture tree: `root/sys/bus/pci/devices/...`; no netlink.
    pub fn fixture(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            netlink: None,
            writes: AtomicUsize::new(0),
        }
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
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Read a small text file (a sysfs attribute is at most a page) with one
/// `read` where it fits, instead of `fs::read_to_string`'s stat + reads.
fn read_small(path: &Path) -> io::Result<String> {
    String::from_utf8(read_small_bytes(path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// [`read_small`]'s bytes, for binary attributes (a device's `config`).
fn read_small_bytes(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..])?;
        len += n;
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Ok(buf)
}

impl Host for System {
    fn read(&self, path: &Path) -> io::Result<String> {
        read_small(&self.map(path))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.count_write();
        fs::write(self.map(path), value)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(self.map(path))
    }

    fn read_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_small_bytes(&self.map(path))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(self.map(path))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(self.map(path))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        Ok(v)
    }

    fn dir_sign(&self, path: &Path, out: &mut Vec<u8>) -> io::Result<()> {
        use nix::{dir::Dir, fcntl::OFlag, sys::stat::Mode};
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut dir = Dir::open(&self.map(path), flags, Mode::empty()).map_err(io::Error::from)?;
        // no allocation per entry: 4096 VFs make directories that large
        for e in dir.iter() {
            let e = e.map_err(io::Error::from)?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.extend_from_slice(name);
                out.push(0);
                out.extend_from_slice(&e.ino().to_le_bytes());
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.map(path).exists()
    }

    fn netlink(&self) -> Option<&dyn VfNetlink> {
        self.netlink.as_ref().map(|n| n as &dyn VfNetlink)
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed) + self.netlink.as_ref().map_or(0, RtNetlink::writes)
    }

    fn inode(&self, path: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(self.map(path)).ok().map(|m| m.ino())
    }
}
