//! What travels in SIP: the parts of a message sipsd reads or writes.
//!
//! - [`body`]: S/MIME SIP bodies — finding the encrypted parts of single and multipart bodies
//!   (RFC 3261 §23, RFC 5621), their transfer encodings and limits; and building bodies for a
//!   user agent ([`body::build`]).
//! - [`disclose`]: the `Disclose-To` header, which names the proxies asked to decrypt.
//! - [`sdp`]: the media facts of a disclosed session description.
//! - [`uri`]: host and port of a SIP URI.
//! - [`name_addr`]: the URI and tag of a From or To header value.
//! - [`SipMessage`]: the fields of one request or reply that a SIP server hands over.

pub mod body;
pub mod disclose;
mod message;
pub mod name_addr;
pub mod sdp;
pub mod uri;

pub use message::SipMessage;
