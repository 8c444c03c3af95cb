//! The profile reader (sipsd's in-dialog EncryptedData read in place, src/crypto/cms/profile.rs)
//! against the general decoder (the `der` and `cms` crates): on the committed fuzz corpus, the
//! interop vectors, EncryptedData written by `seal_encrypted`, hand-built variants of the
//! profile (every tag length, BER and DER deviations) and mutations of all of them, both
//! accept or both refuse, with the same inspection and the same plaintext or error under each
//! key (`profile_agrees` in fuzz/common/lib.rs, also what the `cms_open_with_cek` fuzz target
//! checks).
//!
//! Run: `cargo test --test cms_profile -- --nocapture`

#[macro_use]
mod support;

// only `profile_agrees` of the fuzz targets' bodies is used here
#[allow(dead_code)]
#[path = "../fuzz/common/lib.rs"]
mod fuzz_common;

use std::path::Path;

use aes_gcm::aead::{consts, inout::InOutBuf, AeadInOut, KeyInit};
use cbc::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit};
use sipsd::crypto::cms::{self, Cek, CmsMessage, ContentAlg};
use support::rng::Rng;

/// The key every built message is sealed under (cut to the algorithm's length).
const KEY: [u8; 32] = [0x5a; 32];

/// id-encryptedData, id-data, id-envelopedData (OID contents).
const ID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const ID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const ID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];

/// Every key the messages are opened with: [`KEY`] and the vectors' dialog key, for each
/// algorithm.
fn ceks() -> Vec<Cek> {
    let dialog = hex(&read(
        &Path::new(&root()).join("tests/data/vectors/keys/dialog-cek.hex"),
    ));
    let mut out = Vec::new();
    for alg in ContentAlg::ALL {
        out.push(Cek::from_bytes(alg, &KEY[..alg.key_len()]).unwrap());
        out.push(Cek::from_bytes(alg, &dialog[..alg.key_len()]).unwrap());
    }
    out
}

fn root() -> String {
    env!("CARGO_MANIFEST_DIR").to_owned()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn hex(text: &[u8]) -> Vec<u8> {
    let t = std::str::from_utf8(text).unwrap().trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
        .collect()
}

/// How a length is written.
#[derive(Clone, Copy, PartialEq)]
enum Len {
    /// DER: the shortest definite form.
    Minimal,
    /// One octet more than needed (0x81 for a short length, 0x82 for one below 256).
    Overlong,
    /// BER indefinite (0x80 ... 00 00); constructed values only.
    Indefinite,
}

fn length(n: usize, form: Len) -> Vec<u8> {
    let minimal = match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        0x100..=0xffff => vec![0x82, (n >> 8) as u8, n as u8],
        _ => vec![0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8],
    };
    match form {
        Len::Minimal => minimal,
        Len::Overlong if n <= 0xff => vec![0x82, (n >> 8) as u8, n as u8],
        Len::Overlong => vec![0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8],
        Len::Indefinite => vec![0x80],
    }
}

fn tlv_as(tag: u8, content: &[u8], form: Len) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(length(content.len(), form));
    out.extend_from_slice(content);
    if form == Len::Indefinite {
        out.extend([0, 0]);
    }
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    tlv_as(tag, content, Len::Minimal)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

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
            let mut tag = gcm_seal(self.alg, key, &nonce[..12.min(nonce.len())], &mut buf);
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

/// AES-GCM with a 16-byte tag over `buf` in place (the tag returned).
fn gcm_seal(alg: ContentAlg, key: &[u8], nonce: &[u8], buf: &mut [u8]) -> Vec<u8> {
    let nonce = aes_gcm::Nonce::<consts::U12>::try_from(nonce).unwrap();
    match alg {
        ContentAlg::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_inout_detached(&nonce, &[], InOutBuf::from(buf))
            .unwrap()
            .to_vec(),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_inout_detached(&nonce, &[], InOutBuf::from(buf))
            .unwrap()
            .to_vec(),
    }
}

/// Mutations of `der`: flipped, replaced, inserted and deleted bytes, truncations.
fn mutations(der: &[u8], rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut m = der.to_vec();
        let at = rng.below(m.len().max(1));
        match i % 6 {
            0 if !m.is_empty() => m[at] ^= 1 << rng.below(8),
            1 if !m.is_empty() => m[at] = rng.next() as u8,
            2 => m.insert(at, rng.next() as u8),
            3 if !m.is_empty() => {
                m.remove(at);
            }
            4 => m.truncate(at),
            // the first bytes hold the tags and lengths: mutate there more often
            _ if !m.is_empty() => {
                let head = rng.below(m.len().min(48));
                m[head] = m[head].wrapping_add(1 + rng.below(3) as u8);
            }
            _ => {}
        }
        out.push(m);
    }
    out
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".keep"))
        .map(|p| read(p))
        .collect()
}

/// The committed inputs that hold CMS: the two CMS targets' seeds and regressions (the
/// `cms_open_with_cek` ones also without their selector byte and key) and the vectors.
fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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

// ---- AuthEnvelopedData (the INVITE's offer) read in place --------------------------------

/// The contents of a DER TLV and its children (definite minimal lengths only, as sipsd and
/// OpenSSL write them).
fn children(tlv: &[u8]) -> Vec<Vec<u8>> {
    let (_, mut rest) = split_tlv(tlv);
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = tlv_len(rest);
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    out
}

/// (header length, contents) of a TLV.
fn split_tlv(tlv: &[u8]) -> (usize, &[u8]) {
    let (len, hl) = match tlv[1] {
        n @ 0..=0x7f => (usize::from(n), 2),
        0x81 => (usize::from(tlv[2]), 3),
        0x82 => ((usize::from(tlv[2]) << 8) | usize::from(tlv[3]), 4),
        0x83 => (
            (usize::from(tlv[2]) << 16) | (usize::from(tlv[3]) << 8) | usize::from(tlv[4]),
            5,
        ),
        other => panic!("length form {other:02x}"),
    };
    (hl, &tlv[hl..hl + len])
}

fn tlv_len(tlv: &[u8]) -> usize {
    let (hl, c) = split_tlv(tlv);
    hl + c.len()
}

fn contents(tlv: &[u8]) -> Vec<u8> {
    split_tlv(tlv).1.to_vec()
}

/// AES-GCM with a 16-byte tag and `aad`: (ciphertext, tag).
fn gcm_seal_aad(
    alg: ContentAlg,
    key: &[u8],
    nonce: &[u8],
    pt: &[u8],
    aad: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let nonce = aes_gcm::Nonce::<consts::U12>::try_from(nonce).unwrap();
    let mut buf = pt.to_vec();
    let tag = match alg {
        ContentAlg::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf.as_mut_slice()))
            .unwrap()
            .to_vec(),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf.as_mut_slice()))
            .unwrap()
            .to_vec(),
    };
    (buf, tag)
}

const ID_CT_AUTH_ENVELOPED_DATA: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];
/// id-contentType, id-messageDigest (PKCS #9 attribute types).
const ID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const ID_SIGNING_TIME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];

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

fn attribute(oid: &[u8], values: &[&[u8]]) -> Vec<u8> {
    let vals: Vec<u8> = values.concat();
    tlv(0x30, &cat(&[&tlv(0x06, oid), &tlv(0x31, &vals)]))
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
    let (ct, mut tag) = gcm_seal_aad(alg, key, &nonce, pt, aad.as_deref().unwrap_or(&[]));
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

fn vector_recipient(who: &str, id: cms::IdKind, padding: cms::RsaPadding) -> cms::Recipient {
    cms::Recipient::from_cert_file(
        &Path::new(&root()).join(format!("tests/data/vectors/keys/{who}.crt")),
        id,
        padding,
    )
    .unwrap()
}

fn psk_proxy1() -> cms::Recipient {
    let keys = Path::new(&root()).join("tests/data/vectors/keys");
    cms::Recipient::Psk {
        id: b"psk-proxy1".to_vec(),
        kek: zeroize::Zeroizing::new(hex(&read(&keys.join("psk-proxy1.hex")))),
    }
}

/// Offers sipsd seals: every recipient kind and padding, for proxy1 and for others, with and
/// without a rotation proof under one of [`ceks`], a plain and a signed-inner plaintext.
fn sealed_offers(ceks: &[Cek]) -> Vec<(String, Vec<u8>)> {
    use cms::{IdKind, RsaPadding};
    let sdp = b"Content-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".to_vec();
    let signer = {
        let k = Path::new(&root()).join("tests/data/vectors/keys");
        let keys = sipsd::crypto::keys::KeyStore::load(&sipsd::crypto::keys::KeySpec {
            sign: vec![sipsd::crypto::keys::SignKeySpec {
                key_path: k.join("callee.key"),
                cert_path: k.join("callee.crt"),
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
            ("psk", vec![psk_proxy1()]),
            (
                "callee+psk",
                vec![
                    vector_recipient("callee", IdKind::IssuerSerial, RsaPadding::OaepSha1),
                    psk_proxy1(),
                ],
            ),
            (
                "proxy1 oaep-sha1 issuer",
                vec![vector_recipient(
                    "proxy1",
                    IdKind::IssuerSerial,
                    RsaPadding::OaepSha1,
                )],
            ),
            (
                "proxy1 oaep-sha256 ski + callee pkcs1",
                vec![
                    vector_recipient("proxy1", IdKind::SubjectKeyId, RsaPadding::OaepSha256),
                    vector_recipient("callee", IdKind::SubjectKeyId, RsaPadding::Pkcs1v15),
                ],
            ),
            (
                "proxy1 pkcs1 + proxy2 + psk",
                vec![
                    vector_recipient("proxy1", IdKind::IssuerSerial, RsaPadding::Pkcs1v15),
                    vector_recipient("proxy2", IdKind::IssuerSerial, RsaPadding::OaepSha1),
                    psk_proxy1(),
                ],
            ),
            (
                "callee + rotation proof",
                vec![
                    vector_recipient("callee", IdKind::IssuerSerial, RsaPadding::OaepSha1),
                    cms::proof_recipient(current),
                ],
            ),
            (
                "psk + rotation proof",
                vec![psk_proxy1(), cms::proof_recipient(current)],
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
    let keys = Path::new(&root()).join("tests/data/vectors/keys");
    let cert = |n: &str| keys.join(format!("{n}.crt")).display().to_string();
    let psk = String::from_utf8(read(&keys.join("psk-proxy1.hex")))
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
            out.push((format!("openssl {cipher} {name}"), read(&outp)));
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
                vector_recipient(
                    "callee",
                    cms::IdKind::IssuerSerial,
                    cms::RsaPadding::OaepSha1,
                ),
                psk_proxy1(),
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
