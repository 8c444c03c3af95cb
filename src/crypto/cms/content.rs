//! Content encryption: AES-GCM (RFC 5084) and AES-CBC (RFC 3565) over an
//! `EncryptedContentInfo`'s algorithm identifier and parameters. GCM itself is computed by
//! `gcm_backend` (RustCrypto, or AWS-LC with the cargo feature `aws-lc`).

use aes::{Aes128, Aes256};
use cbc::cipher::{block_padding::Pkcs7, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use der::asn1::OctetString;
use der::{Any, Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::cek::{random_bytes, Cek, ContentAlg};
use super::error::CmsError;
use super::gcm_backend;

/// GCM nonce length sipsd writes and accepts (RFC 5084 §3.2 recommends 12).
pub(crate) const GCM_NONCE_LEN: usize = 12;
/// GCM tag length sipsd writes.
pub(crate) const GCM_TAG_LEN: usize = 16;
/// AES block (and CBC IV) length.
pub(crate) const AES_BLOCK: usize = 16;

/// `GCMParameters` (RFC 5084 §3.2).
///
/// ```text
/// GCMParameters ::= SEQUENCE {
///   aes-nonce        OCTET STRING, -- recommended size is 12 octets
///   aes-ICVlen       AES-GCM-ICVlen DEFAULT 12 }
/// AES-GCM-ICVlen ::= INTEGER (12 | 13 | 14 | 15 | 16)
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct GcmParameters {
    /// `aes-nonce`.
    pub nonce: OctetString,
    /// `aes-ICVlen`: tag length in bytes.
    #[asn1(default = "default_icv_len")]
    pub icv_len: u8,
}

fn default_icv_len() -> u8 {
    12
}

/// The decoded content-encryption algorithm and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ContentParams {
    Gcm {
        alg: ContentAlg,
        nonce: [u8; GCM_NONCE_LEN],
        tag_len: usize,
    },
    Cbc {
        alg: ContentAlg,
        iv: [u8; AES_BLOCK],
    },
}

impl ContentParams {
    pub(crate) fn alg(&self) -> ContentAlg {
        match self {
            ContentParams::Gcm { alg, .. } | ContentParams::Cbc { alg, .. } => *alg,
        }
    }
}

/// The algorithm named by a `contentEncryptionAlgorithm`, without looking at its parameters.
pub(crate) fn content_alg(ai: &AlgorithmIdentifierOwned) -> Result<ContentAlg, CmsError> {
    ContentAlg::from_oid(&ai.oid).ok_or_else(|| CmsError::UnsupportedContentAlg(ai.oid.to_string()))
}

/// Decodes a `contentEncryptionAlgorithm` and its parameters.
pub(crate) fn parse_params(ai: &AlgorithmIdentifierOwned) -> Result<ContentParams, CmsError> {
    let alg = content_alg(ai)?;
    let params = ai.parameters.as_ref();
    if alg.is_aead() {
        let p = params.ok_or(CmsError::BadAlgParams("GCM parameters missing"))?;
        let gp: GcmParameters = p
            .decode_as()
            .map_err(|_| CmsError::BadAlgParams("GCM parameters malformed"))?;
        let nonce = gp
            .nonce
            .as_bytes()
            .try_into()
            .map_err(|_| CmsError::BadAlgParams("GCM nonce must be 12 bytes"))?;
        if !(12..=16).contains(&gp.icv_len) {
            return Err(CmsError::BadAlgParams("GCM ICV length must be 12 to 16"));
        }
        Ok(ContentParams::Gcm {
            alg,
            nonce,
            tag_len: usize::from(gp.icv_len),
        })
    } else {
        let p = params.ok_or(CmsError::BadAlgParams("CBC IV missing"))?;
        let iv: OctetString = p
            .decode_as()
            .map_err(|_| CmsError::BadAlgParams("CBC IV must be an OCTET STRING"))?;
        let iv = iv
            .as_bytes()
            .try_into()
            .map_err(|_| CmsError::BadAlgParams("CBC IV must be 16 bytes"))?;
        Ok(ContentParams::Cbc { alg, iv })
    }
}

/// Decrypts (and for GCM authenticates) `ciphertext` under `cek` into a new buffer.
///
/// For GCM, `tag` is the authentication tag (AuthEnvelopedData's `mac`) and `aad` the DER of
/// the `authAttrs`, if any. For CBC both are ignored (`tag` must be `None`).
pub(crate) fn decrypt(
    cek: &Cek,
    params: &ContentParams,
    ciphertext: &[u8],
    tag: Option<&[u8]>,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = decrypt_in_place(cek, params, &mut buf, tag, aad)?;
    buf.truncate(len);
    Ok(buf)
}

/// [`decrypt`] in place: `buf` holds the ciphertext and gets the plaintext, which is its first
/// bytes; returns the plaintext's length (CBC padding removed). On an error `buf` holds the
/// ciphertext still (GCM checks the tag before it releases plaintext; AWS-LC zeroes the buffer
/// instead, see `gcm_backend`) or a partial CBC decryption: the caller zeroizes it either way.
pub(crate) fn decrypt_in_place(
    cek: &Cek,
    params: &ContentParams,
    buf: &mut [u8],
    tag: Option<&[u8]>,
    aad: &[u8],
) -> Result<usize, CmsError> {
    if cek.alg() != params.alg() {
        return Err(CmsError::CekAlgMismatch);
    }
    let key = cek.as_bytes();
    match params {
        ContentParams::Gcm {
            alg,
            nonce,
            tag_len,
        } => {
            let tag = tag.ok_or(CmsError::Decrypt)?;
            if tag.len() != *tag_len {
                return Err(CmsError::Decrypt);
            }
            gcm_backend::open(*alg, key, nonce, aad, buf, tag)?;
            Ok(buf.len())
        }
        ContentParams::Cbc { alg, iv } => {
            if buf.is_empty() || buf.len() % AES_BLOCK != 0 {
                return Err(CmsError::Decrypt);
            }
            let len = match alg {
                ContentAlg::Aes128Cbc => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                    .map_err(|_| CmsError::BadKeyLength)?
                    .decrypt_padded::<Pkcs7>(buf)
                    .map_err(|_| CmsError::Decrypt)?
                    .len(),
                _ => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                    .map_err(|_| CmsError::BadKeyLength)?
                    .decrypt_padded::<Pkcs7>(buf)
                    .map_err(|_| CmsError::Decrypt)?
                    .len(),
            };
            Ok(len)
        }
    }
}

/// The output of content encryption.
pub(crate) struct Encrypted {
    /// `contentEncryptionAlgorithm` with its parameters (IV or GCMParameters).
    pub alg_id: AlgorithmIdentifierOwned,
    /// The ciphertext (for GCM without the tag).
    pub ciphertext: Vec<u8>,
    /// The GCM tag (16 bytes); `None` for CBC.
    pub tag: Option<Vec<u8>>,
}

fn alg_id_with<P: Encode>(
    alg: ContentAlg,
    params: &P,
) -> Result<AlgorithmIdentifierOwned, CmsError> {
    let der = params.to_der().map_err(CmsError::encode)?;
    Ok(AlgorithmIdentifierOwned {
        oid: alg.oid(),
        parameters: Some(Any::from_der(&der).map_err(CmsError::encode)?),
    })
}

/// Encrypts `plaintext` under `cek` with a fresh random IV or nonce.
pub(crate) fn encrypt(cek: &Cek, plaintext: &[u8], aad: &[u8]) -> Result<Encrypted, CmsError> {
    let iv = random_bytes(iv_len(cek.alg()))?;
    encrypt_with_iv(cek, plaintext, aad, &iv)
}

/// The IV (CBC) or nonce (GCM) length of `alg`.
pub(crate) fn iv_len(alg: ContentAlg) -> usize {
    if alg.is_aead() {
        GCM_NONCE_LEN
    } else {
        AES_BLOCK
    }
}

/// Encrypts `plaintext` under `cek` with the given IV or nonce ([`iv_len`] bytes). The caller
/// guarantees it never repeats with another plaintext under the key.
pub(crate) fn encrypt_with_iv(
    cek: &Cek,
    plaintext: &[u8],
    aad: &[u8],
    iv: &[u8],
) -> Result<Encrypted, CmsError> {
    let key = cek.as_bytes();
    let alg = cek.alg();
    if iv.len() != iv_len(alg) {
        return Err(CmsError::BadAlgParams("IV or nonce of the wrong length"));
    }
    if alg.is_aead() {
        let nonce_bytes = iv;
        let nonce: &[u8; GCM_NONCE_LEN] = nonce_bytes
            .try_into()
            .map_err(|_| CmsError::BadAlgParams("GCM nonce must be 12 bytes"))?;
        let mut buf = plaintext.to_vec();
        let tag = gcm_backend::seal(alg, key, nonce, aad, &mut buf)?;
        let params = GcmParameters {
            nonce: OctetString::new(nonce_bytes).map_err(CmsError::encode)?,
            icv_len: GCM_TAG_LEN as u8,
        };
        Ok(Encrypted {
            alg_id: alg_id_with(alg, &params)?,
            ciphertext: buf,
            tag: Some(tag.to_vec()),
        })
    } else {
        let ciphertext = match alg {
            ContentAlg::Aes128Cbc => cbc::Encryptor::<Aes128>::new_from_slices(key, iv)
                .map_err(|_| CmsError::BadKeyLength)?
                .encrypt_padded_vec::<Pkcs7>(plaintext),
            _ => cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
                .map_err(|_| CmsError::BadKeyLength)?
                .encrypt_padded_vec::<Pkcs7>(plaintext),
        };
        let params = OctetString::new(iv).map_err(CmsError::encode)?;
        Ok(Encrypted {
            alg_id: alg_id_with(alg, &params)?,
            ciphertext,
            tag: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(alg: ContentAlg, pt: &[u8]) {
        let cek = Cek::generate(alg).unwrap();
        let e = encrypt(&cek, pt, b"aad").unwrap();
        let p = parse_params(&e.alg_id).unwrap();
        assert_eq!(p.alg(), alg);
        let out = decrypt(&cek, &p, &e.ciphertext, e.tag.as_deref(), b"aad").unwrap();
        assert_eq!(out.as_slice(), pt);
    }

    #[test]
    fn all_algorithms_round_trip() {
        for alg in ContentAlg::ALL {
            round_trip(alg, b"");
            round_trip(alg, b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n");
            round_trip(alg, &[0x55u8; 16]);
        }
    }

    #[test]
    fn gcm_parameters_der_matches_openssl() {
        // As OpenSSL writes it: SEQUENCE { OCTET STRING (12), INTEGER 16 }.
        let gp = GcmParameters {
            nonce: OctetString::new([1u8; 12]).unwrap(),
            icv_len: 16,
        };
        let der = gp.to_der().unwrap();
        let mut want = vec![0x30, 0x11, 0x04, 0x0c];
        want.extend_from_slice(&[1u8; 12]);
        want.extend_from_slice(&[0x02, 0x01, 0x10]);
        assert_eq!(der, want);
        // The DEFAULT (12) is omitted and decodes back.
        let gp12 = GcmParameters {
            nonce: OctetString::new([1u8; 12]).unwrap(),
            icv_len: 12,
        };
        let der12 = gp12.to_der().unwrap();
        assert_eq!(der12.len(), 2 + 14);
        assert_eq!(GcmParameters::from_der(&der12).unwrap(), gp12);
    }

    #[test]
    fn tampered_gcm_fails_as_decrypt() {
        let cek = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
        let e = encrypt(&cek, b"hello", &[]).unwrap();
        let p = parse_params(&e.alg_id).unwrap();
        let mut tag = e.tag.clone().unwrap();
        tag[0] ^= 1;
        assert!(matches!(
            decrypt(&cek, &p, &e.ciphertext, Some(&tag), &[]),
            Err(CmsError::Decrypt)
        ));
        let mut ct = e.ciphertext.clone();
        ct[0] ^= 1;
        assert!(matches!(
            decrypt(&cek, &p, &ct, e.tag.as_deref(), &[]),
            Err(CmsError::Decrypt)
        ));
        assert!(matches!(
            decrypt(&cek, &p, &e.ciphertext, e.tag.as_deref(), b"other aad"),
            Err(CmsError::Decrypt)
        ));
    }

    #[test]
    fn truncated_or_long_gcm_tag_fails_as_decrypt() {
        // The parameters say 16 bytes: a valid tag's prefix is refused (whichever backend
        // would compute GCM), as is a tag with a byte too many.
        for alg in [ContentAlg::Aes128Gcm, ContentAlg::Aes256Gcm] {
            let cek = Cek::generate(alg).unwrap();
            let e = encrypt(&cek, &[0x42u8; 1000], b"aad").unwrap();
            let p = parse_params(&e.alg_id).unwrap();
            let tag = e.tag.clone().unwrap();
            for len in [0, 1, 12, 15] {
                assert!(matches!(
                    decrypt(&cek, &p, &e.ciphertext, Some(&tag[..len]), b"aad"),
                    Err(CmsError::Decrypt)
                ));
            }
            let mut long = tag.clone();
            long.push(0);
            assert!(matches!(
                decrypt(&cek, &p, &e.ciphertext, Some(&long), b"aad"),
                Err(CmsError::Decrypt)
            ));
            assert!(matches!(
                decrypt(&cek, &p, &e.ciphertext, None, b"aad"),
                Err(CmsError::Decrypt)
            ));
            // the ciphertext one byte short or long
            let ct = &e.ciphertext;
            assert!(matches!(
                decrypt(&cek, &p, &ct[..ct.len() - 1], Some(&tag), b"aad"),
                Err(CmsError::Decrypt)
            ));
            let mut longer = ct.clone();
            longer.push(0);
            assert!(matches!(
                decrypt(&cek, &p, &longer, Some(&tag), b"aad"),
                Err(CmsError::Decrypt)
            ));
        }
    }

    #[test]
    fn wrong_cek_and_mismatch() {
        let cek = Cek::generate(ContentAlg::Aes128Cbc).unwrap();
        let e = encrypt(&cek, b"some plaintext", &[]).unwrap();
        let p = parse_params(&e.alg_id).unwrap();
        let other = Cek::generate(ContentAlg::Aes256Cbc).unwrap();
        assert!(matches!(
            decrypt(&other, &p, &e.ciphertext, None, &[]),
            Err(CmsError::CekAlgMismatch)
        ));
        assert!(matches!(
            decrypt(&cek, &p, &e.ciphertext[..15], None, &[]),
            Err(CmsError::Decrypt)
        ));
    }

    #[test]
    fn bad_params_are_reported() {
        let cbc = AlgorithmIdentifierOwned {
            oid: ContentAlg::Aes256Cbc.oid(),
            parameters: None,
        };
        assert!(matches!(parse_params(&cbc), Err(CmsError::BadAlgParams(_))));
        let short_iv =
            alg_id_with(ContentAlg::Aes256Cbc, &OctetString::new([0u8; 8]).unwrap()).unwrap();
        assert!(matches!(
            parse_params(&short_iv),
            Err(CmsError::BadAlgParams(_))
        ));
        let bad_icv = alg_id_with(
            ContentAlg::Aes128Gcm,
            &GcmParameters {
                nonce: OctetString::new([0u8; 12]).unwrap(),
                icv_len: 4,
            },
        )
        .unwrap();
        assert!(matches!(
            parse_params(&bad_icv),
            Err(CmsError::BadAlgParams(_))
        ));
        let unknown = AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5911::DES_EDE_3_CBC,
            parameters: None,
        };
        assert!(matches!(
            parse_params(&unknown),
            Err(CmsError::UnsupportedContentAlg(_))
        ));
    }
}
