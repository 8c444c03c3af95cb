//! X.509 certificates: reading them, and what identifies their RSA key in a RecipientInfo
//! (issuer and serial number, subjectKeyIdentifier).

use std::path::Path;

use der::{Decode, DecodePem, Encode};
use rsa::pkcs8::DecodePublicKey;
use sha1::{Digest, Sha1};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

/// Whether a file's bytes look like PEM.
pub(crate) fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Parses an X.509 certificate, PEM or DER.
pub(crate) fn parse_certificate(data: &[u8]) -> Result<Certificate, String> {
    if is_pem(data) {
        Certificate::from_pem(data).map_err(|e| e.to_string())
    } else {
        Certificate::from_der(data).map_err(|e| e.to_string())
    }
}

/// Reads and parses a certificate file (PEM or DER); the error is the reason only.
pub(crate) fn read_certificate(path: &Path) -> Result<Certificate, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    parse_certificate(&data)
}

/// The certificate's RSA public key.
pub(crate) fn certificate_public_key(cert: &Certificate) -> Result<rsa::PublicKey, String> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| e.to_string())?;
    rsa::PublicKey::from_public_key_der(&spki).map_err(|e| e.to_string())
}

/// The certificate's subjectKeyIdentifier: the extension's value, or if absent the RFC 5280
/// §4.2.1.2 method 1 value (SHA-1 of the subjectPublicKey bits).
pub(crate) fn subject_key_id(cert: &Certificate) -> Result<Vec<u8>, String> {
    let tbs = cert.tbs_certificate();
    match tbs
        .get_extension::<SubjectKeyIdentifier>()
        .map_err(|e| e.to_string())?
    {
        Some((_, ski)) => Ok(ski.0.as_bytes().to_vec()),
        None => {
            let bits = tbs.subject_public_key_info().subject_public_key.raw_bytes();
            Ok(Sha1::digest(bits).to_vec())
        }
    }
}

/// DER of the certificate's issuer Name and the content bytes of its serial number.
pub(crate) fn issuer_and_serial(cert: &Certificate) -> Result<(Vec<u8>, Vec<u8>), String> {
    let tbs = cert.tbs_certificate();
    let issuer = tbs.issuer().to_der().map_err(|e| e.to_string())?;
    Ok((issuer, tbs.serial_number().as_bytes().to_vec()))
}

pub(crate) fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate()
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(String::from)
}
