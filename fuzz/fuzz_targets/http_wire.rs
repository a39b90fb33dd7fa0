#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scimlite_fuzz::http_wire(data));
