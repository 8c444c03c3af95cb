//! The cryptography, on RustCrypto types: CMS structures and their keys.
//!
//! - [`cms`]: opening and sealing EnvelopedData, AuthEnvelopedData and EncryptedData, the
//!   RecipientInfos, the dialog-key rotation proof; keys are found through the [`cms::KeyLookup`]
//!   trait, which [`keys::KeyStore`] implements.
//! - [`cert`]: reading X.509 certificates and what identifies their keys.
//! - [`keys`]: a party's RSA keys with their certificates, pre-shared keys and identity names.

pub mod cert;
pub mod cms;
pub mod keys;
