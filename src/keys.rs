//! The proxy's (or user agent's) keys and identities: RSA private keys with their certificates,
//! pre-shared key-encryption keys (PSKs), and the identity names it answers to.
//!
//! A [`KeyStore`] is loaded once from a [`KeySpec`] (paths from the configuration) and then only
//! read. The CMS layer uses it to find which RecipientInfo names one of our keys: an RSA key by
//! its certificate's issuer and serial number or subjectKeyIdentifier, a PSK by its KEK
//! identifier.

use std::fmt;
use std::path::{Path, PathBuf};

use der::{Decode, DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use sha1::{Digest, Sha1};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::cms::RecipientKeyId;

use crate::cms::rsa_backend::RsaKey;

/// Where an RSA identity's private key and certificate are.
#[derive(Clone, Debug)]
pub struct RsaKeySpec {
    /// Private key: PKCS#8 or PKCS#1, PEM or DER.
    pub key_path: PathBuf,
    /// Certificate: PEM or DER.
    pub cert_path: PathBuf,
    /// Label; default: the key file's stem (e.g. `proxy1`).
    pub label: Option<String>,
}

/// A pre-shared key-encryption key and its KEK identifier.
#[derive(Clone, Debug)]
pub struct PskSpec {
    /// The KEKRecipientInfo `keyIdentifier` naming this key.
    pub id: Vec<u8>,
    /// File with the key as hex (one line) or as 16/24/32 raw bytes.
    pub key_path: PathBuf,
    /// Label; default: the key file's stem.
    pub label: Option<String>,
}

/// What to load into a [`KeyStore`].
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    /// RSA identities.
    pub rsa: Vec<RsaKeySpec>,
    /// Pre-shared keys.
    pub psk: Vec<PskSpec>,
    /// Identity names (e.g. SIP URIs or host names) this party answers to; if empty,
    /// [`KeyStore::identities`] gives the CN of each certificate's subject.
    pub identities: Vec<String>,
    /// Refuse a private key or PSK file that group or others may read.
    pub strict_permissions: bool,
}

/// Why a [`KeyStore`] could not be loaded. Messages name files, never key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file does not exist.
    #[error("{0}: no such file")]
    Missing(PathBuf),
    /// The file exists but could not be read.
    #[error("{0}: unreadable: {1}")]
    Unreadable(PathBuf, String),
    /// The private key could not be parsed.
    #[error("{0}: not an RSA private key (PKCS#8 or PKCS#1, PEM or DER): {1}")]
    BadKey(PathBuf, String),
    /// The certificate could not be parsed.
    #[error("{0}: not an X.509 certificate (PEM or DER): {1}")]
    BadCert(PathBuf, String),
    /// The certificate's public key is not the private key's.
    #[error("{0}: certificate does not match its private key")]
    Mismatch(PathBuf),
    /// The pre-shared key file is not a 128/192/256-bit key.
    #[error("{0}: bad pre-shared key: {1}")]
    BadPsk(PathBuf, String),
    /// The key file may be read by group or others (with `strict_permissions`).
    #[error("{0}: key file is readable by group or others")]
    InsecurePermissions(PathBuf),
}

/// An RSA private key with what its certificate says about it.
pub(crate) struct RsaIdentity {
    pub(crate) label: String,
    /// The private key; with feature `aws-lc` also loaded into AWS-LC ([`RsaKey`]).
    pub(crate) key: RsaKey,
    /// DER of the certificate's issuer Name.
    pub(crate) issuer: Vec<u8>,
    /// Content bytes of the certificate's serial number INTEGER.
    pub(crate) serial: Vec<u8>,
    /// subjectKeyIdentifier (extension, else RFC 5280 method 1).
    pub(crate) ski: Vec<u8>,
    /// The subject's common name, if any.
    pub(crate) cn: Option<String>,
}

/// A pre-shared key-encryption key.
pub(crate) struct PskEntry {
    pub(crate) label: String,
    pub(crate) id: Vec<u8>,
    pub(crate) key: Zeroizing<Vec<u8>>,
}

/// One of our keys, as named by a RecipientInfo.
pub(crate) enum KeyRef<'a> {
    Rsa(&'a RsaIdentity),
    Psk(&'a PskEntry),
}

impl KeyRef<'_> {
    pub(crate) fn label(&self) -> &str {
        match self {
            KeyRef::Rsa(r) => &r.label,
            KeyRef::Psk(p) => &p.label,
        }
    }
}

/// Our keys and identities.
#[derive(Default)]
pub struct KeyStore {
    rsa: Vec<RsaIdentity>,
    psk: Vec<PskEntry>,
    identities: Vec<String>,
    warnings: Vec<String>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field(
                "rsa",
                &self.rsa.iter().map(|r| &r.label).collect::<Vec<_>>(),
            )
            .field(
                "psk",
                &self.psk.iter().map(|p| &p.label).collect::<Vec<_>>(),
            )
            .field("identities", &self.identities)
            .finish()
    }
}

impl KeyStore {
    /// Loads every key and certificate named by `spec`.
    ///
    /// A private key or PSK file that group or others may read is refused with
    /// [`KeyError::InsecurePermissions`] when `spec.strict_permissions` is set, and otherwise
    /// loaded with a warning ([`KeyStore::warnings`]).
    pub fn load(spec: &KeySpec) -> Result<KeyStore, KeyError> {
        let mut store = KeyStore::default();
        for r in &spec.rsa {
            let (identity, warning) = load_rsa(r, spec.strict_permissions)?;
            store.rsa.push(identity);
            store.warnings.extend(warning);
        }
        for p in &spec.psk {
            let (entry, warning) = load_psk(p, spec.strict_permissions)?;
            store.psk.push(entry);
            store.warnings.extend(warning);
        }
        store.identities = if spec.identities.is_empty() {
            store.rsa.iter().filter_map(|r| r.cn.clone()).collect()
        } else {
            spec.identities.clone()
        };
        Ok(store)
    }

    /// The identity names we answer to: the configured ones, or if none were configured the
    /// CN of each certificate's subject.
    pub fn identities(&self) -> &[String] {
        &self.identities
    }

    /// What loading found worth a warning, one line each (file names, never key material):
    /// key files group or others may read (without `strict_permissions`). The proxy's host
    /// logs them at start (Kamailio: LM_WARN in mod_init).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// True if there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.rsa.is_empty() && self.psk.is_empty()
    }

    /// Labels of all keys, RSA identities first.
    pub fn labels(&self) -> Vec<String> {
        self.rsa
            .iter()
            .map(|r| r.label.clone())
            .chain(self.psk.iter().map(|p| p.label.clone()))
            .collect()
    }

    /// The label of our key that `id` names, if any.
    pub fn label_for(&self, id: &RecipientKeyId) -> Option<&str> {
        self.find(id).map(|k| match k {
            KeyRef::Rsa(r) => r.label.as_str(),
            KeyRef::Psk(p) => p.label.as_str(),
        })
    }

    /// Our key that `id` names, if any (identifier match only).
    pub(crate) fn find(&self, id: &RecipientKeyId) -> Option<KeyRef<'_>> {
        match id {
            RecipientKeyId::IssuerSerial { issuer, serial } => self
                .rsa
                .iter()
                .find(|r| &r.issuer == issuer && &r.serial == serial)
                .map(KeyRef::Rsa),
            RecipientKeyId::SubjectKeyId(ski) => {
                self.rsa.iter().find(|r| &r.ski == ski).map(KeyRef::Rsa)
            }
            RecipientKeyId::KekId(kid) => self.psk.iter().find(|p| &p.id == kid).map(KeyRef::Psk),
            RecipientKeyId::Unsupported(_) => None,
        }
    }
}

fn default_label(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => KeyError::Missing(path.to_path_buf()),
        _ => KeyError::Unreadable(path.to_path_buf(), e.to_string()),
    })
}

/// Reads a secret file. If group or others may read it, it is refused when `strict`, else
/// read with a warning (the second value).
pub(crate) fn read_secret(
    path: &Path,
    strict: bool,
) -> Result<(Zeroizing<Vec<u8>>, Option<String>), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => KeyError::Missing(path.to_path_buf()),
        _ => KeyError::Unreadable(path.to_path_buf(), e.to_string()),
    })?;
    let mode = meta.permissions().mode();
    let warning = if mode & 0o044 != 0 {
        if strict {
            return Err(KeyError::InsecurePermissions(path.to_path_buf()));
        }
        Some(format!(
            "{}: key file is readable by group or others (mode {:03o}); chmod 600 it, or set strict_key_permissions=1 to refuse such files",
            path.display(),
            mode & 0o777
        ))
    } else {
        None
    };
    Ok((Zeroizing::new(read_file(path)?), warning))
}

fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Parses an RSA private key: PKCS#8 or PKCS#1, PEM or DER.
pub(crate) fn parse_private_key(data: &[u8]) -> Result<rsa::PrivateKey, String> {
    if is_pem(data) {
        let text = std::str::from_utf8(data).map_err(|_| "PEM is not UTF-8".to_string())?;
        rsa::PrivateKey::from_pkcs8_pem(text)
            .or_else(|e8| rsa::PrivateKey::from_pkcs1_pem(text).map_err(|e1| format!("{e8}; {e1}")))
    } else {
        rsa::PrivateKey::from_pkcs8_der(data)
            .or_else(|e8| rsa::PrivateKey::from_pkcs1_der(data).map_err(|e1| format!("{e8}; {e1}")))
    }
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

fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate()
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(String::from)
}

fn load_rsa(spec: &RsaKeySpec, strict: bool) -> Result<(RsaIdentity, Option<String>), KeyError> {
    let (key_data, warning) = read_secret(&spec.key_path, strict)?;
    let key =
        parse_private_key(&key_data).map_err(|e| KeyError::BadKey(spec.key_path.clone(), e))?;
    let cert_data = read_file(&spec.cert_path)?;
    let cert =
        parse_certificate(&cert_data).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    let cert_pub =
        certificate_public_key(&cert).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    if &cert_pub != key.as_public_key() {
        return Err(KeyError::Mismatch(spec.cert_path.clone()));
    }
    let (issuer, serial) =
        issuer_and_serial(&cert).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    let ski = subject_key_id(&cert).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    let identity = RsaIdentity {
        label: spec
            .label
            .clone()
            .unwrap_or_else(|| default_label(&spec.key_path)),
        key: RsaKey::new(key),
        issuer,
        serial,
        ski,
        cn: common_name(&cert),
    };
    Ok((identity, warning))
}

/// Decodes hex (whitespace around it ignored); `None` if it is not hex.
pub(crate) fn decode_hex(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let t = text.trim_ascii();
    if t.is_empty() || t.len() % 2 != 0 {
        return None;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(t.len() / 2));
    for pair in t.chunks(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(out)
}

/// A PSK file's key: hex on one line, or 16/24/32 raw bytes.
fn parse_psk(data: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    const LENS: [usize; 3] = [16, 24, 32];
    if let Some(k) = decode_hex(data) {
        if LENS.contains(&k.len()) {
            return Ok(k);
        }
        if !LENS.contains(&data.len()) {
            return Err(format!("hex key is {} bytes; want 16, 24 or 32", k.len()));
        }
    }
    if LENS.contains(&data.len()) {
        return Ok(Zeroizing::new(data.to_vec()));
    }
    Err(format!(
        "{} bytes, neither hex nor a raw 16/24/32-byte key",
        data.len()
    ))
}

fn load_psk(spec: &PskSpec, strict: bool) -> Result<(PskEntry, Option<String>), KeyError> {
    if spec.id.is_empty() {
        return Err(KeyError::BadPsk(
            spec.key_path.clone(),
            "empty key identifier".into(),
        ));
    }
    let (data, warning) = read_secret(&spec.key_path, strict)?;
    let key = parse_psk(&data).map_err(|e| KeyError::BadPsk(spec.key_path.clone(), e))?;
    let entry = PskEntry {
        label: spec
            .label
            .clone()
            .unwrap_or_else(|| default_label(&spec.key_path)),
        id: spec.id.clone(),
        key,
    };
    Ok((entry, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<KeyStore>();
        send_sync::<crate::cms::Cek>();
        send_sync::<crate::cms::Recipient>();
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex(b"00ff10\n").unwrap().as_slice(), &[0, 255, 16]);
        assert_eq!(decode_hex(b"  AbCd ").unwrap().as_slice(), &[0xab, 0xcd]);
        assert!(decode_hex(b"abc").is_none());
        assert!(decode_hex(b"zz").is_none());
        assert!(decode_hex(b"").is_none());
    }

    #[test]
    fn psk_hex_or_raw() {
        let hex = b"14874e901777fcbe01d87daa45621a9d3ea2ef32ad9989feaec56ab815f962c3\n";
        assert_eq!(parse_psk(hex).unwrap().len(), 32);
        assert_eq!(parse_psk(&[0x99u8; 24]).unwrap().as_slice(), &[0x99u8; 24]);
        assert_eq!(parse_psk(&[0x01u8; 16]).unwrap().len(), 16);
        assert!(parse_psk(b"0011").is_err());
        assert!(parse_psk(&[0u8; 20]).is_err());
    }

    #[test]
    fn labels_default_to_file_stem() {
        assert_eq!(default_label(Path::new("/etc/sipsd/proxy1.key")), "proxy1");
        assert_eq!(default_label(Path::new("psk-proxy1.hex")), "psk-proxy1");
    }

    #[test]
    fn readable_key_files_warn_or_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/keys");
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["proxy1.key", "proxy1.crt", "psk-proxy1.hex"] {
            std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
        }
        let spec = |strict| KeySpec {
            rsa: vec![RsaKeySpec {
                key_path: dir.path().join("proxy1.key"),
                cert_path: dir.path().join("proxy1.crt"),
                label: None,
            }],
            psk: vec![PskSpec {
                id: b"psk-proxy1".to_vec(),
                key_path: dir.path().join("psk-proxy1.hex"),
                label: None,
            }],
            identities: vec![],
            strict_permissions: strict,
        };
        let chmod = |f: &str, mode| {
            std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(mode))
                .expect("chmod")
        };
        chmod("proxy1.key", 0o600);
        chmod("psk-proxy1.hex", 0o600);
        let ok = KeyStore::load(&spec(true)).expect("0600 files load in strict mode");
        assert!(ok.warnings().is_empty());
        chmod("proxy1.key", 0o644);
        chmod("psk-proxy1.hex", 0o640);
        let warned = KeyStore::load(&spec(false)).expect("default: load with warnings");
        assert_eq!(warned.warnings().len(), 2, "{:?}", warned.warnings());
        assert!(
            warned.warnings()[0].contains("proxy1.key") && warned.warnings()[0].contains("644")
        );
        assert!(warned.warnings()[1].contains("psk-proxy1.hex"));
        assert!(matches!(
            KeyStore::load(&spec(true)),
            Err(KeyError::InsecurePermissions(p)) if p.ends_with("proxy1.key")
        ));
        chmod("proxy1.key", 0o600);
        assert!(matches!(
            KeyStore::load(&spec(true)),
            Err(KeyError::InsecurePermissions(p)) if p.ends_with("psk-proxy1.hex")
        ));
        println!("0600: loads, no warning; 0644/0640 default: loads with warnings {:?}; strict: InsecurePermissions", warned.warnings());
    }

    #[test]
    fn missing_files_are_reported() {
        let spec = KeySpec {
            rsa: vec![RsaKeySpec {
                key_path: "/nonexistent/sipsd/x.key".into(),
                cert_path: "/nonexistent/sipsd/x.crt".into(),
                label: None,
            }],
            ..Default::default()
        };
        assert!(matches!(KeyStore::load(&spec), Err(KeyError::Missing(_))));
        let empty = KeyStore::load(&KeySpec::default()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.labels().is_empty());
        assert!(empty.identities().is_empty());
    }
}
