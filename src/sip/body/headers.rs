//! MIME entity header blocks (RFC 2045 §3, RFC 5322 §2.2): `name ":" value CRLF`, folded
//! continuation lines, an empty line before the body. Bare LF line ends are accepted too.

use super::BodyError;

/// Most header fields accepted in one entity.
pub(crate) const MAX_FIELDS: usize = 64;

/// Header field name characters: the SIP/MIME `token` set (RFC 3261 §25.1), which excludes
/// `=` so that an SDP line such as `a=rtpmap:0 ...` is never taken for a header.
fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// One line of `data` starting at `start`: (line without CR LF, offset of the next line).
fn line_at(data: &[u8], start: usize) -> (&[u8], usize) {
    let rest = data.get(start..).unwrap_or_default();
    match rest.iter().position(|&c| c == b'\n') {
        Some(i) => {
            let line = rest.get(..i).unwrap_or_default();
            (line.strip_suffix(b"\r").unwrap_or(line), start + i + 1)
        }
        None => (rest, data.len()),
    }
}

/// Whether `line` is `name ":" ...` with a non-empty token name directly before the colon.
pub(crate) fn is_field_line(line: &[u8]) -> bool {
    match line.iter().position(|&c| c == b':') {
        Some(0) | None => false,
        Some(i) => line
            .get(..i)
            .is_some_and(|n| n.iter().all(|&c| is_name_char(c))),
    }
}

/// Whether `data` begins with a header field line.
pub(crate) fn starts_with_field(data: &[u8]) -> bool {
    is_field_line(line_at(data, 0).0)
}

/// A parsed header block.
#[derive(Debug, Default)]
pub(crate) struct Headers {
    /// (lowercase name, unfolded and trimmed value)
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The first field named `name` (case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses the header block at the start of `data`. Returns the headers and the offset of
    /// the body. An entity starting with an empty line has no headers; one without an empty
    /// line is all headers and has an empty body (RFC 2046 §5.1.1 `body-part`).
    pub(crate) fn parse(data: &[u8]) -> Result<(Headers, usize), BodyError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let (line, next) = line_at(data, pos);
            pos = next;
            if line.is_empty() {
                return Ok((Headers { fields }, pos));
            }
            let text = std::str::from_utf8(line)
                .map_err(|_| BodyError::BadHeader("header line is not UTF-8"))?;
            if text.starts_with([' ', '\t']) {
                let (_, value) = fields
                    .last_mut()
                    .ok_or(BodyError::BadHeader("continuation line before any field"))?;
                let more = text.trim();
                if !more.is_empty() {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(more);
                }
                continue;
            }
            let (name, value) = text
                .split_once(':')
                .ok_or(BodyError::BadHeader("header line without ':'"))?;
            // RFC 5322 §4.5.3 obsolete syntax allows blanks before the colon.
            let name = name.trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_name_char) {
                return Err(BodyError::BadHeader("bad header field name"));
            }
            if fields.len() == MAX_FIELDS {
                return Err(BodyError::BadHeader("too many header fields"));
            }
            fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok((Headers { fields }, data.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folded_fields_and_finds_body() {
        let data =
            b"Content-Type: multipart/mixed;\r\n\tboundary=xyz\r\ncontent-id : <a@b>\r\n\r\nBODY";
        let (h, off) = Headers::parse(data).unwrap();
        println!("{h:?}, body at {off}");
        assert_eq!(h.get("CONTENT-TYPE"), Some("multipart/mixed; boundary=xyz"));
        assert_eq!(h.get("Content-ID"), Some("<a@b>"));
        assert_eq!(data.get(off..), Some(&b"BODY"[..]));
    }

    #[test]
    fn no_headers_and_no_body_cases() {
        let (h, off) = Headers::parse(b"\r\nraw").unwrap();
        assert!(h.get("content-type").is_none());
        assert_eq!(off, 2);
        let (h, off) = Headers::parse(b"Content-Type: text/plain").unwrap();
        assert_eq!(h.get("content-type"), Some("text/plain"));
        assert_eq!(off, 24);
        println!("leading empty line = no headers; no empty line = headers only");
    }

    #[test]
    fn rejects_bad_blocks() {
        for bad in [
            &b" folded first\r\n\r\n"[..],
            b"no colon here\r\n\r\n",
            b"bad name: x\r\n\r\n",
            b"X-A: \xff\r\n\r\n",
        ] {
            let r = Headers::parse(bad);
            println!("{:?} -> {r:?}", String::from_utf8_lossy(bad));
            assert!(matches!(r, Err(BodyError::BadHeader(_))));
        }
        let many = "X-A: 1\r\n".repeat(MAX_FIELDS + 1) + "\r\n";
        assert!(Headers::parse(many.as_bytes()).is_err());
        println!("{} fields rejected", MAX_FIELDS + 1);
    }

    #[test]
    fn field_line_detection() {
        assert!(starts_with_field(
            b"Content-Type: application/sdp\r\n\r\nv=0"
        ));
        assert!(!starts_with_field(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"));
        assert!(!starts_with_field(b"a=rtpmap:0 PCMU/8000\r\n"));
        assert!(!starts_with_field(b"\x30\x82\x03\xff"));
        println!("MIME header lines told apart from SDP and DER");
    }
}
