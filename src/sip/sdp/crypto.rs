//! SDES: the `a=crypto` attribute of a media description (RFC 4568), which carries an SRTP
//! crypto suite and its master keys in the clear.
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> <key-params> [<session-param> ...]            (§9.1)
//! key-params = <key-method> ":" <key-info> *(";" <key-method> ":" <key-info>)
//! inline key-info = <base64 key||salt> ["|" lifetime] ["|" mki-value ":" mki-length]   (§6.1)
//! ```
//!
//! This is the one definition of the attribute in sipsd: the SDP parser keeps every
//! `a=crypto` as a [`CryptoAttr`] (the syntax above checked, nothing decoded), and whoever
//! needs the key bytes (the SRTP recorder) asks [`CryptoAttr::keys`], which decodes the
//! `inline:` keys of a known [`SrtpSuite`]. The text lives in one zeroizing buffer; `Debug`
//! shows tag and suite only.

use std::fmt;
use std::ops::Range;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::SdpError;

/// Longest `a=crypto` value accepted, in bytes.
pub const MAX_CRYPTO_LEN: usize = 1024;
/// Most master keys one attribute may list (key parameters separated by `;`).
pub const MAX_KEYS: usize = 8;
/// Longest MKI accepted, in bytes (RFC 4568 `mki-length` is 1 to 3 digits; libsrtp's limit).
pub const MAX_MKI_LEN: u8 = 128;

/// The SRTP crypto suites whose key and salt lengths sipsd knows: RFC 4568 §6.2, RFC 6188
/// (AES-192/256 counter mode), RFC 7714 §12 (AES-GCM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`
    AesCm128HmacSha1_32,
    /// `F8_128_HMAC_SHA1_80`
    F8_128HmacSha1_80,
    /// `AES_192_CM_HMAC_SHA1_80`
    Aes192CmHmacSha1_80,
    /// `AES_192_CM_HMAC_SHA1_32`
    Aes192CmHmacSha1_32,
    /// `AES_256_CM_HMAC_SHA1_80`
    Aes256CmHmacSha1_80,
    /// `AES_256_CM_HMAC_SHA1_32`
    Aes256CmHmacSha1_32,
    /// `AEAD_AES_128_GCM`
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM`
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// Every suite, with its SDP name, master key length and master salt length in bytes.
    const TABLE: [(SrtpSuite, &'static str, usize, usize); 9] = [
        (
            SrtpSuite::AesCm128HmacSha1_80,
            "AES_CM_128_HMAC_SHA1_80",
            16,
            14,
        ),
        (
            SrtpSuite::AesCm128HmacSha1_32,
            "AES_CM_128_HMAC_SHA1_32",
            16,
            14,
        ),
        (SrtpSuite::F8_128HmacSha1_80, "F8_128_HMAC_SHA1_80", 16, 14),
        (
            SrtpSuite::Aes192CmHmacSha1_80,
            "AES_192_CM_HMAC_SHA1_80",
            24,
            14,
        ),
        (
            SrtpSuite::Aes192CmHmacSha1_32,
            "AES_192_CM_HMAC_SHA1_32",
            24,
            14,
        ),
        (
            SrtpSuite::Aes256CmHmacSha1_80,
            "AES_256_CM_HMAC_SHA1_80",
            32,
            14,
        ),
        (
            SrtpSuite::Aes256CmHmacSha1_32,
            "AES_256_CM_HMAC_SHA1_32",
            32,
            14,
        ),
        (SrtpSuite::AeadAes128Gcm, "AEAD_AES_128_GCM", 16, 12),
        (SrtpSuite::AeadAes256Gcm, "AEAD_AES_256_GCM", 32, 12),
    ];

    /// Every suite.
    pub fn all() -> impl Iterator<Item = SrtpSuite> {
        Self::TABLE.iter().map(|row| row.0)
    }

    fn row(self) -> &'static (SrtpSuite, &'static str, usize, usize) {
        Self::TABLE
            .iter()
            .find(|row| row.0 == self)
            .unwrap_or(&Self::TABLE[0])
    }

    /// The suite named `name` (names are case-sensitive, RFC 4568 §9.2).
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        Self::TABLE
            .iter()
            .find(|row| row.1 == name)
            .map(|row| row.0)
    }

    /// The SDP name.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Bytes of master key the suite takes.
    pub fn key_len(self) -> usize {
        self.row().2
    }

    /// Master salt length in bytes (14 for the counter and f8 modes, 12 for GCM).
    pub fn salt_len(self) -> usize {
        self.row().3
    }

    /// True for the AES-GCM suites.
    pub fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A master key identifier (RFC 3711 §3.1): the value every packet carries, and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mki {
    /// The identifier.
    pub value: u64,
    /// Its length in packets, 1 to [`MAX_MKI_LEN`] bytes.
    pub len: u8,
}

impl Mki {
    /// The identifier as packets carry it: `len` bytes, big-endian.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; usize::from(self.len)];
        let be = self.value.to_be_bytes();
        let n = be.len().min(out.len());
        let at = out.len() - n;
        out[at..].copy_from_slice(&be[be.len() - n..]);
        out
    }
}

/// An SRTP master key taken from an `inline:` key parameter: its key and salt bytes (never
/// shown by `Debug`), and the lifetime and MKI written after them.
#[derive(Clone)]
pub struct MasterKey {
    key_salt: Zeroizing<Vec<u8>>,
    /// How many packets the key may protect (`|2^20`, `|1048576`); `None` when not said.
    pub lifetime: Option<u64>,
    /// The master key identifier (`|1066:2`); `None` when not given.
    pub mki: Option<Mki>,
}

impl MasterKey {
    /// The key bytes, then the salt bytes, as the suite sizes them.
    pub fn key_salt(&self) -> &[u8] {
        &self.key_salt
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKey {{ <{} bytes>, lifetime {:?}, mki {:?} }}",
            self.key_salt.len(),
            self.lifetime,
            self.mki
        )
    }
}

/// One `a=crypto` attribute: its tag and suite, and its key and session parameters as
/// secret text. Clones share nothing; every copy is zeroized when dropped.
#[derive(Clone)]
pub struct CryptoAttr {
    tag: u32,
    /// The value as written (after `a=crypto:`, outer white space removed).
    value: Zeroizing<String>,
    suite: Range<usize>,
    key_params: Range<usize>,
    session_params: Range<usize>,
}

/// The bytes of a token (RFC 8866 §9): visible ASCII except `"(),/:;<=>?@[\]{}`... as the
/// grammar lists; a table, one look-up a byte.
const TOKEN_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b, 0x21 | 0x23..=0x27 | 0x2a | 0x2b | 0x2d | 0x2e | 0x30..=0x39
            | 0x41..=0x5a | 0x5e..=0x7e);
        b += 1;
    }
    t
};

/// A token (RFC 8866 §9): visible ASCII except `"(),/:;<=>?@[\]{}`... as the grammar lists.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| TOKEN_BYTES[usize::from(b)])
}

/// True for a space or a tab, what separates the fields of the attribute.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `b` less the spaces and tabs at both ends.
fn trim_blanks(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !is_blank(*c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !is_blank(*c))
        .map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Where the first byte of `b` is that is not visible ASCII (0x21 to 0x7e) or is a `;`:
/// where the info of a key parameter ends. Eight bytes at a time: the keys are the bulk of
/// the attribute. In a `u64` word, a byte below 0x21 borrows into its high bit when 0x21 is
/// taken from it, one at or above 0x7f has its high bit set with 1 added or on its own, and
/// a `;` is a zero byte of the word xor `;`s; carries and borrows start only at a flagged
/// byte, so the lowest flag is exact.
fn info_end(b: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes);
        let semi = x ^ (LOW * u64::from(b';'));
        let flags = ((x.wrapping_sub(LOW * 0x21) & !x)
            | x.wrapping_add(LOW)
            | x
            | (semi.wrapping_sub(LOW) & !semi))
            & HIGH;
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|c| !c.is_ascii_graphic() || *c == b';')
        .map(|i| at + i)
}

impl CryptoAttr {
    /// Checks the syntax of an `a=crypto` value (what follows `a=crypto:`): a tag of 1 to 9
    /// digits, a suite token, key-params of `method:info` elements (at most [`MAX_KEYS`]),
    /// then any session parameters. Keys are not decoded here (see [`CryptoAttr::keys`]), so
    /// an unknown suite or key method is kept, as RFC 4568 §6.1 asks of a receiver. One walk
    /// over the bytes: each field is read until the byte that ends it, which must be a
    /// space, a tab or the end.
    pub fn parse(value: &str) -> Result<CryptoAttr, SdpError> {
        let value = trim_blanks(value);
        if value.len() > MAX_CRYPTO_LEN {
            return Err(SdpError::CryptoTooLarge);
        }
        let b = value.as_bytes();
        // The field ending at `at` ends there: a blank or the end follows it.
        let ends = |at: usize| b.get(at).is_none_or(|c| is_blank(*c));
        // The next field after `at`, past the blanks (the end when none).
        let skip = |mut at: usize| {
            while b.get(at).is_some_and(|c| is_blank(*c)) {
                at += 1;
            }
            at
        };
        // The end of the run of token bytes from `at`.
        let token_end = |mut at: usize| {
            while b.get(at).is_some_and(|c| TOKEN_BYTES[usize::from(*c)]) {
                at += 1;
            }
            at
        };
        if b.is_empty() {
            return Err(SdpError::BadCrypto("no tag"));
        }
        let (tag, tag_end) = super::digits(b, 0, 9)
            .filter(|(_, end)| ends(*end))
            .and_then(|(n, end)| Some((u32::try_from(n).ok()?, end)))
            .ok_or(SdpError::BadCrypto("tag is not 1 to 9 digits"))?;
        let suite_start = skip(tag_end);
        if suite_start == b.len() {
            return Err(SdpError::BadCrypto("no crypto suite"));
        }
        let suite_end = token_end(suite_start);
        if suite_end == suite_start || !ends(suite_end) {
            return Err(SdpError::BadCrypto("crypto suite is not a token"));
        }
        let keys_start = skip(suite_end);
        if keys_start == b.len() {
            return Err(SdpError::BadCrypto("no key parameters"));
        }
        // Each key parameter: a method token, a colon, then visible bytes but `;` up to a
        // `;` (another parameter follows), a blank or the end (the field ends).
        let not_method_info = SdpError::BadCrypto("key parameter is not method:info");
        let mut n = 0;
        let mut at = keys_start;
        let keys_end = loop {
            n += 1;
            let colon = token_end(at);
            if colon == at || b.get(colon) != Some(&b':') {
                return Err(not_method_info);
            }
            let info = colon + 1;
            let rest = b.get(info..).unwrap_or_default();
            let stop = info + info_end(rest).unwrap_or(rest.len());
            match b.get(stop) {
                _ if stop == info => return Err(not_method_info),
                Some(b';') => at = stop + 1,
                _ if ends(stop) => break stop,
                // A byte that is neither visible nor a blank, inside the field.
                _ => return Err(not_method_info),
            }
        };
        if n > MAX_KEYS {
            return Err(SdpError::CryptoTooLarge);
        }
        let session_params = skip(keys_end)..b.len();
        if !b
            .get(session_params.clone())
            .unwrap_or_default()
            .iter()
            .all(|c| c.is_ascii_graphic() || is_blank(*c))
        {
            return Err(SdpError::BadCrypto(
                "session parameters are not visible text",
            ));
        }
        // Reserved up front: no reallocation leaves a copy of the keys behind.
        let mut owned = Zeroizing::new(String::with_capacity(value.len()));
        owned.push_str(value);
        Ok(CryptoAttr {
            tag,
            value: owned,
            suite: suite_start..suite_end,
            key_params: keys_start..keys_end,
            session_params,
        })
    }

    fn slice(&self, r: &Range<usize>) -> &str {
        self.value.get(r.clone()).unwrap_or_default()
    }

    /// The tag (an answer names the offered attribute it accepts by its tag).
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// The crypto suite as written.
    pub fn suite(&self) -> &str {
        self.slice(&self.suite)
    }

    /// The suite, when it is one sipsd knows.
    pub fn srtp_suite(&self) -> Option<SrtpSuite> {
        SrtpSuite::from_name(self.suite())
    }

    /// The key parameters as written, e.g. `inline:<key||salt>|2^20|1:4`: **secret**.
    pub fn key_params(&self) -> &str {
        self.slice(&self.key_params)
    }

    /// The session parameters as written (`KDR=1 WSH=128`), "" when none.
    pub fn session_params(&self) -> &str {
        self.slice(&self.session_params)
    }

    /// The session parameters one by one (`KDR=1`, `WSH=128`, `UNENCRYPTED_SRTP`, ...).
    pub fn session_param_list(&self) -> impl Iterator<Item = &str> {
        self.session_params()
            .split([' ', '\t'])
            .filter(|p| !p.is_empty())
    }

    /// The replay window a `WSH=` session parameter asks for (RFC 4568 §6.3.7), if any.
    pub fn window_size_hint(&self) -> Option<u32> {
        self.session_param_list()
            .find_map(|p| p.strip_prefix("WSH=")?.parse().ok())
    }

    /// The whole value as written (tag, suite, keys, session parameters): **secret**.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The master keys (RFC 4568 §6.1, `inline:` only, the only method SRTP defines), each
    /// key||salt of the suite's length; several keys must all carry an MKI of one length.
    pub fn keys(&self) -> Result<Vec<MasterKey>, SdpError> {
        let suite = self.srtp_suite().ok_or(SdpError::UnknownSuite)?;
        let keys = self
            .key_params()
            .split(';')
            .map(|p| inline_key(p, suite))
            .collect::<Result<Vec<_>, _>>()?;
        let mki_len = keys.first().and_then(|k| k.mki).map(|m| m.len);
        if keys.iter().any(|k| k.mki.map(|m| m.len) != mki_len)
            || (keys.len() > 1 && mki_len.is_none())
        {
            return Err(SdpError::MkiMismatch);
        }
        Ok(keys)
    }
}

impl fmt::Debug for CryptoAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoAttr")
            .field("tag", &self.tag)
            .field("suite", &self.suite())
            .field("key_params", &"<redacted>")
            .field("session_params", &self.session_params())
            .finish()
    }
}

/// base64 (RFC 4648 alphabet) with or without padding: RFC 4568 keys of 30 bytes need none,
/// those of 46 bytes (AES-256) are written both ways.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `inline:<key||salt>[|lifetime][|mki:len]` of `suite`. After the key come at most a
/// lifetime and then an MKI; a single field after the key is an MKI when it has a colon
/// (RFC 4568 §9.2 grammar: a lifetime never has one).
fn inline_key(param: &str, suite: SrtpSuite) -> Result<MasterKey, SdpError> {
    let info = param.strip_prefix("inline:").ok_or(SdpError::KeyMethod)?;
    let (encoded, tail) = info.split_once('|').unwrap_or((info, ""));
    let after: Vec<&str> = if tail.is_empty() {
        Vec::new()
    } else {
        tail.split('|').collect()
    };
    let (lifetime, mki) = match after[..] {
        [] => (None, None),
        [only] if only.contains(':') => (None, Some(parse_mki(only)?)),
        [only] => (Some(parse_lifetime(only)?), None),
        [life, id] => (Some(parse_lifetime(life)?), Some(parse_mki(id)?)),
        _ => {
            return Err(SdpError::BadCrypto(
                "more than a lifetime and an MKI after a key",
            ))
        }
    };
    // Decoded into a zeroizing buffer sized up front: nothing is reallocated, so no copy of
    // the key is left behind in freed memory.
    let mut key_salt = Zeroizing::new(vec![0u8; encoded.len().div_ceil(4) * 3]);
    let n = BASE64
        .decode_slice(encoded, key_salt.as_mut_slice())
        .map_err(|_| SdpError::KeyBase64)?;
    key_salt.truncate(n);
    let want = suite.key_len() + suite.salt_len();
    if n != want {
        return Err(SdpError::KeyLength { got: n, want });
    }
    Ok(MasterKey {
        key_salt,
        lifetime,
        mki,
    })
}

/// `2^n` (n ≤ 63) or a decimal count of packets, not 0.
fn parse_lifetime(s: &str) -> Result<u64, SdpError> {
    let n = match s.strip_prefix("2^") {
        Some(exp) => super::decimal(exp, 2)
            .filter(|e| *e <= 63)
            .map(|e| 1u64 << e)
            .ok_or(SdpError::Lifetime)?,
        None => super::decimal(s, 19).ok_or(SdpError::Lifetime)?,
    };
    if n == 0 {
        return Err(SdpError::Lifetime);
    }
    Ok(n)
}

/// `value:length`, length 1 to [`MAX_MKI_LEN`] bytes and the value fitting in it.
fn parse_mki(s: &str) -> Result<Mki, SdpError> {
    let (v, l) = s.split_once(':').ok_or(SdpError::Mki)?;
    let value = super::decimal(v, 20).ok_or(SdpError::Mki)?;
    let len = super::decimal(l, 3)
        .and_then(|l| u8::try_from(l).ok())
        .filter(|l| (1..=MAX_MKI_LEN).contains(l))
        .ok_or(SdpError::Mki)?;
    if len < 8 && value >> (8 * u32::from(len)) != 0 {
        return Err(SdpError::Mki);
    }
    Ok(Mki { value, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 bytes of key||salt for the 128-bit suites.
    const K30: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn syntax_and_accessors() {
        let a = CryptoAttr::parse(&format!(
            " 1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:32 KDR=1  WSH=64 "
        ))
        .unwrap();
        assert_eq!(a.tag(), 1);
        assert_eq!(a.suite(), "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(a.srtp_suite(), Some(SrtpSuite::AesCm128HmacSha1_80));
        assert_eq!(a.key_params(), format!("inline:{K30}|2^20|1:32"));
        assert_eq!(a.session_params(), "KDR=1  WSH=64");
        assert!(a.value().starts_with("1 AES_CM") && a.value().ends_with("WSH=64"));
        let b = CryptoAttr::parse("7 FUTURE_SUITE_X magic:abc").unwrap();
        assert_eq!(
            (b.suite(), b.srtp_suite(), b.session_params()),
            ("FUTURE_SUITE_X", None, "")
        );
        assert_eq!(b.keys().unwrap_err(), SdpError::UnknownSuite);
        println!("  ok   a=crypto: tag, suite, key params, session params as written; unknown suite kept, keys() refuses it");
    }

    #[test]
    fn keys_rfc4568() {
        let a = CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:32"))
            .unwrap();
        let k = a.keys().unwrap();
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].key_salt().len(), 30);
        assert_eq!(k[0].lifetime, Some(1 << 20));
        assert_eq!(k[0].mki, Some(Mki { value: 1, len: 32 }));
        let mki = k[0].mki.unwrap().bytes();
        assert_eq!(
            (mki.len(), mki[31], mki[..31].iter().all(|b| *b == 0)),
            (32, 1, true)
        );
        assert_eq!(
            Mki {
                value: 1066,
                len: 2
            }
            .bytes(),
            [0x04, 0x2a]
        );
        let two = CryptoAttr::parse(&format!(
            "2 AES_CM_128_HMAC_SHA1_32 inline:{K30}|1066:2;inline:{K30}|1048576|2:2"
        ))
        .unwrap();
        let k = two.keys().unwrap();
        assert_eq!(
            (k.len(), k[1].lifetime, k[1].mki),
            (2, Some(1 << 20), Some(Mki { value: 2, len: 2 }))
        );
        let k46 = BASE64.encode([7u8; 46]);
        let k46_nopad = k46.trim_end_matches('=');
        for text in [k46.as_str(), k46_nopad] {
            let a = CryptoAttr::parse(&format!("3 AES_256_CM_HMAC_SHA1_80 inline:{text}")).unwrap();
            assert_eq!(a.keys().unwrap()[0].key_salt(), [7u8; 46]);
        }
        let gcm = BASE64.encode([9u8; 28]);
        let a = CryptoAttr::parse(&format!("4 AEAD_AES_128_GCM inline:{gcm}")).unwrap();
        assert_eq!(a.keys().unwrap()[0].key_salt().len(), 28);
        for s in SrtpSuite::all() {
            assert_eq!(SrtpSuite::from_name(s.name()), Some(s));
        }
        println!("  ok   RFC 4568 inline keys: key||salt per suite (30/46/28 bytes, padded or not), lifetime 2^20 or decimal, MKI 1066:2 and 1:32, two keys with MKIs");
    }

    #[test]
    fn refused() {
        let syntax = [
            "",
            "t1 AES_CM_128_HMAC_SHA1_80 inline:QUJD",
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AA",
            "1",
            "5 AEAD_AES_256_GCM",
            "1 AES(CM) inline:AA",
            "1 AES_CM_128_HMAC_SHA1_80 inlineAA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AA;",
            "1 AES_CM_128_HMAC_SHA1_80 :AA",
        ];
        for v in syntax {
            assert!(
                matches!(CryptoAttr::parse(v), Err(SdpError::BadCrypto(_))),
                "{v:?}: {:?}",
                CryptoAttr::parse(v)
            );
        }
        let many = format!(
            "1 AES_CM_128_HMAC_SHA1_80 {}",
            ["inline:AA"; MAX_KEYS + 1].join(";")
        );
        assert_eq!(
            CryptoAttr::parse(&many).unwrap_err(),
            SdpError::CryptoTooLarge
        );
        let long = format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{}",
            "A".repeat(MAX_CRYPTO_LEN)
        );
        assert_eq!(
            CryptoAttr::parse(&long).unwrap_err(),
            SdpError::CryptoTooLarge
        );
        let keys = |kp: &str| {
            CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {kp}"))
                .unwrap()
                .keys()
                .unwrap_err()
        };
        let cases = [
            ("uri:http://x".to_string(), SdpError::KeyMethod),
            ("inline:!!!!".to_string(), SdpError::KeyBase64),
            (
                "inline:AAAA".to_string(),
                SdpError::KeyLength { got: 3, want: 30 },
            ),
            (format!("inline:{K30}|2^64"), SdpError::Lifetime),
            (format!("inline:{K30}|0"), SdpError::Lifetime),
            (format!("inline:{K30}|1:1|2^20"), SdpError::Lifetime),
            (format!("inline:{K30}|2^20|2^21"), SdpError::Mki),
            (format!("inline:{K30}|256:1"), SdpError::Mki),
            (format!("inline:{K30}|1:0"), SdpError::Mki),
            (format!("inline:{K30}|1:129"), SdpError::Mki),
            (format!("inline:{K30}|1:1|2:1"), SdpError::Lifetime),
            (
                format!("inline:{K30}|2^20|1:1|2:1"),
                SdpError::BadCrypto("more than a lifetime and an MKI after a key"),
            ),
            (
                format!("inline:{K30}|1:1;inline:{K30}"),
                SdpError::MkiMismatch,
            ),
            (format!("inline:{K30};inline:{K30}"), SdpError::MkiMismatch),
            (
                format!("inline:{K30}|1:1;inline:{K30}|2:2"),
                SdpError::MkiMismatch,
            ),
        ];
        for (kp, want) in &cases {
            assert_eq!(&keys(kp), want, "{kp}");
            assert!(!want.to_string().contains(K30));
        }
        println!(
            "  ok   a=crypto: {} syntax errors, the size and key-count limits, {} key errors, one per cause, none showing a key",
            syntax.len(),
            cases.len()
        );
    }

    /// The cases the recorder's parser (`record::sdes` before this one replaced it) tested.
    #[test]
    fn recorder_cases() {
        let a =
            CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:4")).unwrap();
        let k = a.keys().unwrap();
        assert_eq!(
            (a.tag(), a.srtp_suite()),
            (1, Some(SrtpSuite::AesCm128HmacSha1_80))
        );
        assert_eq!((k.len(), k[0].key_salt().len()), (1, 30));
        assert_eq!(
            (k[0].lifetime, k[0].mki),
            (Some(1 << 20), Some(Mki { value: 1, len: 4 }))
        );
        assert_eq!(k[0].mki.unwrap().bytes(), [0, 0, 0, 1]);
        let two =
            format!("7 AES_CM_128_HMAC_SHA1_32 inline:{K30}|1066:2;inline:{K30}|2:2 KDR=0 WSH=256");
        let b = CryptoAttr::parse(&two).unwrap();
        let k = b.keys().unwrap();
        assert_eq!(
            (k.len(), k[0].mki, k[1].mki),
            (
                2,
                Some(Mki {
                    value: 1066,
                    len: 2
                }),
                Some(Mki { value: 2, len: 2 })
            )
        );
        assert_eq!(b.value(), two);
        assert_eq!(
            b.session_param_list().collect::<Vec<_>>(),
            ["KDR=0", "WSH=256"]
        );
        assert_eq!(
            (b.window_size_hint(), a.window_size_hint()),
            (Some(256), None)
        );
        let plain = CryptoAttr::parse(&format!("2 AES_CM_128_HMAC_SHA1_80 inline:{K30}")).unwrap();
        let k = plain.keys().unwrap();
        assert_eq!((k[0].lifetime, k[0].mki), (None, None));
        for (v, want) in [
            (
                "x AES_CM_128_HMAC_SHA1_80 inline:AA",
                SdpError::BadCrypto("tag is not 1 to 9 digits"),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80",
                SdpError::BadCrypto("no key parameters"),
            ),
        ] {
            assert_eq!(CryptoAttr::parse(v).unwrap_err(), want, "{v}");
        }
        let bad = CryptoAttr::parse("1 AES_CM_128_HMAC_SHA1_80 inline:!!!").unwrap();
        assert_eq!(bad.keys().unwrap_err(), SdpError::KeyBase64);
        println!("  ok   the recorder's cases: MKI 1:4 as 4 bytes, two keys 1066:2 and 2:2 with KDR=0 WSH=256 (window hint 256), a key alone; tag x and missing keys refused, key !!! not base64");
    }

    #[test]
    fn debug_shows_no_key() {
        let a = CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20")).unwrap();
        let dbg = format!("{a:?} {:?}", a.keys().unwrap());
        assert!(!dbg.contains(K30) && !dbg.contains("2^20|"), "{dbg}");
        assert!(dbg.contains("<redacted>") && dbg.contains("<30 bytes>, lifetime Some(1048576)"));
        println!("  ok   Debug of the attribute and its keys: {dbg}");
    }
}
