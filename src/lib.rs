//! sipsd — SIP selective disclosure.
//!
//! A caller encrypts a SIP body (the SDP) end to end as CMS (RFC 5652/5083) with one
//! RecipientInfo per party allowed to read it: the callee and each trusted proxy. A trusted
//! proxy unwraps its copy of the content-encryption key, reads the plaintext for policy and
//! forwards the message unchanged. The key is cached per dialog in memory shared by every
//! Kamailio worker process, so later bodies of the dialog reuse it.
//!
//! Layers, each in the module named for it:
//! - [`cms`]: opening and sealing CMS structures; [`keys`]: the proxy's keys and identities.
//! - [`body`]: SIP/MIME bodies; [`request`]: the explicit decryption request header;
//!   [`sdp`]: the media facts read from a disclosed SDP.
//! - [`cache`]: the per-dialog key cache in process-shared memory.
//! - [`proxy`]: what a proxy does with a message; [`ua`]: what a user agent does.
//! - `ffi`: the C ABI (header `include/sipsd.h`).
//! - [`pcp`]: the control channel to the firewall agent (PCP, RFC 6887, authenticated).
#![deny(unsafe_code)]

pub mod body;
pub mod cache;
pub mod cms;
pub mod keys;
pub mod request;
pub mod sdp;
pub mod ua;

pub mod error;
pub mod ffi;
pub mod hex;
pub mod pcp;
pub mod proxy;
