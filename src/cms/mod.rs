//! CMS (RFC 5652) opening and sealing for SIP bodies.
//!
//! sipsd reads and writes three CMS structures, as types of the RustCrypto `cms` crate:
//! - **AuthEnvelopedData** (RFC 5083) with AES-GCM (RFC 5084): what sipsd seals with a GCM key;
//! - **EnvelopedData** (RFC 5652 §6) with AES-CBC (RFC 3565): with a CBC key, for old peers;
//! - **EncryptedData** (RFC 5652 §8): later bodies of a dialog under the dialog's cached key.
//!
//! Recipients are RSA key holders (KeyTransRecipientInfo, RSAES-OAEP or PKCS#1 v1.5, named by
//! issuer and serial number or subjectKeyIdentifier) and pre-shared-key holders
//! (KEKRecipientInfo, AES key wrap). A party opens a message only with a key a RecipientInfo
//! names ([`open`]); nothing is tried with keys that are not named.
//!
//! Files: [`cek`] (algorithms and keys), `content` (AES-GCM/CBC), `recipient` (RecipientInfos,
//! key transport and wrap), `implicit_rejection` (PKCS#1 v1.5 stand-in keys), `message`
//! (decoding), `der_set` (SET OF in DER order), [`inspect()`], [`open()`], [`seal()`],
//! `oids`, `error`.

pub mod cek;
mod content;
mod der_set;
pub mod error;
mod implicit_rejection;
mod inspect;
mod message;
pub mod oids;
mod open;
mod recipient;
/// The RSA backend: the `rsa` crate, or AWS-LC for RSAES-OAEP with feature `aws-lc`.
pub(crate) mod rsa_backend;
mod seal;

pub use cek::{Cek, ContentAlg};
pub use content::GcmParameters;
pub use error::CmsError;
pub use inspect::{inspect, matching_recipient, Inspection};
pub use open::{open, open_with_cek, Opened};
pub use recipient::{IdKind, Recipient, RecipientKeyId, RecipientSummary, RsaPadding};
pub use seal::{seal, seal_encrypted};

/// The CMS structure of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmsKind {
    /// EnvelopedData (RFC 5652 §6).
    EnvelopedData,
    /// AuthEnvelopedData (RFC 5083).
    AuthEnvelopedData,
    /// EncryptedData (RFC 5652 §8).
    EncryptedData,
}
