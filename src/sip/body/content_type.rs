//! `Content-Type` values (RFC 2045 §5.1, RFC 3261 §20.15) and the S/MIME types (RFC 8551 §3.2,
//! RFC 5083, sipsd's in-dialog profile).

use super::BodyError;
use crate::crypto::cms::CmsKind;

/// Longest `Content-Type` value accepted, in bytes.
pub(crate) const MAX_CONTENT_TYPE: usize = 4096;
/// Most parameters accepted on one `Content-Type`.
pub(crate) const MAX_PARAMS: usize = 32;

/// A parsed `Content-Type` value: `type "/" subtype *(";" parameter)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    /// Lowercase `type/subtype`.
    pub media: String,
    /// Parameters in order; names lowercase, values unquoted (escapes resolved), case kept.
    pub params: Vec<(String, String)>,
}

/// RFC 2045 `tspecials`; a token is any printable, non-space ASCII character outside them.
fn is_token_char(c: u8) -> bool {
    // Printable ASCII (0x21..=0x7e) less the tspecials, as ranges: this runs per byte.
    matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'^'..=b'~')
}

fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// A byte cursor over a header value.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_lws(&mut self) {
        while self.s.get(self.pos).is_some_and(|&c| is_lws(c)) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// A quoted-string; the cursor sits on the opening quote.
    fn quoted(&mut self) -> Result<String, BodyError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(bad("unbalanced quote")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self.s.get(self.pos + 1).copied();
                    match escaped {
                        Some(c) if c != b'\r' && c != b'\n' => out.push(c),
                        _ => return Err(bad("bad escape in quoted-string")),
                    }
                    self.pos += 2;
                }
                Some(c) if c == b'\t' || (c >= 0x20 && c != 0x7f) => {
                    out.push(c);
                    self.pos += 1;
                }
                Some(b'\r' | b'\n') => {
                    // Folded line inside a quoted-string: keep it as one space.
                    self.pos += 1;
                }
                Some(_) => return Err(bad("control character in quoted-string")),
            }
        }
        String::from_utf8(out).map_err(|_| bad("quoted-string is not UTF-8"))
    }
}

fn bad(why: &str) -> BodyError {
    BodyError::BadContentType(why.to_owned())
}

fn ascii_lower(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    push_lower(&mut out, b);
    out
}

/// Appends the token `b` in lowercase (token bytes are ASCII, so nothing is lost).
fn push_lower(out: &mut String, b: &[u8]) {
    let start = out.len();
    out.push_str(std::str::from_utf8(b).unwrap_or_default());
    if let Some(added) = out.get_mut(start..) {
        added.make_ascii_lowercase();
    }
}

impl ContentType {
    /// Parses a `Content-Type` header value. Whitespace (including folding) is allowed around
    /// `/`, `;` and `=`; empty parameters (`;;`, a trailing `;`) are skipped.
    pub fn parse(s: &str) -> Result<ContentType, BodyError> {
        if s.len() > MAX_CONTENT_TYPE {
            return Err(bad("value too long"));
        }
        let mut c = Cursor {
            s: s.as_bytes(),
            pos: 0,
        };
        c.skip_lws();
        let ty = c.token();
        if ty.is_empty() {
            return Err(bad("missing media type"));
        }
        c.skip_lws();
        if c.peek() != Some(b'/') {
            return Err(bad("missing '/' in media type"));
        }
        c.pos += 1;
        c.skip_lws();
        let sub = c.token();
        if sub.is_empty() {
            return Err(bad("missing media subtype"));
        }
        let mut media = String::with_capacity(ty.len() + 1 + sub.len());
        push_lower(&mut media, ty);
        media.push('/');
        push_lower(&mut media, sub);
        let mut params = Vec::new();
        loop {
            c.skip_lws();
            match c.peek() {
                None => break,
                Some(b';') => c.pos += 1,
                Some(_) => return Err(bad("expected ';' between parameters")),
            }
            c.skip_lws();
            if matches!(c.peek(), None | Some(b';')) {
                continue;
            }
            let name = c.token();
            if name.is_empty() {
                return Err(bad("bad parameter name"));
            }
            c.skip_lws();
            if c.peek() != Some(b'=') {
                return Err(bad("parameter without '='"));
            }
            c.pos += 1;
            c.skip_lws();
            let value = if c.peek() == Some(b'"') {
                c.quoted()?
            } else {
                let v = c.token();
                if v.is_empty() {
                    return Err(bad("empty parameter value"));
                }
                // Token bytes are ASCII.
                String::from_utf8_lossy(v).into_owned()
            };
            if params.len() == MAX_PARAMS {
                return Err(bad("too many parameters"));
            }
            params.push((ascii_lower(name), value));
        }
        Ok(ContentType { media, params })
    }

    /// The value of the first parameter named `name` (compared case-insensitively).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the media type is `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.media.starts_with("multipart/")
    }

    /// Whether this is an S/MIME CMS object: `application/pkcs7-mime` (RFC 8551 §3.2) or its
    /// legacy alias `application/x-pkcs7-mime` (RFC 8551 §3.2.1).
    pub fn is_pkcs7_mime(&self) -> bool {
        self.media == "application/pkcs7-mime" || self.media == "application/x-pkcs7-mime"
    }

    /// Whether this is an S/MIME signed entity: `multipart/signed` whose `protocol` is
    /// `application/pkcs7-signature` or its legacy alias `application/x-pkcs7-signature`
    /// (RFC 1847 §2.1, RFC 8551 §3.5.3), compared without regard to case.
    pub fn is_multipart_signed(&self) -> bool {
        self.media == "multipart/signed"
            && self.param("protocol").is_some_and(|p| {
                let p = p.trim();
                p.eq_ignore_ascii_case("application/pkcs7-signature")
                    || p.eq_ignore_ascii_case("application/x-pkcs7-signature")
            })
    }

    /// The `smime-type` parameter classified: `None` if absent, `Some(None)` if present but not
    /// one of the encryption types (e.g. `signed-data`), `Some(Some(t))` otherwise.
    pub(crate) fn smime_type(&self) -> Option<Option<CmsKind>> {
        self.param("smime-type").map(CmsKind::from_smime_type)
    }
}

impl ContentType {
    /// The canonical form (`Display`), without formatting when there are no parameters.
    pub fn into_canonical(self) -> String {
        if self.params.is_empty() {
            self.media
        } else {
            self.to_string()
        }
    }
}

impl std::fmt::Display for ContentType {
    /// Canonical form: lowercase media type, parameters quoted when they are not tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.media)?;
        for (n, v) in &self.params {
            if !v.is_empty() && v.bytes().all(is_token_char) {
                write!(f, "; {n}={v}")?;
            } else {
                write!(f, "; {n}=\"")?;
                for ch in v.chars() {
                    if ch == '"' || ch == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{ch}")?;
                }
                f.write_str("\"")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smime_content_type() {
        let ct = ContentType::parse(
            "Application/PKCS7-MIME ; smime-type=authEnveloped-data;\r\n name=\"smime.p7m\"",
        )
        .unwrap();
        println!("parsed: {ct:?}");
        assert_eq!(ct.media, "application/pkcs7-mime");
        assert_eq!(ct.param("SMIME-Type"), Some("authEnveloped-data"));
        assert_eq!(ct.param("name"), Some("smime.p7m"));
        assert!(ct.is_pkcs7_mime());
        assert!(!ct.is_multipart());
        assert_eq!(ct.smime_type(), Some(Some(CmsKind::AuthEnvelopedData)));
    }

    #[test]
    fn quoted_boundary_with_escapes_and_separators() {
        let ct = ContentType::parse(r#"multipart/mixed; boundary="a;b,c \"q\" =d"; x=1;"#).unwrap();
        println!("boundary: {:?}", ct.param("boundary"));
        assert!(ct.is_multipart());
        assert_eq!(ct.param("boundary"), Some(r#"a;b,c "q" =d"#));
        assert_eq!(ct.param("x"), Some("1"));
        let again = ContentType::parse(&ct.to_string()).unwrap();
        assert_eq!(again, ct);
        println!("display round-trips: {ct}");
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "application",
            "application/",
            "/sdp",
            "text/plain; charset",
            "text/plain; charset=",
            "text/plain; =x",
            "text/plain; a=\"unterminated",
            "text/plain garbage",
            "text/plain; a=\"x\\",
        ] {
            let r = ContentType::parse(bad);
            println!("{bad:?} -> {r:?}");
            assert!(matches!(r, Err(BodyError::BadContentType(_))), "{bad:?}");
        }
        let long = format!("text/plain; a={}", "x".repeat(MAX_CONTENT_TYPE));
        assert!(ContentType::parse(&long).is_err());
        let many = format!("text/plain{}", "; a=b".repeat(MAX_PARAMS + 1));
        assert!(ContentType::parse(&many).is_err());
        println!("overlong value and {} params rejected", MAX_PARAMS + 1);
    }

    #[test]
    fn smime_type_any_case() {
        for (v, want) in [
            ("enveloped-data", Some(CmsKind::EnvelopedData)),
            ("ENVELOPED-DATA", Some(CmsKind::EnvelopedData)),
            ("authenveloped-data", Some(CmsKind::AuthEnvelopedData)),
            ("AuthEnveloped-Data", Some(CmsKind::AuthEnvelopedData)),
            ("Encrypted-Data", Some(CmsKind::EncryptedData)),
            ("signed-data", None),
            ("certs-only", None),
        ] {
            println!("smime-type={v} -> {:?}", CmsKind::from_smime_type(v));
            assert_eq!(CmsKind::from_smime_type(v), want);
        }
        for t in [
            CmsKind::EnvelopedData,
            CmsKind::AuthEnvelopedData,
            CmsKind::EncryptedData,
        ] {
            let ct = ContentType::parse(&t.content_type()).unwrap();
            assert_eq!(ct.smime_type(), Some(Some(t)));
            assert_eq!(ct.param("name"), Some("smime.p7m"));
            println!("{} parses back", t.content_type());
        }
    }
}

#[cfg(test)]
mod token_tests {
    #[test]
    fn token_chars_are_printable_ascii_less_tspecials() {
        for c in 0u8..=255 {
            let expected = c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&c);
            assert_eq!(super::is_token_char(c), expected, "byte {c:#04x}");
        }
        println!("is_token_char agrees with RFC 2045 for all 256 bytes");
    }
}
