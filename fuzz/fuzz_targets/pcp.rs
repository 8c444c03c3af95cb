//! Fuzz target `pcp`: see `sipsd_fuzz::pcp` (fuzz/common/lib.rs) for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sipsd_fuzz::pcp(data);
});
