//! The PCP server loop: source allow-list, decoding, authentication and replay checks, then
//! the engine, then the (signed) response. One thread, one request at a time: each request's
//! nftables transaction is done before the next is read.
//!
//! Every refusal is logged on one line starting with `REFUSED`, naming the source and the
//! cause; keys are never logged.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sipsd::pcp::auth::{self, AuthKey, ReplayGuard};
use sipsd::pcp::wire::MAX_LEN;
use sipsd::pcp::{PcpError, Request, Response, ResultCode};

use crate::engine::{nonce_of, Decision, Engine};
use crate::FwError;

/// Counts of what the server did (printed at exit, read by tests through the log).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Requests answered with SUCCESS.
    pub ok: u64,
    /// Requests refused (any cause).
    pub refused: u64,
}

/// The running server.
pub struct Server {
    engine: Engine,
    keys: Vec<AuthKey>,
    replay: ReplayGuard,
    socket: UdpSocket,
    stats: Stats,
}

/// Most datagrams taken into one batch (one nftables transaction).
pub const MAX_BATCH: usize = 64;

/// What the checks before the engine made of a datagram.
enum Screened {
    /// No answer (outside the allow-list, or too short to answer).
    Drop,
    /// Refused, with this answer.
    Reply(Vec<u8>),
    /// Authenticated (with this key) and fresh: for the engine.
    Accept(Request, Option<u32>),
}

/// One log line on stderr.
pub fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("sipsd-fw: {line}");
}

impl Server {
    /// Loads the keys, binds the socket. The replay window starts now: a request signed
    /// before this moment is refused.
    pub fn new(engine: Engine) -> Result<Self, FwError> {
        let cfg = engine.config();
        let mut keys = Vec::new();
        for k in &cfg.keys {
            keys.push(AuthKey::from_file(k.id, &k.file).map_err(|e| {
                FwError::Config(format!("key {} ({}): {e}", k.id, k.file.display()))
            })?);
        }
        let socket = UdpSocket::bind(cfg.listen)
            .map_err(|e| FwError::Config(format!("listen {}: {e}", cfg.listen)))?;
        let replay = ReplayGuard::new(cfg.replay_window_ms, auth::now_ms(), cfg.replay_capacity);
        Ok(Server {
            engine,
            keys,
            replay,
            socket,
            stats: Stats::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `stop` is set (checked at least once a second).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Stats, FwError> {
        self.socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(FwError::Io)?;
        let mut buf = [0u8; MAX_LEN + 4];
        while !stop.load(Ordering::Relaxed) {
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) => {
                    let mut batch = vec![(buf[..n].to_vec(), src)];
                    self.drain(&mut batch, &mut buf).map_err(FwError::Io)?;
                    for (bytes, to) in self.serve(batch) {
                        if let Err(e) = self.socket.send_to(&bytes, to) {
                            log(format_args!("send to {to}: {e}"));
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    self.engine.expire(Instant::now());
                }
                Err(e) => return Err(FwError::Io(e)),
            }
        }
        Ok(self.stats)
    }

    /// Takes the datagrams already queued (at most [`MAX_BATCH`] in all): the flows of one
    /// SIP message arrive together and go into one nftables transaction.
    fn drain(&self, batch: &mut Vec<(Vec<u8>, SocketAddr)>, buf: &mut [u8]) -> std::io::Result<()> {
        self.socket.set_nonblocking(true)?;
        while batch.len() < MAX_BATCH {
            match self.socket.recv_from(buf) {
                Ok((n, src)) => batch.push((buf[..n].to_vec(), src)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.socket.set_nonblocking(false)?;
                    return Err(e);
                }
            }
        }
        self.socket.set_nonblocking(false)
    }

    fn refuse(&mut self, src: SocketAddr, why: std::fmt::Arguments<'_>) {
        self.stats.refused += 1;
        log(format_args!("REFUSED {src}: {why}"));
    }

    /// Handles a batch of datagrams; the answers to send.
    fn serve(&mut self, batch: Vec<(Vec<u8>, SocketAddr)>) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut replies = Vec::with_capacity(batch.len());
        let mut accepted: Vec<(Request, SocketAddr, Option<u32>)> = Vec::new();
        for (bytes, src) in &batch {
            match self.screen(bytes, *src) {
                Screened::Drop => {}
                Screened::Reply(r) => replies.push((r, *src)),
                Screened::Accept(req, key_id) => accepted.push((req, *src, key_id)),
            }
        }
        if accepted.is_empty() {
            return replies;
        }
        let t = Instant::now();
        let reqs: Vec<(&Request, std::net::IpAddr)> =
            accepted.iter().map(|(r, s, _)| (r, s.ip())).collect();
        let decisions = self.engine.handle_batch(&reqs, t);
        let took = t.elapsed();
        for ((req, src, key_id), d) in accepted.iter().zip(&decisions) {
            let nonce = nonce_of(req).map(|n| n.to_hex()).unwrap_or_default();
            if d.result == ResultCode::Success {
                self.stats.ok += 1;
                log(format_args!(
                    "{src} n={nonce} lifetime={}: {} ({} us, batch of {})",
                    d.lifetime,
                    d.note,
                    took.as_micros(),
                    accepted.len()
                ));
            } else {
                self.refuse(*src, format_args!("n={nonce} {}: {}", d.result, d.note));
            }
            replies.push((self.answer(req, d.result, d.lifetime, *key_id), *src));
        }
        replies
    }

    /// Source allow-list, decoding, authentication and replay window for one datagram.
    fn screen(&mut self, bytes: &[u8], src: SocketAddr) -> Screened {
        if !self.engine.config().allowed(src.ip()) {
            // No answer: a PCP server outside its allow-list is not there.
            self.refuse(
                src,
                format_args!("source not in allow ({} bytes)", bytes.len()),
            );
            return Screened::Drop;
        }
        let req = match Request::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(src, format_args!("malformed: {e}"));
                return match e.result_code() {
                    Some(code) => {
                        Screened::Reply(Response::error_for(bytes, code, self.engine.epoch()))
                    }
                    None => Screened::Drop,
                };
            }
        };
        // Authentication: required, or checked when present.
        let key_id = if self.engine.config().require_auth || req.options.auth.is_some() {
            match auth::verify(bytes, req.options.auth.as_ref(), &self.keys) {
                Ok(k) => Some(k.id()),
                Err(e) => {
                    let what = match e {
                        PcpError::AuthMissing => "not authenticated",
                        PcpError::UnknownKey(_) => "unknown key id",
                        _ => "forged",
                    };
                    self.refuse(src, format_args!("{what}: {e}"));
                    return Screened::Reply(self.answer(&req, ResultCode::NotAuthorized, 0, None));
                }
            }
        } else {
            None
        };
        if let (Some(_), Some(a)) = (key_id, req.options.auth.as_ref()) {
            if let Err(e) = self.replay.check(a, auth::now_ms()) {
                self.refuse(src, format_args!("replay: {e} (key {})", a.key_id));
                return Screened::Reply(self.answer(&req, ResultCode::NotAuthorized, 0, key_id));
            }
        }
        Screened::Accept(req, key_id)
    }

    /// The response, signed with the request's key (echoing its timestamp and random value)
    /// when the request was authenticated.
    fn answer(
        &self,
        req: &Request,
        result: ResultCode,
        lifetime: u32,
        key_id: Option<u32>,
    ) -> Vec<u8> {
        let d = Decision {
            result,
            lifetime,
            note: String::new(),
        };
        let mut out = self.engine.response(req, &d).encode_unsigned();
        let key = key_id.and_then(|id| self.keys.iter().find(|k| k.id() == id));
        if let (Some(k), Some(a)) = (key, req.options.auth.as_ref()) {
            auth::sign(&mut out, k, a.timestamp_ms, a.random);
        }
        out
    }
}
