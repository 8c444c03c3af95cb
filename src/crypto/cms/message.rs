//! Decoding a CMS `ContentInfo` (RFC 5652 §3) into the three structures sipsd opens.

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfo};
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, EncodingRules};

use std::ops::Range;

use super::der_set;
use super::error::CmsError;
use super::oids;
use super::profile;
use super::recipient::RecipientRef;
use super::CmsKind;

/// A CMS message decoded once: what [`inspect`](super::inspect), [`open`](super::open) and
/// the other openers work on, so that a message is parsed a single time however many
/// questions are asked of it. Its content-encryption parameters are decoded the first time
/// they are needed and kept (`content_params`).
///
/// sipsd's own in-dialog EncryptedData and AuthEnvelopedData of the common shape (an INVITE's
/// offer) are read in place (`profile`: no copy of the content, no allocation), and
/// [`CmsMessage::parse_owned`] keeps the buffer it is given, so that
/// [`CmsMessage::into_plaintext`] decrypts the content where it lies; every other input goes
/// through the general decoder of the `der` and `cms` crates.
///
/// The decoded message is boxed: the general decoder's structures and the recipients read in
/// place are several hundred bytes, and a message is moved a dozen times on its way through a
/// proxy (into the decision, the opening, the result), where a box is one allocation.
pub struct CmsMessage(
    pub(crate) Box<Message>,
    pub(crate) std::cell::OnceCell<super::content::ContentParams>,
);

impl CmsMessage {
    /// Decodes a ContentInfo (DER, else BER) holding EnvelopedData, AuthEnvelopedData or
    /// EncryptedData.
    pub fn parse(bytes: &[u8]) -> Result<CmsMessage, CmsError> {
        match profile::read(bytes) {
            Some(p) => Ok(CmsMessage::profiled(bytes.to_vec(), p)),
            None => CmsMessage::parse_general(bytes),
        }
    }

    /// [`CmsMessage::parse`] of a buffer it may keep: what is read in place keeps it, and
    /// [`CmsMessage::into_plaintext`] decrypts the content in it.
    pub fn parse_owned(der: Vec<u8>) -> Result<CmsMessage, CmsError> {
        match profile::read(&der) {
            Some(p) => Ok(CmsMessage::profiled(der, p)),
            None => CmsMessage::parse_general(&der),
        }
    }

    /// The general decoder alone (the `der` and `cms` crates), without the profile reader:
    /// what tests compare the profile reader with.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn parse_general_only(bytes: &[u8]) -> Result<CmsMessage, CmsError> {
        CmsMessage::parse_general(bytes)
    }

    /// Whether the profile reader read it (test support, like
    /// [`CmsMessage::parse_general_only`]).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn read_in_place(&self) -> bool {
        matches!(*self.0, Message::Profile(_))
    }

    fn parse_general(bytes: &[u8]) -> Result<CmsMessage, CmsError> {
        Message::parse(bytes).map(|m| CmsMessage(Box::new(m), std::cell::OnceCell::new()))
    }

    pub(crate) fn profiled(der: Vec<u8>, p: profile::Profile) -> CmsMessage {
        CmsMessage(
            Box::new(Message::Profile(InPlace {
                der,
                content: p.content,
                auth: p.auth,
            })),
            std::cell::OnceCell::from(p.params),
        )
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

/// An EncryptedData in sipsd's profile or an AuthEnvelopedData of the common shape, read in
/// place: the whole DER, where `encryptedContent` lies in it, and for AuthEnvelopedData where
/// its recipients, authAttrs and mac lie.
pub(crate) struct InPlace {
    pub(crate) der: Vec<u8>,
    pub(crate) content: Range<usize>,
    pub(crate) auth: Option<profile::Auth>,
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
// Large variants side by side: the whole enum is boxed once in `CmsMessage`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Message {
    Enveloped(EnvelopedData),
    AuthEnveloped(AuthEnvelopedData),
    Encrypted(EncryptedData),
    /// EncryptedData in sipsd's profile or AuthEnvelopedData of the common shape, read in
    /// place (its parameters are in the `CmsMessage`'s cell from the start).
    Profile(InPlace),
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
            Message::AuthEnveloped(_) | Message::Profile(InPlace { auth: Some(_), .. }) => {
                CmsKind::AuthEnvelopedData
            }
            Message::Encrypted(_) | Message::Profile(_) => CmsKind::EncryptedData,
        }
    }

    /// The RecipientInfos, in the `der` crate's order after a DER decode (which re-sorts a
    /// SET OF; see `der_set`), not necessarily the order on the wire; none for EncryptedData.
    /// Those read in place come in the same order (`profile`).
    pub(crate) fn recipients(&self) -> Recipients<'_> {
        let (general, in_place, der): (&[RecipientInfo], &[Option<profile::RecipientAt>], _) =
            match self {
                Message::Enveloped(e) => (e.recip_infos.0.as_slice(), &[], &[][..]),
                Message::AuthEnveloped(a) => (a.recip_infos.0.as_slice(), &[], &[][..]),
                Message::Profile(InPlace {
                    der, auth: Some(a), ..
                }) => (&[], &a.recipients[..], der.as_slice()),
                Message::Encrypted(_) | Message::Profile(_) => (&[], &[], &[][..]),
            };
        Recipients {
            general: general.iter(),
            in_place: in_place.iter(),
            der,
        }
    }

    /// The decoded EncryptedContentInfo (`None` for the profile read in place, whose
    /// parameters are decoded already).
    pub(crate) fn content_info(&self) -> Option<&EncryptedContentInfo> {
        match self {
            Message::Enveloped(e) => Some(&e.encrypted_content),
            Message::AuthEnveloped(a) => Some(&a.auth_encrypted_content_info),
            Message::Encrypted(d) => Some(&d.enc_content_info),
            Message::Profile(_) => None,
        }
    }

    /// The encrypted content (detached content is not supported).
    pub(crate) fn ciphertext(&self) -> Result<&[u8], CmsError> {
        let content = match self {
            Message::Profile(p) => p.der.get(p.content.clone()),
            other => other
                .content_info()
                .and_then(|ci| ci.encrypted_content.as_ref())
                .map(|c| c.as_bytes()),
        };
        content.ok_or_else(|| CmsError::Der("encryptedContent absent (detached content)".into()))
    }

    /// AuthEnvelopedData's `mac` (the GCM tag).
    pub(crate) fn mac(&self) -> Option<&[u8]> {
        match self {
            Message::AuthEnveloped(a) => Some(a.mac.as_bytes()),
            Message::Profile(InPlace {
                der, auth: Some(a), ..
            }) => der.get(a.mac.clone()),
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
            // read in place only when they are in DER order already: the octets on the wire,
            // under the SET OF tag
            Message::Profile(InPlace {
                der,
                auth:
                    Some(profile::Auth {
                        auth_attrs: Some(attrs),
                        ..
                    }),
                ..
            }) => {
                let contents = der
                    .get(attrs.clone())
                    .ok_or_else(|| CmsError::Der("authAttrs outside the message".into()))?;
                let header = der::Header::new(
                    der::Tag::Set,
                    der::Length::try_from(contents.len()).map_err(CmsError::der)?,
                );
                let mut out = der::Encode::to_der(&header).map_err(CmsError::der)?;
                out.extend_from_slice(contents);
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// The RecipientInfos of a message, decoded or read in place ([`Message::recipients`]).
pub(crate) struct Recipients<'a> {
    general: std::slice::Iter<'a, RecipientInfo>,
    in_place: std::slice::Iter<'a, Option<profile::RecipientAt>>,
    der: &'a [u8],
}

impl<'a> Iterator for Recipients<'a> {
    type Item = RecipientRef<'a>;

    fn next(&mut self) -> Option<RecipientRef<'a>> {
        if let Some(ri) = self.general.next() {
            return Some(RecipientRef::General(ri));
        }
        let der = self.der;
        self.in_place
            .next()?
            .as_ref()
            .map(|at| RecipientRef::InPlace { der, at })
    }
}
