//! `multipart/signed` entities (RFC 1847, RFC 8551 §3.5.3): a MIME entity and its detached
//! S/MIME signature as two parts. Building one around an entity a user agent sends, and
//! reading one out of a decrypted body (untrusted input: the same multipart parser and limits
//! as every body).
//!
//! ```text
//! Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;
//!     boundary=sipsd-...
//!
//! --sipsd-...
//! <the signed entity: its headers, an empty line, its body>
//! --sipsd-...
//! Content-Type: application/pkcs7-signature; name=smime.p7s
//! Content-Transfer-Encoding: base64
//! Content-Disposition: attachment; filename=smime.p7s
//!
//! <base64 of the SignedData>
//! --sipsd-...--
//! ```
//!
//! The signed bytes are the first part exactly as it stands between its delimiters (the line
//! break before a delimiter belongs to the delimiter), as OpenSSL writes and checks them.

use zeroize::Zeroizing;

use super::build::{base64_lines, boundary_candidate, contains};
use super::headers::Headers;
use super::{multipart, transfer, BodyError, ContentType};

/// The signature part's `Content-Type`.
pub const SIGNATURE_CONTENT_TYPE: &str = "application/pkcs7-signature; name=smime.p7s";

/// A `multipart/signed` entity of `entity` and its detached signature `signature` (DER):
/// `(Content-Type value, body)`, the body in zeroizing memory (the entity is plaintext). The
/// boundary occurs in neither part.
pub fn multipart_signed(entity: &[u8], signature: &[u8]) -> (String, Zeroizing<Vec<u8>>) {
    let sig = base64_lines(signature);
    let mut attempt = 0;
    let boundary = loop {
        let b = boundary_candidate(attempt);
        if !contains(entity, b.as_bytes()) && !contains(&sig, b.as_bytes()) {
            break b;
        }
        attempt += 1;
    };
    let head = format!(
        "\r\n--{boundary}\r\nContent-Type: {SIGNATURE_CONTENT_TYPE}\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=smime.p7s\r\n\r\n"
    );
    let tail = format!("--{boundary}--\r\n");
    let len = 2 + boundary.len() + 2 + entity.len() + head.len() + sig.len() + tail.len();
    // Sized once: the buffer never reallocates, so no copy of the entity is left behind.
    let mut body = Zeroizing::new(Vec::with_capacity(len));
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(entity);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(&sig);
    body.extend_from_slice(tail.as_bytes());
    let content_type = format!(
        "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary={boundary}"
    );
    (content_type, body)
}

/// The two parts of a `multipart/signed` body.
pub struct SignedParts<'a> {
    /// The signed entity, as it stands in the body.
    pub entity: &'a [u8],
    /// The DER of its detached signature (transfer encoding undone).
    pub signature: Vec<u8>,
}

/// Reads the `multipart/signed` body `body` of type `ct` ([`ContentType::is_multipart_signed`]):
/// exactly two parts, the second of type `application/pkcs7-signature` (or its `x-` alias).
pub fn signed_parts<'a>(ct: &ContentType, body: &'a [u8]) -> Result<SignedParts<'a>, BodyError> {
    let boundary = ct.param("boundary").ok_or(BodyError::MissingBoundary)?;
    let parts = multipart::split(body, boundary, 2)?;
    let [first, second] = parts.as_slice() else {
        return Err(BodyError::BadMultipart(
            "multipart/signed needs exactly two parts",
        ));
    };
    let part = body.get(second.clone()).unwrap_or_default();
    let (headers, offset) = Headers::parse(part)?;
    let sig_ct = ContentType::parse(headers.get("content-type").unwrap_or("text/plain"))?;
    if sig_ct.media != "application/pkcs7-signature"
        && sig_ct.media != "application/x-pkcs7-signature"
    {
        return Err(BodyError::BadMultipart(
            "the second part of multipart/signed is not an S/MIME signature",
        ));
    }
    let signature = transfer::decode(
        headers.get("content-transfer-encoding"),
        part.get(offset..).unwrap_or_default(),
    )?
    .into_owned();
    Ok(SignedParts {
        entity: body.get(first.clone()).unwrap_or_default(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_and_read_back_the_same() {
        let entity = b"Content-Type: application/sdp\r\n\r\nv=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let sig = [0x30u8, 0x82, 0x01, 0x00, 7, 7, 7];
        let (ct, body) = multipart_signed(entity, &sig);
        let ct = ContentType::parse(&ct).unwrap();
        assert!(ct.is_multipart_signed());
        assert_eq!(ct.param("micalg"), Some("sha-256"));
        let parts = signed_parts(&ct, &body).unwrap();
        assert_eq!(parts.entity, entity);
        assert_eq!(parts.signature, sig);
        assert_eq!(body.capacity(), body.len(), "sized exactly once");
    }

    #[test]
    fn malformed_signed_bodies_are_refused() {
        let ct = ContentType::parse(
            "multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b",
        )
        .unwrap();
        for (what, body) in [
            ("one part", &b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"[..]),
            (
                "three parts",
                b"--b\r\n\r\na\r\n--b\r\n\r\nb\r\n--b\r\n\r\nc\r\n--b--\r\n",
            ),
            (
                "not a signature",
                b"--b\r\n\r\na\r\n--b\r\nContent-Type: text/plain\r\n\r\nb\r\n--b--\r\n",
            ),
            (
                "bad base64",
                b"--b\r\n\r\na\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n*!*\r\n--b--\r\n",
            ),
        ] {
            assert!(signed_parts(&ct, body).is_err(), "{what}");
        }
        let other = ContentType::parse(
            "multipart/signed; protocol=\"application/pgp-signature\"; boundary=b",
        )
        .unwrap();
        assert!(!other.is_multipart_signed(), "PGP/MIME is not S/MIME");
    }
}
