//! Splitting `multipart/*` bodies into their parts (RFC 2046 §5.1.1).
//!
//! A delimiter is `--boundary` at the start of the body or of a line, followed by optional
//! blanks and a line end; the close delimiter is `--boundary--`. The line break before a
//! delimiter belongs to the delimiter, not to the part. Bare LF line ends are accepted.

use std::ops::Range;

use super::BodyError;

/// Longest boundary allowed by RFC 2046 §5.1.1.
pub(crate) const MAX_BOUNDARY: usize = 70;

/// Checks a `boundary` parameter: 1 to 70 printable ASCII characters or spaces, not ending
/// with a space (RFC 2046 §5.1.1 `boundary`; the `bchars` set is not enforced further).
pub(crate) fn check_boundary(b: &str) -> Result<(), BodyError> {
    let ok = !b.is_empty()
        && b.len() <= MAX_BOUNDARY
        && !b.ends_with(' ')
        && b.bytes().all(|c| c == b' ' || c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(BodyError::BadMultipart("invalid boundary parameter"))
    }
}

/// A delimiter line found in the body.
struct Delimiter {
    /// Offset of the first `-`.
    start: usize,
    /// Offset just after the line end (or the end of the body).
    after: usize,
    /// `--boundary--`.
    close: bool,
}

/// The next delimiter line at or after `from`, which must be the start of a line.
fn next_delimiter(body: &[u8], mut from: usize, delim: &[u8]) -> Option<Delimiter> {
    while from < body.len() {
        let rest = body.get(from..).unwrap_or_default();
        let line_len = rest.iter().position(|&c| c == b'\n');
        if let Some(tail) = rest.strip_prefix(delim) {
            let end_of_line = line_len.map_or(body.len(), |i| from + i + 1);
            if tail.starts_with(b"--") {
                return Some(Delimiter {
                    start: from,
                    after: end_of_line,
                    close: true,
                });
            }
            let padding = tail
                .iter()
                .take_while(|&&c| c == b' ' || c == b'\t')
                .count();
            let after_pad = tail.get(padding..).unwrap_or_default();
            if after_pad.is_empty()
                || after_pad.starts_with(b"\r\n")
                || after_pad.starts_with(b"\n")
            {
                return Some(Delimiter {
                    start: from,
                    after: end_of_line,
                    close: false,
                });
            }
        }
        from = match line_len {
            Some(i) => from + i + 1,
            None => body.len(),
        };
    }
    None
}

/// The end of a part's content that is followed by a delimiter at `delim_start`: the line
/// break before the delimiter is removed; never before `content_start`.
fn content_end(body: &[u8], content_start: usize, delim_start: usize) -> usize {
    let mut end = delim_start;
    if end > 0 && body.get(end - 1) == Some(&b'\n') {
        end -= 1;
        if end > 0 && body.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
    }
    end.max(content_start)
}

/// The ranges (headers and body) of the parts of a multipart body. Fails with
/// [`BodyError::TooManyParts`] as soon as more than `max_parts` parts are seen.
pub(crate) fn split(
    body: &[u8],
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<Range<usize>>, BodyError> {
    check_boundary(boundary)?;
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary.as_bytes());

    let first =
        next_delimiter(body, 0, &delim).ok_or(BodyError::BadMultipart("no delimiter line"))?;
    if first.close {
        return Err(BodyError::BadMultipart("no body parts"));
    }
    let mut parts = Vec::new();
    let mut start = first.after;
    loop {
        let next = next_delimiter(body, start, &delim)
            .ok_or(BodyError::BadMultipart("missing close delimiter"))?;
        if parts.len() == max_parts {
            return Err(BodyError::TooManyParts(parts.len() + 1));
        }
        parts.push(start..content_end(body, start, next.start));
        if next.close {
            return Ok(parts);
        }
        start = next.after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(body: &'a [u8], ranges: &[Range<usize>]) -> Vec<&'a str> {
        ranges
            .iter()
            .map(|r| std::str::from_utf8(&body[r.clone()]).unwrap())
            .collect()
    }

    #[test]
    fn splits_with_preamble_padding_and_epilogue() {
        let body = b"preamble\r\n--b1 \t\r\nA: 1\r\n\r\none\r\n--b1\r\n\r\ntwo\r\n\r\n--b1--  \r\nepilogue";
        let parts = split(body, "b1", 16).unwrap();
        let t = texts(body, &parts);
        println!("parts: {t:?}");
        assert_eq!(t, ["A: 1\r\n\r\none", "\r\ntwo\r\n"]);
    }

    #[test]
    fn lf_only_and_boundary_prefix_lines() {
        let body = b"--xx\nA: 1\n\n--xxy is not a delimiter\n--xx z neither\n--xx--\n";
        let parts = split(body, "xx", 16).unwrap();
        let t = texts(body, &parts);
        println!("parts: {t:?}");
        assert_eq!(t, ["A: 1\n\n--xxy is not a delimiter\n--xx z neither"]);
    }

    #[test]
    fn empty_part_is_kept() {
        let body = b"--b\r\n--b--";
        let parts = split(body, "b", 16).unwrap();
        println!("ranges: {parts:?}");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0], 5..5);
    }

    #[test]
    fn structural_errors() {
        let cases: [(&[u8], &str); 4] = [
            (b"no delimiter at all", "no delimiter line"),
            (b"--b--\r\n", "no body parts"),
            (b"--b\r\nA: 1\r\n\r\ntruncated", "missing close delimiter"),
            (b"x\r\n--b\r\n\r\n--b\r\n", "missing close delimiter"),
        ];
        for (body, why) in cases {
            let r = split(body, "b", 16);
            println!("{:?} -> {r:?}", String::from_utf8_lossy(body));
            assert!(matches!(r, Err(BodyError::BadMultipart(w)) if w == why));
        }
        for b in ["", "x ", &"a".repeat(71), "a\r\nb"] {
            assert!(matches!(
                split(b"--x--", b, 16),
                Err(BodyError::BadMultipart("invalid boundary parameter"))
            ));
        }
        println!("empty, overlong, space-ended and CRLF boundaries rejected");
    }

    #[test]
    fn part_count_limit() {
        let mut body = Vec::new();
        for _ in 0..1000 {
            body.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        body.extend_from_slice(b"--b--");
        let r = split(&body, "b", 16);
        println!("1000 parts, limit 16 -> {r:?}");
        assert!(matches!(r, Err(BodyError::TooManyParts(17))));
        assert_eq!(split(&body, "b", 1000).unwrap().len(), 1000);
    }
}
