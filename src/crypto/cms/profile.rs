//! Two common shapes read in place, checked tag by tag and length by length on the borrowed
//! input, the OIDs compared as bytes, nothing copied and nothing allocated: sipsd's in-dialog
//! EncryptedData profile (docs/PROTOCOL.md §3), the one shape sipsd writes for every body after a
//! dialog's first, and the INVITE's AuthEnvelopedData as sipsd (`seal`) and OpenSSL
//! (`openssl cms -encrypt -aes-256-gcm`) write it.
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
//!
//! 30 L  ContentInfo
//!   06 0B id-ct-authEnvelopedData
//!   A0 L  [0] EXPLICIT
//!     30 L  AuthEnvelopedData
//!       02 01 00  version 0 (no originatorInfo)
//!       31 L  RecipientInfos, 1 to 8 of
//!             30 L KeyTransRecipientInfo: version 0 + issuerAndSerialNumber (RDNs of one
//!                  value each, a minimal serial of up to 21 octets) or version 2 +
//!                  80 L subjectKeyIdentifier; rsaEncryption (NULL or no parameters) or
//!                  id-RSAES-OAEP (no parameters, NULL, or a SEQUENCE); encryptedKey
//!             A2 L KEKRecipientInfo: version 4, kekid { kekIdentifier } alone,
//!                  id-aes{128,192,256}-wrap without parameters, encryptedKey
//!       30 L  EncryptedContentInfo as above, AES-GCM only
//!       A1 L  [authAttrs: Attributes of one value each, in DER order]
//!       04 L  mac (no unauthAttrs)
//! ```
//!
//! Lengths are definite and minimal (DER), every value ends exactly where its parent does, and
//! nothing follows the ContentInfo. Anything else — another structure or content type, BER
//! (indefinite lengths, a constructed `encryptedContent`), a non-minimal length, an
//! `unprotectedAttrs`, an ICVlen of 12 written out (DER omits a DEFAULT), a nonce or IV of another
//! length, trailing bytes; for AuthEnvelopedData an originatorInfo, unauthAttrs, another kind of
//! recipient, algorithm or key identifier, authAttrs out of DER order or of several values, more
//! than 8 recipients — is not read here: [`read`] answers `None` and the caller decodes the
//! input with the general decoder (`message.rs`, the `der` and `cms` crates), which accepts or
//! refuses it exactly as it did before this reader existed. This reader therefore refuses
//! nothing itself; what it accepts is a subset of what the general decoder accepts, with the same
//! result (tests/cms_profile_encrypted.rs and tests/cms_profile_auth.rs check both on the fuzz
//! seeds, OpenSSL's and sipsd's offers and mutations of them).
//!
//! What it accepts re-encodes to the same octets under the general decoder, so that the
//! answers agree: the recipients are given in the order the `der` crate's SET OF decoding sorts
//! them into (`cms_der_order`, not DER order: see `der_set`), an issuer Name is taken as the
//! octets on the wire (what `Name::to_der` gives back for such a Name), and the authAttrs'
//! octets under the SET OF tag are the additional authenticated data (RFC 5083 §2.2).

use std::ops::Range;

use super::cek::ContentAlg;
use super::content::{ContentParams, AES_BLOCK, GCM_NONCE_LEN};
use super::oids::{self, ObjectIdentifier};

/// An EncryptedData in sipsd's profile, or an AuthEnvelopedData of the common shape: where its
/// encrypted content lies in the input, and its decoded content-encryption parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    /// The `encryptedContent` octets (for GCM EncryptedData: ciphertext || tag; for
    /// AuthEnvelopedData the ciphertext alone, its tag is `mac`).
    pub content: Range<usize>,
    /// The algorithm and its nonce and tag length, or IV.
    pub params: ContentParams,
    /// AuthEnvelopedData's recipients, authAttrs and mac; `None` for EncryptedData.
    pub auth: Option<Auth>,
}

/// The most RecipientInfos read in place; a message with more goes to the general decoder.
pub(crate) const MAX_RECIPIENTS: usize = 8;

/// The parts of an AuthEnvelopedData (RFC 5083) read in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Auth {
    /// The RecipientInfos, in the order the general decoder gives them (`der_set`: the `cms`
    /// crate's `DerOrd`, not DER order), the first `count` set.
    pub recipients: [Option<RecipientAt>; MAX_RECIPIENTS],
    /// The contents of `authAttrs` (`[1] IMPLICIT SET OF Attribute`), in DER order.
    pub auth_attrs: Option<Range<usize>>,
    /// `mac`: the GCM tag.
    pub mac: Range<usize>,
}

/// One RecipientInfo read in place: where its fields lie in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RecipientAt {
    /// KeyTransRecipientInfo.
    Ktri {
        rid: KtriId,
        alg: KtriAlg,
        enc_key: Range<usize>,
    },
    /// KEKRecipientInfo with a kekIdentifier alone and AES key wrap (parameters absent).
    Kekri {
        kek_id: Range<usize>,
        wrap: ObjectIdentifier,
        enc_key: Range<usize>,
    },
}

/// How a KeyTransRecipientInfo read in place names its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KtriId {
    /// issuerAndSerialNumber (version 0): the whole issuer Name, the serial's contents.
    IssuerSerial {
        issuer: Range<usize>,
        serial: Range<usize>,
    },
    /// subjectKeyIdentifier (version 2): its contents.
    Ski(Range<usize>),
}

/// The key-transport algorithm of a KeyTransRecipientInfo read in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KtriAlg {
    /// rsaEncryption, parameters NULL or absent.
    Pkcs1v15,
    /// id-RSAES-OAEP: the whole RSAES-OAEP-params SEQUENCE, `None` when absent or NULL.
    Oaep(Option<Range<usize>>),
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
/// `[0]` constructed: ContentInfo's EXPLICIT content.
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
/// `[0]` primitive: EncryptedContentInfo's IMPLICIT OCTET STRING, KTRI's subjectKeyIdentifier.
const CONTEXT_0_PRIMITIVE: u8 = 0x80;
/// `[1]` constructed: AuthEnvelopedData's `authAttrs`.
const CONTEXT_1_CONSTRUCTED: u8 = 0xa1;
/// `[2]` constructed: RecipientInfo's `kekri`.
const CONTEXT_2_CONSTRUCTED: u8 = 0xa2;
/// The tags an attribute value (ANY) may have here: those the `der` crate decodes as an `Any`
/// without looking inside.
const ANY_TAGS: [u8; 11] = [
    INTEGER,
    OCTET_STRING,
    OID,
    0x0c,
    0x13,
    0x14,
    0x16,
    0x17,
    0x18,
    SEQUENCE,
    SET,
];

/// Reads `der` if it is sipsd's EncryptedData profile or an AuthEnvelopedData of the common
/// shape; `None` sends it to the general decoder.
pub(crate) fn read(der: &[u8]) -> Option<Profile> {
    let mut top = Cursor::new(der, 0..der.len());
    let content_info = top.value(SEQUENCE)?;
    top.end()?;

    let mut ci = Cursor::new(der, content_info);
    let content_type = ci.value(OID)?;
    let explicit = ci.value(CONTEXT_0_CONSTRUCTED)?;
    ci.end()?;

    let mut x = Cursor::new(der, explicit);
    let inner = x.value(SEQUENCE)?;
    x.end()?;

    let content_type = der.get(content_type)?;
    if content_type == oids::ID_ENCRYPTED_DATA.as_bytes() {
        encrypted_data(der, inner)
    } else if content_type == oids::ID_CT_AUTH_ENVELOPED_DATA.as_bytes() {
        auth_enveloped_data(der, inner)
    } else {
        None
    }
}

fn encrypted_data(der: &[u8], within: Range<usize>) -> Option<Profile> {
    let mut ed = Cursor::new(der, within);
    ed.integer_is(0)?;
    let eci = ed.value(SEQUENCE)?;
    // unprotectedAttrs ([1]) would follow here: the general decoder reads those
    ed.end()?;
    let (content, params) = encrypted_content_info(der, eci)?;
    Some(Profile {
        content,
        params,
        auth: None,
    })
}

/// ```text
/// 30 L  AuthEnvelopedData
///   02 01 00  version 0
///   31 L  RecipientInfos (KTRI 30 L, KEKRI A2 L), 1 to MAX_RECIPIENTS
///   30 L  EncryptedContentInfo (as EncryptedData's, AES-GCM only)
///   [A1 L  authAttrs: Attributes of one value each, in DER order]
///   04 L  mac
/// ```
/// originatorInfo and unauthAttrs absent.
fn auth_enveloped_data(der: &[u8], within: Range<usize>) -> Option<Profile> {
    let mut a = Cursor::new(der, within);
    a.integer_is(0)?;
    // originatorInfo ([0]) would come here: the general decoder reads it
    let recipient_infos = a.value(SET)?;
    let eci = a.value(SEQUENCE)?;
    let auth_attrs = match a.peek() {
        Some(CONTEXT_1_CONSTRUCTED) => Some(a.value(CONTEXT_1_CONSTRUCTED)?),
        _ => None,
    };
    let mac = a.value(OCTET_STRING)?;
    // unauthAttrs ([2]) would follow here: the general decoder reads those
    a.end()?;

    let (content, params) = encrypted_content_info(der, eci)?;
    if !params.alg().is_aead() {
        return None;
    }
    if let Some(attrs) = &auth_attrs {
        attributes(der, attrs.clone())?;
    }
    let recipients = recipients(der, recipient_infos)?;
    Some(Profile {
        content,
        params,
        auth: Some(Auth {
            recipients,
            auth_attrs,
            mac,
        }),
    })
}

/// EncryptedContentInfo: id-data, an AES algorithm with its parameters, a primitive content.
fn encrypted_content_info(
    der: &[u8],
    within: Range<usize>,
) -> Option<(Range<usize>, ContentParams)> {
    let mut eci = Cursor::new(der, within);
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
    Some((content, params))
}

/// The RecipientInfos, sorted as the general decoder sorts them.
fn recipients(der: &[u8], within: Range<usize>) -> Option<[Option<RecipientAt>; MAX_RECIPIENTS]> {
    let mut set = Cursor::new(der, within);
    let mut found: [Option<(Range<usize>, RecipientAt)>; MAX_RECIPIENTS] = Default::default();
    let mut count = 0;
    while !set.at_end() {
        let slot = found.get_mut(count)?;
        let start = set.pos;
        let at = match set.peek()? {
            SEQUENCE => ktri(der, set.value(SEQUENCE)?)?,
            CONTEXT_2_CONSTRUCTED => kekri(der, set.value(CONTEXT_2_CONSTRUCTED)?)?,
            _ => return None,
        };
        *slot = Some((start..set.pos, at));
        count += 1;
    }
    if count == 0 {
        return None;
    }
    // Insertion sort of a few: the order is total and equal keys are equal encodings.
    let found = found.get_mut(..count)?;
    for i in 1..found.len() {
        let mut j = i;
        while j > 0 && cms_der_order(der, found.get(j - 1)?, found.get(j)?)?.is_gt() {
            found.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut out: [Option<RecipientAt>; MAX_RECIPIENTS] = Default::default();
    for (o, f) in out.iter_mut().zip(found.iter_mut()) {
        *o = f.take().map(|(_, at)| at);
    }
    Some(out)
}

/// The order `der::asn1::SetOfVec` puts two RecipientInfos in when it decodes DER: their
/// `DerOrd`, i.e. the identifier octet, then the contents' length, then the `cms` crate's
/// `RecipientInfo::value_cmp`, which compares the two whole encodings as `Vec<u8>` values,
/// i.e. as DER SEQUENCE OF INTEGER (`der_set`): by that SEQUENCE's length (3 octets per byte
/// below 0x80, 4 per byte above), then byte by byte.
fn cms_der_order(
    der: &[u8],
    a: &Option<(Range<usize>, RecipientAt)>,
    b: &Option<(Range<usize>, RecipientAt)>,
) -> Option<std::cmp::Ordering> {
    let a = der.get(a.as_ref()?.0.clone())?;
    let b = der.get(b.as_ref()?.0.clone())?;
    let header = |v: &[u8]| -> Option<(u8, usize)> {
        let (&tag, rest) = v.split_first()?;
        Some((tag, definite_minimal_length(rest)?.0))
    };
    let weight = |v: &[u8]| -> usize { v.iter().map(|&x| 3 + usize::from(x >= 0x80)).sum() };
    Some(
        header(a)?
            .cmp(&header(b)?)
            .then_with(|| weight(a).cmp(&weight(b)))
            .then_with(|| a.cmp(b)),
    )
}

/// KeyTransRecipientInfo: version 0 with issuerAndSerialNumber or 2 with subjectKeyIdentifier,
/// rsaEncryption or id-RSAES-OAEP.
fn ktri(der: &[u8], within: Range<usize>) -> Option<RecipientAt> {
    let mut k = Cursor::new(der, within);
    let version = k.value(INTEGER)?;
    let rid = match der.get(version)? {
        [0] => {
            let ias = k.value(SEQUENCE)?;
            let mut c = Cursor::new(der, ias);
            let start = c.pos;
            let name = c.value(SEQUENCE)?;
            let issuer = start..c.pos;
            let serial = c.value(INTEGER)?;
            c.end()?;
            rdn_sequence(der, name)?;
            serial_number(der.get(serial.clone())?)?;
            KtriId::IssuerSerial { issuer, serial }
        }
        [2] => KtriId::Ski(k.value(CONTEXT_0_PRIMITIVE)?),
        _ => return None,
    };
    let alg_id = k.value(SEQUENCE)?;
    let enc_key = k.value(OCTET_STRING)?;
    k.end()?;

    let mut ai = Cursor::new(der, alg_id);
    let oid = ai.value(OID)?;
    let oid = der.get(oid)?;
    let null_or_absent = |ai: &mut Cursor<'_>| -> Option<bool> {
        if ai.at_end() {
            return Some(true);
        }
        if ai.peek()? == NULL {
            let n = ai.value(NULL)?;
            return Some(n.is_empty());
        }
        Some(false)
    };
    let alg = if oid == oids::RSA_ENCRYPTION.as_bytes() {
        null_or_absent(&mut ai)?.then_some(())?;
        KtriAlg::Pkcs1v15
    } else if oid == oids::ID_RSAES_OAEP.as_bytes() {
        if null_or_absent(&mut ai)? {
            KtriAlg::Oaep(None)
        } else {
            let start = ai.pos;
            ai.value(SEQUENCE)?;
            KtriAlg::Oaep(Some(start..ai.pos))
        }
    } else {
        return None;
    };
    ai.end()?;
    Some(RecipientAt::Ktri { rid, alg, enc_key })
}

/// KEKRecipientInfo: version 4, a kekIdentifier alone, AES key wrap with parameters absent.
fn kekri(der: &[u8], within: Range<usize>) -> Option<RecipientAt> {
    let mut k = Cursor::new(der, within);
    k.integer_is(4)?;
    let kek_id = k.value(SEQUENCE)?;
    let alg_id = k.value(SEQUENCE)?;
    let enc_key = k.value(OCTET_STRING)?;
    k.end()?;

    let mut id = Cursor::new(der, kek_id);
    let kek_id = id.value(OCTET_STRING)?;
    // date and other would follow: the general decoder reads those
    id.end()?;

    let mut ai = Cursor::new(der, alg_id);
    let oid = ai.value(OID)?;
    ai.end()?;
    let oid = der.get(oid)?;
    let wrap = [
        oids::ID_AES_128_WRAP,
        oids::ID_AES_192_WRAP,
        oids::ID_AES_256_WRAP,
    ]
    .into_iter()
    .find(|w| w.as_bytes() == oid)?;
    Some(RecipientAt::Kekri {
        kek_id,
        wrap,
        enc_key,
    })
}

/// An X.501 RDNSequence whose RDNs hold one AttributeTypeAndValue each: what re-encodes to
/// the same octets after the general decoder (which sorts each RDN's SET).
fn rdn_sequence(der: &[u8], within: Range<usize>) -> Option<()> {
    let mut rdns = Cursor::new(der, within);
    while !rdns.at_end() {
        let rdn = rdns.value(SET)?;
        let mut set = Cursor::new(der, rdn);
        let atv = set.value(SEQUENCE)?;
        set.end()?;
        let mut atv = Cursor::new(der, atv);
        atv.valid_oid()?;
        atv.any()?;
        atv.end()?;
    }
    Some(())
}

/// A serial number the general decoder takes as it is: a minimal INTEGER of 1 to 21 octets.
fn serial_number(v: &[u8]) -> Option<()> {
    match v {
        [] => None,
        [0x00, b, ..] if b & 0x80 == 0 => None,
        [0xff, b, ..] if b & 0x80 != 0 => None,
        _ => (v.len() <= 21).then_some(()),
    }
}

/// authAttrs: one or more Attributes of one value each, in DER order (so that their DER, the
/// additional authenticated data, is the octets on the wire).
fn attributes(der: &[u8], within: Range<usize>) -> Option<()> {
    let mut attrs = Cursor::new(der, within);
    let mut previous: Option<&[u8]> = None;
    attrs.peek()?;
    while !attrs.at_end() {
        let start = attrs.pos;
        let attr = attrs.value(SEQUENCE)?;
        let whole = der.get(start..attrs.pos)?;
        if previous.is_some_and(|p| p > whole) {
            return None;
        }
        previous = Some(whole);
        let mut a = Cursor::new(der, attr);
        a.valid_oid()?;
        let values = a.value(SET)?;
        a.end()?;
        let mut v = Cursor::new(der, values);
        v.any()?;
        v.end()?;
    }
    Some(())
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

    /// The next value's identifier octet.
    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.der.get(self.pos).copied())?
    }

    /// The next value is the INTEGER `n` (0 to 127).
    fn integer_is(&mut self, n: u8) -> Option<()> {
        let v = self.value(INTEGER)?;
        (self.der.get(v)? == [n]).then_some(())
    }

    /// The next value is an OBJECT IDENTIFIER the `der` crate decodes.
    fn valid_oid(&mut self) -> Option<()> {
        let v = self.value(OID)?;
        ObjectIdentifier::from_bytes(self.der.get(v)?)
            .ok()
            .map(|_| ())
    }

    /// The next value is one the `der` crate takes as an `Any` as it is ([`ANY_TAGS`]).
    fn any(&mut self) -> Option<()> {
        let tag = self.peek()?;
        ANY_TAGS.contains(&tag).then_some(())?;
        self.value(tag).map(|_| ())
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

    /// `cms_der_order` is the order the `der` crate sorts RecipientInfos into (their `DerOrd`),
    /// on KTRIs and KEKRIs whose encryptedKeys differ in length and in high bits.
    #[test]
    fn recipient_order_is_the_der_crates() {
        use cms::content_info::CmsVersion;
        use cms::enveloped_data::{
            KekIdentifier, KekRecipientInfo, KeyTransRecipientInfo, RecipientIdentifier,
            RecipientInfo,
        };
        use der::asn1::OctetString;
        use der::{DerOrd, Encode};
        use spki::AlgorithmIdentifierOwned;
        use x509_cert::ext::pkix::SubjectKeyIdentifier;

        let alg = |oid| AlgorithmIdentifierOwned {
            oid,
            parameters: None,
        };
        let keys: [&[u8]; 6] = [
            &[0x00, 0xff],
            &[0x01, 0x00],
            &[0x80],
            &[0x7f, 0x00],
            &[0xff],
            &[],
        ];
        let mut ris = Vec::new();
        for k in keys {
            ris.push(RecipientInfo::Ktri(KeyTransRecipientInfo {
                version: CmsVersion::V2,
                rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                    OctetString::new(vec![0x01]).unwrap(),
                )),
                key_enc_alg: alg(oids::RSA_ENCRYPTION),
                enc_key: OctetString::new(k.to_vec()).unwrap(),
            }));
            ris.push(RecipientInfo::Kekri(KekRecipientInfo {
                version: CmsVersion::V4,
                kek_id: KekIdentifier {
                    kek_identifier: OctetString::new(k.to_vec()).unwrap(),
                    date: None,
                    other: None,
                },
                key_enc_alg: alg(oids::ID_AES_256_WRAP),
                encrypted_key: OctetString::new(vec![0x42; 24]).unwrap(),
            }));
        }
        let mut der = Vec::new();
        let mut at = Vec::new();
        for ri in &ris {
            let start = der.len();
            der.extend(ri.to_der().unwrap());
            let dummy = RecipientAt::Kekri {
                kek_id: 0..0,
                wrap: oids::ID_AES_256_WRAP,
                enc_key: 0..0,
            };
            at.push(Some((start..der.len(), dummy)));
        }
        let mut pairs = 0;
        for (i, a) in ris.iter().enumerate() {
            for (j, b) in ris.iter().enumerate() {
                assert_eq!(
                    cms_der_order(&der, &at[i], &at[j]),
                    Some(a.der_cmp(b).unwrap()),
                    "{i} vs {j}"
                );
                pairs += 1;
            }
        }
        println!("cms_der_order = RecipientInfo::der_cmp on {pairs} pairs of KTRIs and KEKRIs");
    }
}
