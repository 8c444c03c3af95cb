//! The seal around a replication message: CMS AuthEnvelopedData (AES-256-GCM) with one
//! KEKRecipientInfo under the cluster key (AES key wrap), base64 — the crate's own CMS sealing
//! and opening (`crypto::cms`), so there is one sealing code path. docs/PROTOCOL.md §8.1.
//!
//! Only AuthEnvelopedData with AES-256-GCM opens: an EnvelopedData (CBC) under a key the
//! attacker never learns could still be spliced from GCM keystream, so nothing
//! unauthenticated is ever decrypted.

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::crypto::cms::{
    self, Cek, CmsKind, CmsMessage, ContentAlg, KeyLookup, Recipient, RecipientKey, RecipientKeyId,
    RsaBudget,
};
use crate::crypto::keys::{KeySpec, KeyStore, PskSpec};
use crate::engine::{Error, Result};

use super::ClusterError;

/// Largest sealed message (base64 text) accepted from a peer.
pub const MAX_SEALED_LEN: usize = 8192;

/// The cluster keys: the first seals, every one opens (so a new key can be rolled out
/// node by node).
pub(crate) struct ClusterKeys {
    store: KeyStore,
    seal_id: Vec<u8>,
}

impl ClusterKeys {
    /// Loads the key files (the checks of `keys::read_secret_file`); warnings go to
    /// `warnings`.
    pub(crate) fn load(
        specs: &[PskSpec],
        strict: bool,
        warnings: &mut Vec<String>,
    ) -> Result<ClusterKeys> {
        let first = specs
            .first()
            .ok_or(Error::Config("cluster_key: none configured".into()))?;
        let store = KeyStore::load(&KeySpec {
            psk: specs.to_vec(),
            strict_permissions: strict,
            ..KeySpec::default()
        })?;
        warnings.extend(store.warnings().iter().cloned());
        Ok(ClusterKeys {
            store,
            seal_id: first.id.clone(),
        })
    }

    /// Each key's bytes, for comparing with other keys at load (never logged).
    pub(crate) fn key_bytes(&self, id: &[u8]) -> Option<&[u8]> {
        match self.store.find(&RecipientKeyId::KekId(id.to_vec()))? {
            RecipientKey::Psk { kek, .. } => Some(kek),
            RecipientKey::Rsa { .. } => None,
        }
    }

    /// Seals `plaintext` (the DER of a message) for the cluster: base64 text.
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Result<String> {
        let kek = self.key_bytes(&self.seal_id).ok_or(Error::Config(
            "cluster_key: the sealing key is missing".into(),
        ))?;
        let recipient = Recipient::Psk {
            id: self.seal_id.clone(),
            kek: Zeroizing::new(kek.to_vec()),
        };
        let cek = Cek::generate(ContentAlg::Aes256Gcm)?;
        let der = cms::seal(plaintext, &[recipient], &cek)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(der))
    }

    /// Opens a sealed message: the plaintext, or why it does not open (never more detail:
    /// a stranger learns nothing from the answer).
    pub(crate) fn open(
        &self,
        text: &[u8],
    ) -> std::result::Result<Zeroizing<Vec<u8>>, ClusterError> {
        if text.len() > MAX_SEALED_LEN {
            return Err(ClusterError::BadSeal("larger than a replication message"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(text.trim_ascii())
            .map_err(|_| ClusterError::BadSeal("not base64"))?;
        let msg = CmsMessage::parse(&der).map_err(|_| ClusterError::BadSeal("not CMS"))?;
        if msg.kind() != CmsKind::AuthEnvelopedData {
            return Err(ClusterError::BadSeal("not AuthEnvelopedData"));
        }
        let opened = msg
            .open(self, &mut RsaBudget::new(0))
            .map_err(|_| ClusterError::BadSeal("does not open under a cluster key"))?;
        if opened.cek.alg() != ContentAlg::Aes256Gcm {
            return Err(ClusterError::BadSeal("not AES-256-GCM"));
        }
        Ok(opened.plaintext)
    }
}

impl KeyLookup for ClusterKeys {
    fn find(&self, id: &RecipientKeyId) -> Option<RecipientKey<'_>> {
        match id {
            RecipientKeyId::KekId(_) => self.store.find(id),
            _ => None,
        }
    }
}
