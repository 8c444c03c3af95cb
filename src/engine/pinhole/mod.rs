//! What a trusted proxy does with the media it read: firewall pinholes for exactly the
//! negotiated flows, asked of the firewall agent (`tools/sipsd-fw`) over PCP
//! (docs/FIREWALL.md §7, docs/PROTOCOL.md §7).
//!
//! Input is the per-message result the proxy already produces: the parts
//! [`Proxy::unwrap`](crate::engine::proxy::Proxy::unwrap) disclosed. That result only exists
//! for a key accepted under the integrity rules (docs/PROTOCOL.md §6): a refused rotation or
//! a replaced key yields an error and no parts, so it can open nothing here.
//!
//! - An offer (a request with SDP) is remembered in the shared table; with
//!   `pinhole_on_offer=1` it also opens any-source pinholes to the offerer's media (early
//!   media), otherwise nothing opens before the answer.
//! - An answer (a reply with SDP) opens, for every stream both sides enabled, RTP and RTCP
//!   each way, between exactly the two address:port pairs; what the offer opened and the
//!   answer no longer needs is deleted.
//! - [`Pinholes::close`] at BYE, CANCEL or a failed INVITE deletes them;
//!   [`Pinholes::refresh`] (a timer) renews the lifetimes while the dialog lives, at most
//!   `pinhole_max_duration` after the first pinhole, so a dialog whose end the proxy never
//!   saw loses its pinholes at the agent's expiry.
//!
//! Each PCP exchange is bounded by `pinhole_timeout`; the table lock is never held across
//! one. The PCP client (a UDP socket) is made per process, at its first use after the fork.

mod table;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;

use crate::engine::cache::now_secs;
use crate::engine::proxy::{Counter, DisclosedPart, Proxy, SipMessage};
use crate::engine::{Error, Result};
use crate::pcp::{AuthKey, Client, ClientConfig, Exchange, Flow, FlowOutcome, Remote};
use table::{Addr, FlowRec, Slot, Stream, Table};
pub use table::{Stage, MAX_DIALOG_FLOWS, MAX_STREAMS};

/// The `pinhole_*` options.
#[derive(Clone, Debug)]
pub struct PinholeConfig {
    /// The agent's PCP address (`pinhole_agent`); `None`: pinholes are off.
    pub agent: Option<SocketAddr>,
    /// The MAC key file (hex, mode 0600) and its id (`pinhole_key`: `id=N;file=PATH`);
    /// `None` sends plain PCP.
    pub key: Option<(u32, PathBuf)>,
    /// Longest wait for the agent per exchange (`pinhole_timeout`, ms).
    pub timeout: Duration,
    /// First retransmission (`pinhole_retransmit`, ms).
    pub retransmit: Duration,
    /// Lifetime asked for (`pinhole_lifetime`, s).
    pub lifetime: u32,
    /// Open any-source pinholes to the offerer at the offer (`pinhole_on_offer`).
    pub on_offer: bool,
    /// Stop refreshing this long after the first pinhole of a dialog (`pinhole_max_duration`, s).
    pub max_duration: u32,
    /// Most dialogs with pinholes (`pinhole_capacity`).
    pub capacity: u32,
}

impl Default for PinholeConfig {
    fn default() -> Self {
        PinholeConfig {
            agent: None,
            key: None,
            timeout: Duration::from_millis(300),
            retransmit: Duration::from_millis(50),
            lifetime: 120,
            on_offer: false,
            max_duration: 7200,
            capacity: 4096,
        }
    }
}

fn bad(name: &str, value: &str, want: &str) -> Error {
    Error::Config(format!("{name}: '{value}' is not {want}"))
}

fn num(name: &str, value: &str, lo: u64, hi: u64) -> Result<u64> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| bad(name, value, &format!("a number from {lo} to {hi}")))
}

impl PinholeConfig {
    /// Sets `name` if it is a pinhole option; `Ok(false)` for another name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool> {
        match name {
            "pinhole_agent" => {
                self.agent = Some(
                    value
                        .parse()
                        .map_err(|_| bad(name, value, "ADDRESS:PORT (e.g. 192.0.2.1:5351)"))?,
                )
            }
            "pinhole_key" => {
                let (mut id, mut file) = (1u32, None);
                for kv in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    match kv.split_once('=') {
                        Some(("id", v)) => id = num(name, v, 0, u64::from(u32::MAX))? as u32,
                        Some(("file", v)) if !v.is_empty() => file = Some(PathBuf::from(v)),
                        _ => return Err(bad(name, value, "id=N;file=PATH")),
                    }
                }
                self.key = Some((id, file.ok_or_else(|| bad(name, value, "id=N;file=PATH"))?));
            }
            "pinhole_timeout" => self.timeout = Duration::from_millis(num(name, value, 10, 5000)?),
            "pinhole_retransmit" => {
                self.retransmit = Duration::from_millis(num(name, value, 5, 5000)?)
            }
            "pinhole_lifetime" => self.lifetime = num(name, value, 2, 86400)? as u32,
            "pinhole_on_offer" => self.on_offer = num(name, value, 0, 1)? == 1,
            "pinhole_max_duration" => self.max_duration = num(name, value, 1, 604_800)? as u32,
            "pinhole_capacity" => {
                self.capacity = num(name, value, 1, u64::from(table::MAX_CAPACITY))? as u32
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What [`Pinholes::on_message`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Pinholes the agent confirmed in this exchange (0 for an offer kept for its answer).
    pub flows: usize,
    /// Stale pinholes deleted (what an offer opened that the answer does not need).
    pub deleted: usize,
    /// The dialog's stage afterwards.
    pub stage: Option<Stage>,
}

/// One dialog's pinholes, for the RPC.
#[derive(Clone, Debug)]
pub struct DialogPinholes {
    /// Call-ID.
    pub call_id: String,
    /// The caller's tag.
    pub tag: String,
    /// Offered or answered.
    pub stage: Stage,
    /// Each pinhole: `internal:port <- remote[:port]` (`*` for any source).
    pub flows: Vec<String>,
    /// Seconds until the agent drops them unless refreshed (0: past).
    pub expires_in: u64,
    /// Seconds since the first.
    pub age: u64,
}

/// The pinholes of every dialog through this proxy; see the module doc.
pub struct Pinholes {
    cfg: PinholeConfig,
    agent: SocketAddr,
    table: Table,
    /// (pid, client): made at first use in each process.
    client: Mutex<Option<(u32, Client)>>,
}

impl Pinholes {
    /// Maps the table and checks the key file. Call before forking. `None` when no agent is
    /// configured.
    pub fn new(cfg: &PinholeConfig) -> Result<Option<Pinholes>> {
        let Some(agent) = cfg.agent else {
            return Ok(None);
        };
        if let Some((id, path)) = &cfg.key {
            AuthKey::from_file(*id, path)
                .map_err(|e| Error::Config(format!("pinhole_key {}: {e}", path.display())))?;
        }
        Ok(Some(Pinholes {
            cfg: cfg.clone(),
            agent,
            table: Table::create(cfg.capacity)?,
            client: Mutex::new(None),
        }))
    }

    /// The configuration in use.
    pub fn config(&self) -> &PinholeConfig {
        &self.cfg
    }

    fn with_client<T>(&self, f: impl FnOnce(&Client) -> Result<T>) -> Result<T> {
        let mut c = self.client.lock();
        let pid = std::process::id();
        if c.as_ref().is_none_or(|(p, _)| *p != pid) {
            let key = match &self.cfg.key {
                Some((id, path)) => Some(AuthKey::from_file(*id, path).map_err(pcp_error)?),
                None => None,
            };
            let client = Client::new(ClientConfig {
                server: self.agent,
                key,
                initial_retransmit: self.cfg.retransmit,
                max_retransmit: self.cfg.timeout,
            })
            .map_err(pcp_error)?;
            *c = Some((pid, client));
        }
        let (_, client) = c.as_ref().ok_or(Error::PinholeAgent("no client".into()))?;
        f(client)
    }

    /// One exchange with the agent, counted: latency, flows opened/closed/refused, agent
    /// errors. `Ok(n)`: flows confirmed; an error when not every flow was.
    fn exchange(
        &self,
        proxy: &Proxy,
        dialog: &[u8],
        flows: &[Flow],
        lifetime: u32,
    ) -> Result<usize> {
        if flows.is_empty() {
            return Ok(0);
        }
        let x: Exchange = self
            .with_client(|c| {
                if lifetime == 0 {
                    c.delete(dialog, flows, self.cfg.timeout)
                } else {
                    c.map(dialog, flows, lifetime, self.cfg.timeout)
                }
                .map_err(pcp_error)
            })
            .inspect_err(|_| proxy.count(Counter::PinholeAgentErrors))?;
        let us = u64::try_from(x.elapsed.as_micros()).unwrap_or(u64::MAX);
        proxy.count(Counter::PinholeExchanges);
        proxy.count_n(Counter::PinholeLatencyUs, us);
        proxy.count_max(Counter::PinholeLatencyMaxUs, us);
        let ok = x.outcomes.iter().filter(|o| o.succeeded()).count();
        let silent = x
            .outcomes
            .iter()
            .filter(|o| !matches!(o, FlowOutcome::Answered { .. }))
            .count();
        let refused = x.outcomes.len() - ok - silent;
        proxy.count_n(
            if lifetime == 0 {
                Counter::PinholesClosed
            } else {
                Counter::PinholesOpened
            },
            ok as u64,
        );
        if refused > 0 {
            proxy.count_n(Counter::PinholesRefused, refused as u64);
        }
        if silent > 0 {
            proxy.count(Counter::PinholeAgentErrors);
        }
        if ok == flows.len() {
            Ok(ok)
        } else {
            Err(Error::PinholeAgent(format!(
                "{ok} of {} flows confirmed ({refused} refused, {silent} unanswered in {:?})",
                flows.len(),
                x.elapsed
            )))
        }
    }

    /// Acts on a message whose parts `parts` were disclosed (see the module doc).
    pub fn on_message(
        &self,
        proxy: &Proxy,
        msg: &SipMessage<'_>,
        parts: &[&DisclosedPart],
    ) -> Result<Opened> {
        let Some(streams) = streams_of(parts) else {
            return Ok(Opened::default());
        };
        if msg.call_id.is_empty() || msg.from_tag.is_empty() {
            return Err(Error::InvalidMessage("no Call-ID or From tag"));
        }
        let now = now_secs();
        let is_offer = msg.status == 0;
        if !is_offer && !(100..300).contains(&msg.status) {
            return Ok(Opened::default());
        }
        let tags: Vec<&[u8]> = [msg.from_tag, msg.to_tag]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        // Under the lock: find or make the dialog's slot, work out the flows; no I/O.
        let (dialog, new_flows, stale, stage) = {
            let mut t = self.table.lock()?;
            let i = match t.find(msg.call_id, &tags) {
                Some(i) => i,
                None if is_offer && msg.to_tag.is_empty() => {
                    match t.insert(msg.call_id, msg.from_tag, now) {
                        Some(i) => i,
                        None => {
                            proxy.count(Counter::PinholesRefused);
                            return Err(Error::PinholeFull);
                        }
                    }
                }
                // an answer or an in-dialog offer for a dialog we hold nothing of: its offer
                // was not acted on here (or the table was full)
                None => return Ok(Opened::default()),
            };
            let slot = &mut t.slots()[i];
            let dialog = dialog_id(slot);
            if is_offer {
                slot.set_offer(&streams);
                if !self.cfg.on_offer || slot.stage() == Stage::Answered {
                    // nothing opens before the answer (or a re-offer keeps the current
                    // flows until its answer)
                    let stage = slot.stage();
                    return Ok(Opened {
                        stage: Some(stage),
                        ..Opened::default()
                    });
                }
                let flows: Vec<FlowRec> = dedup(streams.iter().flat_map(|s| {
                    [
                        any_source(s.rtp, s.rtp_port),
                        any_source(s.rtcp, s.rtcp_port),
                    ]
                }));
                (dialog, flows, Vec::new(), Stage::Offered)
            } else {
                let flows = dedup(
                    slot.offer()
                        .iter()
                        .zip(&streams)
                        .filter(|(o, a)| o.rtp.ip().is_some() && a.rtp.ip().is_some())
                        .filter(|(o, a)| {
                            o.rtp.ip().map(|i| i.is_ipv4()) == a.rtp.ip().map(|i| i.is_ipv4())
                        })
                        .flat_map(|(o, a)| {
                            [
                                between(o.rtp, o.rtp_port, a.rtp, a.rtp_port),
                                between(a.rtp, a.rtp_port, o.rtp, o.rtp_port),
                                between(o.rtcp, o.rtcp_port, a.rtcp, a.rtcp_port),
                                between(a.rtcp, a.rtcp_port, o.rtcp, o.rtcp_port),
                            ]
                        }),
                );
                if slot.offer().is_empty() {
                    return Ok(Opened::default());
                }
                let stale: Vec<FlowRec> = slot
                    .flows()
                    .iter()
                    .filter(|old| {
                        !flows
                            .iter()
                            .any(|f| f.internal == old.internal && f.port == old.port)
                    })
                    .copied()
                    .collect();
                (dialog, flows, stale, Stage::Answered)
            }
        };
        let lifetime = self.cfg.lifetime;
        let opened = self.exchange(proxy, &dialog, &to_flows(&new_flows), lifetime);
        let deleted = if opened.is_ok() && !stale.is_empty() {
            self.exchange(proxy, &dialog, &to_flows(&stale), 0)
                .unwrap_or(0)
        } else {
            0
        };
        // An offer the agent did not confirm: undo what it may have applied (the INVITE may be
        // refused, pinhole_on_failure=reject), keep the offer for its answer, renew nothing.
        let undone = opened.is_err() && stage == Stage::Offered;
        if undone {
            let _ = self.exchange(proxy, &dialog, &to_flows(&new_flows), 0);
        }
        // Record what the agent holds (after a failed answer too: the refresh retries it, and
        // close deletes it all).
        {
            let mut t = self.table.lock()?;
            if let Some(i) = t.find(msg.call_id, &tags) {
                let slot = &mut t.slots()[i];
                let mut held: Vec<FlowRec> = if undone {
                    Vec::new()
                } else {
                    new_flows.clone()
                };
                if deleted == 0 {
                    held.extend(stale.iter().copied());
                }
                slot.set_flows(&dedup(held.into_iter()));
                slot.stage = if stage == Stage::Answered { 2 } else { 1 };
                slot.expires_at = if undone { 0 } else { now + u64::from(lifetime) };
            }
        }
        let flows = opened?;
        Ok(Opened {
            flows,
            deleted,
            stage: Some(stage),
        })
    }

    /// Deletes the pinholes of dialog `call_id` under any of `tags` (BYE, CANCEL, failed
    /// INVITE). Returns how many the agent confirmed deleted; the dialog is forgotten here
    /// either way (a pinhole the agent did not confirm expires by its lifetime).
    pub fn close(&self, proxy: &Proxy, call_id: &[u8], tags: &[&[u8]]) -> Result<usize> {
        let slot = {
            let mut t = self.table.lock()?;
            match t.find(call_id, tags) {
                Some(i) => t.remove(i),
                None => return Ok(0),
            }
        };
        let flows = to_flows(slot.flows());
        self.exchange(proxy, &dialog_id(&slot), &flows, 0)
    }

    /// [`Pinholes::close`] for the dialog of `msg` (tags From, then To).
    pub fn close_of(&self, proxy: &Proxy, msg: &SipMessage<'_>) -> Result<usize> {
        let tags: Vec<&[u8]> = [msg.from_tag, msg.to_tag]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        self.close(proxy, msg.call_id, &tags)
    }

    /// Renews the pinholes due (less than three quarters of their lifetime left) of dialogs younger than
    /// `pinhole_max_duration`; forgets dialogs past it whose pinholes have expired at the
    /// agent. Returns (dialogs refreshed, dialogs expired).
    pub fn refresh(&self, proxy: &Proxy) -> Result<(usize, usize)> {
        let now = now_secs();
        let lifetime = u64::from(self.cfg.lifetime);
        let mut due = Vec::new();
        let mut expired = 0;
        {
            let mut t = self.table.lock()?;
            for i in 0..self.table.capacity() {
                let s = t.slots()[i];
                if s.used != 1 {
                    continue;
                }
                let too_old = now >= s.opened_at + u64::from(self.cfg.max_duration);
                if s.expires_at == 0 {
                    // an offer never answered (nor ended where this proxy saw it)
                    if too_old {
                        t.remove(i);
                        expired += 1;
                    }
                    continue;
                }
                if too_old && now >= s.expires_at {
                    t.remove(i);
                    expired += 1;
                } else if !too_old && s.expires_at.saturating_sub(now) * 4 <= lifetime * 3 {
                    t.slots()[i].expires_at = now + lifetime;
                    due.push(s);
                }
            }
        }
        proxy.count_n(Counter::PinholesExpired, expired as u64);
        let mut refreshed = 0;
        for s in due {
            if self
                .exchange(
                    proxy,
                    &dialog_id(&s),
                    &to_flows(s.flows()),
                    self.cfg.lifetime,
                )
                .is_ok()
            {
                refreshed += 1;
            } else if let Ok(mut t) = self.table.lock() {
                // not renewed: due again at the next call
                let tags: [&[u8]; 1] = [s.tag()];
                if let Some(i) = t.find(s.call_id(), &tags) {
                    t.slots()[i].expires_at = s.expires_at;
                }
            }
        }
        proxy.count_n(Counter::PinholesRefreshed, refreshed as u64);
        Ok((refreshed, expired))
    }

    /// Every dialog with pinholes, for the RPC.
    pub fn list(&self) -> Result<Vec<DialogPinholes>> {
        let now = now_secs();
        let mut t = self.table.lock()?;
        Ok(t.slots()
            .iter()
            .filter(|s| s.used == 1)
            .map(|s| DialogPinholes {
                call_id: String::from_utf8_lossy(s.call_id()).into_owned(),
                tag: String::from_utf8_lossy(s.tag()).into_owned(),
                stage: s.stage(),
                flows: s.flows().iter().map(describe).collect(),
                expires_in: s.expires_at.saturating_sub(now),
                age: now.saturating_sub(s.opened_at),
            })
            .collect())
    }

    /// Dialogs in the table now.
    pub fn dialogs(&self) -> u64 {
        self.table.lock().map_or(0, |t| u64::from(t.in_use()))
    }
}

fn pcp_error(e: crate::pcp::PcpError) -> Error {
    Error::PinholeAgent(e.to_string())
}

/// The PCP dialog id (its mapping nonce is derived from it): Call-ID, NUL, caller's tag.
fn dialog_id(s: &Slot) -> Vec<u8> {
    let mut d = s.call_id().to_vec();
    d.push(0);
    d.extend_from_slice(s.tag());
    d
}

/// The media streams of the first SDP part, `None` when there is none. Streams whose
/// address is not an IP literal (a host name, or none) or is multicast are kept as disabled
/// (so that offer and answer still pair by position) and open nothing.
fn streams_of(parts: &[&DisclosedPart]) -> Option<Vec<Stream>> {
    let sdp = parts.iter().find_map(|p| p.sdp().and_then(|r| r.ok()))?;
    let ip = |s: Option<&str>| {
        s.and_then(|a| a.parse::<IpAddr>().ok())
            .filter(|a| !a.is_multicast() && !a.is_unspecified())
    };
    Some(
        sdp.media
            .iter()
            .take(MAX_STREAMS)
            .map(|m| match (ip(m.addr()), ip(m.rtcp_addr()), m.rtcp_port()) {
                (Some(rtp), Some(rtcp), Some(rtcp_port)) if !m.is_disabled() => Stream {
                    rtp: Addr::of(rtp),
                    rtp_port: m.port,
                    rtcp: Addr::of(rtcp),
                    rtcp_port,
                },
                _ => Stream::default(),
            })
            .collect(),
    )
}

fn any_source(a: Addr, port: u16) -> FlowRec {
    FlowRec {
        internal: a,
        port,
        remote: Addr::default(),
        remote_port: 0,
    }
}

fn between(a: Addr, port: u16, r: Addr, rport: u16) -> FlowRec {
    FlowRec {
        internal: a,
        port,
        remote: r,
        remote_port: rport,
    }
}

/// Valid flows, one per internal endpoint (rtcp-mux makes RTCP the RTP flow).
fn dedup(flows: impl Iterator<Item = FlowRec>) -> Vec<FlowRec> {
    let mut out: Vec<FlowRec> = Vec::new();
    for f in flows {
        if f.internal.ip().is_none() || f.port == 0 {
            continue;
        }
        if out
            .iter()
            .any(|o| o.internal == f.internal && o.port == f.port)
        {
            continue;
        }
        if out.len() < MAX_DIALOG_FLOWS {
            out.push(f);
        }
    }
    out
}

fn to_flows(f: &[FlowRec]) -> Vec<Flow> {
    f.iter()
        .filter_map(|f| {
            let internal = SocketAddr::new(f.internal.ip()?, f.port);
            Some(match f.remote.ip() {
                Some(addr) => Flow::between(
                    internal,
                    Remote {
                        addr,
                        port: (f.remote_port != 0).then_some(f.remote_port),
                    },
                ),
                None => Flow::any_source(internal),
            })
        })
        .collect()
}

fn describe(f: &FlowRec) -> String {
    let to = f
        .internal
        .ip()
        .map(|ip| SocketAddr::new(ip, f.port).to_string())
        .unwrap_or_default();
    let from = match (f.remote.ip(), f.remote_port) {
        (None, _) => "*".to_string(),
        (Some(ip), 0) => ip.to_string(),
        (Some(ip), p) => SocketAddr::new(ip, p).to_string(),
    };
    format!("{to} <- {from}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse() {
        let mut c = PinholeConfig::default();
        assert!(c.set("pinhole_agent", "192.0.2.1:5351").unwrap());
        assert!(c.set("pinhole_key", "id=7;file=/etc/k").unwrap());
        assert_eq!(c.key, Some((7, PathBuf::from("/etc/k"))));
        assert!(c.set("pinhole_on_offer", "1").unwrap());
        assert!(c.on_offer);
        assert!(!c.set("cache_ttl", "5").unwrap());
        for (n, v) in [
            ("pinhole_agent", "nowhere"),
            ("pinhole_key", "id=1"),
            ("pinhole_timeout", "0"),
            ("pinhole_on_offer", "2"),
            ("pinhole_lifetime", "1"),
        ] {
            let e = c.set(n, v).unwrap_err();
            println!("refused {n}={v}: {e}");
        }
    }

    #[test]
    fn flows_are_deduplicated_per_internal_endpoint() {
        let a = Addr::of("192.0.2.1".parse().unwrap());
        let b = Addr::of("192.0.2.2".parse().unwrap());
        // rtcp-mux: the RTCP flow is the RTP flow
        let f = dedup(
            [
                between(a, 4000, b, 5000),
                between(a, 4000, b, 5000),
                any_source(a, 0),
            ]
            .into_iter(),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(describe(&f[0]), "192.0.2.1:4000 <- 192.0.2.2:5000");
        assert_eq!(describe(&any_source(a, 1)), "192.0.2.1:1 <- *");
        let t = Table::create(4).unwrap();
        let mut l = t.lock().unwrap();
        let i = l.insert(b"c", b"t", 1).unwrap();
        assert_eq!(l.find(b"c", &[b"x", b"t"]), Some(i));
        assert_eq!(l.in_use(), 1);
        l.remove(i);
        assert_eq!(l.find(b"c", &[b"t"]), None);
        assert_eq!(l.in_use(), 0);
        println!("rtcp-mux flows merged; table insert/find by either tag/remove");
    }
}
