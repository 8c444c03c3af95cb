//! Recording of dialogs (`record`, `record_recorder`, `record_kek`): mark and stop, list for
//! the RPC. The key messages themselves are sent by `sd_pinhole_open` and
//! `sd_pinhole_close*` (src/engine/pinhole).

use std::ffi::c_char;

use super::boundary::{
    ffi_boundary, free_box, get_view, read_or_default, sd_str, try_out, try_ref, try_res,
};
use super::ctx::{sd_ctx, sd_msg, try_msg};
use super::fields::{self, field_names};
use super::result::{fail, sd_result};
use super::snapshot::{put_snapshot, Rows};
use crate::engine::pinhole::{DialogRecording, Pinholes};
use crate::engine::Error;

fn pinholes(ctx: &sd_ctx) -> Result<&Pinholes, sd_result> {
    ctx.pinholes
        .as_ref()
        .ok_or_else(|| fail(&Error::RecordingOff))
}

/// Marks the dialog of `msg` for recording: call it on the INVITE or on its reply before
/// `sd_pinhole_open` relays the answer; once answered, the recording starts at the next
/// offer/answer. SD_ERR_RECORDING_OFF without a recorder configured.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_record_start(ctx: *const sd_ctx, msg: *const sd_msg) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        let p = try_res!(pinholes(ctx));
        match p.record_start(&msg) {
            Ok(_) => sd_result::SD_OK,
            Err(e) => fail(&e),
        }
    }
}

/// Stops recording the dialog of `msg` (the recorder gets the stop, mirroring ends).
/// SD_OK when a recording was active; SD_NOT_FOR_ME when there was none.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call.
#[no_mangle]
pub unsafe extern "C" fn sd_record_stop(ctx: *const sd_ctx, msg: *const sd_msg) -> sd_result {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        let p = try_res!(pinholes(ctx));
        match p.record_stop(&ctx.proxy, &msg) {
            Ok(true) => sd_result::SD_OK,
            Ok(false) => sd_result::SD_NOT_FOR_ME,
            Err(e) => fail(&e),
        }
    }
}

/// Whether a recorder is configured (1) or not (0; also for NULL).
///
/// # Safety
/// `ctx` NULL or from `sd_ctx_new`.
#[no_mangle]
pub unsafe extern "C" fn sd_record_enabled(ctx: *const sd_ctx) -> u32 {
    ffi_boundary! {
        // SAFETY: NULL or a live context per the contract.
        u32::from(unsafe {
            read_or_default(ctx, |c| c.pinholes.as_ref().is_some_and(|p| p.recording_enabled()))
        })
    }
}

/// What `sd_recordings_get` can read of one recording; the RPC `sipsd.recordings` shows
/// them under the names `sd_recording_field_name` gives. No keys.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_recording_field {
    /// Call-ID.
    SD_RECORDING_FIELD_CALL_ID = 0,
    /// The caller's tag.
    SD_RECORDING_FIELD_TAG = 1,
    /// The dialog id in hex, as the recorder names the recording.
    SD_RECORDING_FIELD_DIALOG = 2,
    /// `marked`, `active`, `stopped` or `finished`.
    SD_RECORDING_FIELD_STATE = 3,
    /// Streams given to the recorder, decimal.
    SD_RECORDING_FIELD_STREAMS = 4,
    /// Unix time of the start, decimal (0: not started).
    SD_RECORDING_FIELD_STARTED = 5,
    /// Unix time of the stop, decimal (0: not stopped).
    SD_RECORDING_FIELD_STOPPED = 6,
    /// The cluster node that acted on the dialog last (empty without a cluster).
    SD_RECORDING_FIELD_OWNER = 7,
    /// `local` (this node acted on the dialog last) or `replica` (replicated from `owner`).
    SD_RECORDING_FIELD_SOURCE = 8,
}

field_names!(sd_recording_field {
    SD_RECORDING_FIELD_CALL_ID => "call_id",
    SD_RECORDING_FIELD_TAG => "tag",
    SD_RECORDING_FIELD_DIALOG => "dialog",
    SD_RECORDING_FIELD_STATE => "state",
    SD_RECORDING_FIELD_STREAMS => "streams",
    SD_RECORDING_FIELD_STARTED => "started",
    SD_RECORDING_FIELD_STOPPED => "stopped",
    SD_RECORDING_FIELD_OWNER => "owner",
    SD_RECORDING_FIELD_SOURCE => "source",
});

/// A copy of the recordings at one moment. Owned by C (a `Box`) from
/// `sd_recordings_snapshot` until `sd_recordings_free`.
pub struct sd_recordings(Rows<sd_recording_field, 9>);

fn row(d: DialogRecording) -> [String; 9] {
    [
        d.call_id,
        d.tag,
        d.dialog,
        d.state.to_string(),
        d.streams.to_string(),
        d.started.to_string(),
        d.stopped.to_string(),
        d.owner,
        if d.replica { "replica" } else { "local" }.to_string(),
    ]
}

/// Copies the recordings (marked, active, stopped, finished) into `*out` (free with
/// `sd_recordings_free`).
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_recordings_snapshot(
    ctx: *const sd_ctx,
    out: *mut *mut sd_recordings,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(out, std::ptr::null_mut());
        let ctx = try_ref!(ctx);
        let p = match pinholes(ctx) {
            Ok(p) if p.recording_enabled() => p,
            Ok(_) => return fail(&Error::RecordingOff),
            Err(r) => return r,
        };
        put_snapshot(out, p.recordings(), row, sd_recordings)
    }
}

/// Number of recordings in a snapshot (0 for NULL).
///
/// # Safety
/// `p` NULL or from `sd_recordings_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn sd_recordings_count(p: *const sd_recordings) -> usize {
    ffi_boundary! {
        // SAFETY: NULL or a live snapshot per the contract.
        unsafe { read_or_default(p, |p| p.0.len()) }
    }
}

/// Field `field` (an `sd_recording_field`) of recording `index`: a view valid until
/// `sd_recordings_free(p)`; SD_ERR_INVALID_ARGUMENT out of range.
///
/// # Safety
/// `p` from `sd_recordings_snapshot`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_recordings_get(
    p: *const sd_recordings,
    index: usize,
    field: u32,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: `p` from sd_recordings_snapshot, `out` writable, per the contract.
        unsafe { get_view(p, out, |p| p.0.get(index, field)) }
    }
}

/// Frees a snapshot; NULL is accepted.
///
/// # Safety
/// `p` NULL or from `sd_recordings_snapshot`, not yet freed, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_recordings_free(p: *mut sd_recordings) {
    ffi_boundary! {
        // SAFETY: NULL or from sd_recordings_snapshot, freed once, per the contract.
        unsafe { free_box(p) }
    }
}

/// Number of `sd_recording_field` values.
#[no_mangle]
pub extern "C" fn sd_recording_field_count() -> u32 {
    fields::count::<sd_recording_field>()
}

/// The static, NUL-terminated name of `sd_recording_field` `field`; NULL past the end.
#[no_mangle]
pub extern "C" fn sd_recording_field_name(field: u32) -> *const c_char {
    fields::name::<sd_recording_field>(field)
}
