//! SIPp's `-trace_msg` files: every message SIPp sent or received, in order.

use std::fs;
use std::path::Path;

use super::sip::{find, SipMsg};

/// The messages of a `-message_file` (empty when the file does not exist yet).
pub fn parse_trace(path: &Path) -> Vec<SipMsg> {
    let data = fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut at = 0;
    let recv: &[u8] = b"UDP message received [";
    let sent: &[u8] = b"UDP message sent (";
    loop {
        let r = find(&data[at..], recv).map(|i| (i, false));
        let s = find(&data[at..], sent).map(|i| (i, true));
        let (i, is_sent) = match (r, s) {
            (Some(r), Some(s)) => std::cmp::min_by_key(r, s, |x| x.0),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => break,
        };
        let p = at + i + if is_sent { sent.len() } else { recv.len() };
        let digits = data[p..].iter().take_while(|b| b.is_ascii_digit()).count();
        let n: usize = std::str::from_utf8(&data[p..p + digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let Some(nl) = find(&data[p..], b"\n\n") else {
            break;
        };
        let start = p + nl + 2;
        let end = (start + n).min(data.len());
        out.push(SipMsg::parse(is_sent, &data[start..end]));
        at = end;
    }
    out
}

/// The one message matching `pred`: panics when there is none, or when its retransmissions
/// differ.
pub fn one<'a>(msgs: &'a [SipMsg], what: &str, pred: impl Fn(&SipMsg) -> bool) -> &'a SipMsg {
    let found: Vec<&SipMsg> = msgs.iter().filter(|m| pred(m)).collect();
    assert!(!found.is_empty(), "no {what} in the SIPp trace");
    assert!(
        found.iter().all(|m| m.body == found[0].body),
        "retransmissions of {what} differ"
    );
    found[0]
}

/// A request (`request`) or the 200 OK to one, of CSeq `cseq`, as `from` sent it and as `to`
/// received it ([`one`] of each, `what` naming it).
pub fn sent_and_received<'a>(
    from: &'a [SipMsg],
    to: &'a [SipMsg],
    what: &str,
    cseq: &str,
    request: bool,
) -> (&'a SipMsg, &'a SipMsg) {
    let pick = |sent: bool| {
        move |m: &SipMsg| {
            m.sent == sent
                && m.cseq() == cseq
                && if request {
                    m.is_request()
                } else {
                    m.status() == Some(200)
                }
        }
    };
    (
        one(from, &format!("sent {what}"), pick(true)),
        one(to, &format!("received {what}"), pick(false)),
    )
}

/// The first message matching `pred`; panics when there is none.
pub fn first<'a>(msgs: &'a [SipMsg], what: &str, pred: impl Fn(&SipMsg) -> bool) -> &'a SipMsg {
    msgs.iter()
        .find(|m| pred(m))
        .unwrap_or_else(|| panic!("FAILED: no {what} in the SIPp trace"))
}

/// The messages of one call.
pub fn of_call(msgs: &[SipMsg], call: &str) -> Vec<SipMsg> {
    msgs.iter()
        .filter(|m| m.call_id() == call)
        .cloned()
        .collect()
}
