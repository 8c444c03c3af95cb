//! The stand-in CEK of RSAES-PKCS1-v1_5 key transport when the decryption does not give a key
//! of the content algorithm's length (bad padding, wrong key, wrong length): implicit
//! rejection, derived the way draft-irtf-cfrg-rsa-guidance-10 §7.1–7.2 derives its
//! alternative message (the "Marvin" guidance; OpenSSL 3.2+ does the same by default).
//!
//! - At key-store load, once per private key: `DH = SHA-256(I2OSP(d, k))`, with `d` the private
//!   exponent and `k` the modulus length in octets (the draft's step 3.1.1–3.1.2). Kept in a
//!   [`RejectionKey`], zeroized on drop, never shown by `Debug`.
//! - Per RSA ciphertext `C` (the KTRI's encryptedKey): `KDK = HMAC-SHA256(DH, C)` (step 3.1.3),
//!   then the draft's IRPRF with sipsd's own label:
//!   `block_i = HMAC-SHA256(KDK, I2OSP(i, 2) || "sipsd cms cek" || I2OSP(8·len, 2))`, the
//!   blocks concatenated and truncated to the CEK length `len`.
//!
//! So the same ciphertext under the same key always gives the same stand-in key (a tampered
//! key transport cannot be told from a wrong-but-valid one by decrypting it twice), another
//! private key gives another stand-in, and the label keeps it apart from the alternative
//! message the `rsa` crate derives from the same `DH` and `C` (labels "length" and "message").
//! Both HMACs run before the RSA decryption, whatever its outcome.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::CmsError;

/// sipsd's IRPRF label for the stand-in CEK.
const LABEL: &[u8] = b"sipsd cms cek";

/// `SHA-256(I2OSP(d, k))` of one RSA private key: the secret the stand-in CEKs derive from.
pub(crate) struct RejectionKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for RejectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RejectionKey(<redacted>)")
    }
}

impl RejectionKey {
    /// Derives the secret from the private exponent, left-padded to the modulus length.
    pub(crate) fn new(key: &rsa::PrivateKey) -> RejectionKey {
        let k = key.size();
        let d = Zeroizing::new(key.d().to_be_bytes());
        // d < n, so at most k significant octets; the integer's storage may be wider or narrower.
        let significant = &d[d.len().saturating_sub(k)..];
        let mut padded = Zeroizing::new(vec![0u8; k]);
        padded[k - significant.len()..].copy_from_slice(significant);
        RejectionKey(Zeroizing::new(Sha256::digest(&*padded).into()))
    }

    /// The stand-in CEK of `len` octets (at most 8191) for RSA ciphertext `ct`.
    pub(crate) fn fallback(&self, ct: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        let bits = u16::try_from(len * 8).map_err(|_| CmsError::BadKeyLength)?;
        let mut kdk = hmac(&self.0[..])?;
        kdk.update(ct);
        let kdk: Zeroizing<[u8; 32]> = Zeroizing::new(kdk.finalize().into_bytes().into());
        let mut out = Zeroizing::new(vec![0u8; len]);
        for (i, chunk) in (0u16..).zip(out.chunks_mut(32)) {
            let mut prf = hmac(&kdk[..])?;
            prf.update(&i.to_be_bytes());
            prf.update(LABEL);
            prf.update(&bits.to_be_bytes());
            let block: Zeroizing<[u8; 32]> = Zeroizing::new(prf.finalize().into_bytes().into());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(out)
    }
}

fn hmac(key: &[u8]) -> Result<Hmac<Sha256>, CmsError> {
    // HMAC takes keys of any length; the error cannot happen with a 32-byte key.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| CmsError::BadKeyLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;

    fn vector_key(name: &str) -> rsa::PrivateKey {
        let path = format!(
            "{}/tests/data/vectors/keys/{name}.key",
            env!("CARGO_MANIFEST_DIR")
        );
        rsa::PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn derivation_follows_the_documented_formula() {
        let key = vector_key("proxy1");
        let rk = RejectionKey::new(&key);
        // Recompute from the key's parts, independently of `RejectionKey`.
        let k = key.size();
        let d = key.d().to_be_bytes();
        let d = &d[d.len() - k..];
        assert_eq!(d.len(), 256);
        let dh = Sha256::digest(d);
        assert_eq!(&rk.0[..], &dh[..]);
        let ct = [0x42u8; 256];
        let mut kdk = <Hmac<Sha256> as KeyInit>::new_from_slice(&dh).unwrap();
        kdk.update(&ct);
        let kdk = kdk.finalize().into_bytes();
        let mut prf = <Hmac<Sha256> as KeyInit>::new_from_slice(&kdk).unwrap();
        prf.update(&[0, 0]);
        prf.update(b"sipsd cms cek");
        prf.update(&(16u16 * 8).to_be_bytes());
        let want = prf.finalize().into_bytes();
        assert_eq!(&rk.fallback(&ct, 16).unwrap()[..], &want[..16]);
        // 40 octets: two IRPRF blocks.
        assert_eq!(rk.fallback(&ct, 40).unwrap().len(), 40);
        assert!(matches!(
            rk.fallback(&ct, 8192),
            Err(CmsError::BadKeyLength)
        ));
        assert_eq!(format!("{rk:?}"), "RejectionKey(<redacted>)");
        println!(
            "  ok   stand-in CEK = IRPRF(HMAC-SHA256(SHA-256(I2OSP(d, k)), C), \"sipsd cms cek\") \
             recomputed by hand for proxy1"
        );
    }

    #[test]
    fn same_ciphertext_same_key_other_key_other_fallback() {
        let (a, b) = (
            RejectionKey::new(&vector_key("proxy1")),
            RejectionKey::new(&vector_key("proxy2")),
        );
        let again = RejectionKey::new(&vector_key("proxy1"));
        let (ct1, ct2) = ([1u8; 256], [2u8; 256]);
        for len in [16, 24, 32] {
            let f = a.fallback(&ct1, len).unwrap();
            assert_eq!(f.len(), len);
            assert_eq!(f, a.fallback(&ct1, len).unwrap(), "same key, same C");
            assert_eq!(f, again.fallback(&ct1, len).unwrap(), "reloaded key");
            assert_ne!(f, a.fallback(&ct2, len).unwrap(), "other C");
            assert_ne!(f, b.fallback(&ct1, len).unwrap(), "other key");
        }
        // Lengths are bound too: the 16-octet stand-in is not a prefix of the 32-octet one.
        assert_ne!(
            &a.fallback(&ct1, 32).unwrap()[..16],
            &a.fallback(&ct1, 16).unwrap()[..]
        );
        println!(
            "  ok   stand-in CEK: same (key, C) -> same bytes (also after reloading the key); \
             other C, other key or other length -> other bytes"
        );
    }
}
