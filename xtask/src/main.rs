//! `cargo xtask`: developer tasks for sriov-top.
//!
//! ```text
//! cargo xtask setup                 # install QEMU, bpf-linker, rust-src, guest kernel (root)
//! cargo xtask lab                   # boot the 82576 lab and run the main job on the console
//! cargo xtask lab --exec 'CMD'      # run CMD as root in the guest, exit with its code
//! cargo xtask vm-test               # run the root + real-kernel integration tests in the lab
//! cargo xtask test                  # cargo test --workspace + vm-test, one summary
//! cargo xtask bench                 # benchmarks (host + lab), ratios printed
//! cargo xtask fuzz                  # cargo-fuzz targets, 30 s each
//! ```
mod bench;
mod fuzz;
mod kernels;
mod lab;
mod setup;
mod test;
mod util;
mod vmtest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer tasks for sriov-top", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain pieces, QEMU and the guest kernel (idempotent, root).
    Setup(setup::Options),
    /// Boot the QEMU lab: q35 + intel-iommu + emulated Intel 82576 (igb) with SR-IOV.
    Lab(lab::Options),
    /// Build the lab integration tests, run them in the VM, print `N passed, M failed`.
    VmTest(vmtest::Options),
    /// Every test: `cargo test --workspace`, then `cargo xtask vm-test`.
    Test(test::Options),
    /// Benchmarks (host criterion benches, and lab benches in the VM).
    Bench(bench::Options),
    /// Run the cargo-fuzz targets for a while.
    Fuzz(fuzz::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Setup(o) => setup::run_setup(o).map(|()| 0),
        Cmd::Lab(o) => lab::run_lab(o),
        Cmd::VmTest(o) => vmtest::run_vm_test(o),
        Cmd::Test(o) => test::run_test(o),
        Cmd::Bench(o) => bench::run_bench(o),
        Cmd::Fuzz(o) => fuzz::run_fuzz(o),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
