//! The recorder: key messages start, update and stop [`CallRecording`]s; captured packets are
//! matched to a call's stream by their destination address and port (the receiver's SDP
//! address: the same for the mirrored copy and the original).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use sipsd::crypto::cms::Recipient;
use sipsd::record::{Event, KeyMessage};

use crate::audit;
use crate::call::{direction_label, CallRecording, Captured, Outcome, RecordOptions};
use crate::manifest::Manifest;
use crate::net;

/// Counters of a recorder run (written with `--stats-file`; no addresses, no keys).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RecorderStats {
    /// IP packets handed to the recorder.
    pub packets_in: u64,
    /// Of which UDP to a stream of an active call.
    pub matched: u64,
    /// Decrypted and written.
    pub decrypted: u64,
    /// Failed SRTP/SRTCP authentication.
    pub auth_failed: u64,
    /// Refused as replays.
    pub duplicates: u64,
    /// UDP packets for no active call, or not UDP.
    pub unmatched: u64,
    /// Key messages accepted.
    pub key_messages: u64,
    /// Key messages refused (bad seal, replay, unknown dialog, ...).
    pub key_messages_refused: u64,
    /// Recordings started.
    pub calls_started: u64,
    /// Recordings finished.
    pub calls_finished: u64,
}

type DialogId = [u8; 32];

/// Records the calls it is told about.
pub struct Recorder {
    out: PathBuf,
    opts: RecordOptions,
    auditor: Option<Recipient>,
    calls: HashMap<DialogId, CallRecording>,
    flows: HashMap<SocketAddr, (DialogId, usize, bool)>,
    /// Counters.
    pub stats: RecorderStats,
    finished: Vec<Manifest>,
}

fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("sipsd-rec: {line}");
}

impl Recorder {
    /// A recorder writing under `out`. With `auditor`, each call also keeps its SRTP as
    /// received and its key messages sealed for the auditor's certificate.
    pub fn new(out: &Path, mut opts: RecordOptions, auditor: Option<Recipient>) -> Recorder {
        opts.keep_srtp = opts.keep_srtp || auditor.is_some();
        Recorder {
            out: out.to_path_buf(),
            opts,
            auditor,
            calls: HashMap::new(),
            flows: HashMap::new(),
            stats: RecorderStats::default(),
            finished: Vec::new(),
        }
    }

    /// Calls being recorded.
    pub fn active(&self) -> usize {
        self.calls.len()
    }

    /// Manifests of the recordings finished so far.
    pub fn finished(&self) -> &[Manifest] {
        &self.finished
    }

    fn refuse(&mut self, why: std::fmt::Arguments<'_>) {
        self.stats.key_messages_refused += 1;
        log(why);
    }

    /// Applies an authenticated key message.
    pub fn on_key_message(&mut self, msg: KeyMessage) -> io::Result<()> {
        let Ok(id) = <DialogId>::try_from(msg.dialog_id.as_bytes()) else {
            self.refuse(format_args!("key message with a bad dialog id refused"));
            return Ok(());
        };
        let short = &msg.dialog_hex()[..16];
        match &msg.event {
            Event::Start(s) => {
                if self.calls.contains_key(&id) {
                    self.refuse(format_args!(
                        "dialog {short}: second start refused (send an update)"
                    ));
                    return Ok(());
                }
                let call = CallRecording::start(&self.out, &msg, &self.opts)?;
                log(format_args!(
                    "dialog {short}: recording call-id={} from {} ({} streams) into {}",
                    s.call_id,
                    msg.sender,
                    s.streams.len(),
                    call.dir().display()
                ));
                self.calls.insert(id, call);
                self.stats.calls_started += 1;
            }
            Event::Update(u) => {
                let Some(call) = self.calls.get_mut(&id) else {
                    self.refuse(format_args!(
                        "dialog {short}: update for a dialog not recorded"
                    ));
                    return Ok(());
                };
                call.apply(&msg)?;
                log(format_args!(
                    "dialog {short}: update ({} streams)",
                    u.streams.len()
                ));
            }
            Event::Stop(stop) => {
                if !self.calls.contains_key(&id) {
                    self.refuse(format_args!(
                        "dialog {short}: stop for a dialog not recorded"
                    ));
                    return Ok(());
                }
                self.stats.key_messages += 1;
                return self.finish_call(&id, &stop.reason.clone());
            }
        }
        self.stats.key_messages += 1;
        self.route(&id);
        Ok(())
    }

    /// Points each stream's destination (and RTCP port) at the call.
    fn route(&mut self, id: &DialogId) {
        self.flows.retain(|_, (d, _, _)| d != id);
        let Some(call) = self.calls.get(id) else {
            return;
        };
        for (i, s) in call.streams().enumerate() {
            let Ok(ip) = s.destination.address.parse::<IpAddr>() else {
                log(format_args!(
                    "stream {}: destination is not an IP address, not recorded",
                    direction_label(s.direction)
                ));
                continue;
            };
            self.flows
                .insert(SocketAddr::new(ip, s.destination.port), (*id, i, false));
            if !s.rtcp_mux {
                self.flows.insert(
                    SocketAddr::new(ip, s.destination.port.wrapping_add(1)),
                    (*id, i, true),
                );
            }
        }
    }

    /// Handles one captured IP packet.
    pub fn on_ip(&mut self, at: SystemTime, ip: &[u8]) -> io::Result<()> {
        self.stats.packets_in += 1;
        let Some(d) = net::parse_ip(ip) else {
            self.stats.unmatched += 1;
            return Ok(());
        };
        let Some(&(id, idx, rtcp)) = self.flows.get(&d.dst) else {
            self.stats.unmatched += 1;
            return Ok(());
        };
        let Some(call) = self.calls.get_mut(&id) else {
            self.stats.unmatched += 1;
            return Ok(());
        };
        self.stats.matched += 1;
        match call.on_packet(
            idx,
            rtcp,
            &Captured {
                at,
                src: d.src,
                dst: d.dst,
                payload: d.payload,
                raw: ip,
            },
        )? {
            Outcome::Decrypted => self.stats.decrypted += 1,
            Outcome::AuthFailed => self.stats.auth_failed += 1,
            Outcome::Duplicate => self.stats.duplicates += 1,
            Outcome::Ignored => {}
        }
        Ok(())
    }

    /// Finishes one call's recording.
    pub fn finish_call(&mut self, id: &DialogId, reason: &str) -> io::Result<()> {
        self.flows.retain(|_, (d, _, _)| d != id);
        let Some(call) = self.calls.remove(id) else {
            return Ok(());
        };
        let keys = match &self.auditor {
            Some(a) => {
                let sealed = audit::seal_keys(call.key_messages(), a).map_err(io::Error::other)?;
                std::fs::write(call.dir().join(audit::KEYS_FILE), sealed)?;
                Some(audit::KEYS_FILE.to_string())
            }
            None => None,
        };
        let dir = call.dir().to_path_buf();
        let m = call.finish(reason, keys)?;
        let packets: u64 = m.streams.iter().map(|s| s.packets).sum();
        let lost: u64 = m.streams.iter().map(|s| s.lost).sum();
        log(format_args!(
            "dialog {}: finished ({}): {} streams, {packets} RTP packets, {lost} lost, in {}",
            &m.dialog_id[..16],
            m.end_reason,
            m.streams.len(),
            dir.display()
        ));
        self.stats.calls_finished += 1;
        self.finished.push(m);
        Ok(())
    }

    /// Finishes every call (the recorder stops).
    pub fn finish_all(&mut self, reason: &str) -> io::Result<()> {
        let ids: Vec<DialogId> = self.calls.keys().copied().collect();
        for id in ids {
            self.finish_call(&id, reason)?;
        }
        Ok(())
    }
}
