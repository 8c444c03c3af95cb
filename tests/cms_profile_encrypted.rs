//! The profile reader for EncryptedData (the in-dialog bodies, read in place by
//! src/crypto/cms/profile.rs) against the general decoder (the `der` and `cms` crates): on the
//! committed fuzz corpus, the interop vectors, EncryptedData written by `seal_encrypted`,
//! hand-built variants of the profile (every tag length, BER and DER deviations) and mutations
//! of all of them, both accept or both refuse, with the same inspection and the same plaintext
//! or error under each key (`profile_agrees` in fuzz/common/lib.rs, also what the
//! `cms_open_with_cek` fuzz target checks). The AuthEnvelopedData half is
//! tests/cms_profile_auth.rs; the DER builders are tests/support/der.rs.
//!
//! Run: `cargo test --test cms_profile_encrypted -- --nocapture`

#[macro_use]
mod support;

// only `profile_agrees` of the fuzz targets' bodies is used here
#[allow(dead_code)]
#[path = "../fuzz/common/lib.rs"]
mod fuzz_common;

use std::path::Path;

use cbc::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit};
use sipsd::crypto::cms::{self, Cek, CmsMessage, ContentAlg};
use support::der::{
    cat, ceks, gcm_seal, mutations, tlv, tlv_as, Len, ID_DATA, ID_ENCRYPTED_DATA,
    ID_ENVELOPED_DATA, KEY,
};
use support::rng::Rng;
use support::vectors::root;

/// One EncryptedData, field by field, and the deviations from the profile to write.
#[derive(Clone)]
struct Built {
    alg: ContentAlg,
    /// GCM: the ICVlen to write (`None`: left out, the DEFAULT 12) and the tag length used.
    icv: Option<u8>,
    tag_len: usize,
    nonce_len: usize,
    plaintext: Vec<u8>,
    version: u8,
    content_type: &'static [u8],
    outer_type: &'static [u8],
    /// Which value's length is not minimal: 0 none, 1 ContentInfo, 2 EncryptedData,
    /// 3 EncryptedContentInfo, 4 AlgorithmIdentifier, 5 encryptedContent.
    overlong: u8,
    /// The EncryptedData's length indefinite (BER).
    indefinite: bool,
    /// encryptedContent as a constructed [0] of one OCTET STRING (BER).
    constructed_content: bool,
    /// unprotectedAttrs present (one empty-valued attribute).
    unprotected: bool,
    trailing: bool,
}

impl Built {
    fn profile(alg: ContentAlg, plaintext: &[u8]) -> Built {
        Built {
            alg,
            icv: alg.is_aead().then_some(16),
            tag_len: 16,
            nonce_len: 12,
            plaintext: plaintext.to_vec(),
            version: 0,
            content_type: ID_DATA,
            outer_type: ID_ENCRYPTED_DATA,
            overlong: 0,
            indefinite: false,
            constructed_content: false,
            unprotected: false,
            trailing: false,
        }
    }

    fn form(&self, level: u8) -> Len {
        if self.overlong == level {
            Len::Overlong
        } else {
            Len::Minimal
        }
    }

    fn der(&self) -> Vec<u8> {
        let key = &KEY[..self.alg.key_len()];
        let (params, content) = if self.alg.is_aead() {
            let nonce = vec![0x11u8; self.nonce_len];
            let mut buf = self.plaintext.clone();
            let mut tag = gcm_seal(self.alg, key, &nonce[..12.min(nonce.len())], &[], &mut buf);
            tag.truncate(self.tag_len);
            buf.extend(tag);
            let mut gp = tlv(0x04, &nonce);
            if let Some(icv) = self.icv {
                gp.extend(tlv(0x02, &[icv]));
            }
            (tlv(0x30, &gp), buf)
        } else {
            let iv = [0x22u8; 16];
            let ct = match self.alg {
                ContentAlg::Aes128Cbc => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                    .unwrap()
                    .encrypt_padded_vec::<Pkcs7>(&self.plaintext),
                _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
                    .unwrap()
                    .encrypt_padded_vec::<Pkcs7>(&self.plaintext),
            };
            (tlv(0x04, &iv), ct)
        };
        let alg_oid = self.alg.oid();
        let ai = tlv_as(
            0x30,
            &cat(&[&tlv(0x06, alg_oid.as_bytes()), &params]),
            self.form(4),
        );
        let content = if self.constructed_content {
            tlv(0xa0, &tlv(0x04, &content))
        } else {
            tlv_as(0x80, &content, self.form(5))
        };
        let eci = tlv_as(
            0x30,
            &cat(&[&tlv(0x06, self.content_type), &ai, &content]),
            self.form(3),
        );
        let mut ed = cat(&[&tlv(0x02, &[self.version]), &eci]);
        if self.unprotected {
            // [1] IMPLICIT SET OF Attribute { id-data, SET { NULL } }
            let attr = tlv(
                0x30,
                &cat(&[&tlv(0x06, ID_DATA), &tlv(0x31, &[0x05, 0x00])]),
            );
            ed.extend(tlv(0xa1, &attr));
        }
        let ed_form = if self.indefinite {
            Len::Indefinite
        } else {
            self.form(2)
        };
        let ed = tlv_as(0x30, &ed, ed_form);
        let ci = tlv_as(
            0x30,
            &cat(&[&tlv(0x06, self.outer_type), &tlv(0xa0, &ed)]),
            self.form(1),
        );
        let mut out = ci;
        if self.trailing {
            out.push(0);
        }
        out
    }
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".keep"))
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// The committed inputs that hold CMS: the two CMS targets' seeds and regressions (the
/// `cms_open_with_cek` ones also without their selector byte and key) and the vectors.
fn corpus() -> Vec<Vec<u8>> {
    let root = root();
    let mut out = Vec::new();
    for target in ["cms_open", "cms_open_with_cek"] {
        for kind in ["seeds", "regressions"] {
            for data in files(&root.join("fuzz").join(kind).join(target)) {
                if target == "cms_open_with_cek" && !data.is_empty() {
                    for skip in [1, 17, 33] {
                        if let Some(rest) = data.get(skip..) {
                            out.push(rest.to_vec());
                        }
                    }
                }
                out.push(data);
            }
        }
    }
    out.extend(files(&root.join("tests/data/vectors/msgs")));
    out
}

/// sipsd's own EncryptedData, as a proxy receives it in a dialog.
fn sealed() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for alg in ContentAlg::ALL {
        let cek = Cek::from_bytes(alg, &KEY[..alg.key_len()]).unwrap();
        for len in [0, 1, 15, 16, 17, 100, 112, 1037, 300, 70_000] {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            out.push(cms::seal_encrypted(&pt, &cek).unwrap());
        }
    }
    out
}

/// The profile and every deviation from it, for each algorithm.
fn built() -> Vec<(String, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let sdp = b"Content-Type: application/sdp\r\n\r\nv=0\r\n".repeat(8);
    for alg in ContentAlg::ALL {
        let base = Built::profile(alg, &sdp);
        let mut variants: Vec<(String, Built, bool)> = vec![("profile".into(), base.clone(), true)];
        let with = |name: &str, f: &dyn Fn(&mut Built), in_place: bool| {
            let mut b = base.clone();
            f(&mut b);
            (name.to_owned(), b, in_place)
        };
        variants.push(with("version 2", &|b| b.version = 2, false));
        variants.push(with(
            "content type envelopedData",
            &|b| b.content_type = ID_ENVELOPED_DATA,
            false,
        ));
        variants.push(with(
            "outer type envelopedData",
            &|b| b.outer_type = ID_ENVELOPED_DATA,
            false,
        ));
        for level in 1..=5 {
            variants.push(with(
                &format!("overlong length at level {level}"),
                &move |b| b.overlong = level,
                false,
            ));
        }
        variants.push(with(
            "indefinite EncryptedData",
            &|b| b.indefinite = true,
            false,
        ));
        variants.push(with(
            "constructed encryptedContent",
            &|b| b.constructed_content = true,
            false,
        ));
        variants.push(with("unprotectedAttrs", &|b| b.unprotected = true, false));
        variants.push(with("trailing byte", &|b| b.trailing = true, false));
        variants.push(with(
            "large content",
            &|b| b.plaintext = vec![7; 70_000],
            true,
        ));
        variants.push(with("empty content", &|b| b.plaintext.clear(), true));
        if alg.is_aead() {
            for tag in 12..=16u8 {
                let explicit = tag != 12;
                variants.push(with(
                    &format!("ICVlen {tag} written out"),
                    &move |b| {
                        b.icv = Some(tag);
                        b.tag_len = usize::from(tag);
                    },
                    explicit,
                ));
            }
            variants.push(with(
                "ICVlen left out (DEFAULT 12)",
                &|b| {
                    b.icv = None;
                    b.tag_len = 12;
                },
                true,
            ));
            variants.push(with("ICVlen 11", &|b| b.icv = Some(11), false));
            variants.push(with("ICVlen 17", &|b| b.icv = Some(17), false));
            variants.push(with("nonce of 16 bytes", &|b| b.nonce_len = 16, false));
        }
        for (name, b, in_place) in variants {
            out.push((format!("{alg:?} {name}"), b.der(), in_place));
        }
    }
    out
}

#[test]
fn profile_reader_agrees_with_the_general_decoder() {
    let ceks = ceks();
    let mut rng = Rng::new(0x5eed_cafe);
    let total = std::cell::Cell::new(0usize);
    let in_place = std::cell::Cell::new(0usize);
    let run = |what: &str, der: &[u8]| -> bool {
        total.set(total.get() + 1);
        match fuzz_common::profile_agrees(der, &ceks) {
            Ok(fast) => {
                in_place.set(in_place.get() + usize::from(fast));
                fast
            }
            Err(e) => panic!("FAILED: {what} ({} bytes): {e}", der.len()),
        }
    };

    for (name, der, want_in_place) in built() {
        let fast = run(&name, &der);
        let alg = name.split(' ').next().unwrap().to_owned();
        let cek = ceks
            .iter()
            .find(|c| format!("{:?}", c.alg()) == alg)
            .unwrap();
        let opened = CmsMessage::parse(&der).and_then(|m| m.open_with_cek(cek));
        check!(
            fast == want_in_place,
            "{name}: {} ({} bytes), both decoders agree: {}",
            if fast {
                "read in place"
            } else {
                "left to the general decoder"
            },
            der.len(),
            match &opened {
                Ok(p) => format!("opens ({} bytes)", p.len()),
                Err(e) => format!("refused ({e})"),
            }
        );
        // what a sender writes still opens, whichever decoder read it
        if name.ends_with(" profile") {
            check!(opened.is_ok(), "{name}: opens");
            let plain = CmsMessage::parse_owned(der.clone())
                .unwrap()
                .into_plaintext(cek)
                .unwrap();
            check!(
                plain
                    .as_bytes()
                    .starts_with(b"Content-Type: application/sdp"),
                "{name}: decrypted in its own buffer ({} plaintext bytes at {:?})",
                plain.as_bytes().len(),
                plain.range
            );
        }
    }

    let sealed = sealed();
    let sealed_in_place = sealed.iter().filter(|d| run("sealed", d)).count();
    check!(
        sealed_in_place == sealed.len(),
        "all {} EncryptedData written by seal_encrypted (4 algorithms, 0 to 70,000 bytes) read in place, both decoders agree",
        sealed.len()
    );

    let corpus = corpus();
    let corpus_in_place = corpus.iter().filter(|d| run("corpus", d)).count();
    check!(
        !corpus.is_empty(),
        "{} committed fuzz inputs and vectors: {corpus_in_place} read in place, all agree",
        corpus.len()
    );

    let bases: Vec<Vec<u8>> = built()
        .into_iter()
        .map(|(_, d, _)| d)
        .chain(sealed.into_iter().filter(|d| d.len() < 4096))
        .chain(corpus)
        .collect();
    let before = (total.get(), in_place.get());
    for base in &bases {
        for m in mutations(base, &mut rng, 120) {
            run("mutation", &m);
        }
    }
    let (mutated, mutated_in_place) = (total.get() - before.0, in_place.get() - before.1);
    check!(
        mutated_in_place > 0 && mutated_in_place < mutated,
        "{mutated} mutations of {} inputs: {mutated_in_place} still read in place, the rest by the general decoder; all agree",
        bases.len()
    );
    println!(
        "{} inputs in all, {} read in place",
        total.get(),
        in_place.get()
    );
}
