//! The log lines the example configurations write for each message:
//!
//! - P1 (trusted-proxy.cfg): `sipsd: pid=P WHAT call=ID decrypted gen=G source=S media=M` or
//!   `sipsd: pid=P WHAT call=ID not-decrypted code=C error=TEXT`, WHAT the method of a request
//!   or the CSeq method and status of a reply (`INVITE200`);
//! - P2 (untrusted-proxy.cfg): `untrusted: pid=P METHOD call=ID body-bytes=N`;
//! - an edge (edge.cfg): `edge: pid=P WHAT call=ID ACTION key=value...`, ACTION one of
//!   `sealed`, `clear`, `refused`, `opened`, `plain`, `not-opened` (`error=` last).

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct P1Line {
    pub pid: u32,
    pub what: String,
    pub call: String,
    pub decrypted: bool,
    /// gen, source, media (decrypted); code, error (not-decrypted; error is the rest of the line)
    pub fields: BTreeMap<String, String>,
}

impl P1Line {
    /// A field, or "" when the line has none.
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }

    /// The result code (`code=`; 0 on a decrypted line).
    pub fn code(&self) -> u32 {
        self.get("code").parse().unwrap_or(0)
    }

    /// The key generation (`gen=`) of a decrypted line.
    pub fn generation(&self) -> Option<u32> {
        self.get("gen").parse().ok()
    }
}

/// A log line of the example configurations: `PREFIX PID WHAT call=ID WORD key=value...`.
struct Raw {
    pid: u32,
    what: String,
    call: String,
    word: String,
    fields: BTreeMap<String, String>,
}

/// The lines after `prefix` (`sipsd: pid=`, `edge: pid=`); `error=` is the last field and may
/// contain spaces.
fn lines_after(log: &str, prefix: &str) -> Vec<Raw> {
    log.lines()
        .filter_map(|l| l.split_once(prefix).map(|(_, r)| r))
        .filter_map(|r| {
            let mut it = r.splitn(4, ' ');
            let pid = it.next()?.parse().ok()?;
            let what = it.next()?.to_string();
            let call = it.next()?.strip_prefix("call=")?.to_string();
            let rest = it.next()?;
            let (word, kv) = rest.split_once(' ').unwrap_or((rest, ""));
            let (kv, error) = match kv.split_once("error=") {
                Some((a, e)) => (a, Some(e)),
                None => (kv, None),
            };
            let mut fields: BTreeMap<String, String> = kv
                .split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if let Some(e) = error {
                fields.insert("error".to_string(), e.trim().to_string());
            }
            Some(Raw {
                pid,
                what,
                call,
                word: word.to_string(),
                fields,
            })
        })
        .collect()
}

/// P1's lines in a log, in order.
pub fn parse_p1(log: &str) -> Vec<P1Line> {
    lines_after(log, "sipsd: pid=")
        .into_iter()
        .filter_map(|r| {
            let decrypted = match r.word.as_str() {
                "decrypted" => true,
                "not-decrypted" => false,
                _ => return None,
            };
            Some(P1Line {
                pid: r.pid,
                what: r.what,
                call: r.call,
                decrypted,
                fields: r.fields,
            })
        })
        .collect()
}

/// P1's lines by Call-ID, each call's in log order.
pub fn by_call(lines: &[P1Line]) -> BTreeMap<String, Vec<P1Line>> {
    let mut out: BTreeMap<String, Vec<P1Line>> = BTreeMap::new();
    for l in lines {
        out.entry(l.call.clone()).or_default().push(l.clone());
    }
    out
}

/// The lines of one call for one request (or reply, e.g. "INVITE200"), in log order.
pub fn lines_of<'a>(lines: &'a [P1Line], call: &str, what: &str) -> Vec<&'a P1Line> {
    lines
        .iter()
        .filter(|l| l.call == call && l.what == what)
        .collect()
}

/// One line of P2: what it forwarded, with the body size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P2Line {
    pub pid: u32,
    pub method: String,
    pub call: String,
    pub body_bytes: usize,
}

/// P2's lines in a log, in order.
pub fn parse_p2(log: &str) -> Vec<P2Line> {
    log.lines()
        .filter_map(|l| l.split_once("untrusted: pid=").map(|(_, r)| r))
        .filter_map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            Some(P2Line {
                pid: f.first()?.parse().ok()?,
                method: f.get(1)?.to_string(),
                call: f.get(2)?.strip_prefix("call=")?.to_string(),
                body_bytes: f.get(3)?.strip_prefix("body-bytes=")?.parse().ok()?,
            })
        })
        .collect()
}

/// One line of an edge: what it did with a message's body.
#[derive(Debug, Clone)]
pub struct EdgeLine {
    pub pid: u32,
    /// the method of a request, or the CSeq method and status of a reply (`INVITE200`)
    pub what: String,
    pub call: String,
    /// sealed, clear, refused, opened, plain, not-opened
    pub action: String,
    /// sealing, gen, signer (sealed); gen, source, signature, signer (opened); code, error
    pub fields: BTreeMap<String, String>,
}

impl EdgeLine {
    /// A field, or "" when the line has none.
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

/// The lines of `lines` for `what` (method, or CSeq method and status) with `action` at key
/// generation `gen`.
pub fn edge_lines_with<'a>(
    lines: &'a [EdgeLine],
    what: &str,
    action: &str,
    gen: &str,
) -> Vec<&'a EdgeLine> {
    lines
        .iter()
        .filter(|l| l.what == what && l.action == action && l.get("gen") == gen)
        .collect()
}

/// An edge's lines in a log, in order.
pub fn parse_edge(log: &str) -> Vec<EdgeLine> {
    lines_after(log, "edge: pid=")
        .into_iter()
        .map(|r| EdgeLine {
            pid: r.pid,
            what: r.what,
            call: r.call,
            action: r.word,
            fields: r.fields,
        })
        .collect()
}
