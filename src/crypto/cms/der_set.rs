//! SET OF values in DER order (X.690 §11.6): the components appear in ascending order of
//! their complete encodings, compared as octet strings.
//!
//! Every SET OF sipsd encodes goes through here instead of the `der` crate's own sort
//! (`SetOfVec::try_from`, `insert`, `from_iter`), because that sort trusts each element type's
//! `DerOrd`, and some of them do not compare encodings: in `cms` 0.3.0-rc.0,
//! `RecipientInfo::value_cmp` is `self.to_der()?.der_cmp(&other.to_der()?)`, a comparison of two
//! `Vec<u8>` as SEQUENCE OF INTEGER — first by the length of that re-encoding (3 octets per
//! byte below 0x80, 4 per byte above), i.e. by how many octets of the two encodings have the
//! high bit set. Two KeyTransRecipientInfos of the same length (callee and proxy1, different
//! random RSA ciphertexts) thus land in either order, and a strict DER parser (pyca
//! `cryptography`: `InvalidSetOrdering`) refuses about half of such messages. The unit tests
//! below keep the minimal case.
//!
//! Comparing complete TLV encodings as byte strings is exactly the X.690 rule: two different
//! complete encodings can never be one a prefix of the other (the identifier and length
//! octets fix the total length), so the "shorter padded with 0-octets" clause never decides.

use der::asn1::SetOfVec;
use der::{Decode, DerOrd, Encode, Header, Length, Tag};

/// The DER encoding (tag, length, components) of SET OF `items`, the components sorted by
/// their encodings.
pub(crate) fn encode_set_of<'i, T, I>(items: I) -> der::Result<Vec<u8>>
where
    T: Encode + 'i,
    I: IntoIterator<Item = &'i T>,
{
    let mut parts = items
        .into_iter()
        .map(Encode::to_der)
        .collect::<der::Result<Vec<Vec<u8>>>>()?;
    parts.sort_unstable();
    let content_len = parts.iter().map(Vec::len).sum::<usize>();
    let mut out = Header::new(Tag::Set, Length::try_from(content_len)?).to_der()?;
    out.reserve(content_len);
    for p in &parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// `items` as a [`SetOfVec`] whose element order is DER order, whatever `T`'s `DerOrd` says.
///
/// The `der` crate has no constructor that keeps a given order, but its decoder re-sorts a SET
/// OF only under DER rules: the DER-sorted encoding is decoded back under BER rules, and the
/// result is checked to encode to exactly those bytes again.
pub(crate) fn set_of<T>(items: Vec<T>) -> der::Result<SetOfVec<T>>
where
    T: Encode + DerOrd + for<'a> Decode<'a, Error = der::Error>,
{
    let der = encode_set_of(&items)?;
    let set = SetOfVec::<T>::from_ber(&der)?;
    if set.to_der()? != der {
        return Err(der::ErrorKind::SetOrdering.into());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use core::cmp::Ordering;

    use cms::content_info::CmsVersion;
    use cms::enveloped_data::{
        KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
    };
    use der::asn1::{Any, OctetString, SetOfVec};
    use der::{DerOrd, Encode};
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::ext::pkix::SubjectKeyIdentifier;

    use super::*;
    use crate::crypto::cms::oids;

    /// A KeyTransRecipientInfo whose only difference from another is its encryptedKey.
    fn ktri(enc_key: &[u8]) -> RecipientInfo {
        RecipientInfo::Ktri(KeyTransRecipientInfo {
            version: CmsVersion::V2,
            rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                OctetString::new(vec![0x01]).unwrap(),
            )),
            key_enc_alg: AlgorithmIdentifierOwned {
                oid: oids::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            enc_key: OctetString::new(enc_key.to_vec()).unwrap(),
        })
    }

    /// The upstream case (cms 0.3.0-rc.0, der 0.8.3): two RecipientInfos whose DER encodings
    /// differ only in the encryptedKey octets 00 FF vs 01 00. Byte order puts the first one
    /// first; `RecipientInfo`'s `DerOrd` says the opposite, so `RecipientInfos::try_from`
    /// encodes a SET OF that is not DER. When this test fails after a `cms` upgrade, upstream
    /// is fixed (the workaround in this file can then go).
    #[test]
    fn cms_recipient_info_order_is_not_der_order() {
        let (a, b) = (ktri(&[0x00, 0xff]), ktri(&[0x01, 0x00]));
        let (da, db) = (a.to_der().unwrap(), b.to_der().unwrap());
        assert_eq!(da.len(), db.len());
        assert_eq!(da.cmp(&db), Ordering::Less, "DER (X.690 11.6): a before b");
        assert_eq!(
            a.der_cmp(&b).unwrap(),
            Ordering::Greater,
            "cms RecipientInfo DerOrd: b before a"
        );
        let theirs = RecipientInfos::try_from(vec![a.clone(), b.clone()])
            .unwrap()
            .to_der()
            .unwrap();
        let ours = RecipientInfos(set_of(vec![b.clone(), a.clone()]).unwrap())
            .to_der()
            .unwrap();
        let expected = [&[0x31, (da.len() * 2) as u8][..], &da, &db].concat();
        assert_eq!(ours, expected);
        assert_ne!(theirs, expected);
        println!(
            "cms RecipientInfo: encryptedKey 00ff vs 0100: DER order a,b; cms/der SetOfVec \
             order b,a (Vec<u8>::der_cmp compares as SEQUENCE OF INTEGER); der_set::set_of a,b"
        );
    }

    #[test]
    fn set_of_sorts_by_encoding_and_round_trips() {
        // Different lengths and contents; reversed and shuffled inputs give the same set.
        let keys: [&[u8]; 5] = [
            &[0x80],
            &[0x7f, 0x00],
            &[0x00, 0xff],
            &[0x01, 0x00],
            &[0xff],
        ];
        let want = {
            let mut d: Vec<Vec<u8>> = keys.iter().map(|k| ktri(k).to_der().unwrap()).collect();
            d.sort();
            d
        };
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 4, 0, 3, 1]] {
            let items: Vec<RecipientInfo> = order.iter().map(|&i| ktri(keys[i])).collect();
            let set = set_of(items.clone()).unwrap();
            let got: Vec<Vec<u8>> = set.iter().map(|ri| ri.to_der().unwrap()).collect();
            assert_eq!(got, want, "{order:?}");
            assert_eq!(
                encode_set_of(&items).unwrap(),
                set.to_der().unwrap(),
                "{order:?}"
            );
        }
        // A set of one, and the long length form (> 127 content octets).
        let one = set_of(vec![ktri(&[0u8; 200])]).unwrap();
        let der = one.to_der().unwrap();
        assert_eq!(&der[..2], &[0x31, 0x81]);
        assert_eq!(SetOfVec::<RecipientInfo>::from_der(&der).unwrap(), one);
        println!("der_set: 5 RecipientInfos in 3 input orders -> one DER order; long form ok");
    }
}
