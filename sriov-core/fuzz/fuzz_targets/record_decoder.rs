//! Fuzz the ring-buffer record decoder and everything after it: any bytes
//! must give a `Record` or a `DecodeError`, and a decoded record must become
//! an attributed event that serializes (JSON and an NDJSON line), never a
//! panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use sriov_core::{
    events::{Attributor, Clock, NdjsonWriter},
    host::System,
};
use sriov_ebpf::record::Record;

fuzz_target!(|data: &[u8]| {
    let Ok(rec) = Record::decode(data) else {
        return;
    };
    // A sysfs root under which every read fails (`/dev/null` is not a
    // directory): the attributor must cope with an empty, vanished system.
    let host = System::fixture("/dev/null");
    let mut attr = Attributor::default();
    let ev = attr.from_record(&host, &rec);
    let json = serde_json::to_string(&ev).expect("an event always serializes");
    assert!(json.contains("\"kind\""));
    let clock = Clock::from_parts(1_000_000_000, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let mut w = NdjsonWriter::new(std::io::sink(), clock, "fuzz");
    w.write(&ev).expect("writing to a sink succeeds");
});
