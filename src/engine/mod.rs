//! What sipsd does with SIP messages.
//!
//! - [`proxy`]: a trusted proxy — decide whether a body is meant for it, open it with its own
//!   key or the dialog's cached key, keep the dialog key current under the integrity rules of
//!   docs/PROTOCOL.md §6, forget it when the dialog ends; counters and statistics.
//! - [`ua`]: a user agent — seal an offer, keep the dialog key, encrypt and open in-dialog
//!   bodies, rotate with the proof.
//! - [`edge`]: the edge of user agents that do not speak S/MIME — seal what they send, open
//!   what they receive, on top of [`ua`] and the proxy's dialog key cache.
//! - [`signature`]: the optional signature inside a decrypted body, and its policy.
//! - [`config`]: the options of a context, both roles.
//! - [`cache`]: the per-dialog key cache in memory shared by every worker process.
//! - [`cluster`]: the cache replicated between the nodes of a cluster (sealed messages the SIP
//!   server's DMQ carries).
//! - [`pinhole`]: firewall pinholes for the media of a disclosed offer/answer, asked of the
//!   firewall agent over PCP, state per dialog in shared memory.
//! - [`Error`]: what an engine operation fails with; it wraps each lower layer's error.

pub mod cache;
pub mod cluster;
pub mod config;
pub mod edge;
mod error;
pub mod pinhole;
pub mod proxy;
pub mod signature;
pub mod ua;

pub use error::{Error, Result};
