//! What the agent does with an authenticated PCP request: policy checks, the set changes of
//! one mapping, one nftables transaction, and the response.
//!
//! A request is checked completely before anything is changed, and its changes are one
//! transaction: a request with one bad FILTER among good ones changes nothing.

use std::collections::BTreeSet;
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
        self.pinholes.expire(now);
        if req.client_addr.to_canonical() != src.to_canonical() {
            return Decision::refuse(
                ResultCode::AddressMismatch,
                format!(
                    "header says {} but the packet came from {src}",
                    req.client_addr
                ),
            );
        }
        match (req.opcode, &req.map) {
            (Opcode::Announce, _) => Decision {
                result: ResultCode::Success,
                lifetime: 0,
                note: "announce".into(),
            },
            (Opcode::Map, Some(m)) => self.map(req, m, now),
            (Opcode::Map, None) => Decision::refuse(ResultCode::MalformedRequest, "no MAP data"),
        }
    }

    fn map(&mut self, req: &Request, m: &MapData, now: Instant) -> Decision {
        let internal_ip = req.options.third_party.unwrap_or(req.client_addr);
        if let Err(d) = self.check_internal(internal_ip) {
            return d;
        }
        if req.lifetime == 0 {
            return self.delete(m, internal_ip, now);
        }
        if m.protocol != PROTO_UDP {
            return Decision::refuse(ResultCode::UnsupportedProtocol, "only UDP is mapped");
        }
        if m.internal_port == 0 {
            return Decision::refuse(ResultCode::NotAuthorized, "a pinhole to every port");
        }
        let internal = SocketAddr::new(internal_ip, m.internal_port);
        let keys = match self.keys_of(internal, &req.options) {
            Ok(k) => k,
            Err(d) => return d,
        };
        let old = self.pinholes.get(&internal, now);
        if let Some(o) = old {
            if o.nonce != m.nonce {
                return Decision::refuse(
                    ResultCode::NotAuthorized,
                    format!("{internal} belongs to another mapping nonce"),
                );
            }
        }
        let old_len = old.map_or(0, |o| o.keys.len());
        if self.pinholes.elements() - old_len + keys.len() > self.cfg.max_elements {
            return Decision::refuse(ResultCode::NoResources, "max_elements reached");
        }
        let granted = req
            .lifetime
            .clamp(self.cfg.min_lifetime, self.cfg.max_lifetime);
        let nonce = m.nonce;
        let result = self.apply_retrying(now, |p: &Pinholes, refresh| {
            let old = p
                .get(&internal, now)
                .map(|o| o.keys.clone())
                .unwrap_or_default();
            let mut ops: Vec<Op> = old.difference(&keys).map(|k| Op::Delete(*k)).collect();
            for k in &keys {
                if refresh == Refresh::DeleteAdd && old.contains(k) {
                    ops.push(Op::Delete(*k));
                }
                ops.push(Op::Add {
                    key: *k,
                    timeout: granted,
                    comment: comment(&nonce),
                });
            }
            ops
        });
        if let Err(e) = result {
            return Decision::refuse(ResultCode::NetworkFailure, format!("nftables: {e}"));
        }
        let note = keys
            .iter()
            .map(Key::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.pinholes.set(
            internal,
            Mapping {
                nonce,
                keys,
                expires: now + Duration::from_secs(u64::from(granted)),
            },
        );
        Decision {
            result: ResultCode::Success,
            lifetime: granted,
            note: format!("open {note}"),
        }
    }

    fn delete(&mut self, m: &MapData, internal_ip: IpAddr, now: Instant) -> Decision {
        let targets: Vec<SocketAddr> = match (m.protocol, m.internal_port) {
            (0, 0) => self.pinholes.of_addr(internal_ip, &m.nonce, now),
            (PROTO_UDP, port) if port != 0 => {
                let internal = SocketAddr::new(internal_ip, port);
                match self.pinholes.get(&internal, now) {
                    Some(o) if o.nonce != m.nonce => {
                        return Decision::refuse(
                            ResultCode::NotAuthorized,
                            format!("{internal} belongs to another mapping nonce"),
                        )
                    }
                    Some(_) => vec![internal],
                    None => Vec::new(),
                }
            }
            (PROTO_UDP, _) => {
                return Decision::refuse(ResultCode::MalformedRequest, "delete of UDP port 0")
            }
            _ => return Decision::refuse(ResultCode::UnsupportedProtocol, "only UDP is mapped"),
        };
        let result = self.apply_retrying(now, |p: &Pinholes, _| {
            targets
                .iter()
                .filter_map(|t| p.get(t, now))
                .flat_map(|o| o.keys.iter().map(|k| Op::Delete(*k)))
                .collect()
        });
        if let Err(e) = result {
            return Decision::refuse(ResultCode::NetworkFailure, format!("nftables: {e}"));
        }
        for t in &targets {
            self.pinholes.remove(t);
        }
        let what = targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Decision {
            result: ResultCode::Success,
            lifetime: 0,
            note: if targets.is_empty() {
                "delete: nothing mapped".into()
            } else {
                format!("deleted {what}")
            },
        }
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
        Ok(keys)
    }

    /// Applies the operations `plan` computes from the current view; if nftables refuses
    /// them (e.g. an element expired a moment before its delete), reads the table back and
    /// tries once more with a fresh plan.
    fn apply_retrying(
        &mut self,
        now: Instant,
        plan: impl Fn(&Pinholes, Refresh) -> Vec<Op>,
    ) -> Result<(), FwError> {
        match self.nft.apply(&plan(&self.pinholes, self.refresh)) {
            Ok(()) => Ok(()),
            Err(first) => {
                let (fresh, _) = Pinholes::restore(self.nft.read()?, now);
                self.pinholes = fresh;
                self.nft
                    .apply(&plan(&self.pinholes, self.refresh))
                    .map_err(|e| FwError::Nft(format!("{first}; after re-reading the table: {e}")))
            }
        }
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

/// The nonce of a request (for logs).
pub fn nonce_of(req: &Request) -> Option<Nonce> {
    req.map.map(|m| m.nonce)
}
