//! SignedData (RFC 5652 §5): a detached signature over a MIME entity, which RFC 8551 §3.5.3
//! carries beside the entity in a `multipart/signed` body before the whole is encrypted
//! (sign-then-encrypt), and its verification against trusted certificates.
//!
//! What sipsd signs (docs/PROTOCOL.md §9):
//!
//! - `encapContentInfo`: id-data without content (detached): the signed bytes are the MIME
//!   entity that carries the SDP, headers included, as the first part of the multipart; so the
//!   plaintext never passes through the `der` crate's owned types, which are not zeroized;
//! - one SignerInfo, version 1, named by the certificate's issuer and serial number, digest
//!   SHA-256, signed attributes content-type (id-data) and message-digest only (no signing
//!   time: freshness belongs to SIP, CSeq and the SDP's `o=` version), signature
//!   RSASSA-PKCS1-v1_5 with SHA-256 (`sha256WithRSAEncryption`, RFC 4055 §5) over the DER of
//!   the signed attributes;
//! - the signer's certificate in `certificates`, for peers that want it; sipsd itself never
//!   trusts a certificate because a message carries it.
//!
//! Verification (RFC 5652 §5.4, §5.6) accepts what OpenSSL's `openssl cms -sign` writes too:
//! SHA-256/384/512, `rsaEncryption` or `shaNNNWithRSAEncryption` as signature algorithm, signed
//! attributes present (content-type and message-digest checked) or absent. A SignerInfo counts
//! only when its signer identifier names one of the trusted certificates; the signed
//! attributes are re-encoded in DER order (`der_set`) before the signature is checked, the
//! order a DER signer used whatever order the `der` crate decoded them in.
//!
//! Every structure is a type of the `cms`, `der` and `x509-cert` crates; nothing is hand-encoded.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, EncodingRules};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::der_set;
use super::error::CmsError;
use super::oids::{self, ObjectIdentifier};
use crate::crypto::cert;

/// `id-signedData` (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: ObjectIdentifier = rfc5911::ID_SIGNED_DATA;

/// A private key that signs, with its certificate.
pub struct SignerKey {
    key: SigningKey<Sha256>,
    cert: Certificate,
    name: String,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A signer from its RSA private key and certificate; `Err` (the reason) if the
    /// certificate is not the key's.
    pub(crate) fn new(key: rsa::PrivateKey, cert: Certificate) -> Result<SignerKey, String> {
        let public = cert::certificate_public_key(&cert)?;
        if &public != key.as_public_key() {
            return Err("certificate does not match its private key".into());
        }
        Ok(SignerKey {
            name: display_name(&cert),
            key: SigningKey::<Sha256>::new(key),
            cert,
        })
    }

    /// What a verifier reports as the signer: the certificate's subject CN, else its subject.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A certificate whose signatures are believed.
#[derive(Clone)]
pub struct TrustedSigner {
    issuer: Vec<u8>,
    serial: Vec<u8>,
    ski: Vec<u8>,
    public: rsa::PublicKey,
    name: String,
}

impl std::fmt::Debug for TrustedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TrustedSigner {
    /// A trusted signer from its certificate; `Err` (the reason) if it holds no RSA key.
    pub(crate) fn new(cert: &Certificate) -> Result<TrustedSigner, String> {
        let (issuer, serial) = cert::issuer_and_serial(cert)?;
        Ok(TrustedSigner {
            issuer,
            serial,
            ski: cert::subject_key_id(cert)?,
            public: cert::certificate_public_key(cert)?,
            name: display_name(cert),
        })
    }

    /// The certificate's subject CN, else its whole subject.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn names(&self, sid: &SignerIdentifier) -> bool {
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                ias.issuer.to_der().is_ok_and(|i| i == self.issuer)
                    && ias.serial_number.as_bytes() == self.serial.as_slice()
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => ski.0.as_bytes() == self.ski.as_slice(),
        }
    }
}

fn display_name(cert: &Certificate) -> String {
    cert::common_name(cert).unwrap_or_else(|| cert.tbs_certificate().subject().to_string())
}

/// What a signature check found (see [`verify_detached`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// A trusted signer's signature over this content verifies.
    Valid {
        /// [`TrustedSigner::name`] of the signer.
        signer: String,
    },
    /// A trusted signer's SignerInfo does not verify: the content or the signed attributes
    /// were changed, or the algorithm is not one sipsd accepts.
    Invalid {
        /// [`TrustedSigner::name`] of the signer the SignerInfo names.
        signer: String,
        /// Why (never data).
        reason: &'static str,
    },
    /// No SignerInfo names a trusted certificate.
    UnknownSigner,
}

impl SignatureCheck {
    /// `valid`, `invalid` or `unknown` (an unsigned body is `none`: no check at all).
    pub fn status(&self) -> &'static str {
        match self {
            SignatureCheck::Valid { .. } => "valid",
            SignatureCheck::Invalid { .. } => "invalid",
            SignatureCheck::UnknownSigner => "unknown",
        }
    }

    /// The signer a valid or an invalid signature names.
    pub fn signer(&self) -> Option<&str> {
        match self {
            SignatureCheck::Valid { signer } | SignatureCheck::Invalid { signer, .. } => {
                Some(signer)
            }
            SignatureCheck::UnknownSigner => None,
        }
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CmsError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(CmsError::encode)?,
    })
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oids::ID_SHA_256,
        parameters: None,
    }
}

/// Signs `content` (the bytes of a MIME entity) with `signer`: the DER of a ContentInfo
/// holding SignedData without the content (detached; see the module doc).
pub fn sign_detached(content: &[u8], signer: &SignerKey) -> Result<Vec<u8>, CmsError> {
    let digest = Sha256::digest(content);
    let attrs = vec![
        attribute(
            rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&oids::ID_DATA).map_err(CmsError::encode)?,
        )?,
        attribute(
            rfc5911::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.as_slice()).map_err(CmsError::encode)?)
                .map_err(CmsError::encode)?,
        )?,
    ];
    // The signature is over the DER of the SET OF, in DER order; the same set is sent.
    let to_sign = der_set::encode_set_of(&attrs).map_err(CmsError::encode)?;
    let signed_attrs = der_set::set_of(attrs).map_err(CmsError::encode)?;
    let signature: Signature = signer
        .key
        .try_sign_with_rng(&mut getrandom::SysRng, &to_sign)
        .map_err(|e| CmsError::Encode(format!("RSA signature: {e}")))?;
    let tbs = signer.cert.tbs_certificate();
    let info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature.to_vec()).map_err(CmsError::encode)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: der_set::set_of(vec![sha256_alg()]).map_err(CmsError::encode)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            der_set::set_of(vec![cms::cert::CertificateChoices::Certificate(
                signer.cert.clone(),
            )])
            .map_err(CmsError::encode)?,
        )),
        crls: None,
        signer_infos: SignerInfos(der_set::set_of(vec![info]).map_err(CmsError::encode)?),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(CmsError::encode)?,
    }
    .to_der()
    .map_err(CmsError::encode)
}

/// Decodes DER, else BER (OpenSSL may write either).
fn decode<'a, T>(any: &'a Any) -> Result<T, CmsError>
where
    T: der::Choice<'a> + der::DecodeValue<'a, Error = der::Error>,
{
    any.decode_as_encoding(EncodingRules::Der)
        .or_else(|_| any.decode_as_encoding(EncodingRules::Ber))
        .map_err(CmsError::der)
}

/// Checks the detached SignedData `der` (its ContentInfo, DER or BER) over `content` against
/// `trusted`. `Err` only when it is not a detached SignedData over id-data; a signature that
/// does not verify, or no trusted signer, is a [`SignatureCheck`].
pub fn verify_detached(
    der: &[u8],
    content: &[u8],
    trusted: &[TrustedSigner],
) -> Result<SignatureCheck, CmsError> {
    let ci = ContentInfo::from_der(der)
        .or_else(|e| ContentInfo::from_ber(der).map_err(|_| CmsError::der(e)))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CmsError::UnsupportedContentType(
            ci.content_type.to_string(),
        ));
    }
    let sd: SignedData = decode(&ci.content)?;
    let eci = &sd.encap_content_info;
    if eci.econtent_type != oids::ID_DATA {
        return Err(CmsError::UnsupportedContentType(
            eci.econtent_type.to_string(),
        ));
    }
    if eci.econtent.is_some() {
        return Err(CmsError::Der(
            "a detached signature carries content of its own".into(),
        ));
    }
    let mut check = SignatureCheck::UnknownSigner;
    for si in sd.signer_infos.0.iter() {
        let Some(signer) = trusted.iter().find(|t| t.names(&si.sid)) else {
            continue;
        };
        check = match check_signer_info(si, content, signer) {
            Ok(()) => {
                return Ok(SignatureCheck::Valid {
                    signer: signer.name.clone(),
                })
            }
            Err(reason) => SignatureCheck::Invalid {
                signer: signer.name.clone(),
                reason,
            },
        };
    }
    Ok(check)
}

/// The digests sipsd accepts in a SignerInfo.
#[derive(Clone, Copy)]
enum DigestAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    fn of(oid: &ObjectIdentifier) -> Option<DigestAlg> {
        match *oid {
            oids::ID_SHA_256 => Some(DigestAlg::Sha256),
            oids::ID_SHA_384 => Some(DigestAlg::Sha384),
            oids::ID_SHA_512 => Some(DigestAlg::Sha512),
            _ => None,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Sha256 => Sha256::digest(data).to_vec(),
            DigestAlg::Sha384 => Sha384::digest(data).to_vec(),
            DigestAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn with_rsa(self) -> ObjectIdentifier {
        match self {
            DigestAlg::Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            DigestAlg::Sha384 => rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
            DigestAlg::Sha512 => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
        }
    }

    fn verify(self, key: &rsa::PublicKey, msg: &[u8], sig: &Signature) -> bool {
        let key = key.clone();
        match self {
            DigestAlg::Sha256 => VerifyingKey::<Sha256>::new(key).verify(msg, sig).is_ok(),
            DigestAlg::Sha384 => VerifyingKey::<Sha384>::new(key).verify(msg, sig).is_ok(),
            DigestAlg::Sha512 => VerifyingKey::<Sha512>::new(key).verify(msg, sig).is_ok(),
        }
    }
}

/// The one value of the signed attribute `oid`; `Err` when it is missing or has several.
fn single_value(attrs: &[Attribute], oid: ObjectIdentifier) -> Result<&Any, &'static str> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let (Some(attr), None) = (found.next(), found.next()) else {
        return Err("a signed attribute is missing or repeated");
    };
    let mut values = attr.values.iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v),
        _ => Err("a signed attribute does not have exactly one value"),
    }
}

/// RFC 5652 §5.4 and §5.6 for one SignerInfo whose signer is `signer`.
fn check_signer_info(
    si: &SignerInfo,
    content: &[u8],
    signer: &TrustedSigner,
) -> Result<(), &'static str> {
    let digest = DigestAlg::of(&si.digest_alg.oid).ok_or("digest algorithm not accepted")?;
    let sig_alg = si.signature_algorithm.oid;
    if sig_alg != oids::RSA_ENCRYPTION && sig_alg != digest.with_rsa() {
        return Err("signature algorithm not accepted");
    }
    let message = match &si.signed_attrs {
        None => content.to_vec(),
        Some(attrs) => {
            let attrs = attrs.as_slice();
            let ct: ObjectIdentifier = single_value(attrs, rfc5911::ID_CONTENT_TYPE)?
                .decode_as()
                .map_err(|_| "content-type attribute malformed")?;
            if ct != oids::ID_DATA {
                return Err("content-type attribute is not the content's type");
            }
            let md: OctetString = single_value(attrs, rfc5911::ID_MESSAGE_DIGEST)?
                .decode_as()
                .map_err(|_| "message-digest attribute malformed")?;
            if md.as_bytes() != digest.digest(content).as_slice() {
                return Err("the content does not match the signed message digest");
            }
            der_set::encode_set_of(attrs).map_err(|_| "signed attributes do not encode")?
        }
    };
    let sig = Signature::try_from(si.signature.as_bytes()).map_err(|_| "signature malformed")?;
    if digest.verify(&signer.public, &message, &sig) {
        Ok(())
    } else {
        Err("the signature does not verify")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::parse_private_key;

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/vectors/keys")
                .join(name),
        )
        .unwrap()
    }

    fn signer(who: &str) -> SignerKey {
        let key = parse_private_key(&vector(&format!("{who}.key"))).unwrap();
        let cert = cert::parse_certificate(&vector(&format!("{who}.crt"))).unwrap();
        SignerKey::new(key, cert).unwrap()
    }

    fn trusted(who: &str) -> TrustedSigner {
        TrustedSigner::new(&cert::parse_certificate(&vector(&format!("{who}.crt"))).unwrap())
            .unwrap()
    }

    #[test]
    fn a_signature_verifies_for_its_signer_only_and_a_change_is_caught() {
        let content = b"Content-Type: application/sdp\r\n\r\nv=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let der = sign_detached(content, &signer("proxy2")).unwrap();
        assert!(
            !der.windows(4).any(|w| w == b"4000"),
            "a detached signature carries no content"
        );
        let check =
            verify_detached(&der, content, &[trusted("proxy1"), trusted("proxy2")]).unwrap();
        assert_eq!(
            check,
            SignatureCheck::Valid {
                signer: signer("proxy2").name().to_string()
            }
        );
        let check = verify_detached(&der, content, &[trusted("proxy1")]).unwrap();
        assert_eq!(check, SignatureCheck::UnknownSigner);
        // The content changed after signing: found at the message digest.
        let mut changed = content.to_vec();
        changed[40] = b'5';
        let check = verify_detached(&der, &changed, &[trusted("proxy2")]).unwrap();
        assert!(
            matches!(check, SignatureCheck::Invalid { reason, .. } if reason.contains("digest")),
            "{check:?}"
        );
        // The signature itself changed.
        let mut bad_sig = der.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 1;
        let check = verify_detached(&bad_sig, content, &[trusted("proxy2")]).unwrap();
        assert!(
            matches!(check, SignatureCheck::Invalid { reason, .. } if reason.contains("signature")),
            "{check:?}"
        );
        assert!(matches!(
            verify_detached(&der[..der.len() / 2], content, &[trusted("proxy2")]),
            Err(CmsError::Der(_))
        ));
        println!("signed by proxy2 (detached): valid for proxy2, unknown signer for [proxy1], content change -> digest mismatch, signature bit -> does not verify, truncated -> DER error");
    }

    #[test]
    fn a_certificate_must_match_its_key() {
        let key = parse_private_key(&vector("proxy1.key")).unwrap();
        let cert = cert::parse_certificate(&vector("proxy2.crt")).unwrap();
        assert!(SignerKey::new(key, cert).is_err());
    }
}
