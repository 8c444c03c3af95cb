//! The error of the top layer: what a proxy or a user agent operation can fail with.
//!
//! Each lower layer has its own error enum ([`CmsError`], [`BodyError`], [`DiscloseError`],
//! [`CacheError`], [`ClusterError`], [`KeyError`]); this one wraps them and adds the causes that only exist once
//! a SIP message, a dialog and a policy meet. The C ABI maps every variant to a stable code.

use crate::crypto::cms::CmsError;
use crate::crypto::keys::KeyError;
use crate::engine::cache::CacheError;
use crate::engine::cluster::ClusterError;
use crate::sip::body::BodyError;
use crate::sip::disclose::DiscloseError;

/// Everything [`crate::engine::proxy::Proxy`], [`crate::engine::edge::Edge`] and
/// [`crate::engine::ua`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration option has an unknown name or a bad value.
    #[error("configuration: {0}")]
    Config(String),
    /// Loading a key, certificate or pre-shared key failed.
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    /// The SIP body or one of its MIME parts is malformed or over a limit.
    #[error("body: {0}")]
    Body(#[from] BodyError),
    /// The `Disclose-To` header cannot be parsed.
    #[error("Disclose-To header: {0}")]
    Request(#[from] DiscloseError),
    /// Opening or sealing the CMS structure failed.
    #[error("CMS: {0}")]
    Cms(#[from] CmsError),
    /// The shared dialog key cache failed.
    #[error("dialog key cache: {0}")]
    Cache(#[from] CacheError),
    /// A cluster replication message was refused, or could not be made.
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// The `Disclose-To` header names a Content-ID that no encrypted part has.
    #[error("no encrypted body part has Content-ID <{0}>")]
    ContentIdNotFound(String),
    /// EncryptedData for a dialog whose key this proxy does not hold.
    #[error("no cached key for this dialog")]
    NoDialogKey,
    /// A rotation was asked of a message that is not one (outside the dialog, no cached key,
    /// no new key).
    #[error("key rotation rejected: {0}")]
    RotationRejected(&'static str),
    /// A new key for a dialog whose key is cached, without a valid proof that its sender holds
    /// the current key (docs/PROTOCOL.md §6.3): the cached key stays.
    #[error("key rotation rejected: a new key for a known dialog without a valid rotation proof")]
    RotationUnproven,
    /// An initial request for a dialog id that already has another live key: never
    /// overwritten.
    #[error("key rotation rejected: an initial request for a dialog that already has another key")]
    InitialCollision,
    /// An unauthenticated (AES-CBC) body inside a dialog with a cached key, refused without
    /// decrypting (`allow_cbc_in_dialog` is off).
    #[error("unauthenticated (CBC) body in a known dialog refused")]
    UnauthenticatedInDialog,
    /// The dialog's cached key is past the configured age or number of uses.
    #[error("the dialog key is past its rotation limit; the sender must rotate it")]
    KeyExpired,
    /// The CMS structure has more RecipientInfos than configured.
    #[error("{count} recipients, more than the limit of {limit}")]
    TooManyRecipients {
        /// RecipientInfos in the message.
        count: usize,
        /// The configured `max_recipients`.
        limit: usize,
    },
    /// The message lacks a field the dialog id needs (Call-ID, From tag).
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),
    /// The signature inside the body names a trusted signer and does not verify (the content
    /// or its signed attributes were changed, or an algorithm sipsd does not accept).
    #[error("signature invalid: {0}")]
    SignatureInvalid(&'static str),
    /// The body is signed, but by no trusted signer (`trusted_signer`).
    #[error("signed by no trusted signer")]
    SignerUnknown,
    /// The body is not signed and `signature_policy` is `required`.
    #[error("the body is not signed (signature_policy=required)")]
    Unsigned,
    /// The edge has no certificate for the party it should seal for (`callee_cert_dir`), and
    /// `unsealable` is `reject`.
    #[error("no certificate for {0}: the body is not sent in clear (unsealable=reject)")]
    NoPeerCertificate(String),
    /// An edge operation on a context that is not configured as an edge (`role=edge`).
    #[error("this sipsd context is not an edge (role=edge)")]
    NotEdge,
    /// The firewall agent did not confirm every pinhole in time (no answer, refused, or an
    /// answer without a valid MAC).
    #[error("firewall agent: {0}")]
    PinholeAgent(String),
    /// The pinhole table is full (`pinhole_capacity`): the dialog opens nothing.
    #[error("pinhole table full")]
    PinholeFull,
    /// A pinhole function on a context without `pinhole_agent`.
    #[error("no firewall agent configured (pinhole_agent)")]
    PinholesOff,
    /// A recording function without a recorder (`record_recorder`, `record_kek`).
    #[error("no recorder configured (record_recorder, record_kek)")]
    RecordingOff,
    /// The recorder's key message could not be made or sent (never contains key material).
    #[error("recording: {0}")]
    Record(String),
}

/// Result alias of this layer.
pub type Result<T> = std::result::Result<T, Error>;
