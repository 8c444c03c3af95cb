//! SIP messages for tests: parse one (a datagram, or a message of a SIPp trace), build a
//! request, answer one, and [`Peer`]: a UDP endpoint that records everything it receives and
//! answers requests as told — the next hop behind P1, or the caller in front of it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ports::ADDR;

/// Content types of S/MIME bodies.
pub const SMIME_AUTH: &str =
    "application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m";
pub const SMIME_ENV: &str = "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m";
pub const SMIME_ENC: &str = "application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m";

/// One SIP message. `sent` is SIPp's direction in a trace (false for what a [`Peer`] got).
#[derive(Clone, Debug)]
pub struct SipMsg {
    pub sent: bool,
    pub raw: Vec<u8>,
    /// the request or status line
    pub start: String,
    /// header names lower-cased, in order, repeated headers repeated
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl SipMsg {
    /// Splits at the first empty line (CRLF CRLF, or LF LF in a hand-made trace).
    pub fn parse(sent: bool, raw: &[u8]) -> SipMsg {
        let (head, body) = match find(raw, b"\r\n\r\n") {
            Some(i) => (&raw[..i], raw[i + 4..].to_vec()),
            None => match find(raw, b"\n\n") {
                Some(i) => (&raw[..i], raw[i + 2..].to_vec()),
                None => (raw, Vec::new()),
            },
        };
        let head = String::from_utf8_lossy(head).into_owned();
        let mut lines = head.lines();
        let start = lines.next().unwrap_or("").trim().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        SipMsg {
            sent,
            raw: raw.to_vec(),
            start,
            headers,
            body,
        }
    }

    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header `name` (lower case), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn call_id(&self) -> &str {
        self.header("call-id").unwrap_or("")
    }

    pub fn cseq(&self) -> &str {
        self.header("cseq").unwrap_or("")
    }

    pub fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/2.0 ")
    }

    /// The method of a request, or of the request a response answers (from CSeq).
    pub fn method(&self) -> &str {
        if self.is_request() {
            self.start.split(' ').next().unwrap_or("")
        } else {
            self.cseq().split_whitespace().nth(1).unwrap_or("")
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
    }

    /// The body without the line ends SIPp adds after it.
    pub fn body_trimmed(&self) -> &[u8] {
        self.body.trim_ascii_end()
    }

    /// The `;tag=` parameter of the From or To header (`m.tag("to")`).
    pub fn tag(&self, header: &str) -> Option<&str> {
        self.header(header)?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(str::trim)
    }
}

/// A fresh Via branch (RFC 3261 magic cookie, unique in this process).
pub fn branch() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "z9hG4bK-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A SIP request over UDP from `ADDR:via_port`. Defaults: `sip:bob@ADDR`, From
/// `<sip:alice@ADDR>;tag=<call-id>-f`, To `<sip:bob@ADDR>`, CSeq 1, a fresh branch, no body.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub call_id: String,
    pub from: String,
    pub from_tag: String,
    pub to: String,
    pub to_tag: Option<String>,
    /// the CSeq number (an ACK or CANCEL repeats the INVITE's)
    pub cseq: u32,
    pub branch: String,
    pub routes: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, call_id: &str) -> Request {
        Request {
            method: method.to_string(),
            uri: format!("sip:bob@{ADDR}"),
            call_id: call_id.to_string(),
            from: format!("sip:alice@{ADDR}"),
            from_tag: format!("{}-f", call_id.split('@').next().unwrap_or(call_id)),
            to: format!("sip:bob@{ADDR}"),
            to_tag: None,
            cseq: 1,
            branch: branch(),
            routes: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn uri(mut self, uri: &str) -> Self {
        self.uri = uri.to_string();
        self
    }
    /// From and To addresses (`sip:user@host`).
    pub fn parties(mut self, from: &str, to: &str) -> Self {
        self.from = from.to_string();
        self.to = to.to_string();
        self
    }
    pub fn with_from_tag(mut self, tag: &str) -> Self {
        self.from_tag = tag.to_string();
        self
    }
    /// An in-dialog request: the To tag.
    pub fn in_dialog(mut self, tag: &str) -> Self {
        self.to_tag = Some(tag.to_string());
        self
    }
    pub fn cseq(mut self, n: u32) -> Self {
        self.cseq = n;
        self
    }
    /// The Via branch (a CANCEL or a non-2xx ACK repeats the INVITE's).
    pub fn branch(mut self, b: &str) -> Self {
        self.branch = b.to_string();
        self
    }
    /// A `Route: <sip:ADDR:PORT;lr>` (in-dialog requests through a record-routing proxy).
    pub fn route(mut self, port: u16) -> Self {
        self.routes.push(format!("<sip:{ADDR}:{port};lr>"));
        self
    }
    /// Any other header (Disclose-To, Content-Transfer-Encoding, ...), in this order.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// A body and its Content-Type (empty: no Content-Type header).
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        if !content_type.is_empty() {
            self.headers
                .push(("Content-Type".to_string(), content_type.to_string()));
        }
        self.body = body.to_vec();
        self
    }

    /// The datagram, sent from `ADDR:via_port`.
    pub fn build(&self, via_port: u16) -> Vec<u8> {
        let method = &self.method;
        let mut h = format!(
            "{method} {} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ADDR}:{via_port};branch={};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{}>;tag={}\r\n",
            self.uri, self.branch, self.from, self.from_tag
        );
        match &self.to_tag {
            Some(t) => h.push_str(&format!("To: <{}>;tag={t}\r\n", self.to)),
            None => h.push_str(&format!("To: <{}>\r\n", self.to)),
        }
        for r in &self.routes {
            h.push_str(&format!("Route: {r}\r\n"));
        }
        let user = self
            .from
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("alice");
        h.push_str(&format!(
            "Call-ID: {}\r\nCSeq: {} {method}\r\nContact: <sip:{user}@{ADDR}:{via_port}>\r\n",
            self.call_id, self.cseq
        ));
        for (n, v) in &self.headers {
            h.push_str(&format!("{n}: {v}\r\n"));
        }
        h.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut m = h.into_bytes();
        m.extend_from_slice(&self.body);
        m
    }
}

/// A response to `req`: its Vias, Record-Routes, From, To (with `;tag=peer` added when it has
/// none), Call-ID and CSeq, then `extra` headers and `body` (Content-Type among `extra`).
pub fn reply_with(
    req: &SipMsg,
    code: u16,
    reason: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("via") {
        r.push_str(&format!("Via: {v}\r\n"));
    }
    for v in req.headers_named("record-route") {
        r.push_str(&format!("Record-Route: {v}\r\n"));
    }
    let to = req.header("to").unwrap_or("");
    let to = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag=peer")
    };
    r.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        req.header("from").unwrap_or(""),
        req.call_id(),
        req.cseq()
    ));
    for (n, v) in extra {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut m = r.into_bytes();
    m.extend_from_slice(body);
    m
}

/// A response to `req` without a body.
pub fn reply(req: &SipMsg, code: u16, reason: &str) -> Vec<u8> {
    reply_with(req, code, reason, &[], &[])
}

/// A datagram a [`Peer`] received.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub from: SocketAddr,
    pub msg: SipMsg,
}

/// Everything a [`Peer`] received, in order.
#[derive(Default)]
pub struct PeerLog {
    pub all: Vec<Received>,
    /// Call-ID -> the first request received with it (index into `all`)
    pub first_request: BTreeMap<String, usize>,
    pub requests: usize,
}

type Answer = Box<dyn Fn(&SipMsg) -> Option<Vec<u8>> + Send>;

/// A UDP endpoint on ADDR with a thread that records every datagram it receives and, for a
/// request, sends back what `answer` returns (nothing for None). Stops on drop.
pub struct Peer {
    sock: UdpSocket,
    log: Arc<Mutex<PeerLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    /// Records, never answers (a caller collecting P1's replies).
    pub fn bind() -> Peer {
        Peer::start(Box::new(|_| None))
    }

    /// Records, and answers each request with what `answer` makes of it (e.g. [`reply`]).
    pub fn answering(answer: impl Fn(&SipMsg) -> Option<Vec<u8>> + Send + 'static) -> Peer {
        Peer::start(Box::new(answer))
    }

    /// Records, never answers, bound to `ADDR:port` (a user agent an edge knows by address).
    pub fn bind_at(port: u16) -> Peer {
        Peer::start_at(port, Box::new(|_| None))
    }

    /// [`Peer::answering`], bound to `ADDR:port`.
    pub fn answering_at(
        port: u16,
        answer: impl Fn(&SipMsg) -> Option<Vec<u8>> + Send + 'static,
    ) -> Peer {
        Peer::start_at(port, Box::new(answer))
    }

    fn start(answer: Answer) -> Peer {
        Peer::start_at(0, answer)
    }

    fn start_at(port: u16, answer: Answer) -> Peer {
        let sock = UdpSocket::bind((ADDR, port)).expect("bind a UDP peer");
        let rx = sock.try_clone().expect("clone the peer socket");
        rx.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let log = Arc::new(Mutex::new(PeerLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 70000];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = rx.recv_from(&mut buf) else {
                    continue;
                };
                let msg = SipMsg::parse(false, &buf[..n]);
                let out = if msg.is_request() { answer(&msg) } else { None };
                {
                    let mut l = log2.lock().unwrap_or_else(|e| e.into_inner());
                    if msg.is_request() {
                        l.requests += 1;
                        let i = l.all.len();
                        l.first_request
                            .entry(msg.call_id().to_string())
                            .or_insert(i);
                    }
                    l.all.push(Received {
                        at: Instant::now(),
                        from,
                        msg,
                    });
                }
                if let Some(out) = out {
                    let _ = rx.send_to(&out, from);
                }
            }
        });
        Peer {
            sock,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().expect("local addr").port()
    }

    /// Sends `data` to `ADDR:port`.
    pub fn send(&self, port: u16, data: &[u8]) {
        self.sock
            .send_to(data, (ADDR, port))
            .expect("send a datagram");
    }

    /// The record, locked (do not hold it while waiting).
    pub fn log(&self) -> MutexGuard<'_, PeerLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<SipMsg> {
        self.log().all.iter().map(|r| r.msg.clone()).collect()
    }

    /// The messages of one call received so far.
    pub fn of_call(&self, call_id: &str) -> Vec<SipMsg> {
        self.log()
            .all
            .iter()
            .filter(|r| r.msg.call_id() == call_id)
            .map(|r| r.msg.clone())
            .collect()
    }

    /// Requests received so far (retransmissions included).
    pub fn requests(&self) -> usize {
        self.log().requests
    }

    /// Call-IDs a request was received with.
    pub fn calls_seen(&self) -> usize {
        self.log().first_request.len()
    }

    pub fn has_request(&self, call_id: &str) -> bool {
        self.log().first_request.contains_key(call_id)
    }

    /// Call-ID -> body of the first request received with it.
    pub fn first_bodies(&self) -> BTreeMap<String, Vec<u8>> {
        let l = self.log();
        l.first_request
            .iter()
            .map(|(c, &i)| (c.clone(), l.all[i].msg.body.clone()))
            .collect()
    }

    /// The first message (received before or within `limit`) that `pred` accepts.
    pub fn wait(&self, limit: Duration, pred: impl Fn(&SipMsg) -> bool) -> Option<SipMsg> {
        let end = Instant::now() + limit;
        loop {
            if let Some(r) = self.log().all.iter().find(|r| pred(&r.msg)) {
                return Some(r.msg.clone());
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `pred` holds of the record, at most `limit`; returns whether it did.
    pub fn wait_until(&self, limit: Duration, pred: impl Fn(&PeerLog) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if pred(&self.log()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
