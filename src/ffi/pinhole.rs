//! Firewall pinholes from the disclosed SDP (`pinhole_*` options): open at offer/answer,
//! close at dialog end, refresh from a timer, list for the RPC.

use std::ffi::c_char;

use super::boundary::{
    ffi_boundary, free_box, get_view, read_or_default, sd_str, try_out, try_ref, try_res, try_slice,
};
use super::ctx::{sd_ctx, sd_msg, try_msg};
use super::fields::{self, field_names};
use super::plain::sd_plain;
use super::result::{fail, sd_result};
use super::snapshot::{put_snapshot, Rows};
use crate::engine::pinhole::{DialogPinholes, Pinholes};
use crate::engine::Error;
use crate::record::StopReason;

fn pinholes(ctx: &sd_ctx) -> Result<&Pinholes, sd_result> {
    ctx.pinholes
        .as_ref()
        .ok_or_else(|| fail(&Error::PinholesOff))
}

/// Whether `pinhole_agent` is configured (1) or not (0; also for NULL).
///
/// # Safety
/// `ctx` NULL or from `sd_ctx_new`.
#[no_mangle]
pub unsafe extern "C" fn sd_pinhole_enabled(ctx: *const sd_ctx) -> u32 {
    ffi_boundary! {
        // SAFETY: NULL or a live context per the contract.
        u32::from(unsafe { read_or_default(ctx, |c| c.pinholes.is_some()) })
    }
}

/// Acts on the SDP that `plain` (the result of `sd_unwrap_body` for `msg`) disclosed: a
/// request's offer is kept (and with `pinhole_on_offer=1` opens any-source pinholes to the
/// offerer), a 1xx/2xx reply's answer opens the exact flows both ways. `plain` NULL (nothing
/// was disclosed, e.g. a refused key): SD_NOT_FOR_ME, nothing opens. On SD_OK `*flows` is the
/// number of pinholes the agent confirmed now (0 for an offer kept for its answer).
/// SD_ERR_PINHOLE_AGENT when the agent did not confirm them all within `pinhole_timeout`.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call; `plain` NULL or from
/// `sd_unwrap_body`; `flows` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_pinhole_open(
    ctx: *const sd_ctx,
    msg: *const sd_msg,
    plain: *const sd_plain,
    flows: *mut u32,
) -> sd_result {
    ffi_boundary! {
        let flows = try_out!(flows, 0);
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        let p = try_res!(pinholes(ctx));
        // SAFETY: NULL or a live sd_plain per the contract.
        let Some(plain) = (unsafe { plain.as_ref() }) else {
            return sd_result::SD_NOT_FOR_ME;
        };
        match p.on_message(&ctx.proxy, &msg, &plain.disclosed()) {
            Ok(o) => {
                *flows = u32::try_from(o.flows).unwrap_or(u32::MAX);
                if o.stage.is_some() {
                    sd_result::SD_OK
                } else {
                    sd_result::SD_NOT_FOR_ME
                }
            }
            Err(e) => fail(&e),
        }
    }
}

/// Deletes the pinholes of the dialog of `msg` (BYE or CANCEL from either side, a failed
/// INVITE's final reply, or the failed INVITE itself with `status` set to its final status,
/// as a failure route has it); `*flows` is how many the agent confirmed deleted. A
/// recording's stop names the cause from `method` and `status`: `BYE`, `CANCEL` (also a
/// 487), `failure CODE` (docs/RECORDING.md §3.1). SD_OK also when the dialog had none. The dialog is forgotten even when the agent does not answer
/// (SD_ERR_PINHOLE_AGENT): its pinholes then end by their lifetime.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call; `flows` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_pinhole_close(
    ctx: *const sd_ctx,
    msg: *const sd_msg,
    flows: *mut u32,
) -> sd_result {
    ffi_boundary! {
        let flows = try_out!(flows, 0);
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        let p = try_res!(pinholes(ctx));
        match p.close_of(&ctx.proxy, &msg) {
            Ok(n) => {
                *flows = u32::try_from(n).unwrap_or(u32::MAX);
                sd_result::SD_OK
            }
            Err(e) => fail(&e),
        }
    }
}

/// `sd_pinhole_close` by dialog id (Call-ID and the caller's tag), for the SIP server's own
/// dialog-end events. `method` and `status` name what ended it, as in `sd_msg` (the BYE and
/// the status of its reply, the failed INVITE and its final status, 0 when not known); an
/// empty `method` is the server's own dialog timeout. A recording's stop carries the reason
/// they name (`BYE`, `CANCEL`, `failure 486`, `dialog timeout`: docs/RECORDING.md §3.1).
///
/// # Safety
/// `ctx` from `sd_ctx_new`; the strings valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_pinhole_close_dialog(
    ctx: *const sd_ctx,
    call_id: sd_str,
    from_tag: sd_str,
    method: sd_str,
    status: u32,
) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let call_id = try_slice!(call_id);
        let tag = try_slice!(from_tag);
        let method = try_slice!(method);
        let p = try_res!(pinholes(ctx));
        let reason = StopReason::of(method, status);
        match p.close(&ctx.proxy, call_id, &[tag], reason) {
            Ok(_) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}

/// Renews the lifetimes that are due and forgets dialogs past `pinhole_max_duration` whose
/// pinholes expired; call it about once a second from one process (a timer). Each exchange
/// is bounded by `pinhole_timeout`.
///
/// # Safety
/// `ctx` from `sd_ctx_new`.
#[no_mangle]
pub unsafe extern "C" fn sd_pinhole_refresh(ctx: *const sd_ctx) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let p = try_res!(pinholes(ctx));
        match p.refresh(&ctx.proxy) {
            Ok(_) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}

/// What `sd_pinholes_get` can read of one dialog of a snapshot. The module's RPC
/// `sipsd.pinholes` shows them under the names `sd_pinhole_field_name` gives.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_pinhole_field {
    /// Call-ID.
    SD_PINHOLE_FIELD_CALL_ID = 0,
    /// The caller's tag.
    SD_PINHOLE_FIELD_TAG = 1,
    /// `offered` or `answered`.
    SD_PINHOLE_FIELD_STAGE = 2,
    /// The pinholes, `ADDR:PORT <- REMOTE[:PORT]` (`*`: any source), separated by `, `.
    SD_PINHOLE_FIELD_FLOWS = 3,
    /// Seconds until the agent drops them unless refreshed, decimal.
    SD_PINHOLE_FIELD_EXPIRES = 4,
    /// Seconds since the dialog's first pinhole, decimal.
    SD_PINHOLE_FIELD_AGE = 5,
    /// The cluster node that refreshes them (empty without a cluster).
    SD_PINHOLE_FIELD_OWNER = 6,
    /// `local` (this node refreshes them) or `replica` (replicated from `owner`, which does).
    SD_PINHOLE_FIELD_SOURCE = 7,
}

field_names!(sd_pinhole_field {
    SD_PINHOLE_FIELD_CALL_ID => "call_id",
    SD_PINHOLE_FIELD_TAG => "tag",
    SD_PINHOLE_FIELD_STAGE => "stage",
    SD_PINHOLE_FIELD_FLOWS => "flows",
    SD_PINHOLE_FIELD_EXPIRES => "expires",
    SD_PINHOLE_FIELD_AGE => "age",
    SD_PINHOLE_FIELD_OWNER => "owner",
    SD_PINHOLE_FIELD_SOURCE => "source",
});

/// A copy of the pinhole table at one moment. Owned by C (a `Box`) from
/// `sd_pinholes_snapshot` until `sd_pinholes_free`.
pub struct sd_pinholes(Rows<sd_pinhole_field, 8>);

fn row(d: DialogPinholes) -> [String; 8] {
    [
        d.call_id,
        d.tag,
        d.stage.name().to_string(),
        d.flows.join(", "),
        d.expires_in.to_string(),
        d.age.to_string(),
        d.owner,
        if d.replica { "replica" } else { "local" }.to_string(),
    ]
}

/// Copies the pinhole table into `*out` (free with `sd_pinholes_free`).
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_pinholes_snapshot(
    ctx: *const sd_ctx,
    out: *mut *mut sd_pinholes,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(out, std::ptr::null_mut());
        let ctx = try_ref!(ctx);
        let p = try_res!(pinholes(ctx));
        put_snapshot(out, p.list(), row, sd_pinholes)
    }
}

/// Number of dialogs in a snapshot (0 for NULL).
///
/// # Safety
/// `p` NULL or from `sd_pinholes_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn sd_pinholes_count(p: *const sd_pinholes) -> usize {
    ffi_boundary! {
        // SAFETY: NULL or a live snapshot per the contract.
        unsafe { read_or_default(p, |p| p.0.len()) }
    }
}

/// Field `field` (an `sd_pinhole_field`) of dialog `index`: a view valid until
/// `sd_pinholes_free(p)`; SD_ERR_INVALID_ARGUMENT out of range.
///
/// # Safety
/// `p` from `sd_pinholes_snapshot`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_pinholes_get(
    p: *const sd_pinholes,
    index: usize,
    field: u32,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: `p` from sd_pinholes_snapshot, `out` writable, per the contract.
        unsafe { get_view(p, out, |p| p.0.get(index, field)) }
    }
}

/// Frees a snapshot; NULL is accepted.
///
/// # Safety
/// `p` NULL or from `sd_pinholes_snapshot`, not yet freed, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_pinholes_free(p: *mut sd_pinholes) {
    ffi_boundary! {
        // SAFETY: NULL or from sd_pinholes_snapshot, freed once, per the contract.
        unsafe { free_box(p) }
    }
}

/// Number of `sd_pinhole_field` values.
#[no_mangle]
pub extern "C" fn sd_pinhole_field_count() -> u32 {
    fields::count::<sd_pinhole_field>()
}

/// The static, NUL-terminated name of `sd_pinhole_field` `field`; NULL past the end.
#[no_mangle]
pub extern "C" fn sd_pinhole_field_name(field: u32) -> *const c_char {
    fields::name::<sd_pinhole_field>(field)
}
