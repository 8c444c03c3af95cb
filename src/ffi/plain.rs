//! `sd_plain`: the decrypted parts of one message, and read-only views into them.

use std::cell::OnceCell;

use zeroize::Zeroizing;

use super::boundary::{ffi_boundary, sd_str, try_mut, try_ref};
use super::result::sd_result;
use crate::engine::proxy::DisclosedPart;

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
    /// `wrapped` (unwrapped with a proxy key), `cache` (the dialog key) or `replica` (the
    /// dialog key as another cluster node replicated it).
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

impl sd_field {
    fn from_u32(n: u32) -> Option<sd_field> {
        use sd_field::*;
        Some(match n {
            0 => SD_FIELD_BODY,
            1 => SD_FIELD_CONTENT_TYPE,
            2 => SD_FIELD_CONTENT_ID,
            3 => SD_FIELD_SMIME_TYPE,
            4 => SD_FIELD_KEY_SOURCE,
            5 => SD_FIELD_KEY_LABEL,
            6 => SD_FIELD_MEDIA_ADDR,
            7 => SD_FIELD_MEDIA_PORT,
            8 => SD_FIELD_CRYPTO,
            9 => SD_FIELD_GENERATION,
            _ => return None,
        })
    }
}

/// The decrypted parts of one message. Owned by C (a `Box`) from `sd_unwrap_body` until
/// `sd_plain_free`, which zeroizes every byte. Single-threaded: use one `sd_plain` from one
/// thread at a time (its media fields are worked out on first read); different `sd_plain`s
/// may be used by different threads.
pub struct sd_plain {
    parts: Vec<PartFields>,
}

/// One part and the text forms C reads. The media fields are worked out the first time one
/// is asked for: most messages are only forwarded, and parsing SDP costs.
struct PartFields {
    part: DisclosedPart,
    generation: String,
    media: OnceCell<MediaFields>,
}

/// Address, port and first `a=crypto` of the first audio (else first) stream.
type MediaFields = [Option<Zeroizing<Vec<u8>>>; 3];

impl sd_plain {
    pub(super) fn new(parts: Vec<DisclosedPart>) -> sd_plain {
        sd_plain {
            parts: parts
                .into_iter()
                .map(|part| PartFields {
                    generation: part.generation.to_string(),
                    part,
                    media: OnceCell::new(),
                })
                .collect(),
        }
    }
}

impl PartFields {
    fn media(&self) -> &MediaFields {
        self.media.get_or_init(|| {
            let text = |s: &str| Some(Zeroizing::new(s.as_bytes().to_vec()));
            let Some(sdp) = self.part.sdp() else {
                return Default::default();
            };
            let Some(m) = sdp.first_audio().or_else(|| sdp.media.first()) else {
                return Default::default();
            };
            let addr = m.addr.as_deref().or(sdp.session_addr.as_deref());
            [
                addr.and_then(text),
                text(&m.port.to_string()),
                m.crypto.first().and_then(|c| text(c)),
            ]
        })
    }

    fn get(&self, field: sd_field) -> Option<&[u8]> {
        use sd_field::*;
        let p = &self.part;
        match field {
            SD_FIELD_BODY => Some(p.body.as_slice()),
            SD_FIELD_CONTENT_TYPE => Some(p.content_type.as_bytes()),
            SD_FIELD_CONTENT_ID => p.content_id.as_deref().map(str::as_bytes),
            SD_FIELD_SMIME_TYPE => Some(p.kind.smime_type().as_bytes()),
            SD_FIELD_KEY_SOURCE => Some(p.key_source.name().as_bytes()),
            SD_FIELD_KEY_LABEL => Some(p.key_label.as_bytes()),
            SD_FIELD_GENERATION => Some(self.generation.as_bytes()),
            SD_FIELD_MEDIA_ADDR => self.media()[0].as_deref().map(Vec::as_slice),
            SD_FIELD_MEDIA_PORT => self.media()[1].as_deref().map(Vec::as_slice),
            SD_FIELD_CRYPTO => self.media()[2].as_deref().map(Vec::as_slice),
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
            .zip(sd_field::from_u32(field))
            .and_then(|(part, field)| part.get(field));
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
        unsafe { p.as_ref() }.and_then(|p| p.parts.first()).map_or(0, |f| f.part.generation)
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
