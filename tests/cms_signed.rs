//! The signature inside the envelope (RFC 8551 sign-then-encrypt: a `multipart/signed` entity
//! with a detached SignedData) against OpenSSL, the independent peer:
//!
//! - what sipsd signs, `openssl cms -verify` verifies: the detached DER with the entity as
//!   `-content`, and the whole `multipart/signed` entity read as S/MIME;
//! - what `openssl cms -sign` signs (its default signed attributes with signing time and
//!   capabilities, none with `-noattr`, the signer by subjectKeyIdentifier with `-keyid`,
//!   SHA-384/512), sipsd verifies; and OpenSSL's own S/MIME `multipart/signed` output is read by
//!   the same code that reads a decrypted body (`engine::signature::read_inner`);
//! - a change to the entity after signing is caught either way.
//!
//! Run: `cargo test --test cms_signed -- --nocapture`.

#[macro_use]
mod support;

use sipsd::crypto::cms::signed::{sign_detached, verify_detached, SignatureCheck};
use sipsd::crypto::keys::{KeySpec, KeyStore, SignKeySpec};
use sipsd::engine::signature::{read_inner, SignaturePolicy};
use sipsd::sip::body::signed::multipart_signed;
use support::openssl::{openssl, path_str, self_signed};

const ENTITY: &[u8] = b"Content-Type: application/sdp\r\n\r\nv=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

fn alice_store(key: &std::path::Path, crt: &std::path::Path) -> KeyStore {
    KeyStore::load(&KeySpec {
        sign: vec![SignKeySpec {
            key_path: key.to_path_buf(),
            cert_path: crt.to_path_buf(),
            aor: Some("alice@example.net".into()),
        }],
        trusted_signers: vec![crt.to_path_buf()],
        ..Default::default()
    })
    .expect("alice's signing key and certificate")
}

fn changed(entity: &[u8]) -> Vec<u8> {
    let mut t = entity.to_vec();
    let at = t.windows(5).position(|w| w == b"40000").unwrap();
    t[at] = b'5';
    t
}

#[test]
fn openssl_verifies_what_sipsd_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, crt) = self_signed(d, "alice", "alice.example.net");
    let keys = alice_store(&key, &crt);
    let der = sign_detached(ENTITY, keys.signer_for("alice@example.net").unwrap()).unwrap();
    let (sig, content) = (d.join("sig.der"), d.join("entity"));
    std::fs::write(&sig, &der).unwrap();
    std::fs::write(&content, ENTITY).unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["cms", "-verify", "-binary", "-CAfile", path_str(&crt)];
        args.extend_from_slice(extra);
        std::process::Command::new("openssl")
            .args(&args)
            .output()
            .unwrap()
    };
    let out = verify(&[
        "-inform",
        "DER",
        "-in",
        path_str(&sig),
        "-content",
        path_str(&content),
    ]);
    check!(
        out.status.success() && out.stdout == ENTITY,
        "openssl cms -verify (alice's certificate as trust anchor) accepts sipsd's detached signature over the entity"
    );
    let info = String::from_utf8(openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-inform",
        "DER",
        "-in",
        path_str(&sig),
    ]))
    .unwrap();
    check!(
        info.contains("sha256WithRSAEncryption")
            && info.contains("messageDigest")
            && !info.contains("signingTime"),
        "openssl -cmsout -print: sha256WithRSAEncryption, messageDigest attribute, no signing time"
    );
    let (ct, body) = multipart_signed(ENTITY, &der);
    let smime = d.join("signed.eml");
    let mut file = format!("MIME-Version: 1.0\r\nContent-Type: {ct}\r\n\r\n").into_bytes();
    file.extend_from_slice(&body);
    std::fs::write(&smime, &file).unwrap();
    // Read as S/MIME text: OpenSSL canonicalises line ends to CRLF before checking the digest
    // (its -binary reading strips only the LF before a delimiter, where RFC 2046 gives the
    // whole CRLF to the delimiter), and prints the canonical entity.
    let out = std::process::Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-in",
            path_str(&smime),
            "-CAfile",
            path_str(&crt),
        ])
        .output()
        .unwrap();
    check!(
        out.status.success() && out.stdout == ENTITY,
        "openssl reads sipsd's multipart/signed entity as S/MIME, verifies it and gives back the signed entity: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    std::fs::write(&content, changed(ENTITY)).unwrap();
    let out = verify(&[
        "-inform",
        "DER",
        "-in",
        path_str(&sig),
        "-content",
        path_str(&content),
    ]);
    check!(
        !out.status.success(),
        "openssl refuses it once the entity changed: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("fail") || l.contains("digest"))
            .unwrap_or("")
            .trim()
    );
}

#[test]
fn sipsd_verifies_what_openssl_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, crt) = self_signed(d, "alice", "alice.example.net");
    let (_, other) = self_signed(d, "mallory", "mallory.example.net");
    let keys = alice_store(&key, &crt);
    let strangers = KeyStore::load(&KeySpec {
        trusted_signers: vec![other],
        ..Default::default()
    })
    .unwrap();
    let input = d.join("entity");
    std::fs::write(&input, ENTITY).unwrap();
    let alice = SignatureCheck::Valid {
        signer: "alice.example.net".into(),
    };
    for (what, extra) in [
        ("default (signing time, capabilities)", &[][..]),
        ("-noattr (no signed attributes)", &["-noattr"][..]),
        ("-keyid (signer by subjectKeyIdentifier)", &["-keyid"][..]),
        ("-md sha384", &["-md", "sha384"][..]),
        ("-md sha512", &["-md", "sha512"][..]),
    ] {
        let mut args = vec![
            "cms",
            "-sign",
            "-binary",
            "-outform",
            "DER",
            "-in",
            path_str(&input),
            "-signer",
            path_str(&crt),
            "-inkey",
            path_str(&key),
        ];
        args.extend_from_slice(extra);
        let der = openssl(&args);
        check!(
            verify_detached(&der, ENTITY, keys.trusted_signers()).unwrap() == alice,
            "openssl cms -sign {what}: sipsd verifies alice's detached signature"
        );
        check!(
            verify_detached(&der, ENTITY, strangers.trusted_signers()).unwrap()
                == SignatureCheck::UnknownSigner,
            "  with only mallory's certificate trusted: unknown signer"
        );
        let check = verify_detached(&der, &changed(ENTITY), keys.trusted_signers()).unwrap();
        check!(
            matches!(check, SignatureCheck::Invalid { .. }),
            "  the entity changed after signing: {check:?}"
        );
    }
    // OpenSSL's own S/MIME output (multipart/signed, base64 signature part, preamble, LF
    // line ends in its headers), read as a decrypted body is read.
    let smime = openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-in",
        path_str(&input),
        "-signer",
        path_str(&crt),
        "-inkey",
        path_str(&key),
    ]);
    let inner = read_inner(&smime, keys.trusted_signers(), SignaturePolicy::Optional).unwrap();
    check!(
        inner.signature == Some(SignatureCheck::Valid { signer: "alice.example.net".into() })
            && inner.content_type == "application/sdp"
            && inner.body.as_slice() == &ENTITY[ENTITY.len() - inner.body.len()..],
        "OpenSSL's S/MIME multipart/signed output: the body reader verifies alice and reads the SDP"
    );
    let optional = read_inner(&smime, &[], SignaturePolicy::Optional).unwrap();
    check!(
        optional.signature == Some(SignatureCheck::UnknownSigner),
        "  the same with no trusted signer, signature_policy=optional: read, signer unknown"
    );
    let e = read_inner(&smime, &[], SignaturePolicy::Required).err();
    check!(
        e.is_some_and(|e| e.to_string().contains("no trusted signer")),
        "  and with signature_policy=required: refused"
    );
}
