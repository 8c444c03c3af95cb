//! The key store (`sipsd::crypto::keys`): RSA keys in every encoding OpenSSL writes, identities and
//! labels, one error per cause, and the strict permission check.

mod support;

use sipsd::crypto::cms;
use sipsd::crypto::keys::{KeyError, KeySpec, KeyStore, PskSpec, RsaKeySpec};

use support::vectors::{data, expected_sha256, key_path, msg, rsa_spec, sha256_hex, store};

#[test]
fn keystore_reads_pkcs8_pkcs1_pem_and_der() {
    let k = data().join("keys");
    for (key, cert) in [
        ("callee-pkcs8.der", "callee-crt.der"),
        ("callee-pkcs1.pem", "callee-crt.der"),
        ("callee-pkcs1.der", "callee-crt.der"),
    ] {
        let ks = KeyStore::load(&KeySpec {
            rsa: vec![RsaKeySpec {
                key_path: k.join(key),
                cert_path: k.join(cert),
                label: Some("callee".into()),
            }],
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{key}: {e}"));
        let o = cms::open(&msg("gcm256-oaep-callee-psk.der"), &ks).unwrap();
        assert_eq!(sha256_hex(&o.plaintext), expected_sha256(), "{key}");
    }
}

#[test]
fn keystore_identities_labels_and_errors() {
    let ks = store("callee");
    assert_eq!(ks.identities(), ["callee.example.net"]);
    assert_eq!(ks.labels(), ["callee"]);
    assert!(!ks.is_empty());
    let ks = KeyStore::load(&KeySpec {
        rsa: vec![RsaKeySpec {
            label: Some("edge".into()),
            ..rsa_spec("proxy1")
        }],
        identities: vec!["sip:proxy.example.org".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ks.identities(), ["sip:proxy.example.org"]);
    assert_eq!(ks.labels(), ["edge"]);

    // proxy1's key with callee's certificate.
    let e = KeyStore::load(&KeySpec {
        rsa: vec![RsaKeySpec {
            key_path: key_path("proxy1.key"),
            cert_path: key_path("callee.crt"),
            label: None,
        }],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(matches!(e, KeyError::Mismatch(_)), "{e}");

    // A certificate where the key should be, and the other way round.
    let e = KeyStore::load(&KeySpec {
        rsa: vec![RsaKeySpec {
            key_path: key_path("callee.crt"),
            cert_path: key_path("callee.crt"),
            label: None,
        }],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(matches!(e, KeyError::BadKey(..)), "{e}");
    let e = KeyStore::load(&KeySpec {
        rsa: vec![RsaKeySpec {
            key_path: key_path("callee.key"),
            cert_path: key_path("callee.key"),
            label: None,
        }],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(matches!(e, KeyError::BadCert(..)), "{e}");

    // A PSK file of the wrong size.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.hex");
    std::fs::write(&bad, "abcd\n").unwrap();
    let e = KeyStore::load(&KeySpec {
        psk: vec![PskSpec {
            id: b"x".to_vec(),
            key_path: bad,
            label: None,
        }],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(matches!(e, KeyError::BadPsk(..)), "{e}");
    // No key material in messages.
    assert!(!e.to_string().contains("abcd"));
}

#[test]
fn keystore_strict_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("callee.key");
    let psk = dir.path().join("psk.hex");
    std::fs::copy(key_path("callee.key"), &key).unwrap();
    std::fs::copy(key_path("psk-proxy1.hex"), &psk).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o640)).unwrap();
    let spec = |strict| KeySpec {
        rsa: vec![RsaKeySpec {
            key_path: key.clone(),
            cert_path: key_path("callee.crt"),
            label: None,
        }],
        psk: vec![PskSpec {
            id: b"psk-proxy1".to_vec(),
            key_path: psk.clone(),
            label: None,
        }],
        strict_permissions: strict,
        ..Default::default()
    };
    // Not strict: loads.
    KeyStore::load(&spec(false)).unwrap();
    assert!(matches!(
        KeyStore::load(&spec(true)),
        Err(KeyError::InsecurePermissions(p)) if p == key
    ));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        KeyStore::load(&spec(true)),
        Err(KeyError::InsecurePermissions(p)) if p == psk
    ));
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o400)).unwrap();
    let ks = KeyStore::load(&spec(true)).unwrap();
    assert_eq!(ks.labels(), ["callee", "psk"]);
}
