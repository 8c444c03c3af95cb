//! RecipientInfos (RFC 5652 §6.2): who may open a message, and how the content-encryption key
//! is transported to each — RSAES-OAEP (RFC 3560/4055) or RSAES-PKCS1-v1_5 (RFC 3370) for a
//! certificate, AES key wrap (RFC 3394/3565) for a pre-shared key-encryption key.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use aes_kw::{KeyInit, KwAes128, KwAes192, KwAes256};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KekIdentifier, KekRecipientInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
};
use der::asn1::{Any, OctetString};
use der::{Decode, Encode};
use rsa::pkcs1::RsaOaepParams;
use rsa::{Oaep, Pkcs1v15Encrypt};
use sha1::Sha1;
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use zeroize::Zeroizing;

use super::cek::{Cek, ContentAlg};
use super::error::CmsError;
use super::oids;
use super::profile::{KtriAlg, KtriId, RecipientAt};
use super::rsa_backend::{OaepHash, RsaKey};
use crate::crypto::cert;

/// What a RecipientInfo names as the recipient's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientKeyId {
    /// KeyTransRecipientInfo by issuer and serial number.
    IssuerSerial {
        /// DER of the issuer Name.
        issuer: Vec<u8>,
        /// Content bytes of the serial number INTEGER.
        serial: Vec<u8>,
    },
    /// KeyTransRecipientInfo by subjectKeyIdentifier.
    SubjectKeyId(Vec<u8>),
    /// KEKRecipientInfo by KEK identifier.
    KekId(Vec<u8>),
    /// A kind of RecipientInfo sipsd does not implement: `"kari"`, `"pwri"` or `"ori"`.
    Unsupported(&'static str),
}

impl RecipientKeyId {
    /// The identifier of a RecipientInfo.
    pub(crate) fn of(ri: &RecipientInfo) -> Result<RecipientKeyId, CmsError> {
        Ok(match ri {
            RecipientInfo::Ktri(k) => rid_key_id(&k.rid)?,
            RecipientInfo::Kekri(k) => {
                RecipientKeyId::KekId(k.kek_id.kek_identifier.as_bytes().to_vec())
            }
            RecipientInfo::Kari(_) => RecipientKeyId::Unsupported("kari"),
            RecipientInfo::Pwri(_) => RecipientKeyId::Unsupported("pwri"),
            RecipientInfo::Ori(_) => RecipientKeyId::Unsupported("ori"),
        })
    }
}

/// [`RecipientKeyId`] as views into the message it was read from: what a key lookup compares,
/// without copying the identifier out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientKeyIdRef<'a> {
    /// KeyTransRecipientInfo by issuer (DER of the Name) and serial number (INTEGER contents).
    IssuerSerial {
        /// DER of the issuer Name.
        issuer: &'a [u8],
        /// Content bytes of the serial number INTEGER.
        serial: &'a [u8],
    },
    /// KeyTransRecipientInfo by subjectKeyIdentifier.
    SubjectKeyId(&'a [u8]),
    /// KEKRecipientInfo by KEK identifier.
    KekId(&'a [u8]),
    /// A kind of RecipientInfo sipsd does not implement.
    Unsupported(&'static str),
}

impl RecipientKeyId {
    /// The identifier as views into `self`.
    pub fn as_ref(&self) -> RecipientKeyIdRef<'_> {
        match self {
            RecipientKeyId::IssuerSerial { issuer, serial } => {
                RecipientKeyIdRef::IssuerSerial { issuer, serial }
            }
            RecipientKeyId::SubjectKeyId(s) => RecipientKeyIdRef::SubjectKeyId(s),
            RecipientKeyId::KekId(k) => RecipientKeyIdRef::KekId(k),
            RecipientKeyId::Unsupported(kind) => RecipientKeyIdRef::Unsupported(kind),
        }
    }
}

impl RecipientKeyIdRef<'_> {
    /// An owned copy.
    pub fn to_owned(self) -> RecipientKeyId {
        match self {
            RecipientKeyIdRef::IssuerSerial { issuer, serial } => RecipientKeyId::IssuerSerial {
                issuer: issuer.to_vec(),
                serial: serial.to_vec(),
            },
            RecipientKeyIdRef::SubjectKeyId(s) => RecipientKeyId::SubjectKeyId(s.to_vec()),
            RecipientKeyIdRef::KekId(k) => RecipientKeyId::KekId(k.to_vec()),
            RecipientKeyIdRef::Unsupported(kind) => RecipientKeyId::Unsupported(kind),
        }
    }
}

impl fmt::Display for RecipientKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn hex(f: &mut fmt::Formatter<'_>, b: &[u8]) -> fmt::Result {
            b.iter().try_for_each(|x| write!(f, "{x:02x}"))
        }
        match self {
            RecipientKeyId::IssuerSerial { issuer, serial } => {
                match x509_cert::name::Name::from_der(issuer) {
                    Ok(n) => write!(f, "issuer={n} serial=")?,
                    Err(_) => f.write_str("issuer=? serial=")?,
                }
                hex(f, serial)
            }
            RecipientKeyId::SubjectKeyId(s) => {
                f.write_str("ski=")?;
                hex(f, s)
            }
            RecipientKeyId::KekId(k) => {
                f.write_str("kekid=")?;
                hex(f, k)
            }
            RecipientKeyId::Unsupported(kind) => write!(f, "unsupported({kind})"),
        }
    }
}

fn rid_key_id(rid: &RecipientIdentifier) -> Result<RecipientKeyId, CmsError> {
    Ok(match rid {
        RecipientIdentifier::IssuerAndSerialNumber(ias) => RecipientKeyId::IssuerSerial {
            issuer: ias.issuer.to_der().map_err(CmsError::der)?,
            serial: ias.serial_number.as_bytes().to_vec(),
        },
        RecipientIdentifier::SubjectKeyIdentifier(ski) => {
            RecipientKeyId::SubjectKeyId(ski.0.as_bytes().to_vec())
        }
    })
}

/// One RecipientInfo, as [`inspect`](super::inspect) reports it.
#[derive(Clone, Debug)]
pub struct RecipientSummary {
    /// Whose key it names.
    pub id: RecipientKeyId,
    /// Key-encryption algorithm: `"rsaes-oaep(sha1)"`, `"rsaes-oaep(sha256)"`,
    /// `"rsa-pkcs1v15"`, `"aes256-wrap"`, ... or the OID.
    pub key_alg: String,
}

impl RecipientSummary {
    pub(crate) fn of(ri: RecipientRef<'_>) -> Result<RecipientSummary, CmsError> {
        let key_alg = match ri {
            RecipientRef::General(RecipientInfo::Ktri(k)) => key_alg_name(&k.key_enc_alg),
            RecipientRef::General(RecipientInfo::Kekri(k)) => key_alg_name(&k.key_enc_alg),
            RecipientRef::General(RecipientInfo::Kari(k)) => k.key_enc_alg.oid.to_string(),
            RecipientRef::General(RecipientInfo::Pwri(p)) => p.key_enc_alg.oid.to_string(),
            RecipientRef::General(RecipientInfo::Ori(o)) => o.ori_type.to_string(),
            RecipientRef::InPlace { der, at } => match at {
                RecipientAt::Ktri {
                    alg: KtriAlg::Pkcs1v15,
                    ..
                } => "rsa-pkcs1v15".into(),
                RecipientAt::Ktri {
                    alg: KtriAlg::Oaep(params),
                    ..
                } => oaep_name(oaep_spec_der(params_in(der, params)?)),
                RecipientAt::Kekri { wrap, .. } => wrap_name(*wrap),
            },
        };
        Ok(RecipientSummary {
            id: ri.key_id()?,
            key_alg,
        })
    }
}

/// One RecipientInfo, decoded by the general decoder or read in place (`profile`).
#[derive(Clone, Copy)]
pub(crate) enum RecipientRef<'a> {
    /// Decoded by the `cms` crate.
    General(&'a RecipientInfo),
    /// Read in place: its fields are ranges of `der`.
    InPlace { der: &'a [u8], at: &'a RecipientAt },
}

/// How a RecipientInfo transports the content-encryption key, for [`RecipientRef::unwrap_kind`].
pub(crate) enum UnwrapKind {
    /// KeyTransRecipientInfo: RSA.
    Ktri,
    /// KEKRecipientInfo: a pre-shared key.
    Kekri,
    /// Another kind sipsd does not open.
    Other,
}

/// The octets of an in-place range (ranges come from the reader, inside `der`).
fn at<'a>(der: &'a [u8], r: &Range<usize>) -> Result<&'a [u8], CmsError> {
    der.get(r.clone())
        .ok_or_else(|| CmsError::Der("range outside the message".into()))
}

fn params_in<'a>(
    der: &'a [u8],
    params: &Option<Range<usize>>,
) -> Result<Option<&'a [u8]>, CmsError> {
    params.as_ref().map(|r| at(der, r)).transpose()
}

impl<'a> RecipientRef<'a> {
    /// The key it names.
    pub(crate) fn key_id(self) -> Result<RecipientKeyId, CmsError> {
        match self {
            RecipientRef::General(ri) => RecipientKeyId::of(ri),
            RecipientRef::InPlace { der, at } => Ok(in_place_key_id(der, at)?.to_owned()),
        }
    }

    /// `f` of the key it names: a RecipientInfo read in place is looked at where it lies (no
    /// copy); one the general decoder read is encoded first (its issuer Name is re-encoded
    /// to DER).
    pub(crate) fn with_key_id<R>(
        self,
        f: impl FnOnce(RecipientKeyIdRef<'_>) -> R,
    ) -> Result<R, CmsError> {
        match self {
            RecipientRef::General(ri) => Ok(f(RecipientKeyId::of(ri)?.as_ref())),
            RecipientRef::InPlace { der, at } => Ok(f(in_place_key_id(der, at)?)),
        }
    }

    /// A KEKRecipientInfo's kekIdentifier.
    pub(crate) fn kek_id(self) -> Option<&'a [u8]> {
        match self {
            RecipientRef::General(RecipientInfo::Kekri(k)) => {
                Some(k.kek_id.kek_identifier.as_bytes())
            }
            RecipientRef::InPlace {
                der,
                at: RecipientAt::Kekri { kek_id, .. },
            } => der.get(kek_id.clone()),
            _ => None,
        }
    }

    /// Which kind of RecipientInfo it is.
    pub(crate) fn unwrap_kind(self) -> UnwrapKind {
        match self {
            RecipientRef::General(RecipientInfo::Ktri(_))
            | RecipientRef::InPlace {
                at: RecipientAt::Ktri { .. },
                ..
            } => UnwrapKind::Ktri,
            RecipientRef::General(RecipientInfo::Kekri(_))
            | RecipientRef::InPlace {
                at: RecipientAt::Kekri { .. },
                ..
            } => UnwrapKind::Kekri,
            RecipientRef::General(_) => UnwrapKind::Other,
        }
    }

    /// [`ktri_unwrap`] of a KeyTransRecipientInfo ([`CmsError::KeyUnwrap`] for another kind).
    pub(crate) fn ktri_unwrap(self, key: &RsaKey, alg: ContentAlg) -> Result<Cek, CmsError> {
        match self {
            RecipientRef::General(RecipientInfo::Ktri(t)) => ktri_unwrap(key, t, alg),
            RecipientRef::InPlace {
                der,
                at: RecipientAt::Ktri {
                    alg: kt, enc_key, ..
                },
            } => {
                let ct = at(der, enc_key)?;
                let transport = match kt {
                    KtriAlg::Pkcs1v15 => KeyTransport::Pkcs1v15,
                    KtriAlg::Oaep(params) => {
                        KeyTransport::Oaep(oaep_spec_der(params_in(der, params)?))
                    }
                };
                key_transport_unwrap(key, transport, ct, alg)
            }
            _ => Err(CmsError::KeyUnwrap),
        }
    }

    /// [`kekri_unwrap`] of a KEKRecipientInfo ([`CmsError::KeyUnwrap`] for another kind).
    pub(crate) fn kekri_unwrap(self, kek: &[u8], alg: ContentAlg) -> Result<Cek, CmsError> {
        match self {
            RecipientRef::General(RecipientInfo::Kekri(k)) => kekri_unwrap(kek, k, alg),
            RecipientRef::InPlace {
                der,
                at: RecipientAt::Kekri { wrap, enc_key, .. },
            } => key_wrap_unwrap(kek, wrap, at(der, enc_key)?, alg),
            _ => Err(CmsError::KeyUnwrap),
        }
    }
}

/// The key a RecipientInfo read in place names, as views into `der`.
fn in_place_key_id<'a>(der: &'a [u8], ri: &RecipientAt) -> Result<RecipientKeyIdRef<'a>, CmsError> {
    Ok(match ri {
        RecipientAt::Ktri {
            rid: KtriId::IssuerSerial { issuer, serial },
            ..
        } => RecipientKeyIdRef::IssuerSerial {
            issuer: at(der, issuer)?,
            serial: at(der, serial)?,
        },
        RecipientAt::Ktri {
            rid: KtriId::Ski(ski),
            ..
        } => RecipientKeyIdRef::SubjectKeyId(at(der, ski)?),
        RecipientAt::Kekri { kek_id, .. } => RecipientKeyIdRef::KekId(at(der, kek_id)?),
    })
}

/// The OAEP hash an OID names.
fn oaep_hash_from_oid(oid: &oids::ObjectIdentifier) -> Option<OaepHash> {
    match *oid {
        oids::ID_SHA_1 => Some(OaepHash::Sha1),
        oids::ID_SHA_256 => Some(OaepHash::Sha256),
        oids::ID_SHA_384 => Some(OaepHash::Sha384),
        oids::ID_SHA_512 => Some(OaepHash::Sha512),
        _ => None,
    }
}

fn oaep_hash_name(h: OaepHash) -> &'static str {
    match h {
        OaepHash::Sha1 => "sha1",
        OaepHash::Sha256 => "sha256",
        OaepHash::Sha384 => "sha384",
        OaepHash::Sha512 => "sha512",
    }
}

/// Decoded `RSAES-OAEP-params`.
#[derive(Debug, PartialEq, Eq)]
struct OaepSpec {
    hash: OaepHash,
    mgf_hash: OaepHash,
    label: Vec<u8>,
}

/// Decodes RSAES-OAEP-params (RFC 4055 §4.1); absent parameters mean all defaults (SHA-1).
fn oaep_spec(ai: &AlgorithmIdentifierOwned) -> Result<OaepSpec, CmsError> {
    match &ai.parameters {
        None => oaep_spec_der(None),
        Some(p) if p.is_null() => oaep_spec_der(None),
        Some(p) => oaep_spec_der(Some(&p.to_der().map_err(CmsError::der)?)),
    }
}

/// [`oaep_spec`] of the parameters' DER (`None`: absent or NULL, all defaults).
fn oaep_spec_der(params: Option<&[u8]>) -> Result<OaepSpec, CmsError> {
    let bad = |what: &str| CmsError::UnsupportedKeyAlg(format!("{} ({what})", oids::ID_RSAES_OAEP));
    let params = match params {
        None => RsaOaepParams::<Any>::default(),
        Some(der) => {
            RsaOaepParams::<Any>::from_der(der).map_err(|_| bad("malformed parameters"))?
        }
    };
    let hash = oaep_hash_from_oid(&params.hash.oid).ok_or_else(|| bad("hash"))?;
    if params.mask_gen.oid != oids::ID_MGF_1 {
        return Err(bad("mask generation function"));
    }
    let mgf_hash = params
        .mask_gen
        .parameters
        .as_ref()
        .and_then(|h| oaep_hash_from_oid(&h.oid))
        .ok_or_else(|| bad("MGF1 hash"))?;
    if params.p_source.oid != oids::ID_P_SPECIFIED {
        return Err(bad("label source"));
    }
    let label = match &params.p_source.parameters {
        None => Vec::new(),
        Some(l) => l
            .decode_as::<OctetString>()
            .map_err(|_| bad("label"))?
            .as_bytes()
            .to_vec(),
    };
    Ok(OaepSpec {
        hash,
        mgf_hash,
        label,
    })
}

/// Human name of a key-encryption algorithm, or its OID.
pub(crate) fn key_alg_name(ai: &AlgorithmIdentifierOwned) -> String {
    match ai.oid {
        oids::RSA_ENCRYPTION => "rsa-pkcs1v15".into(),
        oids::ID_RSAES_OAEP => oaep_name(oaep_spec(ai)),
        other => wrap_name(other),
    }
}

/// The name of RSAES-OAEP with these parameters.
fn oaep_name(spec: Result<OaepSpec, CmsError>) -> String {
    match spec {
        Ok(s) if s.hash == s.mgf_hash && s.label.is_empty() => {
            format!("rsaes-oaep({})", oaep_hash_name(s.hash))
        }
        Ok(s) => format!(
            "rsaes-oaep({},mgf1-{}{})",
            oaep_hash_name(s.hash),
            oaep_hash_name(s.mgf_hash),
            if s.label.is_empty() { "" } else { ",label" }
        ),
        Err(_) => format!("{} (unsupported parameters)", oids::ID_RSAES_OAEP),
    }
}

/// The name of an AES key wrap, or the OID.
fn wrap_name(oid: oids::ObjectIdentifier) -> String {
    match oid {
        oids::ID_AES_128_WRAP => "aes128-wrap".into(),
        oids::ID_AES_192_WRAP => "aes192-wrap".into(),
        oids::ID_AES_256_WRAP => "aes256-wrap".into(),
        other => other.to_string(),
    }
}

/// A KeyTransRecipientInfo's key-transport algorithm, decoded.
enum KeyTransport {
    Pkcs1v15,
    Oaep(Result<OaepSpec, CmsError>),
    Unsupported(String),
}

/// Recovers the CEK from a KeyTransRecipientInfo with our RSA private key.
///
/// RSAES-OAEP failures are [`CmsError::KeyUnwrap`]. With the cargo feature `aws-lc`, OAEP
/// whose MGF1 hash is the OAEP hash is decrypted by AWS-LC ([`RsaKey::decrypt_oaep`]); other
/// OAEP parameters and PKCS#1 v1.5 by the `rsa` crate. RSAES-PKCS1-v1_5 never fails here: a bad
/// padding (which `rsa` answers with implicit rejection) or a result of the wrong length goes
/// on with a stand-in CEK of the right length (RFC 3218 §2.3.2), a deterministic function of
/// our private key and the ciphertext (`implicit_rejection`: the same encryptedKey always
/// gives the same stand-in), so that a wrong key and a tampered key both fail later,
/// identically, as [`CmsError::Decrypt`].
pub(crate) fn ktri_unwrap(
    key: &RsaKey,
    ktri: &KeyTransRecipientInfo,
    alg: ContentAlg,
) -> Result<Cek, CmsError> {
    let transport = match ktri.key_enc_alg.oid {
        oids::RSA_ENCRYPTION => KeyTransport::Pkcs1v15,
        oids::ID_RSAES_OAEP => KeyTransport::Oaep(oaep_spec(&ktri.key_enc_alg)),
        other => KeyTransport::Unsupported(other.to_string()),
    };
    key_transport_unwrap(key, transport, ktri.enc_key.as_bytes(), alg)
}

/// [`ktri_unwrap`] of the decoded algorithm and the encryptedKey `ct`.
fn key_transport_unwrap(
    key: &RsaKey,
    transport: KeyTransport,
    ct: &[u8],
    alg: ContentAlg,
) -> Result<Cek, CmsError> {
    match transport {
        KeyTransport::Pkcs1v15 => {
            // Derived before decrypting, whatever the outcome (`implicit_rejection`).
            let fallback = key.pkcs1v15_fallback(ct, alg.key_len())?;
            let cek = match key.decrypt(Pkcs1v15Encrypt, ct) {
                Ok(pt) if pt.len() == alg.key_len() => Zeroizing::new(pt),
                Ok(pt) => {
                    drop(Zeroizing::new(pt));
                    fallback
                }
                Err(_) => fallback,
            };
            Cek::from_zeroizing(alg, cek)
        }
        KeyTransport::Oaep(spec) => {
            let spec = spec?;
            let pt = key
                .decrypt_oaep(spec.hash, spec.mgf_hash, &spec.label, ct)
                .map_err(|_| CmsError::KeyUnwrap)?;
            Cek::from_zeroizing(alg, pt).map_err(|_| CmsError::KeyUnwrap)
        }
        KeyTransport::Unsupported(oid) => Err(CmsError::UnsupportedKeyAlg(oid)),
    }
}

/// Recovers the CEK from a KEKRecipientInfo with our pre-shared KEK (AES key wrap).
pub(crate) fn kekri_unwrap(
    kek: &[u8],
    kekri: &KekRecipientInfo,
    alg: ContentAlg,
) -> Result<Cek, CmsError> {
    key_wrap_unwrap(
        kek,
        &kekri.key_enc_alg.oid,
        kekri.encrypted_key.as_bytes(),
        alg,
    )
}

/// [`kekri_unwrap`] of the key-wrap algorithm and the encryptedKey `wrapped`.
fn key_wrap_unwrap(
    kek: &[u8],
    wrap: &oids::ObjectIdentifier,
    wrapped: &[u8],
    alg: ContentAlg,
) -> Result<Cek, CmsError> {
    let want_kek = match *wrap {
        oids::ID_AES_128_WRAP => 16,
        oids::ID_AES_192_WRAP => 24,
        oids::ID_AES_256_WRAP => 32,
        other => return Err(CmsError::UnsupportedKeyAlg(other.to_string())),
    };
    if kek.len() != want_kek || wrapped.len() < 16 {
        return Err(CmsError::KeyUnwrap);
    }
    let mut buf = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = match want_kek {
        16 => KwAes128::new_from_slice(kek)
            .map_err(|_| CmsError::KeyUnwrap)?
            .unwrap_key(wrapped, &mut buf)
            .map(|k| k.len()),
        24 => KwAes192::new_from_slice(kek)
            .map_err(|_| CmsError::KeyUnwrap)?
            .unwrap_key(wrapped, &mut buf)
            .map(|k| k.len()),
        _ => KwAes256::new_from_slice(kek)
            .map_err(|_| CmsError::KeyUnwrap)?
            .unwrap_key(wrapped, &mut buf)
            .map(|k| k.len()),
    }
    .map_err(|_| CmsError::KeyUnwrap)?;
    buf.truncate(len);
    Cek::from_zeroizing(alg, buf).map_err(|_| CmsError::KeyUnwrap)
}

/// RSA key-transport padding for a certificate recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaPadding {
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (RFC 3560 default parameters).
    OaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    OaepSha256,
    /// RSAES-PKCS1-v1_5 (RFC 3370; for old peers).
    Pkcs1v15,
}

/// How a KeyTransRecipientInfo names the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// issuerAndSerialNumber (KTRI version 0).
    IssuerSerial,
    /// subjectKeyIdentifier (KTRI version 2).
    SubjectKeyId,
}

/// Someone a message is sealed for.
// The certificate is held by value as the public API says; recipients are few and short-lived.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Recipient {
    /// The holder of a certificate's RSA private key (KeyTransRecipientInfo).
    Cert {
        /// The recipient's certificate.
        cert: x509_cert::Certificate,
        /// How the RecipientInfo names it.
        id: IdKind,
        /// RSA padding.
        padding: RsaPadding,
    },
    /// The holders of a pre-shared key-encryption key (KEKRecipientInfo): a 16/24/32-byte KEK
    /// wraps with id-aes128/192/256-wrap.
    Psk {
        /// KEK identifier.
        id: Vec<u8>,
        /// The key-encryption key.
        kek: Zeroizing<Vec<u8>>,
    },
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Cert { cert, id, padding } => f
                .debug_struct("Cert")
                .field("subject", &cert.tbs_certificate().subject().to_string())
                .field("id", id)
                .field("padding", padding)
                .finish(),
            Recipient::Psk { id, kek } => f
                .debug_struct("Psk")
                .field("id", id)
                .field("kek_len", &kek.len())
                .finish(),
        }
    }
}

impl Recipient {
    /// A certificate recipient from a PEM or DER certificate file.
    pub fn from_cert_file(
        path: &Path,
        id: IdKind,
        padding: RsaPadding,
    ) -> Result<Recipient, CmsError> {
        let cert = cert::read_certificate(path)
            .map_err(|e| CmsError::CertFile(format!("{}: {e}", path.display())))?;
        cert::certificate_public_key(&cert)
            .map_err(|e| CmsError::CertFile(format!("{}: not an RSA key: {e}", path.display())))?;
        Ok(Recipient::Cert { cert, id, padding })
    }

    /// This recipient's RecipientInfo carrying `cek`.
    pub(crate) fn recipient_info(&self, cek: &Cek) -> Result<RecipientInfo, CmsError> {
        match self {
            Recipient::Cert { cert, id, padding } => {
                let public = cert::certificate_public_key(cert)
                    .map_err(|e| CmsError::CertFile(format!("not an RSA key: {e}")))?;
                let (version, rid) = match id {
                    IdKind::IssuerSerial => (
                        CmsVersion::V0,
                        RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                            issuer: cert.tbs_certificate().issuer().clone(),
                            serial_number: cert.tbs_certificate().serial_number().clone(),
                        }),
                    ),
                    IdKind::SubjectKeyId => {
                        let ski = cert::subject_key_id(cert).map_err(CmsError::CertFile)?;
                        (
                            CmsVersion::V2,
                            RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                                OctetString::new(ski).map_err(CmsError::encode)?,
                            )),
                        )
                    }
                };
                let mut rng = getrandom::SysRng;
                let (key_enc_alg, enc) = match padding {
                    RsaPadding::OaepSha1 => (
                        oaep_alg_id(RsaOaepParams::<der::AnyRef<'_>>::new::<Sha1>())?,
                        public.encrypt(&mut rng, Oaep::<Sha1>::new(), cek.as_bytes()),
                    ),
                    RsaPadding::OaepSha256 => (
                        oaep_alg_id(RsaOaepParams::<der::AnyRef<'_>>::new::<Sha256>())?,
                        public.encrypt(&mut rng, Oaep::<Sha256>::new(), cek.as_bytes()),
                    ),
                    RsaPadding::Pkcs1v15 => (
                        AlgorithmIdentifierOwned {
                            oid: oids::RSA_ENCRYPTION,
                            parameters: Some(Any::null()),
                        },
                        public.encrypt(&mut rng, Pkcs1v15Encrypt, cek.as_bytes()),
                    ),
                };
                let enc = enc.map_err(|e| CmsError::Encode(format!("RSA encryption: {e}")))?;
                Ok(RecipientInfo::Ktri(KeyTransRecipientInfo {
                    version,
                    rid,
                    key_enc_alg,
                    enc_key: OctetString::new(enc).map_err(CmsError::encode)?,
                }))
            }
            Recipient::Psk { id, kek } => {
                let key = cek.as_bytes();
                let mut buf = vec![0u8; key.len() + aes_kw::IV_LEN];
                let (oid, res) = match kek.len() {
                    16 => (
                        oids::ID_AES_128_WRAP,
                        KwAes128::new_from_slice(kek)
                            .map_err(|_| CmsError::BadKeyLength)?
                            .wrap_key(key, &mut buf)
                            .map(|w| w.len()),
                    ),
                    24 => (
                        oids::ID_AES_192_WRAP,
                        KwAes192::new_from_slice(kek)
                            .map_err(|_| CmsError::BadKeyLength)?
                            .wrap_key(key, &mut buf)
                            .map(|w| w.len()),
                    ),
                    32 => (
                        oids::ID_AES_256_WRAP,
                        KwAes256::new_from_slice(kek)
                            .map_err(|_| CmsError::BadKeyLength)?
                            .wrap_key(key, &mut buf)
                            .map(|w| w.len()),
                    ),
                    _ => return Err(CmsError::BadKeyLength),
                };
                let len = res.map_err(|e| CmsError::Encode(format!("key wrap: {e}")))?;
                buf.truncate(len);
                Ok(RecipientInfo::Kekri(KekRecipientInfo {
                    version: CmsVersion::V4,
                    kek_id: KekIdentifier {
                        kek_identifier: OctetString::new(id.clone()).map_err(CmsError::encode)?,
                        date: None,
                        other: None,
                    },
                    // RFC 3565 §4.3: parameters absent.
                    key_enc_alg: AlgorithmIdentifierOwned {
                        oid,
                        parameters: None,
                    },
                    encrypted_key: OctetString::new(buf).map_err(CmsError::encode)?,
                }))
            }
        }
    }
}

fn oaep_alg_id(
    params: RsaOaepParams<der::AnyRef<'static>>,
) -> Result<AlgorithmIdentifierOwned, CmsError> {
    let der = params.to_der().map_err(CmsError::encode)?;
    Ok(AlgorithmIdentifierOwned {
        oid: oids::ID_RSAES_OAEP,
        parameters: Some(Any::from_der(&der).map_err(CmsError::encode)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alg(oid: oids::ObjectIdentifier, params_der: Option<&[u8]>) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid,
            parameters: params_der.map(|d| Any::from_der(d).unwrap()),
        }
    }

    #[test]
    fn oaep_sha1_params_are_an_empty_sequence_like_openssl() {
        let ai = oaep_alg_id(RsaOaepParams::<der::AnyRef<'_>>::new::<Sha1>()).unwrap();
        assert_eq!(
            ai.parameters.as_ref().unwrap().to_der().unwrap(),
            [0x30, 0x00]
        );
        assert_eq!(key_alg_name(&ai), "rsaes-oaep(sha1)");
    }

    #[test]
    fn oaep_sha256_params_name() {
        let ai = oaep_alg_id(RsaOaepParams::<der::AnyRef<'_>>::new::<Sha256>()).unwrap();
        assert_eq!(key_alg_name(&ai), "rsaes-oaep(sha256)");
        let spec = oaep_spec(&ai).unwrap();
        assert_eq!(spec.hash, OaepHash::Sha256);
        assert_eq!(spec.mgf_hash, OaepHash::Sha256);
        assert!(spec.label.is_empty());
    }

    #[test]
    fn oaep_absent_params_mean_sha1() {
        let spec = oaep_spec(&alg(oids::ID_RSAES_OAEP, None)).unwrap();
        assert_eq!(spec.hash, OaepHash::Sha1);
        assert_eq!(spec.mgf_hash, OaepHash::Sha1);
    }

    #[test]
    fn other_names() {
        assert_eq!(
            key_alg_name(&alg(oids::RSA_ENCRYPTION, Some(&[5, 0]))),
            "rsa-pkcs1v15"
        );
        assert_eq!(
            key_alg_name(&alg(oids::ID_AES_256_WRAP, None)),
            "aes256-wrap"
        );
        assert_eq!(
            key_alg_name(&alg(oids::ID_AES_128_WRAP, None)),
            "aes128-wrap"
        );
        assert_eq!(
            key_alg_name(&alg(oids::ID_SHA_256, None)),
            "2.16.840.1.101.3.4.2.1"
        );
    }

    #[test]
    fn kek_wrap_round_trip_and_wrong_kek() {
        for kek_len in [16usize, 24, 32] {
            let kek = Zeroizing::new(vec![0x42u8; kek_len]);
            let cek = Cek::generate(ContentAlg::Aes128Gcm).unwrap();
            let r = Recipient::Psk {
                id: b"k".to_vec(),
                kek: kek.clone(),
            };
            let RecipientInfo::Kekri(k) = r.recipient_info(&cek).unwrap() else {
                panic!("not a KEKRI")
            };
            assert_eq!(
                RecipientKeyId::KekId(b"k".to_vec()),
                RecipientKeyId::of(&RecipientInfo::Kekri(k.clone())).unwrap()
            );
            let got = kekri_unwrap(&kek, &k, ContentAlg::Aes128Gcm).unwrap();
            assert_eq!(got.as_bytes(), cek.as_bytes());
            let wrong = vec![0x43u8; kek_len];
            assert!(matches!(
                kekri_unwrap(&wrong, &k, ContentAlg::Aes128Gcm),
                Err(CmsError::KeyUnwrap)
            ));
            // Right KEK, but the message claims another content algorithm (other key length).
            assert!(matches!(
                kekri_unwrap(&kek, &k, ContentAlg::Aes256Gcm),
                Err(CmsError::KeyUnwrap)
            ));
        }
    }

    fn vector_identity(name: &str) -> (RsaKey, x509_cert::Certificate) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/keys");
        let key = crate::crypto::keys::parse_private_key(
            &std::fs::read(dir.join(format!("{name}.key"))).unwrap(),
        )
        .unwrap();
        let cert = cert::read_certificate(&dir.join(format!("{name}.crt"))).unwrap();
        (RsaKey::new(key), cert)
    }

    #[test]
    fn ktri_unwrap_round_trips_through_the_rsa_backend() {
        let (key, cert) = vector_identity("proxy1");
        let (other, _) = vector_identity("proxy2");
        #[cfg(feature = "aws-lc")]
        let before = crate::crypto::cms::rsa_backend::tests::AWS_LC_DECRYPTIONS
            .load(std::sync::atomic::Ordering::Relaxed);
        for padding in [
            RsaPadding::OaepSha1,
            RsaPadding::OaepSha256,
            RsaPadding::Pkcs1v15,
        ] {
            for id in [IdKind::IssuerSerial, IdKind::SubjectKeyId] {
                let alg = ContentAlg::Aes256Gcm;
                let cek = Cek::generate(alg).unwrap();
                let r = Recipient::Cert {
                    cert: cert.clone(),
                    id,
                    padding,
                };
                let RecipientInfo::Ktri(t) = r.recipient_info(&cek).unwrap() else {
                    panic!("not a KTRI")
                };
                let got = ktri_unwrap(&key, &t, alg).unwrap();
                assert_eq!(got.as_bytes(), cek.as_bytes(), "{padding:?}");
                match (padding, ktri_unwrap(&other, &t, alg)) {
                    // Implicit rejection: a stand-in key of the right length, the same
                    // every time for this encryptedKey.
                    (RsaPadding::Pkcs1v15, Ok(wrong)) => {
                        assert_ne!(wrong.as_bytes(), cek.as_bytes());
                        assert_eq!(wrong.as_bytes().len(), alg.key_len());
                        let again = ktri_unwrap(&other, &t, alg).unwrap();
                        assert_eq!(wrong.as_bytes(), again.as_bytes());
                    }
                    (RsaPadding::Pkcs1v15, Err(e)) => panic!("PKCS#1 v1.5 wrong key: {e:?}"),
                    (_, res) => assert!(matches!(res, Err(CmsError::KeyUnwrap)), "{padding:?}"),
                }
            }
        }
        #[cfg(feature = "aws-lc")]
        assert!(
            crate::crypto::cms::rsa_backend::tests::AWS_LC_DECRYPTIONS
                .load(std::sync::atomic::Ordering::Relaxed)
                >= before + 4,
            "OAEP unwraps did not go through AWS-LC"
        );
        println!(
            "ktri_unwrap ({:?} backend for OAEP): OAEP-SHA1, OAEP-SHA256, PKCS#1 v1.5 x \
             issuerAndSerial/SKI round-trip; another key's OAEP is KeyUnwrap, its PKCS#1 v1.5 \
             a stand-in CEK, the same on every try",
            key.backend()
        );
    }

    #[test]
    fn psk_with_bad_kek_length_is_refused() {
        let cek = Cek::generate(ContentAlg::Aes128Gcm).unwrap();
        let r = Recipient::Psk {
            id: b"k".to_vec(),
            kek: Zeroizing::new(vec![1u8; 20]),
        };
        assert!(matches!(
            r.recipient_info(&cek),
            Err(CmsError::BadKeyLength)
        ));
        assert!(!format!("{r:?}").contains("1, 1"));
    }
}
