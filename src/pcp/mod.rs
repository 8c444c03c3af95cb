//! The control channel to the firewall agent: PCP (RFC 6887) with sipsd's authentication.
//!
//! - [`wire`]: the messages (common header, MAP, ANNOUNCE; THIRD_PARTY, PREFER_FAILURE,
//!   FILTER) and strict decoding of untrusted bytes;
//! - [`auth`]: the HMAC-SHA256 option, keys, and the replay window;
//! - [`client`]: the blocking exchange a Kamailio worker makes (one socket, no thread, a hard
//!   deadline), from a dialog id and a list of flows.
//!
//! The agent (`tools/sipsd-fw`) serves the same messages; docs/PROTOCOL.md §7 states what
//! goes on the wire and what PCP cannot say.

pub mod auth;
pub mod client;
pub mod wire;

pub use auth::{AuthKey, ReplayGuard};
pub use client::{mapping_nonce, Client, ClientConfig, Exchange, Flow, FlowOutcome, Remote};
pub use wire::{Filter, Nonce, Opcode, Request, Response, ResultCode};

use crate::crypto::keys::KeyError;

/// Everything the PCP layer can fail with: decoding, authentication, keys, the socket.
#[derive(Debug, thiserror::Error)]
pub enum PcpError {
    /// Fewer bytes than a header (requests under 2 bytes are dropped silently).
    #[error("message of {0} bytes is shorter than the 24-byte header")]
    TooShort(usize),
    /// Over RFC 6887's 1100 bytes.
    #[error("message of {0} bytes is longer than 1100")]
    TooLong(usize),
    /// Not a whole number of 32-bit words.
    #[error("message of {0} bytes is not a multiple of 4")]
    Unaligned(usize),
    /// A response where a request was expected, or the reverse.
    #[error("the R bit says the message goes the other way")]
    WrongDirection,
    /// Not PCP version 2.
    #[error("unsupported PCP version {0}")]
    UnsupportedVersion(u8),
    /// Neither MAP nor ANNOUNCE.
    #[error("unsupported opcode {0}")]
    UnsupportedOpcode(u8),
    /// The opcode data is malformed.
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// An option is malformed, repeated, misplaced or not valid for the opcode.
    #[error("malformed option {code}: {why}")]
    MalformedOption {
        /// The option code.
        code: u8,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An unknown mandatory-to-process option (code below 128).
    #[error("unsupported mandatory option {0}")]
    UnsupportedOption(u8),
    /// No authentication option, or not as the last 56 bytes.
    #[error("no sipsd authentication option at the end of the message")]
    AuthMissing,
    /// The option names a key id the receiver does not have.
    #[error("unknown key id {0}")]
    UnknownKey(u32),
    /// The MAC does not match: forged or altered.
    #[error("bad MAC")]
    BadMac,
    /// The timestamp is older than the receiver's start.
    #[error("timestamp from before this receiver started")]
    BeforeStart,
    /// The timestamp is too far from the receiver's clock.
    #[error("timestamp {skew_ms} ms from the receiver's clock, outside the {window_ms} ms window")]
    OutsideWindow {
        /// Message time minus receiver time.
        skew_ms: i64,
        /// The configured window.
        window_ms: u64,
    },
    /// The same authenticated message was seen before.
    #[error("replayed message")]
    Replayed,
    /// Too many messages inside the window to remember one more.
    #[error("replay cache full")]
    ReplayCacheFull,
    /// A MAC key of a bad length.
    #[error("MAC key of {0} bytes; want 16 to 64")]
    KeyLength(usize),
    /// A key file that is not hex.
    #[error("key file is not hex")]
    KeyNotHex,
    /// Reading a key file failed (missing, unreadable, readable by group or others).
    #[error("key file: {0}")]
    Key(#[from] KeyError),
    /// The operating system's random number generator failed.
    #[error("no random numbers from the operating system")]
    Rng,
    /// A flow the client cannot ask for (e.g. port 0, families mixed).
    #[error("invalid flow: {0}")]
    InvalidFlow(&'static str),
    /// The UDP socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl PcpError {
    /// The result code a server answers a request that failed this way with (RFC 6887
    /// §8.3), or `None` when the request is dropped without an answer.
    pub fn result_code(&self) -> Option<ResultCode> {
        use PcpError::*;
        match self {
            TooShort(n) if *n < 2 => None,
            WrongDirection => None,
            TooShort(_) | TooLong(_) | Unaligned(_) | MalformedRequest(_) => {
                Some(ResultCode::MalformedRequest)
            }
            UnsupportedVersion(_) => Some(ResultCode::UnsupportedVersion),
            UnsupportedOpcode(_) => Some(ResultCode::UnsupportedOpcode),
            MalformedOption { .. } => Some(ResultCode::MalformedOption),
            UnsupportedOption(_) => Some(ResultCode::UnsupportedOption),
            AuthMissing
            | UnknownKey(_)
            | BadMac
            | BeforeStart
            | OutsideWindow { .. }
            | Replayed => Some(ResultCode::NotAuthorized),
            ReplayCacheFull => Some(ResultCode::NoResources),
            KeyLength(_) | KeyNotHex | Key(_) | Rng | InvalidFlow(_) | Io(_) => {
                Some(ResultCode::NetworkFailure)
            }
        }
    }
}
