//! The dialog-key rotation proof (docs/PROTOCOL.md §6.3).
//!
//! A new key for an established dialog is accepted only from someone who holds the current
//! one. The rotating (Auth)EnvelopedData carries, besides its ordinary RecipientInfos, one
//! KEKRecipientInfo (RFC 5652 §6.2.3) that wraps the new content-encryption key under a
//! key-encryption key derived from the dialog's current CEK:
//!
//! ```text
//! KEK   = HKDF-SHA256(salt = "sipsd", IKM = current CEK, info = "sipsd rotation proof v1"), 32 bytes
//! kekid = "sipsd-dialog-key" (ASCII, 16 octets), no date, no other
//! keyEncryptionAlgorithm = id-aes256-wrap (RFC 3565 §4.3, parameters absent)
//! ```
//!
//! A receiver holding the current CEK derives the KEK, unwraps the new CEK (AES key wrap has
//! an integrity check) and decrypts the content with it; for AES-GCM content this also
//! authenticates the body under the new key. No RSA operation is spent on a rotation. The KEK
//! is derived rather than the CEK itself used for key wrap, so that one key never serves two
//! algorithms. Any party that already has the CEK hex can make such a message with
//! `openssl cms -encrypt -secretkey KEK_HEX -secretkeyid 73697073642d6469616c6f672d6b6579`.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::CmsError;
use super::message::CmsMessage;
use super::open::{decrypt_content, Opened};
use super::recipient::{Recipient, RecipientRef};
use super::Cek;

/// The KEK identifier of the rotation proof: ASCII `sipsd-dialog-key`.
pub const ROTATION_KEK_ID: &[u8] = b"sipsd-dialog-key";

const SALT: &[u8] = b"sipsd";
const INFO: &[u8] = b"sipsd rotation proof v1";

/// The key-encryption key of the rotation proof for a dialog whose current key is `current`.
pub fn rotation_kek(current: &Cek) -> Zeroizing<Vec<u8>> {
    let mut kek = Zeroizing::new(vec![0u8; 32]);
    Hkdf::<Sha256>::new(Some(SALT), current.as_bytes())
        .expand(INFO, &mut kek)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    kek
}

/// The RecipientInfo that proves knowledge of `current` when sealing a rotation: add it to the
/// message's other recipients.
pub fn proof_recipient(current: &Cek) -> Recipient {
    Recipient::Psk {
        id: ROTATION_KEK_ID.to_vec(),
        kek: rotation_kek(current),
    }
}

impl CmsMessage {
    /// Whether the message carries a rotation proof (a KEKRecipientInfo with
    /// [`ROTATION_KEK_ID`]); says nothing about whether it is valid.
    pub fn has_rotation_proof(&self) -> bool {
        self.0.recipients().any(is_proof)
    }

    /// Opens a rotating message with the dialog's current key: unwraps the new CEK from the
    /// proof and decrypts the content with it. [`CmsError::NoRotationProof`] without a proof;
    /// [`CmsError::KeyUnwrap`] when the proof was not made with `current`.
    pub fn open_rotation(&self, current: &Cek) -> Result<Opened, CmsError> {
        let msg = &self.0;
        let params = self.content_params()?;
        let kek = rotation_kek(current);
        let mut first_err = None;
        for ri in msg.recipients().filter(|ri| is_proof(*ri)) {
            let res = ri
                .kekri_unwrap(&kek, params.alg())
                .and_then(|cek| decrypt_content(msg, params, &cek).map(|pt| (cek, pt)));
            match res {
                Ok((cek, plaintext)) => {
                    return Ok(Opened {
                        kind: msg.kind(),
                        cek,
                        plaintext,
                        key_label: "dialog".to_owned(),
                    })
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(CmsError::NoRotationProof))
    }
}

pub(super) fn is_proof(ri: RecipientRef<'_>) -> bool {
    ri.kek_id() == Some(ROTATION_KEK_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cms::test_keys::psk;
    use crate::crypto::cms::{seal, ContentAlg};

    #[test]
    fn proof_opens_with_the_current_key_only() {
        for alg in ContentAlg::ALL {
            let current = Cek::generate(alg).unwrap();
            let next = Cek::generate(alg).unwrap();
            let der = seal(
                b"v=0\r\n",
                &[psk(b"someone", 1), proof_recipient(&current)],
                &next,
            )
            .unwrap();
            let msg = CmsMessage::parse(&der).unwrap();
            assert!(msg.has_rotation_proof());
            let opened = msg.open_rotation(&current).unwrap();
            assert_eq!(opened.cek.as_bytes(), next.as_bytes(), "{alg}");
            assert_eq!(opened.plaintext.as_slice(), b"v=0\r\n");
            let other = Cek::generate(alg).unwrap();
            assert!(
                matches!(msg.open_rotation(&other), Err(CmsError::KeyUnwrap)),
                "{alg}: another current key must not open the proof"
            );
            let plain = seal(b"v=0\r\n", &[psk(b"someone", 1)], &next).unwrap();
            let plain = CmsMessage::parse(&plain).unwrap();
            assert!(!plain.has_rotation_proof());
            assert!(matches!(
                plain.open_rotation(&current),
                Err(CmsError::NoRotationProof)
            ));
        }
        println!("rotation proof: opens with the current key for all 4 algorithms; another key -> KeyUnwrap; none -> NoRotationProof");
    }

    #[test]
    fn kek_is_derived_not_the_cek_itself() {
        let current = Cek::from_bytes(ContentAlg::Aes256Gcm, &[0x11; 32]).unwrap();
        let kek = rotation_kek(&current);
        assert_eq!(kek.len(), 32);
        assert_ne!(kek.as_slice(), current.as_bytes());
        assert_eq!(kek.as_slice(), rotation_kek(&current).as_slice());
        println!("rotation KEK = HKDF-SHA256(current CEK): 32 bytes, deterministic, != CEK");
    }
}
