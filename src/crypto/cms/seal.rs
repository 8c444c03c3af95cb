//! Sealing: encrypt content for a set of recipients (AuthEnvelopedData or EnvelopedData), or
//! under a dialog's cached key alone (EncryptedData).

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfo, RecipientInfos};
use der::asn1::OctetString;
use der::{Any, Encode};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::content;
use super::der_set;
use super::error::CmsError;
use super::oids::{self, ObjectIdentifier};
use super::recipient::Recipient;
use super::Cek;

fn content_info<T: der::Tagged + der::EncodeValue>(
    content_type: ObjectIdentifier,
    content: &T,
) -> Result<Vec<u8>, CmsError> {
    ContentInfo {
        content_type,
        content: Any::encode_from(content).map_err(CmsError::encode)?,
    }
    .to_der()
    .map_err(CmsError::encode)
}

fn octets(bytes: Vec<u8>) -> Result<OctetString, CmsError> {
    OctetString::new(bytes).map_err(CmsError::encode)
}

/// Seals `plaintext` (content type id-data) for `recipients` under `cek`.
///
/// A GCM key gives AuthEnvelopedData (RFC 5083/5084: random 12-byte nonce, 16-byte tag); a CBC
/// key gives EnvelopedData (RFC 5652/3565). Returns the DER of the ContentInfo.
pub fn seal(plaintext: &[u8], recipients: &[Recipient], cek: &Cek) -> Result<Vec<u8>, CmsError> {
    if recipients.is_empty() {
        return Err(CmsError::NoRecipients);
    }
    let infos = recipients
        .iter()
        .map(|r| r.recipient_info(cek))
        .collect::<Result<Vec<_>, _>>()?;
    // RFC 5652 §6.1: version 0 only if every RecipientInfo is a version-0 KTRI.
    let all_v0 = infos
        .iter()
        .all(|ri| matches!(ri, RecipientInfo::Ktri(k) if k.version == CmsVersion::V0));
    // In DER order (X.690 §11.6), not the `cms` crate's (see `der_set`).
    let recip_infos = RecipientInfos(der_set::set_of(infos).map_err(CmsError::encode)?);
    let enc = content::encrypt(cek, plaintext, &[])?;
    let eci = EncryptedContentInfo {
        content_type: oids::ID_DATA,
        content_enc_alg: enc.alg_id,
        encrypted_content: Some(octets(enc.ciphertext)?),
    };
    match enc.tag {
        Some(tag) => content_info(
            oids::ID_CT_AUTH_ENVELOPED_DATA,
            &AuthEnvelopedData {
                version: CmsVersion::V0,
                originator_info: None,
                recip_infos,
                auth_encrypted_content_info: eci,
                auth_attrs: None,
                mac: octets(tag)?,
                unauth_attrs: None,
            },
        ),
        None => content_info(
            oids::ID_ENVELOPED_DATA,
            &EnvelopedData {
                version: if all_v0 {
                    CmsVersion::V0
                } else {
                    CmsVersion::V2
                },
                originator_info: None,
                recip_infos,
                encrypted_content: eci,
                unprotected_attrs: None,
            },
        ),
    }
}

/// Seals `plaintext` as EncryptedData under a dialog's cached key (no recipients).
///
/// CBC: standard RFC 5652 §8. GCM: sipsd's profile — contentEncryptionAlgorithm
/// id-aesNNN-GCM with GCMParameters (12-byte nonce, ICV length 16), encryptedContent =
/// ciphertext || 16-byte tag.
pub fn seal_encrypted(plaintext: &[u8], cek: &Cek) -> Result<Vec<u8>, CmsError> {
    encrypted_data(content::encrypt(cek, plaintext, &[])?)
}

/// Seals `plaintext` as EncryptedData under `cek` like [`seal_encrypted`], with an IV (GCM:
/// nonce) that is a function of the key, `context` and the plaintext instead of random: the
/// same message sealed twice gives the same bytes, so a retransmission that is sealed again
/// (a reply re-sent by its user agent passes the edge again) is byte for byte the first one.
///
/// ```text
/// K  = HKDF-SHA256(salt = "sipsd", IKM = CEK, info = "sipsd synthetic iv v1"), 32 octets
/// IV = HMAC-SHA256(K, u32be(len(context)) || context || plaintext), first 12 (GCM) or 16 (CBC) octets
/// ```
///
/// This is the synthetic-IV idea of RFC 5297 §1.3.2 on GCM: a nonce repeats only with its
/// plaintext (up to a 2^-96 HMAC collision), so it reveals no more than "this message again";
/// `context` (the SIP message's dialog, CSeq, method and status) keeps two different messages
/// with equal bodies apart. Receivers see an ordinary EncryptedData.
pub fn seal_encrypted_synthetic(
    plaintext: &[u8],
    cek: &Cek,
    context: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let mut k = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(b"sipsd"), cek.as_bytes())
        .expand(b"sipsd synthetic iv v1", k.as_mut_slice())
        .map_err(|_| CmsError::BadKeyLength)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(k.as_slice())
        .map_err(|_| CmsError::BadKeyLength)?;
    let len =
        u32::try_from(context.len()).map_err(|_| CmsError::Encode("context too long".into()))?;
    mac.update(&len.to_be_bytes());
    mac.update(context);
    mac.update(plaintext);
    let tag = mac.finalize().into_bytes();
    let iv = &tag[..content::iv_len(cek.alg())];
    encrypted_data(content::encrypt_with_iv(cek, plaintext, &[], iv)?)
}

fn encrypted_data(enc: content::Encrypted) -> Result<Vec<u8>, CmsError> {
    let mut body = enc.ciphertext;
    if let Some(tag) = enc.tag {
        body.extend_from_slice(&tag);
    }
    content_info(
        oids::ID_ENCRYPTED_DATA,
        &EncryptedData {
            version: CmsVersion::V0,
            enc_content_info: EncryptedContentInfo {
                content_type: oids::ID_DATA,
                content_enc_alg: enc.alg_id,
                encrypted_content: Some(octets(body)?),
            },
            unprotected_attrs: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cms::{open_with_cek, ContentAlg};

    #[test]
    fn synthetic_iv_repeats_only_for_the_same_message() {
        for alg in ContentAlg::ALL {
            let cek = Cek::generate(alg).unwrap();
            let a = seal_encrypted_synthetic(b"v=0 answer", &cek, b"call;1 INVITE;200").unwrap();
            let again =
                seal_encrypted_synthetic(b"v=0 answer", &cek, b"call;1 INVITE;200").unwrap();
            let other_msg =
                seal_encrypted_synthetic(b"v=0 answer", &cek, b"call;2 INVITE;200").unwrap();
            let other_body =
                seal_encrypted_synthetic(b"v=0 answeR", &cek, b"call;1 INVITE;200").unwrap();
            let other_key = seal_encrypted_synthetic(
                b"v=0 answer",
                &Cek::generate(alg).unwrap(),
                b"call;1 INVITE;200",
            )
            .unwrap();
            assert_eq!(
                a, again,
                "{alg}: a retransmission is sealed to the same bytes"
            );
            for (what, o) in [
                ("context", &other_msg),
                ("body", &other_body),
                ("key", &other_key),
            ] {
                assert_ne!(&a, o, "{alg}: another {what} gives other bytes");
            }
            assert_eq!(open_with_cek(&a, &cek).unwrap().as_slice(), b"v=0 answer");
            assert_ne!(
                seal_encrypted(b"v=0 answer", &cek).unwrap(),
                seal_encrypted(b"v=0 answer", &cek).unwrap()
            );
        }
        println!("synthetic IV: same key+context+body -> same EncryptedData; another context, body or key -> other bytes; opens as usual (4 algorithms)");
    }
}
