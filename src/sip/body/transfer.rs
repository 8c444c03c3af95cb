//! `Content-Transfer-Encoding` (RFC 2045 §6): identity encodings and base64.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::BodyError;

/// Longest encoding name echoed back in [`BodyError::UnsupportedTransferEncoding`].
const MAX_ECHO: usize = 64;

/// Base64 line length used when encoding (RFC 2045 §6.8 allows at most 76).
const LINE: usize = 76;

/// Whether `cte` names base64 (case-insensitive).
pub(crate) fn is_base64(cte: &str) -> bool {
    cte.trim().eq_ignore_ascii_case("base64")
}

/// Undoes the transfer encoding `cte` (`None` means binary, the SIP default, RFC 3261 §7.4).
/// `binary`, `8bit` and `7bit` are identities; `base64` ignores line breaks and blanks.
pub(crate) fn decode<'a>(cte: Option<&str>, data: &'a [u8]) -> Result<Cow<'a, [u8]>, BodyError> {
    let Some(cte) = cte.map(str::trim) else {
        return Ok(Cow::Borrowed(data));
    };
    if is_identity(cte) {
        Ok(Cow::Borrowed(data))
    } else if is_base64(cte) {
        STANDARD
            .decode(without_blanks(data))
            .map(Cow::Owned)
            .map_err(|_| BodyError::BadBase64)
    } else {
        Err(BodyError::UnsupportedTransferEncoding(
            cte.chars().take(MAX_ECHO).collect(),
        ))
    }
}

/// Whether `b` is a blank base64 ignores between its characters (line breaks, spaces, tabs).
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `data` without blanks, sized once. Base64 bodies come in lines (76 characters and CRLF):
/// each line is copied whole, and only a line with blanks inside is filtered byte by byte.
fn without_blanks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split(|&b| b == b'\n') {
        let start = line
            .iter()
            .position(|&b| !is_blank(b))
            .unwrap_or(line.len());
        let end = line
            .iter()
            .rposition(|&b| !is_blank(b))
            .map_or(start, |i| i + 1);
        let Some(run) = line.get(start..end) else {
            continue;
        };
        if run.iter().any(|&b| is_blank(b)) {
            out.extend(run.iter().copied().filter(|&b| !is_blank(b)));
        } else {
            out.extend_from_slice(run);
        }
    }
    out
}

/// Whether `cte` leaves the bytes as they are.
pub(crate) fn is_identity(cte: &str) -> bool {
    ["binary", "8bit", "7bit"]
        .iter()
        .any(|e| e.eq_ignore_ascii_case(cte.trim()))
}

/// Base64 in lines of 76 characters, each ended by CRLF.
pub(crate) fn encode_base64(data: &[u8]) -> Vec<u8> {
    let text = STANDARD.encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / LINE * 2 + 2);
    for chunk in text.as_bytes().chunks(LINE) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_are_dropped_wherever_they_are() {
        for (input, want) in [
            (&b"QUJD\r\nREVG\r\n"[..], &b"QUJDREVG"[..]),
            (b"  QU JD \t\n\r\nRE\rVG", b"QUJDREVG"),
            (b"\n\n", b""),
            (b"", b""),
            (b"QUJDREVG", b"QUJDREVG"),
        ] {
            assert_eq!(without_blanks(input), want, "{input:?}");
            let filtered: Vec<u8> = input.iter().copied().filter(|&b| !is_blank(b)).collect();
            assert_eq!(without_blanks(input), filtered, "{input:?}");
        }
        println!("line-wise copy = byte filter on 5 inputs (CRLF lines, inner blanks, empty)");
    }

    #[test]
    fn base64_with_line_breaks_round_trips() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let enc = encode_base64(&data);
        assert!(enc.split(|&c| c == b'\n').all(|l| l.len() <= LINE + 1));
        let dec = decode(Some(" BASE64 "), &enc).unwrap();
        println!(
            "1000 bytes -> {} base64 bytes in lines -> decoded back",
            enc.len()
        );
        assert_eq!(&*dec, &data[..]);
    }

    #[test]
    fn identities_borrow() {
        for cte in [None, Some("binary"), Some("8BIT"), Some(" 7bit")] {
            let out = decode(cte, b"\x30\x80").unwrap();
            assert!(matches!(out, Cow::Borrowed(b"\x30\x80")), "{cte:?}");
        }
        println!("binary/8bit/7bit/absent leave bytes untouched");
    }

    #[test]
    fn bad_base64_and_unknown_encodings() {
        for bad in [&b"MII*AAA="[..], b"QQ=", b"QUJD\x00", b"Q"] {
            let r = decode(Some("base64"), bad);
            println!("{:?} -> {r:?}", String::from_utf8_lossy(bad));
            assert!(matches!(r, Err(BodyError::BadBase64)));
        }
        let r = decode(Some("quoted-printable"), b"x");
        println!("quoted-printable -> {r:?}");
        assert!(
            matches!(r, Err(BodyError::UnsupportedTransferEncoding(ref e)) if e == "quoted-printable")
        );
        let long = "x".repeat(1000);
        match decode(Some(&long), b"") {
            Err(BodyError::UnsupportedTransferEncoding(e)) => assert_eq!(e.len(), MAX_ECHO),
            other => panic!("unexpected {other:?}"),
        }
    }
}
