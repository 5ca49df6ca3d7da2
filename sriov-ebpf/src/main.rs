//! The eBPF programs. Built for `bpfel-unknown-none` by `sriov-core`'s build
//! script; on the host this target is an empty binary so that
//! `cargo build --workspace` still works.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod enforce;
#[cfg(target_arch = "bpf")]
mod enforce_bind;
#[cfg(target_arch = "bpf")]
mod enforce_dma;
#[cfg(target_arch = "bpf")]
mod enforce_drivers;
#[cfg(target_arch = "bpf")]
mod enforce_ids;
#[cfg(target_arch = "bpf")]
mod enforce_sock;
#[cfg(target_arch = "bpf")]
mod enforce_tc;
#[cfg(target_arch = "bpf")]
mod programs;
#[cfg(target_arch = "bpf")]
mod programs_dma;
#[cfg(target_arch = "bpf")]
mod programs_irq;
#[cfg(target_arch = "bpf")]
mod programs_span;
#[cfg(target_arch = "bpf")]
mod programs_vf;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
