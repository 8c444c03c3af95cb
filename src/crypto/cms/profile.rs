//! sipsd's in-dialog EncryptedData profile (docs/PROTOCOL.md §3) read in place: the one shape
//! sipsd writes for every body after a dialog's first, checked tag by tag and length by length
//! on the borrowed input, the OIDs compared as bytes, nothing copied or allocated.
//!
//! ```text
//! 30 L  ContentInfo
//!   06 09 id-encryptedData
//!   A0 L  [0] EXPLICIT
//!     30 L  EncryptedData
//!       02 01 00  version 0 (no unprotectedAttrs)
//!       30 L  EncryptedContentInfo
//!         06 09 id-data
//!         30 L  AlgorithmIdentifier: 06 09 id-aes{128,256}-{GCM,CBC}, then
//!               GCMParameters 30 L { 04 0C nonce, [02 01 ICVlen 13..16] } or 04 10 IV
//!         80 L  [0] IMPLICIT encryptedContent, primitive
//! ```
//!
//! Lengths are definite and minimal (DER), every value ends exactly where its parent does, and
//! nothing follows the ContentInfo. Anything else — another structure or content type, BER
//! (indefinite lengths, a constructed `encryptedContent`), a non-minimal length, an
//! `unprotectedAttrs`, an ICVlen of 12 written out (DER omits a DEFAULT), a nonce or IV of another
//! length, trailing bytes — is not read here: [`read`] answers `None` and the caller decodes the
//! input with the general decoder (`message.rs`, the `der` and `cms` crates), which accepts or
//! refuses it exactly as it did before this reader existed. This reader therefore refuses
//! nothing itself; what it accepts is a subset of what the general decoder accepts, with the same
//! result (tests/cms_profile.rs checks both on the fuzz seeds and mutations of them).

use std::ops::Range;

use super::cek::ContentAlg;
use super::content::{ContentParams, AES_BLOCK, GCM_NONCE_LEN};
use super::oids;

/// An EncryptedData in sipsd's profile: where its `encryptedContent` lies in the input, and
/// its decoded content-encryption parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    /// The `encryptedContent` octets (for GCM: ciphertext || tag).
    pub content: Range<usize>,
    /// The algorithm and its nonce and tag length, or IV.
    pub params: ContentParams,
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
/// `[0]` constructed: ContentInfo's EXPLICIT content.
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
/// `[0]` primitive: EncryptedContentInfo's IMPLICIT OCTET STRING.
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// Reads `der` if it is sipsd's EncryptedData profile; `None` sends it to the general decoder.
pub(crate) fn read(der: &[u8]) -> Option<Profile> {
    let mut top = Cursor::new(der, 0..der.len());
    let content_info = top.value(SEQUENCE)?;
    top.end()?;

    let mut ci = Cursor::new(der, content_info);
    ci.oid(oids::ID_ENCRYPTED_DATA.as_bytes())?;
    let explicit = ci.value(CONTEXT_0_CONSTRUCTED)?;
    ci.end()?;

    let mut x = Cursor::new(der, explicit);
    let encrypted_data = x.value(SEQUENCE)?;
    x.end()?;

    let mut ed = Cursor::new(der, encrypted_data);
    let version = ed.value(INTEGER)?;
    (der.get(version)? == [0]).then_some(())?;
    let eci = ed.value(SEQUENCE)?;
    // unprotectedAttrs ([1]) would follow here: the general decoder reads those
    ed.end()?;

    let mut eci = Cursor::new(der, eci);
    eci.oid(oids::ID_DATA.as_bytes())?;
    let alg_id = eci.value(SEQUENCE)?;
    let content = eci.value(CONTEXT_0_PRIMITIVE)?;
    eci.end()?;

    let mut ai = Cursor::new(der, alg_id);
    let oid = ai.value(OID)?;
    let oid = der.get(oid)?;
    let alg = ContentAlg::ALL
        .into_iter()
        .find(|a| a.oid().as_bytes() == oid)?;
    let params = if alg.is_aead() {
        let gcm = ai.value(SEQUENCE)?;
        ai.end()?;
        let mut g = Cursor::new(der, gcm);
        let nonce = g.value(OCTET_STRING)?;
        let nonce: [u8; GCM_NONCE_LEN] = der.get(nonce)?.try_into().ok()?;
        let tag_len = if g.at_end() {
            12
        } else {
            let icv = g.value(INTEGER)?;
            g.end()?;
            match der.get(icv)? {
                // 12 is the DEFAULT, which DER leaves out
                [n @ 13..=16] => usize::from(*n),
                _ => return None,
            }
        };
        ContentParams::Gcm {
            alg,
            nonce,
            tag_len,
        }
    } else {
        let iv = ai.value(OCTET_STRING)?;
        ai.end()?;
        let iv: [u8; AES_BLOCK] = der.get(iv)?.try_into().ok()?;
        ContentParams::Cbc { alg, iv }
    };
    Some(Profile { content, params })
}

/// A position inside one DER value of the input: `pos` moves over the values it holds, which
/// may not reach past `end`.
struct Cursor<'a> {
    der: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(der: &'a [u8], within: Range<usize>) -> Cursor<'a> {
        Cursor {
            der,
            pos: within.start,
            end: within.end,
        }
    }

    /// The next value, which must have identifier octet `tag`: where its contents lie.
    fn value(&mut self, tag: u8) -> Option<Range<usize>> {
        let rest = self.der.get(self.pos..self.end)?;
        let (&first, rest) = rest.split_first()?;
        if first != tag {
            return None;
        }
        let (len, len_octets) = definite_minimal_length(rest)?;
        let start = self.pos + 1 + len_octets;
        let end = start.checked_add(len)?;
        if end > self.end {
            return None;
        }
        self.pos = end;
        Some(start..end)
    }

    /// The next value is the OBJECT IDENTIFIER whose contents are `oid`.
    fn oid(&mut self, oid: &[u8]) -> Option<()> {
        let v = self.value(OID)?;
        (self.der.get(v)? == oid).then_some(())
    }

    fn at_end(&self) -> bool {
        self.pos == self.end
    }

    /// Nothing is left in this value.
    fn end(&self) -> Option<()> {
        self.at_end().then_some(())
    }
}

/// A DER length: (length, octets it took). Only the minimal definite forms, up to 2^24 - 1.
fn definite_minimal_length(b: &[u8]) -> Option<(usize, usize)> {
    match *b.first()? {
        n @ 0..=0x7f => Some((usize::from(n), 1)),
        0x81 => {
            let n = usize::from(*b.get(1)?);
            (n >= 0x80).then_some((n, 2))
        }
        0x82 => {
            let n = usize::from(u16::from_be_bytes([*b.get(1)?, *b.get(2)?]));
            (n >= 0x100).then_some((n, 3))
        }
        0x83 => {
            let n = usize::from(*b.get(1)?) << 16
                | usize::from(*b.get(2)?) << 8
                | usize::from(*b.get(3)?);
            (n >= 0x1_0000).then_some((n, 4))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_only_in_minimal_definite_form() {
        for (bytes, want) in [
            (&[0x00][..], Some((0, 1))),
            (&[0x7f], Some((127, 1))),
            (&[0x81, 0x80], Some((128, 2))),
            (&[0x81, 0x7f], None),
            (&[0x82, 0x01, 0x00], Some((256, 3))),
            (&[0x82, 0x00, 0xff], None),
            (&[0x83, 0x01, 0x00, 0x00], Some((65536, 4))),
            (&[0x83, 0x00, 0xff, 0xff], None),
            (&[0x80], None),
            (&[0x84, 1, 0, 0, 0], None),
            (&[0x82, 0x01], None),
        ] {
            assert_eq!(definite_minimal_length(bytes), want, "{bytes:02x?}");
        }
        println!(
            "DER lengths: short, 0x81-0x83 minimal forms read; indefinite, overlong, truncated not"
        );
    }
}
