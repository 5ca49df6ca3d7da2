//! Lab tests that cannot hold on a guest kernel, and why. They are not run
//! there, and the run prints each as `skipped on KERNEL: WHY`; the summary
//! counts them apart from passed and failed.
use crate::kernels::GuestKernel;

/// (kernel, part of the test's name, why it cannot hold there)
const SKIPS: &[(GuestKernel, &str, &str)] = &[];

/// Why `test` is not run on `kernel`, if it is not.
pub fn why_skipped(kernel: GuestKernel, test: &str) -> Option<&'static str> {
    SKIPS
        .iter()
        .find(|(k, part, _)| *k == kernel && test.contains(part))
        .map(|(_, _, why)| *why)
}
