//! Building the bodies a user agent sends: the MIME entity that is encrypted (RFC 3261
//! §23.4.3), the S/MIME body with its headers, base64 as MIME writes it, and `multipart/mixed`
//! bodies (RFC 2046 §5.1). Parsing what arrives is the rest of [`crate::sip::body`].

use base64::Engine as _;
use zeroize::Zeroizing;

use super::{normalize_content_id, transfer};
use crate::crypto::cms::CmsKind;
use crate::sip::disclose::DisclosureRequest;

/// How a body is put into a SIP message.
#[derive(Clone, Debug)]
pub struct BodyOptions {
    /// Encrypt a MIME entity (`Content-Type: ...` + CRLF CRLF + body, RFC 3261 §23.4.3) rather
    /// than the bare body.
    pub inner_mime: bool,
    /// Send the DER base64-encoded (`Content-Transfer-Encoding: base64`) instead of binary.
    pub base64: bool,
    /// Put the encrypted body in a `multipart/mixed` part with this Content-ID.
    pub content_id: Option<String>,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            inner_mime: true,
            base64: false,
            content_id: None,
        }
    }
}

/// A body ready for a SIP message, with the headers that go with it.
#[derive(Clone, Debug)]
pub struct SipBody {
    /// Content-Type header value.
    pub content_type: String,
    /// Content-Transfer-Encoding header value, if any.
    pub transfer_encoding: Option<&'static str>,
    /// `Disclose-To` header value, if the offer names proxies explicitly.
    pub disclose_to: Option<String>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// A header value with CR, LF and other control characters replaced by spaces, so that a
/// value can never start a new header line.
fn header_safe(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A MIME entity `Content-Type: <ct>\r\n\r\n<body>` (the form RFC 3261 §23.4.3 encrypts).
pub fn mime_entity(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content_type.len() + body.len() + 20);
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(header_safe(content_type).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// A boundary candidate: random when the OS RNG answers, else numbered.
pub(super) fn boundary_candidate(attempt: usize) -> String {
    let mut r = [0u8; 12];
    match getrandom::fill(&mut r) {
        Ok(()) => {
            let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
            format!("sipsd-{hex}")
        }
        Err(_) => format!("sipsd-boundary-{attempt}"),
    }
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One part for [`build_multipart`]: (content type, Content-ID, transfer encoding, raw bytes).
pub type PartSpec = (String, Option<String>, Option<String>, Vec<u8>);

/// A `multipart/mixed` body from parts `(content_type, content_id, transfer_encoding, bytes)`;
/// returns (Content-Type header value with a fresh boundary, body). `bytes` are the raw part
/// contents: with a `base64` transfer encoding they are encoded here (so that
/// [`encrypted_parts`] gives them back as `der`); any other encoding is written as given with
/// the bytes unchanged. A Content-ID gets angle brackets if it has none. The boundary is
/// chosen so that it occurs in no part.
pub fn build_multipart(parts: &[PartSpec]) -> (String, Vec<u8>) {
    let mut entities: Vec<Vec<u8>> = Vec::with_capacity(parts.len());
    for (ct, cid, cte, bytes) in parts {
        let mut e = Vec::with_capacity(bytes.len() * 4 / 3 + 128);
        e.extend_from_slice(b"Content-Type: ");
        e.extend_from_slice(header_safe(ct).as_bytes());
        e.extend_from_slice(b"\r\n");
        if let Some(cid) = cid {
            e.extend_from_slice(b"Content-ID: <");
            e.extend_from_slice(header_safe(normalize_content_id(cid)).as_bytes());
            e.extend_from_slice(b">\r\n");
        }
        if let Some(cte) = cte {
            e.extend_from_slice(b"Content-Transfer-Encoding: ");
            e.extend_from_slice(header_safe(cte.trim()).as_bytes());
            e.extend_from_slice(b"\r\n");
        }
        e.extend_from_slice(b"\r\n");
        match cte {
            Some(cte) if transfer::is_base64(cte) => {
                e.extend_from_slice(&transfer::encode_base64(bytes));
            }
            _ => e.extend_from_slice(bytes),
        }
        entities.push(e);
    }
    // A part of n bytes holds fewer than n distinct candidates, so this ends.
    let mut attempt = 0;
    let boundary = loop {
        let b = boundary_candidate(attempt);
        if !entities.iter().any(|e| contains(e, b.as_bytes())) {
            break b;
        }
        attempt += 1;
    };
    let mut body = Vec::new();
    for e in &entities {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(e);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    (format!("multipart/mixed;boundary={boundary}"), body)
}

pub fn inner_bytes(content_type: &str, plaintext: &[u8], opts: &BodyOptions) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(if opts.inner_mime {
        mime_entity(content_type, plaintext)
    } else {
        plaintext.to_vec()
    })
}

/// Base64 as MIME writes it: lines of 76 characters, CRLF-terminated.
pub fn base64_lines(der: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38 + 2);
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn sip_body(
    der: Vec<u8>,
    kind: CmsKind,
    disclose: Option<&DisclosureRequest>,
    opts: &BodyOptions,
) -> SipBody {
    let disclose_to = disclose.map(DisclosureRequest::to_header_value);
    let transfer = opts.base64.then_some("base64");
    match &opts.content_id {
        None => SipBody {
            content_type: kind.content_type(),
            transfer_encoding: transfer,
            disclose_to,
            body: if opts.base64 { base64_lines(&der) } else { der },
        },
        Some(cid) => {
            let (content_type, body) = build_multipart(&[(
                kind.content_type(),
                Some(cid.clone()),
                transfer.map(str::to_string),
                der,
            )]);
            SipBody {
                content_type,
                transfer_encoding: None,
                disclose_to,
                body,
            }
        }
    }
}
