//! [`ContentAlg`] and [`Cek`]: the content-encryption algorithm and its key.

use core::fmt;

use zeroize::Zeroizing;

use super::error::CmsError;
use super::oids::{self, ObjectIdentifier};

/// A content-encryption algorithm sipsd implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentAlg {
    /// AES-128 in GCM mode (RFC 5084), for AuthEnvelopedData.
    Aes128Gcm,
    /// AES-256 in GCM mode (RFC 5084), for AuthEnvelopedData.
    Aes256Gcm,
    /// AES-128 in CBC mode with PKCS#7 padding (RFC 3565), for EnvelopedData.
    Aes128Cbc,
    /// AES-256 in CBC mode with PKCS#7 padding (RFC 3565), for EnvelopedData.
    Aes256Cbc,
}

impl ContentAlg {
    /// Every algorithm, in code order.
    pub const ALL: [ContentAlg; 4] = [
        ContentAlg::Aes128Gcm,
        ContentAlg::Aes256Gcm,
        ContentAlg::Aes128Cbc,
        ContentAlg::Aes256Cbc,
    ];

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentAlg::Aes128Gcm | ContentAlg::Aes128Cbc => 16,
            ContentAlg::Aes256Gcm | ContentAlg::Aes256Cbc => 32,
        }
    }

    /// Stable numeric code (1 = AES-128-GCM, 2 = AES-256-GCM, 3 = AES-128-CBC,
    /// 4 = AES-256-CBC), e.g. for the dialog key cache and the C ABI.
    pub fn code(self) -> u8 {
        match self {
            ContentAlg::Aes128Gcm => 1,
            ContentAlg::Aes256Gcm => 2,
            ContentAlg::Aes128Cbc => 3,
            ContentAlg::Aes256Cbc => 4,
        }
    }

    /// The algorithm with this [`code`](Self::code).
    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == c)
    }

    /// OpenSSL's name for it, e.g. `"aes-256-gcm"`.
    pub fn name(self) -> &'static str {
        match self {
            ContentAlg::Aes128Gcm => "aes-128-gcm",
            ContentAlg::Aes256Gcm => "aes-256-gcm",
            ContentAlg::Aes128Cbc => "aes-128-cbc",
            ContentAlg::Aes256Cbc => "aes-256-cbc",
        }
    }

    /// The algorithm with this OpenSSL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// True for the authenticated (GCM) algorithms.
    pub fn is_aead(self) -> bool {
        matches!(self, ContentAlg::Aes128Gcm | ContentAlg::Aes256Gcm)
    }

    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ContentAlg::Aes128Gcm => oids::ID_AES_128_GCM,
            ContentAlg::Aes256Gcm => oids::ID_AES_256_GCM,
            ContentAlg::Aes128Cbc => oids::ID_AES_128_CBC,
            ContentAlg::Aes256Cbc => oids::ID_AES_256_CBC,
        }
    }

    /// The algorithm with this object identifier.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.oid() == *oid)
    }
}

impl fmt::Display for ContentAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest content-encryption key (AES-256).
const MAX_KEY_LEN: usize = 32;

/// A content-encryption key: its algorithm and the key bytes.
///
/// The bytes are held inline (no heap allocation: a proxy makes one from the cached dialog
/// key for every in-dialog body), zeroized on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct Cek {
    alg: ContentAlg,
    /// The key in the first `alg.key_len()` bytes, zeros after.
    key: Zeroizing<[u8; MAX_KEY_LEN]>,
}

impl Cek {
    /// A fresh random key for `alg` from the operating system's RNG.
    pub fn generate(alg: ContentAlg) -> Result<Cek, CmsError> {
        let mut key = Zeroizing::new([0u8; MAX_KEY_LEN]);
        let bytes = key.get_mut(..alg.key_len()).ok_or(CmsError::BadKeyLength)?;
        getrandom::fill(bytes).map_err(|_| CmsError::Rng)?;
        Ok(Cek { alg, key })
    }

    /// A key for `alg` from its bytes; the length must be `alg.key_len()`.
    pub fn from_bytes(alg: ContentAlg, key: &[u8]) -> Result<Cek, CmsError> {
        if key.len() != alg.key_len() {
            return Err(CmsError::BadKeyLength);
        }
        let mut inline = Zeroizing::new([0u8; MAX_KEY_LEN]);
        inline
            .get_mut(..key.len())
            .ok_or(CmsError::BadKeyLength)?
            .copy_from_slice(key);
        Ok(Cek { alg, key: inline })
    }

    /// The key from already-zeroizing key bytes (length checked; `key` is dropped, and so
    /// zeroized, here).
    pub(crate) fn from_zeroizing(
        alg: ContentAlg,
        key: Zeroizing<Vec<u8>>,
    ) -> Result<Cek, CmsError> {
        Cek::from_bytes(alg, &key)
    }

    /// The key's algorithm.
    pub fn alg(&self) -> ContentAlg {
        self.alg
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.key.get(..self.alg.key_len()).unwrap_or_default()
    }
}

impl fmt::Debug for Cek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cek")
            .field("alg", &self.alg)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut buf).map_err(|_| CmsError::Rng)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_round_trip() {
        assert_eq!(ContentAlg::Aes128Gcm.code(), 1);
        assert_eq!(ContentAlg::Aes256Gcm.code(), 2);
        assert_eq!(ContentAlg::Aes128Cbc.code(), 3);
        assert_eq!(ContentAlg::Aes256Cbc.code(), 4);
        for a in ContentAlg::ALL {
            assert_eq!(ContentAlg::from_code(a.code()), Some(a));
            assert_eq!(ContentAlg::from_oid(&a.oid()), Some(a));
            assert_eq!(ContentAlg::from_name(a.name()), Some(a));
        }
        assert_eq!(ContentAlg::from_code(0), None);
        assert_eq!(ContentAlg::from_code(5), None);
    }

    #[test]
    fn names_and_lengths() {
        assert_eq!(ContentAlg::Aes256Gcm.name(), "aes-256-gcm");
        assert_eq!(ContentAlg::Aes128Cbc.name(), "aes-128-cbc");
        assert_eq!(ContentAlg::Aes128Gcm.key_len(), 16);
        assert_eq!(ContentAlg::Aes256Cbc.key_len(), 32);
        assert!(ContentAlg::Aes128Gcm.is_aead());
        assert!(!ContentAlg::Aes256Cbc.is_aead());
    }

    #[test]
    fn cek_length_checked_and_debug_redacted() {
        assert!(matches!(
            Cek::from_bytes(ContentAlg::Aes256Gcm, &[7u8; 16]),
            Err(CmsError::BadKeyLength)
        ));
        let k = Cek::from_bytes(ContentAlg::Aes128Cbc, &[0xABu8; 16]).unwrap();
        assert_eq!(k.alg(), ContentAlg::Aes128Cbc);
        assert_eq!(k.as_bytes(), &[0xABu8; 16]);
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains("171") && !dbg.to_lowercase().contains("ab, "),
            "{dbg}"
        );
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn generate_gives_distinct_keys_of_right_length() {
        let a = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
        let b = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
        assert_eq!(a.as_bytes().len(), 32);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }
}
