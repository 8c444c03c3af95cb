//! SIP message bodies carrying S/MIME (RFC 3261 §23, RFC 8551): finding the
//! `application/pkcs7-mime` parts of a single-part or `multipart/*` body, undoing their
//! transfer encoding, reading the MIME entity inside a decrypted body; and, in [`build`],
//! building bodies on the user-agent side.
//!
//! Everything here parses untrusted input: sizes, part counts and nesting depth are limited by
//! [`BodyLimits`], nesting is walked iteratively, and every failure is a [`BodyError`].
//!
//! Submodules: [`content_type`] (header values, S/MIME types), `headers` (entity header
//! blocks), `multipart` (RFC 2046 splitting), `transfer` (Content-Transfer-Encoding),
//! [`build`] (bodies a user agent sends), [`signed`] (`multipart/signed` entities).

pub mod build;
pub mod content_type;
mod headers;
mod multipart;
pub mod signed;
mod transfer;

use std::ops::Range;

pub use build::{build_multipart, mime_entity, BodyOptions, PartSpec, SipBody};
pub use content_type::ContentType;

use crate::crypto::cms::CmsKind;
use headers::Headers;

/// Limits applied to an untrusted SIP body.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes (default 65536).
    pub max_body: usize,
    /// Most MIME parts accepted, counted over all nesting levels (default 16).
    pub max_parts: usize,
    /// Deepest multipart nesting accepted; a top-level multipart body is depth 1 (default 4).
    pub max_depth: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_body: 65536,
            max_parts: 16,
            max_depth: 4,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A `Content-Type` value does not parse (the reason, not the value).
    #[error("bad Content-Type: {0}")]
    BadContentType(String),
    /// A body header (`Content-Type`, `Content-Transfer-Encoding`) is not UTF-8 (which one).
    #[error("{0} is not UTF-8")]
    HeaderNotUtf8(&'static str),
    /// A `multipart/*` type without a `boundary` parameter.
    #[error("multipart body without a boundary parameter")]
    MissingBoundary,
    /// The multipart structure is broken.
    #[error("bad multipart body: {0}")]
    BadMultipart(&'static str),
    /// A MIME entity's header block is broken.
    #[error("bad MIME header: {0}")]
    BadHeader(&'static str),
    /// The body is larger than [`BodyLimits::max_body`].
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More parts than [`BodyLimits::max_parts`] (the count reached when stopping).
    #[error("too many MIME parts ({0})")]
    TooManyParts(usize),
    /// Multipart nesting deeper than [`BodyLimits::max_depth`] (the depth reached).
    #[error("multipart nesting too deep ({0})")]
    TooDeep(usize),
    /// A base64 transfer encoding that does not decode.
    #[error("invalid base64 content")]
    BadBase64,
    /// A transfer encoding other than binary, 8bit, 7bit or base64 (or base64 on a multipart).
    #[error("unsupported Content-Transfer-Encoding {0:?}")]
    UnsupportedTransferEncoding(String),
}

/// The parts of one body, in body order, the first held inline: a one-part body (the usual
/// case) needs no list on the heap, at every step from finding its parts to the `sd_plain`
/// C reads them from.
pub type Parts<T> = smallvec::SmallVec<[T; 1]>;

/// An `application/pkcs7-mime` part of a SIP body.
#[derive(Clone, Debug)]
pub struct EncryptedPart {
    /// The part's `Content-ID` without angle brackets (`None` for a single-part body).
    pub content_id: Option<String>,
    /// The `smime-type` parameter; `None` if absent (the caller inspects the DER).
    pub smime_type: Option<CmsKind>,
    /// The transfer-decoded bytes (DER).
    pub der: Vec<u8>,
    /// Where the part's (still encoded) body sits in the SIP body.
    pub range: Range<usize>,
}

impl EncryptedPart {
    /// Whether this part's Content-ID is `cid` (see [`content_id_eq`]).
    pub fn has_content_id(&self, cid: &str) -> bool {
        self.content_id
            .as_deref()
            .is_some_and(|own| content_id_eq(own, cid))
    }
}

/// A Content-ID without surrounding blanks and angle brackets.
pub fn normalize_content_id(cid: &str) -> &str {
    let t = cid.trim();
    t.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .map_or(t, str::trim)
}

/// Compares two Content-IDs (RFC 2392, RFC 5322 `msg-id`): angle brackets are ignored, the
/// part before the last `@` is compared exactly (case-sensitive), the domain after it without
/// regard to ASCII case. Without `@`, the whole value is compared exactly.
pub fn content_id_eq(a: &str, b: &str) -> bool {
    let (a, b) = (normalize_content_id(a), normalize_content_id(b));
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        (None, None) => a == b,
        _ => false,
    }
}

/// The default type of a MIME entity without `Content-Type` (RFC 2045 §5.2).
fn default_content_type() -> ContentType {
    ContentType {
        media: "text/plain".to_owned(),
        params: vec![("charset".to_owned(), "us-ascii".to_owned())],
    }
}

/// The encrypted part described by `ct`, if it is one: `application/pkcs7-mime` (or
/// `x-pkcs7-mime`) whose `smime-type` is absent or one of [`CmsKind`]. Other S/MIME types
/// (`signed-data`, `certs-only`, `compressed-data`, unknown ones) are not encrypted parts.
fn encrypted_part(
    ct: &ContentType,
    content_id: Option<&str>,
    cte: Option<&str>,
    bytes: &[u8],
    range: Range<usize>,
) -> Result<Option<EncryptedPart>, BodyError> {
    if !ct.is_pkcs7_mime() {
        return Ok(None);
    }
    let smime_type = match ct.smime_type() {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => return Ok(None),
    };
    part_of(smime_type, content_id, cte, bytes, range)
}

/// The encrypted part of `smime_type` whose encoded body is `bytes`.
fn part_of(
    smime_type: Option<CmsKind>,
    content_id: Option<&str>,
    cte: Option<&str>,
    bytes: &[u8],
    range: Range<usize>,
) -> Result<Option<EncryptedPart>, BodyError> {
    let der = transfer::decode(cte, bytes)?.into_owned();
    Ok(Some(EncryptedPart {
        content_id: content_id.map(|c| normalize_content_id(c).to_owned()),
        smime_type,
        der,
        range,
    }))
}

/// Rejects a transfer encoding on a multipart entity other than the identities (RFC 2045 §6.4).
fn check_multipart_cte(cte: Option<&str>) -> Result<(), BodyError> {
    match cte {
        Some(e) if !transfer::is_identity(e) => Err(BodyError::UnsupportedTransferEncoding(
            e.trim().chars().take(64).collect(),
        )),
        _ => Ok(()),
    }
}

/// Splits the multipart entity `ct` whose body is `body[range]`, with ranges relative to
/// `body`; `seen` parts were counted before.
fn split_at(
    body: &[u8],
    range: Range<usize>,
    ct: &ContentType,
    seen: usize,
    limits: &BodyLimits,
) -> Result<Vec<Range<usize>>, BodyError> {
    let boundary = ct.param("boundary").ok_or(BodyError::MissingBoundary)?;
    let inner = body
        .get(range.clone())
        .ok_or(BodyError::BadMultipart("part outside the body"))?;
    let budget = limits.max_parts.saturating_sub(seen);
    match multipart::split(inner, boundary, budget) {
        Ok(parts) => Ok(parts
            .into_iter()
            .map(|r| r.start + range.start..r.end + range.start)
            .collect()),
        Err(BodyError::TooManyParts(n)) => Err(BodyError::TooManyParts(seen + n)),
        Err(e) => Err(e),
    }
}

/// All `application/pkcs7-mime` parts of a SIP body (single-part or multipart), in document
/// order. `transfer_encoding` is the SIP message's Content-Transfer-Encoding header value, if
/// any. No part when the body has no encrypted part.
pub fn encrypted_parts(
    content_type: &str,
    transfer_encoding: Option<&str>,
    body: &[u8],
    limits: &BodyLimits,
) -> Result<Parts<EncryptedPart>, BodyError> {
    if body.len() > limits.max_body {
        return Err(BodyError::TooLarge {
            size: body.len(),
            limit: limits.max_body,
        });
    }
    if let Some(kind) = own_smime_content_type(content_type) {
        // what sipsd writes: read without parsing (the same result as parsing it)
        return Ok(
            part_of(Some(kind), None, transfer_encoding, body, 0..body.len())?
                .into_iter()
                .collect(),
        );
    }
    let ct = ContentType::parse(content_type)?;
    let mut found = Parts::new();
    if !ct.is_multipart() {
        found.extend(encrypted_part(
            &ct,
            None,
            transfer_encoding,
            body,
            0..body.len(),
        )?);
        return Ok(found);
    }
    if limits.max_depth < 1 {
        return Err(BodyError::TooDeep(1));
    }
    check_multipart_cte(transfer_encoding)?;
    let top = split_at(body, 0..body.len(), &ct, 0, limits)?;
    let mut seen = top.len();
    // Iterative walk: one frame per open multipart, so nesting never grows the call stack.
    let mut stack: Vec<(std::vec::IntoIter<Range<usize>>, usize)> = vec![(top.into_iter(), 1)];
    while let Some((parts, depth)) = stack.last_mut() {
        let depth = *depth;
        let Some(range) = parts.next() else {
            stack.pop();
            continue;
        };
        let part = body
            .get(range.clone())
            .ok_or(BodyError::BadMultipart("part outside the body"))?;
        let (headers, body_offset) = Headers::parse(part)?;
        let body_range = range.start + body_offset..range.end;
        let part_ct = match headers.get("content-type") {
            Some(v) => ContentType::parse(v)?,
            None => default_content_type(),
        };
        let cte = headers.get("content-transfer-encoding");
        if part_ct.is_multipart() {
            if depth >= limits.max_depth {
                return Err(BodyError::TooDeep(depth + 1));
            }
            check_multipart_cte(cte)?;
            let sub = split_at(body, body_range, &part_ct, seen, limits)?;
            seen += sub.len();
            stack.push((sub.into_iter(), depth + 1));
        } else {
            let bytes = body.get(body_range.clone()).unwrap_or_default();
            found.extend(encrypted_part(
                &part_ct,
                headers.get("content-id"),
                cte,
                bytes,
                body_range,
            )?);
        }
    }
    Ok(found)
}

/// The kind whose `Content-Type` sipsd writes ([`CmsKind::content_type`], byte for byte,
/// blanks around it aside), or `None`: parse it then. For these values this is what
/// [`ContentType::parse`] and [`ContentType::smime_type`] would say, without allocating.
fn own_smime_content_type(value: &str) -> Option<CmsKind> {
    let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let rest = value.strip_prefix("application/pkcs7-mime; smime-type=")?;
    let (smime_type, tail) = rest.split_once(';')?;
    if tail != " name=smime.p7m" {
        return None;
    }
    CmsKind::ALL
        .into_iter()
        .find(|k| k.smime_type() == smime_type)
}

/// The inner header a user agent's body starts with when it is SDP ([`mime_entity`] writes
/// it so): read without parsing, as [`parse_inner_type`] would read it.
const SDP_ENTITY_HEADER: &[u8] = b"Content-Type: application/sdp\r\n\r\n";

/// The plaintext after decryption: (content type, body). If it starts with MIME headers
/// (RFC 3261 §23.4.3), they are parsed and the type is their `Content-Type` in canonical form
/// (see [`ContentType`]'s `Display`), or `text/plain; charset=us-ascii` when there is none;
/// otherwise the type is `application/sdp` if the plaintext starts with `v=0`, else
/// `application/octet-stream`. A transfer encoding other than binary/8bit/7bit inside the
/// plaintext is refused ([`BodyError::UnsupportedTransferEncoding`]): the body is returned
/// borrowed, undecoded.
pub fn parse_inner(plain: &[u8]) -> Result<(String, &[u8]), BodyError> {
    parse_inner_type(plain).map(|(ct, body)| (ct.into_canonical(), body))
}

/// [`parse_inner`] with the content type parsed (what the caller reads it from, without
/// parsing its text again).
pub fn parse_inner_type(plain: &[u8]) -> Result<(ContentType, &[u8]), BodyError> {
    if let Some(body) = plain.strip_prefix(SDP_ENTITY_HEADER) {
        let sdp = ContentType {
            media: "application/sdp".to_owned(),
            params: Vec::new(),
        };
        return Ok((sdp, body));
    }
    parse_inner_general(plain)
}

/// [`parse_inner_type`] without the shortcut for [`SDP_ENTITY_HEADER`].
fn parse_inner_general(plain: &[u8]) -> Result<(ContentType, &[u8]), BodyError> {
    if headers::starts_with_field(plain) {
        let (headers, offset) = Headers::parse(plain)?;
        let ct = match headers.get("content-type") {
            Some(v) => ContentType::parse(v)?,
            None => default_content_type(),
        };
        if let Some(cte) = headers.get("content-transfer-encoding") {
            if !transfer::is_identity(cte) {
                return Err(BodyError::UnsupportedTransferEncoding(
                    cte.chars().take(64).collect(),
                ));
            }
        }
        return Ok((ct, plain.get(offset..).unwrap_or_default()));
    }
    let media = if plain.starts_with(b"v=0") {
        "application/sdp"
    } else {
        "application/octet-stream"
    };
    Ok((
        ContentType {
            media: media.to_owned(),
            params: Vec::new(),
        },
        plain,
    ))
}

#[cfg(test)]
mod tests;
