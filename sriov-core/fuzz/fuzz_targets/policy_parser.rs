//! Fuzz the policy file parser: any UTF-8 text must give a `PolicyFile` or
//! a `PolicyError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sriov_core::policy::file::PolicyFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match PolicyFile::parse(text) {
            // Rendering the error and its accessors must not panic either.
            Err(err) => {
                let _ = (err.to_string(), err.line(), err.column(), err.field());
            }
            Ok(f) => {
                let _ = (f.mode(), f.vf_sections(), f.pf_sections());
            }
        }
    }
});
