//! The explicit decryption request: the `Disclose-To` SIP header (sipsd extension, defined in
//! docs/PROTOCOL.md §4).
//!
//! ```text
//! Disclose-To: proxy1.example.net;cid="<sdp1@a.example.org>", proxy2.example.net
//! ```
//! asks proxy1 to read only the encrypted part with Content-ID `sdp1@a.example.org` and proxy2
//! to read every encrypted part. A proxy that is not named is not asked (`Selection::NotNamed`).
//!
//! The header value is untrusted: its length, entry count and Content-IDs per entry are
//! limited and every syntax error is a [`DiscloseError`].

use crate::sip::body::{content_id_eq, normalize_content_id};

/// Longest header value accepted (all instances joined), in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most entries (identities) accepted.
pub const MAX_ENTRIES: usize = 32;
/// Most `cid` parameters accepted per entry.
pub const MAX_CIDS_PER_ENTRY: usize = 16;
/// Longest identity accepted (a DNS name's limit).
pub const MAX_IDENTITY_LEN: usize = 255;
/// Longest Content-ID accepted.
pub const MAX_CID_LEN: usize = 256;
/// Longest piece of input echoed back in an error.
const MAX_ECHO: usize = 64;

/// What a request asks of one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The proxy is not named: no explicit request for it.
    NotNamed,
    /// The proxy is named without `cid`: every encrypted part.
    AllParts,
    /// The proxy is named with these Content-IDs (without angle brackets): only those parts.
    Parts(Vec<String>),
}

impl Selection {
    /// Whether an encrypted part with this Content-ID is selected. A part without Content-ID
    /// (a single-part body) is selected only by [`Selection::AllParts`].
    pub fn covers(&self, content_id: Option<&str>) -> bool {
        match self {
            Selection::NotNamed => false,
            Selection::AllParts => true,
            Selection::Parts(cids) => {
                content_id.is_some_and(|own| cids.iter().any(|c| content_id_eq(c, own)))
            }
        }
    }
}

/// One `Disclose-To` entry: an identity and the Content-IDs it may read (empty: all parts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisclosureEntry {
    /// The proxy's identity, a host name or IP address, as written.
    pub identity: String,
    /// Content-IDs without angle brackets; empty means every encrypted part.
    pub content_ids: Vec<String>,
}

/// A parsed `Disclose-To` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisclosureRequest {
    entries: Vec<DisclosureEntry>,
}

/// Why a `Disclose-To` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiscloseError {
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("Disclose-To value longer than {MAX_VALUE_LEN} bytes")]
    TooLong,
    /// More than [`MAX_ENTRIES`] entries.
    #[error("Disclose-To has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// More than [`MAX_CIDS_PER_ENTRY`] `cid` parameters in one entry.
    #[error("Disclose-To entry has more than {MAX_CIDS_PER_ENTRY} cid parameters")]
    TooManyContentIds,
    /// An identity that is missing or not a host name / IP address (the offending text).
    #[error("bad identity in Disclose-To: {0:?}")]
    BadIdentity(String),
    /// A malformed parameter (what is wrong).
    #[error("bad Disclose-To parameter: {0}")]
    BadParam(String),
    /// The value is empty.
    #[error("empty Disclose-To value")]
    Empty,
    /// The value is not UTF-8.
    #[error("Disclose-To is not UTF-8")]
    NotUtf8,
}

/// RFC 3261 `token` characters.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Characters of a bare Content-ID: RFC 5322 `atext`, `.` and `@`.
fn is_cid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.@".contains(&c)
}

fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

fn echo(s: &str) -> String {
    s.chars().take(MAX_ECHO).collect()
}

/// Checks an identity: a host name (letters, digits, `-`, `.`, no empty label, no label
/// starting or ending with `-`), an IPv4 address, or an IPv6 reference `[...]`.
fn check_identity(id: &str) -> Result<(), DiscloseError> {
    let bad = || DiscloseError::BadIdentity(echo(id));
    if id.is_empty() || id.len() > MAX_IDENTITY_LEN {
        return Err(bad());
    }
    if let Some(inner) = id.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let ok = inner.parse::<std::net::Ipv6Addr>().is_ok();
        return if ok { Ok(()) } else { Err(bad()) };
    }
    let ok = id.bytes().all(is_host_char)
        && id
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks a Content-ID (already without angle brackets).
fn check_cid(cid: &str) -> Result<(), DiscloseError> {
    if cid.is_empty() {
        return Err(DiscloseError::BadParam("empty cid".into()));
    }
    if cid.len() > MAX_CID_LEN {
        return Err(DiscloseError::BadParam("cid too long".into()));
    }
    if cid.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(DiscloseError::BadParam(
            "control character or angle bracket in cid".into(),
        ));
    }
    Ok(())
}

/// A byte cursor over the header value.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_lws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // Every predicate used accepts ASCII only, so the slice is on char boundaries.
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// The unread input, for error messages (callers shorten it with `echo`).
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    /// A quoted-string (cursor on the opening quote), escapes resolved.
    fn quoted(&mut self) -> Result<String, DiscloseError> {
        self.pos += 1;
        let mut out = String::new();
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e)) if !e.is_control() => out.push(e),
                    _ => {
                        return Err(DiscloseError::BadParam(
                            "bad escape in quoted-string".into(),
                        ))
                    }
                },
                c if c.is_control() && c != '\t' => {
                    return Err(DiscloseError::BadParam(
                        "control character in quoted-string".into(),
                    ))
                }
                c => out.push(c),
            }
        }
        Err(DiscloseError::BadParam("unbalanced quote".into()))
    }

    /// An identity: an IPv6 reference or a run of host characters.
    fn identity(&mut self) -> Result<&'a str, DiscloseError> {
        let start = self.pos;
        if self.peek() == Some(b'[') {
            self.take_while(|c| c != b']' && c != b',' && c != b';');
            if self.peek() == Some(b']') {
                self.pos += 1;
            }
        } else {
            self.take_while(is_host_char);
        }
        let id = self.s.get(start..self.pos).unwrap_or_default();
        if id.is_empty() {
            return Err(DiscloseError::BadIdentity(echo(self.rest().trim())));
        }
        check_identity(id)?;
        Ok(id)
    }

    /// A `cid` value: quoted-string, `<...>`, or bare Content-ID characters.
    fn cid_value(&mut self) -> Result<String, DiscloseError> {
        let raw = match self.peek() {
            Some(b'"') => self.quoted()?,
            Some(b'<') => {
                self.pos += 1;
                let v = self.take_while(is_cid_char).to_owned();
                if self.peek() != Some(b'>') {
                    return Err(DiscloseError::BadParam("unbalanced '<' in cid".into()));
                }
                self.pos += 1;
                v
            }
            _ => self.take_while(is_cid_char).to_owned(),
        };
        let cid = normalize_content_id(&raw).to_owned();
        check_cid(&cid)?;
        Ok(cid)
    }

    /// A generic parameter value (ignored): token or quoted-string.
    fn generic_value(&mut self) -> Result<(), DiscloseError> {
        if self.peek() == Some(b'"') {
            self.quoted().map(drop)
        } else if self.take_while(is_token_char).is_empty() {
            Err(DiscloseError::BadParam("empty parameter value".into()))
        } else {
            Ok(())
        }
    }
}

impl DisclosureRequest {
    /// The header name.
    pub const HEADER: &'static str = "Disclose-To";

    /// A request from (identity, Content-IDs) pairs, unchecked: use [`DisclosureRequest::try_new`]
    /// for values that did not come from this program.
    pub fn new(entries: Vec<(String, Vec<String>)>) -> DisclosureRequest {
        DisclosureRequest {
            entries: entries
                .into_iter()
                .map(|(identity, cids)| DisclosureEntry {
                    identity,
                    content_ids: cids
                        .iter()
                        .map(|c| normalize_content_id(c).to_owned())
                        .collect(),
                })
                .collect(),
        }
    }

    /// A request from (identity, Content-IDs) pairs, checked against the same rules and limits
    /// as [`DisclosureRequest::parse`].
    pub fn try_new(
        entries: Vec<(String, Vec<String>)>,
    ) -> Result<DisclosureRequest, DiscloseError> {
        if entries.is_empty() {
            return Err(DiscloseError::Empty);
        }
        if entries.len() > MAX_ENTRIES {
            return Err(DiscloseError::TooManyEntries);
        }
        let req = DisclosureRequest::new(entries);
        for e in &req.entries {
            check_identity(&e.identity)?;
            if e.content_ids.len() > MAX_CIDS_PER_ENTRY {
                return Err(DiscloseError::TooManyContentIds);
            }
            e.content_ids.iter().try_for_each(|c| check_cid(c))?;
        }
        if req.to_header_value().len() > MAX_VALUE_LEN {
            return Err(DiscloseError::TooLong);
        }
        Ok(req)
    }

    /// The entries in header order.
    pub fn entries(&self) -> &[DisclosureEntry] {
        &self.entries
    }

    /// Parses one header value (see the ABNF in docs/PROTOCOL.md §4).
    pub fn parse(value: &str) -> Result<DisclosureRequest, DiscloseError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(DiscloseError::TooLong);
        }
        if value.trim().is_empty() {
            return Err(DiscloseError::Empty);
        }
        let mut c = Cursor { s: value, pos: 0 };
        let mut entries = Vec::new();
        loop {
            c.skip_lws();
            let identity = c.identity()?.to_owned();
            let mut content_ids = Vec::new();
            loop {
                c.skip_lws();
                if c.peek() != Some(b';') {
                    break;
                }
                c.pos += 1;
                c.skip_lws();
                let name = c.take_while(is_token_char);
                if name.is_empty() {
                    return Err(DiscloseError::BadParam(format!(
                        "missing parameter name before {:?}",
                        echo(c.rest())
                    )));
                }
                c.skip_lws();
                let has_value = c.peek() == Some(b'=');
                if has_value {
                    c.pos += 1;
                    c.skip_lws();
                }
                if name.eq_ignore_ascii_case("cid") {
                    if !has_value {
                        return Err(DiscloseError::BadParam("cid without a value".into()));
                    }
                    if content_ids.len() == MAX_CIDS_PER_ENTRY {
                        return Err(DiscloseError::TooManyContentIds);
                    }
                    content_ids.push(c.cid_value()?);
                } else if has_value {
                    c.generic_value()?;
                }
            }
            if entries.len() == MAX_ENTRIES {
                return Err(DiscloseError::TooManyEntries);
            }
            entries.push(DisclosureEntry {
                identity,
                content_ids,
            });
            match c.peek() {
                None => break,
                Some(b',') => c.pos += 1,
                Some(_) => return Err(DiscloseError::BadIdentity(echo(c.rest().trim()))),
            }
        }
        Ok(DisclosureRequest { entries })
    }

    /// What the request asks of a proxy known by any of these names (compared without regard
    /// to ASCII case). Entries naming the proxy are merged: one without `cid` means every part;
    /// otherwise the union of their Content-IDs, in header order without repeats.
    pub fn selection_for(&self, identities: &[String]) -> Selection {
        let mut named = false;
        let mut cids: Vec<String> = Vec::new();
        for e in &self.entries {
            if !identities
                .iter()
                .any(|i| i.eq_ignore_ascii_case(&e.identity))
            {
                continue;
            }
            if e.content_ids.is_empty() {
                return Selection::AllParts;
            }
            named = true;
            for cid in &e.content_ids {
                if !cids.iter().any(|c| c == cid) {
                    cids.push(cid.clone());
                }
            }
        }
        if named {
            Selection::Parts(cids)
        } else {
            Selection::NotNamed
        }
    }

    /// The header value; [`DisclosureRequest::parse`] gives this request back.
    pub fn to_header_value(&self) -> String {
        let mut out = String::new();
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&e.identity);
            for cid in &e.content_ids {
                out.push_str(";cid=");
                if !cid.is_empty() && cid.bytes().all(is_cid_char) {
                    out.push_str(cid);
                } else {
                    out.push('"');
                    for ch in cid.chars() {
                        if ch == '"' || ch == '\\' {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                    out.push('"');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_documented_example() {
        let v = "proxy1.example.net;cid=\"<sdp1@a.example.org>\" , Proxy2.Example.NET,\r\n [2001:db8::1];cid=<x@y>;cid=z@w;ttl=5";
        let r = DisclosureRequest::parse(v).unwrap();
        println!("{v:?}\n -> {r:?}");
        assert_eq!(r.entries().len(), 3);
        assert_eq!(r.entries()[0].content_ids, ["sdp1@a.example.org"]);
        assert_eq!(r.entries()[2].identity, "[2001:db8::1]");
        assert_eq!(r.entries()[2].content_ids, ["x@y", "z@w"]);
        assert_eq!(
            r.selection_for(&ids(&["PROXY1.example.net"])),
            Selection::Parts(ids(&["sdp1@a.example.org"]))
        );
        assert_eq!(
            r.selection_for(&ids(&["x", "proxy2.example.net"])),
            Selection::AllParts
        );
        assert_eq!(
            r.selection_for(&ids(&["proxy3.example.net"])),
            Selection::NotNamed
        );
        assert_eq!(r.selection_for(&[]), Selection::NotNamed);
        println!("selection per identity checked (case-insensitive)");
    }

    #[test]
    fn round_trip() {
        let r = DisclosureRequest::try_new(vec![
            (
                "proxy1.example.net".into(),
                vec!["<a@b>".into(), "we\"ird id".into()],
            ),
            ("192.0.2.7".into(), vec![]),
        ])
        .unwrap();
        let v = r.to_header_value();
        println!("{v}");
        assert_eq!(
            v,
            "proxy1.example.net;cid=a@b;cid=\"we\\\"ird id\", 192.0.2.7"
        );
        assert_eq!(DisclosureRequest::parse(&v).unwrap(), r);
    }

    #[test]
    fn merging_entries_and_covers() {
        let r = DisclosureRequest::parse("p;cid=a@x, q, p;cid=b@x;cid=a@x").unwrap();
        let sel = r.selection_for(&ids(&["P"]));
        println!("p -> {sel:?}");
        assert_eq!(sel, Selection::Parts(ids(&["a@x", "b@x"])));
        assert!(sel.covers(Some("<a@X>")));
        assert!(!sel.covers(Some("A@x")));
        assert!(!sel.covers(None));
        assert!(Selection::AllParts.covers(None));
        assert!(!Selection::NotNamed.covers(Some("a@x")));
        let r = DisclosureRequest::parse("p;cid=a@x, p").unwrap();
        assert_eq!(r.selection_for(&ids(&["p"])), Selection::AllParts);
        println!("an entry without cid widens to all parts");
    }

    #[test]
    fn several_instances() {
        // The server's module joins every instance with ", " (RFC 3261 §7.3.1) before parsing.
        let r = DisclosureRequest::parse(&["a.example", "b.example;cid=x"].join(", ")).unwrap();
        assert_eq!(r.to_header_value(), "a.example, b.example;cid=x");
        let long = "a".repeat(3000);
        assert_eq!(
            DisclosureRequest::parse(&[long.as_str(), long.as_str()].join(", ")),
            Err(DiscloseError::TooLong)
        );
        println!("instances joined by commas; combined length limited");
    }

    #[test]
    fn hostile_values() {
        let overlong = format!("p;cid={}", "x".repeat(5000));
        let thousand = vec!["p"; 1000].join(",");
        let many_cids = format!("p{}", ";cid=a".repeat(17));
        let cases: Vec<(&str, DiscloseError)> = vec![
            (&overlong, DiscloseError::TooLong),
            (&thousand, DiscloseError::TooManyEntries),
            (&many_cids, DiscloseError::TooManyContentIds),
            ("", DiscloseError::Empty),
            ("  \t ", DiscloseError::Empty),
            (
                "p;cid=\"unbalanced",
                DiscloseError::BadParam("unbalanced quote".into()),
            ),
            (
                "p;cid=<a@b",
                DiscloseError::BadParam("unbalanced '<' in cid".into()),
            ),
            (
                "p;cid",
                DiscloseError::BadParam("cid without a value".into()),
            ),
            ("p;cid=", DiscloseError::BadParam("empty cid".into())),
            ("p;cid=\"<>\"", DiscloseError::BadParam("empty cid".into())),
            (
                "p;=x",
                DiscloseError::BadParam("missing parameter name before \"=x\"".into()),
            ),
            ("p,,q", DiscloseError::BadIdentity(",q".into())),
            ("p q", DiscloseError::BadIdentity("q".into())),
            (
                "-p.example",
                DiscloseError::BadIdentity("-p.example".into()),
            ),
            (
                "p..example",
                DiscloseError::BadIdentity("p..example".into()),
            ),
            ("[not:v6]", DiscloseError::BadIdentity("[not:v6]".into())),
            ("\"p\"", DiscloseError::BadIdentity("\"p\"".into())),
            (
                "p;cid=\"a\u{1}\"",
                DiscloseError::BadParam("control character in quoted-string".into()),
            ),
            ("p;x=\"", DiscloseError::BadParam("unbalanced quote".into())),
            ("pä", DiscloseError::BadIdentity("ä".into())),
        ];
        for (v, want) in cases {
            let got = DisclosureRequest::parse(v);
            println!("{:?} -> {got:?}", echo(v));
            assert_eq!(got, Err(want), "{v:?}");
        }
        let r = DisclosureRequest::parse(&vec!["p"; 32].join(",")).unwrap();
        assert_eq!(r.entries().len(), 32);
        println!("32 entries accepted, 33+ refused");
    }

    #[test]
    fn try_new_checks() {
        assert_eq!(
            DisclosureRequest::try_new(vec![]),
            Err(DiscloseError::Empty)
        );
        assert!(matches!(
            DisclosureRequest::try_new(vec![("bad id".into(), vec![])]),
            Err(DiscloseError::BadIdentity(_))
        ));
        assert!(matches!(
            DisclosureRequest::try_new(vec![("p".into(), vec!["a\r\nb".into()])]),
            Err(DiscloseError::BadParam(_))
        ));
        println!("try_new refuses what parse would");
    }
}
