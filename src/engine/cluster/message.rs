//! The replication message inside the seal, as DER (docs/PROTOCOL.md §8.2):
//!
//! ```text
//! ReplicationMessage ::= SEQUENCE {
//!   version    INTEGER (1),
//!   node       UTF8String (SIZE (1..64)),  -- the sender's cluster_node
//!   counter    INTEGER (0..2^64-1),        -- strictly increasing per sender
//!   sentAt     INTEGER,                    -- sender's clock, Unix milliseconds
//!   kind       INTEGER { update(0), syncRequest(1), syncData(2), syncDone(3) },
//!   records    SEQUENCE (SIZE (0..32)) OF Record }
//!
//! Record ::= SEQUENCE {
//!   dialog     OCTET STRING (SIZE (32)),   -- SHA-256 dialog id (PROTOCOL.md §6.2)
//!   key        [0] EXPLICIT DialogKeyState OPTIONAL,  -- key and media absent: the dialog ended
//!   media      [1] EXPLICIT MediaState OPTIONAL }     -- pinholes and recording, never with key
//!
//! DialogKeyState ::= SEQUENCE {
//!   alg        INTEGER (1..4),             -- content-encryption algorithm code
//!   cek        OCTET STRING (SIZE (16 | 32)),
//!   generation INTEGER (1..2^32-1),
//!   createdAt  INTEGER,                    -- Unix seconds this generation was stored
//!   lastUsed   INTEGER,                    -- Unix seconds of its last use
//!   uses       INTEGER (0..2^32-1) }
//!
//! MediaState ::= SEQUENCE {
//!   callId     OCTET STRING (SIZE (1..128)),
//!   tag        OCTET STRING (SIZE (1..64)),  -- SHA-256 of both must be the record's dialog
//!   version    INTEGER (1..2^64-1),          -- applied only above the receiver's
//!   owner      UTF8String (SIZE (1..64)),    -- the node that refreshes the pinholes
//!   stage      INTEGER { offered(1), answered(2), closed(3) },
//!   openedAt   INTEGER,                      -- Unix seconds of the first pinhole
//!   expiresAt  INTEGER,                      -- Unix seconds the agent's lifetime ends
//!   flows      SEQUENCE (SIZE (0..32)) OF Flow,
//!   recording  [0] EXPLICIT RecordingState OPTIONAL }
//!
//! Flow ::= SEQUENCE {
//!   internal   OCTET STRING (SIZE (4 | 16)),     -- the media address (PCP THIRD_PARTY)
//!   port       INTEGER (1..65535),
//!   remote     OCTET STRING (SIZE (0 | 4 | 16)), -- the FILTER peer; empty: any source
//!   remotePort INTEGER (0..65535) }
//!
//! RecordingState ::= SEQUENCE {
//!   state      INTEGER { marked(1), active(2), stopped(3) },
//!   streams    INTEGER (0..255),
//!   startedAt  INTEGER,
//!   stoppedAt  INTEGER,
//!   keySequence INTEGER (0..2^64-1) }     -- the last key-channel sequence number used
//! ```
//! A receiver of an older build decodes a record with `media` as malformed and refuses its
//! whole message: media states therefore travel in messages of their own, never with keys.
//!
//! Decoding borrows every byte string from the (zeroizing) plaintext: no key is copied.

use der::asn1::{OctetStringRef, Utf8StringRef};
use std::net::IpAddr;

use der::{Decode, Encode, Sequence};
use zeroize::Zeroizing;

use super::media::{
    MediaFlow, MediaRecording, MediaStage, MediaState, MAX_CALL_ID, MAX_MEDIA_FLOWS, MAX_TAG,
};
use super::ClusterError;
use crate::crypto::cms::ContentAlg;

/// The only version there is.
pub(crate) const VERSION: u8 = 1;
/// Longest node name.
pub const MAX_NODE_LEN: usize = 64;
/// Most records in one message.
pub(crate) const MAX_RECORDS: usize = 32;

/// What a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Keys stored or rotated, dialogs ended, as they happen.
    Update,
    /// The sender (re)started: it asks for every live entry.
    SyncRequest,
    /// Part of the answer to a sync request; more follows.
    SyncData,
    /// The last part of the answer to a sync request.
    SyncDone,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Update => 0,
            Kind::SyncRequest => 1,
            Kind::SyncData => 2,
            Kind::SyncDone => 3,
        }
    }

    fn from_code(c: u8) -> Option<Kind> {
        [
            Kind::Update,
            Kind::SyncRequest,
            Kind::SyncData,
            Kind::SyncDone,
        ]
        .into_iter()
        .find(|k| k.code() == c)
    }

    /// `update`, `sync-request`, `sync-data`, `sync-done`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::SyncRequest => "sync-request",
            Kind::SyncData => "sync-data",
            Kind::SyncDone => "sync-done",
        }
    }
}

#[derive(Sequence)]
struct WireMessage<'a> {
    version: u8,
    node: Utf8StringRef<'a>,
    counter: u64,
    sent_at: u64,
    kind: u8,
    records: Vec<WireRecord<'a>>,
}

#[derive(Sequence)]
struct WireRecord<'a> {
    dialog: &'a OctetStringRef,
    #[asn1(context_specific = "0", optional = "true")]
    key: Option<WireKeyState<'a>>,
    #[asn1(context_specific = "1", optional = "true")]
    media: Option<WireMediaState<'a>>,
}

#[derive(Sequence)]
struct WireMediaState<'a> {
    call_id: &'a OctetStringRef,
    tag: &'a OctetStringRef,
    version: u64,
    owner: Utf8StringRef<'a>,
    stage: u8,
    opened_at: u64,
    expires_at: u64,
    flows: Vec<WireFlow<'a>>,
    #[asn1(context_specific = "0", optional = "true")]
    recording: Option<WireRecording>,
}

#[derive(Sequence)]
struct WireFlow<'a> {
    internal: &'a OctetStringRef,
    port: u16,
    remote: &'a OctetStringRef,
    remote_port: u16,
}

#[derive(Sequence)]
struct WireRecording {
    state: u8,
    streams: u8,
    started: u64,
    stopped: u64,
    key_sequence: u64,
}

/// An address as its 4 or 16 bytes.
fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

#[derive(Sequence)]
struct WireKeyState<'a> {
    alg: u8,
    cek: &'a OctetStringRef,
    generation: u32,
    created_at: u64,
    last_used: u64,
    uses: u32,
}

/// A dialog key as it is cached, borrowed from the cache's copy or from the plaintext.
#[derive(Clone, Copy)]
pub(crate) struct KeyState<'a> {
    pub(crate) alg: ContentAlg,
    pub(crate) cek: &'a [u8],
    pub(crate) generation: u32,
    pub(crate) created_at: u64,
    pub(crate) last_used: u64,
    pub(crate) uses: u32,
}

/// One record: a dialog's key, or the end of the dialog.
#[derive(Clone, Copy)]
pub(crate) enum Record<'a> {
    Key {
        dialog: [u8; 32],
        state: KeyState<'a>,
    },
    End {
        dialog: [u8; 32],
    },
}

/// A decoded (or to-be-encoded) message. On the wire `media` are records too (after the
/// others); they are kept apart here because they are owned, not borrowed.
pub(crate) struct Message<'a> {
    pub(crate) node: &'a str,
    pub(crate) counter: u64,
    pub(crate) sent_at_ms: u64,
    pub(crate) kind: Kind,
    pub(crate) records: Vec<Record<'a>>,
    pub(crate) media: Vec<MediaState>,
}

fn check_media(m: &MediaState) -> Result<(), ClusterError> {
    if m.call_id.is_empty() || m.call_id.len() > MAX_CALL_ID {
        return Err(malformed("media: Call-ID of 1 to 128 bytes"));
    }
    if m.tag.is_empty() || m.tag.len() > MAX_TAG {
        return Err(malformed("media: tag of 1 to 64 bytes"));
    }
    if m.owner.is_empty() || m.owner.len() > MAX_NODE_LEN {
        return Err(malformed("media: owner of 1 to 64 bytes"));
    }
    if m.version == 0 {
        return Err(malformed("media: version 0"));
    }
    if m.flows.len() > MAX_MEDIA_FLOWS {
        return Err(malformed("media: too many flows"));
    }
    if m.flows.iter().any(|f| f.port == 0) {
        return Err(malformed("media: a flow to port 0"));
    }
    if m.recording.is_some_and(|r| !(1..=3).contains(&r.state)) {
        return Err(malformed("media: unknown recording state"));
    }
    Ok(())
}

fn malformed(what: &str) -> ClusterError {
    ClusterError::Malformed(what.to_string())
}

impl<'a> Message<'a> {
    /// The DER, in a zeroizing buffer of exactly its length (it holds keys).
    pub(crate) fn encode(&self) -> Result<Zeroizing<Vec<u8>>, ClusterError> {
        if self.node.is_empty() || self.node.len() > MAX_NODE_LEN {
            return Err(malformed("node name must be 1 to 64 bytes"));
        }
        if self.records.len() + self.media.len() > MAX_RECORDS {
            return Err(malformed("too many records"));
        }
        for m in &self.media {
            check_media(m)?;
        }
        let der_err = |e: der::Error| ClusterError::Malformed(format!("encoding: {e}"));
        let dialogs: Vec<[u8; 32]> = self.media.iter().map(|m| *m.dialog().as_bytes()).collect();
        let addrs: Vec<Vec<(Vec<u8>, Vec<u8>)>> = self
            .media
            .iter()
            .map(|m| {
                m.flows
                    .iter()
                    .map(|f| {
                        (
                            ip_bytes(f.internal),
                            f.remote.map(ip_bytes).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .collect();
        let mut records = Vec::with_capacity(self.records.len() + self.media.len());
        for r in &self.records {
            records.push(match r {
                Record::Key { dialog, state } => WireRecord {
                    dialog: OctetStringRef::new(dialog).map_err(der_err)?,
                    key: Some(WireKeyState {
                        alg: state.alg.code(),
                        cek: OctetStringRef::new(state.cek).map_err(der_err)?,
                        generation: state.generation,
                        created_at: state.created_at,
                        last_used: state.last_used,
                        uses: state.uses,
                    }),
                    media: None,
                },
                Record::End { dialog } => WireRecord {
                    dialog: OctetStringRef::new(dialog).map_err(der_err)?,
                    key: None,
                    media: None,
                },
            });
        }
        for ((m, dialog), addrs) in self.media.iter().zip(&dialogs).zip(&addrs) {
            let mut flows = Vec::with_capacity(m.flows.len());
            for (f, (internal, remote)) in m.flows.iter().zip(addrs) {
                flows.push(WireFlow {
                    internal: OctetStringRef::new(internal).map_err(der_err)?,
                    port: f.port,
                    remote: OctetStringRef::new(remote).map_err(der_err)?,
                    remote_port: f.remote_port,
                });
            }
            records.push(WireRecord {
                dialog: OctetStringRef::new(dialog).map_err(der_err)?,
                key: None,
                media: Some(WireMediaState {
                    call_id: OctetStringRef::new(&m.call_id).map_err(der_err)?,
                    tag: OctetStringRef::new(&m.tag).map_err(der_err)?,
                    version: m.version,
                    owner: Utf8StringRef::new(&m.owner).map_err(der_err)?,
                    stage: m.stage.code(),
                    opened_at: m.opened_at,
                    expires_at: m.expires_at,
                    flows,
                    recording: m.recording.map(|r| WireRecording {
                        state: r.state,
                        streams: r.streams,
                        started: r.started,
                        stopped: r.stopped,
                        key_sequence: r.key_sequence,
                    }),
                }),
            });
        }
        let wire = WireMessage {
            version: VERSION,
            node: Utf8StringRef::new(self.node).map_err(der_err)?,
            counter: self.counter,
            sent_at: self.sent_at_ms,
            kind: self.kind.code(),
            records,
        };
        let len = usize::try_from(wire.encoded_len().map_err(der_err)?)
            .map_err(|_| malformed("length"))?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        let written = wire.encode_to_slice(&mut out).map_err(der_err)?.len();
        out.truncate(written);
        Ok(out)
    }

    /// Decodes and checks a message (version, sizes, algorithm codes and key lengths).
    pub(crate) fn decode(der: &'a [u8]) -> Result<Message<'a>, ClusterError> {
        let wire =
            WireMessage::from_der(der).map_err(|e| ClusterError::Malformed(format!("DER: {e}")))?;
        if wire.version != VERSION {
            return Err(ClusterError::Malformed(format!(
                "version {} (this node speaks {VERSION})",
                wire.version
            )));
        }
        let node = wire.node.as_str();
        if node.is_empty() || node.len() > MAX_NODE_LEN {
            return Err(malformed("node name must be 1 to 64 bytes"));
        }
        let kind = Kind::from_code(wire.kind).ok_or_else(|| malformed("unknown kind"))?;
        if wire.records.len() > MAX_RECORDS {
            return Err(malformed("too many records"));
        }
        let mut records = Vec::with_capacity(wire.records.len());
        let mut media = Vec::new();
        for r in wire.records {
            let dialog: [u8; 32] = r
                .dialog
                .as_bytes()
                .try_into()
                .map_err(|_| malformed("dialog id is not 32 bytes"))?;
            if let Some(m) = r.media {
                if r.key.is_some() {
                    return Err(malformed("a record with both a key and media"));
                }
                let state = media_of(m)?;
                if state.dialog().as_bytes() != &dialog {
                    return Err(malformed("media: the dialog id is not Call-ID and tag's"));
                }
                media.push(state);
                continue;
            }
            records.push(match r.key {
                None => Record::End { dialog },
                Some(k) => {
                    let alg = ContentAlg::from_code(k.alg)
                        .ok_or_else(|| malformed("unknown algorithm code"))?;
                    let cek = k.cek.as_bytes();
                    if cek.len() != alg.key_len() {
                        return Err(malformed("key length does not match its algorithm"));
                    }
                    if k.generation == 0 {
                        return Err(malformed("generation 0"));
                    }
                    Record::Key {
                        dialog,
                        state: KeyState {
                            alg,
                            cek,
                            generation: k.generation,
                            created_at: k.created_at,
                            last_used: k.last_used,
                            uses: k.uses,
                        },
                    }
                }
            });
        }
        Ok(Message {
            node,
            counter: wire.counter,
            sent_at_ms: wire.sent_at,
            kind,
            records,
            media,
        })
    }
}

fn media_of(m: WireMediaState<'_>) -> Result<MediaState, ClusterError> {
    let stage = MediaStage::from_code(m.stage).ok_or_else(|| malformed("media: unknown stage"))?;
    let mut flows = Vec::with_capacity(m.flows.len().min(MAX_MEDIA_FLOWS));
    for f in m.flows.iter().take(MAX_MEDIA_FLOWS + 1) {
        let internal =
            ip_of(f.internal.as_bytes()).ok_or_else(|| malformed("media: flow address"))?;
        let remote = match f.remote.as_bytes() {
            [] => None,
            b => Some(ip_of(b).ok_or_else(|| malformed("media: flow peer address"))?),
        };
        flows.push(MediaFlow {
            internal,
            port: f.port,
            remote,
            remote_port: f.remote_port,
        });
    }
    let state = MediaState {
        call_id: m.call_id.as_bytes().to_vec(),
        tag: m.tag.as_bytes().to_vec(),
        version: m.version,
        owner: m.owner.as_str().to_string(),
        stage,
        opened_at: m.opened_at,
        expires_at: m.expires_at,
        flows,
        recording: m.recording.map(|r| MediaRecording {
            state: r.state,
            streams: r.streams,
            started: r.started,
            stopped: r.stopped,
            key_sequence: r.key_sequence,
        }),
    };
    check_media(&state)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(cek: &'a [u8]) -> Message<'a> {
        Message {
            node: "p1a",
            counter: 1_700_000_000_000_123,
            sent_at_ms: 1_700_000_000_456,
            kind: Kind::Update,
            records: vec![
                Record::Key {
                    dialog: [7; 32],
                    state: KeyState {
                        alg: ContentAlg::Aes256Gcm,
                        cek,
                        generation: 3,
                        created_at: 1_700_000_000,
                        last_used: 1_700_000_010,
                        uses: 9,
                    },
                },
                Record::End { dialog: [8; 32] },
            ],
            media: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_borrowing() {
        let cek = [0x5a; 32];
        let der = sample(&cek).encode().unwrap();
        let m = Message::decode(&der).unwrap();
        assert_eq!(
            (m.node, m.counter, m.sent_at_ms, m.kind),
            (
                "p1a",
                1_700_000_000_000_123,
                1_700_000_000_456,
                Kind::Update
            )
        );
        assert_eq!(m.records.len(), 2);
        let Record::Key { dialog, state } = m.records[0] else {
            panic!("first record is a key");
        };
        assert_eq!(dialog, [7; 32]);
        assert_eq!(
            (state.alg, state.cek, state.generation, state.uses),
            (ContentAlg::Aes256Gcm, &cek[..], 3, 9)
        );
        assert_eq!(
            (state.created_at, state.last_used),
            (1_700_000_000, 1_700_000_010)
        );
        // the key is borrowed from the DER buffer, not copied
        let range = der.as_ptr_range();
        assert!(range.contains(&state.cek.as_ptr()));
        assert!(matches!(m.records[1], Record::End { dialog } if dialog == [8; 32]));
        println!("message: {} bytes of DER for a key and an end; decodes back, the key borrowed from the buffer", der.len());
    }

    #[test]
    fn every_bad_field_is_refused() {
        let cek = [1u8; 32];
        let good = sample(&cek).encode().unwrap();
        // a key of the wrong length for its algorithm
        let short = [1u8; 16];
        let mut m = sample(&short);
        let bad = m.encode().unwrap();
        assert!(matches!(
            Message::decode(&bad),
            Err(ClusterError::Malformed(_))
        ));
        // unknown kind, version, too long a node name, truncated DER, trailing bytes
        let mut wire = WireMessage::from_der(&good).unwrap();
        wire.kind = 9;
        let der = wire.to_der().unwrap();
        assert!(Message::decode(&der).is_err());
        let mut wire = WireMessage::from_der(&good).unwrap();
        wire.version = 2;
        assert!(Message::decode(&wire.to_der().unwrap()).is_err());
        let long = "n".repeat(65);
        m.node = &long;
        assert!(m.encode().is_err());
        assert!(Message::decode(&good[..good.len() - 1]).is_err());
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert!(Message::decode(&trailing).is_err());
        // generation 0
        let mut wire = WireMessage::from_der(&good).unwrap();
        if let Some(k) = wire.records[0].key.as_mut() {
            k.generation = 0;
        }
        assert!(Message::decode(&wire.to_der().unwrap()).is_err());
        println!("refused: key length vs algorithm, kind 9, version 2, 65-byte node, truncated, trailing byte, generation 0");
    }
}

#[cfg(test)]
mod media_tests {
    use super::*;

    pub(crate) fn state(call: &str, version: u64) -> MediaState {
        MediaState {
            call_id: call.as_bytes().to_vec(),
            tag: b"caller-tag".to_vec(),
            version,
            owner: "p1a".into(),
            stage: MediaStage::Answered,
            opened_at: 1_700_000_000,
            expires_at: 1_700_000_120,
            flows: vec![
                MediaFlow {
                    internal: "10.77.1.2".parse().unwrap(),
                    port: 40000,
                    remote: Some("10.77.2.2".parse().unwrap()),
                    remote_port: 50000,
                },
                MediaFlow {
                    internal: "2001:db8::7".parse().unwrap(),
                    port: 40001,
                    remote: None,
                    remote_port: 0,
                },
            ],
            recording: Some(MediaRecording {
                state: 2,
                streams: 2,
                started: 1_700_000_001,
                stopped: 0,
                key_sequence: 1_700_000_000_000_042,
            }),
        }
    }

    fn message(media: Vec<MediaState>, records: Vec<Record<'_>>) -> Message<'_> {
        Message {
            node: "p1a",
            counter: 5,
            sent_at_ms: 6,
            kind: Kind::Update,
            records,
            media,
        }
    }

    /// The Record of a build without media states (what version-1 peers decode).
    #[derive(Sequence)]
    struct OldRecord<'a> {
        dialog: &'a OctetStringRef,
        #[asn1(context_specific = "0", optional = "true")]
        key: Option<WireKeyState<'a>>,
    }

    #[derive(Sequence)]
    struct OldMessage<'a> {
        version: u8,
        node: Utf8StringRef<'a>,
        counter: u64,
        sent_at: u64,
        kind: u8,
        records: Vec<OldRecord<'a>>,
    }

    #[test]
    fn media_state_round_trip() {
        let s = state("m-1@test", 77);
        let der = message(vec![s.clone()], Vec::new()).encode().unwrap();
        let m = Message::decode(&der).unwrap();
        assert!(m.records.is_empty());
        assert_eq!(m.media, vec![s]);
        println!(
            "  ok   a media state (2 flows, IPv4 and IPv6, any-source, an active recording): {} bytes of DER, decodes back equal",
            der.len()
        );
    }

    #[test]
    fn media_state_refusals() {
        let mut bad_dialog = message(vec![state("m-2@test", 1)], Vec::new());
        let der = bad_dialog.encode().unwrap();
        // the record's dialog id must be Call-ID and tag's: rewrite the tag inside
        let mut wire = WireMessage::from_der(&der).unwrap();
        let other = [9u8; 32];
        wire.records[0].dialog = OctetStringRef::new(&other).unwrap();
        assert!(Message::decode(&wire.to_der().unwrap()).is_err());
        // a key and media in one record
        let mut wire = WireMessage::from_der(&der).unwrap();
        let cek = [1u8; 32];
        wire.records[0].key = Some(WireKeyState {
            alg: ContentAlg::Aes256Gcm.code(),
            cek: OctetStringRef::new(&cek).unwrap(),
            generation: 1,
            created_at: 0,
            last_used: 0,
            uses: 0,
        });
        assert!(Message::decode(&wire.to_der().unwrap()).is_err());
        // stage, version 0, port 0, owner, recording state
        for f in [
            |w: &mut WireMediaState<'_>| w.stage = 9,
            |w: &mut WireMediaState<'_>| w.version = 0,
            |w: &mut WireMediaState<'_>| w.flows[0].port = 0,
            |w: &mut WireMediaState<'_>| w.owner = Utf8StringRef::new("").unwrap(),
            |w: &mut WireMediaState<'_>| {
                if let Some(r) = w.recording.as_mut() {
                    r.state = 7
                }
            },
        ] {
            let mut wire = WireMessage::from_der(&der).unwrap();
            f(wire.records[0].media.as_mut().unwrap());
            assert!(Message::decode(&wire.to_der().unwrap()).is_err());
        }
        // an address of 5 bytes
        let mut wire = WireMessage::from_der(&der).unwrap();
        let five = [1u8; 5];
        wire.records[0].media.as_mut().unwrap().flows[0].internal =
            OctetStringRef::new(&five).unwrap();
        assert!(Message::decode(&wire.to_der().unwrap()).is_err());
        // too many flows
        bad_dialog.media[0].flows = vec![bad_dialog.media[0].flows[0]; MAX_MEDIA_FLOWS + 1];
        assert!(bad_dialog.encode().is_err());
        println!("  ok   refused: a dialog id that is not Call-ID and tag's, key and media in one record, stage 9, version 0, port 0, empty owner, recording state 7, a 5-byte address, 33 flows");
    }

    #[test]
    fn older_peers_and_keys_only_messages() {
        // a keys-only message is byte for byte what a build without media states makes
        let cek = [3u8; 32];
        let key = Record::Key {
            dialog: [4; 32],
            state: KeyState {
                alg: ContentAlg::Aes256Gcm,
                cek: &cek,
                generation: 1,
                created_at: 1,
                last_used: 2,
                uses: 0,
            },
        };
        let new = message(Vec::new(), vec![key, Record::End { dialog: [5; 32] }])
            .encode()
            .unwrap();
        let old = OldMessage::from_der(&new).expect("an older build decodes it");
        assert_eq!(old.records.len(), 2);
        assert_eq!(&old.to_der().unwrap()[..], &new[..]);
        // a media state: an older build refuses the message (hence media in messages of
        // their own, never with keys)
        let media = message(vec![state("m-3@test", 1)], Vec::new())
            .encode()
            .unwrap();
        assert!(OldMessage::from_der(&media).is_err());
        println!("  ok   keys-only messages encode exactly as before (an older build decodes them); a media record is refused by an older build, so media states travel alone");
    }
}
