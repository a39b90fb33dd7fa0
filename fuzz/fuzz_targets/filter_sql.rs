#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scimlite_fuzz::filter_sql(data));
