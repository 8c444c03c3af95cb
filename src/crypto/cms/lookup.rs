//! How the CMS layer finds a recipient's own key: [`KeyLookup`], implemented by whatever holds
//! the keys (`crypto::keys::KeyStore`), so that opening a message depends on no key store.

use super::recipient::{RecipientKeyId, RecipientKeyIdRef};
use super::rsa_backend::RsaKey;

/// One of our keys, as a RecipientInfo names it.
pub enum RecipientKey<'a> {
    /// An RSA private key (KeyTransRecipientInfo).
    Rsa {
        /// The key.
        key: &'a RsaKey,
        /// Its label (what a proxy reports as the key that opened a message).
        label: &'a str,
    },
    /// A pre-shared key-encryption key (KEKRecipientInfo).
    Psk {
        /// The key-encryption key.
        kek: &'a [u8],
        /// Its label.
        label: &'a str,
    },
}

impl RecipientKey<'_> {
    /// The key's label.
    pub fn label(&self) -> &str {
        match self {
            RecipientKey::Rsa { label, .. } | RecipientKey::Psk { label, .. } => label,
        }
    }
}

/// Finds our key named by a RecipientInfo (identifier match only: no key is ever tried
/// on a RecipientInfo that does not name it).
pub trait KeyLookup {
    /// Our key that `id` names, if any.
    fn find(&self, id: &RecipientKeyId) -> Option<RecipientKey<'_>>;

    /// [`KeyLookup::find`] of an identifier seen where it lies in a message. The default
    /// copies it out; a lookup that can compare views overrides it (the key store does).
    fn find_ref(&self, id: RecipientKeyIdRef<'_>) -> Option<RecipientKey<'_>> {
        self.find(&id.to_owned())
    }
}
