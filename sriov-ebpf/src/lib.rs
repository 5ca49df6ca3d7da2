//! Types shared between the eBPF programs (kernel side) and `sriov-core`
//! (user side).
//!
//! Everything here is `#[repr(C)]` plain data with explicit padding so that
//! the byte layout is identical on `bpfel` and on the host. User space never
//! transmutes these: `sriov-core` decodes raw map values and ring-buffer
//! records with `TryFrom<&[u8]>`, using the offsets and sizes declared here.
#![no_std]

/// Names of the maps in the eBPF object, used by the loader.
pub mod maps {
    /// `HashMap<u32, u8>`: IRQ numbers (from a VF's `msi_irqs`) to count.
    pub const WATCH_IRQS: &str = "WATCH_IRQS";
    /// `PerCpuHashMap<u32, u64>`: interrupts seen per watched IRQ.
    pub const IRQ_COUNTS: &str = "IRQ_COUNTS";
}

/// Names of the programs in the eBPF object.
pub mod programs {
    /// Tracepoint `irq:irq_handler_entry`.
    pub const IRQ_HANDLER_ENTRY: &str = "irq_handler_entry";
}

/// Most IRQs that can be watched at once (7 VFs x 3 vectors leaves headroom
/// for the largest NICs: 256 VFs x 4 vectors).
pub const MAX_WATCHED_IRQS: u32 = 4096;

/// Byte offset of `int irq` in the `irq:irq_handler_entry` tracepoint record
/// (after the 8 bytes of common fields; see the event's `format` file).
pub const IRQ_HANDLER_ENTRY_IRQ_OFFSET: usize = 8;

/// Value stored in [`maps::WATCH_IRQS`] for an IRQ that is watched.
pub const WATCHED: u8 = 1;
