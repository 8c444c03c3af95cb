//! Every media stream of a decrypted SDP and each of its `a=crypto` attributes, read by index:
//! `sd_plain_media_count` / `sd_plain_media_get` and `sd_plain_crypto_count` /
//! `sd_plain_crypto_get`, with the selectors `sd_media_field` and `sd_crypto_field`.
//!
//! The part's SDP is parsed once, the first time any of its fields is read, and kept by the
//! `sd_plain`: a field is a view into it (the text as written, e.g. an address or an
//! `a=crypto` value) or, for numbers and lists, text worked out the first time it is read and
//! kept beside it. Views stay valid until `sd_plain_free`, which zeroizes the SDES key
//! material (the `a=crypto` values) and the lists. That is the one free of the key material:
//! nothing else holds a copy, and a caller that needs keys longer copies them itself.

use std::cell::OnceCell;
use std::ffi::c_char;

use smallvec::SmallVec;
use zeroize::Zeroizing;

use super::boundary::{ffi_boundary, get_view, read_or_default, sd_str};
use super::fields::{self, field_names, Decimal};
use super::plain::sd_plain;
use super::result::sd_result;
use crate::sip::sdp::{CryptoAttr, MediaInfo, SdpError, SdpInfo};

/// What `sd_plain_media_get` can read of one media stream (`m=` line) of an SDP part. The
/// names the Kamailio module shows them as (`$sd(media[i]/NAME)`) come from
/// `sd_media_field_name`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_media_field {
    /// The media type: `audio`, `video`, `application`, ...
    SD_MEDIA_FIELD_KIND = 0,
    /// The RTP port, decimal; `0` for a disabled stream.
    SD_MEDIA_FIELD_PORT = 1,
    /// How many ports (`m=video 49170/2`), decimal; `1` when not given.
    SD_MEDIA_FIELD_PORT_COUNT = 2,
    /// The transport protocol, e.g. `RTP/SAVP`.
    SD_MEDIA_FIELD_PROTO = 3,
    /// The formats (RTP payload types) of the `m=` line, separated by single spaces.
    SD_MEDIA_FIELD_FORMATS = 4,
    /// The connection address: the media's `c=`, else the session's (IP literal or host
    /// name, without TTL or count); absent when the SDP has neither.
    SD_MEDIA_FIELD_ADDR = 5,
    /// `IP4` or `IP6`, the type of that address.
    SD_MEDIA_FIELD_ADDR_TYPE = 6,
    /// `1` when that address is multicast, else `0`.
    SD_MEDIA_FIELD_MULTICAST = 7,
    /// The RTCP port, decimal: the RTP port with `a=rtcp-mux`, else the `a=rtcp` port, else
    /// the RTP port + 1; absent for a disabled stream.
    SD_MEDIA_FIELD_RTCP_PORT = 8,
    /// The RTCP address: the one `a=rtcp` names (without rtcp-mux), else the connection
    /// address.
    SD_MEDIA_FIELD_RTCP_ADDR = 9,
    /// `1` when the stream asks for `a=rtcp-mux`, else `0`.
    SD_MEDIA_FIELD_RTCP_MUX = 10,
    /// `sendrecv`, `sendonly`, `recvonly` or `inactive`: the media's attribute, else the
    /// session's, else `sendrecv`.
    SD_MEDIA_FIELD_DIRECTION = 11,
    /// Number of `a=crypto` attributes of the stream, decimal (see `sd_plain_crypto_count`).
    SD_MEDIA_FIELD_CRYPTO_COUNT = 12,
    /// The `a=rtpmap` attributes of the stream, `PT ENCODING/RATE[/PARAMS]` each, separated
    /// by `, ` (e.g. `0 PCMU/8000, 101 telephone-event/8000`); absent when it has none.
    SD_MEDIA_FIELD_RTPMAP = 13,
}

field_names!(sd_media_field {
    SD_MEDIA_FIELD_KIND => "kind",
    SD_MEDIA_FIELD_PORT => "port",
    SD_MEDIA_FIELD_PORT_COUNT => "port_count",
    SD_MEDIA_FIELD_PROTO => "proto",
    SD_MEDIA_FIELD_FORMATS => "formats",
    SD_MEDIA_FIELD_ADDR => "addr",
    SD_MEDIA_FIELD_ADDR_TYPE => "addr_type",
    SD_MEDIA_FIELD_MULTICAST => "multicast",
    SD_MEDIA_FIELD_RTCP_PORT => "rtcp_port",
    SD_MEDIA_FIELD_RTCP_ADDR => "rtcp_addr",
    SD_MEDIA_FIELD_RTCP_MUX => "rtcp_mux",
    SD_MEDIA_FIELD_DIRECTION => "direction",
    SD_MEDIA_FIELD_CRYPTO_COUNT => "crypto_count",
    SD_MEDIA_FIELD_RTPMAP => "rtpmap",
});

/// What `sd_plain_crypto_get` can read of one `a=crypto` attribute (RFC 4568). The names the
/// Kamailio module shows them as (`$sd(media[i]/crypto[j]/NAME)`) come from
/// `sd_crypto_field_name`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_crypto_field {
    /// The tag, decimal.
    SD_CRYPTO_FIELD_TAG = 0,
    /// The crypto suite as written, e.g. `AES_CM_128_HMAC_SHA1_80`.
    SD_CRYPTO_FIELD_SUITE = 1,
    /// The key parameters as written, e.g. `inline:<key||salt>|2^20|1:4`: the SRTP master
    /// keys, secret.
    SD_CRYPTO_FIELD_KEY_PARAMS = 2,
    /// The session parameters as written (`KDR=1 WSH=128`); absent when there are none.
    SD_CRYPTO_FIELD_SESSION_PARAMS = 3,
    /// The whole attribute value (after `a=crypto:`): secret.
    SD_CRYPTO_FIELD_VALUE = 4,
}

field_names!(sd_crypto_field {
    SD_CRYPTO_FIELD_TAG => "tag",
    SD_CRYPTO_FIELD_SUITE => "suite",
    SD_CRYPTO_FIELD_KEY_PARAMS => "key_params",
    SD_CRYPTO_FIELD_SESSION_PARAMS => "session_params",
    SD_CRYPTO_FIELD_VALUE => "value",
});

/// Field text worked out from the SDP (the lists), zeroized when dropped like the rest.
type Text = Zeroizing<Vec<u8>>;

fn flag(b: bool) -> &'static [u8] {
    if b {
        b"1"
    } else {
        b"0"
    }
}

/// The text of one stream's fields: the numbers written out, the lists (formats, rtpmap)
/// joined the first time they are read; every other field is a view into the parsed SDP.
pub(super) struct StreamText {
    port: Decimal,
    port_count: Decimal,
    rtcp_port: Option<Decimal>,
    crypto_count: Decimal,
    /// The tag of each `a=crypto`, in order (a stream offers one or two: inline).
    tags: SmallVec<[Decimal; 2]>,
    formats: OnceCell<Text>,
    rtpmap: OnceCell<Option<Text>>,
}

impl StreamText {
    fn of(m: &MediaInfo) -> StreamText {
        StreamText {
            port: Decimal::of(u32::from(m.port)),
            port_count: Decimal::of(u32::from(m.port_count)),
            rtcp_port: m.rtcp_port().map(|p| Decimal::of(u32::from(p))),
            // at most MAX_CRYPTO (32): the conversion keeps it
            crypto_count: Decimal::of(u32::try_from(m.crypto.len()).unwrap_or(u32::MAX)),
            tags: m.crypto.iter().map(|c| Decimal::of(c.tag())).collect(),
            formats: OnceCell::new(),
            rtpmap: OnceCell::new(),
        }
    }
}

/// Field `field` of stream `m` (whose numbers `t` holds).
fn media_field<'a>(m: &'a MediaInfo, t: &'a StreamText, field: sd_media_field) -> Option<&'a [u8]> {
    use sd_media_field::*;
    match field {
        SD_MEDIA_FIELD_KIND => Some(m.kind.as_bytes()),
        SD_MEDIA_FIELD_PORT => Some(t.port.as_bytes()),
        SD_MEDIA_FIELD_PORT_COUNT => Some(t.port_count.as_bytes()),
        SD_MEDIA_FIELD_PROTO => Some(m.proto.as_bytes()),
        SD_MEDIA_FIELD_FORMATS => Some(
            t.formats
                .get_or_init(|| Zeroizing::new(m.formats.join(" ").into_bytes()))
                .as_slice(),
        ),
        SD_MEDIA_FIELD_ADDR => m.addr().map(str::as_bytes),
        SD_MEDIA_FIELD_ADDR_TYPE => m.connection.as_ref().map(|c| c.addr_type.name().as_bytes()),
        SD_MEDIA_FIELD_MULTICAST => m.connection.as_ref().map(|c| flag(c.is_multicast())),
        SD_MEDIA_FIELD_RTCP_PORT => t.rtcp_port.as_ref().map(Decimal::as_bytes),
        SD_MEDIA_FIELD_RTCP_ADDR => m.rtcp_addr().map(str::as_bytes),
        SD_MEDIA_FIELD_RTCP_MUX => Some(flag(m.rtcp_mux)),
        SD_MEDIA_FIELD_DIRECTION => Some(m.direction.name().as_bytes()),
        SD_MEDIA_FIELD_CRYPTO_COUNT => Some(t.crypto_count.as_bytes()),
        SD_MEDIA_FIELD_RTPMAP => t
            .rtpmap
            .get_or_init(|| {
                (!m.rtpmaps.is_empty()).then(|| {
                    let maps: Vec<String> = m.rtpmaps.iter().map(|r| r.to_string()).collect();
                    Zeroizing::new(maps.join(", ").into_bytes())
                })
            })
            .as_deref()
            .map(Vec::as_slice),
    }
}

/// Field `field` of `a=crypto` `c` (whose tag is `tag`): views into the attribute as
/// written, which the parsed SDP zeroizes.
fn crypto_field<'a>(
    c: &'a CryptoAttr,
    tag: &'a Decimal,
    field: sd_crypto_field,
) -> Option<&'a [u8]> {
    use sd_crypto_field::*;
    match field {
        SD_CRYPTO_FIELD_TAG => Some(tag.as_bytes()),
        SD_CRYPTO_FIELD_SUITE => Some(c.suite().as_bytes()),
        SD_CRYPTO_FIELD_KEY_PARAMS => Some(c.key_params().as_bytes()),
        SD_CRYPTO_FIELD_SESSION_PARAMS => Some(c.session_params())
            .filter(|s| !s.is_empty())
            .map(str::as_bytes),
        SD_CRYPTO_FIELD_VALUE => Some(c.value().as_bytes()),
    }
}

/// One stream of a readable SDP: its description and its text.
pub(super) struct Stream<'a> {
    media: &'a MediaInfo,
    text: &'a StreamText,
}

impl<'a> Stream<'a> {
    fn get(&self, field: sd_media_field) -> Option<&'a [u8]> {
        media_field(self.media, self.text, field)
    }

    fn crypto_count(&self) -> usize {
        self.media.crypto.len()
    }

    fn crypto(&self, index: usize, field: sd_crypto_field) -> Option<&'a [u8]> {
        let c = self.media.crypto.get(index)?;
        crypto_field(c, self.text.tags.get(index)?, field)
    }
}

/// What a part's SDP gives C: nothing (not SDP), why it could not be read, or its streams.
/// Parsed once, the first time a field of the part's SDP is read; a stream's numbers are
/// written out the first time one of its fields is read.
// `Streams` keeps one or two streams' texts inline: made once per part, straight into the
// part's `OnceCell`, where a heap list would be an allocation per message read.
#[allow(clippy::large_enum_variant)]
pub(super) enum SdpText {
    NotSdp,
    Invalid(String),
    Streams {
        info: SdpInfo,
        /// One per stream (an audio stream, and perhaps a video one: inline).
        text: SmallVec<[OnceCell<StreamText>; 2]>,
        count: Decimal,
        /// The stream the single-stream fields (`SD_FIELD_MEDIA_*`) show.
        primary: Option<usize>,
    },
}

impl SdpText {
    /// The text of `sdp`, as `DisclosedPart::sdp` gives it.
    pub(super) fn of(sdp: Option<Result<SdpInfo, SdpError>>) -> SdpText {
        match sdp {
            None => SdpText::NotSdp,
            Some(Err(e)) => SdpText::Invalid(e.to_string()),
            Some(Ok(info)) => SdpText::Streams {
                text: info.media.iter().map(|_| OnceCell::new()).collect(),
                // at most MAX_MEDIA (64): the conversion keeps it
                count: Decimal::of(u32::try_from(info.media.len()).unwrap_or(u32::MAX)),
                primary: info.primary(),
                info,
            },
        }
    }

    /// The number of streams (0 when the part is not a readable SDP).
    fn len(&self) -> usize {
        match self {
            SdpText::Streams { info, .. } => info.media.len(),
            _ => 0,
        }
    }

    fn stream(&self, index: usize) -> Option<Stream<'_>> {
        match self {
            SdpText::Streams { info, text, .. } => {
                let media = info.media.get(index)?;
                let text = text.get(index)?.get_or_init(|| StreamText::of(media));
                Some(Stream { media, text })
            }
            _ => None,
        }
    }

    /// `field` of the stream single-stream readers are shown.
    pub(super) fn primary(&self, field: sd_media_field) -> Option<&[u8]> {
        self.primary_stream()?.get(field)
    }

    /// `field` of the first `a=crypto` of that stream.
    pub(super) fn primary_crypto(&self, field: sd_crypto_field) -> Option<&[u8]> {
        self.primary_stream()?.crypto(0, field)
    }

    fn primary_stream(&self) -> Option<Stream<'_>> {
        match self {
            SdpText::Streams {
                primary: Some(i), ..
            } => self.stream(*i),
            _ => None,
        }
    }

    /// The number of streams, when the part is a readable SDP.
    pub(super) fn count(&self) -> Option<&[u8]> {
        match self {
            SdpText::Streams { count, .. } => Some(count.as_bytes()),
            _ => None,
        }
    }

    /// Why the part's SDP could not be read.
    pub(super) fn error(&self) -> Option<&[u8]> {
        match self {
            SdpText::Invalid(e) => Some(e.as_bytes()),
            _ => None,
        }
    }
}

/// Stream `media` of part `part`'s SDP, if there is one.
fn stream(p: &sd_plain, part: usize, media: usize) -> Option<Stream<'_>> {
    p.part(part)?.sdp().stream(media)
}

/// Number of media streams (`m=` lines) of part `part`'s SDP; 0 for NULL, a part out of
/// range, a part that is not SDP or whose SDP is malformed (`SD_FIELD_SDP_ERROR` tells).
///
/// # Safety
/// `p` NULL or from `sd_unwrap_body`.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_media_count(p: *const sd_plain, part: usize) -> usize {
    ffi_boundary! {
        // SAFETY: NULL or a live sd_plain per the contract.
        unsafe { read_or_default(p, |p| p.part(part).map_or(0, |f| f.sdp().len())) }
    }
}

/// Reads `field` (an `sd_media_field`) of stream `media` of part `part` into `*out`: a view
/// valid until `sd_plain_free(p)`. SD_ERR_INVALID_ARGUMENT if an index is out of range, the
/// field number unknown, or the stream has no such field (e.g. no connection address); then
/// `*out` is empty.
///
/// # Safety
/// `p` from `sd_unwrap_body`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_media_get(
    p: *const sd_plain,
    part: usize,
    media: usize,
    field: u32,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: `p` from sd_unwrap_body, `out` writable, per the contract.
        unsafe {
            get_view(p, out, |p| {
                stream(p, part, media)
                    .zip(sd_media_field::from_u32(field))
                    .and_then(|(s, field)| s.get(field))
            })
        }
    }
}

/// Number of `a=crypto` attributes of stream `media` of part `part`; 0 for NULL or an index
/// out of range.
///
/// # Safety
/// `p` NULL or from `sd_unwrap_body`.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_crypto_count(
    p: *const sd_plain,
    part: usize,
    media: usize,
) -> usize {
    ffi_boundary! {
        // SAFETY: NULL or a live sd_plain per the contract.
        unsafe { read_or_default(p, |p| stream(p, part, media).map_or(0, |s| s.crypto_count())) }
    }
}

/// Reads `field` (an `sd_crypto_field`) of `a=crypto` attribute `crypto` of stream `media` of
/// part `part` into `*out`: a view valid until `sd_plain_free(p)`, which zeroizes it (the key
/// fields are SRTP master keys: do not log them). SD_ERR_INVALID_ARGUMENT if an index is out
/// of range, the field number unknown, or the attribute has no such field; then `*out` is
/// empty.
///
/// # Safety
/// `p` from `sd_unwrap_body`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_plain_crypto_get(
    p: *const sd_plain,
    part: usize,
    media: usize,
    crypto: usize,
    field: u32,
    out: *mut sd_str,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: `p` from sd_unwrap_body, `out` writable, per the contract.
        unsafe {
            get_view(p, out, |p| {
                stream(p, part, media)
                    .zip(sd_crypto_field::from_u32(field))
                    .and_then(|(s, field)| s.crypto(crypto, field))
            })
        }
    }
}

/// Number of `sd_media_field` values (they are numbered 0 to this - 1).
#[no_mangle]
pub extern "C" fn sd_media_field_count() -> u32 {
    fields::count::<sd_media_field>()
}

/// The static, NUL-terminated script name of `sd_media_field` `field` (`addr`, `rtcp_port`,
/// ...); NULL past the end.
#[no_mangle]
pub extern "C" fn sd_media_field_name(field: u32) -> *const c_char {
    fields::name::<sd_media_field>(field)
}

/// Number of `sd_crypto_field` values (they are numbered 0 to this - 1).
#[no_mangle]
pub extern "C" fn sd_crypto_field_count() -> u32 {
    fields::count::<sd_crypto_field>()
}

/// The static, NUL-terminated script name of `sd_crypto_field` `field` (`suite`, ...); NULL
/// past the end.
#[no_mangle]
pub extern "C" fn sd_crypto_field_name(field: u32) -> *const c_char {
    fields::name::<sd_crypto_field>(field)
}
