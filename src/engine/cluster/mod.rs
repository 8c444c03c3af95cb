//! Replication of the dialog key cache between the nodes of a cluster (Kamailio DMQ carries
//! the messages; docs/PROTOCOL.md §8, docs/SECURITY.md §6.9).
//!
//! A dialog established through one trusted proxy must stay readable when its in-dialog
//! requests reach another (failover, load balancing). Each node sends every dialog key it
//! stores or rotates, and every dialog end, to the others, and a node that starts asks them
//! for all their live entries (a full sync). What travels is never a plaintext key:
//!
//! - each message is sealed as CMS AuthEnvelopedData (AES-256-GCM) with one
//!   KEKRecipientInfo under the **cluster key**, a pre-shared key only the nodes hold
//!   (`cluster_key`, distinct from every `psk` callers use) — `seal`;
//! - inside, a DER message names its sender (`cluster_node`), a per-sender counter that only
//!   grows (even across restarts) and the sender's clock — `message`;
//! - a receiver refuses what does not open and authenticate under a cluster key, what comes
//!   from itself, what was sent outside `cluster_max_skew` of its clock or before it started,
//!   and a counter it has seen or that is older than the 64-message window kept per sender —
//!   `shared` (the window is in memory every process of the server shares, checked and
//!   recorded under one lock);
//! - and applies an entry only as the cache's check-then-change allows
//!   ([`SharedCache::apply`]): a dialog it does not know, or a **newer generation**; the same
//!   generation with the same key only refreshes its use time; an older generation, or the
//!   same generation with another key, changes nothing (a key is never overwritten by a
//!   stranger's, on any node).
//!
//! A replicated key is stored with the replica bit in the cache's algorithm tag
//! ([`key_tag`]) so that the proxy can say a body was read with a key another node
//! replicated (`key_source=replica`). Keys never come from SIP here: only from an
//! authenticated cluster message.

mod media;
mod message;
mod seal;
mod shared;

use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::crypto::cms::{ContentAlg, ROTATION_KEK_ID};
use crate::crypto::cms::{KeyLookup, RecipientKey, RecipientKeyId};
use crate::crypto::keys::{KeyStore, PskSpec};
use crate::engine::cache::{Apply, CachedKey, DialogKey, Entry, SharedCache};
use crate::engine::{Error, Result};

pub use media::{
    MediaApplied, MediaFlow, MediaRecording, MediaStage, MediaState, MediaStore, MAX_CALL_ID,
    MAX_MEDIA_FLOWS, MAX_TAG,
};
use message::{KeyState, Message, Record};
pub use message::{Kind, MAX_NODE_LEN};
use seal::ClusterKeys;
pub use seal::MAX_SEALED_LEN;
use shared::Shared;
pub use shared::{PeerInfo, MAX_ADDR_LEN, MAX_PEERS, WINDOW};

/// Records in one message: a message and its KDMQ headers stay in one UDP datagram.
pub const BATCH: usize = 4;
/// The longest sealed message (base64 text) this node makes: a buffer this size always fits.
pub const MAX_MESSAGE_LEN: usize = 2048;
/// Where the media part of a full sync's cursor starts (below it: cache slots).
const MEDIA_CURSOR: usize = 1 << 40;

/// The replica bit of the cache's algorithm tag (the low bits are the [`ContentAlg`] code).
const REPLICA_TAG: u8 = 0x80;

/// The cache's algorithm tag for a key of `alg`, stored locally or replicated.
pub fn key_tag(alg: ContentAlg, replica: bool) -> u8 {
    alg.code() | if replica { REPLICA_TAG } else { 0 }
}

/// The algorithm of a cache tag, and whether the key came from another node.
pub fn key_of_tag(tag: u8) -> Option<(ContentAlg, bool)> {
    ContentAlg::from_code(tag & !REPLICA_TAG).map(|alg| (alg, tag & REPLICA_TAG != 0))
}

/// Cluster options (modparams `cluster_key`, `cluster_node`, `cluster_max_skew`,
/// `cluster_refresh`). Replication is on when at least one key is configured.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The cluster keys: the first seals, all open.
    pub keys: Vec<PskSpec>,
    /// This node's name in the cluster; the host name when not set.
    pub node: Option<String>,
    /// How far the sender's clock may be from ours, seconds.
    pub max_skew_secs: u64,
    /// A key used again after this many seconds is sent again, so that the others keep
    /// its use time (and TTL) current; 0: never.
    pub refresh_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            keys: Vec::new(),
            node: None,
            max_skew_secs: 10,
            refresh_secs: 60,
        }
    }
}

/// Why a replication message was refused (or could not be made).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `cluster_key` is configured.
    #[error("cluster replication is not configured (no cluster_key)")]
    NotConfigured,
    /// Not base64, not CMS AuthEnvelopedData with AES-256-GCM, no cluster key named, or the
    /// key unwrap or the tag failed.
    #[error("replication message refused: {0}")]
    BadSeal(&'static str),
    /// It opened, but what is inside is not a replication message this node understands.
    #[error("replication message malformed: {0}")]
    Malformed(String),
    /// It names this node as its sender.
    #[error("replication message from this node itself ({0})")]
    OwnMessage(String),
    /// Sent outside `cluster_max_skew` of our clock, or before this node started.
    #[error("replication message sent {0} ms from now, outside the accepted window")]
    OutOfWindow(i64),
    /// Its counter was seen before, or is older than the window.
    #[error("replication message {counter} from {node} replayed or too old")]
    Replay {
        /// The sender.
        node: String,
        /// The message counter.
        counter: u64,
    },
}

/// A change to a dialog key this process made, to be sent to the other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The dialog's key was stored, rotated or used after a while: send it as it is now.
    Key(DialogKey),
    /// The dialog ended here.
    End(DialogKey),
}

/// What an accepted message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// What it was.
    pub kind: Kind,
    /// Its sender.
    pub node: String,
    /// Keys stored: dialogs not known here, or newer generations.
    pub stored: u32,
    /// Keys known here with the same generation: use time refreshed.
    pub refreshed: u32,
    /// Keys not applied: older generation, or the same generation with another key.
    pub stale: u32,
    /// Keys already past the TTL here (not stored).
    pub expired: u32,
    /// Dialog ends that removed a key here.
    pub ended: u32,
    /// On the last part of a sync (`SyncDone`): the keys the whole sync stored here.
    pub sync_stored: u32,
    /// Pinhole/recording states stored here (a dialog not held here, or a newer version).
    pub media_stored: u32,
    /// Closed states that removed a dialog's pinholes here.
    pub media_closed: u32,
    /// States not applied: not newer than the one held, a close of nothing, a full table, or
    /// no pinhole table here.
    pub media_stale: u32,
}

impl Received {
    /// A message of `kind` from `node` that applied nothing (yet).
    pub fn nothing(kind: Kind, node: String) -> Received {
        Received {
            kind,
            node,
            stored: 0,
            refreshed: 0,
            stale: 0,
            expired: 0,
            ended: 0,
            sync_stored: 0,
            media_stored: 0,
            media_closed: 0,
            media_stale: 0,
        }
    }
}

/// This node, for the RPC.
#[derive(Clone, Debug)]
pub struct ClusterInfo {
    /// `cluster_node`.
    pub node: String,
    /// Unix milliseconds the server started.
    pub started_ms: u64,
    /// Unix milliseconds of the last sync request this node sent, and of the last it
    /// answered (0: never).
    pub sync_requested_ms: u64,
    pub sync_served_ms: u64,
}

/// Figures for the statistics table.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterStats {
    /// Peers known (heard from with an authenticated message since start).
    pub peers: u64,
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One node's replication: its name, the cluster keys, the shared counter and peer windows.
pub struct Cluster {
    node: String,
    keys: ClusterKeys,
    shared: Shared,
    max_skew_ms: u64,
    refresh_secs: u64,
    warnings: Vec<String>,
}

impl Cluster {
    /// The cluster of `cfg`, or `None` when no cluster key is configured. The cluster keys
    /// must differ from every SIP `psk` in `sip_keys` (callers know those). Call before fork.
    pub fn new(
        cfg: &ClusterConfig,
        strict: bool,
        sip_psks: &[PskSpec],
        sip_keys: &KeyStore,
    ) -> Result<Option<Cluster>> {
        if cfg.keys.is_empty() {
            return Ok(None);
        }
        let node = match &cfg.node {
            Some(n) => n.clone(),
            None => host_name()?,
        };
        if node.is_empty() || node.len() > MAX_NODE_LEN {
            return Err(Error::Config(format!(
                "cluster_node: '{node}' must be 1 to {MAX_NODE_LEN} bytes"
            )));
        }
        let mut warnings = Vec::new();
        let keys = ClusterKeys::load(&cfg.keys, strict, &mut warnings)?;
        for spec in &cfg.keys {
            let Some(ours) = keys.key_bytes(&spec.id) else {
                continue;
            };
            for sip in sip_psks {
                let same = matches!(
                    sip_keys.find(&RecipientKeyId::KekId(sip.id.clone())),
                    Some(RecipientKey::Psk { kek, .. }) if kek == ours
                );
                if same {
                    return Err(Error::Config(format!(
                        "cluster_key {}: the same key as the psk {}: a cluster key must be known to the cluster nodes only",
                        spec.key_path.display(),
                        sip.key_path.display()
                    )));
                }
            }
        }
        Ok(Some(Cluster {
            node,
            keys,
            shared: Shared::create(now_ms())?,
            max_skew_ms: cfg.max_skew_secs.saturating_mul(1000),
            refresh_secs: cfg.refresh_secs,
            warnings,
        }))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// What loading the cluster keys warned about.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether a key last used at `last_used` (Unix seconds) should be sent again when it is
    /// used at `now`.
    pub fn refresh_due(&self, last_used: u64, now: u64) -> bool {
        self.refresh_secs > 0 && now.saturating_sub(last_used) >= self.refresh_secs
    }

    fn seal(&self, kind: Kind, records: Vec<Record<'_>>) -> Result<String> {
        self.seal_at(kind, records, &[], now_ms())
    }

    fn seal_at(
        &self,
        kind: Kind,
        records: Vec<Record<'_>>,
        media: &[MediaState],
        now_ms: u64,
    ) -> Result<String> {
        let der = Message {
            node: &self.node,
            counter: self.shared.next_counter(),
            sent_at_ms: now_ms,
            kind,
            records,
            media: media.to_vec(),
        }
        .encode()?;
        let text = self.keys.seal(&der)?;
        if text.len() > MAX_MESSAGE_LEN {
            return Err(ClusterError::Malformed(format!(
                "a sealed message of {} bytes, more than {MAX_MESSAGE_LEN}",
                text.len()
            ))
            .into());
        }
        Ok(text)
    }

    /// One update message for `changes` (at most [`BATCH`] are looked at): each changed
    /// key as the cache holds it now, each ended dialog. `None` if nothing is left to send
    /// (the keys were evicted meanwhile).
    pub fn seal_update(&self, cache: &SharedCache, changes: &[Change]) -> Result<Option<String>> {
        let changes = &changes[..changes.len().min(BATCH)];
        let mut copies: Vec<(DialogKey, CachedKey)> = Vec::new();
        for c in changes {
            if let Change::Key(k) = c {
                if let Some(copy) = cache.peek(k)? {
                    copies.push((*k, copy));
                }
            }
        }
        let mut records = Vec::with_capacity(changes.len());
        for c in changes {
            match c {
                Change::Key(k) => {
                    if let Some((_, copy)) = copies.iter().find(|(d, _)| d == k) {
                        if let Some(r) = key_record(k, copy) {
                            records.push(r);
                        }
                    }
                }
                Change::End(k) => records.push(Record::End {
                    dialog: *k.as_bytes(),
                }),
            }
        }
        if records.is_empty() {
            return Ok(None);
        }
        self.seal(Kind::Update, records).map(Some)
    }

    /// One update message for a dialog's pinhole and recording state (one state per
    /// message, and never with keys: module doc of `message`).
    pub fn seal_media(&self, state: &MediaState) -> Result<String> {
        self.seal_at(
            Kind::Update,
            Vec::new(),
            std::slice::from_ref(state),
            now_ms(),
        )
    }

    /// The sync request a node sends when it starts or rejoins.
    pub fn seal_sync_request(&self) -> Result<String> {
        let now = now_ms();
        let text = self.seal_at(Kind::SyncRequest, Vec::new(), &[], now)?;
        self.shared.note_sync_requested(now);
        Ok(text)
    }

    /// The next part of a full sync, from cache slot `cursor` (0 to start): a message with up
    /// to [`BATCH`] live entries, and the cursor of the next part, `None` after the last
    /// part (which is a `sync-done` message, possibly without records).
    /// With `media`, the pinhole states follow the keys, one per part.
    pub fn seal_sync(
        &self,
        cache: &SharedCache,
        media: Option<&dyn MediaStore>,
        cursor: usize,
    ) -> Result<(String, Option<usize>)> {
        if cursor >= MEDIA_CURSOR {
            let store = media.ok_or(ClusterError::Malformed("no pinhole table".into()))?;
            let (states, next) = store.export_media(cursor - MEDIA_CURSOR, 1)?;
            let next = next.map(|n| n + MEDIA_CURSOR);
            let kind = if next.is_some() {
                Kind::SyncData
            } else {
                Kind::SyncDone
            };
            let text = self.seal_at(kind, Vec::new(), &states, now_ms())?;
            if next.is_none() {
                self.shared.note_sync_served(now_ms());
            }
            return Ok((text, next));
        }
        let mut copies: Vec<(DialogKey, CachedKey)> = Vec::new();
        let mut next = Some(cursor);
        while let Some(from) = next {
            if copies.len() >= BATCH {
                break;
            }
            let batch = cache.export_from(from, BATCH - copies.len())?;
            copies.extend(batch.entries);
            next = batch.next;
        }
        let records = copies
            .iter()
            .filter_map(|(k, copy)| key_record(k, copy))
            .collect();
        let next = next.or(media.map(|_| MEDIA_CURSOR));
        let kind = if next.is_some() {
            Kind::SyncData
        } else {
            Kind::SyncDone
        };
        let text = self.seal(kind, records)?;
        if next.is_none() {
            self.shared.note_sync_served(now_ms());
        }
        Ok((text, next))
    }

    /// Opens, checks and applies a message from `from` (the peer's address, for the RPC).
    /// Pinhole and recording states go to `media` (counted stale without one).
    pub fn receive(
        &self,
        cache: &SharedCache,
        media: Option<&dyn MediaStore>,
        text: &[u8],
        from: &str,
    ) -> Result<Received> {
        self.receive_at(cache, media, text, from, now_ms())
    }

    pub(crate) fn receive_at(
        &self,
        cache: &SharedCache,
        media: Option<&dyn MediaStore>,
        text: &[u8],
        from: &str,
        now_ms: u64,
    ) -> Result<Received> {
        let plain = self.keys.open(text)?;
        let msg = Message::decode(&plain)?;
        if msg.node == self.node {
            return Err(ClusterError::OwnMessage(msg.node.to_string()).into());
        }
        let skew = self.max_skew_ms;
        let sent = msg.sent_at_ms;
        if sent > now_ms.saturating_add(skew)
            || sent.saturating_add(skew) < now_ms
            || sent.saturating_add(skew) < self.shared.started_ms()
        {
            let delta = i64::try_from(i128::from(sent) - i128::from(now_ms)).unwrap_or(i64::MIN);
            return Err(ClusterError::OutOfWindow(delta).into());
        }
        if self
            .shared
            .admit(msg.node, msg.counter, from, now_ms)?
            .is_err()
        {
            return Err(ClusterError::Replay {
                node: msg.node.to_string(),
                counter: msg.counter,
            }
            .into());
        }
        let mut r = Received::nothing(msg.kind, msg.node.to_string());
        if msg.kind != Kind::SyncRequest {
            for m in &msg.media {
                let applied = match media {
                    Some(store) => store.apply_media(m, msg.node)?,
                    None => MediaApplied::Stale,
                };
                match applied {
                    MediaApplied::Stored => r.media_stored += 1,
                    MediaApplied::Closed => r.media_closed += 1,
                    MediaApplied::Stale | MediaApplied::Full => r.media_stale += 1,
                }
            }
            for rec in &msg.records {
                match rec {
                    Record::Key { dialog, state } => match apply_key(cache, dialog, state)? {
                        Applied::Stored => r.stored += 1,
                        Applied::Refreshed => r.refreshed += 1,
                        Applied::Stale => r.stale += 1,
                        Applied::Expired => r.expired += 1,
                    },
                    Record::End { dialog } => {
                        if cache.remove(&DialogKey::from_bytes(*dialog))? {
                            r.ended += 1;
                        }
                    }
                }
            }
        }
        let sync = match msg.kind {
            Kind::SyncData => Some(None),
            Kind::SyncDone => Some(Some(now_ms)),
            Kind::Update | Kind::SyncRequest => None,
        };
        let total =
            self.shared
                .note_applied(&r.node, u64::from(r.stored), u64::from(r.ended), sync)?;
        r.sync_stored = total.map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
        Ok(r)
    }

    /// Every peer heard from, most recent first.
    pub fn peers(&self) -> Result<Vec<PeerInfo>> {
        Ok(self.shared.peers()?)
    }

    /// This node's name, start and sync times.
    pub fn info(&self) -> ClusterInfo {
        let (sync_requested_ms, sync_served_ms) = self.shared.sync_times();
        ClusterInfo {
            node: self.node.clone(),
            started_ms: self.shared.started_ms(),
            sync_requested_ms,
            sync_served_ms,
        }
    }

    /// Figures for the statistics.
    pub fn stats(&self) -> Result<ClusterStats> {
        Ok(ClusterStats {
            peers: self.shared.peers()?.len() as u64,
        })
    }
}

/// What one replicated key did here.
enum Applied {
    Stored,
    Refreshed,
    Stale,
    Expired,
}

/// The generation rules, under the cache's lock (module doc).
fn apply_key(cache: &SharedCache, dialog: &[u8; 32], state: &KeyState<'_>) -> Result<Applied> {
    if cache.is_expired(state.last_used) {
        return Ok(Applied::Expired);
    }
    let image = || CachedKey {
        alg: key_tag(state.alg, true),
        cek: Zeroizing::new(state.cek.to_vec()),
        generation: state.generation,
        created_at: state.created_at,
        last_used: state.last_used,
        uses: state.uses,
    };
    let same_key = |e: &Entry<'_>| {
        let alg_same = key_of_tag(e.alg).is_some_and(|(alg, _)| alg == state.alg);
        // constant time over the common length; lengths are not secret
        let diff = e
            .cek
            .iter()
            .zip(state.cek)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        alg_same && e.cek.len() == state.cek.len() && diff == 0
    };
    Ok(
        cache.apply(&DialogKey::from_bytes(*dialog), |existing| match existing {
            None => (Apply::Store(image()), Applied::Stored),
            Some(e) if state.generation > e.generation => (Apply::Store(image()), Applied::Stored),
            Some(e) if state.generation == e.generation && same_key(&e) => (
                Apply::Touch {
                    last_used: state.last_used,
                    uses: state.uses,
                },
                Applied::Refreshed,
            ),
            Some(_) => (Apply::Keep, Applied::Stale),
        })?,
    )
}

/// A cached key as a record (none for a tag that names no algorithm).
fn key_record<'a>(k: &DialogKey, copy: &'a CachedKey) -> Option<Record<'a>> {
    let (alg, _) = key_of_tag(copy.alg)?;
    Some(Record::Key {
        dialog: *k.as_bytes(),
        state: KeyState {
            alg,
            cek: &copy.cek,
            generation: copy.generation,
            created_at: copy.created_at,
            last_used: copy.last_used,
            uses: copy.uses,
        },
    })
}

/// The host name (the default `cluster_node`).
fn host_name() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(Error::Config(
            "cluster_node: not set and the host name is unknown".into(),
        ));
    }
    Ok(name)
}

/// Refuses a cluster key identifier reserved for the rotation proof.
pub(crate) fn check_key_id(id: &[u8]) -> Result<()> {
    if id == ROTATION_KEK_ID {
        return Err(Error::Config(
            "cluster_key: that KEK identifier is reserved for the rotation proof".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
