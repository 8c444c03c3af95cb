//! `sd_config`: options collected one by one (a SIP server's module parameters) before the context is made.

use std::ffi::c_char;

use super::boundary::{ffi_boundary, free_box, try_cstr, try_mut};
use super::result::{fail, sd_result};
use crate::engine::config::Config;

/// Options for `sd_ctx_new`. Owned by C (a `Box`) from `sd_config_new` until
/// `sd_config_free`.
pub struct sd_config {
    pub(super) inner: Config,
}

/// A new configuration with the defaults (README, "Configuration reference").
/// Free it with `sd_config_free`. NULL only if sipsd panicked.
#[no_mangle]
pub extern "C" fn sd_config_new() -> *mut sd_config {
    ffi_boundary! {
        Box::into_raw(Box::new(sd_config { inner: Config::default() }))
    }
}

/// Frees a configuration from `sd_config_new`; NULL is accepted.
///
/// # Safety
/// `cfg` is NULL or a pointer from `sd_config_new` not yet freed; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_config_free(cfg: *mut sd_config) {
    ffi_boundary! {
        // SAFETY: NULL or from sd_config_new, freed once, per the contract.
        unsafe { free_box(cfg) }
    }
}

/// Sets one option; `name` and `value` are NUL-terminated UTF-8, borrowed for the call.
/// Options: `rsa_key` ("key=PATH;cert=PATH[;label=NAME]", repeatable), `psk`
/// ("id=HEX|text:ID;key=PATH[;label=NAME]", repeatable), `identity` (repeatable), `mode`
/// (explicit|implicit|both), `cache_capacity`, `cache_ttl`, `rotate_max_age`,
/// `rotate_max_uses`, `max_body_size`, `max_parts`, `max_depth`, `max_recipients`,
/// `max_rsa_ops`, `allow_cbc_in_dialog`, `plaintext_next_hop` (repeatable),
/// `strict_key_permissions`, `trusted_signer` (repeatable), `signature_policy`
/// (optional|required|report), `role` (proxy|edge); for an edge: `local_key`, `sign_key`,
/// `proxy_cert`, `proxy_psk` (repeatable), `callee_cert_dir`, `disclose_to`, `rotate_after`,
/// `unsealable` (reject|clear), `sealed_base64` (README, "Configuration reference").
/// Returns SD_OK or SD_ERR_CONFIG (unknown name, bad value).
///
/// # Safety
/// `cfg` from `sd_config_new`; `name`, `value` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn sd_config_set(
    cfg: *mut sd_config,
    name: *const c_char,
    value: *const c_char,
) -> sd_result {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        let name = try_cstr!(name);
        let value = try_cstr!(value);
        match cfg.inner.set(name, value) {
            Ok(()) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}
