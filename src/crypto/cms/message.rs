//! Decoding a CMS `ContentInfo` (RFC 5652 §3) into the three structures sipsd opens.

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfo};
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, EncodingRules};

use super::der_set;
use super::error::CmsError;
use super::oids;
use super::CmsKind;

/// A CMS message decoded once: what [`inspect`](super::inspect), [`open`](super::open) and
/// the other openers work on, so that a message is parsed a single time however many
/// questions are asked of it. Its content-encryption parameters are decoded the first time
/// they are needed and kept (`content_params`).
pub struct CmsMessage(
    pub(crate) Message,
    pub(crate) std::cell::OnceCell<super::content::ContentParams>,
);

impl CmsMessage {
    /// Decodes a ContentInfo (DER, else BER) holding EnvelopedData, AuthEnvelopedData or
    /// EncryptedData.
    pub fn parse(bytes: &[u8]) -> Result<CmsMessage, CmsError> {
        Message::parse(bytes).map(|m| CmsMessage(m, std::cell::OnceCell::new()))
    }

    /// The structure it is.
    pub fn kind(&self) -> CmsKind {
        self.0.kind()
    }
}

impl std::fmt::Debug for CmsMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmsMessage")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// RFC 5652 `ContentInfo` with its content borrowed from the input (the `cms` crate's
/// `ContentInfo` copies it into an `Any`).
#[derive(der::Sequence)]
struct ContentInfoRef<'a> {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: AnyRef<'a>,
}

/// A decoded EnvelopedData, AuthEnvelopedData or EncryptedData.
pub(crate) enum Message {
    Enveloped(EnvelopedData),
    AuthEnveloped(AuthEnvelopedData),
    Encrypted(EncryptedData),
}

impl Message {
    /// Decodes a ContentInfo, as DER or else as BER (indefinite lengths, constructed strings).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Message, CmsError> {
        // DER (what sipsd and most senders write): the content is decoded where it lies in
        // `bytes`, not copied out first.
        let der_err = match ContentInfoRef::from_der(bytes) {
            Ok(ci) => return Message::decode(ci.content_type, ci.content, EncodingRules::Der),
            Err(e) => e,
        };
        match ContentInfo::from_ber(bytes) {
            Ok(ci) => Message::decode(ci.content_type, (&ci.content).into(), EncodingRules::Ber),
            Err(_) => Err(CmsError::der(der_err)),
        }
    }

    fn decode(
        content_type: ObjectIdentifier,
        content: AnyRef<'_>,
        rules: EncodingRules,
    ) -> Result<Message, CmsError> {
        Ok(match content_type {
            oids::ID_ENVELOPED_DATA => {
                Message::Enveloped(content.decode_as_encoding(rules).map_err(CmsError::der)?)
            }
            oids::ID_CT_AUTH_ENVELOPED_DATA => {
                Message::AuthEnveloped(content.decode_as_encoding(rules).map_err(CmsError::der)?)
            }
            oids::ID_ENCRYPTED_DATA => {
                Message::Encrypted(content.decode_as_encoding(rules).map_err(CmsError::der)?)
            }
            other => return Err(CmsError::UnsupportedContentType(other.to_string())),
        })
    }

    pub(crate) fn kind(&self) -> CmsKind {
        match self {
            Message::Enveloped(_) => CmsKind::EnvelopedData,
            Message::AuthEnveloped(_) => CmsKind::AuthEnvelopedData,
            Message::Encrypted(_) => CmsKind::EncryptedData,
        }
    }

    /// The RecipientInfos, in the `der` crate's order after a DER decode (which re-sorts a
    /// SET OF; see `der_set`), not necessarily the order on the wire; empty for EncryptedData.
    pub(crate) fn recipients(&self) -> &[RecipientInfo] {
        match self {
            Message::Enveloped(e) => e.recip_infos.0.as_slice(),
            Message::AuthEnveloped(a) => a.recip_infos.0.as_slice(),
            Message::Encrypted(_) => &[],
        }
    }

    pub(crate) fn content_info(&self) -> &EncryptedContentInfo {
        match self {
            Message::Enveloped(e) => &e.encrypted_content,
            Message::AuthEnveloped(a) => &a.auth_encrypted_content_info,
            Message::Encrypted(d) => &d.enc_content_info,
        }
    }

    /// The encrypted content (detached content is not supported).
    pub(crate) fn ciphertext(&self) -> Result<&[u8], CmsError> {
        self.content_info()
            .encrypted_content
            .as_ref()
            .map(|c| c.as_bytes())
            .ok_or_else(|| CmsError::Der("encryptedContent absent (detached content)".into()))
    }

    /// AuthEnvelopedData's `mac` (the GCM tag).
    pub(crate) fn mac(&self) -> Option<&[u8]> {
        match self {
            Message::AuthEnveloped(a) => Some(a.mac.as_bytes()),
            _ => None,
        }
    }

    /// The additional authenticated data: the DER of AuthEnvelopedData's `authAttrs`
    /// (RFC 5083 §2.2, encoded with the SET OF tag, attributes in DER order whatever order a
    /// BER sender used), or nothing.
    pub(crate) fn aad(&self) -> Result<Vec<u8>, CmsError> {
        match self {
            Message::AuthEnveloped(AuthEnvelopedData {
                auth_attrs: Some(attrs),
                ..
            }) => der_set::encode_set_of(attrs.iter()).map_err(CmsError::der),
            _ => Ok(Vec::new()),
        }
    }
}
