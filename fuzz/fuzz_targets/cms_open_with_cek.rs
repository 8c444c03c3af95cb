//! Fuzz target `cms_open_with_cek`: see `sipsd_fuzz::cms_open_with_cek` (fuzz/common/lib.rs) for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sipsd_fuzz::cms_open_with_cek(data);
});
