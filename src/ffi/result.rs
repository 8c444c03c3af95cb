//! The one result enum of the C ABI, its messages, and the mapping from Rust errors.

use std::ffi::c_char;

use crate::crypto::cms::CmsError;
use crate::crypto::keys::KeyError;
use crate::engine::cache::CacheError;
use crate::engine::cluster::ClusterError;
use crate::engine::Error;
use crate::sip::body::BodyError;

use super::boundary::ffi_boundary;

/// Result of every fallible C function. Numbers are stable: 0-99 are outcomes, 100+ errors.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_result {
    /// Done; for `sd_should_decrypt`: this proxy should decrypt.
    SD_OK = 0,
    /// Encrypted, but not for this proxy (not named, not a recipient, unknown dialog).
    SD_NOT_FOR_ME = 1,
    /// The message has no application/pkcs7-mime body.
    SD_NOT_ENCRYPTED = 2,
    /// `sd_seal`: nothing to seal (no body, or one that is S/MIME already).
    SD_NOTHING_TO_SEAL = 3,
    /// `sd_seal`: the body cannot be sealed and `unsealable=clear` lets it go in clear.
    SD_SENT_CLEAR = 4,
    /// A required pointer was NULL.
    SD_ERR_NULL_PARAMETER = 100,
    /// sipsd panicked; the call had no effect that can be relied on.
    SD_ERR_PANIC = 101,
    /// An argument is out of range or not UTF-8 where text is needed.
    SD_ERR_INVALID_ARGUMENT = 102,
    /// The operating system's random number generator failed.
    SD_ERR_RNG = 103,
    /// An option has an unknown name or a bad value.
    SD_ERR_CONFIG = 110,
    /// A key, certificate or PSK file is missing, unreadable or malformed.
    SD_ERR_KEY_FILE = 111,
    /// A certificate does not belong to its private key.
    SD_ERR_KEY_MISMATCH = 112,
    /// A key file belongs to another user, or (strict permissions) group or others may read
    /// or write it.
    SD_ERR_KEY_PERMISSIONS = 113,
    /// The body, a MIME part or a body header is malformed (content type, multipart, base64,
    /// a header that is not UTF-8).
    SD_ERR_BODY_MALFORMED = 120,
    /// A body limit was exceeded (size, parts, nesting depth, recipients).
    SD_ERR_BODY_LIMIT = 121,
    /// Disclose-To names a Content-ID that no encrypted part has.
    SD_ERR_CONTENT_ID_NOT_FOUND = 122,
    /// The Disclose-To header is malformed or over its limits.
    SD_ERR_REQUEST_HEADER = 123,
    /// Malformed or truncated DER.
    SD_ERR_DER = 130,
    /// The CMS content type is not EnvelopedData, AuthEnvelopedData or EncryptedData.
    SD_ERR_UNSUPPORTED_CONTENT_TYPE = 131,
    /// The content-encryption algorithm (or its parameters) is not supported.
    SD_ERR_UNSUPPORTED_ALGORITHM = 132,
    /// The key-encryption algorithm of this proxy's RecipientInfo is not supported.
    SD_ERR_UNSUPPORTED_KEY_ALGORITHM = 133,
    /// No RecipientInfo names a key of this proxy.
    SD_ERR_NOT_RECIPIENT = 134,
    /// The content-encryption key could not be unwrapped (wrong pre-shared key, RSA failure).
    SD_ERR_KEY_UNWRAP = 135,
    /// The content did not decrypt or authenticate (tampered, wrong key).
    SD_ERR_DECRYPT = 136,
    /// The message would cost more RSA private-key operations than `max_rsa_ops`.
    SD_ERR_RSA_BUDGET = 137,
    /// EncryptedData for a dialog whose key is not cached here.
    SD_ERR_NO_DIALOG_KEY = 140,
    /// The shared dialog key cache failed.
    SD_ERR_CACHE = 141,
    /// `sd_rotate` on a message that is no rotation (outside the dialog, no cached key, no
    /// new key).
    SD_ERR_ROTATION_REJECTED = 142,
    /// The dialog key is past its rotation limit (age or uses).
    SD_ERR_KEY_EXPIRED = 143,
    /// The message lacks what the dialog id needs (Call-ID, From tag).
    SD_ERR_INVALID_MESSAGE = 144,
    /// A new key for a dialog with a cached key, without a valid rotation proof: the cached
    /// key stays.
    SD_ERR_ROTATION_UNPROVEN = 145,
    /// An initial request for a dialog id that already has another live key: not overwritten.
    SD_ERR_DIALOG_KEY_EXISTS = 146,
    /// An unauthenticated (AES-CBC) body in a dialog with a cached key, refused unread.
    SD_ERR_UNAUTHENTICATED = 147,
    /// The next hop is not allowed to receive decrypted bodies (`plaintext_next_hop`).
    SD_ERR_NEXT_HOP = 148,
    /// The edge has no certificate for the party it should seal for (`callee_cert_dir`), and
    /// `unsealable=reject` keeps the body from going in clear.
    SD_ERR_NO_PEER_CERT = 149,
    /// The signature inside the body names a trusted signer and does not verify.
    SD_ERR_SIGNATURE_INVALID = 150,
    /// The body is signed by no trusted signer (`trusted_signer`).
    SD_ERR_SIGNER_UNKNOWN = 151,
    /// The body is not signed and `signature_policy=required`.
    SD_ERR_UNSIGNED = 152,
    /// An edge function on a context without `role=edge`.
    SD_ERR_NOT_EDGE = 153,
    /// Cluster replication is not configured (no `cluster_key`).
    SD_ERR_CLUSTER_OFF = 160,
    /// A replication message does not open and authenticate under a cluster key.
    SD_ERR_CLUSTER_SEAL = 161,
    /// A replication message opened but is malformed inside.
    SD_ERR_CLUSTER_MESSAGE = 162,
    /// A replication message was replayed, sent outside `cluster_max_skew`, or came from this
    /// node.
    SD_ERR_CLUSTER_REPLAY = 163,
    /// The firewall agent did not confirm every pinhole within `pinhole_timeout` (no
    /// answer, a refusal, or an answer without a valid MAC).
    SD_ERR_PINHOLE_AGENT = 170,
    /// The pinhole table is full (`pinhole_capacity`): nothing opened for the dialog.
    SD_ERR_PINHOLE_FULL = 171,
    /// A pinhole function without `pinhole_agent` configured.
    SD_ERR_PINHOLES_OFF = 172,
    /// A recording function without `record_recorder` and `record_kek` configured.
    SD_ERR_RECORDING_OFF = 173,
    /// The recorder's key message could not be made or sent (no usable a=crypto in the
    /// offer/answer, an offer SDP too long to keep, a socket error).
    SD_ERR_RECORD = 174,
}

/// The message of every result, one table: `ALL` (number order), `from_u32` and
/// `message` come from it, and the exhaustive match makes a variant without a message a
/// compile error.
macro_rules! result_messages {
    ($($code:ident => $msg:literal,)+) => {
        impl sd_result {
            /// Every result, in number order.
            pub const ALL: &'static [sd_result] = &[$(sd_result::$code,)+];

            /// The result with this number.
            pub fn from_u32(n: u32) -> Option<sd_result> {
                Self::ALL.iter().copied().find(|r| *r as u32 == n)
            }

            /// The static, NUL-terminated message of a result.
            fn message(self) -> &'static [u8] {
                match self {
                    $(sd_result::$code => concat!($msg, "\0").as_bytes(),)+
                }
            }
        }
    };
}

result_messages! {
    SD_OK => "ok",
    SD_NOT_FOR_ME => "encrypted, not for this proxy",
    SD_NOT_ENCRYPTED => "no encrypted body",
    SD_NOTHING_TO_SEAL => "nothing to seal",
    SD_SENT_CLEAR => "not sealable: sent in clear by policy (unsealable=clear)",
    SD_ERR_NULL_PARAMETER => "a required pointer was NULL",
    SD_ERR_PANIC => "internal error (panic caught at the C boundary)",
    SD_ERR_INVALID_ARGUMENT => "invalid argument",
    SD_ERR_RNG => "random number generator failed",
    SD_ERR_CONFIG => "invalid configuration option",
    SD_ERR_KEY_FILE => "key, certificate or PSK file missing, unreadable or malformed",
    SD_ERR_KEY_MISMATCH => "certificate does not match its private key",
    SD_ERR_KEY_PERMISSIONS => "key file owned by another user, or open to group or others",
    SD_ERR_BODY_MALFORMED => "malformed body or MIME part",
    SD_ERR_BODY_LIMIT => "body over a configured limit",
    SD_ERR_CONTENT_ID_NOT_FOUND => "Content-ID named by Disclose-To not found",
    SD_ERR_REQUEST_HEADER => "malformed Disclose-To header",
    SD_ERR_DER => "malformed or truncated DER",
    SD_ERR_UNSUPPORTED_CONTENT_TYPE => "unsupported CMS content type",
    SD_ERR_UNSUPPORTED_ALGORITHM => "unsupported content-encryption algorithm",
    SD_ERR_UNSUPPORTED_KEY_ALGORITHM => "unsupported key-encryption algorithm",
    SD_ERR_NOT_RECIPIENT => "not a recipient",
    SD_ERR_KEY_UNWRAP => "content-encryption key unwrap failed",
    SD_ERR_DECRYPT => "content decryption or authentication failed",
    SD_ERR_RSA_BUDGET => "RSA work budget of the message used up",
    SD_ERR_NO_DIALOG_KEY => "no cached key for this dialog",
    SD_ERR_CACHE => "dialog key cache failure",
    SD_ERR_ROTATION_REJECTED => "key rotation rejected",
    SD_ERR_KEY_EXPIRED => "dialog key past its rotation limit",
    SD_ERR_INVALID_MESSAGE => "message lacks Call-ID or From tag",
    SD_ERR_ROTATION_UNPROVEN => "new dialog key without a valid rotation proof",
    SD_ERR_DIALOG_KEY_EXISTS => "initial request for a dialog that has another key",
    SD_ERR_UNAUTHENTICATED => "unauthenticated (CBC) body in a known dialog refused",
    SD_ERR_NEXT_HOP => "next hop may not receive plaintext",
    SD_ERR_NO_PEER_CERT => "no certificate for the callee: not sent in clear",
    SD_ERR_SIGNATURE_INVALID => "signature does not verify",
    SD_ERR_SIGNER_UNKNOWN => "signed by no trusted signer",
    SD_ERR_UNSIGNED => "body not signed (signature required)",
    SD_ERR_NOT_EDGE => "not an edge (role=edge)",
    SD_ERR_CLUSTER_OFF => "cluster replication not configured",
    SD_ERR_CLUSTER_SEAL => "replication message not sealed under a cluster key",
    SD_ERR_CLUSTER_MESSAGE => "replication message malformed",
    SD_ERR_CLUSTER_REPLAY => "replication message replayed, out of time, or from this node",
    SD_ERR_PINHOLE_AGENT => "the firewall agent did not confirm the pinholes in time",
    SD_ERR_PINHOLE_FULL => "pinhole table full",
    SD_ERR_PINHOLES_OFF => "no firewall agent configured",
    SD_ERR_RECORDING_OFF => "no recorder configured (record_recorder, record_kek)",
    SD_ERR_RECORD => "the recorder's key message could not be made or sent",
}

impl From<&Error> for sd_result {
    fn from(e: &Error) -> sd_result {
        use sd_result::*;
        match e {
            Error::Config(_) => SD_ERR_CONFIG,
            Error::Keys(KeyError::Mismatch(_)) => SD_ERR_KEY_MISMATCH,
            Error::Keys(KeyError::InsecurePermissions(_) | KeyError::ForeignOwner(..)) => {
                SD_ERR_KEY_PERMISSIONS
            }
            Error::Keys(_) => SD_ERR_KEY_FILE,
            Error::Body(
                BodyError::TooLarge { .. } | BodyError::TooManyParts(_) | BodyError::TooDeep(_),
            ) => SD_ERR_BODY_LIMIT,
            Error::Body(_) => SD_ERR_BODY_MALFORMED,
            Error::TooManyRecipients { .. } => SD_ERR_BODY_LIMIT,
            Error::Request(_) => SD_ERR_REQUEST_HEADER,
            Error::Cms(c) => match c {
                CmsError::Der(_) | CmsError::Encode(_) => SD_ERR_DER,
                CmsError::UnsupportedContentType(_) => SD_ERR_UNSUPPORTED_CONTENT_TYPE,
                CmsError::UnsupportedContentAlg(_) | CmsError::BadAlgParams(_) => {
                    SD_ERR_UNSUPPORTED_ALGORITHM
                }
                CmsError::UnsupportedKeyAlg(_) => SD_ERR_UNSUPPORTED_KEY_ALGORITHM,
                CmsError::NotRecipient | CmsError::NoRecipients => SD_ERR_NOT_RECIPIENT,
                CmsError::KeyUnwrap => SD_ERR_KEY_UNWRAP,
                CmsError::Decrypt | CmsError::CekAlgMismatch | CmsError::BadKeyLength => {
                    SD_ERR_DECRYPT
                }
                CmsError::RsaBudgetExhausted => SD_ERR_RSA_BUDGET,
                CmsError::NoRotationProof => SD_ERR_ROTATION_UNPROVEN,
                CmsError::Rng => SD_ERR_RNG,
                CmsError::CertFile(_) => SD_ERR_KEY_FILE,
            },
            Error::Cache(CacheError::Rng) => SD_ERR_RNG,
            Error::Cache(_) => SD_ERR_CACHE,
            Error::ContentIdNotFound(_) => SD_ERR_CONTENT_ID_NOT_FOUND,
            Error::NoDialogKey => SD_ERR_NO_DIALOG_KEY,
            Error::RotationRejected(_) => SD_ERR_ROTATION_REJECTED,
            Error::RotationUnproven => SD_ERR_ROTATION_UNPROVEN,
            Error::InitialCollision => SD_ERR_DIALOG_KEY_EXISTS,
            Error::UnauthenticatedInDialog => SD_ERR_UNAUTHENTICATED,
            Error::KeyExpired => SD_ERR_KEY_EXPIRED,
            Error::InvalidMessage(_) => SD_ERR_INVALID_MESSAGE,
            Error::Cluster(c) => match c {
                ClusterError::NotConfigured => SD_ERR_CLUSTER_OFF,
                ClusterError::BadSeal(_) => SD_ERR_CLUSTER_SEAL,
                ClusterError::Malformed(_) => SD_ERR_CLUSTER_MESSAGE,
                ClusterError::OwnMessage(_)
                | ClusterError::OutOfWindow(_)
                | ClusterError::Replay { .. } => SD_ERR_CLUSTER_REPLAY,
            },
            Error::NoPeerCertificate(_) => SD_ERR_NO_PEER_CERT,
            Error::SignatureInvalid(_) => SD_ERR_SIGNATURE_INVALID,
            Error::SignerUnknown => SD_ERR_SIGNER_UNKNOWN,
            Error::Unsigned => SD_ERR_UNSIGNED,
            Error::NotEdge => SD_ERR_NOT_EDGE,
            Error::PinholeAgent(_) => SD_ERR_PINHOLE_AGENT,
            Error::PinholeFull => SD_ERR_PINHOLE_FULL,
            Error::PinholesOff => SD_ERR_PINHOLES_OFF,
            Error::RecordingOff => SD_ERR_RECORDING_OFF,
            Error::Record(_) => SD_ERR_RECORD,
        }
    }
}

/// A static, NUL-terminated description of `r`; never NULL, never to be freed.
/// Unknown numbers give "unknown result".
#[no_mangle]
pub extern "C" fn sd_strerror(r: u32) -> *const c_char {
    ffi_boundary! {
        let msg: &'static [u8] =
            sd_result::from_u32(r).map_or(b"unknown result\0", sd_result::message);
        msg.as_ptr().cast()
    }
}

/// The library version, static and NUL-terminated.
#[no_mangle]
pub extern "C" fn sd_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

thread_local! {
    static LAST_ERROR: std::cell::RefCell<std::ffi::CString> =
        std::cell::RefCell::new(std::ffi::CString::default());
}

/// Records `e` as this thread's last error detail and returns its code.
pub(crate) fn fail(e: &Error) -> sd_result {
    let text = e.to_string().replace('\0', " ");
    LAST_ERROR.with(|last| {
        *last.borrow_mut() = std::ffi::CString::new(text).unwrap_or_default();
    });
    e.into()
}

/// The detail of the last error returned by a function of this thread (e.g. which option or
/// which file), NUL-terminated; "" if none. Valid until the next sipsd call on this thread.
/// Never contains key material or plaintext.
#[no_mangle]
pub extern "C" fn sd_last_error() -> *const c_char {
    ffi_boundary! {
        LAST_ERROR.with(|last| last.borrow().as_ptr())
    }
}

/// Every result code, in number order (for tests and tools).
pub fn all_results() -> &'static [sd_result] {
    sd_result::ALL
}
