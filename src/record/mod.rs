//! What a trusted proxy and an SRTP recorder share: the SDES keys of a dialog's media
//! (`a=crypto`, RFC 4568) and the authenticated key channel that carries them from the proxy,
//! which reads them in the disclosed SDP, to the recorder (`tools/sipsd-rec`,
//! docs/RECORDING.md).
//!
//! - [`sdes`]: what the recorder takes of an RFC 4568 crypto attribute (defined once, in the
//!   SDP layer: [`crate::sip::sdp::CryptoAttr`], re-exported here);
//! - [`message`]: the key-channel message (start / update / stop of a dialog, its media
//!   tuples per stream and direction, codecs and each sender's crypto attribute), as DER;
//! - [`channel`]: sealing it as CMS AuthEnvelopedData under a pre-shared KEK, and opening it
//!   with replay protection;
//! - [`streams`]: a call's recorded streams from its offer and answer ([`crate::sip::sdp`]).

pub mod channel;
pub mod message;
pub mod sdes;
pub mod streams;

pub use crate::sip::sdp::{CryptoAttr, MasterKey, Mki, SrtpSuite};
pub use channel::{ChannelReceiver, ChannelSender, ReplayWindow};
pub use message::{
    CallStart, CallStop, Codec, Direction, Endpoint, Event, KeyMessage, MediaStream, SdesValue,
    StopReason, StreamSet,
};
pub use sdes::SdesError;
pub use streams::{streams_from_offer_answer, Offerer};

use crate::crypto::cms::CmsError;
use crate::crypto::keys::KeyError;

/// Why a key-channel message could not be made or accepted. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A crypto attribute is malformed.
    #[error("crypto attribute: {0}")]
    Sdes(#[from] SdesError),
    /// The message's DER is malformed (the `der` crate's message).
    #[error("key message encoding: {0}")]
    Der(String),
    /// Sealing or opening the CMS structure failed.
    #[error("CMS: {0}")]
    Cms(#[from] CmsError),
    /// Loading the channel's keys failed.
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    /// The message is not AuthEnvelopedData opened with a pre-shared KEK.
    #[error("key message is not authenticated (AuthEnvelopedData under a shared KEK required)")]
    NotAuthenticated,
    /// A message format version this code does not know.
    #[error("key message version {0} not supported")]
    Version(u8),
    /// The message names another sender than the one whose KEK opened it.
    #[error("key message claims sender {claimed:?} but was sealed with {key:?}'s key")]
    SenderMismatch {
        /// The `sender` field (at most 64 characters).
        claimed: String,
        /// The label of the KEK that opened it.
        key: String,
    },
    /// The dialog id is not 32 bytes.
    #[error("dialog id is not 32 bytes")]
    BadDialogId,
    /// `sentAt` too far from the receiver's clock.
    #[error("key message sent {skew_ms} ms away from our clock")]
    Stale {
        /// The difference.
        skew_ms: u64,
    },
    /// The answer's `a=crypto` tag names no offered attribute (the `m=` line index).
    #[error("m-line {0}: the answer's crypto tag matches no offered a=crypto")]
    NoMatchingCrypto(u16),
    /// The sequence number was seen already or is older than the replay window.
    #[error("key message sequence {0} replayed or too old")]
    Replay(u64),
}

impl RecordError {
    pub(crate) fn der(e: der::Error) -> Self {
        RecordError::Der(e.to_string())
    }
}
