//! Sealing: encrypt content for a set of recipients (AuthEnvelopedData or EnvelopedData), or
//! under a dialog's cached key alone (EncryptedData).

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfo, RecipientInfos};
use der::asn1::OctetString;
use der::{Any, Encode};

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
    let enc = content::encrypt(cek, plaintext, &[])?;
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
