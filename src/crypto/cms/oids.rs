//! Object identifiers used by the CMS layer, all in one place.
//!
//! Each is taken from the `const-oid` database under the RFC that defines it.

pub use const_oid::ObjectIdentifier;

use const_oid::db::{rfc5911, rfc5912};

/// `id-data` (RFC 5652 §4).
pub const ID_DATA: ObjectIdentifier = rfc5911::ID_DATA;
/// `id-envelopedData` (RFC 5652 §6).
pub const ID_ENVELOPED_DATA: ObjectIdentifier = rfc5911::ID_ENVELOPED_DATA;
/// `id-encryptedData` (RFC 5652 §8).
pub const ID_ENCRYPTED_DATA: ObjectIdentifier = rfc5911::ID_ENCRYPTED_DATA;
/// `id-ct-authEnvelopedData` (RFC 5083 §4).
pub const ID_CT_AUTH_ENVELOPED_DATA: ObjectIdentifier = rfc5911::ID_CT_AUTH_ENVELOPED_DATA;

/// `id-aes128-GCM` (RFC 5084 §3.2).
pub const ID_AES_128_GCM: ObjectIdentifier = rfc5911::ID_AES_128_GCM;
/// `id-aes256-GCM` (RFC 5084 §3.2).
pub const ID_AES_256_GCM: ObjectIdentifier = rfc5911::ID_AES_256_GCM;
/// `id-aes128-CBC` (RFC 3565 §4.1).
pub const ID_AES_128_CBC: ObjectIdentifier = rfc5911::ID_AES_128_CBC;
/// `id-aes256-CBC` (RFC 3565 §4.1).
pub const ID_AES_256_CBC: ObjectIdentifier = rfc5911::ID_AES_256_CBC;

/// `id-aes128-wrap` (RFC 3565 §4.3).
pub const ID_AES_128_WRAP: ObjectIdentifier = rfc5911::ID_AES_128_WRAP;
/// `id-aes192-wrap` (RFC 3565 §4.3).
pub const ID_AES_192_WRAP: ObjectIdentifier = rfc5911::ID_AES_192_WRAP;
/// `id-aes256-wrap` (RFC 3565 §4.3).
pub const ID_AES_256_WRAP: ObjectIdentifier = rfc5911::ID_AES_256_WRAP;

/// `rsaEncryption`: RSAES-PKCS1-v1_5 key transport (RFC 3370 §4.2.1).
pub const RSA_ENCRYPTION: ObjectIdentifier = rfc5912::RSA_ENCRYPTION;
/// `id-RSAES-OAEP` (RFC 4055 §4.1, RFC 3560).
pub const ID_RSAES_OAEP: ObjectIdentifier = rfc5912::ID_RSAES_OAEP;
/// `id-mgf1` (RFC 4055 §2.2).
pub const ID_MGF_1: ObjectIdentifier = rfc5912::ID_MGF_1;
/// `id-pSpecified` (RFC 4055 §4.1).
pub const ID_P_SPECIFIED: ObjectIdentifier = rfc5912::ID_P_SPECIFIED;

/// `id-sha1` (RFC 3279 §2.2.1).
pub const ID_SHA_1: ObjectIdentifier = rfc5912::ID_SHA_1;
/// `id-sha256` (RFC 4055 §2.1).
pub const ID_SHA_256: ObjectIdentifier = rfc5912::ID_SHA_256;
/// `id-sha384` (RFC 4055 §2.1).
pub const ID_SHA_384: ObjectIdentifier = rfc5912::ID_SHA_384;
/// `id-sha512` (RFC 4055 §2.1).
pub const ID_SHA_512: ObjectIdentifier = rfc5912::ID_SHA_512;
