//! The JSON manifest written beside each recording (`manifest.json`): who called whom, the
//! media tuples, codecs, times, packets, losses and SSRCs. Never key material.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format identifier of this manifest version.
pub const FORMAT: &str = "sipsd-rec/1";

/// A whole recording.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// SHA-256(Call-ID || 0 || caller's tag), hex.
    pub dialog_id: String,
    /// SIP Call-ID.
    pub call_id: String,
    /// Caller URI.
    pub caller: String,
    /// Callee URI.
    pub callee: String,
    /// The proxy that disclosed the keys.
    pub key_sender: String,
    /// Key messages applied (start and updates).
    pub key_messages: u32,
    /// Unix ms of the start message.
    pub started_ms: u64,
    /// Unix ms when the recording was closed.
    pub ended_ms: u64,
    /// Why it was closed: the stop message's reason, or `recorder stopped`.
    pub end_reason: String,
    /// Unix ms of the first and last packet of the call, if any.
    pub first_packet_ms: Option<u64>,
    /// See `first_packet_ms`.
    pub last_packet_ms: Option<u64>,
    /// One entry per stream and direction.
    pub streams: Vec<StreamEntry>,
    /// Files of the recording (names relative to its directory).
    pub files: Files,
    /// The libsrtp version that decrypted it.
    pub srtp_library: String,
}

/// The files of a recording.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Files {
    /// Decrypted RTP and RTCP as pcap (raw IP), all codecs.
    pub rtp_pcap: Option<String>,
    /// The first audio stream's two directions mixed.
    pub mixed_wav: Option<String>,
    /// The SRTP/SRTCP packets as received (auditor option).
    pub srtp_pcap: Option<String>,
    /// The key messages sealed for the auditor (CMS AuthEnvelopedData, DER).
    pub auditor_keys: Option<String>,
}

/// A codec of a stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CodecEntry {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name.
    pub name: String,
    /// Clock rate.
    pub clock_rate: u32,
}

/// One stream in one direction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamEntry {
    /// `m=` line index.
    pub mline: u16,
    /// Media type.
    pub media: String,
    /// `caller` or `callee`: who sends.
    pub sender: String,
    /// The sender's SDP address (`addr:port`), if known.
    pub source: Option<String>,
    /// Where the packets went (`addr:port`).
    pub destination: String,
    /// Where its RTCP went.
    pub rtcp_destination: String,
    /// SRTP crypto suite.
    pub suite: String,
    /// Why this stream could not be decrypted at all (bad or unsupported crypto), if so.
    pub error: Option<String>,
    /// Offered/answered codecs.
    pub codecs: Vec<CodecEntry>,
    /// The WAV of this direction (G.711 only).
    pub wav: Option<String>,
    /// Samples in the WAV.
    pub wav_samples: u64,
    /// Decrypted RTP packets (all SSRCs).
    pub packets: u64,
    /// Lost packets (all SSRCs): expected minus received per SSRC.
    pub lost: u64,
    /// Reordered packets.
    pub reordered: u64,
    /// Duplicates refused by the replay check.
    pub duplicates: u64,
    /// Packets that failed authentication.
    pub auth_failures: u64,
    /// Packets that arrived too late for the WAV (still in the pcap).
    pub late_for_wav: u64,
    /// Searches over roll-over counters above 0 (a capture that began after a wrap, or
    /// packets that authenticate under no key: forged, or another call's).
    pub roc_searches: u64,
    /// SRTCP packets decrypted.
    pub rtcp_packets: u64,
    /// SRTCP packets that failed authentication.
    pub rtcp_auth_failures: u64,
    /// Per SSRC, in order of appearance.
    pub ssrcs: Vec<SsrcEntry>,
}

/// One synchronisation source of a stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SsrcEntry {
    /// The SSRC, `0x` hex.
    pub ssrc: String,
    /// Decrypted RTP packets.
    pub packets: u64,
    /// RTP payload bytes.
    pub payload_bytes: u64,
    /// First extended sequence number (ROC << 16 | seq).
    pub first_seq: Option<u64>,
    /// Highest extended sequence number.
    pub highest_seq: Option<u64>,
    /// Packets expected between the two.
    pub expected: u64,
    /// Of which never received.
    pub lost: u64,
    /// Arrived after a higher one.
    pub reordered: u64,
    /// Refused as replays.
    pub duplicates: u64,
    /// Failed authentication.
    pub auth_failures: u64,
    /// The roll-over counter the first decrypted packet had (non-zero: capture began after
    /// the sequence number wrapped).
    pub roc_at_start: Option<u32>,
    /// Packets per payload type.
    pub payload_types: BTreeMap<u8, u64>,
    /// Unix ms of the first and last decrypted packet.
    pub first_packet_ms: Option<u64>,
    /// See `first_packet_ms`.
    pub last_packet_ms: Option<u64>,
    /// SRTCP packets from this SSRC.
    pub rtcp_packets: u64,
    /// SRTCP sender reports among them.
    pub rtcp_sender_reports: u64,
}
