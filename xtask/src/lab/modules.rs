//! Kernel modules for the guest: resolve dependencies from the guest kernel's
//! `modules.dep`, decompress the `.ko.xz` files (busybox cannot read xz) and
//! lay them out with a plain `modules.dep` that busybox `modprobe` reads.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::BufReader,
    path::Path,
};

use anyhow::{Context as _, Result, bail};

use super::cpio::Cpio;

/// Modules the lab loads. Built-ins (per `modules.builtin`) are skipped.
pub const LAB_MODULES: &[&str] = &[
    // 9p share of the project's binaries (virtio_pci is built into 6.12,
    // a module in 6.1)
    "virtio_pci",
    "netfs",
    "9pnet",
    "9pnet_virtio",
    "9p",
    // the seed's devices: PF driver, VF driver, VFIO
    "igb",
    "igbvf",
    "vfio",
    "vfio_iommu_type1",
    "vfio-pci",
    // test plumbing: veth pairs, TC clsact for the datapath policy
    "veth",
    "sch_ingress",
    "cls_bpf",
];

fn canon(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/drivers/.../igb.ko.xz` -> `igb`
fn module_name(rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    canon(file.split(".ko").next().unwrap_or(file))
}

pub struct ModuleSet {
    /// module name -> path relative to the modules dir (as in modules.dep)
    paths: BTreeMap<String, String>,
    deps: BTreeMap<String, Vec<String>>,
    builtin: BTreeSet<String>,
}

impl ModuleSet {
    pub fn read(modules_dir: &Path) -> Result<Self> {
        let dep_file = modules_dir.join("modules.dep");
        let text = fs::read_to_string(&dep_file)
            .with_context(|| format!("reading {} (run `cargo xtask setup`)", dep_file.display()))?;
        let mut paths = BTreeMap::new();
        let mut deps = BTreeMap::new();
        for line in text.lines() {
            let Some((m, rest)) = line.split_once(':') else {
                continue;
            };
            let name = module_name(m);
            deps.insert(
                name.clone(),
                rest.split_whitespace().map(module_name).collect(),
            );
            paths.insert(name, m.to_string());
            for d in rest.split_whitespace() {
                paths.entry(module_name(d)).or_insert_with(|| d.to_string());
            }
        }
        let builtin = fs::read_to_string(modules_dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .map(module_name)
            .collect();
        Ok(Self {
            paths,
            deps,
            builtin,
        })
    }

    /// Wanted modules plus their dependencies, dependencies first.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<String>> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for w in wanted {
            let w = canon(w);
            if self.builtin.contains(&w) {
                continue;
            }
            if !self.paths.contains_key(&w) {
                bail!("module {w} is neither in modules.dep nor built in");
            }
            self.visit(&w, &mut seen, &mut order);
        }
        Ok(order)
    }

    fn visit(&self, m: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(m.to_string()) {
            return;
        }
        for d in self.deps.get(m).into_iter().flatten() {
            self.visit(d, seen, order);
        }
        order.push(m.to_string());
    }

    /// Decompress `modules` into the image under `/lib/modules/<version>/`
    /// and write a `modules.dep` for them. Decompressed files are cached.
    /// Returns the in-image paths in load order.
    pub fn install(
        &self,
        modules_dir: &Path,
        version: &str,
        modules: &[String],
        cache: &Path,
        img: &mut Cpio,
    ) -> Result<Vec<String>> {
        let mut loaded = Vec::new();
        let base = format!("/lib/modules/{version}");
        let mut dep = String::new();
        let ko = |rel: &str| {
            rel.trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .to_string()
        };
        for m in modules {
            let rel = &self.paths[m];
            let cached = cache.join(ko(rel));
            if !cached.exists() {
                let src = modules_dir.join(rel);
                let data = decompress(&src)?;
                fs::create_dir_all(cached.parent().expect("has parent"))?;
                fs::write(&cached, data)?;
            }
            let in_image = format!("{base}/{}", ko(rel));
            img.file(&in_image, 0o644, &fs::read(&cached)?);
            loaded.push(in_image);
            let ds: Vec<String> = self
                .deps
                .get(m)
                .into_iter()
                .flatten()
                .map(|d| ko(&self.paths[d]))
                .collect();
            dep.push_str(&format!("{}: {}\n", ko(rel), ds.join(" ")));
        }
        img.file(&format!("{base}/modules.dep"), 0o644, dep.as_bytes());
        Ok(loaded)
    }
}

fn decompress(src: &Path) -> Result<Vec<u8>> {
    let name = src.display().to_string();
    if name.ends_with(".ko") {
        return Ok(fs::read(src)?);
    }
    if !name.ends_with(".xz") {
        bail!("{name}: only .ko and .ko.xz modules are supported");
    }
    let f = fs::File::open(src).with_context(|| format!("opening {name}"))?;
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut BufReader::new(f), &mut out)
        .map_err(|e| anyhow::anyhow!("decompressing {name}: {e:?}"))?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn load_order_puts_dependencies_first_and_skips_builtins() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("modules.dep"),
            "kernel/a/igb.ko.xz: kernel/b/dca.ko.xz kernel/c/i2c-algo-bit.ko.xz\n\
             kernel/b/dca.ko.xz:\nkernel/c/i2c-algo-bit.ko.xz:\n\
             kernel/d/vfio-pci.ko.xz: kernel/d/vfio-pci-core.ko.xz kernel/d/vfio.ko.xz\n\
             kernel/d/vfio-pci-core.ko.xz: kernel/d/vfio.ko.xz\nkernel/d/vfio.ko.xz:\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("modules.builtin"),
            "kernel/e/virtio_pci.ko\n",
        )
        .unwrap();
        let set = ModuleSet::read(dir.path()).unwrap();
        let order = set.load_order(&["vfio-pci", "igb", "virtio_pci"]).unwrap();
        assert_eq!(
            order,
            [
                "vfio",
                "vfio_pci_core",
                "vfio_pci",
                "dca",
                "i2c_algo_bit",
                "igb"
            ]
        );
        assert!(set.load_order(&["nope"]).is_err());
    }
}
