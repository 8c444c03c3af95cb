//! The PCP client a trusted proxy calls to open, narrow, refresh and close the firewall
//! pinholes of a dialog.
//!
//! Made for a Kamailio worker: single-threaded, forked, so no thread and no shared state.
//! Create one [`Client`] per process (after fork: its UDP socket must not be shared), then
//! call [`Client::map`] per offer/answer/refresh and [`Client::delete`] at dialog end. Each
//! call sends one MAP request per flow at once, retransmits the unanswered ones on RFC 6887's
//! schedule (§8.1.1: RT = (1 + RAND) × min(2 × RTprev, MRT), RAND in ±0.1) from a configurable
//! initial interval, and returns when every flow is answered or at the deadline the caller
//! gives, whichever comes first. It never blocks longer than that deadline (plus the time of
//! one `sendto`).
//!
//! Input is neutral: a dialog id (bytes; the mapping nonce is derived from it) and flows
//! (internal address:port, optionally the remote peers allowed to send to it). The result is
//! per flow (result code, granted lifetime, server epoch) with the exchange's elapsed time and
//! datagram count, for the engine to count and to apply its failure policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::auth::{self, AuthKey};
use super::wire::{
    unspecified_like, Filter, MapData, Nonce, Opcode, Options, Request, Response, ResultCode,
    MAX_LEN, PROTO_UDP,
};
use super::PcpError;

/// RFC 6887 §8.1.1 initial retransmission time.
pub const RFC_IRT: Duration = Duration::from_secs(3);
/// RFC 6887 §8.1.1 maximum retransmission time.
pub const RFC_MRT: Duration = Duration::from_secs(1024);
/// Most flows in one exchange.
pub const MAX_FLOWS: usize = 64;
/// Most remote peers (FILTER options) per flow.
pub const MAX_REMOTES: usize = 8;

/// How to reach the agent.
#[derive(Debug)]
pub struct ClientConfig {
    /// The agent's (or any PCP server's) address, port 5351 by default.
    pub server: SocketAddr,
    /// The MAC key; `None` sends plain PCP (for a server that authenticates by source only).
    /// With a key, only responses with a valid MAC that echo the request count.
    pub key: Option<AuthKey>,
    /// First retransmission interval. RFC 6887 says 3 s, meant for a home gateway; on a
    /// management network a proxy uses tens of milliseconds so that a lost datagram is
    /// resent within the deadline.
    pub initial_retransmit: Duration,
    /// Cap of the retransmission interval.
    pub max_retransmit: Duration,
}

impl ClientConfig {
    /// RFC 6887's timers, no key.
    pub fn new(server: SocketAddr) -> Self {
        ClientConfig {
            server,
            key: None,
            initial_retransmit: RFC_IRT,
            max_retransmit: RFC_MRT,
        }
    }
}

/// A remote peer allowed to send to a flow (a PCP FILTER option for one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Remote {
    /// The peer's address (same family as the flow).
    pub addr: IpAddr,
    /// The peer's port; `None` for every port.
    pub port: Option<u16>,
}

/// One UDP flow endpoint to open: media arriving at `internal`, from `remotes` (any source
/// when empty). A remote with a port also lets `internal` send to exactly that remote
/// address:port (the mapping's return direction, docs/FIREWALL.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The media address and port the pinhole leads to (the PCP THIRD_PARTY address and
    /// internal port).
    pub internal: SocketAddr,
    /// The peers allowed to send to it; empty: any source.
    pub remotes: Vec<Remote>,
    /// Ask the agent to copy the media arriving at `internal` to its recorder (sipsd's MIRROR
    /// option) while the pinhole lives.
    pub mirror: bool,
}

impl Flow {
    /// A flow any source may send to.
    pub fn any_source(internal: SocketAddr) -> Self {
        Flow {
            internal,
            remotes: Vec::new(),
            mirror: false,
        }
    }

    /// A flow only `remote` may send to (and, when `remote` has a port, `internal` to it).
    pub fn between(internal: SocketAddr, remote: Remote) -> Self {
        Flow {
            internal,
            remotes: vec![remote],
            mirror: false,
        }
    }

    /// The same flow, mirrored to the agent's recorder (or not).
    pub fn mirrored(mut self, mirror: bool) -> Self {
        self.mirror = mirror;
        self
    }

    fn check(&self) -> Result<(), PcpError> {
        if self.internal.port() == 0 {
            return Err(PcpError::InvalidFlow("internal port 0"));
        }
        if self.internal.ip().is_unspecified() {
            return Err(PcpError::InvalidFlow("unspecified internal address"));
        }
        if self.remotes.len() > MAX_REMOTES {
            return Err(PcpError::InvalidFlow("more than 8 remote peers"));
        }
        if self
            .remotes
            .iter()
            .any(|r| r.addr.is_ipv4() != self.internal.is_ipv4())
        {
            return Err(PcpError::InvalidFlow(
                "remote peer of another address family",
            ));
        }
        Ok(())
    }

    fn filters(&self) -> Vec<Filter> {
        self.remotes
            .iter()
            .map(|r| Filter {
                prefix_len: if r.addr.is_ipv4() { 32 } else { 128 },
                remote_port: r.port.unwrap_or(0),
                remote_addr: r.addr,
            })
            .collect()
    }
}

/// What became of one flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowOutcome {
    /// The server answered (authenticated when a key is configured).
    Answered {
        /// Its result code; `Err(v)` for a value RFC 6887 does not define.
        result: Result<ResultCode, u8>,
        /// Granted lifetime in seconds (0 after a delete).
        lifetime: u32,
        /// The server's epoch.
        epoch: u32,
        /// When the answer came, from the start of the exchange.
        after: Duration,
    },
    /// Only an answer without a valid MAC came (e.g. the server's NOT_AUTHORIZED for a key it
    /// does not know): reported, not trusted.
    Unauthenticated {
        /// The unauthenticated result code.
        result: Result<ResultCode, u8>,
    },
    /// No answer before the deadline.
    NoAnswer,
}

impl FlowOutcome {
    /// Whether the flow is open (or deleted) as asked.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            FlowOutcome::Answered {
                result: Ok(ResultCode::Success),
                ..
            }
        )
    }
}

/// The result of one exchange.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// One outcome per flow, in the order given.
    pub outcomes: Vec<FlowOutcome>,
    /// From the first send to the last answer (or the deadline).
    pub elapsed: Duration,
    /// Datagrams sent, retransmissions included.
    pub sent: u32,
}

impl Exchange {
    /// Whether every flow succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.outcomes.iter().all(FlowOutcome::succeeded)
    }
}

/// The mapping nonce of a dialog: the first 96 bits of SHA-256("sipsd pcp nonce" ‖ 0 ‖ id).
/// Every proxy worker derives the same nonce for the same dialog, so any of them can refresh
/// or delete what another opened.
pub fn mapping_nonce(dialog_id: &[u8]) -> Nonce {
    let mut h = Sha256::new();
    h.update(b"sipsd pcp nonce\0");
    h.update(dialog_id);
    let d = h.finalize();
    let mut n = [0u8; 12];
    n.copy_from_slice(&d[..12]);
    Nonce(n)
}

/// A PCP client on one UDP socket connected to the server.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    socket: UdpSocket,
    local: IpAddr,
}

/// One request of an exchange and the transmissions made of it.
struct Pending {
    request: Request,
    /// (timestamp, random) of each signed transmission, for matching the echo.
    signed: Vec<(u64, u64)>,
    outcome: FlowOutcome,
}

impl Client {
    /// Opens the socket (ephemeral port, the family of the server) and connects it, so only
    /// the server's datagrams are received.
    pub fn new(cfg: ClientConfig) -> Result<Self, PcpError> {
        let bind: SocketAddr = match cfg.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(cfg.server)?;
        let local = socket.local_addr()?.ip();
        Ok(Client { cfg, socket, local })
    }

    /// The address the client puts in the header (its source address towards the server).
    pub fn local_addr(&self) -> IpAddr {
        self.local
    }

    /// Opens or refreshes the dialog's pinholes for `flows`, asking for `lifetime` seconds.
    /// A flow sent again with other remotes replaces its filters (RFC 6887 §13.3): that is
    /// how the answer narrows the offer's any-source pinhole.
    pub fn map(
        &self,
        dialog_id: &[u8],
        flows: &[Flow],
        lifetime: u32,
        timeout: Duration,
    ) -> Result<Exchange, PcpError> {
        if lifetime == 0 {
            return Err(PcpError::InvalidFlow("lifetime 0 deletes: use delete()"));
        }
        self.exchange(dialog_id, flows, lifetime, timeout)
    }

    /// Deletes the dialog's pinholes for `flows` (MAP with lifetime 0).
    pub fn delete(
        &self,
        dialog_id: &[u8],
        flows: &[Flow],
        timeout: Duration,
    ) -> Result<Exchange, PcpError> {
        self.exchange(dialog_id, flows, 0, timeout)
    }

    /// ANNOUNCE: whether the server answers, and its epoch.
    pub fn announce(&self, timeout: Duration) -> Result<Exchange, PcpError> {
        let req = Request {
            opcode: Opcode::Announce,
            lifetime: 0,
            client_addr: self.local,
            map: None,
            options: Options::default(),
        };
        self.run(vec![req], timeout)
    }

    fn exchange(
        &self,
        dialog_id: &[u8],
        flows: &[Flow],
        lifetime: u32,
        timeout: Duration,
    ) -> Result<Exchange, PcpError> {
        if flows.is_empty() || flows.len() > MAX_FLOWS {
            return Err(PcpError::InvalidFlow("1 to 64 flows per exchange"));
        }
        let nonce = mapping_nonce(dialog_id);
        let mut reqs = Vec::with_capacity(flows.len());
        for f in flows {
            f.check()?;
            reqs.push(Request {
                opcode: Opcode::Map,
                lifetime,
                client_addr: self.local,
                map: Some(MapData {
                    nonce,
                    protocol: PROTO_UDP,
                    internal_port: f.internal.port(),
                    external_port: f.internal.port(),
                    external_addr: unspecified_like(f.internal.ip()),
                }),
                options: Options {
                    third_party: Some(f.internal.ip()),
                    prefer_failure: false,
                    filters: if lifetime == 0 {
                        Vec::new()
                    } else {
                        f.filters()
                    },
                    mirror: f.mirror && lifetime != 0,
                    auth: None,
                },
            });
        }
        self.run(reqs, timeout)
    }

    fn send(&self, p: &mut Pending) -> Result<(), PcpError> {
        let mut bytes = p.request.encode_unsigned();
        if let Some(key) = &self.cfg.key {
            let ts = auth::now_ms();
            let rnd = auth::random_u64()?;
            auth::sign(&mut bytes, key, ts, rnd);
            p.signed.push((ts, rnd));
        }
        match self.socket.send(&bytes) {
            Ok(_) => Ok(()),
            // ICMP port unreachable of an earlier datagram surfaces here on Linux: the
            // server is down; keep trying until the deadline.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn run(&self, reqs: Vec<Request>, timeout: Duration) -> Result<Exchange, PcpError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut pending: Vec<Pending> = reqs
            .into_iter()
            .map(|request| Pending {
                request,
                signed: Vec::new(),
                outcome: FlowOutcome::NoAnswer,
            })
            .collect();
        let mut sent = 0u32;
        let mut rt = jitter(self.cfg.initial_retransmit)?;
        let mut next_send = start;
        let mut buf = [0u8; MAX_LEN + 4];
        loop {
            let now = Instant::now();
            if now >= next_send {
                for p in pending.iter_mut().filter(|p| !is_final(&p.outcome)) {
                    self.send(p)?;
                    sent += 1;
                }
                next_send = now + rt;
                rt = jitter((rt * 2).min(self.cfg.max_retransmit))?;
            }
            if pending.iter().all(|p| is_final(&p.outcome)) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = next_send.min(deadline).saturating_duration_since(now);
            self.socket
                .set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
            match self.socket.recv(&mut buf) {
                Ok(n) => self.accept(&buf[..n], &mut pending, start),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let elapsed = pending
            .iter()
            .filter_map(|p| match p.outcome {
                FlowOutcome::Answered { after, .. } => Some(after),
                _ => None,
            })
            .max()
            .filter(|_| pending.iter().all(|p| is_final(&p.outcome)))
            .unwrap_or_else(|| start.elapsed());
        Ok(Exchange {
            outcomes: pending.into_iter().map(|p| p.outcome).collect(),
            elapsed,
            sent,
        })
    }

    /// Matches one datagram to a pending request; anything else is ignored.
    fn accept(&self, bytes: &[u8], pending: &mut [Pending], start: Instant) {
        let Ok(resp) = Response::decode(bytes) else {
            return;
        };
        let Some(p) = pending
            .iter_mut()
            .find(|p| matches_request(&p.request, &resp))
        else {
            return;
        };
        if is_final(&p.outcome) {
            return;
        }
        if let Some(key) = &self.cfg.key {
            let authentic =
                auth::verify(bytes, resp.options.auth.as_ref(), std::slice::from_ref(key)).is_ok()
                    && resp
                        .options
                        .auth
                        .is_some_and(|a| p.signed.contains(&(a.timestamp_ms, a.random)));
            if !authentic {
                p.outcome = FlowOutcome::Unauthenticated {
                    result: resp.result,
                };
                return;
            }
        }
        p.outcome = FlowOutcome::Answered {
            result: resp.result,
            lifetime: resp.lifetime,
            epoch: resp.epoch,
            after: start.elapsed(),
        };
    }
}

fn is_final(o: &FlowOutcome) -> bool {
    matches!(o, FlowOutcome::Answered { .. })
}

/// Whether a response answers a request: same opcode; for MAP the same nonce, protocol,
/// internal port and THIRD_PARTY address (RFC 6887 §11.3).
fn matches_request(req: &Request, resp: &Response) -> bool {
    if req.opcode != resp.opcode {
        return false;
    }
    match (&req.map, &resp.map) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.nonce == b.nonce
                && a.protocol == b.protocol
                && a.internal_port == b.internal_port
                && req.options.third_party == resp.options.third_party
        }
        _ => false,
    }
}

/// `d` × (1 + RAND), RAND uniform in [-0.1, +0.1] (RFC 6887 §8.1.1).
fn jitter(d: Duration) -> Result<Duration, PcpError> {
    let r = auth::random_u64()? % 2001; // 0..=2000 → -0.1..=+0.1 in steps of 0.0001
    let factor = 0.9 + (r as f64) / 10_000.0;
    Ok(d.mul_f64(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_stable_and_distinct() {
        assert_eq!(mapping_nonce(b"a"), mapping_nonce(b"a"));
        assert_ne!(mapping_nonce(b"a"), mapping_nonce(b"b"));
    }

    #[test]
    fn no_server_means_no_answer_within_the_deadline() {
        // A bound socket that never answers: the client gives up at the deadline.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut cfg = ClientConfig::new(silent.local_addr().unwrap());
        cfg.initial_retransmit = Duration::from_millis(20);
        let c = Client::new(cfg).unwrap();
        let flows = [Flow::any_source("127.0.0.1:40000".parse().unwrap())];
        let t = Instant::now();
        let x = c
            .map(b"dialog", &flows, 30, Duration::from_millis(150))
            .unwrap();
        let took = t.elapsed();
        assert_eq!(x.outcomes, vec![FlowOutcome::NoAnswer]);
        assert!(x.sent >= 3, "retransmitted: {}", x.sent);
        // a bound, not a speed target: 150 ms asked, far less than 2 s taken
        assert!(took < Duration::from_secs(2), "{took:?}");
        let mut buf = [0u8; 1200];
        let n = silent.recv(&mut buf).unwrap();
        let r = Request::decode(&buf[..n]).unwrap();
        assert_eq!(r.map.unwrap().nonce, mapping_nonce(b"dialog"));
        assert_eq!(r.options.third_party, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_flows_are_refused_before_sending() {
        let c = Client::new(ClientConfig::new("127.0.0.1:5351".parse().unwrap())).unwrap();
        let v6 = Remote {
            addr: "::1".parse().unwrap(),
            port: None,
        };
        let bad = [Flow::between("127.0.0.1:4000".parse().unwrap(), v6)];
        assert!(c.map(b"d", &bad, 30, Duration::from_millis(10)).is_err());
        let zero = [Flow::any_source("127.0.0.1:0".parse().unwrap())];
        assert!(c.map(b"d", &zero, 30, Duration::from_millis(10)).is_err());
        assert!(c.map(b"d", &[], 30, Duration::from_millis(10)).is_err());
    }
}
