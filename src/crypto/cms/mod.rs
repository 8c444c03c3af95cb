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
//! key transport and wrap), `message` (decoding), `profile` (sipsd's in-dialog EncryptedData
//! and the common AuthEnvelopedData read in place), [`inspect()`], [`open()`], [`seal()`], `oids`,
//! `error`, and [`signed`]: SignedData, the optional signature inside the envelope (RFC 8551
//! sign-then-encrypt).

pub mod cek;
mod content;
mod der_set;
pub mod error;
mod gcm_backend;
mod implicit_rejection;
mod inspect;
mod lookup;
mod message;
pub mod oids;
mod open;
mod profile;
mod recipient;
mod rotation;
/// The RSA backend: the `rsa` crate, or AWS-LC for RSAES-OAEP with feature `aws-lc`.
pub(crate) mod rsa_backend;
pub use rsa_backend::RsaKey;
mod seal;
pub mod signed;
#[cfg(test)]
mod test_keys;

pub use cek::{Cek, ContentAlg};
pub use content::GcmParameters;
pub use error::CmsError;
pub use inspect::{inspect, matching_recipient, Inspection, RecipientsSeen};
pub use lookup::{KeyLookup, RecipientKey};
pub use message::CmsMessage;
pub use open::{open, open_with_cek, Opened, Plaintext, RsaBudget};
pub use recipient::{
    IdKind, Recipient, RecipientKeyId, RecipientKeyIdRef, RecipientSummary, RsaPadding,
};
pub use rotation::{proof_recipient, rotation_kek, ROTATION_KEK_ID};
pub use seal::{seal, seal_encrypted, seal_encrypted_synthetic};

/// The CMS structure of a message, and the `smime-type` that labels it in an
/// `application/pkcs7-mime` body (RFC 8551 §3.2.2; `encrypted-data` is sipsd's in-dialog
/// profile, docs/PROTOCOL.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmsKind {
    /// EnvelopedData (RFC 5652 §6), `smime-type=enveloped-data`.
    EnvelopedData,
    /// AuthEnvelopedData (RFC 5083), `smime-type=authEnveloped-data`.
    AuthEnvelopedData,
    /// EncryptedData (RFC 5652 §8) under a dialog's cached key, `smime-type=encrypted-data`.
    EncryptedData,
}

impl CmsKind {
    /// Every kind.
    pub const ALL: [CmsKind; 3] = [
        CmsKind::EnvelopedData,
        CmsKind::AuthEnvelopedData,
        CmsKind::EncryptedData,
    ];

    /// The `smime-type` parameter value.
    pub fn smime_type(self) -> &'static str {
        match self {
            CmsKind::EnvelopedData => "enveloped-data",
            CmsKind::AuthEnvelopedData => "authEnveloped-data",
            CmsKind::EncryptedData => "encrypted-data",
        }
    }

    /// The whole `Content-Type` header value for a body of this kind.
    pub fn content_type(self) -> String {
        format!(
            "application/pkcs7-mime; smime-type={}; name=smime.p7m",
            self.smime_type()
        )
    }

    /// The kind an `smime-type` value names, case-insensitively.
    pub fn from_smime_type(value: &str) -> Option<CmsKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.smime_type().eq_ignore_ascii_case(value.trim()))
    }
}
