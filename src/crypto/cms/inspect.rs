//! What a CMS message is, who it is for, without decrypting anything.

use super::content;
use super::error::CmsError;
use super::lookup::KeyLookup;
use super::message::CmsMessage;
use super::recipient::{RecipientKeyId, RecipientSummary};
use super::{CmsKind, ContentAlg};

/// What [`inspect`] tells about a message.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The structure.
    pub kind: CmsKind,
    /// The content-encryption algorithm, or `Err(oid)` when sipsd does not implement it.
    pub content_alg: Result<ContentAlg, String>,
    /// One entry per RecipientInfo (in DER order); empty for EncryptedData.
    pub recipients: Vec<RecipientSummary>,
    /// Length of the encrypted content in bytes (for GCM EncryptedData including the tag).
    pub ciphertext_len: usize,
}

/// Decodes a CMS ContentInfo (DER or BER) and reports its kind, algorithm and recipients.
pub fn inspect(der: &[u8]) -> Result<Inspection, CmsError> {
    CmsMessage::parse(der)?.inspect()
}

impl CmsMessage {
    /// Its kind, algorithm and recipients, without decrypting anything.
    pub fn inspect(&self) -> Result<Inspection, CmsError> {
        inspect_message(self)
    }
}

fn inspect_message(cms: &CmsMessage) -> Result<Inspection, CmsError> {
    let msg = &cms.0;
    let recipients = msg
        .recipients()
        .map(RecipientSummary::of)
        .collect::<Result<Vec<_>, _>>()?;
    let content_alg = match (cms.1.get(), msg.content_info()) {
        (Some(params), _) => Ok(params.alg()),
        (None, Some(ci)) => content::content_alg(&ci.content_enc_alg)
            .map_err(|_| ci.content_enc_alg.oid.to_string()),
        (None, None) => return Err(CmsError::Der("no EncryptedContentInfo".into())),
    };
    Ok(Inspection {
        kind: msg.kind(),
        content_alg,
        recipients,
        ciphertext_len: msg.ciphertext().map(<[u8]>::len).unwrap_or(0),
    })
}

impl Inspection {
    /// Whether a KEKRecipientInfo carries the dialog-key rotation proof's identifier
    /// ([`ROTATION_KEK_ID`](super::ROTATION_KEK_ID)); says nothing about its validity.
    pub fn has_rotation_proof(&self) -> bool {
        self.recipients.iter().any(|r| {
            matches!(&r.id, RecipientKeyId::KekId(id) if id.as_slice() == super::ROTATION_KEK_ID)
        })
    }
}

/// The label of the first of our keys that a RecipientInfo names (identifier match only: no
/// trial decryption with keys not named). `None` if none is.
pub fn matching_recipient(insp: &Inspection, keys: &dyn KeyLookup) -> Option<String> {
    insp.recipients
        .iter()
        .find_map(|r| keys.find(&r.id).map(|k| k.label().to_owned()))
}
