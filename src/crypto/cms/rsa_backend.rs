//! The RSA private key of an identity, and the RSAES-OAEP decryption KTRI unwrap needs.
//!
//! An [`RsaKey`] is always the `rsa` crate's key. With the cargo feature `aws-lc` it also
//! holds the same key loaded once, at key-store load time, into AWS-LC (`aws-lc-rs`), and
//! RSAES-OAEP whose MGF1 hash is the OAEP hash (SHA-1, SHA-256, SHA-384 or SHA-512, with or
//! without a label) is decrypted there: about 7x faster than the `rsa` crate for RSA-2048, at
//! OpenSSL's speed (docs/BENCHMARKS.md), with AWS-LC's constant-time exponentiation, blinding
//! and constant-time OAEP padding check. What stays on the `rsa` crate:
//! - OAEP with an MGF1 hash other than the OAEP hash (aws-lc-rs has no such algorithm);
//! - RSAES-PKCS1-v1_5: `recipient::ktri_unwrap` turns any failure into a stand-in key derived
//!   from the private key and the ciphertext (`implicit_rejection`, RFC 3218 §2.3.2) on top
//!   of the `rsa` crate's implicit rejection, the path
//!   tests/rsa_timing.rs measures; moving it would need that timing test redone;
//! - keys AWS-LC refuses (aws-lc-rs accepts 2048 to 8192 bits): [`RsaKey::backend`] says
//!   [`RsaBackend::Rsa`] for them, and every operation takes the `rsa` crate path.
//!
//! Key memory: the `rsa` crate zeroizes its key on drop. AWS-LC frees every allocation with
//! `OPENSSL_free`, which overwrites it (`OPENSSL_cleanse`) first, so the key's bignums are
//! wiped when the `RsaKey` is dropped; the implicit-rejection secret is a `Zeroizing` array; the PKCS#8 DER used to hand the key over is a
//! `SecretDocument`, zeroized on drop; decrypted keys are returned in [`Zeroizing`] buffers.

use std::fmt;
use std::ops::Deref;

use rsa::Oaep;
use sha1::Sha1;
use sha2::digest::{Digest, FixedOutputReset};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::error::CmsError;
use super::implicit_rejection::RejectionKey;

/// A hash function RSAES-OAEP may use (for the label and for MGF1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OaepHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// Which implementation decrypts RSAES-OAEP (same hash for MGF1) with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RsaBackend {
    /// The `rsa` crate (feature `aws-lc` off, or a key AWS-LC does not accept).
    Rsa,
    /// AWS-LC through `aws-lc-rs` (feature `aws-lc`).
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

/// Why an RSAES-OAEP decryption failed. Both mean the same to a caller (a wrong key or a
/// tampered/garbled encrypted key); they differ only in which implementation said so.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OaepDecryptError {
    /// The `rsa` crate refused the ciphertext.
    #[error("RSAES-OAEP decryption failed (rsa crate)")]
    Rsa,
    /// AWS-LC refused the ciphertext.
    #[cfg(feature = "aws-lc")]
    #[error("RSAES-OAEP decryption failed (AWS-LC)")]
    AwsLc,
}

/// An RSA private key: the `rsa` crate's, plus (feature `aws-lc`) the same key in AWS-LC.
///
/// Dereferences to the `rsa` crate's key for everything else (public key, PKCS#1 v1.5).
pub struct RsaKey {
    key: rsa::PrivateKey,
    /// The secret of this key's PKCS#1 v1.5 stand-in CEKs, derived once at load.
    rejection: RejectionKey,
    #[cfg(feature = "aws-lc")]
    aws: Option<aws_lc_rs::rsa::OaepPrivateDecryptingKey>,
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKey")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Deref for RsaKey {
    type Target = rsa::PrivateKey;

    fn deref(&self) -> &rsa::PrivateKey {
        &self.key
    }
}

impl RsaKey {
    /// Wraps a parsed key; with feature `aws-lc`, also loads it into AWS-LC (once: this is
    /// the expensive step, checking the key). A key AWS-LC refuses stays on the `rsa` crate.
    pub(crate) fn new(key: rsa::PrivateKey) -> RsaKey {
        RsaKey {
            #[cfg(feature = "aws-lc")]
            aws: aws_lc_key(&key),
            rejection: RejectionKey::new(&key),
            key,
        }
    }

    /// The stand-in CEK of `len` octets for RSAES-PKCS1-v1_5 ciphertext `ct`: a deterministic
    /// function of this private key and `ct` ([`RejectionKey::fallback`]).
    pub(crate) fn pkcs1v15_fallback(
        &self,
        ct: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        self.rejection.fallback(ct, len)
    }

    /// Which implementation [`RsaKey::decrypt_oaep`] uses when the MGF1 hash is the OAEP hash.
    pub(crate) fn backend(&self) -> RsaBackend {
        #[cfg(feature = "aws-lc")]
        if self.aws.is_some() {
            return RsaBackend::AwsLc;
        }
        RsaBackend::Rsa
    }

    /// RSAES-OAEP decryption (RFC 8017 §7.1.2) of `ct` with `hash` for the label and `mgf`
    /// for MGF1; an empty `label` is the default (no label).
    pub(crate) fn decrypt_oaep(
        &self,
        hash: OaepHash,
        mgf: OaepHash,
        label: &[u8],
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OaepDecryptError> {
        #[cfg(feature = "aws-lc")]
        if let (Some(aws), true) = (&self.aws, hash == mgf) {
            return aws_lc_decrypt(aws, hash, label, ct);
        }
        let key = &self.key;
        match hash {
            OaepHash::Sha1 => rsa_decrypt::<Sha1>(key, mgf, label, ct),
            OaepHash::Sha256 => rsa_decrypt::<Sha256>(key, mgf, label, ct),
            OaepHash::Sha384 => rsa_decrypt::<Sha384>(key, mgf, label, ct),
            OaepHash::Sha512 => rsa_decrypt::<Sha512>(key, mgf, label, ct),
        }
        .map(Zeroizing::new)
        .map_err(|_| OaepDecryptError::Rsa)
    }
}

fn rsa_decrypt<D>(
    key: &rsa::PrivateKey,
    mgf: OaepHash,
    label: &[u8],
    ct: &[u8],
) -> rsa::Result<Vec<u8>>
where
    D: Digest + FixedOutputReset,
{
    fn with<D, M>(key: &rsa::PrivateKey, label: &[u8], ct: &[u8]) -> rsa::Result<Vec<u8>>
    where
        D: Digest + FixedOutputReset,
        M: Digest + FixedOutputReset,
    {
        if label.is_empty() {
            key.decrypt(Oaep::<D, M>::new_with_mgf_hash(), ct)
        } else {
            key.decrypt(
                Oaep::<D, M>::new_with_mgf_hash_and_label(label.to_vec()),
                ct,
            )
        }
    }
    match mgf {
        OaepHash::Sha1 => with::<D, Sha1>(key, label, ct),
        OaepHash::Sha256 => with::<D, Sha256>(key, label, ct),
        OaepHash::Sha384 => with::<D, Sha384>(key, label, ct),
        OaepHash::Sha512 => with::<D, Sha512>(key, label, ct),
    }
}

/// The key in AWS-LC, through its PKCS#8 DER; `None` if AWS-LC refuses it.
#[cfg(feature = "aws-lc")]
fn aws_lc_key(key: &rsa::PrivateKey) -> Option<aws_lc_rs::rsa::OaepPrivateDecryptingKey> {
    use rsa::pkcs8::EncodePrivateKey;
    // A SecretDocument: zeroized on drop.
    let pkcs8 = key.to_pkcs8_der().ok()?;
    let private = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(pkcs8.as_bytes()).ok()?;
    aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(private).ok()
}

#[cfg(feature = "aws-lc")]
fn aws_lc_decrypt(
    key: &aws_lc_rs::rsa::OaepPrivateDecryptingKey,
    hash: OaepHash,
    label: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OaepDecryptError> {
    use aws_lc_rs::rsa::{
        OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    };
    let alg = match hash {
        OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
        OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
        OaepHash::Sha384 => &OAEP_SHA384_MGF1SHA384,
        OaepHash::Sha512 => &OAEP_SHA512_MGF1SHA512,
    };
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let label = (!label.is_empty()).then_some(label);
    let len = key
        .decrypt(alg, ct, &mut out, label)
        .map_err(|_| OaepDecryptError::AwsLc)?
        .len();
    out.truncate(len);
    #[cfg(test)]
    tests::AWS_LC_DECRYPTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;

    /// Successful AWS-LC decryptions in this test process (to show which path ran).
    #[cfg(feature = "aws-lc")]
    pub(crate) static AWS_LC_DECRYPTIONS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    const HASHES: [OaepHash; 4] = [
        OaepHash::Sha1,
        OaepHash::Sha256,
        OaepHash::Sha384,
        OaepHash::Sha512,
    ];

    fn vector_key(name: &str) -> rsa::PrivateKey {
        let path = format!(
            "{}/tests/data/vectors/keys/{name}.key",
            env!("CARGO_MANIFEST_DIR")
        );
        let pem = std::fs::read_to_string(&path).unwrap();
        rsa::PrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                rsa::PrivateKey::from_pkcs1_pem(&pem)
            })
            .unwrap()
    }

    fn encrypt(
        public: &rsa::PublicKey,
        hash: OaepHash,
        mgf: OaepHash,
        label: &[u8],
        msg: &[u8],
    ) -> Vec<u8> {
        fn with<D, M>(public: &rsa::PublicKey, label: &[u8], msg: &[u8]) -> Vec<u8>
        where
            D: Digest + FixedOutputReset,
            M: Digest + FixedOutputReset,
        {
            let pad = if label.is_empty() {
                Oaep::<D, M>::new_with_mgf_hash()
            } else {
                Oaep::<D, M>::new_with_mgf_hash_and_label(label.to_vec())
            };
            public
                .encrypt(&mut getrandom::SysRng, pad, msg)
                .expect("encrypt")
        }
        fn outer<D: Digest + FixedOutputReset>(
            public: &rsa::PublicKey,
            mgf: OaepHash,
            label: &[u8],
            msg: &[u8],
        ) -> Vec<u8> {
            match mgf {
                OaepHash::Sha1 => with::<D, Sha1>(public, label, msg),
                OaepHash::Sha256 => with::<D, Sha256>(public, label, msg),
                OaepHash::Sha384 => with::<D, Sha384>(public, label, msg),
                OaepHash::Sha512 => with::<D, Sha512>(public, label, msg),
            }
        }
        match hash {
            OaepHash::Sha1 => outer::<Sha1>(public, mgf, label, msg),
            OaepHash::Sha256 => outer::<Sha256>(public, mgf, label, msg),
            OaepHash::Sha384 => outer::<Sha384>(public, mgf, label, msg),
            OaepHash::Sha512 => outer::<Sha512>(public, mgf, label, msg),
        }
    }

    #[test]
    fn backend_follows_the_feature() {
        let key = RsaKey::new(vector_key("proxy1"));
        #[cfg(feature = "aws-lc")]
        assert_eq!(key.backend(), RsaBackend::AwsLc);
        #[cfg(not(feature = "aws-lc"))]
        assert_eq!(key.backend(), RsaBackend::Rsa);
        println!(
            "RSA-2048 vector key proxy1: backend {:?} ({key:?})",
            key.backend()
        );
    }

    #[test]
    fn oaep_round_trips_for_every_hash_pair_and_label() {
        let key = RsaKey::new(vector_key("proxy1"));
        let public = key.as_public_key().clone();
        let cek = [0x5au8; 32];
        let mut n = 0;
        for hash in HASHES {
            for mgf in HASHES {
                for label in [&b""[..], b"sipsd"] {
                    let ct = encrypt(&public, hash, mgf, label, &cek);
                    let pt = key.decrypt_oaep(hash, mgf, label, &ct).unwrap();
                    assert_eq!(&pt[..], &cek[..], "{hash:?}/{mgf:?} label {label:?}");
                    // Another label, another hash or a flipped bit: refused.
                    assert!(key.decrypt_oaep(hash, mgf, b"other", &ct).is_err());
                    let other = if hash == OaepHash::Sha1 {
                        OaepHash::Sha256
                    } else {
                        OaepHash::Sha1
                    };
                    assert!(key.decrypt_oaep(other, mgf, label, &ct).is_err());
                    let mut bad = ct.clone();
                    bad[100] ^= 1;
                    assert!(key.decrypt_oaep(hash, mgf, label, &bad).is_err());
                    n += 1;
                }
            }
        }
        println!(
            "OAEP decrypt ({:?} backend for same-hash MGF1): {n} hash/MGF1/label combinations \
             round-trip; wrong label, wrong hash and a flipped ciphertext bit are refused",
            key.backend()
        );
    }

    #[test]
    fn wrong_key_and_wrong_length_are_errors() {
        let key = RsaKey::new(vector_key("proxy1"));
        let other = RsaKey::new(vector_key("proxy2"));
        let ct = encrypt(
            other.as_public_key(),
            OaepHash::Sha256,
            OaepHash::Sha256,
            b"",
            &[1u8; 16],
        );
        assert!(key
            .decrypt_oaep(OaepHash::Sha256, OaepHash::Sha256, b"", &ct)
            .is_err());
        for len in [0usize, 1, 255, 257, 512] {
            assert!(key
                .decrypt_oaep(OaepHash::Sha1, OaepHash::Sha1, b"", &vec![7u8; len])
                .is_err());
        }
        println!("OAEP: another key's ciphertext and ciphertexts of 0..512 bytes are refused");
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_decrypts_same_hash_oaep() {
        use std::sync::atomic::Ordering;
        let key = RsaKey::new(vector_key("callee"));
        assert_eq!(key.backend(), RsaBackend::AwsLc);
        let ct = encrypt(
            key.as_public_key(),
            OaepHash::Sha256,
            OaepHash::Sha256,
            b"",
            &[9u8; 16],
        );
        let before = AWS_LC_DECRYPTIONS.load(Ordering::Relaxed);
        let pt = key
            .decrypt_oaep(OaepHash::Sha256, OaepHash::Sha256, b"", &ct)
            .unwrap();
        assert_eq!(&pt[..], &[9u8; 16]);
        assert!(AWS_LC_DECRYPTIONS.load(Ordering::Relaxed) > before);
        // A failure is AWS-LC's too.
        let mut bad = ct.clone();
        bad[0] ^= 0x80;
        assert!(matches!(
            key.decrypt_oaep(OaepHash::Sha256, OaepHash::Sha256, b"", &bad),
            Err(OaepDecryptError::AwsLc)
        ));
        println!("aws-lc: OAEP-SHA256 decrypted by AWS-LC, its failures are AwsLc errors");
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn small_keys_stay_on_the_rsa_crate() {
        let small = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
        let key = RsaKey::new(small);
        assert_eq!(key.backend(), RsaBackend::Rsa);
        let ct = encrypt(
            key.as_public_key(),
            OaepHash::Sha1,
            OaepHash::Sha1,
            b"",
            &[3u8; 16],
        );
        let pt = key
            .decrypt_oaep(OaepHash::Sha1, OaepHash::Sha1, b"", &ct)
            .unwrap();
        assert_eq!(&pt[..], &[3u8; 16]);
        println!(
            "aws-lc: a 1024-bit key (AWS-LC accepts 2048..8192) is decrypted by the rsa crate"
        );
    }
}
