//! Phases of VF creation and removal inside a `sriov_numvfs` write: the
//! functions of `sriov_ebpf::programs::SPANS` (`pci_enable_sriov`, the PF
//! driver's own), timed when they run on the writing thread. The PF is the
//! one the write is to; a call outside a write is not recorded.
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use sriov_ebpf::record::{KIND_SPAN, SPAN_ENABLE_SRIOV, SpanRecord};

use crate::programs::{CONFIGURING, EMPTY, HOOK_SPAN, emit, header, now, start, take, tid};

fn span(what: u32, arg: u64) {
    // SAFETY: the value is copied.
    let Some(pf) = (unsafe { CONFIGURING.get(&tid()) }).copied() else {
        return;
    };
    let mut s = EMPTY;
    s.ts = now();
    s.name = pf;
    s.a = arg;
    s.d = u64::from(what);
    start(HOOK_SPAN, &s);
}

/// The return of every span function (one program, attached to each).
#[kretprobe]
pub fn span_exit(ctx: RetProbeContext) -> u32 {
    let Some(s) = take(HOOK_SPAN) else { return 0 };
    let ret: i64 = ctx.ret();
    emit(SpanRecord {
        hdr: header(KIND_SPAN),
        dev: s.name,
        what: s.d as u32,
        ret: ret as i32,
        arg: s.a,
        latency_ns: now().saturating_sub(s.ts),
    });
    0
}

/// `pci_enable_sriov(struct pci_dev *dev, int nr_virtfn)`.
#[kprobe]
pub fn span_enable_sriov(ctx: ProbeContext) -> u32 {
    span(
        SPAN_ENABLE_SRIOV,
        ctx.arg::<u64>(1).unwrap_or(0) & 0xffff_ffff,
    );
    0
}

/// An entry program per function of `SPANS` (`what` as listed there).
macro_rules! spans {
    ($($name:ident = $what:expr),* $(,)?) => {$(
        #[kprobe]
        pub fn $name(_ctx: ProbeContext) -> u32 {
            span($what, 0);
            0
        }
    )*};
}

spans!(
    span_disable_sriov = 2,
    span_igb_configure = 3,
    span_igb_enable = 4,
    span_igb_disable = 5,
    span_igb_reinit = 6,
    span_igb_close = 7,
    span_igb_open = 8,
    span_igb_reset = 9,
);
