//! Interoperability with the real `openssl cms` (OpenSSL 3): what sipsd seals, OpenSSL opens,
//! and what OpenSSL seals — with keys and certificates made fresh for each run — sipsd opens.

mod support;

use std::path::{Path, PathBuf};

use sipsd::crypto::cms::{
    self, Cek, CmsError, CmsKind, ContentAlg, IdKind, Recipient, RecipientKeyId, RsaPadding,
};
use sipsd::crypto::keys::{KeySpec, KeyStore, PskSpec};

use support::openssl::{decrypt, openssl, path_str};
use support::vectors::{
    hex, key_path, offer, read_hex, store_of, three_recipients, ID_KINDS, PADDINGS,
};

#[test]
fn openssl_opens_what_sipsd_seals() {
    let dir = tempfile::tempdir().unwrap();
    let offer = offer();
    let psk_hex = hex(&read_hex("psk-proxy1.hex"));
    let psk_id_hex = hex(&read_hex("psk-proxy1.id.hex"));
    for alg in [
        ContentAlg::Aes256Gcm,
        ContentAlg::Aes256Cbc,
        ContentAlg::Aes128Gcm,
    ] {
        for padding in PADDINGS {
            for id in ID_KINDS {
                let cek = Cek::generate(alg).unwrap();
                let recips = three_recipients(id, padding);
                let der = cms::seal(&offer, &recips, &cek).unwrap();
                let what = format!("{alg} {padding:?} {id:?}");
                for who in ["callee", "proxy1"] {
                    let crt = key_path(&format!("{who}.crt"));
                    let key = key_path(&format!("{who}.key"));
                    let pt = decrypt(
                        dir.path(),
                        &der,
                        &["-recip", path_str(&crt), "-inkey", path_str(&key)],
                    );
                    assert_eq!(pt, offer, "{what}: openssl as {who}");
                }
                let pt = decrypt(
                    dir.path(),
                    &der,
                    &["-secretkey", &psk_hex, "-secretkeyid", &psk_id_hex],
                );
                assert_eq!(pt, offer, "{what}: openssl with the PSK");
            }
        }
    }
}

#[test]
fn openssl_opens_sipsd_cbc_encrypteddata() {
    let dir = tempfile::tempdir().unwrap();
    let offer = offer();
    for alg in [ContentAlg::Aes256Cbc, ContentAlg::Aes128Cbc] {
        let cek = Cek::generate(alg).unwrap();
        let der = cms::seal_encrypted(&offer, &cek).unwrap();
        let input = dir.path().join("ed.der");
        std::fs::write(&input, &der).unwrap();
        let pt = openssl(&[
            "cms",
            "-EncryptedData_decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            path_str(&input),
            "-secretkey",
            &hex(cek.as_bytes()),
        ]);
        assert_eq!(pt, offer, "{alg}");
    }
}

#[test]
fn sipsd_opens_openssl_encrypteddata() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offer.sdp");
    std::fs::write(&input, offer()).unwrap();
    for alg in [ContentAlg::Aes256Cbc, ContentAlg::Aes128Cbc] {
        let cek = Cek::generate(alg).unwrap();
        let der = openssl(&[
            "cms",
            "-EncryptedData_encrypt",
            "-binary",
            &format!("-{}", alg.name()),
            "-secretkey",
            &hex(cek.as_bytes()),
            "-in",
            path_str(&input),
            "-outform",
            "DER",
        ]);
        let insp = cms::inspect(&der).unwrap();
        assert_eq!(insp.kind, CmsKind::EncryptedData);
        assert_eq!(insp.content_alg, Ok(alg));
        assert_eq!(
            cms::open_with_cek(&der, &cek).unwrap().as_slice(),
            offer().as_slice()
        );
        let other = Cek::generate(if alg == ContentAlg::Aes256Cbc {
            ContentAlg::Aes128Cbc
        } else {
            ContentAlg::Aes256Cbc
        })
        .unwrap();
        assert!(matches!(
            cms::open_with_cek(&der, &other),
            Err(CmsError::CekAlgMismatch)
        ));
    }
}

/// Fresh RSA keys and self-signed certificates made by `openssl req`.
struct Party {
    name: &'static str,
    key: PathBuf,
    crt: PathBuf,
}

fn make_party(dir: &Path, name: &'static str, bits: u32, extra: &[&str]) -> Party {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let subj = format!("/CN={name}.example.org");
    let newkey = format!("rsa:{bits}");
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        &newkey,
        "-nodes",
        "-keyout",
        path_str(&key),
        "-out",
        path_str(&crt),
        "-subj",
        &subj,
        "-days",
        "2",
    ];
    args.extend_from_slice(extra);
    openssl(&args);
    Party { name, key, crt }
}

fn store_for(p: &Party) -> KeyStore {
    store_of(&p.key, &p.crt)
}

#[test]
fn sipsd_opens_what_openssl_seals_for_fresh_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make_party(d, "alice", 2048, &[]);
    let b = make_party(d, "bob", 3072, &[]);
    let c = make_party(d, "carol", 2048, &[]);
    let outsider = make_party(d, "mallory", 2048, &[]);
    let input = d.join("offer.sdp");
    std::fs::write(&input, offer()).unwrap();
    let psk = [0x5au8; 32];
    let psk_hex = hex(&psk);
    let psk_file = d.join("psk.hex");
    std::fs::write(&psk_file, format!("{psk_hex}\n")).unwrap();

    let cases: &[(&str, ContentAlg, &[&str], [&str; 3])] = &[
        (
            "-aes-256-gcm",
            ContentAlg::Aes256Gcm,
            &["-keyopt", "rsa_padding_mode:oaep"],
            ["rsaes-oaep(sha1)", "rsa-pkcs1v15", "rsa-pkcs1v15"],
        ),
        (
            "-aes-128-cbc",
            ContentAlg::Aes128Cbc,
            &["-keyopt", "rsa_padding_mode:oaep"],
            ["rsaes-oaep(sha1)", "rsa-pkcs1v15", "rsa-pkcs1v15"],
        ),
        (
            "-aes-128-gcm",
            ContentAlg::Aes128Gcm,
            &[
                "-keyopt",
                "rsa_padding_mode:oaep",
                "-keyopt",
                "rsa_oaep_md:sha256",
            ],
            ["rsaes-oaep(sha256)", "rsa-pkcs1v15", "rsa-pkcs1v15"],
        ),
    ];
    for (cipher, alg, a_opts, a_key_algs) in cases {
        // -recip A [opts for A] -recip B -recip C, subjectKeyIdentifier ids, plus the PSK.
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            cipher,
            "-keyid",
            "-recip",
            path_str(&a.crt),
        ];
        args.extend_from_slice(a_opts);
        args.extend_from_slice(&["-recip", path_str(&b.crt), "-recip", path_str(&c.crt)]);
        args.extend_from_slice(&["-secretkey", &psk_hex, "-secretkeyid", "6b656b2d31"]);
        args.extend_from_slice(&["-in", path_str(&input), "-outform", "DER"]);
        let der = openssl(&args);

        let insp = cms::inspect(&der).unwrap();
        assert_eq!(insp.content_alg, Ok(*alg), "{cipher}");
        assert_eq!(insp.recipients.len(), 4);
        assert!(insp.recipients[..3]
            .iter()
            .all(|r| matches!(r.id, RecipientKeyId::SubjectKeyId(_))));
        let mut algs: Vec<&str> = insp.recipients[..3]
            .iter()
            .map(|r| r.key_alg.as_str())
            .collect();
        algs.sort();
        let mut want = a_key_algs.to_vec();
        want.sort();
        assert_eq!(algs, want, "{cipher}");

        for p in [&a, &b, &c] {
            let o = cms::open(&der, &store_for(p))
                .unwrap_or_else(|e| panic!("{cipher} as {}: {e}", p.name));
            assert_eq!(
                o.plaintext.as_slice(),
                offer().as_slice(),
                "{cipher} as {}",
                p.name
            );
            assert_eq!(o.key_label, p.name);
            assert_eq!(o.cek.alg(), *alg);
        }
        let ks = KeyStore::load(&KeySpec {
            psk: vec![PskSpec {
                id: b"kek-1".to_vec(),
                key_path: psk_file.clone(),
                label: None,
            }],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            cms::open(&der, &ks).unwrap().plaintext.as_slice(),
            offer().as_slice()
        );
        assert!(matches!(
            cms::open(&der, &store_for(&outsider)),
            Err(CmsError::NotRecipient)
        ));
    }
}

#[test]
fn sipsd_opens_openssl_ber_streaming_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make_party(d, "alice", 2048, &[]);
    let input = d.join("offer.sdp");
    std::fs::write(&input, offer()).unwrap();
    for cipher in ["-aes-256-gcm", "-aes-256-cbc"] {
        let der = openssl(&[
            "cms",
            "-encrypt",
            "-binary",
            "-stream",
            cipher,
            "-recip",
            path_str(&a.crt),
            "-in",
            path_str(&input),
            "-outform",
            "DER",
        ]);
        // Indefinite-length BER, as streamed.
        assert_eq!(&der[..2], &[0x30, 0x80], "{cipher}");
        let o = cms::open(&der, &store_for(&a)).unwrap_or_else(|e| panic!("{cipher}: {e}"));
        assert_eq!(o.plaintext.as_slice(), offer().as_slice());
    }
}

#[test]
fn computed_subject_key_id_matches_openssl() {
    // A certificate without the extension: sipsd computes RFC 5280 method 1. OpenSSL's default
    // extension value for a certificate of the same key is that same hash.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bare = make_party(
        d,
        "bare",
        2048,
        &[
            "-addext",
            "subjectKeyIdentifier=none",
            "-addext",
            "authorityKeyIdentifier=none",
        ],
    );
    let text = String::from_utf8(openssl(&[
        "x509",
        "-in",
        path_str(&bare.crt),
        "-noout",
        "-text",
    ]))
    .unwrap();
    assert!(!text.contains("Subject Key Identifier"), "{text}");
    let with_ski = d.join("withski.crt");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        path_str(&bare.key),
        "-out",
        path_str(&with_ski),
        "-subj",
        "/CN=bare.example.org",
        "-days",
        "2",
    ]);
    let input = d.join("offer.sdp");
    std::fs::write(&input, offer()).unwrap();
    let der = openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-aes-256-gcm",
        "-keyid",
        "-recip",
        path_str(&with_ski),
        "-in",
        path_str(&input),
        "-outform",
        "DER",
    ]);
    let o = cms::open(&der, &store_for(&bare)).unwrap();
    assert_eq!(o.plaintext.as_slice(), offer().as_slice());
    // And the other way: sipsd names the bare certificate by its computed SKI; OpenSSL, holding
    // the certificate with the extension, finds itself.
    let cek = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
    let r =
        Recipient::from_cert_file(&bare.crt, IdKind::SubjectKeyId, RsaPadding::OaepSha256).unwrap();
    let sealed = cms::seal(&offer(), &[r], &cek).unwrap();
    let pt = decrypt(
        d,
        &sealed,
        &["-recip", path_str(&with_ski), "-inkey", path_str(&bare.key)],
    );
    assert_eq!(pt, offer());
}

#[test]
fn unsupported_ciphers_and_recipient_kinds_from_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make_party(d, "alice", 2048, &[]);
    let input = d.join("offer.sdp");
    std::fs::write(&input, offer()).unwrap();
    for (cipher, oid) in [
        ("-aria-256-cbc", "1.2.410.200046.1.1.12"),
        ("-camellia-256-cbc", "1.2.392.200011.61.1.1.1.4"),
        ("-des3", "1.2.840.113549.3.7"),
        ("-aes-192-cbc", "2.16.840.1.101.3.4.1.22"),
    ] {
        let der = openssl(&[
            "cms",
            "-encrypt",
            "-binary",
            cipher,
            "-recip",
            path_str(&a.crt),
            "-in",
            path_str(&input),
            "-outform",
            "DER",
        ]);
        assert_eq!(
            cms::inspect(&der).unwrap().content_alg,
            Err(oid.to_string()),
            "{cipher}"
        );
        match cms::open(&der, &store_for(&a)) {
            Err(CmsError::UnsupportedContentAlg(got)) => assert_eq!(got, oid, "{cipher}"),
            other => panic!("{cipher}: {:?}", other.map(|o| o.kind)),
        }
    }

    // An EC recipient is a KeyAgreeRecipientInfo: reported, never ours.
    let ec_key = d.join("ec.key");
    let ec_crt = d.join("ec.crt");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        path_str(&ec_key),
        "-out",
        path_str(&ec_crt),
        "-subj",
        "/CN=ec",
        "-days",
        "2",
    ]);
    let der = openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-aes-256-gcm",
        "-recip",
        path_str(&ec_crt),
        "-recip",
        path_str(&a.crt),
        "-in",
        path_str(&input),
        "-outform",
        "DER",
    ]);
    let insp = cms::inspect(&der).unwrap();
    assert!(insp
        .recipients
        .iter()
        .any(|r| r.id == RecipientKeyId::Unsupported("kari")));
    // The RSA recipient beside it still opens.
    assert_eq!(
        cms::open(&der, &store_for(&a))
            .unwrap()
            .plaintext
            .as_slice(),
        offer().as_slice()
    );
}

/// The rotation proof (docs/PROTOCOL.md §6.3) is plain CMS: OpenSSL, given the KEK derived from
/// the current dialog key, makes one sipsd accepts as a rotation, and opens the proof sipsd makes.
#[test]
fn rotation_proof_interoperates_with_openssl() {
    use sipsd::engine::proxy::{Proxy, ProxyConfig, SipMessage, Unwrapped};
    use sipsd::engine::ua::UaSession;
    use sipsd::sip::body::BodyOptions;

    let dir = tempfile::tempdir().unwrap();
    let mut c = ProxyConfig::default();
    c.set(
        "rsa_key",
        &format!(
            "key={};cert={}",
            key_path("proxy1.key").display(),
            key_path("proxy1.crt").display()
        ),
    )
    .unwrap();
    let proxy = Proxy::new(c).unwrap();
    let raw = BodyOptions {
        inner_mime: false,
        ..BodyOptions::default()
    };
    let proxy1 = Recipient::from_cert_file(
        &key_path("proxy1.crt"),
        IdKind::IssuerSerial,
        RsaPadding::OaepSha1,
    )
    .unwrap();
    let (mut ua, offer_body) = UaSession::offer(
        "application/sdp",
        &offer(),
        std::slice::from_ref(&proxy1),
        ContentAlg::Aes256Gcm,
        None,
        &raw,
    )
    .unwrap();
    let msg = |to: &'static str, ct: &'static str, body: &'static [u8]| SipMessage {
        call_id: b"rot-openssl@example.org",
        from_tag: b"caller",
        to_tag: to.as_bytes(),
        method: b"INVITE",
        content_type: ct.as_bytes(),
        body,
        ..SipMessage::default()
    };
    const AUTH: &str = "application/pkcs7-mime; smime-type=authEnveloped-data";
    let leak = |v: Vec<u8>| -> &'static [u8] { Box::leak(v.into_boxed_slice()) };
    assert!(matches!(
        proxy.unwrap(&msg("", AUTH, leak(offer_body.body))),
        Ok(Unwrapped::Disclosed(_))
    ));

    // OpenSSL makes the rotation: a fresh CEK for proxy1, and the KEKRI under the derived KEK.
    let kek_hex = hex(&cms::rotation_kek(ua.cek()));
    let kekid_hex = hex(cms::ROTATION_KEK_ID);
    let input = dir.path().join("sdp");
    std::fs::write(&input, b"v=0 rotated by openssl\r\n").unwrap();
    let crt = key_path("proxy1.crt");
    let der = openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-outform",
        "DER",
        "-aes-256-gcm",
        "-in",
        path_str(&input),
        "-recip",
        path_str(&crt),
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-secretkey",
        &kek_hex,
        "-secretkeyid",
        &kekid_hex,
    ]);
    let parts = match proxy.unwrap(&msg("callee", AUTH, leak(der.clone()))) {
        Ok(Unwrapped::Disclosed(parts)) => parts,
        other => panic!("OpenSSL's rotation was not taken: {other:?}"),
    };
    assert_eq!(parts[0].generation, 2);
    assert_eq!(parts[0].body.as_slice(), b"v=0 rotated by openssl\r\n");
    assert_eq!(proxy.stats().unwrap().cache.rotations, 1);
    println!("OpenSSL-made rotation (KEKRI under HKDF(current CEK), kekid sipsd-dialog-key): taken, gen 2");

    // sipsd's own proof opens with OpenSSL given the same derived KEK.
    let current = ua.cek().clone();
    let rotation = ua
        .rotate(
            "application/sdp",
            &offer(),
            std::slice::from_ref(&proxy1),
            &raw,
        )
        .unwrap();
    let pt = decrypt(
        dir.path(),
        &rotation.body,
        &[
            "-secretkey",
            &hex(&cms::rotation_kek(&current)),
            "-secretkeyid",
            &kekid_hex,
        ],
    );
    assert_eq!(pt, offer());
    println!("sipsd's rotation proof opens with `openssl cms -decrypt -secretkey <HKDF KEK>`");
}
