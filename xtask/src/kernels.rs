//! The lab's guest kernels, from Debian's archive: 6.12 (the kernel the
//! reference facts were checked on, the default) and bookworm's 6.1 LTS.
//! `cargo xtask setup` extracts each into the lab cache; `lab --kernel`
//! and `vm-test --kernel` pick one.
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result};

use crate::{
    setup::version_ge,
    util::{cache_dir, output, run},
};

/// A guest kernel the lab boots.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKernel {
    /// Debian's 6.12 (`linux-image-6.12.*+deb12-amd64-unsigned`).
    #[value(name = "6.12")]
    V6_12,
    /// bookworm's 6.1 LTS (`linux-image-6.1.0-*-amd64-unsigned`).
    #[value(name = "6.1")]
    V6_1,
}

impl GuestKernel {
    /// Every kernel, in the order `--kernel all` runs them.
    pub const ALL: [GuestKernel; 2] = [GuestKernel::V6_12, GuestKernel::V6_1];

    pub fn label(self) -> &'static str {
        match self {
            GuestKernel::V6_12 => "6.12",
            GuestKernel::V6_1 => "6.1",
        }
    }

    /// Where setup extracts it (6.12 keeps the directory it always had).
    fn root(self) -> PathBuf {
        cache_dir().join(match self {
            GuestKernel::V6_12 => "kernel",
            GuestKernel::V6_1 => "kernel-6.1",
        })
    }

    /// `apt-cache search --names-only` pattern of its packages.
    fn pattern(self) -> &'static str {
        match self {
            GuestKernel::V6_12 => r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$",
            GuestKernel::V6_1 => r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$",
        }
    }

    /// The package preferred (the one the lab was checked on); the newest
    /// matching one is taken when the archive no longer has it.
    fn preferred(self) -> &'static str {
        match self {
            GuestKernel::V6_12 => "linux-image-6.12.117+deb12-amd64-unsigned",
            GuestKernel::V6_1 => "linux-image-6.1.0-57-amd64-unsigned",
        }
    }
}

impl std::fmt::Display for GuestKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// An extracted guest kernel in the lab cache.
pub struct KernelTree {
    pub root: PathBuf,
    /// `uname -r` of it, e.g. `6.12.117+deb12-amd64`.
    pub version: String,
}

impl KernelTree {
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.version))
    }
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }
}

/// The cached tree of `k`, or an error telling to run setup.
pub fn tree(k: GuestKernel) -> Result<KernelTree> {
    let root = k.root();
    let version = fs::read_to_string(root.join(".complete"))
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            anyhow::anyhow!(
                "no Debian {k} guest kernel in {}.\nFix: cargo xtask setup   (as root; downloads Debian's 6.12 and 6.1 kernels)",
                root.display()
            )
        })?;
    Ok(KernelTree { root, version })
}

/// Setup's check: None when `k` is extracted and its modules indexed.
pub fn check(k: GuestKernel) -> Result<Option<String>> {
    Ok(match tree(k) {
        Ok(t) if t.vmlinuz().exists() && t.modules_dir().join("modules.dep").exists() => None,
        _ => Some(format!("not in {}", k.root().display())),
    })
}

fn candidates(k: GuestKernel) -> Result<Vec<String>> {
    let out = output(Command::new("apt-cache").args(["search", "--names-only", k.pattern()]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

/// Setup's install: download `k`'s package, extract it, index its modules.
pub fn install(k: GuestKernel) -> Result<()> {
    let mut cands = candidates(k)?;
    if cands.is_empty() {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        cands = candidates(k)?;
    }
    let pkg = if cands.iter().any(|c| c == k.preferred()) {
        k.preferred().to_string()
    } else {
        // newest by Debian version order
        cands.sort_by(|a, b| {
            if version_ge(a, b) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        });
        cands
            .pop()
            .with_context(|| format!("the apt archive has no package matching {}", k.pattern()))?
    };
    let root = k.root();
    let debs = cache_dir().join(format!("debs-{k}"));
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(&debs);
    fs::create_dir_all(&debs)?;
    println!("    downloading {pkg}");
    run(Command::new("apt-get")
        .args(["download", "-q", &pkg])
        .current_dir(&debs))?;
    let deb = fs::read_dir(&debs)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download produced no .deb")?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let version = fs::read_dir(root.join("lib/modules"))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .next()
        .context("the kernel package has no lib/modules/<version>")?;
    run(Command::new("depmod").arg("-b").arg(&root).arg(&version))?;
    fs::remove_file(&deb)?;
    fs::write(root.join(".complete"), &version)?;
    Ok(())
}
