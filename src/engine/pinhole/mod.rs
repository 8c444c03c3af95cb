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
//! In a cluster every change to a dialog's pinholes or recording is also noted for the other
//! nodes, which keep it as a replica and take the dialog over when its owner stops
//! refreshing it or an in-dialog request reaches them (`replica.rs`, docs/PROTOCOL.md §8.5).
//!
//! Each PCP exchange is bounded by `pinhole_timeout`; the table lock is never held across
//! one. The PCP client (a UDP socket) is made per process, at its first use after the fork.
//!
//! Recording (docs/RECORDING.md, with `record_recorder` and `record_kek`): the offer SDP is
//! kept in the table (zeroized at its 2xx answer or the dialog's end). A dialog marked for
//! recording (`record=1`, or [`Pinholes::record_start`] before its answer) gets, at the
//! answer, one sealed key message to the recorder with each direction's `a=crypto`, and its
//! flows are asked for with mirroring (PCP option MIRROR); at its end (or
//! [`Pinholes::record_stop`]) the recorder gets a stop and the mirroring ends.

mod record;
mod replica;
mod table;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;

use crate::crypto::keys::PskSpec;
use crate::engine::cache::{now_secs, DialogKey};
use crate::engine::proxy::{Counter, DisclosedPart, Proxy, SipMessage};
use crate::engine::{Error, Result};
use crate::pcp::{AuthKey, Client, ClientConfig, Exchange, Flow, FlowOutcome, Remote};
use crate::record::{CallStart, CallStop, Event, Offerer, StopReason, StreamSet};
use record::Recorder;
use table::{Addr, FlowRec, Slot, Stream, Table};
pub use table::{RecordState, Stage, MAX_DIALOG_FLOWS, MAX_OFFER_SDP, MAX_STREAMS};

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
    /// Record every dialog (`record=1`); else only those `sd_record_start` marks.
    pub record: bool,
    /// The recorder's key-channel address (`record_recorder`); `None`: no recording.
    pub recorder: Option<SocketAddr>,
    /// The key channel's KEK (`record_kek`: `id=HEX|text:ID;key=PATH;label=NAME`, as the
    /// recorder's `--kek`).
    pub record_kek: Option<PskSpec>,
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
            record: false,
            recorder: None,
            record_kek: None,
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
            "record" => self.record = num(name, value, 0, 1)? == 1,
            "record_recorder" => {
                self.recorder = Some(
                    value
                        .parse()
                        .map_err(|_| bad(name, value, "ADDRESS:PORT (e.g. 192.0.2.9:7070)"))?,
                )
            }
            "record_kek" => {
                let kek = crate::engine::proxy::config::parse_psk(value)
                    .map_err(|e| Error::Config(format!("record_kek: {e}")))?;
                if kek.label.as_deref().unwrap_or("").is_empty() {
                    return Err(bad(name, value, "id=HEX|text:ID;key=PATH;label=NAME"));
                }
                self.record_kek = Some(kek);
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
    /// Whether the dialog is recorded afterwards.
    pub recording: Option<RecordState>,
    /// Why the recording of a marked dialog did not start (the flows still open, without
    /// mirroring); never contains key material.
    pub record_error: Option<String>,
}

/// One recording, for the RPC (no keys).
#[derive(Clone, Debug)]
pub struct DialogRecording {
    /// Call-ID.
    pub call_id: String,
    /// The caller's tag.
    pub tag: String,
    /// The dialog id the recorder names the recording by (hex of the key message's).
    pub dialog: String,
    /// `marked`, `active`, `stopped`, or `finished` (the dialog ended).
    pub state: &'static str,
    /// Streams the recorder was given (one direction of one m= line each).
    pub streams: u8,
    /// Unix seconds of the start and stop (0: not yet).
    pub started: u64,
    /// See `started`.
    pub stopped: u64,
    /// The cluster node that acted on the dialog last (empty without a cluster).
    pub owner: String,
    /// Whether the state came from another node (`owner`).
    pub replica: bool,
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
    /// The cluster node that refreshes them (empty without a cluster).
    pub owner: String,
    /// Whether the state came from another node (`owner`), which refreshes it.
    pub replica: bool,
}

/// The pinholes of every dialog through this proxy; see the module doc.
pub struct Pinholes {
    cfg: PinholeConfig,
    agent: SocketAddr,
    table: Table,
    /// (pid, client): made at first use in each process.
    client: Mutex<Option<(u32, Client)>>,
    /// With `record_recorder` and `record_kek`.
    recorder: Option<Recorder>,
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
        let recorder = match (cfg.recorder, &cfg.record_kek) {
            (Some(addr), Some(kek)) => Some(Recorder::new(addr, kek, false)?),
            (None, None) if !cfg.record => None,
            _ => {
                return Err(Error::Config(
                    "recording needs both record_recorder and record_kek".into(),
                ))
            }
        };
        Ok(Some(Pinholes {
            cfg: cfg.clone(),
            agent,
            table: Table::create(cfg.capacity)?,
            client: Mutex::new(None),
            recorder,
        }))
    }

    /// Whether a recorder is configured (`record_recorder`, `record_kek`).
    pub fn recording_enabled(&self) -> bool {
        self.recorder.is_some()
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
        let (dialog, new_flows, stale, stage, pending) = {
            let mut t = self.table.lock()?;
            let i = match t.find(msg.call_id, &tags) {
                Some(i) => i,
                None if is_offer && msg.to_tag.is_empty() => {
                    match t.insert(msg.call_id, msg.from_tag, now) {
                        Some(i) => {
                            if self.recorder.is_some() && self.cfg.record {
                                t.slots()[i].record = 1;
                            }
                            i
                        }
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
            // The offer's text (its keys) is kept for the answer only when a recorder may
            // need it; the 2xx answer takes it out of the table.
            let mut pending = None;
            if self.recorder.is_some() {
                if is_offer {
                    let body = sdp_body(parts).unwrap_or(&[]);
                    if !t.set_offer_sdp(i, body) && t.slots()[i].record() != RecordState::Off {
                        proxy.count(Counter::RecordErrors);
                    }
                } else {
                    let kept = t.offer_sdp(i, (200..300).contains(&msg.status));
                    let state = t.slots()[i].record();
                    if matches!(state, RecordState::Marked | RecordState::Active) {
                        let seq = (!kept.is_empty()).then(|| t.next_sequence());
                        // the answer to the callee's re-INVITE has the callee in From
                        let from_is_caller = t.slots()[i].tag() == msg.from_tag;
                        pending = Some((state, kept, seq, from_is_caller));
                    }
                }
            }
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
                        recording: Some(slot.record()),
                        ..Opened::default()
                    });
                }
                let flows = offered_flows(&streams);
                (dialog, flows, Vec::new(), Stage::Offered, None)
            } else {
                let flows = answered_flows(slot.offer(), &streams);
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
                (dialog, flows, stale, Stage::Answered, pending)
            }
        };
        // The recorder gets the keys before the agent starts copying packets to it.
        let (mut mirror, mut started, mut record_error) = (false, None, None);
        if let Some((state, kept, seq, from_is_caller)) = pending {
            let keys = Answer {
                state,
                offer: &kept,
                seq,
                from_is_caller,
            };
            match self.send_keys(proxy, msg, parts, keys) {
                Ok(n) => (mirror, started) = (true, n),
                Err(e) => {
                    proxy.count(Counter::RecordErrors);
                    record_error = Some(e.to_string());
                }
            }
        }
        let lifetime = self.cfg.lifetime;
        let opened = self.exchange(proxy, &dialog, &to_flows(&new_flows, mirror), lifetime);
        let deleted = if opened.is_ok() && !stale.is_empty() {
            self.exchange(proxy, &dialog, &to_flows(&stale, false), 0)
                .unwrap_or(0)
        } else {
            0
        };
        // An offer the agent did not confirm: undo what it may have applied (the INVITE may be
        // refused, pinhole_on_failure=reject), keep the offer for its answer, renew nothing.
        let undone = opened.is_err() && stage == Stage::Offered;
        if undone {
            let _ = self.exchange(proxy, &dialog, &to_flows(&new_flows, false), 0);
        }
        // Record what the agent holds (after a failed answer too: the refresh retries it, and
        // close deletes it all).
        let mut recording = None;
        let mut noted = None;
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
                if let Some(n) = started {
                    if slot.record() == RecordState::Marked {
                        slot.record_started = now;
                        proxy.count(Counter::RecordingsStarted);
                    }
                    slot.record = 2;
                    slot.record_streams = n;
                }
                recording = Some(slot.record());
                noted = replica::claim_and_note(proxy, &mut t, i);
            }
        }
        Self::send_noted(proxy, noted);
        let flows = opened?;
        Ok(Opened {
            flows,
            deleted,
            stage: Some(stage),
            recording,
            record_error,
        })
    }

    /// At an answer of a recorded dialog: the start (or, when it is recorded already, the
    /// update) with the streams of the kept offer and this answer. `Ok(Some(n))`: sent, `n`
    /// streams; `Ok(None)`: recorded already and nothing new to send (the offer was taken by
    /// an earlier answer).
    fn send_keys(
        &self,
        proxy: &Proxy,
        msg: &SipMessage<'_>,
        parts: &[&DisclosedPart],
        a: Answer<'_>,
    ) -> Result<Option<u8>> {
        let rec = self.recorder.as_ref().ok_or(Error::RecordingOff)?;
        let (state, offer) = (a.state, a.offer);
        let Some(seq) = a.seq else {
            return match state {
                RecordState::Active => Ok(None),
                _ => Err(Error::Record(
                    "the offer's SDP is not kept (too long, or taken by an earlier answer)".into(),
                )),
            };
        };
        let answer = parts
            .iter()
            .find_map(|p| p.sdp().and_then(|r| r.ok()))
            .ok_or_else(|| Error::Record("the answer has no SDP".into()))?;
        // From and To of a reply (the answer) are those of its request (the offer): the
        // caller's INVITE, or the callee's re-INVITE (then swapped)
        let (caller, callee, tag, offerer) = if a.from_is_caller {
            (msg.from_uri, msg.to_uri, msg.from_tag, Offerer::Caller)
        } else {
            (msg.to_uri, msg.from_uri, msg.to_tag, Offerer::Callee)
        };
        let streams = record::streams(offer, &answer, offerer)?;
        let n = u8::try_from(streams.len()).unwrap_or(u8::MAX);
        let event = if state == RecordState::Active {
            Event::Update(StreamSet { streams })
        } else {
            Event::Start(CallStart {
                call_id: String::from_utf8_lossy(msg.call_id).into_owned(),
                caller: party(caller),
                callee: party(callee),
                streams,
            })
        };
        rec.send(seq, msg.call_id, tag, event)?;
        proxy.count(Counter::RecordKeyMessages);
        Ok(Some(n))
    }

    /// Sends the stop of a recording; counted (stopped, or an error).
    fn send_stop(&self, proxy: &Proxy, slot: &Slot, seq: u64, reason: StopReason) {
        let Some(rec) = self.recorder.as_ref() else {
            return;
        };
        let stop = Event::Stop(CallStop::new(reason));
        match rec.send(seq, slot.call_id(), slot.tag(), stop) {
            Ok(()) => {
                proxy.count(Counter::RecordKeyMessages);
                proxy.count(Counter::RecordingsStopped);
            }
            Err(_) => proxy.count(Counter::RecordErrors),
        }
    }

    /// Marks the dialog of `msg` for recording: from its answer (call it on the INVITE or on
    /// the reply before `on_message`) or, once answered, from its next offer/answer. Makes
    /// the dialog's slot for an initial INVITE. Returns the state afterwards.
    pub fn record_start(&self, msg: &SipMessage<'_>) -> Result<RecordState> {
        if self.recorder.is_none() {
            return Err(Error::RecordingOff);
        }
        let tags: Vec<&[u8]> = [msg.from_tag, msg.to_tag]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        let mut t = self.table.lock()?;
        let i = match t.find(msg.call_id, &tags) {
            Some(i) => i,
            None if msg.status == 0 && msg.to_tag.is_empty() && !msg.from_tag.is_empty() => t
                .insert(msg.call_id, msg.from_tag, now_secs())
                .ok_or(Error::PinholeFull)?,
            None => {
                return Err(Error::Record(
                    "no offer of this dialog went through this proxy".into(),
                ))
            }
        };
        let slot = &mut t.slots()[i];
        if matches!(slot.record(), RecordState::Off | RecordState::Stopped) {
            slot.record = 1;
        }
        Ok(slot.record())
    }

    /// Stops recording the dialog of `msg`: the recorder gets the stop and the flows are
    /// asked for again without mirroring. Returns whether a recording was active.
    pub fn record_stop(&self, proxy: &Proxy, msg: &SipMessage<'_>) -> Result<bool> {
        if self.recorder.is_none() {
            return Err(Error::RecordingOff);
        }
        let tags: Vec<&[u8]> = [msg.from_tag, msg.to_tag]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        let (slot, seq) = {
            let mut t = self.table.lock()?;
            let Some(i) = t.find(msg.call_id, &tags) else {
                return Ok(false);
            };
            let state = t.slots()[i].record();
            match state {
                RecordState::Active => {
                    let seq = t.next_sequence();
                    let s = &mut t.slots()[i];
                    s.record = 3;
                    s.record_stopped = now_secs();
                    let s = *s;
                    Self::send_noted(proxy, replica::claim_and_note(proxy, &mut t, i));
                    (s, seq)
                }
                RecordState::Marked => {
                    t.slots()[i].record = 0;
                    return Ok(false);
                }
                _ => return Ok(false),
            }
        };
        self.send_stop(proxy, &slot, seq, StopReason::ScriptStop);
        self.exchange(
            proxy,
            &dialog_id(&slot),
            &to_flows(slot.flows(), false),
            self.cfg.lifetime,
        )?;
        Ok(true)
    }

    /// Every recorded dialog (marked, active, stopped, finished), for the RPC.
    pub fn recordings(&self) -> Result<Vec<DialogRecording>> {
        let mut t = self.table.lock()?;
        Ok(t.slots()
            .iter()
            .filter(|s| s.used == 2 || (s.used == 1 && s.record() != RecordState::Off))
            .map(|s| DialogRecording {
                call_id: String::from_utf8_lossy(s.call_id()).into_owned(),
                tag: String::from_utf8_lossy(s.tag()).into_owned(),
                dialog: crate::hex::encode(DialogKey::new(s.call_id(), s.tag()).as_bytes()),
                state: if s.used == 2 {
                    "finished"
                } else {
                    s.record().name()
                },
                streams: s.record_streams,
                started: s.record_started,
                stopped: s.record_stopped,
                owner: String::from_utf8_lossy(s.owner()).into_owned(),
                replica: s.replica == 1,
            })
            .collect())
    }

    /// Deletes the pinholes of dialog `call_id` under any of `tags`, ended for `reason`
    /// (BYE, CANCEL, failed INVITE, the SIP server's dialog timeout). Returns how many the
    /// agent confirmed deleted; the dialog is forgotten here either way (a pinhole the agent
    /// did not confirm expires by its lifetime). A recording is stopped (the recorder gets
    /// the stop with `reason`) and kept in the table as finished.
    pub fn close(
        &self,
        proxy: &Proxy,
        call_id: &[u8],
        tags: &[&[u8]],
        reason: StopReason,
    ) -> Result<usize> {
        let (slot, stop) = {
            let mut t = self.table.lock()?;
            let Some(i) = t.find(call_id, tags) else {
                return Ok(0);
            };
            let state = t.slots()[i].record();
            let stop = (state == RecordState::Active).then(|| t.next_sequence());
            if state != RecordState::Off {
                let s = &mut t.slots()[i];
                if state == RecordState::Active {
                    s.record_stopped = now_secs();
                }
                s.record = 3;
            }
            let keep = matches!(state, RecordState::Active | RecordState::Stopped);
            let mut gone = t.remove(i, keep);
            // the other nodes hold it only if it was replicated
            let held_elsewhere = gone.version > 0;
            replica::claim(proxy, &mut gone);
            if held_elsewhere {
                let seq = t.sequence();
                Self::send_noted(proxy, replica::state_of(&gone, seq, true));
            }
            (gone, stop)
        };
        if let Some(seq) = stop {
            self.send_stop(proxy, &slot, seq, reason);
        }
        let flows = to_flows(slot.flows(), false);
        self.exchange(proxy, &dialog_id(&slot), &flows, 0)
    }

    /// [`Pinholes::close`] for the dialog of `msg` (tags From, then To), the reason named
    /// by its method and status ([`StopReason::of`]).
    pub fn close_of(&self, proxy: &Proxy, msg: &SipMessage<'_>) -> Result<usize> {
        let tags: Vec<&[u8]> = [msg.from_tag, msg.to_tag]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        let reason = StopReason::of(msg.method, msg.status);
        self.close(proxy, msg.call_id, &tags, reason)
    }

    /// Renews the pinholes due (less than three quarters of their lifetime left) of dialogs younger than
    /// `pinhole_max_duration`; forgets dialogs past it whose pinholes have expired at the
    /// agent. Returns (dialogs refreshed, dialogs expired).
    pub fn refresh(&self, proxy: &Proxy) -> Result<(usize, usize)> {
        let now = now_secs();
        let lifetime = u64::from(self.cfg.lifetime);
        let mut due = Vec::new();
        let mut stops = Vec::new();
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
                        t.remove(i, false);
                        expired += 1;
                    }
                    continue;
                }
                let replica = s.replica == 1;
                if too_old && now >= s.expires_at {
                    // a recording whose end this proxy never saw: the recorder gets a stop
                    // (from the dialog's owner)
                    let state = s.record();
                    if state == RecordState::Active && !replica {
                        let seq = t.next_sequence();
                        let f = &mut t.slots()[i];
                        f.record = 3;
                        f.record_stopped = now;
                        stops.push((*f, seq));
                    }
                    t.remove(
                        i,
                        matches!(state, RecordState::Active | RecordState::Stopped),
                    );
                    expired += 1;
                } else if replica && (too_old || !replica::overdue(&s, now, lifetime)) {
                    // its owner refreshes it
                } else if replica && !replica::dialog_lives(proxy, &s) {
                    // overdue, but no key of the dialog here (it ended, or its key never
                    // reached this node): not taken over, forgotten once expired
                    if now >= s.expires_at {
                        let keep = matches!(s.record(), RecordState::Active | RecordState::Stopped);
                        t.remove(i, keep);
                    }
                } else if !too_old && s.expires_at.saturating_sub(now) * 4 <= lifetime * 3 {
                    t.slots()[i].expires_at = now + lifetime;
                    let noted = replica::claim_and_note(proxy, &mut t, i);
                    due.push((s, noted));
                }
            }
        }
        proxy.count_n(Counter::PinholesExpired, expired as u64);
        for (slot, seq) in stops {
            self.send_stop(proxy, &slot, seq, StopReason::MaxDuration);
        }
        let mut refreshed = 0;
        for (s, noted) in due {
            if self
                .exchange(
                    proxy,
                    &dialog_id(&s),
                    &to_flows(s.flows(), s.record() == RecordState::Active),
                    self.cfg.lifetime,
                )
                .is_ok()
            {
                refreshed += 1;
                Self::send_noted(proxy, noted);
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
                owner: String::from_utf8_lossy(s.owner()).into_owned(),
                replica: s.replica == 1,
            })
            .collect())
    }

    /// Dialogs in the table now.
    pub fn dialogs(&self) -> u64 {
        self.table.lock().map_or(0, |t| u64::from(t.in_use()))
    }
}

/// What [`Pinholes::send_keys`] needs of the table at an answer.
struct Answer<'a> {
    state: RecordState,
    /// The kept offer's SDP.
    offer: &'a [u8],
    /// The message's sequence number; `None` when no offer was kept.
    seq: Option<u64>,
    /// Whether the answer's From is the caller (else the callee sent the offer).
    from_is_caller: bool,
}

/// The longest caller or callee URI a start message carries (bytes; the message is one
/// datagram).
const MAX_PARTY: usize = 256;

/// A From or To URI for the start message: text, at most [`MAX_PARTY`] bytes.
fn party(uri: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(uri).into_owned();
    if s.len() > MAX_PARTY {
        let mut end = MAX_PARTY;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
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

/// The body of the first SDP part (the offer kept for a recording).
fn sdp_body<'p>(parts: &[&'p DisclosedPart]) -> Option<&'p [u8]> {
    parts
        .iter()
        .find(|p| p.sdp().is_some())
        .map(|p| p.body.as_slice())
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
            .map(|m| {
                // RTCP without multiplexing: a=rtcp, else port + 1 (none past port 65535, then
                // only multiplexed RTCP has somewhere to go)
                let rtcp = ip(m.rtcp_addr_with(false)).zip(m.rtcp_port_with(false));
                match (ip(m.addr()), rtcp) {
                    (Some(rtp), rtcp) if !m.is_disabled() && (rtcp.is_some() || m.rtcp_mux) => {
                        let (rtcp, rtcp_port) = rtcp.unwrap_or((rtp, m.port));
                        Stream {
                            rtp: Addr::of(rtp),
                            rtp_port: m.port,
                            rtcp: Addr::of(rtcp),
                            rtcp_port,
                            mux: m.rtcp_mux,
                        }
                    }
                    _ => Stream::default(),
                }
            })
            .collect(),
    )
}

/// The early pinholes of an offer (`pinhole_on_offer`): each stream's RTP and RTCP from
/// anywhere, RTCP where the offerer's own `a=rtcp-mux` puts it.
fn offered_flows(offer: &[Stream]) -> Vec<FlowRec> {
    dedup(offer.iter().flat_map(|s| {
        let (rtcp, rtcp_port) = s.rtcp_at(s.mux);
        [any_source(s.rtp, s.rtp_port), any_source(rtcp, rtcp_port)]
    }))
}

/// The pinholes of an answered offer: per stream both sides kept (same address family),
/// RTP and RTCP each way between the two endpoints; RTCP shares the RTP port only when both
/// sides asked for `a=rtcp-mux` (RFC 5761 §5.1.1), else it goes to `a=rtcp` or port + 1.
fn answered_flows(offer: &[Stream], answer: &[Stream]) -> Vec<FlowRec> {
    dedup(
        offer
            .iter()
            .zip(answer)
            .filter(|(o, a)| o.rtp.ip().is_some() && a.rtp.ip().is_some())
            .filter(|(o, a)| o.rtp.ip().map(|i| i.is_ipv4()) == a.rtp.ip().map(|i| i.is_ipv4()))
            .flat_map(|(o, a)| {
                let mux = o.mux && a.mux;
                let ((orc, orp), (arc, arp)) = (o.rtcp_at(mux), a.rtcp_at(mux));
                [
                    between(o.rtp, o.rtp_port, a.rtp, a.rtp_port),
                    between(a.rtp, a.rtp_port, o.rtp, o.rtp_port),
                    between(orc, orp, arc, arp),
                    between(arc, arp, orc, orp),
                ]
            }),
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

/// The flows as PCP asks for them; `mirror`: copied to the agent's recorder.
fn to_flows(f: &[FlowRec], mirror: bool) -> Vec<Flow> {
    f.iter()
        .filter_map(|f| {
            let internal = SocketAddr::new(f.internal.ip()?, f.port);
            Some(
                match f.remote.ip() {
                    Some(addr) => Flow::between(
                        internal,
                        Remote {
                            addr,
                            port: (f.remote_port != 0).then_some(f.remote_port),
                        },
                    ),
                    None => Flow::any_source(internal),
                }
                .mirrored(mirror),
            )
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
        l.remove(i, false);
        assert_eq!(l.find(b"c", &[b"t"]), None);
        assert_eq!(l.in_use(), 0);
        println!("rtcp-mux flows merged; table insert/find by either tag/remove");
    }
}

#[cfg(test)]
mod record_tests {
    use std::net::UdpSocket;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use zeroize::Zeroizing;

    use super::*;
    use crate::crypto::cms::CmsKind;
    use crate::engine::proxy::{KeySource, ProxyConfig};
    use crate::record::channel::DEFAULT_MAX_SKEW;
    use crate::record::{ChannelReceiver, Direction, KeyMessage};

    const K_OFFER: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    const K_ANSWER: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";

    fn part(sdp: &str) -> DisclosedPart {
        DisclosedPart {
            content_id: None,
            kind: CmsKind::AuthEnvelopedData,
            content_type: "application/sdp".into(),
            body: Zeroizing::new(sdp.as_bytes().to_vec()),
            key_source: KeySource::Wrapped,
            key_label: "p1".into(),
            generation: 1,
            signature: None,
        }
    }

    fn sdp(addr: &str, port: u16, key: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
             m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        )
    }

    fn msg<'a>(status: u32, to_tag: &'a [u8], method: &'a [u8]) -> SipMessage<'a> {
        SipMessage {
            call_id: b"rec-call-1@test",
            from_tag: b"caller-tag",
            to_tag,
            method,
            status,
            content_type: b"",
            transfer_encoding: b"",
            disclose_to: b"",
            body: b"",
            from_uri: b"sip:alice@a.example",
            to_uri: b"sip:bob@b.example",
        }
    }

    struct Rig {
        _dir: tempfile::TempDir,
        proxy: Proxy,
        pinholes: Pinholes,
        recorder: UdpSocket,
        rx: ChannelReceiver,
    }

    /// The pinholes with a recorder on a real UDP socket and the recorder's real channel
    /// receiver; the agent's address is a port nobody answers on (the exchanges fail after
    /// pinhole_timeout, which the key channel does not depend on).
    fn rig(record_all: bool) -> Rig {
        rig_with(record_all, &[])
    }

    fn rig_with(record_all: bool, options: &[(&str, &str)]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let kek = dir.path().join("rec.kek");
        std::fs::write(&kek, crate::hex::encode(&[0x3c; 32])).unwrap();
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
        let recorder = UdpSocket::bind("127.0.0.1:0").unwrap();
        recorder
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = PinholeConfig::default();
        c.set("pinhole_agent", &silent.local_addr().unwrap().to_string())
            .unwrap();
        c.set("pinhole_timeout", "20").unwrap();
        c.set("pinhole_retransmit", "10").unwrap();
        c.set("record", if record_all { "1" } else { "0" }).unwrap();
        for (n, v) in options {
            c.set(n, v).unwrap();
        }
        c.set(
            "record_recorder",
            &recorder.local_addr().unwrap().to_string(),
        )
        .unwrap();
        c.set(
            "record_kek",
            &format!("id=text:rec-kek;key={};label=proxy1", kek.display()),
        )
        .unwrap();
        let pinholes = Pinholes::new(&c).unwrap().unwrap();
        std::mem::forget(silent);
        let rx = ChannelReceiver::new(
            vec![crate::crypto::keys::PskSpec {
                id: b"rec-kek".to_vec(),
                key_path: kek,
                label: Some("proxy1".into()),
            }],
            true,
            DEFAULT_MAX_SKEW,
        )
        .unwrap();
        Rig {
            _dir: dir,
            proxy: Proxy::new(ProxyConfig::default()).unwrap(),
            pinholes,
            recorder,
            rx,
        }
    }

    impl Rig {
        fn receive(&mut self) -> KeyMessage {
            let mut buf = vec![0u8; 65536];
            let (n, _) = self.recorder.recv_from(&mut buf).expect("a key message");
            self.rx.open(&buf[..n]).expect("opens under the shared KEK")
        }

        fn nothing_received(&self) -> bool {
            self.recorder.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 16];
            let none = self.recorder.recv_from(&mut buf).is_err();
            self.recorder.set_nonblocking(false).unwrap();
            none
        }

        fn count(&self, c: Counter) -> u64 {
            self.proxy.stats().unwrap().get(c)
        }

        fn call(&self, answer_status: u32) {
            let offer = part(&sdp("192.0.2.10", 40000, K_OFFER));
            let answer = part(&sdp("198.51.100.20", 50000, K_ANSWER));
            let o = self
                .pinholes
                .on_message(&self.proxy, &msg(0, b"", b"INVITE"), &[&offer])
                .unwrap();
            assert_eq!(o.stage, Some(Stage::Offered));
            // the agent does not answer: the pinholes fail, the key channel does not
            let a = self.pinholes.on_message(
                &self.proxy,
                &msg(answer_status, b"callee-tag", b"INVITE"),
                &[&answer],
            );
            assert!(matches!(a, Err(Error::PinholeAgent(_))), "{a:?}");
        }
    }

    #[test]
    fn rtcp_mux_only_when_offer_and_answer_ask() {
        let streams = |sdp: &str| streams_of(&[&part(sdp)]).unwrap();
        let sdp = |addr: &str, port: u16, extra: &str| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0\r\n{extra}"
            )
        };
        let flows = |o: &str, a: &str| -> Vec<String> {
            answered_flows(&streams(o), &streams(a))
                .iter()
                .map(describe)
                .collect()
        };
        let offer_mux = sdp("192.0.2.10", 40000, "a=rtcp-mux\r\na=rtcp:40009\r\n");
        let answer_mux = sdp("198.51.100.20", 50000, "a=rtcp-mux\r\n");
        let answer_plain = sdp("198.51.100.20", 50000, "");
        assert_eq!(
            flows(&offer_mux, &answer_mux),
            [
                "192.0.2.10:40000 <- 198.51.100.20:50000",
                "198.51.100.20:50000 <- 192.0.2.10:40000"
            ],
            "both asked: RTCP on the RTP ports, no other port opens"
        );
        assert_eq!(
            flows(&offer_mux, &answer_plain),
            [
                "192.0.2.10:40000 <- 198.51.100.20:50000",
                "198.51.100.20:50000 <- 192.0.2.10:40000",
                "192.0.2.10:40009 <- 198.51.100.20:50001",
                "198.51.100.20:50001 <- 192.0.2.10:40009"
            ],
            "the answer declined: the offerer's RTCP at its a=rtcp fallback, the answerer's at port + 1"
        );
        assert_eq!(
            offered_flows(&streams(&offer_mux))
                .iter()
                .map(describe)
                .collect::<Vec<_>>(),
            ["192.0.2.10:40000 <- *"],
            "early pinholes: the offerer's own rtcp-mux"
        );
        let top = sdp("192.0.2.10", 65535, "a=rtcp-mux\r\n");
        assert_eq!(
            flows(&top, &answer_mux).len(),
            2,
            "port 65535 with rtcp-mux still opens (RTCP needs no port + 1)"
        );
        println!("  ok   rtcp-mux: RTP ports only when offer and answer both ask; a declined mux opens the a=rtcp / port + 1 RTCP flows; early pinholes follow the offer");
    }

    #[test]
    fn marked_dialog_gets_start_and_stop_with_both_keys() {
        let mut r = rig(false);
        let invite = msg(0, b"", b"INVITE");
        assert_eq!(
            r.pinholes.record_start(&invite).unwrap(),
            RecordState::Marked
        );
        r.call(200);
        let start = r.receive();
        let Event::Start(s) = &start.event else {
            panic!("a start, got {}", start.event.name())
        };
        assert_eq!(s.call_id, "rec-call-1@test");
        assert_eq!(
            (s.caller.as_str(), s.callee.as_str()),
            ("sip:alice@a.example", "sip:bob@b.example")
        );
        assert_eq!(start.sender, "proxy1");
        assert_eq!(
            start.dialog_id.as_bytes(),
            DialogKey::new(b"rec-call-1@test", b"caller-tag").as_bytes()
        );
        assert_eq!(s.streams.len(), 2);
        let by = |d| s.streams.iter().find(|m| m.direction == d).unwrap();
        assert!(by(Direction::CallerToCallee)
            .crypto
            .as_str()
            .contains(K_OFFER));
        assert!(by(Direction::CalleeToCaller)
            .crypto
            .as_str()
            .contains(K_ANSWER));
        assert_eq!(by(Direction::CallerToCallee).destination.port, 50000);
        println!("  ok   marked dialog: one sealed start at the 2xx answer, caller/callee = From/To URIs, caller key from the offer, callee key from the answer, dialog id = the cache's");
        assert!(r.nothing_received(), "one message per answer");
        let l = r.pinholes.recordings().unwrap();
        assert_eq!((l.len(), l[0].state, l[0].streams), (1, "active", 2));
        assert_eq!(l[0].dialog, start.dialog_hex());
        let dbg = format!("{l:?}");
        assert!(!dbg.contains(K_OFFER) && !dbg.contains(K_ANSWER));
        // the offer's text (its keys) is gone from the table after the 2xx answer
        {
            let mut t = r.pinholes.table.lock().unwrap();
            let i = t.find(b"rec-call-1@test", &[b"caller-tag"]).unwrap();
            assert!(t.offer_sdp(i, false).is_empty());
        }
        println!("  ok   RPC rows: active, 2 streams, the recorder's dialog id, no key text; the offer SDP is zeroized after the answer");
        // the 200 of the BYE (what the example script closes at)
        let bye = msg(200, b"callee-tag", b"BYE");
        let _ = r.pinholes.close_of(&r.proxy, &bye);
        let stop = r.receive();
        assert!(matches!(&stop.event, Event::Stop(s) if s.reason == "BYE"));
        assert!(stop.sequence > start.sequence);
        let l = r.pinholes.recordings().unwrap();
        assert_eq!((l.len(), l[0].state), (1, "finished"));
        assert!(l[0].stopped >= l[0].started && l[0].started > 0);
        assert_eq!(
            r.pinholes.dialogs(),
            0,
            "a finished recording holds no pinholes"
        );
        for (c, n) in [
            (Counter::RecordingsStarted, 1),
            (Counter::RecordingsStopped, 1),
            (Counter::RecordKeyMessages, 2),
            (Counter::RecordErrors, 0),
        ] {
            assert_eq!(r.count(c), n, "{c:?}");
        }
        println!("  ok   BYE: a stop (later sequence), the RPC keeps the recording as finished; counters started=1 stopped=1 key_messages=2 errors=0");
    }

    /// A message of the callee's re-INVITE transaction: From is the callee, To the caller.
    fn from_callee(status: u32, method: &[u8]) -> SipMessage<'_> {
        SipMessage {
            from_tag: b"callee-tag",
            to_tag: b"caller-tag",
            from_uri: b"sip:bob@b.example",
            to_uri: b"sip:alice@a.example",
            ..msg(status, b"", method)
        }
    }

    #[test]
    fn recording_from_the_callees_reinvite_keeps_caller_and_callee_apart() {
        let mut r = rig(false);
        r.call(200);
        assert!(
            r.nothing_received(),
            "not marked: the call itself is not recorded"
        );
        // marked mid-call at the callee's re-INVITE: its offer is the callee's SDP, the
        // caller's 200 answers with the caller's
        let reinvite = from_callee(0, b"INVITE");
        r.pinholes.record_start(&reinvite).unwrap();
        let callee_sdp = part(&sdp("198.51.100.20", 50002, K_ANSWER));
        let caller_sdp = part(&sdp("192.0.2.10", 40002, K_OFFER));
        let _ = r.pinholes.on_message(&r.proxy, &reinvite, &[&callee_sdp]);
        let _ = r
            .pinholes
            .on_message(&r.proxy, &from_callee(200, b"INVITE"), &[&caller_sdp]);
        let start = r.receive();
        let Event::Start(s) = &start.event else {
            panic!("a start, got {}", start.event.name())
        };
        assert_eq!(
            (s.caller.as_str(), s.callee.as_str()),
            ("sip:alice@a.example", "sip:bob@b.example")
        );
        assert_eq!(
            start.dialog_id.as_bytes(),
            DialogKey::new(b"rec-call-1@test", b"caller-tag").as_bytes()
        );
        let by = |d| s.streams.iter().find(|m| m.direction == d).unwrap();
        let (up, down) = (by(Direction::CallerToCallee), by(Direction::CalleeToCaller));
        assert!(
            up.crypto.as_str().contains(K_OFFER),
            "the caller sends with the key of its own SDP (the answer here)"
        );
        assert_eq!(
            (up.destination.address.as_str(), up.destination.port),
            ("198.51.100.20", 50002),
            "caller to callee goes to the callee's address (the offer here)"
        );
        assert!(down.crypto.as_str().contains(K_ANSWER));
        assert_eq!(
            (down.destination.address.as_str(), down.destination.port),
            ("192.0.2.10", 40002)
        );
        println!("  ok   recording started at the callee's re-INVITE: caller/callee = alice/bob, caller-to-callee has the caller's key and goes to the callee's address, and the reverse");
    }

    #[test]
    fn unmarked_dialog_sends_nothing_and_policy_records_all() {
        let r = rig(false);
        r.call(200);
        assert!(r.nothing_received());
        assert!(r.pinholes.recordings().unwrap().is_empty());
        assert_eq!(r.count(Counter::RecordKeyMessages), 0);
        let _ = r
            .pinholes
            .close_of(&r.proxy, &msg(0, b"callee-tag", b"BYE"));
        assert!(r.nothing_received());
        println!("  ok   a dialog not marked (record=0): no key message, no recording row");
        let mut r = rig(true);
        r.call(183);
        let m = r.receive();
        assert_eq!(m.event.name(), "start");
        // the 200 after the 183 replaces the streams (its a=crypto may differ)
        let answer = part(&sdp("198.51.100.20", 50000, K_ANSWER));
        let _ = r
            .pinholes
            .on_message(&r.proxy, &msg(200, b"callee-tag", b"INVITE"), &[&answer]);
        assert_eq!(r.receive().event.name(), "update");
        // a retransmitted 200: the offer was taken, nothing new to send
        let _ = r
            .pinholes
            .on_message(&r.proxy, &msg(200, b"callee-tag", b"INVITE"), &[&answer]);
        assert!(r.nothing_received());
        assert!(r
            .pinholes
            .record_stop(&r.proxy, &msg(0, b"callee-tag", b"INFO"))
            .unwrap_or(true));
        let stop = r.receive();
        assert!(matches!(&stop.event, Event::Stop(s) if s.reason == "sd_record_stop"));
        assert_eq!(r.pinholes.recordings().unwrap()[0].state, "stopped");
        let _ = r
            .pinholes
            .close_of(&r.proxy, &msg(0, b"callee-tag", b"BYE"));
        assert!(r.nothing_received(), "stopped already: no second stop");
        assert_eq!(r.count(Counter::RecordingsStopped), 1);
        println!("  ok   record=1: start at the 183, update at the 200, nothing for a retransmission, sd_record_stop sends the one stop (reason sd_record_stop)");
    }

    #[test]
    fn stop_reason_names_what_ended_the_dialog() {
        // (the message that ended a call recorded from its 183, the reason the stop carries)
        for (ender, want) in [
            (msg(486, b"callee-tag", b"INVITE"), "failure 486"),
            (msg(487, b"callee-tag", b"INVITE"), "CANCEL"),
            (msg(0, b"", b"CANCEL"), "CANCEL"),
            (msg(0, b"callee-tag", b"BYE"), "BYE"),
        ] {
            let mut r = rig(true);
            r.call(183);
            assert_eq!(r.receive().event.name(), "start");
            let _ = r.pinholes.close_of(&r.proxy, &ender);
            let stop = r.receive();
            let Event::Stop(s) = &stop.event else {
                panic!("a stop, got {}", stop.event.name())
            };
            assert_eq!(s.reason, want);
            println!(
                "  ok   {} {}: stop reason {want:?}",
                String::from_utf8_lossy(ender.method),
                ender.status
            );
        }
        // the SIP server's own dialog end (sd_pinhole_close_dialog): method and status given
        let mut r = rig(true);
        r.call(200);
        assert_eq!(r.receive().event.name(), "start");
        let tags: [&[u8]; 1] = [b"caller-tag"];
        let _ = r.pinholes.close(
            &r.proxy,
            b"rec-call-1@test",
            &tags,
            StopReason::DialogTimeout,
        );
        let stop = r.receive();
        assert!(matches!(&stop.event, Event::Stop(s) if s.reason == "dialog timeout"));
        println!("  ok   the dialog module's timeout: stop reason \"dialog timeout\"");
    }

    #[test]
    fn recording_past_max_duration_gets_a_stop() {
        let mut r = rig_with(
            true,
            &[("pinhole_max_duration", "1"), ("pinhole_lifetime", "2")],
        );
        r.call(200);
        assert_eq!(r.receive().event.name(), "start");
        std::thread::sleep(Duration::from_millis(3100));
        let (_, expired) = r.pinholes.refresh(&r.proxy).unwrap();
        assert_eq!(expired, 1);
        let stop = r.receive();
        assert!(matches!(&stop.event, Event::Stop(s) if s.reason == "pinhole_max_duration"));
        assert_eq!(r.pinholes.recordings().unwrap()[0].state, "finished");
        assert_eq!(r.count(Counter::RecordingsStopped), 1);
        println!("  ok   a recorded dialog whose end was never seen: at pinhole_max_duration + lifetime the recorder gets a stop, the row is finished");
    }

    #[test]
    fn refusals() {
        let r = rig(false);
        // an answer without a=crypto: the marked recording does not start, counted
        r.pinholes.record_start(&msg(0, b"", b"INVITE")).unwrap();
        let offer = part(&sdp("192.0.2.10", 40000, K_OFFER));
        let plain_answer =
            part("v=0\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0\r\n");
        r.pinholes
            .on_message(&r.proxy, &msg(0, b"", b"INVITE"), &[&offer])
            .unwrap();
        let _ = r.pinholes.on_message(
            &r.proxy,
            &msg(200, b"callee-tag", b"INVITE"),
            &[&plain_answer],
        );
        assert!(r.nothing_received());
        assert_eq!(r.count(Counter::RecordErrors), 1);
        assert_eq!(r.pinholes.recordings().unwrap()[0].state, "marked");
        // no offer seen for this dialog
        let other = SipMessage {
            call_id: b"unknown",
            ..msg(200, b"x", b"INVITE")
        };
        assert!(matches!(
            r.pinholes.record_start(&other),
            Err(Error::Record(_))
        ));
        // options
        let mut c = PinholeConfig::default();
        for (n, v) in [
            ("record", "2"),
            ("record_recorder", "nowhere"),
            ("record_kek", "id=text:a;key=/k"),
        ] {
            let e = c.set(n, v).unwrap_err();
            println!("  refused {n}={v}: {e}");
        }
        c.set("pinhole_agent", "127.0.0.1:9").unwrap();
        c.set("record", "1").unwrap();
        assert!(Pinholes::new(&c).is_err(), "record=1 needs a recorder");
        let flows = to_flows(
            &[between(
                Addr::of("192.0.2.1".parse().unwrap()),
                4000,
                Addr::of("192.0.2.2".parse().unwrap()),
                5000,
            )],
            true,
        );
        assert!(flows[0].mirror);
        println!("  ok   an answer without a=crypto starts nothing (record_errors=1); record_start without an offer, bad options and record=1 without a recorder are refused; recorded flows ask for MIRROR");
    }
}
