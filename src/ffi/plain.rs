//! `sd_plain`: the decrypted parts of one message, and read-only views into them.

use std::cell::OnceCell;
use std::ffi::c_char;

use super::boundary::{ffi_boundary, free_box, get_view, read_or_default, sd_str};
use super::fields::{self, field_names, Decimal};
use super::media::{sd_crypto_field, sd_media_field, SdpText};
use super::result::sd_result;
use crate::engine::proxy::DisclosedPart;
use crate::engine::signature;
use crate::sip::body::Parts;

/// What `sd_plain_get` can read from a decrypted part. The names the Kamailio module shows
/// them as (`$sd(NAME)`) come from `sd_field_name`.
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
    /// Connection address of the first audio (else first) media stream of an SDP body
    /// (`SD_MEDIA_FIELD_ADDR` of that stream).
    SD_FIELD_MEDIA_ADDR = 6,
    /// Port of that stream, decimal.
    SD_FIELD_MEDIA_PORT = 7,
    /// First `a=crypto` value of that stream (SDES key material: handle with care).
    SD_FIELD_CRYPTO = 8,
    /// Generation of the dialog key after this message, decimal.
    SD_FIELD_GENERATION = 9,
    /// Number of media streams (`m=` lines) of an SDP body, decimal; absent when the part is
    /// not SDP or its SDP is malformed (see `sd_plain_media_count`).
    SD_FIELD_MEDIA_COUNT = 10,
    /// Why an `application/sdp` part could not be read as SDP (e.g. `malformed SDP line
    /// 7`); absent when it could, or is not SDP. Never contains SDP text.
    SD_FIELD_SDP_ERROR = 11,
    /// What the signature inside the plaintext said: `none`, `valid`, `invalid` or `unknown`.
    SD_FIELD_SIGNATURE = 12,
    /// The signer a valid or invalid signature names (its certificate's subject CN).
    SD_FIELD_SIGNER = 13,
}

field_names!(sd_field {
    SD_FIELD_BODY => "body",
    SD_FIELD_CONTENT_TYPE => "content_type",
    SD_FIELD_CONTENT_ID => "content_id",
    SD_FIELD_SMIME_TYPE => "smime_type",
    SD_FIELD_KEY_SOURCE => "key_source",
    SD_FIELD_KEY_LABEL => "key_label",
    SD_FIELD_MEDIA_ADDR => "media_addr",
    SD_FIELD_MEDIA_PORT => "media_port",
    SD_FIELD_CRYPTO => "crypto",
    SD_FIELD_GENERATION => "generation",
    SD_FIELD_MEDIA_COUNT => "media_count",
    SD_FIELD_SDP_ERROR => "sdp_error",
    SD_FIELD_SIGNATURE => "signature",
    SD_FIELD_SIGNER => "signer",
});

/// The decrypted parts of one message. Owned by C (a `Box`) from `sd_unwrap_body` (or
/// `sd_open`) until
/// `sd_plain_free`, which zeroizes every byte: the plaintext, and every text read from its
/// SDP (SDES keys included). Single-threaded: use one `sd_plain` from one thread at a time
/// (its SDP fields are worked out on first read); different `sd_plain`s may be used by
/// different threads.
pub struct sd_plain {
    parts: Parts<PartFields>,
}

/// One part and the text forms C reads. The SDP fields are worked out the first time one is
/// asked for: most messages are only forwarded, and parsing SDP costs.
pub(super) struct PartFields {
    part: DisclosedPart,
    generation: Decimal,
    sdp: OnceCell<SdpText>,
}

impl sd_plain {
    pub(super) fn new(parts: Parts<DisclosedPart>) -> sd_plain {
        sd_plain {
            parts: parts
                .into_iter()
                .map(|part| PartFields {
                    generation: Decimal::of(part.generation),
                    part,
                    sdp: OnceCell::new(),
                })
                .collect(),
        }
    }

    /// Every decrypted part.
    pub(super) fn disclosed(&self) -> Vec<&DisclosedPart> {
        self.parts.iter().map(|p| &p.part).collect()
    }

    /// Part `index`, if there is one.
    pub(super) fn part(&self, index: usize) -> Option<&PartFields> {
        self.parts.get(index)
    }
}

impl PartFields {
    /// The text of every field of this part's SDP.
    pub(super) fn sdp(&self) -> &SdpText {
        self.sdp.get_or_init(|| SdpText::of(self.part.sdp()))
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
            SD_FIELD_SIGNATURE => Some(signature::status(&p.signature).as_bytes()),
            SD_FIELD_SIGNER => p
                .signature
                .as_ref()
                .and_then(|s| s.signer())
                .map(str::as_bytes),
            SD_FIELD_MEDIA_ADDR => self.sdp().primary(sd_media_field::SD_MEDIA_FIELD_ADDR),
            SD_FIELD_MEDIA_PORT => self.sdp().primary(sd_media_field::SD_MEDIA_FIELD_PORT),
            SD_FIELD_CRYPTO => self
                .sdp()
                .primary_crypto(sd_crypto_field::SD_CRYPTO_FIELD_VALUE),
            SD_FIELD_MEDIA_COUNT => self.sdp().count(),
            SD_FIELD_SDP_ERROR => self.sdp().error(),
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
        unsafe { read_or_default(p, |p| p.parts.len()) }
    }
}

/// Reads `field` (an `sd_field`) of part `index` into `*out`: a view valid until
/// `sd_plain_free(p)`.
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
        // SAFETY: `p` from sd_unwrap_body, `out` writable, per the contract.
        unsafe {
            get_view(p, out, |p| {
                p.part(index)
                    .zip(sd_field::from_u32(field))
                    .and_then(|(part, field)| part.get(field))
            })
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
        unsafe { read_or_default(p, |p| p.parts.first().map_or(0, |f| f.part.generation)) }
    }
}

/// Frees (and zeroizes) a result of `sd_unwrap_body`; NULL is accepted.
///
/// # Safety
/// `p` NULL or from `sd_unwrap_body`, not yet freed, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_free(p: *mut sd_plain) {
    ffi_boundary! {
        // SAFETY: NULL or from sd_unwrap_body, freed once, per the contract.
        unsafe { free_box(p) }
    }
}

/// Number of `sd_field` values (they are numbered 0 to this - 1).
#[no_mangle]
pub extern "C" fn sd_field_count() -> u32 {
    fields::count::<sd_field>()
}

/// The static, NUL-terminated script name of `sd_field` `field` (`media_addr`, ...); NULL
/// past the end.
#[no_mangle]
pub extern "C" fn sd_field_name(field: u32) -> *const c_char {
    fields::name::<sd_field>(field)
}
