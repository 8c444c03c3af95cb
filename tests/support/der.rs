//! Hand-built DER for the CMS tests: lengths in each form, TLVs, walking a TLV's children, the
//! OIDs the builders write, AES-GCM sealing of a content, mutations of an encoding, and the key
//! the built messages are sealed under (with the keys they are opened with).

use aes_gcm::aead::{consts, inout::InOutBuf, AeadInOut, KeyInit};
use sipsd::crypto::cms::{Cek, ContentAlg};

use super::rng::Rng;
use super::vectors::read_hex;

/// The key every built message is sealed under (cut to the algorithm's length).
pub const KEY: [u8; 32] = [0x5a; 32];

/// Every key the messages are opened with: [`KEY`] and the vectors' dialog key, for each
/// algorithm.
pub fn ceks() -> Vec<Cek> {
    let dialog = read_hex("dialog-cek.hex");
    let mut out = Vec::new();
    for alg in ContentAlg::ALL {
        out.push(Cek::from_bytes(alg, &KEY[..alg.key_len()]).unwrap());
        out.push(Cek::from_bytes(alg, &dialog[..alg.key_len()]).unwrap());
    }
    out
}

/// id-encryptedData, id-data, id-envelopedData (OID contents).
pub const ID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
pub const ID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
pub const ID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// id-ct-authEnvelopedData.
pub const ID_CT_AUTH_ENVELOPED_DATA: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];
/// id-contentType, id-signingTime (PKCS #9 attribute types).
pub const ID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
pub const ID_SIGNING_TIME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];

/// How a length is written.
#[derive(Clone, Copy, PartialEq)]
pub enum Len {
    /// DER: the shortest definite form.
    Minimal,
    /// One octet more than needed (0x81 for a short length, 0x82 for one below 256).
    Overlong,
    /// BER indefinite (0x80 ... 00 00); constructed values only.
    Indefinite,
}

pub fn length(n: usize, form: Len) -> Vec<u8> {
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

/// A TLV of `tag` with its length in `form` (end-of-contents octets after an indefinite one).
pub fn tlv_as(tag: u8, content: &[u8], form: Len) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(length(content.len(), form));
    out.extend_from_slice(content);
    if form == Len::Indefinite {
        out.extend([0, 0]);
    }
    out
}

/// A TLV in DER.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    tlv_as(tag, content, Len::Minimal)
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An Attribute: `oid` with the SET of `values` (each a whole TLV).
pub fn attribute(oid: &[u8], values: &[&[u8]]) -> Vec<u8> {
    let vals: Vec<u8> = values.concat();
    tlv(0x30, &cat(&[&tlv(0x06, oid), &tlv(0x31, &vals)]))
}

/// The children of a DER TLV, each a whole TLV (definite minimal lengths only, as sipsd and
/// OpenSSL write them).
pub fn children(tlv: &[u8]) -> Vec<Vec<u8>> {
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
pub fn split_tlv(tlv: &[u8]) -> (usize, &[u8]) {
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

/// The whole length (header and contents) of the TLV at the start of `tlv`.
pub fn tlv_len(tlv: &[u8]) -> usize {
    let (hl, c) = split_tlv(tlv);
    hl + c.len()
}

pub fn contents(tlv: &[u8]) -> Vec<u8> {
    split_tlv(tlv).1.to_vec()
}

/// AES-GCM (`alg` one of the two GCM algorithms) over `buf` in place with `aad`: the 16-byte
/// tag returned.
pub fn gcm_seal(alg: ContentAlg, key: &[u8], nonce: &[u8], aad: &[u8], buf: &mut [u8]) -> Vec<u8> {
    let nonce = aes_gcm::Nonce::<consts::U12>::try_from(nonce).unwrap();
    match alg {
        ContentAlg::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf))
            .unwrap()
            .to_vec(),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf))
            .unwrap()
            .to_vec(),
    }
}

/// `n` mutations of `der`: flipped, replaced, inserted and deleted bytes, truncations.
pub fn mutations(der: &[u8], rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
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
