//! `sd_ctx`: a proxy (keys, policy, shared dialog key cache) and the per-message calls.

use super::boundary::{
    ffi_boundary, free_box, get_view, put_box, read_or_default, sd_str, try_out, try_ref, try_slice,
};
use super::config::sd_config;
use super::plain::sd_plain;
use super::result::{fail, sd_result};
use std::ffi::c_char;

use crate::engine::edge::Edge;
use crate::engine::pinhole::Pinholes;
use crate::engine::proxy::{self as stats, Decision, Proxy, SipMessage, Unwrapped};
use crate::sip::name_addr::NameAddr;

/// A proxy context. Owned by C (a `Box`) from `sd_ctx_new` until `sd_ctx_free`. Made once in
/// the process that forks the workers, before the fork: every fork shares its dialog key
/// cache and counters. Calls from one process must not overlap (SIP server workers are
/// single-threaded); different processes may call at the same time.
pub struct sd_ctx {
    pub(super) proxy: Proxy,
    /// With `role=edge`: the edge over the same keys and dialog key cache.
    pub(super) edge: Option<Edge>,
    /// With `pinhole_agent`: the firewall pinholes of the dialogs (shared table).
    pub(super) pinholes: Option<Pinholes>,
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
    /// The From URI (`sip:alice@example.org`: no display name, brackets or parameters);
    /// the caller of a recorded dialog (docs/RECORDING.md). Empty is allowed.
    pub from_uri: sd_str,
    /// The To URI, as `from_uri`; the callee of a recorded dialog.
    pub to_uri: sd_str,
    /// The From header value as received (display name, URI, parameters), for a caller that
    /// has not parsed it: when set, the library reads the tag and the URI from it (RFC 3261
    /// §25.1) and ignores `from_tag` and `from_uri`. A value it cannot parse gives no tag
    /// (SD_ERR_INVALID_MESSAGE where the dialog id needs one).
    pub from: sd_str,
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
        let out = try_out!(out, std::ptr::null_mut());
        let cfg = try_ref!(cfg);
        let made = cfg.inner.edge_config().and_then(|edge| {
            let proxy = Proxy::new(cfg.inner.proxy_config())?;
            let edge = edge.map(Edge::new).transpose()?;
            let pinholes = Pinholes::new(&cfg.inner.pinhole)?;
            Ok((proxy, edge, pinholes))
        });
        match made {
            Ok((proxy, edge, pinholes)) => {
                let warnings = proxy.key_warnings();
                put_box(out, sd_ctx { proxy, edge, pinholes, warnings });
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
        // SAFETY: NULL or from sd_ctx_new, freed once, per the contract.
        unsafe { free_box(ctx) }
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

/// Number of statistics (counters of every process sharing the context, and the dialog key
/// cache's figures); statistic `i` is 0 .. count-1. The list is fixed for a library build.
#[no_mangle]
pub extern "C" fn sd_stat_count() -> usize {
    ffi_boundary! { stats::stat_count() }
}

/// The name of statistic `index` (an RPC field and the server statistic `sipsd:NAME`):
/// static, NUL-terminated; NULL if `index` is out of range.
#[no_mangle]
pub extern "C" fn sd_stat_name(index: usize) -> *const c_char {
    ffi_boundary! {
        stats::stat(index).map_or(std::ptr::null(), |s| s.name_cstr().as_ptr())
    }
}

/// One line saying what statistic `index` counts: static, NUL-terminated; NULL if out of
/// range.
#[no_mangle]
pub extern "C" fn sd_stat_doc(index: usize) -> *const c_char {
    ffi_boundary! {
        stats::stat(index).map_or(std::ptr::null(), |s| s.doc_cstr().as_ptr())
    }
}

/// The value of statistic `index`, summed over every process, into `*out`.
/// SD_ERR_INVALID_ARGUMENT if `index` is out of range.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_stat_value(
    ctx: *const sd_ctx,
    index: usize,
    out: *mut u64,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(out, 0);
        let ctx = try_ref!(ctx);
        let Some(stat) = stats::stat(index) else {
            return sd_result::SD_ERR_INVALID_ARGUMENT;
        };
        match ctx.proxy.stats() {
            Ok(s) => {
                *out = stat.value(&s);
                sd_result::SD_OK
            }
            Err(e) => fail(&e),
        }
    }
}

/// Whether a body decrypted here may be forwarded in clear to `next_hop` (the SIP URI the
/// request is sent to: the destination URI, else the Request-URI): SD_OK only for a
/// configured `plaintext_next_hop`, else SD_ERR_NEXT_HOP (counted as `plaintext_refused`).
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `next_hop` valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_plaintext_next_hop_allowed(
    ctx: *const sd_ctx,
    next_hop: sd_str,
) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let uri = try_slice!(next_hop);
        let allowed = std::str::from_utf8(uri).is_ok_and(|u| ctx.proxy.plaintext_allowed(u));
        if allowed {
            sd_result::SD_OK
        } else {
            sd_result::SD_ERR_NEXT_HOP
        }
    }
}

/// Borrows the fields of `m` as a `SipMessage`; `None` if a pointer is NULL with a length.
///
/// # Safety
/// Every `sd_str` of `m` points at its `len` bytes for the lifetime `'a`.
pub(super) unsafe fn view<'a>(m: &sd_msg) -> Option<SipMessage<'a>> {
    // SAFETY: forwarded from the caller's contract.
    let (from_tag, from_uri) = unsafe {
        match m.from.as_slice()? {
            [] => (m.from_tag.as_slice()?, m.from_uri.as_slice()?),
            raw => NameAddr::parse(raw).map_or((&[][..], &[][..]), |n| (n.tag, n.uri)),
        }
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        Some(SipMessage {
            call_id: m.call_id.as_slice()?,
            from_tag,
            to_tag: m.to_tag.as_slice()?,
            method: m.method.as_slice()?,
            status: m.status,
            content_type: m.content_type.as_slice()?,
            transfer_encoding: m.transfer_encoding.as_slice()?,
            disclose_to: m.disclose_to.as_slice()?,
            body: m.body.as_slice()?,
            from_uri,
            to_uri: m.to_uri.as_slice()?,
        })
    }
}

macro_rules! try_msg {
    ($m:expr) => {{
        let m = try_ref!($m);
        // SAFETY: the header requires every field of sd_msg to be valid for the call.
        match unsafe { $crate::ffi::ctx::view(m) } {
            Some(v) => v,
            None => return sd_result::SD_ERR_NULL_PARAMETER,
        }
    }};
}
pub(super) use try_msg;

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
        let out = try_out!(out, std::ptr::null_mut());
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        plain_out(ctx.proxy.unwrap(&msg), out)
    }
}

/// The result of an unwrap for C: SD_OK with `*out` owning the parts, or the outcome code.
pub(super) fn plain_out(r: crate::engine::Result<Unwrapped>, out: &mut *mut sd_plain) -> sd_result {
    match r {
        Ok(Unwrapped::Disclosed(parts)) => {
            put_box(out, sd_plain::new(parts));
            sd_result::SD_OK
        }
        Ok(Unwrapped::NotForMe) => sd_result::SD_NOT_FOR_ME,
        Ok(Unwrapped::NotEncrypted) => sd_result::SD_NOT_ENCRYPTED,
        Err(e) => fail(&e),
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
        unsafe { read_or_default(ctx, |c| c.warnings.len()) }
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
        // SAFETY: `ctx` from sd_ctx_new, `out` writable, per the contract.
        unsafe { get_view(ctx, out, |c| c.warnings.get(index).map(String::as_bytes)) }
    }
}
