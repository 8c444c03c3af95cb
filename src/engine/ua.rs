//! What a user agent does: seal an offer for the callee and the chosen proxies, keep the
//! dialog's content-encryption key, encrypt and decrypt in-dialog bodies with it, and rotate it
//! after a time or a number of uses (docs/PROTOCOL.md).

use zeroize::Zeroizing;

use crate::crypto::cms::{self, Cek, CmsKind, ContentAlg, Recipient};
use crate::crypto::keys::KeyStore;
use crate::engine::proxy::RotationPolicy;
use crate::engine::{Error, Result};
use crate::sip::body::build::{inner_bytes, sip_body};
use crate::sip::body::{BodyOptions, SipBody};
use crate::sip::disclose::DisclosureRequest;

/// The dialog key as a user agent holds it.
pub struct UaSession {
    cek: Cek,
    generation: u32,
    created_at: u64,
    uses: u32,
    policy: RotationPolicy,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UaSession {
    /// Seals `plaintext` (of `content_type`) for `recipients` under a fresh key of `alg`:
    /// AuthEnvelopedData for GCM, EnvelopedData for CBC. The session holds that key.
    pub fn offer(
        content_type: &str,
        plaintext: &[u8],
        recipients: &[Recipient],
        alg: ContentAlg,
        disclose: Option<&DisclosureRequest>,
        opts: &BodyOptions,
    ) -> Result<(UaSession, SipBody)> {
        let session = UaSession::with_key(Cek::generate(alg)?, 1);
        let body = session.seal_with_key(content_type, plaintext, recipients, disclose, opts)?;
        Ok((session, body))
    }

    /// Opens an offer as its callee (or any recipient) and keeps its key for the dialog.
    pub fn accept(der: &[u8], keys: &KeyStore) -> Result<(UaSession, Zeroizing<Vec<u8>>)> {
        let opened = cms::open(der, keys)?;
        Ok((UaSession::with_key(opened.cek, 1), opened.plaintext))
    }

    /// A session around a key already known (e.g. read back from a key file).
    pub fn with_key(cek: Cek, generation: u32) -> UaSession {
        UaSession {
            cek,
            generation,
            created_at: now(),
            uses: 0,
            policy: RotationPolicy::default(),
        }
    }

    /// A session around a key kept elsewhere (an edge's shared cache): its generation, when
    /// that generation was made (Unix seconds), how often it was used, and the rotation policy.
    pub fn resume(
        cek: Cek,
        generation: u32,
        created_at: u64,
        uses: u32,
        policy: RotationPolicy,
    ) -> UaSession {
        UaSession {
            cek,
            generation,
            created_at,
            uses,
            policy,
        }
    }

    /// Sets when [`UaSession::rotation_due`] says yes.
    pub fn set_policy(&mut self, policy: RotationPolicy) {
        self.policy = policy;
    }

    /// The current key (the UA's own secret: never log it).
    pub fn cek(&self) -> &Cek {
        &self.cek
    }

    /// 1 for the offer's key, +1 per rotation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// An in-dialog body: EncryptedData under the dialog key (no recipients).
    pub fn encrypt(
        &mut self,
        content_type: &str,
        plaintext: &[u8],
        opts: &BodyOptions,
    ) -> Result<SipBody> {
        self.encrypt_with(content_type, plaintext, opts, cms::seal_encrypted)
    }

    fn encrypt_with(
        &mut self,
        content_type: &str,
        plaintext: &[u8],
        opts: &BodyOptions,
        seal: impl FnOnce(&[u8], &Cek) -> std::result::Result<Vec<u8>, cms::CmsError>,
    ) -> Result<SipBody> {
        let inner = inner_bytes(content_type, plaintext, opts);
        let der = seal(&inner, &self.cek)?;
        self.uses = self.uses.saturating_add(1);
        Ok(sip_body(der, CmsKind::EncryptedData, None, opts))
    }

    /// An in-dialog body as [`UaSession::encrypt`] makes it, with the IV derived from the key,
    /// `context` and the body ([`cms::seal_encrypted_synthetic`]): sealing the same message
    /// again (a retransmission) gives the same bytes.
    pub fn encrypt_synthetic(
        &mut self,
        content_type: &str,
        plaintext: &[u8],
        context: &[u8],
        opts: &BodyOptions,
    ) -> Result<SipBody> {
        self.encrypt_with(content_type, plaintext, opts, |inner, cek| {
            cms::seal_encrypted_synthetic(inner, cek, context)
        })
    }

    /// The offer again under the session's key, for `recipients` (a re-sent or forked
    /// INVITE): whoever holds the key recognises it; nobody is asked to take a new one.
    pub fn reoffer(
        &self,
        content_type: &str,
        plaintext: &[u8],
        recipients: &[Recipient],
        disclose: Option<&DisclosureRequest>,
        opts: &BodyOptions,
    ) -> Result<SipBody> {
        self.seal_with_key(content_type, plaintext, recipients, disclose, opts)
    }

    /// Decrypts an in-dialog EncryptedData DER with the dialog key.
    pub fn decrypt(&mut self, der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let plain = cms::open_with_cek(der, &self.cek)?;
        self.uses = self.uses.saturating_add(1);
        Ok(plain)
    }

    /// Opens any later body of the dialog, as the peer (or a trusted proxy) must: EncryptedData
    /// or a body re-sent under the dialog key, or a rotation whose proof the current key
    /// opens (the session then holds the new key, generation + 1). A new key without that
    /// proof is refused ([`Error::RotationUnproven`]) and the session keeps its key.
    pub fn receive(&mut self, der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let msg = cms::CmsMessage::parse(der)?;
        if msg.kind() == cms::CmsKind::EncryptedData || !msg.has_rotation_proof() {
            if msg.kind() != cms::CmsKind::EncryptedData && !msg.is_authenticated()? {
                // CBC without a proof: decrypting under the dialog key proves nothing.
                return Err(Error::RotationUnproven);
            }
            return match msg.open_with_cek(&self.cek) {
                Ok(plain) => {
                    self.uses = self.uses.saturating_add(1);
                    Ok(plain)
                }
                Err(_) if msg.kind() != cms::CmsKind::EncryptedData => Err(Error::RotationUnproven),
                Err(e) => Err(e.into()),
            };
        }
        let opened = msg
            .open_rotation(&self.cek)
            .map_err(|_| Error::RotationUnproven)?;
        let policy = self.policy;
        *self = UaSession::with_key(opened.cek, self.generation + 1);
        self.policy = policy;
        Ok(opened.plaintext)
    }

    /// True once the key is older or more used than the policy allows.
    pub fn rotation_due(&self) -> bool {
        let p = self.policy;
        (p.max_age_secs > 0 && now().saturating_sub(self.created_at) >= p.max_age_secs)
            || (p.max_uses > 0 && self.uses >= p.max_uses)
    }

    /// Replaces the dialog key with a fresh one: the body returned carries `plaintext` under
    /// the new key, wrapped for `recipients` and, as the rotation proof every holder of the
    /// current key checks (docs/PROTOCOL.md §6.3), under a key derived from the current one.
    pub fn rotate(
        &mut self,
        content_type: &str,
        plaintext: &[u8],
        recipients: &[Recipient],
        opts: &BodyOptions,
    ) -> Result<SipBody> {
        let fresh = UaSession::with_key(Cek::generate(self.cek.alg())?, self.generation + 1);
        let mut with_proof = recipients.to_vec();
        with_proof.push(cms::proof_recipient(&self.cek));
        let body = fresh.seal_with_key(content_type, plaintext, &with_proof, None, opts)?;
        let policy = self.policy;
        *self = fresh;
        self.policy = policy;
        Ok(body)
    }

    fn seal_with_key(
        &self,
        content_type: &str,
        plaintext: &[u8],
        recipients: &[Recipient],
        disclose: Option<&DisclosureRequest>,
        opts: &BodyOptions,
    ) -> Result<SipBody> {
        let inner = inner_bytes(content_type, plaintext, opts);
        let der = cms::seal(&inner, recipients, &self.cek)?;
        let kind = if self.cek.alg().is_aead() {
            CmsKind::AuthEnvelopedData
        } else {
            CmsKind::EnvelopedData
        };
        Ok(sip_body(der, kind, disclose, opts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk() -> Recipient {
        Recipient::Psk {
            id: b"k".to_vec(),
            kek: Zeroizing::new(vec![7u8; 32]),
        }
    }

    #[test]
    fn rotation_is_due_after_the_configured_uses_and_replaces_the_key() {
        let opts = BodyOptions::default();
        let (mut s, _) = UaSession::offer(
            "application/sdp",
            b"v=0\r\n",
            &[psk()],
            ContentAlg::Aes256Gcm,
            None,
            &opts,
        )
        .unwrap();
        s.set_policy(RotationPolicy {
            max_age_secs: 0,
            max_uses: 3,
        });
        for _ in 0..3 {
            assert!(!s.rotation_due());
            s.encrypt("text/plain", b"x", &opts).unwrap();
        }
        assert!(s.rotation_due());
        let old = s.cek().as_bytes().to_vec();
        s.rotate("application/sdp", b"v=0\r\n", &[psk()], &opts)
            .unwrap();
        assert_eq!(s.generation(), 2);
        assert_ne!(s.cek().as_bytes(), old.as_slice());
        assert!(!s.rotation_due(), "a fresh key starts with no uses");
        println!("rotation due after 3 uses; rotate gives generation 2 with a new key");
    }

    #[test]
    fn the_peer_follows_a_proven_rotation_and_refuses_an_unproven_one() {
        let opts = BodyOptions {
            inner_mime: false,
            ..BodyOptions::default()
        };
        let (mut caller, offer) = UaSession::offer(
            "application/sdp",
            b"v=0\r\n",
            &[psk()],
            ContentAlg::Aes256Gcm,
            None,
            &opts,
        )
        .unwrap();
        let mut callee = UaSession::with_key(caller.cek().clone(), 1);
        assert_eq!(callee.receive(&offer.body).unwrap().as_slice(), b"v=0\r\n");
        let msg = caller.encrypt("text/plain", b"hi", &opts).unwrap();
        assert_eq!(callee.receive(&msg.body).unwrap().as_slice(), b"hi");
        let rotation = caller
            .rotate("application/sdp", b"v=0 two", &[psk()], &opts)
            .unwrap();
        assert_eq!(
            callee.receive(&rotation.body).unwrap().as_slice(),
            b"v=0 two"
        );
        assert_eq!(callee.generation(), 2);
        assert_eq!(callee.cek().as_bytes(), caller.cek().as_bytes());
        // A stranger's new key for the dialog: no proof, refused, the key stays.
        let (_, forged) = UaSession::offer(
            "application/sdp",
            b"v=0 evil",
            &[psk()],
            ContentAlg::Aes256Gcm,
            None,
            &opts,
        )
        .unwrap();
        let before = callee.cek().as_bytes().to_vec();
        assert!(matches!(
            callee.receive(&forged.body),
            Err(Error::RotationUnproven)
        ));
        assert_eq!(callee.cek().as_bytes(), before.as_slice());
        assert_eq!(callee.generation(), 2);
        println!("callee: offer, EncryptedData, proven rotation (gen 2) accepted; a new key without proof refused, key kept");
    }

    #[test]
    fn rotation_is_due_after_the_configured_age() {
        let mut s = UaSession::with_key(Cek::generate(ContentAlg::Aes128Gcm).unwrap(), 1);
        s.set_policy(RotationPolicy {
            max_age_secs: 60,
            max_uses: 0,
        });
        assert!(!s.rotation_due());
        s.created_at -= 61;
        assert!(s.rotation_due());
        println!("rotation due once the key is older than 60 s");
    }
}
