//! The interop vectors made with OpenSSL (a copy of `shared/vectors` is committed under
//! `tests/data/vectors`; `$SIPSD_VECTORS` points elsewhere) and the test keys in them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sipsd::crypto::cms::{IdKind, Recipient, RsaPadding};
use sipsd::crypto::keys::{KeySpec, KeyStore, PskSpec, RsaKeySpec};
use zeroize::Zeroizing;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The vectors: `$SIPSD_VECTORS`, else the committed copy.
pub fn vectors() -> PathBuf {
    match std::env::var_os("SIPSD_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => root().join("tests/data/vectors"),
    }
}

/// `tests/data`.
pub fn data() -> PathBuf {
    root().join("tests/data")
}

/// The vectors' `keys/` (callee, proxy1, proxy2 keys and certificates, the pre-shared key).
pub fn keys() -> PathBuf {
    vectors().join("keys")
}

/// A file of the vectors' `keys/`.
pub fn key_path(name: &str) -> PathBuf {
    keys().join(name)
}

/// `KEY:CERT` of `keys/WHO.key` and `keys/WHO.crt`, as the sipsd CLI's `--key` takes it.
pub fn key_pair(who: &str) -> String {
    format!(
        "{}:{}",
        key_path(&format!("{who}.key")).display(),
        key_path(&format!("{who}.crt")).display()
    )
}

/// A file of the vectors' `msgs/`.
pub fn msg(name: &str) -> Vec<u8> {
    let p = vectors().join("msgs").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The SDP offer every vector decrypts to.
pub fn offer() -> Vec<u8> {
    msg("offer.sdp")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A hex file of the vectors' `keys/`, decoded.
pub fn read_hex(name: &str) -> Vec<u8> {
    unhex(&std::fs::read_to_string(key_path(name)).unwrap())
}

/// A certificate recipient from the vectors' `keys/WHO.crt`.
pub fn cert_recipient(who: &str, id: IdKind, padding: RsaPadding) -> Recipient {
    Recipient::from_cert_file(&key_path(&format!("{who}.crt")), id, padding)
        .unwrap_or_else(|e| panic!("certificate {who}.crt: {e}"))
}

/// The vectors' pre-shared key as a recipient.
pub fn psk_recipient() -> Recipient {
    Recipient::Psk {
        id: read_hex("psk-proxy1.id.hex"),
        kek: Zeroizing::new(read_hex("psk-proxy1.hex")),
    }
}

/// Whether `dir` holds the key and certificate of each of `who`.
pub fn has_keys(dir: &Path, who: &[&str]) -> bool {
    who.iter()
        .all(|n| dir.join(format!("{n}.key")).is_file() && dir.join(format!("{n}.crt")).is_file())
}

/// The SHA-256 (lower-case hex) every vector's plaintext has (`msgs/offer.sdp.sha256`).
pub fn expected_sha256() -> String {
    let s = std::fs::read_to_string(vectors().join("msgs/offer.sdp.sha256")).unwrap();
    s.split_whitespace().next().unwrap().to_ascii_lowercase()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `keys/NAME.key` with `keys/NAME.crt`.
pub fn rsa_spec(name: &str) -> RsaKeySpec {
    RsaKeySpec {
        key_path: key_path(&format!("{name}.key")),
        cert_path: key_path(&format!("{name}.crt")),
        label: None,
    }
}

/// The vectors' pre-shared key.
pub fn psk_spec() -> PskSpec {
    PskSpec {
        id: read_hex("psk-proxy1.id.hex"),
        key_path: key_path("psk-proxy1.hex"),
        label: None,
    }
}

/// A key store holding just one identity: "callee", "proxy1", "proxy2" or "psk".
pub fn store(who: &str) -> KeyStore {
    let mut spec = KeySpec::default();
    if who == "psk" {
        spec.psk.push(psk_spec());
    } else {
        spec.rsa.push(rsa_spec(who));
    }
    KeyStore::load(&spec).unwrap_or_else(|e| panic!("key store {who}: {e}"))
}

/// A key store of one RSA key and its certificate.
pub fn store_of(key: &Path, cert: &Path) -> KeyStore {
    KeyStore::load(&KeySpec {
        rsa: vec![RsaKeySpec {
            key_path: key.to_path_buf(),
            cert_path: cert.to_path_buf(),
            label: None,
        }],
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("key store {}: {e}", key.display()))
}

/// Every RSA key transport padding sipsd seals with.
pub const PADDINGS: [RsaPadding; 3] = [
    RsaPadding::OaepSha1,
    RsaPadding::OaepSha256,
    RsaPadding::Pkcs1v15,
];

/// Both ways a RecipientInfo names a certificate.
pub const ID_KINDS: [IdKind; 2] = [IdKind::IssuerSerial, IdKind::SubjectKeyId];

/// Callee, proxy1 (certificates, named by `id`, wrapped with `padding`) and the pre-shared key.
pub fn three_recipients(id: IdKind, padding: RsaPadding) -> [Recipient; 3] {
    [
        cert_recipient("callee", id, padding),
        cert_recipient("proxy1", id, padding),
        psk_recipient(),
    ]
}
