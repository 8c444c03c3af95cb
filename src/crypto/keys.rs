//! The proxy's (or user agent's) keys and identities: RSA private keys with their certificates,
//! pre-shared key-encryption keys (PSKs), and the identity names it answers to.
//!
//! A [`KeyStore`] is loaded once from a [`KeySpec`] (paths from the configuration) and then only
//! read. The CMS layer uses it to find which RecipientInfo names one of our keys: an RSA key by
//! its certificate's issuer and serial number or subjectKeyIdentifier, a PSK by its KEK
//! identifier.

use std::fmt;
use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

use super::cert::{self, is_pem};
use super::cms::signed::{SignerKey, TrustedSigner};
use super::cms::{
    IdKind, KeyLookup, Recipient, RecipientKey, RecipientKeyId, RecipientKeyIdRef, RsaPadding,
};

use super::cms::rsa_backend::RsaKey;

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

/// A key that signs what a user agent sends (RFC 8551 sign-then-encrypt), and its certificate.
#[derive(Clone, Debug)]
pub struct SignKeySpec {
    /// Private key: PKCS#8 or PKCS#1, PEM or DER.
    pub key_path: PathBuf,
    /// Its certificate: PEM or DER.
    pub cert_path: PathBuf,
    /// The address of record (`user@domain`) it signs for; `None`: every sender without a key
    /// of its own.
    pub aor: Option<String>,
}

/// What to load into a [`KeyStore`].
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    /// RSA identities.
    pub rsa: Vec<RsaKeySpec>,
    /// Pre-shared keys.
    pub psk: Vec<PskSpec>,
    /// Signing keys.
    pub sign: Vec<SignKeySpec>,
    /// Certificates whose signatures are believed: files, or directories whose `*.crt` and
    /// `*.pem` files are read.
    pub trusted_signers: Vec<PathBuf>,
    /// Certificates of others every new key is wrapped for (an edge's trusted proxies).
    pub recipient_certs: Vec<PathBuf>,
    /// Pre-shared keys of others every new key is wrapped for.
    pub recipient_psks: Vec<PskSpec>,
    /// Identity names (e.g. SIP URIs or host names) this party answers to; if empty,
    /// [`KeyStore::identities`] gives the CN of each certificate's subject.
    pub identities: Vec<String>,
    /// Refuse a private key or PSK file that group or others may read or write.
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
    /// The key file may be read or written by group or others (with `strict_permissions`).
    #[error("{0}: key file is readable or writable by group or others")]
    InsecurePermissions(PathBuf),
    /// The key file's path names a symbolic link (refused: a key file is opened with
    /// `O_NOFOLLOW`).
    #[error("{0}: key file is a symbolic link")]
    Symlink(PathBuf),
    /// The key file is not a regular file (a directory, FIFO, device or socket).
    #[error("{0}: key file is not a regular file")]
    NotRegular(PathBuf),
    /// The key file belongs to another user than the process's effective user (or root).
    #[error("{0}: key file is owned by uid {1}, not by this process's user (uid {2}) or root")]
    ForeignOwner(PathBuf, u32, u32),
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

/// Our keys and identities.
#[derive(Default)]
pub struct KeyStore {
    rsa: Vec<RsaIdentity>,
    psk: Vec<PskEntry>,
    /// Signing keys, with the address of record each signs for.
    signers: Vec<(Option<String>, SignerKey)>,
    trusted: Vec<TrustedSigner>,
    /// Who every new key is wrapped for besides the callee (RSA-OAEP with SHA-256, issuer
    /// and serial number; AES key wrap).
    recipients: Vec<Recipient>,
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
    /// Key files are read with [`read_secret_file`]: a symbolic link, a non-regular file or a
    /// file of another owner is refused; a private key or PSK file that group or others may
    /// read or write is refused with [`KeyError::InsecurePermissions`] when
    /// `spec.strict_permissions` is set, and otherwise loaded with a warning
    /// ([`KeyStore::warnings`]).
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
        for k in &spec.sign {
            let (key, warning) = load_signer(k, spec.strict_permissions)?;
            store
                .signers
                .push((k.aor.as_deref().map(str::to_ascii_lowercase), key));
            store.warnings.extend(warning);
        }
        for path in &spec.trusted_signers {
            store.trusted.extend(load_trusted(path)?);
        }
        for path in &spec.recipient_certs {
            store.recipients.push(recipient_cert(path)?);
        }
        for p in &spec.recipient_psks {
            let (kek, warning) = read_psk_file(&p.key_path, spec.strict_permissions)?;
            store.recipients.push(Recipient::Psk {
                id: p.id.clone(),
                kek,
            });
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
    /// key files group or others may read or write (without `strict_permissions`). The proxy's host
    /// logs them at start.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The key that signs for the address of record `aor` (`user@domain`, compared without
    /// regard to case): the one configured for it, else one configured for every sender.
    pub fn signer_for(&self, aor: &str) -> Option<&SignerKey> {
        self.signers
            .iter()
            .find(|(a, _)| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(aor)))
            .or_else(|| self.signers.iter().find(|(a, _)| a.is_none()))
            .map(|(_, k)| k)
    }

    /// The certificates whose signatures are believed.
    pub fn trusted_signers(&self) -> &[TrustedSigner] {
        &self.trusted
    }

    /// Who every new key is wrapped for besides the callee (`proxy_cert`, `proxy_psk`).
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
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
        match id.as_ref() {
            RecipientKeyIdRef::KekId(kid) => self.psk(kid).map(|p| p.label.as_str()),
            other => self.rsa(other).map(|r| r.label.as_str()),
        }
    }

    fn rsa(&self, id: RecipientKeyIdRef<'_>) -> Option<&RsaIdentity> {
        match id {
            RecipientKeyIdRef::IssuerSerial { issuer, serial } => self
                .rsa
                .iter()
                .find(|r| r.issuer == issuer && r.serial == serial),
            RecipientKeyIdRef::SubjectKeyId(ski) => self.rsa.iter().find(|r| r.ski == ski),
            _ => None,
        }
    }

    fn psk(&self, kid: &[u8]) -> Option<&PskEntry> {
        self.psk.iter().find(|p| p.id == kid)
    }
}

impl KeyLookup for KeyStore {
    fn find(&self, id: &RecipientKeyId) -> Option<RecipientKey<'_>> {
        self.find_ref(id.as_ref())
    }

    fn find_ref(&self, id: RecipientKeyIdRef<'_>) -> Option<RecipientKey<'_>> {
        match id {
            RecipientKeyIdRef::KekId(kid) => self.psk(kid).map(|p| RecipientKey::Psk {
                kek: &p.key,
                label: &p.label,
            }),
            _ => self.rsa(id).map(|r| RecipientKey::Rsa {
                key: &r.key,
                label: &r.label,
            }),
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

/// Largest key file read (a PEM RSA-8192 key is about 6.5 KB).
const MAX_SECRET_FILE: u64 = 1 << 20;

/// Reads a secret file (private key, pre-shared key, dialog key) through one descriptor, so
/// that what is checked is what is read (no TOCTOU):
/// - opened with `O_NOFOLLOW` (a symbolic link as the last path component is refused with
///   [`KeyError::Symlink`]) and `O_NONBLOCK` (opening a FIFO does not wait for a writer);
/// - `fstat` of that descriptor: not a regular file is [`KeyError::NotRegular`]; a file owned by
///   another user than the process's effective uid or root is [`KeyError::ForeignOwner`];
/// - group or other **read or write** bits: refused with [`KeyError::InsecurePermissions`]
///   when `strict`, else read with a warning (the second value, file and mode only);
/// - then read from the same descriptor into a zeroizing buffer of the file's size.
pub fn read_secret_file(
    path: &Path,
    strict: bool,
) -> Result<(Zeroizing<Vec<u8>>, Option<String>), KeyError> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let unreadable = |e: std::io::Error| KeyError::Unreadable(path.to_path_buf(), e.to_string());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => KeyError::Symlink(path.to_path_buf()),
            _ if e.kind() == std::io::ErrorKind::NotFound => KeyError::Missing(path.to_path_buf()),
            _ => unreadable(e),
        })?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.file_type().is_file() {
        return Err(KeyError::NotRegular(path.to_path_buf()));
    }
    let euid = effective_uid();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(KeyError::ForeignOwner(path.to_path_buf(), meta.uid(), euid));
    }
    let mode = meta.mode() & 0o777;
    let warning = if mode & 0o066 != 0 {
        if strict {
            return Err(KeyError::InsecurePermissions(path.to_path_buf()));
        }
        Some(format!(
            "{}: key file is readable or writable by group or others (mode {mode:03o}); chmod 600 it, or set strict_key_permissions=1 to refuse such files",
            path.display(),
        ))
    } else {
        None
    };
    if meta.len() > MAX_SECRET_FILE {
        return Err(KeyError::Unreadable(
            path.to_path_buf(),
            format!("{} bytes: too large for a key file", meta.len()),
        ));
    }
    // Exactly the size fstat gave, so the buffer never reallocates (no unzeroized copies);
    // a file that changes size meanwhile is an error.
    let mut data = Zeroizing::new(vec![0u8; meta.len() as usize]);
    file.read_exact(&mut data).map_err(unreadable)?;
    let mut extra = [0u8; 1];
    if file.read(&mut extra).map_err(unreadable)? != 0 {
        return Err(KeyError::Unreadable(
            path.to_path_buf(),
            "file grew while being read".into(),
        ));
    }
    Ok((data, warning))
}

/// The process's effective user id (an FFI call: std has no wrapper).
#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and always succeeds.
    unsafe { libc::geteuid() }
}

/// Reads a pre-shared key file ([`read_secret_file`]): hex on one line, or 16/24/32 raw bytes.
pub fn read_psk_file(
    path: &Path,
    strict: bool,
) -> Result<(Zeroizing<Vec<u8>>, Option<String>), KeyError> {
    let (data, warning) = read_secret_file(path, strict)?;
    let key = parse_psk(&data).map_err(|e| KeyError::BadPsk(path.to_path_buf(), e))?;
    Ok((key, warning))
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

/// A private key file ([`read_secret_file`]) and the certificate file that must be its own:
/// the key, the certificate and the key file's warning.
fn key_and_cert(
    key_path: &Path,
    cert_path: &Path,
    strict: bool,
) -> Result<(rsa::PrivateKey, x509_cert::Certificate, Option<String>), KeyError> {
    let (key_data, warning) = read_secret_file(key_path, strict)?;
    let key = parse_private_key(&key_data).map_err(|e| KeyError::BadKey(key_path.into(), e))?;
    let cert = cert::parse_certificate(&read_file(cert_path)?)
        .map_err(|e| KeyError::BadCert(cert_path.into(), e))?;
    let cert_pub =
        cert::certificate_public_key(&cert).map_err(|e| KeyError::BadCert(cert_path.into(), e))?;
    if &cert_pub != key.as_public_key() {
        return Err(KeyError::Mismatch(cert_path.into()));
    }
    Ok((key, cert, warning))
}

fn load_rsa(spec: &RsaKeySpec, strict: bool) -> Result<(RsaIdentity, Option<String>), KeyError> {
    let (key, cert, warning) = key_and_cert(&spec.key_path, &spec.cert_path, strict)?;
    let (issuer, serial) =
        cert::issuer_and_serial(&cert).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    let ski =
        cert::subject_key_id(&cert).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    let identity = RsaIdentity {
        label: spec
            .label
            .clone()
            .unwrap_or_else(|| default_label(&spec.key_path)),
        key: RsaKey::new(key),
        issuer,
        serial,
        ski,
        cn: cert::common_name(&cert),
    };
    Ok((identity, warning))
}

fn load_signer(spec: &SignKeySpec, strict: bool) -> Result<(SignerKey, Option<String>), KeyError> {
    let (key, cert, warning) = key_and_cert(&spec.key_path, &spec.cert_path, strict)?;
    let signer =
        SignerKey::new(key, cert).map_err(|e| KeyError::BadCert(spec.cert_path.clone(), e))?;
    Ok((signer, warning))
}

/// A certificate recipient as an edge wraps for it: RSA-OAEP with SHA-256, named by issuer and
/// serial number.
pub fn recipient_cert(path: &Path) -> Result<Recipient, KeyError> {
    let cert = cert::parse_certificate(&read_file(path)?)
        .map_err(|e| KeyError::BadCert(path.to_path_buf(), e))?;
    cert::certificate_public_key(&cert).map_err(|e| KeyError::BadCert(path.to_path_buf(), e))?;
    Ok(Recipient::Cert {
        cert,
        id: IdKind::IssuerSerial,
        padding: RsaPadding::OaepSha256,
    })
}

/// A trusted signer certificate, or every `*.crt` / `*.pem` of a directory (in name order).
fn load_trusted(path: &Path) -> Result<Vec<TrustedSigner>, KeyError> {
    let one = |p: &Path| -> Result<TrustedSigner, KeyError> {
        let cert = cert::parse_certificate(&read_file(p)?)
            .map_err(|e| KeyError::BadCert(p.to_path_buf(), e))?;
        TrustedSigner::new(&cert).map_err(|e| KeyError::BadCert(p.to_path_buf(), e))
    };
    if !path.is_dir() {
        return Ok(vec![one(path)?]);
    }
    let unreadable = |e: std::io::Error| KeyError::Unreadable(path.to_path_buf(), e.to_string());
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(unreadable)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("crt") || x.eq_ignore_ascii_case("pem"))
        })
        .collect();
    files.sort();
    files.iter().map(|p| one(p)).collect()
}

/// A PSK file's key: hex on one line, or 16/24/32 raw bytes.
fn parse_psk(data: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    const LENS: [usize; 3] = [16, 24, 32];
    if let Some(k) = crate::hex::decode_secret(data) {
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
    let (key, warning) = read_psk_file(&spec.key_path, strict)?;
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
        send_sync::<crate::crypto::cms::Cek>();
        send_sync::<crate::crypto::cms::Recipient>();
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
            ..Default::default()
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
    fn key_files_are_checked_on_the_descriptor_they_are_read_from() {
        use std::os::unix::fs::PermissionsExt;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/keys");
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |f: &str| dir.path().join(f);
        let chmod = |f: &str, mode| {
            std::fs::set_permissions(p(f), std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        std::fs::copy(src.join("psk-proxy1.hex"), p("psk.hex")).expect("copy");
        std::fs::copy(src.join("proxy1.key"), p("proxy1.key")).expect("copy");
        std::fs::copy(src.join("proxy1.crt"), p("proxy1.crt")).expect("copy");
        chmod("psk.hex", 0o600);
        chmod("proxy1.key", 0o600);
        let want = std::fs::read(p("psk.hex")).unwrap();

        // 0600, owned by us: read, no warning, in strict mode too.
        let (data, warning) = read_secret_file(&p("psk.hex"), true).expect("0600 loads");
        assert_eq!(&data[..], &want[..]);
        assert!(warning.is_none());
        println!("  ok   0600 file of our own: read, no warning (strict)");

        // Group read (0640) and other write (0602): refused in strict mode, warned otherwise.
        for mode in [0o640, 0o602, 0o620, 0o604] {
            chmod("psk.hex", mode);
            assert!(
                matches!(read_secret_file(&p("psk.hex"), true),
                    Err(KeyError::InsecurePermissions(f)) if f.ends_with("psk.hex")),
                "{mode:o} strict"
            );
            let (data, warning) = read_secret_file(&p("psk.hex"), false).expect("non-strict");
            assert_eq!(&data[..], &want[..]);
            let w = warning.expect("a warning");
            assert!(
                w.contains("psk.hex") && w.contains(&format!("{mode:03o}")),
                "{w}"
            );
            assert!(!w.contains(std::str::from_utf8(&want).unwrap().trim()));
        }
        chmod("psk.hex", 0o600);
        println!("  ok   0640/0620 (group) and 0604/0602 (other read/write): strict refuses, default warns with file and mode only");

        // A symbolic link to a good key file: refused (O_NOFOLLOW), even in default mode.
        std::os::unix::fs::symlink(p("psk.hex"), p("link.hex")).unwrap();
        assert!(matches!(
            read_secret_file(&p("link.hex"), false),
            Err(KeyError::Symlink(f)) if f.ends_with("link.hex")
        ));
        std::os::unix::fs::symlink(p("proxy1.key"), p("link.key")).unwrap();
        let spec = KeySpec {
            rsa: vec![RsaKeySpec {
                key_path: p("link.key"),
                cert_path: p("proxy1.crt"),
                label: None,
            }],
            ..Default::default()
        };
        assert!(matches!(KeyStore::load(&spec), Err(KeyError::Symlink(_))));
        println!("  ok   symlink to a 0600 key (PSK and RSA key store): KeyError::Symlink");

        // A directory and a FIFO (without a writer: the open must not wait for one).
        std::fs::create_dir(p("dir.key")).unwrap();
        assert!(matches!(
            read_secret_file(&p("dir.key"), false),
            Err(KeyError::NotRegular(_))
        ));
        let mkfifo = std::process::Command::new("mkfifo")
            .arg(p("fifo.key"))
            .status()
            .expect("mkfifo");
        assert!(mkfifo.success());
        assert!(matches!(
            read_secret_file(&p("fifo.key"), false),
            Err(KeyError::NotRegular(_))
        ));
        println!("  ok   directory and FIFO (no writer, no wait): KeyError::NotRegular");

        // Another owner than our effective uid (and not root).
        let euid = effective_uid();
        if euid == 0 {
            std::os::unix::fs::chown(p("psk.hex"), Some(65534), None).expect("chown");
            assert!(matches!(
                read_secret_file(&p("psk.hex"), false),
                Err(KeyError::ForeignOwner(_, 65534, 0))
            ));
            println!("  ok   0600 file owned by uid 65534, read as root: KeyError::ForeignOwner");
        } else {
            println!("  (not root: the foreign-owner case needs chown, not run)");
        }
        assert!(matches!(
            read_secret_file(&p("absent.hex"), false),
            Err(KeyError::Missing(_))
        ));
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
