//! `sd_ctx`: a proxy (keys, policy, shared dialog key cache) and the per-message calls.

use super::boundary::{ffi_boundary, sd_str, try_mut, try_ref, try_slice};
use super::config::sd_config;
use super::plain::sd_plain;
use super::result::{fail, sd_result};
use crate::proxy::{Decision, Proxy, SipMessage, Unwrapped};

/// A proxy context. Owned by C (a `Box`) from `sd_ctx_new` until `sd_ctx_free`. Made once in
/// the process that forks the workers, before the fork: every fork shares its dialog key
/// cache and counters. Calls from one process must not overlap (Kamailio workers are
/// single-threaded); different processes may call at the same time.
pub struct sd_ctx {
    proxy: Proxy,
    /// Warnings of the last key load, NUL-free, for `sd_ctx_warning`.
    warnings: Vec<String>,
}

/// A SIP message as the caller parsed it; every field is borrowed for the call and may be
/// empty (`ptr` NULL, `len` 0) when absent.
#[repr(C)]
pub struct sd_msg {
    /// Call-ID header value.
    pub call_id: sd_str,
    /// `tag` parameter of From.
    pub from_tag: sd_str,
    /// `tag` parameter of To; empty on an initial request.
    pub to_tag: sd_str,
    /// Request method, or the CSeq method of a reply.
    pub method: sd_str,
    /// 0 for a request, else the status code of the reply.
    pub status: u32,
    /// Content-Type header value.
    pub content_type: sd_str,
    /// Content-Transfer-Encoding header value.
    pub transfer_encoding: sd_str,
    /// All Disclose-To header values, joined with ", ".
    pub disclose_to: sd_str,
    /// The message body (binary).
    pub body: sd_str,
}

/// Counters summed over every process sharing the context.
#[repr(C)]
#[derive(Default)]
pub struct sd_stats {
    /// Messages decrypted.
    pub decrypted: u64,
    /// Encrypted messages not for this proxy.
    pub not_for_me: u64,
    /// Messages without an encrypted body.
    pub not_encrypted: u64,
    /// Messages that failed.
    pub errors: u64,
    /// Dialog key found in the cache.
    pub cache_hits: u64,
    /// Dialog key not found.
    pub cache_misses: u64,
    /// Dialog keys cached now.
    pub cache_entries: u64,
    /// Most dialog keys the cache holds.
    pub cache_capacity: u64,
    /// Dialog keys replaced by a rotation.
    pub rotations: u64,
    /// Dialog keys evicted because the cache was full.
    pub evictions: u64,
    /// Dialog keys expired (TTL).
    pub expirations: u64,
    /// Dialog keys removed at dialog end.
    pub dialogs_ended: u64,
    /// Dialog keys in the protected segment (used in their dialog or rotated).
    pub cache_protected: u64,
    /// Dialog keys promoted from probationary to protected.
    pub cache_promotions: u64,
    /// Protected dialog keys moved back to probationary (protected share full).
    pub cache_demotions: u64,
    /// Times a process died holding the cache lock and the cache was repaired.
    pub lock_recoveries: u64,
    /// Key reloads.
    pub reloads: u64,
}

/// Loads the keys and creates the shared cache from `cfg` (borrowed: free it yourself).
/// On SD_OK `*out` owns a new context; otherwise `*out` is NULL and `sd_last_error()` says
/// which option or file failed.
///
/// # Safety
/// `cfg` from `sd_config_new`; `out` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn sd_ctx_new(cfg: *const sd_config, out: *mut *mut sd_ctx) -> sd_result {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let cfg = try_ref!(cfg);
        match Proxy::new(cfg.inner.clone()) {
            Ok(proxy) => {
                let warnings = proxy.key_warnings();
                *out = Box::into_raw(Box::new(sd_ctx { proxy, warnings }));
                sd_result::SD_OK
            }
            Err(e) => fail(&e),
        }
    }
}

/// Frees a context; NULL is accepted. Called in the process that made it (at shutdown), it
/// also zeroizes every cached key; in another process it only releases that process's view.
///
/// # Safety
/// `ctx` is NULL or from `sd_ctx_new`, not yet freed, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_ctx_free(ctx: *mut sd_ctx) {
    ffi_boundary! {
        if !ctx.is_null() {
            // SAFETY: per the contract, `ctx` came from Box::into_raw in sd_ctx_new.
            drop(unsafe { Box::from_raw(ctx) });
        }
    }
}

/// Re-reads the key files now; other processes pick the new keys up at their next message.
/// On failure the old keys stay in use.
///
/// # Safety
/// `ctx` from `sd_ctx_new`.
#[no_mangle]
pub unsafe extern "C" fn sd_reload(ctx: *const sd_ctx) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        match ctx.proxy.reload() {
            Ok(()) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}

/// Fills `*out` with the counters of every process.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_stats_get(ctx: *const sd_ctx, out: *mut sd_stats) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let out = try_mut!(out);
        match ctx.proxy.stats() {
            Ok(s) => {
                *out = sd_stats {
                    decrypted: s.decrypted,
                    not_for_me: s.not_for_me,
                    not_encrypted: s.not_encrypted,
                    errors: s.errors,
                    cache_hits: s.cache.hits,
                    cache_misses: s.cache.misses,
                    cache_entries: s.cache.entries,
                    cache_capacity: s.cache.capacity,
                    rotations: s.cache.rotations,
                    evictions: s.cache.evictions,
                    expirations: s.cache.expirations,
                    dialogs_ended: s.dialogs_ended,
                    cache_protected: s.cache.protected,
                    cache_promotions: s.cache.promotions,
                    cache_demotions: s.cache.demotions,
                    lock_recoveries: s.cache.lock_recoveries,
                    reloads: s.reloads,
                };
                sd_result::SD_OK
            }
            Err(e) => fail(&e),
        }
    }
}

/// Borrows the fields of `m` as a [`SipMessage`]; `None` if a pointer is NULL with a length.
///
/// # Safety
/// Every `sd_str` of `m` points at its `len` bytes for the lifetime `'a`.
unsafe fn view<'a>(m: &sd_msg) -> Option<SipMessage<'a>> {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        Some(SipMessage {
            call_id: m.call_id.as_slice()?,
            from_tag: m.from_tag.as_slice()?,
            to_tag: m.to_tag.as_slice()?,
            method: m.method.as_slice()?,
            status: m.status,
            content_type: m.content_type.as_slice()?,
            transfer_encoding: m.transfer_encoding.as_slice()?,
            disclose_to: m.disclose_to.as_slice()?,
            body: m.body.as_slice()?,
        })
    }
}

macro_rules! try_msg {
    ($m:expr) => {{
        let m = try_ref!($m);
        // SAFETY: the header requires every field of sd_msg to be valid for the call.
        match unsafe { view(m) } {
            Some(v) => v,
            None => return sd_result::SD_ERR_NULL_PARAMETER,
        }
    }};
}

/// Should this proxy decrypt `msg`? SD_OK (yes), SD_NOT_FOR_ME, SD_NOT_ENCRYPTED, or an
/// error (malformed body, Disclose-To naming this proxy for a part it cannot open...).
/// Changes nothing.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_should_decrypt(ctx: *const sd_ctx, msg: *const sd_msg) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        match ctx.proxy.should_decrypt(&msg) {
            Ok(Decision::Decrypt(_)) => sd_result::SD_OK,
            Ok(Decision::NotForMe) => sd_result::SD_NOT_FOR_ME,
            Ok(Decision::NotEncrypted) => sd_result::SD_NOT_ENCRYPTED,
            Err(e) => fail(&e),
        }
    }
}

/// Decrypts the parts of `msg` meant for this proxy. A wrapped key is stored as the dialog's
/// key (or rotates it, from inside the dialog); EncryptedData uses the cached key. On SD_OK
/// `*out` owns the plaintext (free with `sd_plain_free`); otherwise `*out` is NULL.
/// The message itself is never changed.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_unwrap_body(
    ctx: *const sd_ctx,
    msg: *const sd_msg,
    out: *mut *mut sd_plain,
) -> sd_result {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        match ctx.proxy.unwrap(&msg) {
            Ok(Unwrapped::Disclosed(parts)) => {
                *out = Box::into_raw(Box::new(sd_plain::new(parts)));
                sd_result::SD_OK
            }
            Ok(Unwrapped::NotForMe) => sd_result::SD_NOT_FOR_ME,
            Ok(Unwrapped::NotEncrypted) => sd_result::SD_NOT_ENCRYPTED,
            Err(e) => fail(&e),
        }
    }
}

/// `msg`, inside a dialog whose key is cached, wraps a new key for this proxy: unwrap it and
/// replace the dialog's key. `*generation_out` (may be NULL) gets the new generation.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` valid for the call; `generation_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sd_rotate(
    ctx: *const sd_ctx,
    msg: *const sd_msg,
    generation_out: *mut u32,
) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        match ctx.proxy.rotate(&msg) {
            Ok(generation) => {
                // SAFETY: NULL or writable per the contract.
                if let Some(g) = unsafe { generation_out.as_mut() } {
                    *g = generation;
                }
                sd_result::SD_OK
            }
            Err(e) => fail(&e),
        }
    }
}

/// The dialog ended (BYE, CANCEL, failed INVITE): forget and zeroize its key. SD_OK whether or
/// not a key was cached.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; both strings valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_dialog_end(
    ctx: *const sd_ctx,
    call_id: sd_str,
    from_tag: sd_str,
) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let call_id = try_slice!(call_id);
        let from_tag = try_slice!(from_tag);
        if call_id.is_empty() || from_tag.is_empty() {
            return sd_result::SD_ERR_INVALID_MESSAGE;
        }
        match ctx.proxy.dialog_end(call_id, from_tag) {
            Ok(_) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}

/// The dialog of `msg` ended (a BYE or CANCEL from either side, a failed INVITE's final
/// reply): forget and zeroize its key. The caller's tag is found in From or To as the
/// direction requires. SD_OK whether or not a key was cached.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_dialog_end_msg(ctx: *const sd_ctx, msg: *const sd_msg) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        match ctx.proxy.dialog_end_of(&msg) {
            Ok(_) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}

/// Number of warnings from loading the keys in `sd_ctx_new` (e.g. a private key file that
/// group or others may read while `strict_key_permissions` is off); 0 for NULL.
///
/// # Safety
/// `ctx` NULL or from `sd_ctx_new`.
#[no_mangle]
pub unsafe extern "C" fn sd_ctx_warning_count(ctx: *const sd_ctx) -> usize {
    ffi_boundary! {
        // SAFETY: NULL or a live context per the contract.
        unsafe { ctx.as_ref() }.map_or(0, |c| c.warnings.len())
    }
}

/// Warning `index` (see `sd_ctx_warning_count`) as a view valid until `sd_ctx_free`.
/// SD_ERR_INVALID_ARGUMENT if `index` is out of range.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_ctx_warning(
    ctx: *const sd_ctx,
    index: usize,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = sd_str::EMPTY;
        let ctx = try_ref!(ctx);
        match ctx.warnings.get(index) {
            Some(w) => {
                *out = sd_str::of(w.as_bytes());
                sd_result::SD_OK
            }
            None => sd_result::SD_ERR_INVALID_ARGUMENT,
        }
    }
}
