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
        decode_base64(data).map(Cow::Owned)
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

/// Undoes base64 (RFC 2045 §6.8) with blanks ignored anywhere, exactly as the `base64` crate's
/// `STANDARD.decode` of the input without its blanks (strict padding, no trailing bits): the
/// decoding itself is `base64-simd`'s strict STANDARD engine (AVX2/SSE where the CPU has them),
/// in place; the tests below hold the two crates to the same result on every input.
///
/// Bodies come in lines: the lines, trimmed at their ends, are joined and decoded in one call.
/// When that text has no blank left it is the input without its blanks, so the result is the
/// same; a blank inside a line stays in it and the engine refuses it, and only then is the
/// input filtered byte by byte and decoded again (rare: no encoder writes blanks inside a
/// line). Because only blanks are ever dropped, where the lines are cut does not change the
/// result, only the cost: an encoder writes lines of one width, so the next line end is looked
/// for first where the last line's width puts it (one byte compared), and searched for only
/// when it is not there.
fn decode_base64(data: &[u8]) -> Result<Vec<u8>, BodyError> {
    let mut joined = Vec::with_capacity(data.len());
    let mut rest = data;
    // The width of the last line with its LF.
    let mut width = 0usize;
    while !rest.is_empty() {
        let end = match rest.get(width.wrapping_sub(1)) {
            Some(b'\n') if width > 0 => Some(width - 1),
            _ => memchr::memchr(b'\n', rest),
        };
        let (line, next) = match end {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        width = end.map_or(0, |i| i + 1);
        joined.extend_from_slice(trim_blanks(line));
        rest = next;
    }
    match base64_simd::STANDARD.decode_inplace(&mut joined) {
        Ok(out) => {
            let len = out.len();
            joined.truncate(len);
            Ok(joined)
        }
        Err(_) => {
            let mut all = without_blanks(data);
            let len = base64_simd::STANDARD
                .decode_inplace(&mut all)
                .map_err(|_| BodyError::BadBase64)?
                .len();
            all.truncate(len);
            Ok(all)
        }
    }
}

/// `line` without the blanks at either end.
fn trim_blanks(line: &[u8]) -> &[u8] {
    // What encoders write: no blank at either end but the CR of a CRLF.
    let text = line.strip_suffix(b"\r").unwrap_or(line);
    match (text.first(), text.last()) {
        (Some(&a), Some(&z)) if !is_blank(a) && !is_blank(z) => text,
        _ => trim_blanks_slow(line),
    }
}

/// [`trim_blanks`] byte by byte, for a line that does not simply end in CR.
fn trim_blanks_slow(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| !is_blank(b))
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|&b| !is_blank(b))
        .map_or(start, |i| i + 1);
    line.get(start..end).unwrap_or_default()
}

/// `data` without blanks (the general path of [`decode_base64`]; mostly its last line).
fn without_blanks(data: &[u8]) -> Vec<u8> {
    data.iter().copied().filter(|&b| !is_blank(b)).collect()
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

    /// xorshift64*: the same inputs on every run (a test's own, not for keys).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn pick(&mut self, from: &[u8]) -> u8 {
            from[self.below(from.len())]
        }
    }

    /// Blanks as they come: CRLF and LF line ends, spaces and tabs.
    const BLANKS: &[&[u8]] = &[b"\r\n", b"\n", b" ", b"\t", b"\r", b"  \r\n", b"\r\n\r\n"];

    /// Base64 of random bytes laid out in lines of one random width (a multiple of 4 or not)
    /// or with blanks at random places, or both.
    fn laid_out(rng: &mut Rng) -> Vec<u8> {
        let data: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
        let text = STANDARD.encode(&data);
        let width = [76, 64, 4, 8, 1 + rng.below(90)][rng.below(5)];
        let scatter = rng.below(3) == 0;
        let mut out = Vec::new();
        if rng.below(4) == 0 {
            out.extend_from_slice(BLANKS[rng.below(BLANKS.len())]);
        }
        for (i, &c) in text.as_bytes().iter().enumerate() {
            if i > 0 && i % width == 0 {
                out.extend_from_slice(if rng.below(8) == 0 {
                    BLANKS[rng.below(BLANKS.len())]
                } else {
                    b"\r\n"
                });
            }
            if scatter && rng.below(20) == 0 {
                out.extend_from_slice(BLANKS[rng.below(BLANKS.len())]);
            }
            out.push(c);
        }
        if rng.below(2) == 0 {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// A few edits: bytes replaced, inserted or dropped (base64 characters, padding, blanks,
    /// other alphabets' characters, controls, high bytes), or the text cut short.
    fn mutated(rng: &mut Rng, mut input: Vec<u8>) -> Vec<u8> {
        const POOL: &[u8] = b"AQgw/+09=== \t\r\n-_*.\x00\x0b\x0c\x80\xff";
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(input.len() + 1);
            match rng.below(4) {
                0 if at < input.len() => input[at] = rng.pick(POOL),
                1 => input.insert(at, rng.pick(POOL)),
                2 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.truncate(at),
            }
        }
        input
    }

    #[test]
    fn one_pass_decoder_matches_filter_then_standard() {
        let (mut cases, mut accepted, mut refused, mut bytes) = (0, 0, 0, 0);
        let mut check = |input: &[u8]| {
            let filtered: Vec<u8> = input.iter().copied().filter(|&b| !is_blank(b)).collect();
            let want = STANDARD.decode(&filtered).ok();
            let got = decode(Some("base64"), input).ok().map(Cow::into_owned);
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
            cases += 1;
            bytes += input.len();
            if want.is_some() {
                accepted += 1;
            } else {
                refused += 1;
            }
        };
        // Padding or a short quad in a line before the last, stray bytes at line ends.
        for edge in [
            &b"QQ==\r\nQUJD\r\n"[..],
            b"QUJD\r\nQQ==\r\n",
            b"QUJD\r\n=\r\n",
            b"QUJDQQ=A\r\n",
            b"QUJD QUJD\r\nQQ==",
            b"QUJ\r\nDQUJD\r\n",
            b"QUJD\r\nQUJ\r\nD\r\n",
            b"QUJD\r\n\x00\r\n",
            b"====\r\n",
            b"QR==\r\n",
            b"QUI=\r\n",
            b"QUJ=\r\n",
            b"QQ\r\n",
            b"QQ=\r\n",
            b"QQ===\r\n",
            b"QUJD====\r\n",
            b"QUJD\r\nQUJ=\r\nQUJD\r\n",
            b"-_-_\r\n",
            b" \t\r\n\r\n",
            // A line end where the last line's width puts one, and an earlier one: the line
            // taken at the predicted end holds an LF, which only blanks-dropping may remove.
            b"QUJD\r\nQ\nQ=\r\n",
            b"QUJD\nQ\nQ=\nQUJD",
            b"QUJD\r\n\r\n\r\nQUJD\r\n",
            b"QUJD\r\nQUJD \r\n QUJ\r\nD\r\n",
        ] {
            check(edge);
        }
        let mut rng = Rng(0x5EED_B64B_0D1E_5000);
        for i in 0..20_000 {
            let valid = laid_out(&mut rng);
            if i % 2 == 0 {
                check(&valid);
            } else {
                check(&mutated(&mut rng, valid));
            }
        }
        println!(
            "{cases} inputs ({bytes} bytes; laid out in lines or with scattered blanks, half \
             of them mutated): decode = STANDARD.decode(blanks filtered) on all, \
             {accepted} accepted, {refused} refused by both"
        );
        assert!(
            accepted > 10_000 && refused > 3_000,
            "both outcomes exercised"
        );
    }

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
        println!("blanks dropped as expected = byte filter on 5 inputs (CRLF lines, inner blanks, empty)");
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
