//! [`CmsError`]: why a CMS structure could not be opened or sealed, one variant per cause.
//!
//! Messages name OIDs, lengths and the `der` crate's own diagnostics; they never contain key
//! material or plaintext.

/// Why opening, inspecting or sealing a CMS structure failed.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// Malformed or truncated DER/BER (the `der` crate's message, never data).
    #[error("malformed CMS encoding: {0}")]
    Der(String),
    /// The ContentInfo's content type is not EnvelopedData, AuthEnvelopedData or EncryptedData.
    #[error("unsupported CMS content type {0}")]
    UnsupportedContentType(String),
    /// The content-encryption algorithm (OID) is not one we implement.
    #[error("unsupported content-encryption algorithm {0}")]
    UnsupportedContentAlg(String),
    /// The key-encryption algorithm (OID, or a parameter of it) is not one we implement.
    #[error("unsupported key-encryption algorithm {0}")]
    UnsupportedKeyAlg(String),
    /// Algorithm parameters are missing or invalid (IV, GCM nonce or ICV length, ...).
    #[error("bad algorithm parameters: {0}")]
    BadAlgParams(&'static str),
    /// No RecipientInfo names any of our keys.
    #[error("none of our keys is a recipient of this message")]
    NotRecipient,
    /// The content-encryption key could not be recovered: KEK unwrap failed (wrong PSK) or
    /// RSA-OAEP decryption failed.
    #[error("content-encryption key could not be unwrapped")]
    KeyUnwrap,
    /// Content decryption or authentication failed (bad tag, bad CBC padding, wrong CEK).
    #[error("content decryption failed")]
    Decrypt,
    /// The given CEK's algorithm is not the message's content-encryption algorithm.
    #[error("content-encryption key is for a different algorithm than the message")]
    CekAlgMismatch,
    /// A key has the wrong length for its algorithm.
    #[error("key has the wrong length for its algorithm")]
    BadKeyLength,
    /// `seal` was given no recipients.
    #[error("no recipients given")]
    NoRecipients,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// Encoding the result failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The message would cost more RSA private-key operations than its budget allows.
    #[error("RSA work budget of this message used up")]
    RsaBudgetExhausted,
    /// A rotation was asked of a message that carries no rotation proof.
    #[error("no rotation proof (KEKRecipientInfo under the dialog key)")]
    NoRotationProof,
    /// A recipient certificate is unreadable or unparsable (path and reason).
    #[error("recipient certificate: {0}")]
    CertFile(String),
}

impl CmsError {
    /// A decoding error from the `der` crate.
    pub(crate) fn der(e: der::Error) -> Self {
        CmsError::Der(e.to_string())
    }

    /// An encoding error from the `der` crate.
    pub(crate) fn encode(e: der::Error) -> Self {
        CmsError::Encode(e.to_string())
    }
}
