//! What the agent does with an authenticated PCP request: policy checks, the set changes of
//! one mapping, one nftables transaction, and the response.
//!
//! A request is checked completely before anything is changed, and its changes are one
//! transaction: a request with one bad FILTER among good ones changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sipsd::pcp::wire::{MapData, Options, PROTO_UDP};
use sipsd::pcp::{Nonce, Opcode, Request, Response, ResultCode};

use crate::config::Config;
use crate::nft::{Nft, Op, Refresh};
use crate::pinholes::{comment, Key, Mapping, Pinholes};
use crate::FwError;

/// The decision on one request, for the response and the log line.
#[derive(Debug)]
pub struct Decision {
    /// The result code.
    pub result: ResultCode,
    /// Granted lifetime (0 on delete or error).
    pub lifetime: u32,
    /// Why, on an error; what was done, on success.
    pub note: String,
}

impl Decision {
    fn refuse(result: ResultCode, note: impl Into<String>) -> Self {
        Decision {
            result,
            lifetime: 0,
            note: note.into(),
        }
    }
}

/// The agent's state: its table's driver and its view of the pinholes.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    nft: Nft,
    refresh: Refresh,
    pinholes: Pinholes,
    started: Instant,
}

impl Engine {
    /// Sets the table up (keeping every element), checks how timeouts refresh, and reads
    /// the pinholes back. The notes say what was found.
    pub fn start(cfg: Config) -> Result<(Self, Vec<String>), FwError> {
        let nft = Nft::new(cfg.nft.clone(), cfg.table.clone());
        nft.setup(&cfg)?;
        let refresh = nft.probe_refresh()?;
        let now = Instant::now();
        let (pinholes, mut notes) = Pinholes::restore(nft.read()?, now);
        notes.insert(
            0,
            format!(
                "table inet {}: {} mappings, {} elements kept from before; timeouts refresh by {}",
                cfg.table,
                pinholes.len(),
                pinholes.elements(),
                match refresh {
                    Refresh::Add => "add",
                    Refresh::DeleteAdd => "delete + add",
                }
            ),
        );
        Ok((
            Engine {
                cfg,
                nft,
                refresh,
                pinholes,
                started: now,
            },
            notes,
        ))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The driver.
    pub fn nft(&self) -> &Nft {
        &self.nft
    }

    /// The pinholes as the agent sees them.
    pub fn pinholes(&self) -> &Pinholes {
        &self.pinholes
    }

    /// PCP epoch: seconds since this agent started. A restart sets it back, which tells
    /// clients (RFC 6887 §8.5) to refresh their mappings; those refreshes find the elements
    /// still in place.
    pub fn epoch(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Forgets mappings whose elements the kernel has expired.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.pinholes.expire(now)
    }

    /// Decides and applies one request from `src` (already authenticated and fresh).
    pub fn handle(&mut self, req: &Request, src: IpAddr, now: Instant) -> Decision {
        self.handle_batch(&[(req, src)], now)
            .pop()
            .expect("one decision per request")
    }

    /// Decides the requests in order (each sees the ones before it) and applies all their
    /// set changes as one nftables transaction. If nftables refuses the transaction, each
    /// request is applied alone instead, so that one failing request cannot fail the others;
    /// a request alone whose transaction fails is retried once on the table read back.
    pub fn handle_batch(&mut self, reqs: &[(&Request, IpAddr)], now: Instant) -> Vec<Decision> {
        self.pinholes.expire(now);
        let mut view = View::default();
        let mut ops = Vec::new();
        let mut decisions = Vec::with_capacity(reqs.len());
        for (req, src) in reqs {
            match self.plan(req, *src, now, &view) {
                Ok(p) => {
                    for (internal, m) in p.changes {
                        let old = view
                            .get(&self.pinholes, &internal, now)
                            .map_or(0, |o| o.keys.len());
                        let new = m.as_ref().map_or(0, |m| m.keys.len());
                        view.delta += new as isize - old as isize;
                        view.overlay.insert(internal, m);
                    }
                    ops.extend(p.ops);
                    decisions.push(p.decision);
                }
                Err(d) => decisions.push(d),
            }
        }
        if ops.is_empty() {
            return decisions;
        }
        match self.nft.apply(&ops) {
            Ok(()) => {
                for (internal, m) in view.overlay {
                    match m {
                        Some(m) => self.pinholes.set(internal, m),
                        None => self.pinholes.remove(&internal),
                    }
                }
                decisions
            }
            Err(_) if reqs.len() > 1 => reqs.iter().map(|r| self.handle(r.0, r.1, now)).collect(),
            Err(first) => {
                // Alone: the view may be stale (an element expired, or was removed by hand).
                let fresh = self.nft.read().map(|e| Pinholes::restore(e, now).0);
                match fresh {
                    Ok(p) => self.pinholes = p,
                    Err(e) => return vec![network_failure(format!("{first}; reading back: {e}"))],
                }
                let (req, src) = reqs[0];
                let view = View::default();
                match self.plan(req, src, now, &view) {
                    Ok(p) => match self.nft.apply(&p.ops) {
                        Ok(()) => {
                            for (internal, m) in p.changes {
                                match m {
                                    Some(m) => self.pinholes.set(internal, m),
                                    None => self.pinholes.remove(&internal),
                                }
                            }
                            vec![p.decision]
                        }
                        Err(e) => vec![network_failure(format!(
                            "{first}; after re-reading the table: {e}"
                        ))],
                    },
                    Err(d) => vec![d],
                }
            }
        }
    }

    /// What one request would change, checked completely; nothing is applied here.
    fn plan(
        &self,
        req: &Request,
        src: IpAddr,
        now: Instant,
        view: &View,
    ) -> Result<Plan, Decision> {
        if req.client_addr.to_canonical() != src.to_canonical() {
            return Err(Decision::refuse(
                ResultCode::AddressMismatch,
                format!(
                    "header says {} but the packet came from {src}",
                    req.client_addr
                ),
            ));
        }
        let m = match (req.opcode, &req.map) {
            (Opcode::Announce, _) => {
                return Ok(Plan {
                    changes: Vec::new(),
                    ops: Vec::new(),
                    decision: Decision {
                        result: ResultCode::Success,
                        lifetime: 0,
                        note: "announce".into(),
                    },
                })
            }
            (Opcode::Map, Some(m)) => m,
            (Opcode::Map, None) => {
                return Err(Decision::refuse(
                    ResultCode::MalformedRequest,
                    "no MAP data",
                ))
            }
        };
        let internal_ip = req.options.third_party.unwrap_or(req.client_addr);
        self.check_internal(internal_ip)?;
        if req.lifetime == 0 {
            return self.plan_delete(m, internal_ip, now, view);
        }
        if m.protocol != PROTO_UDP {
            return Err(Decision::refuse(
                ResultCode::UnsupportedProtocol,
                "only UDP is mapped",
            ));
        }
        if m.internal_port == 0 {
            return Err(Decision::refuse(
                ResultCode::NotAuthorized,
                "a pinhole to every port",
            ));
        }
        let internal = SocketAddr::new(internal_ip, m.internal_port);
        let keys = self.keys_of(internal, &req.options)?;
        let old = view.get(&self.pinholes, &internal, now);
        if let Some(o) = old {
            if o.nonce != m.nonce {
                return Err(Decision::refuse(
                    ResultCode::NotAuthorized,
                    format!("{internal} belongs to another mapping nonce"),
                ));
            }
        }
        let old_keys = old.map(|o| o.keys.clone()).unwrap_or_default();
        let total = self.pinholes.elements() as isize + view.delta - old_keys.len() as isize
            + keys.len() as isize;
        if total > self.cfg.max_elements as isize {
            return Err(Decision::refuse(
                ResultCode::NoResources,
                "max_elements reached",
            ));
        }
        let granted = req
            .lifetime
            .clamp(self.cfg.min_lifetime, self.cfg.max_lifetime);
        let mut ops: Vec<Op> = old_keys.difference(&keys).map(|k| Op::Delete(*k)).collect();
        for k in &keys {
            if self.refresh == Refresh::DeleteAdd && old_keys.contains(k) {
                ops.push(Op::Delete(*k));
            }
            ops.push(Op::Add {
                key: *k,
                timeout: granted,
                comment: comment(&m.nonce),
            });
        }
        let note = keys
            .iter()
            .map(Key::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Plan {
            changes: vec![(
                internal,
                Some(Mapping {
                    nonce: m.nonce,
                    keys,
                    expires: now + Duration::from_secs(u64::from(granted)),
                }),
            )],
            ops,
            decision: Decision {
                result: ResultCode::Success,
                lifetime: granted,
                note: format!("open {note}"),
            },
        })
    }

    fn plan_delete(
        &self,
        m: &MapData,
        internal_ip: IpAddr,
        now: Instant,
        view: &View,
    ) -> Result<Plan, Decision> {
        let targets: Vec<SocketAddr> = match (m.protocol, m.internal_port) {
            (0, 0) => view.of_addr(&self.pinholes, internal_ip, &m.nonce, now),
            (PROTO_UDP, port) if port != 0 => {
                let internal = SocketAddr::new(internal_ip, port);
                match view.get(&self.pinholes, &internal, now) {
                    Some(o) if o.nonce != m.nonce => {
                        return Err(Decision::refuse(
                            ResultCode::NotAuthorized,
                            format!("{internal} belongs to another mapping nonce"),
                        ))
                    }
                    Some(_) => vec![internal],
                    None => Vec::new(),
                }
            }
            (PROTO_UDP, _) => {
                return Err(Decision::refuse(
                    ResultCode::MalformedRequest,
                    "delete of UDP port 0",
                ))
            }
            _ => {
                return Err(Decision::refuse(
                    ResultCode::UnsupportedProtocol,
                    "only UDP is mapped",
                ))
            }
        };
        let ops = targets
            .iter()
            .filter_map(|t| view.get(&self.pinholes, t, now))
            .flat_map(|o| o.keys.iter().map(|k| Op::Delete(*k)))
            .collect();
        let what = targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Plan {
            changes: targets.iter().map(|t| (*t, None)).collect(),
            ops,
            decision: Decision {
                result: ResultCode::Success,
                lifetime: 0,
                note: if targets.is_empty() {
                    "delete: nothing mapped".into()
                } else {
                    format!("deleted {what}")
                },
            },
        })
    }

    /// Whether a pinhole may lead to this address.
    fn check_internal(&self, ip: IpAddr) -> Result<(), Decision> {
        let ip = ip.to_canonical();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
            return Err(Decision::refuse(
                ResultCode::NotAuthorized,
                format!("internal address {ip} cannot have a pinhole"),
            ));
        }
        if !self.cfg.media_allowed(ip) {
            return Err(Decision::refuse(
                ResultCode::NotAuthorized,
                format!("internal address {ip} is outside media_networks"),
            ));
        }
        Ok(())
    }

    /// The elements of a mapping from its FILTER options; every filter is checked first.
    fn keys_of(&self, internal: SocketAddr, o: &Options) -> Result<BTreeSet<Key>, Decision> {
        if o.filters.len() > self.cfg.max_filters {
            return Err(Decision::refuse(
                ResultCode::ExcessiveRemotePeers,
                format!(
                    "{} filters, at most {}",
                    o.filters.len(),
                    self.cfg.max_filters
                ),
            ));
        }
        let mut keys = BTreeSet::new();
        for f in &o.filters {
            let remote = f.remote_addr;
            if remote.is_ipv4() != internal.is_ipv4() {
                return Err(Decision::refuse(
                    ResultCode::MalformedOption,
                    format!("FILTER {remote} is not of the internal address's family"),
                ));
            }
            if f.prefix_len == 0 {
                // "no filter" (RFC 6887 §13.3): only meaningful alone
                if o.filters.len() > 1 {
                    return Err(Decision::refuse(
                        ResultCode::MalformedOption,
                        "FILTER with prefix 0 next to other filters",
                    ));
                }
                continue;
            }
            let full = if remote.is_ipv4() { 32 } else { 128 };
            if f.prefix_len != full {
                return Err(Decision::refuse(
                    ResultCode::UnsupportedOption,
                    format!(
                        "FILTER {remote}/{}: only single hosts (/{full})",
                        f.prefix_len
                    ),
                ));
            }
            let r = remote.to_canonical();
            if r.is_unspecified() || r.is_multicast() {
                return Err(Decision::refuse(
                    ResultCode::MalformedOption,
                    format!("FILTER remote {r} is not a host"),
                ));
            }
            keys.insert(match f.remote_port {
                0 => Key::Peer {
                    remote: r,
                    internal,
                },
                port => Key::Flow {
                    remote: SocketAddr::new(r, port),
                    internal,
                },
            });
        }
        if keys.is_empty() {
            keys.insert(Key::Open { internal });
        }
        // mirroring only towards a recorder of the same family as the media
        if o.mirror
            && self
                .cfg
                .recorder
                .is_some_and(|r| r.is_ipv4() == internal.is_ipv4())
        {
            keys.insert(Key::Mirror { internal });
        }
        Ok(keys)
    }

    /// The response to `req` with `d`'s result, echoing what the request asked (RFC 6887
    /// §8.3, §11.3): for a firewall the external address and port are the internal ones.
    pub fn response(&self, req: &Request, d: &Decision) -> Response {
        let map = req.map.map(|m| {
            let internal_ip = req.options.third_party.unwrap_or(req.client_addr);
            MapData {
                external_port: m.internal_port,
                external_addr: internal_ip,
                ..m
            }
        });
        Response {
            opcode: req.opcode,
            result: Ok(d.result),
            lifetime: d.lifetime,
            epoch: self.epoch(),
            map,
            options: Options {
                auth: None,
                ..req.options.clone()
            },
        }
    }
}

/// What one request changes: the mappings after it (None: deleted), the set operations,
/// and the answer.
struct Plan {
    changes: Vec<(SocketAddr, Option<Mapping>)>,
    ops: Vec<Op>,
    decision: Decision,
}

/// The pinholes as the requests of a batch planned so far leave them.
#[derive(Default)]
struct View {
    overlay: HashMap<SocketAddr, Option<Mapping>>,
    delta: isize,
}

impl View {
    fn get<'a>(
        &'a self,
        base: &'a Pinholes,
        internal: &SocketAddr,
        now: Instant,
    ) -> Option<&'a Mapping> {
        match self.overlay.get(internal) {
            Some(m) => m.as_ref(),
            None => base.get(internal, now),
        }
    }

    fn of_addr(
        &self,
        base: &Pinholes,
        addr: IpAddr,
        nonce: &Nonce,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = base
            .of_addr(addr, nonce, now)
            .into_iter()
            .filter(|k| !self.overlay.contains_key(k))
            .collect();
        v.extend(self.overlay.iter().filter_map(|(k, m)| {
            m.as_ref()
                .filter(|m| k.ip() == addr && m.nonce == *nonce)
                .map(|_| *k)
        }));
        v.sort();
        v
    }
}

fn network_failure(e: String) -> Decision {
    Decision::refuse(ResultCode::NetworkFailure, format!("nftables: {e}"))
}

/// The nonce of a request (for logs).
pub fn nonce_of(req: &Request) -> Option<Nonce> {
    req.map.map(|m| m.nonce)
}
