//! AES-GCM with a detached tag (RFC 5084 content encryption): the one place that chooses the
//! implementation.
//!
//! Without the cargo feature `aws-lc`, RustCrypto's `aes-gcm` (over the `aes` crate's AES-NI
//! backend and `polyval`) does everything. With `aws-lc`, AWS-LC's stitched AES-GCM assembly
//! (through `aws-lc-rs`' `LessSafeKey`) seals and opens with 16-byte tags, which is what sipsd,
//! OpenSSL and most senders write; it processes several blocks at a time where RustCrypto does
//! one (the gain for a 1 KB body is not measured yet). What stays on
//! RustCrypto with the feature on: opening with a truncated tag (12 to 15 bytes, which RFC 5084
//! allows and sipsd accepts). aws-lc-rs builds its AES-GCM contexts for the full 16-byte tag
//! and refuses any other length, so it cannot check a shorter one.
//!
//! Both implementations check the tag in constant time and release no plaintext from a message
//! whose tag does not match. On such a failure RustCrypto leaves the ciphertext in the buffer
//! (it checks before decrypting) and AWS-LC zeroes it; callers treat the buffer as garbage and
//! zeroize it either way.
//!
//! Key memory: RustCrypto's key schedule is zeroized on drop (feature `zeroize`). AWS-LC keeps
//! the key schedule and GHASH table in an `EVP_AEAD_CTX` it allocated; aws-lc-rs frees it with
//! `EVP_AEAD_CTX_free` when the key is dropped, and AWS-LC's `OPENSSL_free` overwrites every
//! allocation (`OPENSSL_cleanse`) before it frees it.

use super::cek::ContentAlg;
use super::content::{GCM_NONCE_LEN, GCM_TAG_LEN};
use super::error::CmsError;

/// Which implementation seals or opens a GCM body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GcmBackend {
    /// RustCrypto's `aes-gcm` (feature `aws-lc` off, or a truncated tag).
    RustCrypto,
    /// AWS-LC through `aws-lc-rs` (feature `aws-lc`, 16-byte tag).
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

/// The implementation used for a tag of `tag_len` bytes.
pub(crate) fn backend(tag_len: usize) -> GcmBackend {
    #[cfg(feature = "aws-lc")]
    if tag_len == GCM_TAG_LEN {
        return GcmBackend::AwsLc;
    }
    let _ = tag_len;
    GcmBackend::RustCrypto
}

/// Checks `tag` (12 to 16 bytes) over `buf` and `aad` under `key` and `nonce` and decrypts `buf`
/// in place. `alg` is one of the GCM algorithms and `key` has its length.
///
/// Errors: [`CmsError::Decrypt`] when the tag does not match, [`CmsError::BadKeyLength`] for a
/// key of the wrong length, [`CmsError::BadAlgParams`] for a tag length outside 12 to 16.
pub(crate) fn open(
    alg: ContentAlg,
    key: &[u8],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), CmsError> {
    match backend(tag.len()) {
        GcmBackend::RustCrypto => rust_crypto::open(alg, key, nonce, aad, buf, tag),
        #[cfg(feature = "aws-lc")]
        GcmBackend::AwsLc => aws_lc::open(alg, key, nonce, aad, buf, tag),
    }
}

/// Encrypts `buf` in place under `key` and `nonce`, authenticating `aad` too; returns the
/// 16-byte tag. The caller guarantees the nonce never repeats under the key.
///
/// Errors: [`CmsError::BadKeyLength`] for a key of the wrong length, [`CmsError::Encode`] for
/// a plaintext longer than GCM allows.
pub(crate) fn seal(
    alg: ContentAlg,
    key: &[u8],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; GCM_TAG_LEN], CmsError> {
    match backend(GCM_TAG_LEN) {
        GcmBackend::RustCrypto => rust_crypto::seal(alg, key, nonce, aad, buf),
        #[cfg(feature = "aws-lc")]
        GcmBackend::AwsLc => aws_lc::seal(alg, key, nonce, aad, buf),
    }
}

/// The error of a GCM encryption that failed: only a plaintext too long for GCM (2^36 - 32
/// bytes) makes either implementation refuse.
fn too_long() -> CmsError {
    CmsError::Encode("plaintext too long for GCM".into())
}

/// RustCrypto's `aes-gcm`.
mod rust_crypto {
    use aes::{Aes128, Aes256};
    use aes_gcm::aead::{consts, inout::InOutBuf, AeadInOut, KeyInit};
    use aes_gcm::AesGcm;

    use super::{too_long, CmsError, ContentAlg, GCM_NONCE_LEN, GCM_TAG_LEN};

    // The tag length is a type parameter in `aes-gcm`: one instance per length RFC 5084 allows.
    macro_rules! gcm_open {
        ($aes:ty, $tag:ty, $key:expr, $nonce:expr, $aad:expr, $buf:expr, $tagbytes:expr) => {{
            let c = AesGcm::<$aes, consts::U12, $tag>::new_from_slice($key)
                .map_err(|_| CmsError::BadKeyLength)?;
            let nonce = aes_gcm::Nonce::<consts::U12>::from(*$nonce);
            let tag = aes_gcm::Tag::<$tag>::try_from($tagbytes).map_err(|_| CmsError::Decrypt)?;
            c.decrypt_inout_detached(&nonce, $aad, InOutBuf::from($buf), &tag)
                .map_err(|_| CmsError::Decrypt)
        }};
    }

    macro_rules! gcm_open_tag {
        ($aes:ty, $tag_len:expr, $($args:expr),*) => {
            match $tag_len {
                12 => gcm_open!($aes, consts::U12, $($args),*),
                13 => gcm_open!($aes, consts::U13, $($args),*),
                14 => gcm_open!($aes, consts::U14, $($args),*),
                15 => gcm_open!($aes, consts::U15, $($args),*),
                16 => gcm_open!($aes, consts::U16, $($args),*),
                _ => Err(CmsError::BadAlgParams("GCM ICV length must be 12 to 16")),
            }
        };
    }

    pub(super) fn open(
        alg: ContentAlg,
        key: &[u8],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CmsError> {
        match alg {
            ContentAlg::Aes128Gcm => gcm_open_tag!(Aes128, tag.len(), key, nonce, aad, buf, tag),
            _ => gcm_open_tag!(Aes256, tag.len(), key, nonce, aad, buf, tag),
        }
    }

    pub(super) fn seal(
        alg: ContentAlg,
        key: &[u8],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CmsError> {
        let nonce = aes_gcm::Nonce::<consts::U12>::from(*nonce);
        let tag = match alg {
            ContentAlg::Aes128Gcm => AesGcm::<Aes128, consts::U12>::new_from_slice(key)
                .map_err(|_| CmsError::BadKeyLength)?
                .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf))
                .map_err(|_| too_long())?,
            _ => AesGcm::<Aes256, consts::U12>::new_from_slice(key)
                .map_err(|_| CmsError::BadKeyLength)?
                .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf))
                .map_err(|_| too_long())?,
        };
        Ok(tag.into())
    }
}

/// AWS-LC through `aws-lc-rs`.
#[cfg(feature = "aws-lc")]
mod aws_lc {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

    use super::{too_long, CmsError, ContentAlg, GCM_NONCE_LEN, GCM_TAG_LEN};

    fn key(alg: ContentAlg, key: &[u8]) -> Result<LessSafeKey, CmsError> {
        let aead = match alg {
            ContentAlg::Aes128Gcm => &AES_128_GCM,
            _ => &AES_256_GCM,
        };
        // `UnboundKey::new` fails only for a key of the wrong length
        UnboundKey::new(aead, key)
            .map(LessSafeKey::new)
            .map_err(|_| CmsError::BadKeyLength)
    }

    pub(super) fn open(
        alg: ContentAlg,
        k: &[u8],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CmsError> {
        let key = key(alg, k)?;
        key.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            tag,
            buf,
        )
        .map(|_| ())
        .map_err(|_| CmsError::Decrypt)
    }

    pub(super) fn seal(
        alg: ContentAlg,
        k: &[u8],
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CmsError> {
        let key = key(alg, k)?;
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| too_long())?;
        tag.as_ref().try_into().map_err(|_| too_long())
    }
}

#[cfg(all(test, feature = "aws-lc"))]
mod tests {
    use super::*;

    /// A test case: algorithm, key, nonce, AAD, plaintext.
    type Case = (ContentAlg, Vec<u8>, [u8; 12], Vec<u8>, Vec<u8>);

    /// Every GCM algorithm with a key, nonce, AAD and plaintext of the lengths that matter:
    /// empty, less than a block, whole blocks, a SIP body's size with a partial last block.
    fn cases() -> Vec<Case> {
        let mut out = Vec::new();
        for alg in [ContentAlg::Aes128Gcm, ContentAlg::Aes256Gcm] {
            for (i, len) in [0usize, 1, 15, 16, 64, 1000, 1024, 4099]
                .into_iter()
                .enumerate()
            {
                let key: Vec<u8> = (0..alg.key_len()).map(|b| (b * 7 + i) as u8).collect();
                let nonce = [i as u8 ^ 0x5a; 12];
                let aad = if i % 2 == 0 {
                    Vec::new()
                } else {
                    vec![0xa5; 3 + i * 11]
                };
                let pt: Vec<u8> = (0..len).map(|b| (b * 31 + 1) as u8).collect();
                out.push((alg, key, nonce, aad, pt));
            }
        }
        out
    }

    #[test]
    fn backend_by_tag_length() {
        assert_eq!(backend(16), GcmBackend::AwsLc);
        for t in 12..16 {
            assert_eq!(backend(t), GcmBackend::RustCrypto);
        }
    }

    #[test]
    fn both_backends_seal_the_same() {
        for (alg, key, nonce, aad, pt) in cases() {
            let mut a = pt.clone();
            let ta = rust_crypto::seal(alg, &key, &nonce, &aad, &mut a).unwrap();
            let mut b = pt.clone();
            let tb = aws_lc::seal(alg, &key, &nonce, &aad, &mut b).unwrap();
            assert_eq!(a, b, "{alg} {} bytes: ciphertext", pt.len());
            assert_eq!(ta, tb, "{alg} {} bytes: tag", pt.len());
            // each opens the other's
            let mut c = a.clone();
            rust_crypto::open(alg, &key, &nonce, &aad, &mut c, &tb).unwrap();
            assert_eq!(c, pt);
            let mut d = b.clone();
            aws_lc::open(alg, &key, &nonce, &aad, &mut d, &ta).unwrap();
            assert_eq!(d, pt);
        }
    }

    /// What each backend says about a body: `Ok(plaintext)` or the error.
    fn open_both(
        alg: ContentAlg,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        ct: &[u8],
        tag: &[u8],
    ) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
        let run = |aws: bool| {
            let mut buf = ct.to_vec();
            let r = if aws {
                aws_lc::open(alg, key, nonce, aad, &mut buf, tag)
            } else {
                rust_crypto::open(alg, key, nonce, aad, &mut buf, tag)
            };
            r.map(|()| buf).map_err(|e| format!("{e:?}"))
        };
        (run(false), run(true))
    }

    #[test]
    fn both_backends_refuse_the_same() {
        for (alg, key, nonce, aad, pt) in cases() {
            let mut ct = pt.clone();
            let tag = seal(alg, &key, &nonce, &aad, &mut ct).unwrap();
            let decrypt = Err(format!("{:?}", CmsError::Decrypt));
            let mut tampered = Vec::new();
            if !ct.is_empty() {
                let mut c = ct.clone();
                c[ct.len() / 2] ^= 0x01;
                tampered.push((c, tag.to_vec(), aad.clone()));
            }
            for bit in [0usize, 7, 127] {
                let mut t = tag;
                t[bit / 8] ^= 1 << (bit % 8);
                tampered.push((ct.clone(), t.to_vec(), aad.clone()));
            }
            let mut other_aad = aad.clone();
            other_aad.push(0);
            tampered.push((ct.clone(), tag.to_vec(), other_aad));
            for (c, t, a) in tampered {
                let (rc, aws) = open_both(alg, &key, &nonce, &a, &c, &t);
                assert_eq!(rc, decrypt, "{alg} {} bytes", pt.len());
                assert_eq!(aws, decrypt, "{alg} {} bytes", pt.len());
            }
            // a wrong nonce
            let mut n = nonce;
            n[11] ^= 0x80;
            let (rc, aws) = open_both(alg, &key, &n, &aad, &ct, &tag);
            assert_eq!((rc, aws), (decrypt.clone(), decrypt.clone()));
            // A tag shorter than RFC 5084 allows: refused before any decryption. (A prefix of
            // 12 to 15 bytes is a valid truncated tag, `truncated_tags_stay_on_rust_crypto`;
            // `content::decrypt_in_place` refuses a tag shorter than the parameters declare.)
            for len in [0usize, 8, 11] {
                let r = open(alg, &key, &nonce, &aad, &mut ct.clone(), &tag[..len]);
                assert!(matches!(r, Err(CmsError::BadAlgParams(_))), "{len}: {r:?}");
            }
            // AWS-LC refuses every tag but the full one, which is why truncated tags stay on
            // RustCrypto
            for len in [0usize, 8, 11, 12, 15] {
                let (_, aws) = open_both(alg, &key, &nonce, &aad, &ct, &tag[..len]);
                assert_eq!(aws, decrypt, "aws-lc with a {len}-byte tag");
            }
            // the key of the other size
            let other = vec![1u8; 48 - key.len()];
            let (rc, aws) = open_both(alg, &other, &nonce, &aad, &ct, &tag);
            let bad_key = Err(format!("{:?}", CmsError::BadKeyLength));
            assert_eq!((rc, aws), (bad_key.clone(), bad_key));
        }
    }

    #[test]
    fn truncated_tags_stay_on_rust_crypto() {
        // A 12-byte tag as a sender writing aes-ICVlen 12 would: the first bytes of the full tag.
        for (alg, key, nonce, aad, pt) in cases() {
            let mut ct = pt.clone();
            let tag = seal(alg, &key, &nonce, &aad, &mut ct).unwrap();
            for len in 12..16 {
                let mut buf = ct.clone();
                open(alg, &key, &nonce, &aad, &mut buf, &tag[..len]).unwrap();
                assert_eq!(buf, pt);
                let mut t = tag[..len].to_vec();
                t[len - 1] ^= 1;
                assert!(matches!(
                    open(alg, &key, &nonce, &aad, &mut ct.clone(), &t),
                    Err(CmsError::Decrypt)
                ));
            }
        }
    }
}
