//! Builds the eBPF programs of `sriov-ebpf` for `bpfel-unknown-none` with the
//! nightly toolchain and bpf-linker, and leaves the object in `OUT_DIR` for
//! `include_bytes_aligned!`.
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sriov-core is inside the workspace")
        .join("sriov-ebpf");
    let root = root.to_str().expect("UTF-8 workspace path");
    let linker_found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("bpf-linker").is_file()));
    if !linker_found {
        anyhow::bail!(
            "bpf-linker is not on PATH: the eBPF programs cannot be built.\n\
             Fix: cargo xtask setup   (builds bpf-linker against nightly's LLVM and adds rust-src)"
        );
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "sriov-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
