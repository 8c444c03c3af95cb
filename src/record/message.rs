//! The key-channel message: what a trusted proxy tells a recorder about a dialog it may
//! record (start, update on re-INVITE or SRTP key rotation, stop), as DER.
//!
//! ```text
//! KeyMessage ::= SEQUENCE {
//!     version     INTEGER (1),
//!     sender      UTF8String,        -- the proxy; must be the label of the PSK that opens it
//!     sequence    INTEGER,           -- per sender, increasing (replay window at the recorder)
//!     sentAt      INTEGER,           -- Unix time in milliseconds
//!     dialogId    OCTET STRING,      -- 32 bytes: SHA-256(Call-ID || 0x00 || caller's tag)
//!     event       Event }
//! Event ::= CHOICE {
//!     start  [0] IMPLICIT CallStart,
//!     update [1] IMPLICIT StreamSet, -- replaces every stream of the dialog
//!     stop   [2] IMPLICIT CallStop }
//! CallStart ::= SEQUENCE { callId UTF8String, caller UTF8String, callee UTF8String,
//!                          streams SEQUENCE OF MediaStream }
//! StreamSet ::= SEQUENCE { streams SEQUENCE OF MediaStream }
//! CallStop  ::= SEQUENCE { reason UTF8String }
//! MediaStream ::= SEQUENCE {
//!     mline       INTEGER,           -- index of the m= line in the SDP
//!     media       UTF8String,        -- "audio", "video", ...
//!     direction   Direction,
//!     source      [0] IMPLICIT Endpoint OPTIONAL,   -- the sender's SDP address (symmetric RTP)
//!     destination Endpoint,          -- where the sender's packets go (the receiver's SDP)
//!     rtcpMux     BOOLEAN,           -- RTCP on the RTP port (RFC 5761), else on port + 1
//!     codecs      SEQUENCE OF Codec,
//!     crypto      UTF8String }       -- the sender's a=crypto value (RFC 4568), key inline
//! Direction ::= ENUMERATED { callerToCallee(0), calleeToCaller(1) }
//! Endpoint ::= SEQUENCE { address UTF8String, port INTEGER (0..65535) }
//! Codec ::= SEQUENCE { payloadType INTEGER (0..127), name UTF8String, clockRate INTEGER,
//!                      channels INTEGER }
//! ```
//!
//! The message only ever travels sealed ([`super::channel`]); its DER is kept in `Zeroizing`
//! buffers, the crypto values in [`SdesValue`] (zeroized, redacted `Debug`).

use core::fmt;

use der::asn1::OctetString;
use der::{
    Choice, Decode, DecodeValue, Encode, EncodeValue, Enumerated, FixedTag, Header, Length, Reader,
    Sequence, Tag, Writer,
};
use zeroize::Zeroizing;

use super::sdes::{self, SdesError};
use crate::sip::sdp::CryptoAttr;

/// The message format version this code writes and reads.
pub const VERSION: u8 = 1;

/// An `a=crypto` value (RFC 4568) as the SDP had it: key material inline, so zeroized on drop
/// and redacted by `Debug`. Encoded as a UTF8String.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesValue(Zeroizing<String>);

impl SdesValue {
    /// Wraps a value (checked: it must parse as an `a=crypto` value the recorder can use,
    /// [`sdes::parse`]).
    pub fn new(value: &str) -> Result<SdesValue, SdesError> {
        sdes::parse(value)?;
        Ok(SdesValue(Zeroizing::new(value.to_owned())))
    }

    /// The value of a parsed attribute, as written (checked as [`SdesValue::new`] does,
    /// without parsing it again).
    pub fn of(attr: &CryptoAttr) -> Result<SdesValue, SdesError> {
        sdes::srtp_keys(attr)?;
        Ok(SdesValue(Zeroizing::new(attr.value().to_owned())))
    }

    /// The value's text (key included).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parsed attribute (checked as [`SdesValue::new`] does).
    pub fn parse(&self) -> Result<CryptoAttr, SdesError> {
        sdes::parse(&self.0)
    }
}

impl fmt::Debug for SdesValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parse() {
            Ok(a) => write!(f, "SdesValue({} {} <key redacted>)", a.tag(), a.suite()),
            Err(_) => f.write_str("SdesValue(<unparsable, redacted>)"),
        }
    }
}

impl FixedTag for SdesValue {
    const TAG: Tag = Tag::Utf8String;
}

impl EncodeValue for SdesValue {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.0.as_bytes())
    }
}

impl<'a> DecodeValue<'a> for SdesValue {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let bytes = Zeroizing::new(reader.read_vec(header.length())?);
        let text = std::str::from_utf8(&bytes).map_err(|_| Tag::Utf8String.value_error())?;
        Ok(SdesValue(Zeroizing::new(text.to_owned())))
    }
}

/// Which party sends the packets of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Enumerated)]
#[repr(u8)]
pub enum Direction {
    /// From the caller (whose a=crypto is in the offer) to the callee.
    CallerToCallee = 0,
    /// From the callee (a=crypto in the answer) to the caller.
    CalleeToCaller = 1,
}

impl Direction {
    /// `"caller"` or `"callee"`: who sends.
    pub fn sender_name(self) -> &'static str {
        match self {
            Direction::CallerToCallee => "caller",
            Direction::CalleeToCaller => "callee",
        }
    }
}

/// An address and port as the SDP gives them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Sequence)]
pub struct Endpoint {
    /// IPv4 or IPv6 address in text form.
    pub address: String,
    /// UDP port.
    pub port: u16,
}

/// A payload type of a stream (`m=` format and its `a=rtpmap`, or a static RFC 3551 type).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Codec {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name, e.g. `PCMU`.
    pub name: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels.
    pub channels: u8,
}

impl Codec {
    /// A codec entry.
    pub fn new(payload_type: u8, name: &str, clock_rate: u32) -> Codec {
        Codec {
            payload_type,
            name: name.to_owned(),
            clock_rate,
            channels: 1,
        }
    }
}

/// One direction of one media description, with the key its sender encrypts with.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct MediaStream {
    /// Index of the `m=` line.
    pub mline: u16,
    /// Media type (`audio`, ...).
    pub media: String,
    /// Who sends.
    pub direction: Direction,
    /// The sender's own SDP address (symmetric RTP: it sends from where it receives).
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub source: Option<Endpoint>,
    /// Where the packets go: the receiver's SDP address and port.
    pub destination: Endpoint,
    /// RTCP multiplexed on the RTP port (RFC 5761); else it goes to port + 1.
    pub rtcp_mux: bool,
    /// The payload types offered/answered.
    pub codecs: Vec<Codec>,
    /// The sender's `a=crypto` value.
    pub crypto: SdesValue,
}

/// A call the proxy lets the recorder record.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CallStart {
    /// The SIP Call-ID.
    pub call_id: String,
    /// The caller (From URI).
    pub caller: String,
    /// The callee (To URI).
    pub callee: String,
    /// Every stream, both directions.
    pub streams: Vec<MediaStream>,
}

/// The streams of a dialog after a re-INVITE or an SRTP key change.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct StreamSet {
    /// Every stream, both directions (replaces the previous set).
    pub streams: Vec<MediaStream>,
}

/// The end of a dialog.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CallStop {
    /// Why: a [`StopReason`]'s name (`BYE`, `CANCEL`, `failure 486`, ...).
    pub reason: String,
}

impl CallStop {
    /// The stop for `reason`.
    pub fn new(reason: StopReason) -> CallStop {
        CallStop {
            reason: reason.to_string(),
        }
    }
}

/// Why a proxy stops a recording: the one list of causes and of the names [`CallStop`]
/// carries (docs/RECORDING.md §3.1), the same whichever way the proxy learnt of the end (a
/// message the script hands over, or the SIP server's own dialog event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `BYE`: a BYE, or its 2xx reply, ended the dialog.
    Bye,
    /// `CANCEL`: the caller cancelled the INVITE (the CANCEL, or the 487 answering it).
    Cancel,
    /// `failure CODE` (`failure` when the code is not known): the INVITE failed.
    Failure(Option<u16>),
    /// `dialog timeout`: the SIP server's dialog expired without a BYE.
    DialogTimeout,
    /// `pinhole_max_duration`: the proxy never saw the end; its refresh timer forgot it.
    MaxDuration,
    /// `sd_record_stop`: the script stopped the recording, the call goes on.
    ScriptStop,
}

impl StopReason {
    /// The cause named by the message that ended the dialog: its method (the request's, or
    /// the CSeq method of a reply) and status (0 for a request). An empty method is the SIP
    /// server's own timeout.
    pub fn of(method: &[u8], status: u32) -> StopReason {
        if method.eq_ignore_ascii_case(b"BYE") {
            StopReason::Bye
        } else if method.eq_ignore_ascii_case(b"CANCEL") || status == 487 {
            StopReason::Cancel
        } else if method.is_empty() {
            StopReason::DialogTimeout
        } else {
            StopReason::Failure(u16::try_from(status).ok().filter(|s| *s >= 300))
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Bye => f.write_str("BYE"),
            StopReason::Cancel => f.write_str("CANCEL"),
            StopReason::Failure(Some(code)) => write!(f, "failure {code}"),
            StopReason::Failure(None) => f.write_str("failure"),
            StopReason::DialogTimeout => f.write_str("dialog timeout"),
            StopReason::MaxDuration => f.write_str("pinhole_max_duration"),
            StopReason::ScriptStop => f.write_str("sd_record_stop"),
        }
    }
}

/// What happened to the dialog.
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub enum Event {
    /// Start recording.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    Start(CallStart),
    /// New streams or keys.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Update(StreamSet),
    /// Stop recording.
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", constructed = "true")]
    Stop(CallStop),
}

impl Event {
    /// `"start"`, `"update"` or `"stop"`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start(_) => "start",
            Event::Update(_) => "update",
            Event::Stop(_) => "stop",
        }
    }

    /// The streams the event carries (none for stop).
    pub fn streams(&self) -> &[MediaStream] {
        match self {
            Event::Start(s) => &s.streams,
            Event::Update(u) => &u.streams,
            Event::Stop(_) => &[],
        }
    }
}

/// A key-channel message (see the module documentation for its ASN.1).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct KeyMessage {
    /// [`VERSION`].
    pub version: u8,
    /// The sending proxy's name.
    pub sender: String,
    /// Increasing per sender.
    pub sequence: u64,
    /// Unix time of sending, milliseconds.
    pub sent_at_ms: u64,
    /// The dialog: SHA-256(Call-ID || 0x00 || caller's tag), as the dialog key cache keys it.
    pub dialog_id: OctetString,
    /// What happened.
    pub event: Event,
}

impl KeyMessage {
    /// A message about `dialog_id` (32 bytes) from `sender`.
    pub fn new(
        sender: &str,
        sequence: u64,
        sent_at_ms: u64,
        dialog_id: &[u8; 32],
        event: Event,
    ) -> KeyMessage {
        KeyMessage {
            version: VERSION,
            sender: sender.to_owned(),
            sequence,
            sent_at_ms,
            dialog_id: OctetString::new(dialog_id.as_slice())
                .expect("32 bytes fit an OCTET STRING"),
            event,
        }
    }

    /// The dialog id in hex (names the recording's directory).
    pub fn dialog_hex(&self) -> String {
        crate::hex::encode(self.dialog_id.as_bytes())
    }

    /// DER, in a zeroizing buffer (it holds SRTP master keys).
    pub fn to_der_zeroizing(&self) -> der::Result<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(vec![0u8; usize::try_from(self.encoded_len()?)?]);
        let len = self.encode_to_slice(&mut buf)?.len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Decodes DER.
    pub fn from_der_bytes(der: &[u8]) -> der::Result<KeyMessage> {
        KeyMessage::from_der(der)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const KEY_A: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    pub(crate) const KEY_B: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";

    pub(crate) fn start() -> KeyMessage {
        let stream = |dir, src: u16, dst: u16, key: &str| MediaStream {
            mline: 0,
            media: "audio".into(),
            direction: dir,
            source: Some(Endpoint {
                address: "192.0.2.10".into(),
                port: src,
            }),
            destination: Endpoint {
                address: "198.51.100.20".into(),
                port: dst,
            },
            rtcp_mux: false,
            codecs: vec![Codec::new(0, "PCMU", 8000), Codec::new(8, "PCMA", 8000)],
            crypto: SdesValue::new(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20"))
                .unwrap(),
        };
        KeyMessage::new(
            "proxy1",
            7,
            1_700_000_000_000,
            &[0x42; 32],
            Event::Start(CallStart {
                call_id: "a84b4c76e66710@pc33".into(),
                caller: "sip:alice@example.com".into(),
                callee: "sip:bob@example.net".into(),
                streams: vec![
                    stream(Direction::CallerToCallee, 49170, 50000, KEY_A),
                    stream(Direction::CalleeToCaller, 50000, 49170, KEY_B),
                ],
            }),
        )
    }

    #[test]
    fn der_round_trip_and_redacted_debug() {
        let m = start();
        let der = m.to_der_zeroizing().unwrap();
        let back = KeyMessage::from_der_bytes(&der).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.event.streams()[1]
                .crypto
                .parse()
                .unwrap()
                .keys()
                .unwrap()[0]
                .key_salt()
                .len(),
            30
        );
        let dbg = format!("{back:?}");
        assert!(!dbg.contains(KEY_A) && !dbg.contains(KEY_B), "{dbg}");
        assert!(dbg.contains("AES_CM_128_HMAC_SHA1_80 <key redacted>"));
        for ev in [
            Event::Update(StreamSet {
                streams: m.event.streams().to_vec(),
            }),
            Event::Stop(CallStop {
                reason: "BYE".into(),
            }),
        ] {
            let msg = KeyMessage {
                event: ev,
                ..m.clone()
            };
            let der = msg.to_der_zeroizing().unwrap();
            assert_eq!(KeyMessage::from_der_bytes(&der).unwrap(), msg);
        }
        println!("  ok   key message: start/update/stop round-trip through DER ({} bytes for 2 streams); Debug redacts keys", der.len());
    }

    #[test]
    fn bad_der_is_an_error() {
        let der = start().to_der_zeroizing().unwrap();
        for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert!(KeyMessage::from_der_bytes(&der[..cut]).is_err());
        }
        let mut flipped = der.to_vec();
        flipped[2] ^= 0xff;
        assert!(KeyMessage::from_der_bytes(&flipped).is_err());
        assert!(SdesValue::new("1 AES_CM_128_HMAC_SHA1_80 inline:short").is_err());
        println!("  ok   truncated or altered DER and bad a=crypto values are errors, not panics");
    }

    #[test]
    fn stop_reasons_name_the_cause() {
        for (method, status, want) in [
            (&b"BYE"[..], 0, "BYE"),
            (b"BYE", 200, "BYE"),
            (b"bye", 200, "BYE"),
            (b"CANCEL", 0, "CANCEL"),
            (b"CANCEL", 200, "CANCEL"),
            (b"INVITE", 487, "CANCEL"),
            (b"INVITE", 486, "failure 486"),
            (b"INVITE", 408, "failure 408"),
            (b"INVITE", 0, "failure"),
            (b"", 0, "dialog timeout"),
        ] {
            let got = StopReason::of(method, status).to_string();
            assert_eq!(got, want, "{} {status}", String::from_utf8_lossy(method));
        }
        assert_eq!(StopReason::MaxDuration.to_string(), "pinhole_max_duration");
        assert_eq!(
            CallStop::new(StopReason::ScriptStop).reason,
            "sd_record_stop"
        );
        println!("  ok   stop reasons: BYE (request or 2xx), CANCEL (or 487), failure CODE, dialog timeout, pinhole_max_duration, sd_record_stop");
    }
}
