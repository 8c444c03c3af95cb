//! What the recorder takes of an `a=crypto` attribute (RFC 4568). The attribute itself is
//! defined once, in the SDP layer ([`crate::sip::sdp::CryptoAttr`]: syntax, suites, `inline:`
//! keys, lifetimes, MKIs, zeroized text, redacted `Debug`); this module only adds what the
//! recorder (libsrtp2) can use of it: the suites it implements and the session parameters it
//! honours. MKIs of every length the SDP layer takes (1 to [`MAX_MKI_LEN`] bytes, libsrtp2's
//! own limit) are used as they are.

pub use crate::sip::sdp::crypto::MAX_MKI_LEN;
use crate::sip::sdp::{CryptoAttr, MasterKey, SdpError, SrtpSuite};

/// Why the recorder cannot use an `a=crypto` value. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdesError {
    /// The value is not an `a=crypto` the SDP layer accepts, or its keys do not decode.
    #[error("{0}")]
    Sdp(#[from] SdpError),
    /// A crypto suite the recorder does not implement (its name, at most 40 characters).
    #[error("unsupported SRTP crypto suite {0}")]
    UnsupportedSuite(String),
}

/// True for the suites the recorder decrypts: all but f8 (which libsrtp2 lacks).
pub fn recordable_suite(suite: SrtpSuite) -> bool {
    suite != SrtpSuite::F8_128HmacSha1_80
}

/// The suite and master keys of `attr`, if the recorder can use them: a suite it implements,
/// keys that decode for it (see [`CryptoAttr::keys`]).
pub fn srtp_keys(attr: &CryptoAttr) -> Result<(SrtpSuite, Vec<MasterKey>), SdesError> {
    let suite = attr
        .srtp_suite()
        .filter(|s| recordable_suite(*s))
        .ok_or_else(|| SdesError::UnsupportedSuite(attr.suite().chars().take(40).collect()))?;
    Ok((suite, attr.keys()?))
}

/// Parses an `a=crypto` value (what follows `a=crypto:`) and checks that the recorder can use
/// it ([`srtp_keys`]).
pub fn parse(value: &str) -> Result<CryptoAttr, SdesError> {
    let attr = CryptoAttr::parse(value)?;
    srtp_keys(&attr)?;
    Ok(attr)
}

/// The first session parameter the recorder cannot honour (`KDR` other than 0 — libsrtp
/// derives keys once —, `UNENCRYPTED_*`, `UNAUTHENTICATED_SRTP`, `FEC_*`), if any.
pub fn unsupported_param(attr: &CryptoAttr) -> Option<&str> {
    attr.session_param_list()
        .find(|p| !(p.starts_with("WSH=") || *p == "KDR=0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::Mki;

    // 30 bytes: 16-byte key + 14-byte salt.
    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    /// Every value the recorder's own parser (before the SDP layer's became the only one)
    /// was tested with keeps its outcome, accepted or refused for the same cause; except
    /// MKIs over 4 bytes, refused then, taken now up to the SDP layer's (libsrtp2's) 128.
    #[test]
    fn recorder_outcomes_kept() {
        use base64::Engine as _;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        let accepted = [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),
            format!("7 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|1066:2;inline:{KEY}|2:2 KDR=0 WSH=256"),
            format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
            format!("1 AEAD_AES_128_GCM inline:{}", b64(28)),
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{}", b64(46)),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32"),
        ];
        for v in &accepted {
            let a = parse(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(a.value(), v.as_str());
        }
        let a = parse(&accepted[0]).unwrap();
        let (suite, keys) = srtp_keys(&a).unwrap();
        assert_eq!((a.tag(), suite), (1, SrtpSuite::AesCm128HmacSha1_80));
        assert_eq!(keys[0].mki, Some(Mki { value: 1, len: 4 }));
        assert_eq!(keys[0].mki.unwrap().bytes(), [0, 0, 0, 1]);
        let b = parse(&accepted[1]).unwrap();
        assert_eq!(
            (b.window_size_hint(), unsupported_param(&b)),
            (Some(256), None)
        );
        let c = parse(&accepted[5]).unwrap();
        assert_eq!(unsupported_param(&c), Some("UNENCRYPTED_SRTP"));
        let refused = [
            ("".into(), SdesError::Sdp(SdpError::BadCrypto("no tag"))),
            (
                "x AES_CM_128_HMAC_SHA1_80 inline:AA".into(),
                SdesError::Sdp(SdpError::BadCrypto("tag is not 1 to 9 digits")),
            ),
            (
                "1 F8_128_HMAC_SHA1_80 inline:AA".into(),
                SdesError::UnsupportedSuite("F8_128_HMAC_SHA1_80".into()),
            ),
            (
                "1 FUTURE_SUITE_X inline:AA".into(),
                SdesError::UnsupportedSuite("FUTURE_SUITE_X".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80".into(),
                SdesError::Sdp(SdpError::BadCrypto("no key parameters")),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:x".into(),
                SdesError::Sdp(SdpError::KeyMethod),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!!".into(),
                SdesError::Sdp(SdpError::KeyBase64),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA".into(),
                SdesError::Sdp(SdpError::KeyLength { got: 3, want: 30 }),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^64"),
                SdesError::Sdp(SdpError::Lifetime),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|256:1"),
                SdesError::Sdp(SdpError::Mki),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:1;inline:{KEY}"),
                SdesError::Sdp(SdpError::MkiMismatch),
            ),
        ];
        for (v, want) in &refused {
            assert_eq!(&parse(v).unwrap_err(), want, "{v}");
            assert!(!want.to_string().contains(KEY));
        }
        let dbg = format!("{c:?} {:?}", srtp_keys(&c).unwrap().1);
        assert!(!dbg.contains(KEY) && dbg.contains("redacted"), "{dbg}");
        println!(
            "  ok   recorder: {} a=crypto values accepted (MKI 1:4, two keys, KDR=0 WSH=256, GCM, AES-256), {} refused for the same cause as before (MKI over 4 bytes, f8 and unknown suites, syntax, key method, base64, length, lifetime, MKI); UNENCRYPTED_SRTP unsupported; Debug: {dbg}",
            accepted.len(),
            refused.len()
        );
    }
}
