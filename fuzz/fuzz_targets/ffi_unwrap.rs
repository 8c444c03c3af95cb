//! Fuzz target `ffi_unwrap`: see `sipsd_fuzz::ffi_unwrap` (fuzz/common/lib.rs) for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sipsd_fuzz::ffi_unwrap(data);
});
