//! SDES crypto attributes (RFC 4568): the `a=crypto` value of an SDP media description, which
//! carries an SRTP crypto suite and its master key and salt in the clear (`inline:`).
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> <key-params> [<session-param> ...]      (RFC 4568 §9.1)
//! key-params = "inline:" <base64 key||salt> ["|" lifetime] ["|" MKI ":" length] *(";" ...)
//! ```
//!
//! Only the SDP layer and this module see the text; key bytes live in [`MasterKey`]
//! (`Zeroizing`, redacted `Debug`). The SDP layer ([`crate::sip::sdp`]) hands the values over as
//! strings; this parser is its own small module so it can move there.

use core::fmt;
use std::str::FromStr;

use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

/// Most keys (`;`-separated key-params) in one attribute.
pub const MAX_KEYS: usize = 8;
/// Longest attribute value accepted, in bytes.
pub const MAX_ATTR_LEN: usize = 1024;

/// Why an `a=crypto` value could not be read. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdesError {
    /// Fewer than three fields, or a tag that is not a 1..9 digit number.
    #[error("malformed crypto attribute: {0}")]
    Malformed(&'static str),
    /// A crypto suite this implementation does not know (its name).
    #[error("unsupported SRTP crypto suite {0}")]
    UnsupportedSuite(String),
    /// A key method other than `inline`.
    #[error("unsupported key method (only inline: is defined for SRTP)")]
    KeyMethod,
    /// The key||salt is not base64.
    #[error("key is not base64")]
    Base64,
    /// The key||salt has the wrong length for its suite (got, want).
    #[error("key||salt is {0} bytes, the suite needs {1}")]
    KeyLength(usize, usize),
    /// A lifetime that is not a number or `2^n` (n ≤ 63).
    #[error("bad key lifetime")]
    Lifetime,
    /// An MKI that is not `value:length` with length 1..=4 and the value fitting the length.
    #[error("bad MKI (value:length, length 1..4 bytes)")]
    Mki,
    /// Several keys of which some have an MKI and some not, or with different MKI lengths.
    #[error("keys disagree on their MKI length")]
    MkiMismatch,
    /// More than [`MAX_KEYS`] keys or a value longer than [`MAX_ATTR_LEN`].
    #[error("crypto attribute over a limit")]
    TooLarge,
}

/// An SRTP crypto suite of RFC 4568 §6.2, RFC 6188 and RFC 7714.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 80-bit tag (RFC 4568).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 32-bit tag (RFC 4568; SRTCP keeps an 80-bit tag).
    AesCm128HmacSha1_32,
    /// AES-192 counter mode, HMAC-SHA1 80-bit tag (RFC 6188).
    Aes192CmHmacSha1_80,
    /// AES-192 counter mode, HMAC-SHA1 32-bit tag (RFC 6188).
    Aes192CmHmacSha1_32,
    /// AES-256 counter mode, HMAC-SHA1 80-bit tag (RFC 6188).
    Aes256CmHmacSha1_80,
    /// AES-256 counter mode, HMAC-SHA1 32-bit tag (RFC 6188).
    Aes256CmHmacSha1_32,
    /// AES-128-GCM, 16-byte tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256-GCM, 16-byte tag (RFC 7714).
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// Every suite.
    pub const ALL: [SrtpSuite; 8] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::Aes192CmHmacSha1_80,
        SrtpSuite::Aes192CmHmacSha1_32,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::Aes256CmHmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm,
    ];

    /// The suite's SDP name.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::Aes192CmHmacSha1_80 => "AES_192_CM_HMAC_SHA1_80",
            SrtpSuite::Aes192CmHmacSha1_32 => "AES_192_CM_HMAC_SHA1_32",
            SrtpSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80
            | SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::AeadAes128Gcm => 16,
            SrtpSuite::Aes192CmHmacSha1_80 | SrtpSuite::Aes192CmHmacSha1_32 => 24,
            SrtpSuite::Aes256CmHmacSha1_80
            | SrtpSuite::Aes256CmHmacSha1_32
            | SrtpSuite::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes: 14 for AES-CM (RFC 3711), 12 for GCM (RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// True for the AEAD (GCM) suites.
    pub fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SrtpSuite {
    type Err = SdesError;
    fn from_str(s: &str) -> Result<Self, SdesError> {
        SrtpSuite::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| SdesError::UnsupportedSuite(s.chars().take(40).collect()))
    }
}

/// A master key identifier (RFC 3711 §3.1): the value sent in each packet and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mki {
    /// The identifier's value.
    pub value: u32,
    /// Its length on the wire, 1..=4 bytes.
    pub len: u8,
}

impl Mki {
    /// The identifier as it appears in packets (big-endian, `len` bytes).
    pub fn bytes(&self) -> Vec<u8> {
        self.value.to_be_bytes()[4 - self.len as usize..].to_vec()
    }
}

/// One master key of an attribute: key || salt, its lifetime and MKI. `Debug` hides the key.
#[derive(Clone)]
pub struct MasterKey {
    key_salt: Zeroizing<Vec<u8>>,
    /// Packets it may protect (`|2^20`), if the attribute says.
    pub lifetime: Option<u64>,
    /// Its identifier, if the attribute gives one.
    pub mki: Option<Mki>,
}

impl MasterKey {
    /// The master key followed by the master salt.
    pub fn key_salt(&self) -> &[u8] {
        &self.key_salt
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field(
                "key_salt",
                &format_args!("<{} bytes redacted>", self.key_salt.len()),
            )
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

/// A parsed `a=crypto` value: tag, suite, one or more master keys, session parameters.
#[derive(Clone, Debug)]
pub struct CryptoAttr {
    /// The attribute's tag (the answer names the offer's tag it accepts).
    pub tag: u32,
    /// The crypto suite.
    pub suite: SrtpSuite,
    /// The master keys, in order (several only with MKIs).
    pub keys: Vec<MasterKey>,
    /// Session parameters as written (`KDR=`, `WSH=`, `UNENCRYPTED_SRTP`, ...).
    pub session_params: Vec<String>,
}

fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    match s.strip_prefix("2^") {
        Some(exp) => {
            let e: u32 = exp.parse().map_err(|_| SdesError::Lifetime)?;
            if e > 63 {
                return Err(SdesError::Lifetime);
            }
            Ok(1u64 << e)
        }
        None => s.parse().map_err(|_| SdesError::Lifetime),
    }
}

fn parse_mki(s: &str) -> Result<Mki, SdesError> {
    let (v, l) = s.split_once(':').ok_or(SdesError::Mki)?;
    let value: u32 = v.parse().map_err(|_| SdesError::Mki)?;
    let len: u8 = l.parse().map_err(|_| SdesError::Mki)?;
    if !(1..=4).contains(&len) || (len < 4 && value >> (8 * u32::from(len)) != 0) {
        return Err(SdesError::Mki);
    }
    Ok(Mki { value, len })
}

fn parse_key(param: &str, suite: SrtpSuite) -> Result<MasterKey, SdesError> {
    let inline = param.strip_prefix("inline:").ok_or(SdesError::KeyMethod)?;
    let mut parts = inline.split('|');
    let b64 = parts.next().unwrap_or_default();
    let mut key_salt = Zeroizing::new(Vec::new());
    base64::engine::general_purpose::STANDARD
        .decode_vec(b64, &mut key_salt)
        .map_err(|_| SdesError::Base64)?;
    let want = suite.key_len() + suite.salt_len();
    if key_salt.len() != want {
        return Err(SdesError::KeyLength(key_salt.len(), want));
    }
    let (mut lifetime, mut mki) = (None, None);
    for p in parts {
        // RFC 4568 §6.1: an MKI has a colon, a lifetime has none; lifetime comes first.
        if p.contains(':') {
            if mki.is_some() {
                return Err(SdesError::Mki);
            }
            mki = Some(parse_mki(p)?);
        } else {
            if lifetime.is_some() || mki.is_some() {
                return Err(SdesError::Lifetime);
            }
            lifetime = Some(parse_lifetime(p)?);
        }
    }
    Ok(MasterKey {
        key_salt,
        lifetime,
        mki,
    })
}

impl CryptoAttr {
    /// Parses an `a=crypto` value (what follows `a=crypto:`).
    pub fn parse(value: &str) -> Result<CryptoAttr, SdesError> {
        if value.len() > MAX_ATTR_LEN {
            return Err(SdesError::TooLarge);
        }
        let mut f = value.split_ascii_whitespace();
        let tag = f.next().ok_or(SdesError::Malformed("empty"))?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SdesError::Malformed("tag is not a 1-9 digit number"));
        }
        let tag: u32 = tag.parse().map_err(|_| SdesError::Malformed("tag"))?;
        let suite: SrtpSuite = f
            .next()
            .ok_or(SdesError::Malformed("no crypto suite"))?
            .parse()?;
        let params = f.next().ok_or(SdesError::Malformed("no key parameters"))?;
        let keys = params
            .split(';')
            .map(|p| parse_key(p, suite))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() > MAX_KEYS {
            return Err(SdesError::TooLarge);
        }
        let first_len = keys[0].mki.map(|m| m.len);
        if keys.iter().any(|k| k.mki.map(|m| m.len) != first_len)
            || (keys.len() > 1 && first_len.is_none())
        {
            return Err(SdesError::MkiMismatch);
        }
        Ok(CryptoAttr {
            tag,
            suite,
            keys,
            session_params: f.map(str::to_owned).collect(),
        })
    }

    /// The attribute's text again (key material included: for the sealed channel only).
    pub fn to_value(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(format!("{} {} ", self.tag, self.suite));
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str("inline:");
            let mut b64 = base64::engine::general_purpose::STANDARD.encode(k.key_salt());
            out.push_str(&b64);
            b64.zeroize();
            if let Some(l) = k.lifetime {
                if l.is_power_of_two() {
                    out.push_str(&format!("|2^{}", l.trailing_zeros()));
                } else {
                    out.push_str(&format!("|{l}"));
                }
            }
            if let Some(m) = k.mki {
                out.push_str(&format!("|{}:{}", m.value, m.len));
            }
        }
        for p in &self.session_params {
            out.push(' ');
            out.push_str(p);
        }
        out
    }

    /// The replay window a `WSH=` session parameter asks for (RFC 4568 §6.3.7), if any.
    pub fn window_size_hint(&self) -> Option<u32> {
        self.session_params
            .iter()
            .find_map(|p| p.strip_prefix("WSH=")?.parse().ok())
    }

    /// The first session parameter the recorder cannot honour (`KDR` other than 0 — libsrtp
    /// derives keys once —, `UNENCRYPTED_*`, `UNAUTHENTICATED_SRTP`, `FEC_*`), if any.
    pub fn unsupported_param(&self) -> Option<&str> {
        self.session_params
            .iter()
            .find(|p| !(p.starts_with("WSH=") || *p == "KDR=0"))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 30 bytes: 16-byte key + 14-byte salt.
    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn parses_rfc4568_examples() {
        let a = CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32"));
        // MKI length 32 bytes is legal in RFC 4568 but beyond what we accept.
        assert_eq!(a.unwrap_err(), SdesError::Mki);
        let a =
            CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4")).unwrap();
        assert_eq!((a.tag, a.suite), (1, SrtpSuite::AesCm128HmacSha1_80));
        assert_eq!(a.keys.len(), 1);
        assert_eq!(a.keys[0].key_salt().len(), 30);
        assert_eq!(a.keys[0].lifetime, Some(1 << 20));
        assert_eq!(a.keys[0].mki, Some(Mki { value: 1, len: 4 }));
        assert_eq!(a.keys[0].mki.unwrap().bytes(), [0, 0, 0, 1]);
        assert_eq!(
            &*a.to_value(),
            &format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4")
        );
        let two =
            format!("7 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|1066:2;inline:{KEY}|2:2 KDR=0 WSH=256");
        let b = CryptoAttr::parse(&two).unwrap();
        assert_eq!(b.keys.len(), 2);
        assert_eq!(
            b.keys[0].mki,
            Some(Mki {
                value: 1066,
                len: 2
            })
        );
        assert_eq!(b.window_size_hint(), Some(256));
        assert_eq!(b.unsupported_param(), None);
        assert_eq!(&*b.to_value(), &two);
        let plain = CryptoAttr::parse(&format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).unwrap();
        assert_eq!(plain.keys[0].lifetime, None);
        assert_eq!(plain.keys[0].mki, None);
        println!("  ok   RFC 4568 a=crypto: tag, suite, key||salt, lifetime 2^20, MKI, KDR/WSH; text round-trips");
    }

    #[test]
    fn suites_and_lengths() {
        for s in SrtpSuite::ALL {
            assert_eq!(s.name().parse::<SrtpSuite>().unwrap(), s);
        }
        let gcm = base64::engine::general_purpose::STANDARD.encode([7u8; 28]);
        let a = CryptoAttr::parse(&format!("1 AEAD_AES_128_GCM inline:{gcm}")).unwrap();
        assert_eq!(a.keys[0].key_salt().len(), 28);
        let k256 = base64::engine::general_purpose::STANDARD.encode([7u8; 46]);
        CryptoAttr::parse(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{k256}")).unwrap();
        println!("  ok   suites: 8 names round-trip; GCM needs 28/44, AES-256-CM 46 bytes");
    }

    #[test]
    fn errors_and_redaction() {
        let cases = [
            ("", SdesError::Malformed("empty")),
            (
                "x AES_CM_128_HMAC_SHA1_80 inline:AA",
                SdesError::Malformed("tag is not a 1-9 digit number"),
            ),
            (
                "1 F8_128_HMAC_SHA1_80 inline:AA",
                SdesError::UnsupportedSuite("F8_128_HMAC_SHA1_80".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80",
                SdesError::Malformed("no key parameters"),
            ),
            ("1 AES_CM_128_HMAC_SHA1_80 uri:x", SdesError::KeyMethod),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!", SdesError::Base64),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                SdesError::KeyLength(3, 30),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(CryptoAttr::parse(v).unwrap_err(), want, "{v}");
        }
        let bad_life = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^64");
        assert_eq!(
            CryptoAttr::parse(&bad_life).unwrap_err(),
            SdesError::Lifetime
        );
        let bad_mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|256:1");
        assert_eq!(CryptoAttr::parse(&bad_mki).unwrap_err(), SdesError::Mki);
        let mixed = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:1;inline:{KEY}");
        assert_eq!(
            CryptoAttr::parse(&mixed).unwrap_err(),
            SdesError::MkiMismatch
        );
        let a = CryptoAttr::parse(&format!(
            "3 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"
        ))
        .unwrap();
        assert_eq!(a.unsupported_param(), Some("UNENCRYPTED_SRTP"));
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(KEY) && dbg.contains("redacted"), "{dbg}");
        for e in [SdesError::Base64, SdesError::KeyLength(3, 30)] {
            assert!(!e.to_string().contains(KEY));
        }
        println!("  ok   a=crypto errors: one per cause; Debug shows no key: {dbg}");
    }
}
