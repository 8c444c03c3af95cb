//! Helpers shared by the CMS integration tests (`cms_vectors`, `cms_openssl`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sipsd::crypto::cms::{IdKind, Recipient, RsaPadding};
use zeroize::Zeroizing;

/// The interop vectors: `$SIPSD_VECTORS`, else the committed copy of `shared/vectors`.
pub fn vectors() -> PathBuf {
    match std::env::var_os("SIPSD_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors"),
    }
}

/// `tests/data`.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A file of the vectors' `keys/`.
pub fn key_path(name: &str) -> PathBuf {
    vectors().join("keys").join(name)
}

/// A file of the vectors' `msgs/`.
pub fn msg(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join("msgs").join(name)).unwrap()
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
    Recipient::from_cert_file(&key_path(&format!("{who}.crt")), id, padding).unwrap()
}

/// The vectors' pre-shared key as a recipient.
pub fn psk_recipient() -> Recipient {
    Recipient::Psk {
        id: read_hex("psk-proxy1.id.hex"),
        kek: Zeroizing::new(read_hex("psk-proxy1.hex")),
    }
}
