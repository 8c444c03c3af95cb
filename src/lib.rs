//! sipsd — SIP selective disclosure.
//!
//! A caller encrypts a SIP body (the SDP) end to end as CMS (RFC 5652/5083) with one
//! RecipientInfo per party allowed to read it: the callee and each trusted proxy. A trusted
//! proxy unwraps its copy of the content-encryption key, reads the plaintext for policy and
//! forwards the message unchanged. The key is cached per dialog in memory shared by every
//! worker process of the SIP server, so later bodies of the dialog reuse it; it changes only
//! by a rotation that proves knowledge of it.
//!
//! Layers, one folder each, each using only the ones below it:
//! - [`sip`]: what travels in SIP — S/MIME bodies (parsing, and building for user agents),
//!   the `Disclose-To` header, the session description, SIP URIs, the message facts a proxy
//!   is handed.
//! - [`crypto`]: CMS opening and sealing, the rotation proof, certificates, and the key store.
//! - [`engine`]: what a trusted proxy and a user agent do with a message, and the per-dialog
//!   key cache in process-shared memory.
//! - `ffi`: the C ABI over the engine (header `include/sipsd.h`), for SIP servers' modules.
//! - [`pcp`]: the control channel to the firewall agent (PCP, RFC 6887, authenticated).
//! - [`record`]: what a trusted proxy and the SRTP recorder share: the SDES keys of a call's
//!   media and the authenticated key channel that carries them.
#![deny(unsafe_code)]

pub mod crypto;
pub mod engine;
pub mod ffi;
pub mod hex;
pub mod pcp;
pub mod record;
pub mod sip;
