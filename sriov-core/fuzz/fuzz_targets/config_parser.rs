//! Fuzz the config file parser: any UTF-8 text must give a `DesiredState` or
//! a `ConfigError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sriov_core::config::DesiredState;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(err) = DesiredState::parse(text) {
            // Rendering the error and its accessors must not panic either.
            let _ = (err.to_string(), err.line(), err.column(), err.field());
        }
    }
});
