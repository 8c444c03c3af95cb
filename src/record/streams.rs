//! The recorded streams of a call from its offer and answer (what the proxy module will call
//! once it has both SDPs of a dialog).
//!
//! In SDES each party declares the key it sends with (RFC 4568 §6.1, §7): the answer carries
//! one `a=crypto` per media, whose tag names the offered attribute it accepted; the offerer
//! then sends with that offered key and the answerer with the answered one. The offerer is
//! the caller at the initial INVITE and either party later (the callee's re-INVITE): the
//! directions are the dialog's, caller to callee and back, whoever offered. A stream is one
//! direction of one `m=` line that both sides kept (port ≠ 0) with an SRTP profile (`SAVP`).
//! The codecs are the answer's payload types (RFC 3264 §6.1: both sides send from the
//! formats the answer kept), each named by its `a=rtpmap` in the answer, else in the offer,
//! else by its static assignment (RFC 3551); a dynamic type mapped nowhere is left out. RTCP
//! shares the RTP port when both sides asked for `a=rtcp-mux` (RFC 5761 §5.1.1).

use super::message::{Codec, Direction, Endpoint, MediaStream, SdesValue};
use super::RecordError;
use crate::sip::sdp::{MediaInfo, SdpInfo};

fn endpoint(m: &MediaInfo) -> Option<Endpoint> {
    Some(Endpoint {
        address: m.addr()?.to_owned(),
        port: m.port,
    })
}

/// The payload types the answer kept, named (see the module comment).
fn codecs(offer: &MediaInfo, answer: &MediaInfo) -> Vec<Codec> {
    answer
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt <= 127))
        .filter_map(|pt| {
            let map = answer
                .rtpmap(pt)
                .or_else(|| offer.rtpmap(pt))
                .cloned()
                .or_else(|| answer.payload(pt))?;
            Some(Codec {
                payload_type: pt,
                name: map.encoding.into(),
                clock_rate: map.clock_rate,
                channels: map.params.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
            })
        })
        .collect()
}

/// Which party of the dialog sent the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offerer {
    /// The caller (the initial INVITE, or the caller's re-INVITE or UPDATE).
    Caller,
    /// The callee (its re-INVITE or UPDATE).
    Callee,
}

/// Both directions of every SRTP stream the answer accepted, `offerer` naming who sent the
/// offer. A media without `a=crypto` in the answer is not SRTP and is left out; an answered
/// tag the offer does not have is an error.
pub fn streams_from_offer_answer(
    offer: &SdpInfo,
    answer: &SdpInfo,
    offerer: Offerer,
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
        // Each attribute as the SDP layer parsed it: matched on tag and suite (as written),
        // its keys checked for the recorder once, by SdesValue::of.
        let answered_value = SdesValue::of(answered)?;
        let offered_value = o
            .crypto
            .iter()
            .filter(|c| c.tag() == answered.tag() && c.suite() == answered.suite())
            .find_map(|c| SdesValue::of(c).ok())
            .ok_or(RecordError::NoMatchingCrypto(mline))?;
        let (Some(offering), Some(answering)) = (endpoint(o), endpoint(a)) else {
            continue;
        };
        // each side's address and the key it sends with
        let (caller, callee) = match offerer {
            Offerer::Caller => ((offering, offered_value), (answering, answered_value)),
            Offerer::Callee => ((answering, answered_value), (offering, offered_value)),
        };
        let codecs = codecs(o, a);
        let rtcp_mux = o.rtcp_mux && a.rtcp_mux;
        for (direction, src, dst, crypto) in [
            (Direction::CallerToCallee, &caller.0, &callee.0, caller.1),
            (Direction::CalleeToCaller, &callee.0, &caller.0, callee.1),
        ] {
            out.push(MediaStream {
                mline,
                media: o.kind.to_string(),
                direction,
                source: Some(src.clone()),
                destination: dst.clone(),
                rtcp_mux,
                codecs: codecs.clone(),
                crypto,
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
            Offerer::Caller,
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
        assert_eq!(s[0].codecs, vec![Codec::new(0, "PCMU", 8000)]);
        assert_eq!(s[0].codecs, s[1].codecs);
        assert!(!s[0].rtcp_mux);
        let bad = answer.replace("crypto:2 ", "crypto:9 ");
        assert!(matches!(
            streams_from_offer_answer(
                &SdpInfo::parse(offer.as_bytes()).unwrap(),
                &SdpInfo::parse(bad.as_bytes()).unwrap(),
                Offerer::Caller,
            ),
            Err(RecordError::NoMatchingCrypto(0))
        ));
        println!("  ok   offer/answer -> 2 streams (caller key = offered tag 2 the answer accepted, callee key = answered), codecs = the answer's static PCMU; disabled and RTP/AVP media left out; unknown tag refused");
    }

    #[test]
    fn codecs_and_rtcp_mux_from_offer_answer() {
        let offer = format!(
            "v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 49170 RTP/SAVP 96 8 101 97\r\n\
             a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K1}\r\n"
        );
        // the answer keeps 96 (mapped only in the offer), 8 (static), 101 (its own map) and a
        // dynamic 97 mapped nowhere (left out)
        let answer = format!(
            "v=0\r\nc=IN IP4 198.51.100.20\r\nm=audio 50000 RTP/SAVP 96 8 101 97\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K3}\r\n"
        );
        let parse = |s: &str| SdpInfo::parse(s.as_bytes()).unwrap();
        let s =
            streams_from_offer_answer(&parse(&offer), &parse(&answer), Offerer::Caller).unwrap();
        assert_eq!(s.len(), 2);
        let mut opus = Codec::new(96, "opus", 48000);
        opus.channels = 2;
        assert_eq!(
            s[0].codecs,
            vec![
                opus,
                Codec::new(8, "PCMA", 8000),
                Codec::new(101, "telephone-event", 8000)
            ]
        );
        assert!(s[0].rtcp_mux && s[1].rtcp_mux);
        let no_mux = answer.replace("a=rtcp-mux\r\n", "");
        let s =
            streams_from_offer_answer(&parse(&offer), &parse(&no_mux), Offerer::Caller).unwrap();
        assert!(!s[0].rtcp_mux, "rtcp-mux only when the answer kept it");
        println!("  ok   codecs: the answer's payload types named by the answer's rtpmap, else the offer's, else RFC 3551's static table; an unmapped dynamic type left out; rtcp-mux only when offered and answered");
    }
}
