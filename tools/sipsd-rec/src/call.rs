//! One call being recorded: its streams (one per `m=` line and direction), a libsrtp context
//! per SSRC, reception statistics, the WAV of each G.711 direction, the decrypted pcap and,
//! with the auditor option, the packets as received. [`CallRecording::finish`] closes the
//! files, mixes the first audio stream's two directions and writes the manifest.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sipsd::record::{sdes, CryptoAttr, Direction, KeyMessage, MediaStream};

use crate::g711::{self, Law};
use crate::manifest::{CodecEntry, Files, Manifest, SsrcEntry, StreamEntry, FORMAT};
use crate::net;
use crate::pcap::PcapWriter;
use crate::rtp::{self, SeqStats};
use crate::srtp::{self, Session};
use crate::wav::{self, WavWriter};

/// G.711's sample rate.
pub const RATE: u32 = 8000;
/// Samples kept in memory before they are written, so reordered packets still land in the WAV
/// (2 s).
pub const JITTER_SAMPLES: usize = 2 * RATE as usize;
/// Failed packets between two searches for the roll-over counter of an SSRC.
const SEARCH_EVERY: u64 = 16;
/// Most SSRCs kept per stream. When full, an SSRC that never authenticated makes room (the
/// oldest such): packets with made-up SSRCs cannot grow the state or push out real ones.
pub const MAX_SSRCS: usize = 16;
/// Roll-over-counter searches per stream and second (each costs up to `max_roc + 1` libsrtp
/// contexts), and the burst allowed.
const SEARCHES_PER_SEC: f64 = 4.0;
const SEARCH_BURST: f64 = 8.0;

/// How calls are recorded.
#[derive(Clone, Copy, Debug)]
pub struct RecordOptions {
    /// Replay window of each SRTP context (reordering tolerated), 64..=32768.
    pub window: u32,
    /// Highest roll-over counter tried for a capture that starts mid-call.
    pub max_roc: u32,
    /// Write the plaintext outputs (WAVs, decrypted pcap).
    pub plaintext: bool,
    /// Keep the SRTP as received (srtp.pcap) for the auditor.
    pub keep_srtp: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            window: 1024,
            max_roc: 64,
            plaintext: true,
            keep_srtp: false,
        }
    }
}

pub(crate) fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A WAV track written in order from packets placed by RTP timestamp.
struct AudioTrack {
    path: PathBuf,
    writer: WavWriter,
    /// Samples already in the file.
    flushed: i64,
    /// Samples from `flushed` on, still open to late packets.
    pending: Vec<i16>,
    late: u64,
}

impl AudioTrack {
    fn create(path: PathBuf) -> io::Result<AudioTrack> {
        Ok(AudioTrack {
            writer: WavWriter::create(&path, RATE)?,
            path,
            flushed: 0,
            pending: Vec::new(),
            late: 0,
        })
    }

    /// Adds `samples` at sample position `pos` (mixed with what is there already).
    fn put(&mut self, pos: i64, samples: &[i16]) -> io::Result<()> {
        if pos < self.flushed {
            self.late += 1;
            return Ok(());
        }
        let off = (pos - self.flushed) as usize;
        // Bound a jump forward (a timestamp far ahead) to one minute of silence.
        if off > self.pending.len() + 60 * RATE as usize {
            self.late += 1;
            return Ok(());
        }
        if self.pending.len() < off + samples.len() {
            self.pending.resize(off + samples.len(), 0);
        }
        for (d, s) in self.pending[off..].iter_mut().zip(samples) {
            *d = d.saturating_add(*s);
        }
        if self.pending.len() > 2 * JITTER_SAMPLES {
            let n = self.pending.len() - JITTER_SAMPLES;
            self.writer.write(&self.pending[..n])?;
            self.pending.drain(..n);
            self.flushed += n as i64;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<(PathBuf, u64, u64)> {
        self.writer.write(&self.pending)?;
        let n = self.writer.finish(RATE)?;
        Ok((self.path, n, self.late))
    }
}

/// One SSRC of a stream.
struct SsrcRec {
    ssrc: u32,
    session: Option<Session>,
    rtcp_session: Option<Session>,
    roc_at_start: Option<u32>,
    stats: SeqStats,
    first_ts: Option<u32>,
    base_sample: i64,
    failed_since_search: u64,
    auth_failures: u64,
    payload_bytes: u64,
    payload_types: BTreeMap<u8, u64>,
    first_at: Option<SystemTime>,
    last_at: Option<SystemTime>,
    rtcp_packets: u64,
    rtcp_sender_reports: u64,
    rtcp_auth_failures: u64,
    duplicates: u64,
}

impl SsrcRec {
    fn new(ssrc: u32) -> SsrcRec {
        SsrcRec {
            ssrc,
            session: None,
            rtcp_session: None,
            roc_at_start: None,
            stats: SeqStats::default(),
            first_ts: None,
            base_sample: 0,
            failed_since_search: SEARCH_EVERY,
            auth_failures: 0,
            payload_bytes: 0,
            payload_types: BTreeMap::new(),
            first_at: None,
            last_at: None,
            rtcp_packets: 0,
            rtcp_sender_reports: 0,
            rtcp_auth_failures: 0,
            duplicates: 0,
        }
    }
}

/// One direction of one media description.
struct StreamRec {
    spec: MediaStream,
    attr: Result<CryptoAttr, String>,
    ssrcs: Vec<SsrcRec>,
    audio: Option<AudioTrack>,
    wav_name: Option<String>,
    first_at: Option<SystemTime>,
    finished_wav: Option<(u64, u64)>,
    /// Authentication failures of SSRCs dropped to make room.
    evicted_auth_failures: u64,
    /// Search budget (token bucket) and when it was last topped up.
    search_tokens: f64,
    search_refill: Option<SystemTime>,
    /// Searches over higher roll-over counters done.
    roc_searches: u64,
}

fn law_of(spec: &MediaStream, pt: u8) -> Option<Law> {
    let named = spec
        .codecs
        .iter()
        .find(|c| c.payload_type == pt)
        .map(|c| c.name.to_ascii_uppercase());
    match (named.as_deref(), pt) {
        (Some("PCMU"), _) | (None, 0) => Some(Law::Mu),
        (Some("PCMA"), _) | (None, 8) => Some(Law::A),
        _ => None,
    }
}

fn is_g711(spec: &MediaStream) -> bool {
    spec.media.eq_ignore_ascii_case("audio")
        && (spec.codecs.is_empty()
            || spec
                .codecs
                .iter()
                .any(|c| law_of(spec, c.payload_type).is_some()))
}

impl StreamRec {
    fn new(spec: MediaStream, dir: &Path, opts: &RecordOptions) -> io::Result<StreamRec> {
        let attr = spec
            .crypto
            .parse()
            .map_err(|e| e.to_string())
            .and_then(|a| match sdes::unsupported_param(&a) {
                Some(p) => Err(format!("session parameter {p} not supported")),
                None => Ok(a),
            });
        let (audio, wav_name) = if opts.plaintext && is_g711(&spec) {
            let prefix = if spec.mline == 0 {
                String::new()
            } else {
                format!("m{}-", spec.mline)
            };
            let name = format!("{prefix}{}.wav", spec.direction.sender_name());
            (Some(AudioTrack::create(dir.join(&name))?), Some(name))
        } else {
            (None, None)
        };
        Ok(StreamRec {
            spec,
            attr,
            ssrcs: Vec::new(),
            audio,
            wav_name,
            first_at: None,
            finished_wav: None,
            evicted_auth_failures: 0,
            search_tokens: SEARCH_BURST,
            search_refill: None,
            roc_searches: 0,
        })
    }

    fn window(&self, opts: &RecordOptions) -> u32 {
        match &self.attr {
            Ok(a) => a.window_size_hint().unwrap_or(0).max(opts.window),
            Err(_) => opts.window,
        }
    }

    /// The state of `ssrc`, made if new; `None` when the table is full of SSRCs that did
    /// authenticate.
    fn ssrc_index(&mut self, ssrc: u32) -> Option<usize> {
        if let Some(i) = self.ssrcs.iter().position(|s| s.ssrc == ssrc) {
            return Some(i);
        }
        if self.ssrcs.len() >= MAX_SSRCS {
            let victim = self.ssrcs.iter().position(|s| {
                s.session.is_none() && s.rtcp_packets == 0 && s.stats.received == 0
            })?;
            let gone = self.ssrcs.remove(victim);
            self.evicted_auth_failures += gone.auth_failures + gone.rtcp_auth_failures;
        }
        self.ssrcs.push(SsrcRec::new(ssrc));
        Some(self.ssrcs.len() - 1)
    }

    /// Takes one roll-over-counter search from the stream's budget, if any is left.
    fn take_search(&mut self, at: SystemTime) -> bool {
        let last = *self.search_refill.get_or_insert(at);
        let secs = at.duration_since(last).unwrap_or_default().as_secs_f64();
        self.search_tokens = (self.search_tokens + secs * SEARCHES_PER_SEC).min(SEARCH_BURST);
        self.search_refill = Some(at);
        if self.search_tokens >= 1.0 {
            self.search_tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Finds the roll-over counter under which `pkt` authenticates: 0 (a fresh context), then
/// 1..=max_roc set with `srtp_set_stream_roc`. Returns the context and the decrypted packet.
fn search_roc(
    attr: &CryptoAttr,
    ssrc: u32,
    window: u32,
    max_roc: u32,
    pkt: &[u8],
) -> Option<(Session, Vec<u8>, u32)> {
    for roc in 0..=max_roc {
        let mut s = Session::new(attr, ssrc, window).ok()?;
        if roc > 0 && s.set_roc(roc).is_err() {
            return None;
        }
        let mut buf = pkt.to_vec();
        if s.unprotect(&mut buf).is_ok() {
            return Some((s, buf, roc));
        }
    }
    None
}

/// What happened to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Decrypted and recorded.
    Decrypted,
    /// Failed authentication.
    AuthFailed,
    /// Refused as a replay.
    Duplicate,
    /// Not RTP/RTCP, or no key for its stream.
    Ignored,
}

/// A captured datagram: when, between whom, its UDP payload and the whole IP packet.
#[derive(Clone, Copy, Debug)]
pub struct Captured<'a> {
    /// Capture time.
    pub at: SystemTime,
    /// UDP source.
    pub src: SocketAddr,
    /// UDP destination.
    pub dst: SocketAddr,
    /// The UDP payload (SRTP or SRTCP).
    pub payload: &'a [u8],
    /// The IP packet as captured.
    pub raw: &'a [u8],
}

/// A call being recorded.
pub struct CallRecording {
    dir: PathBuf,
    dialog_hex: String,
    call_id: String,
    caller: String,
    callee: String,
    key_sender: String,
    started_ms: u64,
    key_messages: Vec<KeyMessage>,
    streams: Vec<StreamRec>,
    rtp_pcap: Option<PcapWriter>,
    srtp_pcap: Option<PcapWriter>,
    first_at: Option<SystemTime>,
    last_at: Option<SystemTime>,
    opts: RecordOptions,
}

impl CallRecording {
    /// Starts a recording in a new directory under `out` from a start message.
    pub fn start(out: &Path, msg: &KeyMessage, opts: &RecordOptions) -> io::Result<CallRecording> {
        let sipsd::record::Event::Start(start) = &msg.event else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a start message",
            ));
        };
        let dialog_hex = msg.dialog_hex();
        let dir = out.join(format!("{}-{}", &dialog_hex[..16], msg.sent_at_ms));
        fs::create_dir_all(&dir)?;
        let mut rec = CallRecording {
            rtp_pcap: if opts.plaintext {
                Some(PcapWriter::create(&dir.join("rtp.pcap"))?)
            } else {
                None
            },
            srtp_pcap: if opts.keep_srtp {
                Some(PcapWriter::create(&dir.join("srtp.pcap"))?)
            } else {
                None
            },
            dir,
            dialog_hex,
            call_id: start.call_id.clone(),
            caller: start.caller.clone(),
            callee: start.callee.clone(),
            key_sender: msg.sender.clone(),
            started_ms: msg.sent_at_ms,
            key_messages: Vec::new(),
            streams: Vec::new(),
            first_at: None,
            last_at: None,
            opts: *opts,
        };
        rec.apply(msg)?;
        Ok(rec)
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The streams the call has now.
    pub fn streams(&self) -> impl Iterator<Item = &MediaStream> {
        self.streams.iter().map(|s| &s.spec)
    }

    /// The key messages applied so far (start and updates; for the auditor).
    pub fn key_messages(&self) -> &[KeyMessage] {
        &self.key_messages
    }

    /// Applies a start or update: streams not yet known are added; a stream whose crypto
    /// attribute changed gets new SRTP contexts (its statistics carry on).
    pub fn apply(&mut self, msg: &KeyMessage) -> io::Result<()> {
        for spec in msg.event.streams() {
            let found = self
                .streams
                .iter_mut()
                .find(|s| s.spec.mline == spec.mline && s.spec.direction == spec.direction);
            match found {
                Some(s) => {
                    if s.spec.crypto != spec.crypto {
                        for r in &mut s.ssrcs {
                            r.session = None;
                            r.rtcp_session = None;
                            r.failed_since_search = SEARCH_EVERY;
                        }
                        s.attr = spec.crypto.parse().map_err(|e| e.to_string());
                    }
                    s.spec = spec.clone();
                }
                None => {
                    let s = StreamRec::new(spec.clone(), &self.dir, &self.opts)?;
                    self.streams.push(s);
                }
            }
        }
        self.key_messages.push(msg.clone());
        Ok(())
    }

    /// Handles a datagram for stream `idx` (RTP, or RTCP when `rtcp`).
    pub fn on_packet(&mut self, idx: usize, rtcp: bool, pkt: &Captured<'_>) -> io::Result<Outcome> {
        let Captured {
            at,
            src,
            dst,
            payload,
            raw,
        } = *pkt;
        if let Some(w) = &mut self.srtp_pcap {
            w.write(at, raw)?;
        }
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        let opts = self.opts;
        let Some(stream) = self.streams.get_mut(idx) else {
            return Ok(Outcome::Ignored);
        };
        if stream.attr.is_err() {
            return Ok(Outcome::Ignored);
        }
        let rtcp = rtcp || (stream.spec.rtcp_mux && rtp::is_rtcp(payload));
        let Some(ssrc) = rtp::ssrc_of(payload, rtcp) else {
            return Ok(Outcome::Ignored);
        };
        let window = stream.window(&opts);
        let Some(i) = stream.ssrc_index(ssrc) else {
            stream.evicted_auth_failures += 1;
            return Ok(Outcome::AuthFailed);
        };
        // A new SSRC is tried under ROC 0 at once; the search over higher ROCs needs budget.
        let full_search = !rtcp
            && stream.ssrcs[i].session.is_none()
            && stream.ssrcs[i].failed_since_search + 1 >= SEARCH_EVERY
            && stream.take_search(at);
        let StreamRec {
            spec,
            attr: Ok(attr),
            ssrcs,
            audio,
            first_at,
            roc_searches,
            ..
        } = stream
        else {
            return Ok(Outcome::Ignored);
        };
        let plain = if rtcp {
            let r = &mut ssrcs[i];
            if r.rtcp_session.is_none() {
                r.rtcp_session = Session::new(attr, ssrc, window).ok();
            }
            let Some(s) = r.rtcp_session.as_mut() else {
                return Ok(Outcome::Ignored);
            };
            let mut buf = payload.to_vec();
            match s.unprotect_rtcp(&mut buf) {
                Ok(()) => {
                    r.rtcp_packets += 1;
                    if buf.get(1) == Some(&200) {
                        r.rtcp_sender_reports += 1;
                    }
                    buf
                }
                Err(e) if e.is_replay() => {
                    r.duplicates += 1;
                    return Ok(Outcome::Duplicate);
                }
                Err(_) => {
                    r.rtcp_auth_failures += 1;
                    return Ok(Outcome::AuthFailed);
                }
            }
        } else {
            let r = &mut ssrcs[i];
            let buf = match r.session.as_mut() {
                Some(s) => {
                    let mut buf = payload.to_vec();
                    match s.unprotect(&mut buf) {
                        Ok(()) => buf,
                        Err(e) if e.is_replay() => {
                            r.duplicates += 1;
                            return Ok(Outcome::Duplicate);
                        }
                        Err(_) => {
                            r.auth_failures += 1;
                            return Ok(Outcome::AuthFailed);
                        }
                    }
                }
                None => {
                    r.failed_since_search += 1;
                    if r.failed_since_search < SEARCH_EVERY {
                        r.auth_failures += 1;
                        return Ok(Outcome::AuthFailed);
                    }
                    r.failed_since_search = 0;
                    let max_roc = if full_search { opts.max_roc } else { 0 };
                    if max_roc > 0 {
                        *roc_searches += 1;
                    }
                    match search_roc(attr, ssrc, window, max_roc, payload) {
                        Some((s, buf, roc)) => {
                            r.session = Some(s);
                            if r.roc_at_start.is_none() {
                                r.roc_at_start = Some(roc);
                            }
                            buf
                        }
                        None => {
                            r.auth_failures += 1;
                            return Ok(Outcome::AuthFailed);
                        }
                    }
                }
            };
            let Some(h) = rtp::parse(&buf) else {
                return Ok(Outcome::Ignored);
            };
            let ext = r.stats.extend(h.seq, r.roc_at_start.unwrap_or(0));
            r.stats.record(ext);
            r.payload_bytes += (h.payload_end - h.payload_start) as u64;
            *r.payload_types.entry(h.payload_type).or_default() += 1;
            r.first_at.get_or_insert(at);
            r.last_at = Some(at);
            let stream_first = *first_at.get_or_insert(at);
            if r.first_ts.is_none() {
                r.first_ts = Some(h.timestamp);
                let since = at.duration_since(stream_first).unwrap_or_default();
                r.base_sample = (since.as_secs_f64() * f64::from(RATE)).round() as i64;
            }
            if let (Some(track), Some(law)) = (audio.as_mut(), law_of(spec, h.payload_type)) {
                let delta = h.timestamp.wrapping_sub(r.first_ts.unwrap_or(h.timestamp)) as i32;
                let mut samples = Vec::with_capacity(h.payload_end - h.payload_start);
                g711::decode(law, &buf[h.payload_start..h.payload_end], &mut samples);
                track.put(r.base_sample + i64::from(delta), &samples)?;
            }
            buf
        };
        if let Some(w) = &mut self.rtp_pcap {
            w.write(at, &net::build_ip(src, dst, &plain))?;
        }
        Ok(Outcome::Decrypted)
    }

    /// Closes the files, writes the mixed WAV and the manifest; returns the manifest.
    pub fn finish(mut self, reason: &str, auditor_keys: Option<String>) -> io::Result<Manifest> {
        let mut streams = Vec::new();
        for s in &mut self.streams {
            if let Some(t) = s.audio.take() {
                let (_, n, late) = t.finish()?;
                s.finished_wav = Some((n, late));
            }
        }
        let mixed = self.mix()?;
        for s in &self.streams {
            streams.push(stream_entry(s));
        }
        let rtp = match self.rtp_pcap.take() {
            Some(w) => {
                w.finish()?;
                Some("rtp.pcap".to_string())
            }
            None => None,
        };
        let srtp_file = match self.srtp_pcap.take() {
            Some(w) => {
                w.finish()?;
                Some("srtp.pcap".to_string())
            }
            None => None,
        };
        let m = Manifest {
            format: FORMAT.into(),
            dialog_id: self.dialog_hex.clone(),
            call_id: self.call_id.clone(),
            caller: self.caller.clone(),
            callee: self.callee.clone(),
            key_sender: self.key_sender.clone(),
            key_messages: self.key_messages.len() as u32,
            started_ms: self.started_ms,
            ended_ms: ms(SystemTime::now()),
            end_reason: reason.chars().take(200).collect(),
            first_packet_ms: self.first_at.map(ms),
            last_packet_ms: self.last_at.map(ms),
            streams,
            files: Files {
                rtp_pcap: rtp,
                mixed_wav: mixed,
                srtp_pcap: srtp_file,
                auditor_keys,
            },
            srtp_library: srtp::version(),
        };
        let json = serde_json::to_vec_pretty(&m).map_err(io::Error::other)?;
        fs::write(self.dir.join("manifest.json"), json)?;
        Ok(m)
    }

    /// Mixes the two directions of the first audio stream with a WAV, aligned by the arrival
    /// time of each direction's first packet.
    fn mix(&self) -> io::Result<Option<String>> {
        let first = self
            .streams
            .iter()
            .filter(|s| s.wav_name.is_some())
            .map(|s| s.spec.mline)
            .min();
        let Some(mline) = first else { return Ok(None) };
        let dirs: Vec<&StreamRec> = self
            .streams
            .iter()
            .filter(|s| s.spec.mline == mline && s.wav_name.is_some() && s.first_at.is_some())
            .collect();
        let Some(t0) = dirs.iter().filter_map(|s| s.first_at).min() else {
            return Ok(None);
        };
        let mut mixed: Vec<i16> = Vec::new();
        for s in &dirs {
            let (_, _, samples) =
                wav::read(&self.dir.join(s.wav_name.as_deref().unwrap_or_default()))?;
            let off = s
                .first_at
                .and_then(|t| t.duration_since(t0).ok())
                .unwrap_or_default();
            let off = (off.as_secs_f64() * f64::from(RATE)).round() as usize;
            if mixed.len() < off + samples.len() {
                mixed.resize(off + samples.len(), 0);
            }
            for (d, x) in mixed[off..].iter_mut().zip(&samples) {
                *d = d.saturating_add(*x);
            }
        }
        let name = if mline == 0 {
            "mixed.wav".to_string()
        } else {
            format!("m{mline}-mixed.wav")
        };
        let mut w = WavWriter::create(&self.dir.join(&name), RATE)?;
        w.write(&mixed)?;
        w.finish(RATE)?;
        Ok(Some(name))
    }
}

fn stream_entry(s: &StreamRec) -> StreamEntry {
    let dst = format!("{}:{}", s.spec.destination.address, s.spec.destination.port);
    let rtcp_port = if s.spec.rtcp_mux {
        s.spec.destination.port
    } else {
        s.spec.destination.port.wrapping_add(1)
    };
    let ssrcs: Vec<SsrcEntry> = s
        .ssrcs
        .iter()
        .map(|r| SsrcEntry {
            ssrc: format!("0x{:08x}", r.ssrc),
            packets: r.stats.received,
            payload_bytes: r.payload_bytes,
            first_seq: r.stats.range().map(|x| x.0),
            highest_seq: r.stats.range().map(|x| x.1),
            expected: r.stats.expected(),
            lost: r.stats.lost(),
            reordered: r.stats.reordered,
            duplicates: r.duplicates,
            auth_failures: r.auth_failures,
            roc_at_start: r.roc_at_start,
            payload_types: r.payload_types.clone(),
            first_packet_ms: r.first_at.map(ms),
            last_packet_ms: r.last_at.map(ms),
            rtcp_packets: r.rtcp_packets,
            rtcp_sender_reports: r.rtcp_sender_reports,
        })
        .collect();
    let (wav_samples, late) = s.finished_wav.unwrap_or((0, 0));
    StreamEntry {
        mline: s.spec.mline,
        media: s.spec.media.clone(),
        sender: s.spec.direction.sender_name().into(),
        source: s
            .spec
            .source
            .as_ref()
            .map(|e| format!("{}:{}", e.address, e.port)),
        rtcp_destination: format!("{}:{}", s.spec.destination.address, rtcp_port),
        destination: dst,
        suite: s
            .attr
            .as_ref()
            .map(|a| a.suite().to_string())
            .unwrap_or_default(),
        error: s.attr.as_ref().err().cloned(),
        codecs: s
            .spec
            .codecs
            .iter()
            .map(|c| CodecEntry {
                payload_type: c.payload_type,
                name: c.name.clone(),
                clock_rate: c.clock_rate,
            })
            .collect(),
        wav: s.wav_name.clone(),
        wav_samples,
        packets: ssrcs.iter().map(|x| x.packets).sum(),
        lost: ssrcs.iter().map(|x| x.lost).sum(),
        reordered: ssrcs.iter().map(|x| x.reordered).sum(),
        duplicates: ssrcs.iter().map(|x| x.duplicates).sum(),
        auth_failures: s.evicted_auth_failures
            + s.ssrcs.iter().map(|r| r.auth_failures).sum::<u64>(),
        late_for_wav: late,
        roc_searches: s.roc_searches,
        rtcp_packets: s.ssrcs.iter().map(|r| r.rtcp_packets).sum(),
        rtcp_auth_failures: s.ssrcs.iter().map(|r| r.rtcp_auth_failures).sum(),
        ssrcs,
    }
}

/// The direction a stream's packets travel, for log lines.
pub fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::CallerToCallee => "caller->callee",
        Direction::CalleeToCaller => "callee->caller",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsd::record::{CallStart, Codec, Endpoint, Event, SdesValue};
    use std::time::Duration;

    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    fn call(dir: &Path) -> CallRecording {
        let stream = MediaStream {
            mline: 0,
            media: "audio".into(),
            direction: Direction::CallerToCallee,
            source: None,
            destination: Endpoint {
                address: "192.0.2.2".into(),
                port: 4000,
            },
            rtcp_mux: false,
            codecs: vec![Codec::new(0, "PCMU", 8000)],
            crypto: SdesValue::new(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).unwrap(),
        };
        let msg = KeyMessage::new(
            "proxy1",
            1,
            1_700_000_000_000,
            &[7; 32],
            Event::Start(CallStart {
                call_id: "c".into(),
                caller: "a".into(),
                callee: "b".into(),
                streams: vec![stream],
            }),
        );
        CallRecording::start(dir, &msg, &RecordOptions::default()).unwrap()
    }

    fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend(std::iter::repeat_n(0xffu8, 160));
        p
    }

    #[test]
    fn forged_ssrcs_are_bounded_and_real_ones_still_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = call(dir.path());
        let (src, dst): (SocketAddr, SocketAddr) = (
            "192.0.2.1:5000".parse().unwrap(),
            "192.0.2.2:4000".parse().unwrap(),
        );
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // 500 packets with made-up SSRCs and a 10-byte "tag", at one instant.
        for i in 0..500u32 {
            let mut p = packet(0x5000_0000 + i, i as u16);
            p.extend_from_slice(&[0xaa; 10]);
            let cap = Captured {
                at: t0,
                src,
                dst,
                payload: &p,
                raw: &p,
            };
            assert_eq!(c.on_packet(0, false, &cap).unwrap(), Outcome::AuthFailed);
        }
        let s = &c.streams[0];
        assert!(s.ssrcs.len() <= MAX_SSRCS, "{}", s.ssrcs.len());
        assert!(
            s.roc_searches <= SEARCH_BURST as u64,
            "{} full searches",
            s.roc_searches
        );
        // A real sender with a new SSRC (ROC 0) a moment later is decrypted at once, and one
        // whose ROC is 2 once the budget has refilled.
        let attr = CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).unwrap();
        let mut tx = Session::new(&attr, 0x1234, 128).unwrap();
        let mut p = packet(0x1234, 10);
        tx.protect(&mut p).unwrap();
        let cap = Captured {
            at: t0 + Duration::from_millis(10),
            src,
            dst,
            payload: &p,
            raw: &p,
        };
        assert_eq!(c.on_packet(0, false, &cap).unwrap(), Outcome::Decrypted);
        let mut tx2 = Session::new(&attr, 0x9999, 128).unwrap();
        tx2.set_roc(2).unwrap();
        let mut q = packet(0x9999, 77);
        tx2.protect(&mut q).unwrap();
        let cap = Captured {
            at: t0 + Duration::from_secs(2),
            src,
            dst,
            payload: &q,
            raw: &q,
        };
        assert_eq!(c.on_packet(0, false, &cap).unwrap(), Outcome::Decrypted);
        let m = c.finish("test", None).unwrap();
        let e = &m.streams[0];
        assert_eq!(e.auth_failures, 500);
        assert_eq!(e.ssrcs.iter().filter(|x| x.packets == 1).count(), 2);
        assert!(e.ssrcs.iter().any(|x| x.roc_at_start == Some(2)));
        println!(
            "  ok   500 forged packets with new SSRCs: {} SSRCs kept (max {MAX_SSRCS}), {} ROC searches (burst {SEARCH_BURST}); real SSRCs (ROC 0, ROC 2) still decrypted",
            e.ssrcs.len(),
            e.roc_searches
        );
    }
}
