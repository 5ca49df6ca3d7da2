//! node_exporter's textfile collector: `--textfile DIR` writes
//! `DIR/sriov-top.prom` after each tick, atomically (a temporary file in
//! the same directory, then a rename), so node_exporter never reads half
//! a file. node_exporter reads the Prometheus text format only.
use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

/// The file node_exporter reads (it takes `*.prom`).
pub const FILE: &str = "sriov-top.prom";

/// Check that `dir` is a directory we can write, before anything loads.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{}: not a directory", dir.display())),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| format!("{}: not writable: {e}", dir.display()))
}

/// Write `body` to `dir/sriov-top.prom` atomically.
pub fn write(dir: &Path, body: &str) -> io::Result<PathBuf> {
    let path = dir.join(FILE);
    // not *.prom: node_exporter must not read the temporary file
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let r = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map(|()| path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a 1\n").unwrap();
        write(d.path(), "a 2\n").unwrap();
        assert_eq!(fs::read_to_string(d.path().join(FILE)).unwrap(), "a 2\n");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
    }

    #[test]
    fn a_missing_or_plain_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(
            check_dir(&d.path().join("nope"))
                .unwrap_err()
                .contains("nope")
        );
        fs::write(d.path().join("f"), "").unwrap();
        assert!(
            check_dir(&d.path().join("f"))
                .unwrap_err()
                .contains("not a directory")
        );
        assert!(check_dir(d.path()).is_ok());
    }
}
