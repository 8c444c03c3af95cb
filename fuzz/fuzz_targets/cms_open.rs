//! Fuzz target `cms_open`: see `sipsd_fuzz::cms_open` (fuzz/common/lib.rs) for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sipsd_fuzz::cms_open(data);
});
