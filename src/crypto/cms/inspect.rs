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

/// What a proxy asks of a message's RecipientInfos before opening it
/// ([`CmsMessage::recipients_seen`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecipientsSeen {
    /// How many RecipientInfos there are (none for EncryptedData).
    pub count: usize,
    /// Whether one names one of our keys (identifier match only).
    pub ours: bool,
    /// Whether a KEKRecipientInfo carries the rotation proof's identifier
    /// ([`Inspection::has_rotation_proof`]).
    pub rotation_proof: bool,
}

impl CmsMessage {
    /// The RecipientInfos counted and matched against `keys`, as [`CmsMessage::inspect`] and
    /// [`matching_recipient`] would tell, but read where they lie: no description of each is
    /// built and no identifier is copied out (a RecipientInfo of the general decoder aside,
    /// whose identifier is encoded to be compared). Fails where `inspect` fails.
    pub fn recipients_seen(&self, keys: &dyn KeyLookup) -> Result<RecipientsSeen, CmsError> {
        let mut seen = RecipientsSeen {
            count: 0,
            ours: false,
            rotation_proof: false,
        };
        for ri in self.0.recipients() {
            seen.count += 1;
            seen.rotation_proof |= super::rotation::is_proof(ri);
            let named = ri.with_key_id(|id| keys.find_ref(id).is_some())?;
            seen.ours |= named;
        }
        Ok(seen)
    }
}

/// The label of the first of our keys that a RecipientInfo names (identifier match only: no
/// trial decryption with keys not named). `None` if none is.
pub fn matching_recipient(insp: &Inspection, keys: &dyn KeyLookup) -> Option<String> {
    insp.recipients
        .iter()
        .find_map(|r| keys.find_ref(r.id.as_ref()).map(|k| k.label().to_owned()))
}

#[cfg(test)]
mod tests {
    use crate::crypto::cms::test_keys::psk;

    use super::*;
    use crate::crypto::cms::lookup::RecipientKey;
    use crate::crypto::cms::{proof_recipient, seal, Cek};

    /// Pre-shared keys by identifier, through the default `find_ref` (a copy, then `find`).
    struct Psks(Vec<(Vec<u8>, Vec<u8>)>);

    impl KeyLookup for Psks {
        fn find(&self, id: &RecipientKeyId) -> Option<RecipientKey<'_>> {
            let RecipientKeyId::KekId(kid) = id else {
                return None;
            };
            self.0
                .iter()
                .find(|(i, _)| i == kid)
                .map(|(_, k)| RecipientKey::Psk { kek: k, label: "p" })
        }
    }

    #[test]
    fn recipients_seen_says_what_inspect_says() {
        let cek = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
        let current = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
        let ours = Psks(vec![(b"ours".to_vec(), vec![7; 32])]);
        let cases = [
            (vec![psk(b"other", 1), psk(b"ours", 7)], true, false),
            (vec![psk(b"other", 1)], false, false),
            (
                vec![psk(b"other", 1), proof_recipient(&current)],
                false,
                true,
            ),
        ];
        for (recipients, expect_ours, expect_proof) in cases {
            let der = seal(b"v=0\r\n", &recipients, &cek).unwrap();
            let cms = CmsMessage::parse(&der).unwrap();
            let insp = cms.inspect().unwrap();
            let seen = cms.recipients_seen(&ours).unwrap();
            assert_eq!(seen.count, insp.recipients.len());
            assert_eq!(seen.ours, matching_recipient(&insp, &ours).is_some());
            assert_eq!(seen.rotation_proof, insp.has_rotation_proof());
            assert_eq!(
                (seen.ours, seen.rotation_proof),
                (expect_ours, expect_proof)
            );
            println!(
                "{} recipients: ours {} proof {} (as inspect says)",
                seen.count, seen.ours, seen.rotation_proof
            );
        }
    }
}
