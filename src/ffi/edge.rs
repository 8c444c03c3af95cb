//! The edge's calls (`role=edge`): `sd_seal` for a body a local user agent sends, `sd_open`
//! for a body it receives, and `sd_sealed`, the sealed body with the headers that go with it.

use std::ffi::c_char;

use super::boundary::{
    ffi_boundary, free_box, get_view, put_box, read_or_default, sd_str, try_out, try_ref, try_slice,
};
use super::ctx::{plain_out, sd_ctx, sd_msg, try_msg};
use super::fields::{self, field_names};
use super::plain::sd_plain;
use super::result::{fail, sd_result};
use crate::engine::edge::{Parties, SealOutcome, Sealed};
use crate::engine::Error;

/// Who a message is between, as the server read it; every field is borrowed for the call.
#[repr(C)]
pub struct sd_parties {
    /// The local user sending it, `user@domain`: the From URI of a request, the To URI of a
    /// reply. Chooses the signing key (`sign_key`).
    pub local: sd_str,
    /// The other party, `user@domain`: the To URI of a request, the From URI of a reply.
    /// Chooses the certificate in `callee_cert_dir` a new key is wrapped for.
    pub peer: sd_str,
    /// The CSeq number (decimal text).
    pub cseq: sd_str,
}

/// What `sd_sealed_get` can read from a sealed body; the script names (`$sd(NAME)` after
/// `sd_seal`) come from `sd_seal_field_name`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_seal_field {
    /// The new body (binary DER, or base64 lines with `sealed_base64`).
    SD_SEAL_BODY = 0,
    /// Its `Content-Type`, e.g. `application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m`.
    SD_SEAL_CONTENT_TYPE = 1,
    /// Its `Content-Transfer-Encoding` (`base64`); absent for binary.
    SD_SEAL_TRANSFER_ENCODING = 2,
    /// The `Content-Disposition` to send (`session; handling=required` for SDP); absent: none.
    SD_SEAL_DISPOSITION = 3,
    /// The `Disclose-To` header to add; absent when the edge names no proxy.
    SD_SEAL_DISCLOSE_TO = 4,
    /// `authEnveloped-data` or `encrypted-data`.
    SD_SEAL_SMIME_TYPE = 5,
    /// `offer`, `reoffer`, `in-dialog` or `rotation`.
    SD_SEAL_SEALING = 6,
    /// Who signed it (certificate CN); absent when not signed.
    SD_SEAL_SIGNER = 7,
    /// The dialog key's generation, decimal.
    SD_SEAL_GENERATION = 8,
}

field_names!(sd_seal_field {
    SD_SEAL_BODY => "body",
    SD_SEAL_CONTENT_TYPE => "content_type",
    SD_SEAL_TRANSFER_ENCODING => "transfer_encoding",
    SD_SEAL_DISPOSITION => "disposition",
    SD_SEAL_DISCLOSE_TO => "disclose_to",
    SD_SEAL_SMIME_TYPE => "smime_type",
    SD_SEAL_SEALING => "sealing",
    SD_SEAL_SIGNER => "signer",
    SD_SEAL_GENERATION => "generation",
});

/// A sealed body. Owned by C (a `Box`) from `sd_seal` until `sd_sealed_free`.
pub struct sd_sealed {
    sealed: Sealed,
    generation: String,
}

impl sd_sealed {
    fn get(&self, field: sd_seal_field) -> Option<&[u8]> {
        use sd_seal_field::*;
        let s = &self.sealed;
        match field {
            SD_SEAL_BODY => Some(&s.body.body),
            SD_SEAL_CONTENT_TYPE => Some(s.body.content_type.as_bytes()),
            SD_SEAL_TRANSFER_ENCODING => s.body.transfer_encoding.map(str::as_bytes),
            SD_SEAL_DISPOSITION => s.disposition.map(str::as_bytes),
            SD_SEAL_DISCLOSE_TO => s.disclose_to.as_deref().map(str::as_bytes),
            SD_SEAL_SMIME_TYPE => Some(s.kind.smime_type().as_bytes()),
            SD_SEAL_SEALING => Some(s.sealing.name().as_bytes()),
            SD_SEAL_SIGNER => s.signer.as_deref().map(str::as_bytes),
            SD_SEAL_GENERATION => Some(self.generation.as_bytes()),
        }
    }
}

/// Seals the body of `msg`, which a local user agent sends (a request, or a reply to a
/// request it received): an initial request gets a fresh key wrapped for the callee (by
/// `parties->peer`) and the proxies, a later body EncryptedData under the dialog key, a due
/// rotation a new key with the proof. On SD_OK `*out` owns the result (free it with
/// `sd_sealed_free`): replace the body, Content-Type, Content-Transfer-Encoding,
/// Content-Disposition and Disclose-To with it. SD_NOTHING_TO_SEAL (no body, or S/MIME
/// already) and SD_SENT_CLEAR (not sealable, `unsealable=clear`): leave the message as it is.
/// SD_ERR_NO_PEER_CERT, SD_ERR_NO_DIALOG_KEY (not sealable, `unsealable=reject`) and every
/// other error: the body must not be sent. SD_ERR_NOT_EDGE without `role=edge`.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg`, `parties` and their fields valid for the call; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn sd_seal(
    ctx: *const sd_ctx,
    msg: *const sd_msg,
    parties: *const sd_parties,
    out: *mut *mut sd_sealed,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(out, std::ptr::null_mut());
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        let p = try_ref!(parties);
        let (local, peer, cseq) = (try_slice!(p.local), try_slice!(p.peer), try_slice!(p.cseq));
        let Some(edge) = &ctx.edge else {
            return fail(&Error::NotEdge);
        };
        let text = std::str::from_utf8;
        let (Ok(local), Ok(peer), Ok(cseq)) = (text(local), text(peer), text(cseq)) else {
            return fail(&Error::InvalidMessage("From, To or CSeq is not UTF-8"));
        };
        let parties = Parties { local, peer, cseq };
        match edge.seal(&ctx.proxy, &msg, &parties) {
            Ok(SealOutcome::Sealed(sealed)) => {
                let generation = sealed.generation.to_string();
                put_box(out, sd_sealed { sealed, generation });
                sd_result::SD_OK
            }
            Ok(SealOutcome::Nothing) => sd_result::SD_NOTHING_TO_SEAL,
            Ok(SealOutcome::Clear) => sd_result::SD_SENT_CLEAR,
            Err(e) => fail(&e),
        }
    }
}

/// Reads `field` of a sealed body into `*out`: a view valid until `sd_sealed_free(s)`.
/// SD_ERR_INVALID_ARGUMENT for an unknown field or one the body does not have (then `*out`
/// is empty).
///
/// # Safety
/// `s` from `sd_seal`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_sealed_get(
    s: *const sd_sealed,
    field: u32,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: `s` from sd_seal, `out` writable, per the contract.
        unsafe { get_view(s, out, |s| sd_seal_field::from_u32(field).and_then(|f| s.get(f))) }
    }
}

/// The dialog key's generation the body is sealed under; 0 for NULL.
///
/// # Safety
/// `s` NULL or from `sd_seal`.
#[no_mangle]
pub unsafe extern "C" fn sd_sealed_generation(s: *const sd_sealed) -> u32 {
    ffi_boundary! {
        // SAFETY: NULL or a live sd_sealed per the contract.
        unsafe { read_or_default(s, |s| s.sealed.generation) }
    }
}

/// Frees a result of `sd_seal`; NULL is accepted.
///
/// # Safety
/// `s` NULL or from `sd_seal`, not yet freed, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_sealed_free(s: *mut sd_sealed) {
    ffi_boundary! {
        // SAFETY: NULL or from sd_seal, freed once, per the contract.
        unsafe { free_box(s) }
    }
}

/// Opens the body of `msg` for a local user (the edge's keys, whatever `Disclose-To` names):
/// a new dialog's key is cached, EncryptedData opens with it, a rotation needs the proof, a
/// signature is checked (`signature_policy`). On SD_OK `*out` owns the plaintext (free with
/// `sd_plain_free`): replace the body with its first part. SD_NOT_FOR_ME, SD_NOT_ENCRYPTED
/// or an error otherwise; SD_ERR_NOT_EDGE without `role=edge`.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `msg` and its fields valid for the call; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_open(
    ctx: *const sd_ctx,
    msg: *const sd_msg,
    out: *mut *mut sd_plain,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(out, std::ptr::null_mut());
        let ctx = try_ref!(ctx);
        let msg = try_msg!(msg);
        let Some(edge) = &ctx.edge else {
            return fail(&Error::NotEdge);
        };
        plain_out(edge.open(&ctx.proxy, &msg), out)
    }
}

/// Number of `sd_seal_field` values (they are numbered 0 to this - 1).
#[no_mangle]
pub extern "C" fn sd_seal_field_count() -> u32 {
    fields::count::<sd_seal_field>()
}

/// The static, NUL-terminated script name of `sd_seal_field` `field` (`sealing`, ...);
/// NULL past the end.
#[no_mangle]
pub extern "C" fn sd_seal_field_name(field: u32) -> *const c_char {
    fields::name::<sd_seal_field>(field)
}
