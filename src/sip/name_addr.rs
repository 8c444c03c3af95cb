//! The value of a From or To header (RFC 3261 §20.20, §20.39, grammar in §25.1): the URI and
//! the `tag` parameter, read in place.
//!
//! ```text
//! from-spec  = ( name-addr / addr-spec ) *( SEMI from-param )
//! name-addr  = [ display-name ] LAQUOT addr-spec RAQUOT
//! display-name = *(token LWS) / quoted-string
//! from-param = tag-param / generic-param
//! ```
//!
//! A SIP server that has not parsed the header hands its raw value over (`sd_msg.from`); this
//! is what turns it into the two facts sipsd uses, without allocating.

/// The URI and the tag of a From or To header value, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The URI: inside `<...>` for a name-addr, else the addr-spec up to the first `;`.
    pub uri: &'a [u8],
    /// The `tag` parameter's value; empty when there is none.
    pub tag: &'a [u8],
}

/// Linear white space inside a header value: blanks and the CRLF of a folded line.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `s` from its first byte that is not LWS.
fn skip_lws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_lws(b)).count();
    s.get(n..).unwrap_or_default()
}

/// `s` without its trailing LWS.
fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&b| is_lws(b)).count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// The length of the quoted string at the start of `s` (which starts with `"`), closing quote
/// included; `None` when it does not close. A backslash escapes the next byte (§25.1
/// quoted-pair).
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The bytes that may appear in a parameter name or an unquoted value (`token`, and the
/// `host` and IPv6 reference forms of gen-value: `:`, `[`, `]`), as a table: one load per byte.
const VALUE_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-.!%*_+`'~:[]";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

fn is_value_byte(b: u8) -> bool {
    VALUE_BYTES[usize::from(b)]
}

impl<'a> NameAddr<'a> {
    /// Parses a From/To header value. `None` when it is malformed: an unclosed quote or
    /// `<`, an empty URI, a parameter that is not `;name[=value]`, or more than one `tag`.
    pub fn parse(value: &'a [u8]) -> Option<NameAddr<'a>> {
        let s = skip_lws(value);
        // The display name, if any, ends where the name-addr's `<` is; a quoted one may hold
        // any byte, a token one cannot hold `<`, `;` or `"`.
        let mut at = 0;
        if s.first() == Some(&b'"') {
            at = quoted_len(s)?;
        }
        let rest = s.get(at..)?;
        let (uri, params) = match rest.iter().position(|&b| matches!(b, b'<' | b';' | b'"')) {
            Some(i) if rest.get(i) == Some(&b'<') => {
                let inner = rest.get(i + 1..)?;
                let close = inner.iter().position(|&b| b == b'>')?;
                (inner.get(..close)?, inner.get(close + 1..)?)
            }
            // a second quoted string, or a quote inside a token display name
            Some(i) if rest.get(i) == Some(&b'"') => return None,
            // a quoted display name must be followed by `<`
            _ if at > 0 => return None,
            Some(i) => (trim_end(rest.get(..i)?), rest.get(i..)?),
            None => (trim_end(rest), &[][..]),
        };
        let uri = trim_end(skip_lws(uri));
        if uri.is_empty() || uri.iter().any(|&b| is_lws(b)) {
            return None;
        }
        Some(NameAddr {
            uri,
            tag: tag_param(params)?,
        })
    }
}

/// The value of the one `tag` in `*( SEMI generic-param )`; empty when there is none, `None`
/// when the list is malformed or has two tags.
fn tag_param(mut s: &[u8]) -> Option<&[u8]> {
    let mut tag: Option<&[u8]> = None;
    loop {
        s = skip_lws(s);
        let Some((&semi, after)) = s.split_first() else {
            return Some(tag.unwrap_or_default());
        };
        if semi != b';' {
            return None;
        }
        s = skip_lws(after);
        let name_len = s.iter().take_while(|&&b| is_value_byte(b)).count();
        let (name, after) = s.split_at(name_len);
        if name.is_empty() {
            return None;
        }
        s = skip_lws(after);
        let mut value: &[u8] = &[];
        if let Some(after) = s.strip_prefix(b"=") {
            s = skip_lws(after);
            let len = if s.first() == Some(&b'"') {
                quoted_len(s)?
            } else {
                s.iter().take_while(|&&b| is_value_byte(b)).count()
            };
            if len == 0 {
                return None;
            }
            (value, s) = s.split_at(len);
        }
        if name.eq_ignore_ascii_case(b"tag") {
            if tag.is_some() || value.is_empty() {
                return None;
            }
            tag = Some(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NameAddr;

    fn parsed(v: &str) -> Option<(String, String)> {
        NameAddr::parse(v.as_bytes()).map(|n| {
            (
                String::from_utf8_lossy(n.uri).into_owned(),
                String::from_utf8_lossy(n.tag).into_owned(),
            )
        })
    }

    #[test]
    fn uri_and_tag_of_every_form() {
        let cases = [
            (
                "<sip:alice@a.example>;tag=1928301774",
                "sip:alice@a.example",
                "1928301774",
            ),
            (
                "\"Alice\" <sip:alice@a.example>;tag=88",
                "sip:alice@a.example",
                "88",
            ),
            (
                "Alice Liddell <sip:alice@a.example;transport=udp>;tag=x",
                "sip:alice@a.example;transport=udp",
                "x",
            ),
            ("sip:alice@a.example;tag=abc", "sip:alice@a.example", "abc"),
            ("sip:alice@a.example", "sip:alice@a.example", ""),
            (
                "  <sip:bob@b.example> ; TAG = 7a ; x-param",
                "sip:bob@b.example",
                "7a",
            ),
            (
                "<sip:bob@b.example>;x=\"q;tag=no\";tag=yes",
                "sip:bob@b.example",
                "yes",
            ),
            (
                "\"A \\\"quoted\\\" <name>; tag=no\" <sips:a@[2001:db8::1]:5061>;tag=6",
                "sips:a@[2001:db8::1]:5061",
                "6",
            ),
            (
                "<sip:c@c.example>\r\n ;tag=folded",
                "sip:c@c.example",
                "folded",
            ),
            (
                "<tel:+15551234>;tag=t;maddr=[2001:db8::2]",
                "tel:+15551234",
                "t",
            ),
        ];
        for (value, uri, tag) in cases {
            assert_eq!(parsed(value), Some((uri.into(), tag.into())), "{value:?}");
        }
        println!(
            "{} From/To values: URI and tag as RFC 3261 §25.1 reads them",
            cases.len()
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        let bad = [
            "",
            "   ",
            "<sip:a@a.example",
            "\"unclosed <sip:a@a.example>;tag=1",
            "\"Alice\" sip:a@a.example;tag=1",
            "<>;tag=1",
            "<sip:a@a.example>;tag=1;tag=2",
            "<sip:a@a.example>;tag=",
            "<sip:a@a.example>;tag",
            "<sip:a@a.example>;=1",
            "<sip:a@a.example> tag=1",
            "<sip:a@a.example>;tag=1 junk",
            "Al\"ice <sip:a@a.example>;tag=1",
            "<sip:a @a.example>;tag=1",
        ];
        for value in bad {
            assert_eq!(parsed(value), None, "{value:?}");
        }
        println!("{} malformed From/To values refused", bad.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_borrow_from_the_input() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"<>;=\" \t\r\n\\sip:a@b.tagTAG1";
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let v: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 58)) as usize + i) % alphabet.len()])
                .collect();
            if let Some(n) = NameAddr::parse(&v) {
                let range = v.as_ptr_range();
                assert!(range.contains(&n.uri.as_ptr()), "{v:?}");
                assert!(n.tag.is_empty() || range.contains(&n.tag.as_ptr()), "{v:?}");
            }
        }
        println!("20,000 random values: no panic, results borrowed from the input");
    }
}
