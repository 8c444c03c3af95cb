//! The recorded streams of a call from its offer and answer (what the proxy module will call
//! once it has both SDPs of a dialog).
//!
//! In SDES each party declares the key it sends with (RFC 4568 §6.1, §7): the answer carries
//! one `a=crypto` per media, whose tag names the offered attribute it accepted; the caller
//! then sends with that offered key and the callee with the answered one. A stream is one
//! direction of one `m=` line that both sides kept (port ≠ 0) with an SRTP profile (`SAVP`).
//! Codecs are left empty (the SDP layer reads `a=rtpmap` now, `MediaInfo::rtpmaps`, but it
//! is not used here yet): the recorder then knows the static G.711 payload types 0 and 8.

use super::message::{Direction, Endpoint, MediaStream, SdesValue};
use super::sdes::CryptoAttr;
use super::RecordError;
use crate::sip::sdp::{MediaInfo, SdpInfo};

fn endpoint(m: &MediaInfo) -> Option<Endpoint> {
    Some(Endpoint {
        address: m.addr()?.to_owned(),
        port: m.port,
    })
}

/// Both directions of every SRTP stream the answer accepted. A media without `a=crypto` in the
/// answer is not SRTP and is left out; an answered tag the offer does not have is an error.
pub fn streams_from_offer_answer(
    offer: &SdpInfo,
    answer: &SdpInfo,
) -> Result<Vec<MediaStream>, RecordError> {
    let mut out = Vec::new();
    for (i, (o, a)) in offer.media.iter().zip(&answer.media).enumerate() {
        let mline = u16::try_from(i).map_err(|_| RecordError::NoMatchingCrypto(u16::MAX))?;
        if o.port == 0 || a.port == 0 || !a.proto.to_ascii_uppercase().contains("SAVP") {
            continue;
        }
        let Some(answered) = a.crypto.first() else {
            continue;
        };
        let answered_attr = CryptoAttr::parse(answered.value())?;
        let offered = o
            .crypto
            .iter()
            .find(|c| {
                CryptoAttr::parse(c.value())
                    .is_ok_and(|x| x.tag == answered_attr.tag && x.suite == answered_attr.suite)
            })
            .ok_or(RecordError::NoMatchingCrypto(mline))?;
        let (Some(caller), Some(callee)) = (endpoint(o), endpoint(a)) else {
            continue;
        };
        for (direction, src, dst, crypto) in [
            (Direction::CallerToCallee, &caller, &callee, offered),
            (Direction::CalleeToCaller, &callee, &caller, answered),
        ] {
            out.push(MediaStream {
                mline,
                media: o.kind.clone(),
                direction,
                source: Some(src.clone()),
                destination: dst.clone(),
                rtcp_mux: false,
                codecs: Vec::new(),
                crypto: SdesValue::new(crypto.value())?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    const K2: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";
    const K3: &str = "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";

    #[test]
    fn offer_answer_to_streams() {
        let offer = format!(
            "v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 49170 RTP/SAVP 0 8\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|2^20\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K2}\r\n\
             m=video 51372 RTP/AVP 31\r\nm=audio 0 RTP/SAVP 0\r\n"
        );
        let answer = format!(
            "v=0\r\nc=IN IP4 198.51.100.20\r\nm=audio 50000 RTP/SAVP 0\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K3}\r\n\
             m=video 0 RTP/AVP 31\r\nm=audio 0 RTP/SAVP 0\r\n"
        );
        let s = streams_from_offer_answer(
            &SdpInfo::parse(offer.as_bytes()).unwrap(),
            &SdpInfo::parse(answer.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].direction, Direction::CallerToCallee);
        assert_eq!(
            (s[0].destination.address.as_str(), s[0].destination.port),
            ("198.51.100.20", 50000)
        );
        assert!(
            s[0].crypto.as_str().contains(K2),
            "the caller sends with the offered attribute the answer accepted (tag 2)"
        );
        assert_eq!(s[1].direction, Direction::CalleeToCaller);
        assert_eq!(
            (s[1].destination.address.as_str(), s[1].destination.port),
            ("192.0.2.10", 49170)
        );
        assert!(s[1].crypto.as_str().contains(K3));
        let bad = answer.replace("crypto:2 ", "crypto:9 ");
        assert!(matches!(
            streams_from_offer_answer(
                &SdpInfo::parse(offer.as_bytes()).unwrap(),
                &SdpInfo::parse(bad.as_bytes()).unwrap()
            ),
            Err(RecordError::NoMatchingCrypto(0))
        ));
        println!("  ok   offer/answer -> 2 streams (caller key = offered tag 2 the answer accepted, callee key = answered); disabled and RTP/AVP media left out; unknown tag refused");
    }
}
