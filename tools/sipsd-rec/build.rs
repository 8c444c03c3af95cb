//! Generates Rust declarations for libsrtp2 (`<srtp2/srtp.h>`, Debian `libsrtp2-dev`) with
//! bindgen, limited to the `srtp_*` API, and links `libsrtp2`. Only this crate links it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=/usr/include/srtp2/srtp.h");
    println!("cargo:rustc-link-lib=srtp2");
    let bindings = bindgen::Builder::default()
        .header_contents("srtp_wrapper.h", "#include <srtp2/srtp.h>\n")
        .allowlist_function("srtp_(init|shutdown|create|dealloc|protect|protect_mki|protect_rtcp|protect_rtcp_mki|unprotect|unprotect_mki|unprotect_rtcp|unprotect_rtcp_mki|set_stream_roc|get_stream_roc|get_version_string|crypto_policy_set_.*)")
        .allowlist_type("srtp_(policy_t|err_status_t|ssrc_type_t|master_key_t|t)")
        .allowlist_var("SRTP_MAX_(TAG|MKI|TRAILER)_LEN")
        .prepend_enum_name(false)
        .layout_tests(true)
        .generate()
        .expect("bindgen could not read <srtp2/srtp.h>: install libsrtp2-dev (scripts/setup-deps)");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("srtp_bindings.rs"))
        .expect("write srtp_bindings.rs");
}
