//! The error of the top layer: what a proxy or a user agent operation can fail with.
//!
//! Each lower layer has its own error enum ([`CmsError`], [`BodyError`], [`RequestError`],
//! [`CacheError`], [`KeyError`]); this one wraps them and adds the causes that only exist once
//! a SIP message, a dialog and a policy meet. The C ABI maps every variant to a stable code.

use crate::body::BodyError;
use crate::cache::CacheError;
use crate::cms::CmsError;
use crate::keys::KeyError;
use crate::request::RequestError;

/// Everything [`crate::proxy::Proxy`] and [`crate::ua`] can fail with.
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
    Request(#[from] RequestError),
    /// Opening or sealing the CMS structure failed.
    #[error("CMS: {0}")]
    Cms(#[from] CmsError),
    /// The shared dialog key cache failed.
    #[error("dialog key cache: {0}")]
    Cache(#[from] CacheError),
    /// The `Disclose-To` header names a Content-ID that no encrypted part has.
    #[error("no encrypted body part has Content-ID <{0}>")]
    ContentIdNotFound(String),
    /// EncryptedData for a dialog whose key this proxy does not hold.
    #[error("no cached key for this dialog")]
    NoDialogKey,
    /// A new wrapped key for a known dialog came from a message outside that dialog, or a
    /// rotation was asked for a dialog that is not cached.
    #[error("key rotation rejected: {0}")]
    RotationRejected(&'static str),
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
    /// A SIP field the operation needs is missing or not UTF-8 (e.g. Call-ID).
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),
}

/// Result alias of this layer.
pub type Result<T> = std::result::Result<T, Error>;
