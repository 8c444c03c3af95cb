//! A caller's dialog through P1, for tests that speak SIP over UDP: the offer sealed for the
//! callee and proxy1, in-dialog requests under the dialog key, rotations with the proof, and the
//! same dialog id in a stranger's hands. Bodies come from the sipsd user-agent engine.

use std::time::Duration;

use sipsd::crypto::cms::{ContentAlg, Recipient};
use sipsd::engine::ua::UaSession;
use sipsd::sip::body::{BodyOptions, SipBody};

use super::kamailio::Kamailio;
use super::p1log::P1Line;
use super::ports::ADDR;
use super::sip::{Peer, Request, SipMsg};

/// An SDP whose first audio stream is `addr:port` (what P1 logs as `media=`).
pub fn sdp(addr: &str, port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=alice 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfUmVhbGx5U2VjcmV0U0RFU0tleU1hcmtlcjEy\r\n"
    )
    .into_bytes()
}

/// An SDES-SRTP offer or answer of `user`: one PCMU audio stream at `addr:port` with the
/// master key `key` (base64, RFC 4568 inline).
pub fn srtp_sdp(user: &str, addr: &str, port: u16, key: &str) -> Vec<u8> {
    format!(
        "v=0\r\no={user} 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
    )
    .into_bytes()
}

/// One dialog as its caller holds it: ids, the next CSeq, and the dialog key (a UaSession).
pub struct Dialog {
    pub call_id: String,
    pub from_tag: String,
    /// the callee's tag: `peer`, the one support::sip::reply gives an answer
    pub to_tag: String,
    pub ua: UaSession,
    cseq: u32,
    /// the route set learnt from the answer's Record-Route, else `<sip:P1;lr>`
    routes: Vec<String>,
    /// P1's port (in-dialog requests are routed through it)
    p1: u16,
    /// the next hop's port (Request-URI)
    target: u16,
}

impl Dialog {
    /// The INVITE that opens the dialog: `plain` sealed under a fresh `alg` key for
    /// `recipients`.
    pub fn offer(
        call_id: &str,
        plain: &[u8],
        recipients: &[Recipient],
        alg: ContentAlg,
        p1: &Kamailio,
        target: u16,
    ) -> (Dialog, Request) {
        let opts = BodyOptions::default();
        let (ua, body) = UaSession::offer("application/sdp", plain, recipients, alg, None, &opts)
            .expect("seal the offer");
        let d = Dialog {
            call_id: call_id.to_string(),
            from_tag: format!("{}-caller", call_id.split('@').next().unwrap_or("c")),
            to_tag: "peer".to_string(),
            ua,
            cseq: 1,
            routes: Vec::new(),
            p1: p1.port,
            target,
        };
        let req = d.initial("INVITE", 1).body(&body.content_type, &body.body);
        (d, req)
    }

    /// A request of this dialog without To tag (as the INVITE, a CANCEL, or a stranger's).
    pub fn initial(&self, method: &str, cseq: u32) -> Request {
        Request::new(method, &self.call_id)
            .uri(&format!("sip:bob@{ADDR}:{}", self.target))
            .with_from_tag(&self.from_tag)
            .cseq(cseq)
    }

    /// Takes the route set from the answer (its Record-Route values, as a caller does): P1's
    /// own record-route carries what the dialog module matches in-dialog requests by.
    pub fn learn_route(&mut self, answer: &SipMsg) {
        self.routes = answer
            .headers_named("record-route")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|r| r.trim().to_string())
            .collect();
    }

    /// The callee answers `invite` (as the callee received it) 200 OK with `plain` sealed
    /// under the dialog key; returns the 200 as the caller got it, its route set learnt.
    pub fn answer(
        &mut self,
        p1: &Kamailio,
        caller: &Peer,
        callee: &Peer,
        invite: &SipMsg,
        plain: &[u8],
    ) -> SipMsg {
        let answer = self
            .ua
            .encrypt("application/sdp", plain, &BodyOptions::default())
            .expect("the answer under the dialog key");
        callee.send(
            p1.port,
            &super::sip::reply_with(
                invite,
                200,
                "OK",
                &[("Content-Type", answer.content_type.as_str())],
                &answer.body,
            ),
        );
        let ok = caller
            .wait(Duration::from_secs(5), |m| {
                m.status() == Some(200) && m.call_id() == self.call_id
            })
            .expect("the 200 OK reaches the caller");
        self.learn_route(&ok);
        ok
    }

    /// The next in-dialog request (To tag, routed through P1), no body (ACK, BYE).
    pub fn bare(&mut self, method: &str) -> Request {
        self.cseq += 1;
        let mut r = Request::new(method, &self.call_id)
            .uri(&format!("sip:bob@{ADDR}:{}", self.target))
            .with_from_tag(&self.from_tag)
            .in_dialog(&self.to_tag)
            .cseq(self.cseq);
        if self.routes.is_empty() {
            r = r.route(self.p1);
        } else {
            r.routes = self.routes.clone();
        }
        r
    }

    /// The next in-dialog request with `body` as it is.
    pub fn request(&mut self, method: &str, body: &SipBody) -> Request {
        self.bare(method).body(&body.content_type, &body.body)
    }

    /// The next in-dialog request with `plain` as EncryptedData under the dialog key.
    pub fn encrypted(&mut self, method: &str, plain: &[u8]) -> Request {
        let body = self
            .ua
            .encrypt("application/sdp", plain, &BodyOptions::default())
            .expect("EncryptedData");
        self.request(method, &body)
    }

    /// The next in-dialog request rotating the key (new key for `recipients`, with the proof).
    pub fn rotation(&mut self, method: &str, plain: &[u8], recipients: &[Recipient]) -> Request {
        let body = self
            .ua
            .rotate(
                "application/sdp",
                plain,
                recipients,
                &BodyOptions::default(),
            )
            .expect("rotation");
        self.request(method, &body)
    }

    /// The CSeq of the last request made.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }
}

/// The first request `peer` received with this Call-ID, method and CSeq number.
pub fn received(peer: &Peer, call_id: &str, method: &str, cseq: u32) -> Option<SipMsg> {
    let want = format!("{cseq} {method}");
    peer.wait(Duration::from_secs(5), |m| {
        m.is_request() && m.call_id() == call_id && m.method() == method && m.cseq() == want
    })
}

/// Sends `req` from `from` to P1 and waits until `next_hop` got it; panics if it never does.
pub fn through(p1: &Kamailio, from: &Peer, next_hop: &Peer, req: &Request) -> SipMsg {
    from.send(p1.port, &req.build(from.port()));
    received(next_hop, &req.call_id, &req.method, req.cseq).unwrap_or_else(|| {
        panic!(
            "{} {} (CSeq {}) never reached the next hop",
            req.method, req.call_id, req.cseq
        )
    })
}

/// P1's log lines for one call and WHAT (`INVITE`, `MESSAGE`, `INVITE200`), in order.
pub fn lines(p1: &Kamailio, call_id: &str, what: &str) -> Vec<P1Line> {
    p1.log_lines()
        .into_iter()
        .filter(|l| l.call == call_id && l.what == what)
        .collect()
}

/// P1's last line for one call and WHAT, waiting for it up to 2 s (the log is written after
/// the message is relayed).
pub fn last(p1: &Kamailio, call_id: &str, what: &str, count: usize) -> P1Line {
    for _ in 0..200 {
        let l = lines(p1, call_id, what);
        if l.len() >= count {
            return l[count - 1].clone();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("P1 logged fewer than {count} lines for {what} of {call_id}");
}
