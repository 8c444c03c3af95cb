//! What sipsd seals, sipsd opens: every content algorithm, RSA padding and recipient id kind,
//! EncryptedData under a dialog key, and a seal without recipients refused.

mod support;

use sipsd::crypto::cms::{self, Cek, CmsError, CmsKind, ContentAlg};

use support::vectors::{store, three_recipients, vectors, ID_KINDS, PADDINGS};

#[test]
fn seal_round_trips_for_every_algorithm_padding_and_id() {
    let offer = std::fs::read(vectors().join("msgs/offer.sdp")).unwrap();
    for alg in ContentAlg::ALL {
        for padding in PADDINGS {
            for id in ID_KINDS {
                let cek = Cek::generate(alg).unwrap();
                let recips = three_recipients(id, padding);
                let der = cms::seal(&offer, &recips, &cek).unwrap();
                let insp = cms::inspect(&der).unwrap();
                let kind = if alg.is_aead() {
                    CmsKind::AuthEnvelopedData
                } else {
                    CmsKind::EnvelopedData
                };
                assert_eq!(insp.kind, kind);
                assert_eq!(insp.content_alg, Ok(alg));
                assert_eq!(insp.recipients.len(), 3);
                for who in ["callee", "proxy1", "psk"] {
                    let o = cms::open(&der, &store(who))
                        .unwrap_or_else(|e| panic!("{alg} {padding:?} {id:?} as {who}: {e}"));
                    assert_eq!(o.plaintext.as_slice(), offer.as_slice());
                    assert_eq!(o.cek.as_bytes(), cek.as_bytes());
                    assert_eq!(o.kind, kind);
                }
                assert!(matches!(
                    cms::open(&der, &store("proxy2")),
                    Err(CmsError::NotRecipient)
                ));
                assert_eq!(
                    cms::open_with_cek(&der, &cek).unwrap().as_slice(),
                    offer.as_slice()
                );
            }
        }
    }
}

#[test]
fn seal_encrypted_round_trips_and_rejects_a_wrong_key() {
    let offer = std::fs::read(vectors().join("msgs/offer.sdp")).unwrap();
    for alg in ContentAlg::ALL {
        let cek = Cek::generate(alg).unwrap();
        let der = cms::seal_encrypted(&offer, &cek).unwrap();
        let insp = cms::inspect(&der).unwrap();
        assert_eq!(insp.kind, CmsKind::EncryptedData);
        assert_eq!(insp.content_alg, Ok(alg));
        assert_eq!(
            cms::open_with_cek(&der, &cek).unwrap().as_slice(),
            offer.as_slice()
        );
        assert!(matches!(
            cms::open(&der, &store("callee")),
            Err(CmsError::NotRecipient)
        ));
        if alg.is_aead() {
            // Authenticated: any other key fails, deterministically.
            let other = Cek::generate(alg).unwrap();
            assert!(matches!(
                cms::open_with_cek(&der, &other),
                Err(CmsError::Decrypt)
            ));
            let mut tampered = der.clone();
            let n = tampered.len();
            tampered[n - 1] ^= 1;
            assert!(matches!(
                cms::open_with_cek(&tampered, &cek),
                Err(CmsError::Decrypt)
            ));
        }
    }
}

#[test]
fn seal_with_no_recipients_is_refused() {
    let cek = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
    assert!(matches!(
        cms::seal(b"x", &[], &cek),
        Err(CmsError::NoRecipients)
    ));
}
