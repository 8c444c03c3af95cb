//! The one result enum of the C ABI, its messages, and the mapping from Rust errors.

use std::ffi::c_char;

use crate::body::BodyError;
use crate::cms::CmsError;
use crate::error::Error;
use crate::keys::KeyError;

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
    /// A required pointer was NULL.
    SD_ERR_NULL_PARAMETER = 100,
    /// sipsd panicked; the call had no effect that can be relied on.
    SD_ERR_PANIC = 101,
    /// An argument is out of range or not UTF-8 where text is needed.
    SD_ERR_INVALID_ARGUMENT = 102,
    /// An option has an unknown name or a bad value.
    SD_ERR_CONFIG = 110,
    /// A key, certificate or PSK file is missing, unreadable or malformed.
    SD_ERR_KEY_FILE = 111,
    /// A certificate does not belong to its private key.
    SD_ERR_KEY_MISMATCH = 112,
    /// A private key file is readable by others and strict permissions are on.
    SD_ERR_KEY_PERMISSIONS = 113,
    /// The body or a MIME part is malformed (content type, multipart, base64).
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
    /// EncryptedData for a dialog whose key is not cached here.
    SD_ERR_NO_DIALOG_KEY = 140,
    /// The shared dialog key cache failed.
    SD_ERR_CACHE = 141,
    /// A new key for a dialog came from outside it, or nothing to rotate.
    SD_ERR_ROTATION_REJECTED = 142,
    /// The dialog key is past its rotation limit (age or uses).
    SD_ERR_KEY_EXPIRED = 143,
    /// The message lacks what the operation needs (Call-ID, From tag) or is not UTF-8 there.
    SD_ERR_INVALID_MESSAGE = 144,
}

impl sd_result {
    /// The static, NUL-terminated message of a result.
    fn message(self) -> &'static [u8] {
        use sd_result::*;
        match self {
            SD_OK => b"ok\0",
            SD_NOT_FOR_ME => b"encrypted, not for this proxy\0",
            SD_NOT_ENCRYPTED => b"no encrypted body\0",
            SD_ERR_NULL_PARAMETER => b"a required pointer was NULL\0",
            SD_ERR_PANIC => b"internal error (panic caught at the C boundary)\0",
            SD_ERR_INVALID_ARGUMENT => b"invalid argument\0",
            SD_ERR_CONFIG => b"invalid configuration option\0",
            SD_ERR_KEY_FILE => b"key, certificate or PSK file missing, unreadable or malformed\0",
            SD_ERR_KEY_MISMATCH => b"certificate does not match its private key\0",
            SD_ERR_KEY_PERMISSIONS => b"key file is readable by group or others\0",
            SD_ERR_BODY_MALFORMED => b"malformed body or MIME part\0",
            SD_ERR_BODY_LIMIT => b"body over a configured limit\0",
            SD_ERR_CONTENT_ID_NOT_FOUND => b"Content-ID named by Disclose-To not found\0",
            SD_ERR_REQUEST_HEADER => b"malformed Disclose-To header\0",
            SD_ERR_DER => b"malformed or truncated DER\0",
            SD_ERR_UNSUPPORTED_CONTENT_TYPE => b"unsupported CMS content type\0",
            SD_ERR_UNSUPPORTED_ALGORITHM => b"unsupported content-encryption algorithm\0",
            SD_ERR_UNSUPPORTED_KEY_ALGORITHM => b"unsupported key-encryption algorithm\0",
            SD_ERR_NOT_RECIPIENT => b"not a recipient\0",
            SD_ERR_KEY_UNWRAP => b"content-encryption key unwrap failed\0",
            SD_ERR_DECRYPT => b"content decryption or authentication failed\0",
            SD_ERR_NO_DIALOG_KEY => b"no cached key for this dialog\0",
            SD_ERR_CACHE => b"dialog key cache failure\0",
            SD_ERR_ROTATION_REJECTED => b"key rotation rejected\0",
            SD_ERR_KEY_EXPIRED => b"dialog key past its rotation limit\0",
            SD_ERR_INVALID_MESSAGE => b"message lacks Call-ID or From tag\0",
        }
    }
}

impl From<&Error> for sd_result {
    fn from(e: &Error) -> sd_result {
        use sd_result::*;
        match e {
            Error::Config(_) => SD_ERR_CONFIG,
            Error::Keys(KeyError::Mismatch(_)) => SD_ERR_KEY_MISMATCH,
            Error::Keys(KeyError::InsecurePermissions(_)) => SD_ERR_KEY_PERMISSIONS,
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
                CmsError::NeedsDialogKey => SD_ERR_NO_DIALOG_KEY,
                CmsError::Rng => SD_ERR_PANIC,
                CmsError::CertFile(_) => SD_ERR_KEY_FILE,
            },
            Error::Cache(_) => SD_ERR_CACHE,
            Error::ContentIdNotFound(_) => SD_ERR_CONTENT_ID_NOT_FOUND,
            Error::NoDialogKey => SD_ERR_NO_DIALOG_KEY,
            Error::RotationRejected(_) => SD_ERR_ROTATION_REJECTED,
            Error::KeyExpired => SD_ERR_KEY_EXPIRED,
            Error::InvalidMessage(_) => SD_ERR_INVALID_MESSAGE,
        }
    }
}

/// A static, NUL-terminated description of `r`; never NULL, never to be freed.
/// Unknown numbers give "unknown result".
#[no_mangle]
pub extern "C" fn sd_strerror(r: u32) -> *const c_char {
    ffi_boundary! {
        let msg: &'static [u8] = ALL
            .iter()
            .find(|known| **known as u32 == r)
            .map_or(b"unknown result\0", |known| known.message());
        msg.as_ptr().cast()
    }
}

/// The library version, static and NUL-terminated.
#[no_mangle]
pub extern "C" fn sd_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Every result, for `sd_strerror` and tests.
pub(crate) const ALL: [sd_result; 26] = {
    use sd_result::*;
    [
        SD_OK,
        SD_NOT_FOR_ME,
        SD_NOT_ENCRYPTED,
        SD_ERR_NULL_PARAMETER,
        SD_ERR_PANIC,
        SD_ERR_INVALID_ARGUMENT,
        SD_ERR_CONFIG,
        SD_ERR_KEY_FILE,
        SD_ERR_KEY_MISMATCH,
        SD_ERR_KEY_PERMISSIONS,
        SD_ERR_BODY_MALFORMED,
        SD_ERR_BODY_LIMIT,
        SD_ERR_CONTENT_ID_NOT_FOUND,
        SD_ERR_REQUEST_HEADER,
        SD_ERR_DER,
        SD_ERR_UNSUPPORTED_CONTENT_TYPE,
        SD_ERR_UNSUPPORTED_ALGORITHM,
        SD_ERR_UNSUPPORTED_KEY_ALGORITHM,
        SD_ERR_NOT_RECIPIENT,
        SD_ERR_KEY_UNWRAP,
        SD_ERR_DECRYPT,
        SD_ERR_NO_DIALOG_KEY,
        SD_ERR_CACHE,
        SD_ERR_ROTATION_REJECTED,
        SD_ERR_KEY_EXPIRED,
        SD_ERR_INVALID_MESSAGE,
    ]
};

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
    &ALL
}
