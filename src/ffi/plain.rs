//! `sd_plain`: the decrypted parts of one message, and read-only views into them.

use zeroize::Zeroizing;

use super::boundary::{ffi_boundary, sd_str, try_mut, try_ref};
use super::result::sd_result;
use crate::proxy::DisclosedPart;

/// What `sd_plain_get` can read from a decrypted part.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_field {
    /// The plaintext body (inner MIME headers removed).
    SD_FIELD_BODY = 0,
    /// Content type of the plaintext, e.g. `application/sdp`.
    SD_FIELD_CONTENT_TYPE = 1,
    /// Content-ID of the encrypted part, without angle brackets.
    SD_FIELD_CONTENT_ID = 2,
    /// `enveloped-data`, `authEnveloped-data` or `encrypted-data`.
    SD_FIELD_SMIME_TYPE = 3,
    /// `wrapped` (unwrapped with a proxy key) or `cache` (the dialog key).
    SD_FIELD_KEY_SOURCE = 4,
    /// Label of the proxy key used, or `dialog`.
    SD_FIELD_KEY_LABEL = 5,
    /// Connection address of the first audio (else first) media stream of an SDP body.
    SD_FIELD_MEDIA_ADDR = 6,
    /// Port of that stream, decimal.
    SD_FIELD_MEDIA_PORT = 7,
    /// First `a=crypto` value of that stream (SDES key material: handle with care).
    SD_FIELD_CRYPTO = 8,
    /// Generation of the dialog key after this message, decimal.
    SD_FIELD_GENERATION = 9,
}

const FIELDS: usize = 10;

/// The decrypted parts of one message. Owned by C (a `Box`) from `sd_unwrap_body` until
/// `sd_plain_free`, which zeroizes every byte.
pub struct sd_plain {
    parts: Vec<PartFields>,
}

struct PartFields {
    generation: u32,
    fields: [Option<Zeroizing<Vec<u8>>>; FIELDS],
}

impl sd_plain {
    pub(super) fn new(parts: Vec<DisclosedPart>) -> sd_plain {
        sd_plain {
            parts: parts.into_iter().map(PartFields::from).collect(),
        }
    }
}

impl From<DisclosedPart> for PartFields {
    fn from(p: DisclosedPart) -> PartFields {
        let text = |s: &str| Some(Zeroizing::new(s.as_bytes().to_vec()));
        let media = p
            .sdp
            .as_ref()
            .and_then(|s| s.first_audio().or_else(|| s.media.first()));
        let mut fields: [Option<Zeroizing<Vec<u8>>>; FIELDS] = Default::default();
        fields[sd_field::SD_FIELD_CONTENT_TYPE as usize] = text(&p.content_type);
        fields[sd_field::SD_FIELD_CONTENT_ID as usize] = p.content_id.as_deref().and_then(text);
        fields[sd_field::SD_FIELD_SMIME_TYPE as usize] = text(p.smime_type.as_param());
        fields[sd_field::SD_FIELD_KEY_SOURCE as usize] = text(p.key_source.name());
        fields[sd_field::SD_FIELD_KEY_LABEL as usize] = text(&p.key_label);
        fields[sd_field::SD_FIELD_GENERATION as usize] = text(&p.generation.to_string());
        if let Some(m) = media {
            let addr = m
                .addr
                .as_deref()
                .or(p.sdp.as_ref().and_then(|s| s.session_addr.as_deref()));
            fields[sd_field::SD_FIELD_MEDIA_ADDR as usize] = addr.and_then(text);
            fields[sd_field::SD_FIELD_MEDIA_PORT as usize] = text(&m.port.to_string());
            fields[sd_field::SD_FIELD_CRYPTO as usize] = m.crypto.first().and_then(|c| text(c));
        }
        fields[sd_field::SD_FIELD_BODY as usize] = Some(p.body);
        PartFields {
            generation: p.generation,
            fields,
        }
    }
}

/// Number of decrypted parts (0 for NULL).
///
/// # Safety
/// `p` NULL or from `sd_unwrap_body`.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_count(p: *const sd_plain) -> usize {
    ffi_boundary! {
        // SAFETY: NULL or a live sd_plain per the contract.
        unsafe { p.as_ref() }.map_or(0, |p| p.parts.len())
    }
}

/// Reads `field` of part `index` into `*out`: a view valid until `sd_plain_free(p)`.
/// SD_ERR_INVALID_ARGUMENT if the index is out of range, the field number unknown, or the
/// part has no such field (e.g. no media address in a non-SDP body); then `*out` is empty.
///
/// # Safety
/// `p` from `sd_unwrap_body`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_get(
    p: *const sd_plain,
    index: usize,
    field: u32,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = sd_str::EMPTY;
        let p = try_ref!(p);
        let value = p
            .parts
            .get(index)
            .and_then(|part| part.fields.get(field as usize))
            .and_then(|f| f.as_ref());
        match value {
            Some(v) => {
                *out = sd_str::of(v);
                sd_result::SD_OK
            }
            None => sd_result::SD_ERR_INVALID_ARGUMENT,
        }
    }
}

/// Generation of the dialog key after this message (of the first part); 0 for NULL.
///
/// # Safety
/// `p` NULL or from `sd_unwrap_body`.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_generation(p: *const sd_plain) -> u32 {
    ffi_boundary! {
        // SAFETY: NULL or a live sd_plain per the contract.
        unsafe { p.as_ref() }.and_then(|p| p.parts.first()).map_or(0, |part| part.generation)
    }
}

/// Frees (and zeroizes) a result of `sd_unwrap_body`; NULL is accepted.
///
/// # Safety
/// `p` NULL or from `sd_unwrap_body`, not yet freed, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_free(p: *mut sd_plain) {
    ffi_boundary! {
        if !p.is_null() {
            // SAFETY: per the contract, `p` came from Box::into_raw in sd_unwrap_body.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
