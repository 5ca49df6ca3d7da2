//! Loading the eBPF programs built from `sriov-ebpf` (embedded at build time).
mod irq;

pub use irq::IrqCounter;

/// The eBPF object, built by `build.rs` with aya-build.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sriov-ebpf"))
}

/// Where tracefs is expected; attaching tracepoints needs it mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

const TRACEFS_HINT: &str = "\nFix: mount tracefs (`mount -t tracefs tracefs /sys/kernel/tracing`) and run as root";
