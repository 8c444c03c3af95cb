//! The profile reader for AuthEnvelopedData (the INVITE's offer of the common shape, read in
//! place by src/crypto/cms/profile.rs) against the general decoder (the `der` and `cms`
//! crates): on the offers sipsd seals (every recipient kind and padding, rotation proofs,
//! signed inner content), the offers OpenSSL writes, hand-built variants of the common shape
//! (tag lengths, authAttrs, recipients, deviations that leave it to the general decoder) and
//! mutations of all of them, both accept or both refuse, with the same inspection and the same
//! plaintext or error (`profile_agrees_with` in fuzz/common/lib.rs). The EncryptedData half is
//! tests/cms_profile_encrypted.rs; the DER builders are tests/support/der.rs.
//!
//! Run: `cargo test --test cms_profile_auth -- --nocapture`

#[macro_use]
mod support;

// only `profile_agrees_with` and the key stores of the fuzz targets' bodies are used here
#[allow(dead_code)]
#[path = "../fuzz/common/lib.rs"]
mod fuzz_common;

use std::path::Path;

use sipsd::crypto::cms::{self, Cek, CmsMessage, ContentAlg};
use support::der::{
    attribute, cat, ceks, children, contents, gcm_seal, mutations, tlv, tlv_as, Len,
    ID_CONTENT_TYPE, ID_CT_AUTH_ENVELOPED_DATA, ID_DATA, ID_ENCRYPTED_DATA, ID_SIGNING_TIME, KEY,
};
use support::rng::Rng;
use support::vectors::{cert_recipient, key_path, psk_recipient};

/// An AuthEnvelopedData rebuilt from one sipsd sealed (`base`, under [`KEY`]), with the
/// deviations of `v` from the common shape; the content re-encrypted so that the general
/// decoder's AAD (the authAttrs in DER order) authenticates.
#[derive(Clone, Default)]
struct AuthVariant {
    version: Option<u8>,
    /// authAttrs as written (each a whole Attribute), in this order.
    attrs: Option<Vec<Vec<u8>>>,
    unauth: bool,
    originator: bool,
    reverse_recipients: bool,
    /// This many copies of the recipients.
    repeat_recipients: usize,
    tag_len: Option<usize>,
    trailing: bool,
    overlong_aed: bool,
}

fn auth_variant(base: &[u8], alg: ContentAlg, pt: &[u8], v: &AuthVariant) -> Vec<u8> {
    let ci = children(base);
    let explicit = &ci[1];
    let aed = &children(explicit)[0];
    let parts = children(aed);
    let (version, ris, eci) = (&parts[0], &parts[1], &parts[2]);
    let mut ri_list = children(ris);
    if v.reverse_recipients {
        ri_list.reverse();
    }
    let mut all = Vec::new();
    for _ in 0..v.repeat_recipients.max(1) {
        all.extend(ri_list.iter().cloned());
    }
    let ris = tlv(0x31, &all.concat());
    let eci_parts = children(eci);
    let alg_id = &eci_parts[1];
    let gcm = &children(alg_id)[1];
    let nonce = contents(&children(gcm)[0]);
    let tag_len = v.tag_len.unwrap_or(16);
    let alg_id = if tag_len == 12 {
        tlv(
            0x30,
            &cat(&[&children(alg_id)[0], &tlv(0x30, &tlv(0x04, &nonce))]),
        )
    } else {
        tlv(
            0x30,
            &cat(&[
                &children(alg_id)[0],
                &tlv(
                    0x30,
                    &cat(&[&tlv(0x04, &nonce), &tlv(0x02, &[tag_len as u8])]),
                ),
            ]),
        )
    };
    let aad = v.attrs.as_ref().map(|a| {
        let mut sorted = a.clone();
        sorted.sort();
        tlv(0x31, &sorted.concat())
    });
    let key = &KEY[..alg.key_len()];
    let mut ct = pt.to_vec();
    let mut tag = gcm_seal(alg, key, &nonce, aad.as_deref().unwrap_or(&[]), &mut ct);
    tag.truncate(tag_len);
    let eci = tlv(0x30, &cat(&[&eci_parts[0], &alg_id, &tlv(0x80, &ct)]));
    let version = match v.version {
        Some(n) => tlv(0x02, &[n]),
        None => version.clone(),
    };
    let mut body = version;
    if v.originator {
        body.extend(tlv(0xa0, &[]));
    }
    body.extend(ris);
    body.extend(eci);
    if let Some(a) = &v.attrs {
        body.extend(tlv(0xa1, &a.concat()));
    }
    body.extend(tlv(0x04, &tag));
    if v.unauth {
        body.extend(tlv(
            0xa2,
            &attribute(ID_CONTENT_TYPE, &[&tlv(0x06, ID_DATA)]),
        ));
    }
    let aed = tlv_as(
        0x30,
        &body,
        if v.overlong_aed {
            Len::Overlong
        } else {
            Len::Minimal
        },
    );
    let mut out = tlv(
        0x30,
        &cat(&[&tlv(0x06, ID_CT_AUTH_ENVELOPED_DATA), &tlv(0xa0, &aed)]),
    );
    if v.trailing {
        out.push(0);
    }
    out
}

/// Offers sipsd seals: every recipient kind and padding, for proxy1 and for others, with and
/// without a rotation proof under one of [`ceks`], a plain and a signed-inner plaintext.
fn sealed_offers(ceks: &[Cek]) -> Vec<(String, Vec<u8>)> {
    use cms::{IdKind, RsaPadding};
    let sdp = b"Content-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".to_vec();
    let signer = {
        let keys = sipsd::crypto::keys::KeyStore::load(&sipsd::crypto::keys::KeySpec {
            sign: vec![sipsd::crypto::keys::SignKeySpec {
                key_path: key_path("callee.key"),
                cert_path: key_path("callee.crt"),
                aor: None,
            }],
            strict_permissions: false,
            ..Default::default()
        })
        .unwrap();
        let (ct, body) = sipsd::engine::signature::sign_entity(
            "application/sdp",
            b"v=0\r\n",
            keys.signer_for("alice@example.net").unwrap(),
        )
        .unwrap();
        [format!("Content-Type: {ct}\r\n\r\n").as_bytes(), &body].concat()
    };
    let mut out = Vec::new();
    for alg in [ContentAlg::Aes256Gcm, ContentAlg::Aes128Gcm] {
        let cek = Cek::from_bytes(alg, &KEY[..alg.key_len()]).unwrap();
        let current = ceks.iter().find(|c| c.alg() == alg).unwrap();
        let sets: Vec<(&str, Vec<cms::Recipient>)> = vec![
            ("psk", vec![psk_recipient()]),
            (
                "callee+psk",
                vec![
                    cert_recipient("callee", IdKind::IssuerSerial, RsaPadding::OaepSha1),
                    psk_recipient(),
                ],
            ),
            (
                "proxy1 oaep-sha1 issuer",
                vec![cert_recipient(
                    "proxy1",
                    IdKind::IssuerSerial,
                    RsaPadding::OaepSha1,
                )],
            ),
            (
                "proxy1 oaep-sha256 ski + callee pkcs1",
                vec![
                    cert_recipient("proxy1", IdKind::SubjectKeyId, RsaPadding::OaepSha256),
                    cert_recipient("callee", IdKind::SubjectKeyId, RsaPadding::Pkcs1v15),
                ],
            ),
            (
                "proxy1 pkcs1 + proxy2 + psk",
                vec![
                    cert_recipient("proxy1", IdKind::IssuerSerial, RsaPadding::Pkcs1v15),
                    cert_recipient("proxy2", IdKind::IssuerSerial, RsaPadding::OaepSha1),
                    psk_recipient(),
                ],
            ),
            (
                "callee + rotation proof",
                vec![
                    cert_recipient("callee", IdKind::IssuerSerial, RsaPadding::OaepSha1),
                    cms::proof_recipient(current),
                ],
            ),
            (
                "psk + rotation proof",
                vec![psk_recipient(), cms::proof_recipient(current)],
            ),
        ];
        for (name, recipients) in sets {
            for (what, pt) in [("sdp", &sdp), ("signed", &signer)] {
                let der = cms::seal(pt, &recipients, &cek).unwrap();
                out.push((format!("{alg:?} {name} {what}"), der));
            }
        }
    }
    out
}

/// Offers OpenSSL writes (`openssl cms -encrypt -aes-256-gcm`): KTRI, KEKRI, both,
/// subjectKeyIdentifier, OAEP and PKCS#1 v1.5; `None` without openssl.
fn openssl_offers(dir: &Path) -> Vec<(String, Vec<u8>)> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        return Vec::new();
    }
    let cert = |n: &str| key_path(&format!("{n}.crt")).display().to_string();
    let psk = std::fs::read_to_string(key_path("psk-proxy1.hex"))
        .unwrap()
        .trim()
        .to_owned();
    let psk_id = "7073 6b2d 7072 6f78 7931".replace(' ', "");
    let input = dir.join("offer.sdp");
    std::fs::write(&input, b"Content-Type: application/sdp\r\n\r\nv=0\r\n").unwrap();
    let (p1, callee) = (cert("proxy1"), cert("callee"));
    let oaep: &[&str] = &["-keyopt", "rsa_padding_mode:oaep"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("ktri oaep", [&["-recip", p1.as_str()][..], oaep].concat()),
        ("ktri pkcs1", vec!["-recip", p1.as_str()]),
        (
            "ktri oaep-sha256",
            [
                &["-recip", p1.as_str()][..],
                oaep,
                &["-keyopt", "rsa_oaep_md:sha256"],
            ]
            .concat(),
        ),
        (
            "kekri",
            vec!["-secretkey", psk.as_str(), "-secretkeyid", psk_id.as_str()],
        ),
        (
            "ktri+kekri",
            [
                &["-recip", callee.as_str()][..],
                oaep,
                &["-recip", p1.as_str()],
                oaep,
                &["-secretkey", psk.as_str(), "-secretkeyid", psk_id.as_str()],
            ]
            .concat(),
        ),
        (
            "ski ktri+kekri",
            [
                &["-keyid", "-recip", callee.as_str()][..],
                oaep,
                &["-secretkey", psk.as_str(), "-secretkeyid", psk_id.as_str()],
            ]
            .concat(),
        ),
    ];
    let mut out = Vec::new();
    for cipher in ["-aes-256-gcm", "-aes-128-gcm"] {
        for (name, extra) in &cases {
            let outp = dir.join("out.der");
            let mut args = vec![
                "cms",
                "-encrypt",
                "-binary",
                cipher,
                "-in",
                input.to_str().unwrap(),
                "-outform",
                "DER",
                "-out",
                outp.to_str().unwrap(),
            ];
            args.extend(extra.iter().copied());
            let st = std::process::Command::new("openssl")
                .args(&args)
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&st.stderr)
            );
            out.push((
                format!("openssl {cipher} {name}"),
                std::fs::read(&outp).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn auth_enveloped_reader_agrees_with_the_general_decoder() {
    let ceks = ceks();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0xa0e1_5eed);
    let total = std::cell::Cell::new(0usize);
    let in_place = std::cell::Cell::new(0usize);
    let run = |what: &str, der: &[u8], keys: &dyn cms::KeyLookup| -> bool {
        total.set(total.get() + 1);
        match fuzz_common::profile_agrees_with(der, &ceks, keys) {
            Ok(fast) => {
                in_place.set(in_place.get() + usize::from(fast));
                fast
            }
            Err(e) => panic!("FAILED: {what} ({} bytes): {e}", der.len()),
        }
    };
    let full = fuzz_common::keystore();
    let psk = fuzz_common::psk_keystore();

    // what senders write: all read in place, and open as before
    let mut offers = sealed_offers(&ceks);
    let openssl = openssl_offers(dir.path());
    let n_openssl = openssl.len();
    offers.extend(openssl);
    for (name, der) in &offers {
        let fast = run(name, der, full);
        let msg = CmsMessage::parse(der).unwrap();
        let insp = msg.inspect().unwrap();
        let opened = msg.open(full, &mut cms::RsaBudget::unlimited());
        check!(
            fast,
            "{name}: read in place; {} recipients {:?}; with proxy1's keys: {}; both decoders agree",
            insp.recipients.len(),
            insp.recipients.iter().map(|r| r.key_alg.as_str()).collect::<Vec<_>>(),
            match &opened {
                Ok(o) => format!("opened by {} ({} bytes)", o.key_label, o.plaintext.len()),
                Err(e) => format!("refused ({e})"),
            }
        );
    }
    check!(
        n_openssl > 0,
        "{n_openssl} OpenSSL offers (KTRI OAEP/SHA-256/PKCS#1 v1.5, KEKRI, both, SKI) included"
    );

    // the common shape and each deviation from it, built on a sealed PSK + callee offer
    let pt = b"Content-Type: application/sdp\r\n\r\nv=0\r\n".repeat(4);
    let ct_attr = attribute(ID_CONTENT_TYPE, &[&tlv(0x06, ID_DATA)]);
    let time_attr = attribute(ID_SIGNING_TIME, &[&tlv(0x17, b"260101000000Z")]);
    let two_values = attribute(
        ID_CONTENT_TYPE,
        &[&tlv(0x06, ID_DATA), &tlv(0x06, ID_ENCRYPTED_DATA)],
    );
    let mut sorted = vec![ct_attr.clone(), time_attr.clone()];
    sorted.sort();
    let mut unsorted = sorted.clone();
    unsorted.reverse();
    let variants: Vec<(&str, AuthVariant, bool)> = vec![
        ("common shape", AuthVariant::default(), true),
        (
            "ICVlen 12 (DEFAULT, left out)",
            AuthVariant {
                tag_len: Some(12),
                ..Default::default()
            },
            true,
        ),
        (
            "ICVlen 14",
            AuthVariant {
                tag_len: Some(14),
                ..Default::default()
            },
            true,
        ),
        (
            "authAttrs, one",
            AuthVariant {
                attrs: Some(vec![ct_attr.clone()]),
                ..Default::default()
            },
            true,
        ),
        (
            "authAttrs, two in DER order",
            AuthVariant {
                attrs: Some(sorted),
                ..Default::default()
            },
            true,
        ),
        (
            "authAttrs, two out of DER order",
            AuthVariant {
                attrs: Some(unsorted),
                ..Default::default()
            },
            false,
        ),
        (
            "authAttrs, an attribute of two values",
            AuthVariant {
                attrs: Some(vec![two_values]),
                ..Default::default()
            },
            false,
        ),
        (
            "authAttrs, empty",
            AuthVariant {
                attrs: Some(vec![]),
                ..Default::default()
            },
            false,
        ),
        (
            "recipients out of order",
            AuthVariant {
                reverse_recipients: true,
                ..Default::default()
            },
            true,
        ),
        (
            "8 recipients",
            AuthVariant {
                repeat_recipients: 4,
                ..Default::default()
            },
            true,
        ),
        (
            "10 recipients",
            AuthVariant {
                repeat_recipients: 5,
                ..Default::default()
            },
            false,
        ),
        (
            "unauthAttrs",
            AuthVariant {
                unauth: true,
                ..Default::default()
            },
            false,
        ),
        (
            "originatorInfo",
            AuthVariant {
                originator: true,
                ..Default::default()
            },
            false,
        ),
        (
            "version 1",
            AuthVariant {
                version: Some(1),
                ..Default::default()
            },
            false,
        ),
        (
            "trailing byte",
            AuthVariant {
                trailing: true,
                ..Default::default()
            },
            false,
        ),
        (
            "overlong length",
            AuthVariant {
                overlong_aed: true,
                ..Default::default()
            },
            false,
        ),
    ];
    let mut bases = Vec::new();
    for alg in [ContentAlg::Aes256Gcm, ContentAlg::Aes128Gcm] {
        let cek = Cek::from_bytes(alg, &KEY[..alg.key_len()]).unwrap();
        let base = cms::seal(
            &pt,
            &[
                cert_recipient(
                    "callee",
                    cms::IdKind::IssuerSerial,
                    cms::RsaPadding::OaepSha1,
                ),
                psk_recipient(),
            ],
            &cek,
        )
        .unwrap();
        for (name, v, want) in &variants {
            let der = auth_variant(&base, alg, &pt, v);
            let fast = run(name, &der, psk);
            let opened =
                CmsMessage::parse(&der).and_then(|m| m.open(psk, &mut cms::RsaBudget::new(0)));
            check!(
                fast == *want,
                "{alg:?} {name}: {}, both decoders agree: {}",
                if fast {
                    "read in place"
                } else {
                    "left to the general decoder"
                },
                match &opened {
                    Ok(o) => format!("opens ({} bytes)", o.plaintext.len()),
                    Err(e) => format!("refused ({e})"),
                }
            );
            bases.push(der);
        }
    }

    // mutated and truncated: the two agree on every one (PSK only: no RSA work per mutation)
    bases.extend(offers.iter().map(|(_, d)| d.clone()));
    let before = (total.get(), in_place.get());
    for base in &bases {
        for m in mutations(base, &mut rng, 150) {
            run("mutation", &m, psk);
        }
    }
    let (mutated, mutated_in_place) = (total.get() - before.0, in_place.get() - before.1);
    check!(
        mutated_in_place > 0 && mutated_in_place < mutated,
        "{mutated} mutations of {} AuthEnvelopedData: {mutated_in_place} still read in place, the rest by the general decoder; all agree",
        bases.len()
    );
    println!(
        "{} inputs in all, {} read in place",
        total.get(),
        in_place.get()
    );
}
