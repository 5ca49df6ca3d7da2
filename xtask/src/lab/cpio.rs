//! A minimal writer for the `newc` cpio format the kernel unpacks as an
//! initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
use std::collections::BTreeSet;

/// An in-memory initramfs image. Parent directories are created on demand.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Cpio {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0, // mtime: reproducible images
            u32::try_from(data.len()).expect("initramfs member over 4 GiB"),
            0,
            0,
            0,
            0,
            u32::try_from(namesize).expect("name length"),
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn norm(path: &str) -> &str {
        path.trim_start_matches('/')
    }

    /// Create `path` and all its parents as directories (mode 0755).
    pub fn dir(&mut self, path: &str) {
        let path = Self::norm(path);
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if self.dirs.insert(acc.clone()) {
                let name = acc.clone();
                self.entry(&name, S_IFDIR | 0o755, &[]);
            }
        }
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = Self::norm(path).rsplit_once('/') {
            let parent = parent.to_string();
            self.dir(&parent);
        }
    }

    /// Add a regular file with the given permission bits.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.parent(path);
        self.entry(Self::norm(path), S_IFREG | (perm & 0o7777), data);
    }

    /// Add a symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parent(path);
        self.entry(Self::norm(path), S_IFLNK | 0o777, target.as_bytes());
    }

    /// Finish the archive and return its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_aligned_and_ends_with_trailer() {
        let mut c = Cpio::new();
        c.file("/a/b/init", 0o755, b"#!/bin/sh\n");
        c.symlink("/bin/sh", "busybox");
        let img = c.finish();
        assert_eq!(&img[..6], b"070701");
        assert_eq!(img.len() % 4, 0);
        // dirs a, a/b, file, dir bin, symlink, trailer = 6 headers
        assert_eq!(img.windows(6).filter(|w| w == b"070701").count(), 6);
        let text = String::from_utf8_lossy(&img);
        assert!(text.contains("a/b/init\0"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn header_fields_encode_mode_and_size() {
        let mut c = Cpio::new();
        c.file("x", 0o644, b"hello");
        let img = c.finish();
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&img[6 + 8 * i..14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap()
        };
        assert_eq!(field(1), S_IFREG | 0o644);
        assert_eq!(field(6), 5); // filesize
        assert_eq!(field(11), 2); // "x\0"
        // data starts after the 110-byte header + name padded to 4
        assert_eq!(&img[112..117], b"hello");
    }
}
