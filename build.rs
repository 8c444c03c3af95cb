//! Writes the C header `include/sipsd.h` from the `extern "C"` items of `src/ffi/`.
//!
//! The header is committed so a reviewer sees every C API change in the diff;
//! `tests/header.rs` fails when the committed copy differs from what this generates.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // Only src/ffi reaches the header: cbindgen reads that module tree, nothing else.
    let bindings = match cbindgen::Builder::new()
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            // A syntax error elsewhere in the crate also lands here: let rustc report it.
            println!("cargo:warning=cbindgen could not generate include/sipsd.h: {e}");
            return;
        }
    };
    bindings.write_to_file(out_dir.join("sipsd.h"));
    // Only touches the committed file when the content changed (keeps mtimes stable).
    bindings.write_to_file(crate_dir.join("include/sipsd.h"));
}
