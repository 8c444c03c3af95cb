//! Fuzz target `request`: see `sipsd_fuzz::request` (fuzz/common/lib.rs) for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sipsd_fuzz::request(data);
});
