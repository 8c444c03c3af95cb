//! A dialog's firewall pinholes and recording as they travel between the nodes
//! (docs/PROTOCOL.md §8.2, `MediaState`): what another node needs to refresh and delete the
//! same mappings at the agent and to send the recording's stop, and never a key (the
//! recorder's `a=crypto` values stay on the node that read them; a stop needs none).
//!
//! The pinhole table (`engine::pinhole`) makes and applies them through [`MediaStore`], so
//! this layer knows nothing of PCP or of the table.

use std::net::IpAddr;

use crate::engine::cache::DialogKey;
use crate::engine::Result;

/// Where the dialog's media stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaStage {
    /// An offer was seen (pinholes only with `pinhole_on_offer=1`).
    Offered,
    /// Offer and answer seen: the exact flows are open.
    Answered,
    /// The dialog ended on the sender: its pinholes were deleted there.
    Closed,
}

impl MediaStage {
    pub(crate) fn code(self) -> u8 {
        match self {
            MediaStage::Offered => 1,
            MediaStage::Answered => 2,
            MediaStage::Closed => 3,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<MediaStage> {
        [
            MediaStage::Offered,
            MediaStage::Answered,
            MediaStage::Closed,
        ]
        .into_iter()
        .find(|s| s.code() == c)
    }
}

/// One pinhole as the agent holds it: media to `internal:port` from `remote` (any source when
/// `None`), `remote_port` 0 for any port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaFlow {
    /// The media address the pinhole lets packets reach (PCP THIRD_PARTY).
    pub internal: IpAddr,
    /// Its port (PCP internal port).
    pub port: u16,
    /// The peer allowed to send (PCP FILTER), or any source.
    pub remote: Option<IpAddr>,
    /// The peer's port, 0 for any.
    pub remote_port: u16,
}

/// A recording as it travels: its state and times, and the last key-channel sequence number
/// the sender used, so that the stop another node sends is newer for the recorder. No keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaRecording {
    /// 1 marked, 2 active, 3 stopped (`pinhole::RecordState`).
    pub state: u8,
    /// Streams the recorder was given.
    pub streams: u8,
    /// Unix seconds of its start and stop (0: not yet).
    pub started: u64,
    /// See `started`.
    pub stopped: u64,
    /// The highest key-channel sequence number the sender used (0: none).
    pub key_sequence: u64,
}

/// Most flows in one state (`pinhole::MAX_DIALOG_FLOWS`).
pub const MAX_MEDIA_FLOWS: usize = 32;
/// Longest Call-ID (`pinhole::MAX_CALL_ID`).
pub const MAX_CALL_ID: usize = 128;
/// Longest tag (`pinhole::MAX_TAG`).
pub const MAX_TAG: usize = 64;

/// One dialog's pinholes and recording, owned (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaState {
    /// The dialog's Call-ID and caller's tag: the PCP mapping nonce is derived from them, and
    /// the record's dialog id must be their hash.
    pub call_id: Vec<u8>,
    /// See `call_id`.
    pub tag: Vec<u8>,
    /// This state's version: a receiver applies only a higher one than it holds. The sender
    /// makes it from its clock (microseconds), above the last version it held.
    pub version: u64,
    /// The node that refreshes the pinholes (the last one that acted on the dialog).
    pub owner: String,
    /// Offered, answered or closed.
    pub stage: MediaStage,
    /// Unix seconds of the first pinhole (`pinhole_max_duration` counts from it).
    pub opened_at: u64,
    /// Unix seconds the agent's lifetime of the flows ends unless refreshed (0: nothing open).
    pub expires_at: u64,
    /// What the agent holds for the dialog.
    pub flows: Vec<MediaFlow>,
    /// The recording, when the dialog is (or was) recorded.
    pub recording: Option<MediaRecording>,
}

impl MediaState {
    /// The dialog id of the cache (and of the record): SHA-256 of Call-ID and tag.
    pub fn dialog(&self) -> DialogKey {
        DialogKey::new(&self.call_id, &self.tag)
    }
}

/// What one replicated state did on the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaApplied {
    /// Stored: a dialog not held here, or a newer version.
    Stored,
    /// A closed state removed the dialog's pinholes here (without asking the agent).
    Closed,
    /// Not newer than what is held here, or a close of a dialog not held: nothing changed.
    Stale,
    /// The table is full: not stored.
    Full,
}

/// The receiver's side: where replicated media states are kept (the pinhole table).
pub trait MediaStore {
    /// Applies `state` from node `from` (newer versions only).
    fn apply_media(&self, state: &MediaState, from: &str) -> Result<MediaApplied>;
    /// Up to `max` states held here, from table slot `cursor`; the cursor after them, `None`
    /// after the last slot (for a full sync).
    fn export_media(&self, cursor: usize, max: usize) -> Result<(Vec<MediaState>, Option<usize>)>;
}
