//! One media description (`m=` line and what follows it) as policy reads it: the stream's
//! transport address and port range, RTCP, direction, codecs and SDES keys.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use super::connection::Connection;
use super::crypto::CryptoAttr;

/// A word of an SDP line as written: a media type, transport protocol, format or encoding
/// name. The common ones point into the static tables below and cost no allocation; any
/// other is owned. Reads as a `&str` (`Deref`, `as_str`); compares, hashes and prints as
/// its text.
#[derive(Clone)]
pub struct Word(WordText);

#[derive(Clone)]
enum WordText {
    Static(&'static str),
    Owned(Box<str>),
}

/// A list of known words as a function `$find` that gives the static copy of a word, `None`
/// when it is not listed. A `match` on the text, which the compiler makes a switch on the
/// length and a few comparisons of small words: a search of a table compared entry after
/// entry, a cost paid in every `m=` and `a=rtpmap` line.
macro_rules! known_words {
    ($(#[$doc:meta])* $find:ident: $($word:literal,)*) => {
        $(#[$doc])*
        pub(super) fn $find(s: &str) -> Option<&'static str> {
            match s {
                $($word => Some($word),)*
                _ => None,
            }
        }
    };
}

known_words! {
    /// Media types (RFC 8866 §5.14, IANA "media" registry).
    known_kind:
    "audio",
    "video",
    "text",
    "application",
    "message",
    "image",
}

known_words! {
    /// Transport protocols in common use (RFC 8866 §5.14, RFC 3711, RFC 4585, RFC 5124,
    /// RFC 5764, RFC 8841, RFC 4975, RFC 4582, RFC 6787, T.38).
    known_proto:
    "RTP/AVP",
    "RTP/SAVP",
    "RTP/AVPF",
    "RTP/SAVPF",
    "UDP/TLS/RTP/SAVP",
    "UDP/TLS/RTP/SAVPF",
    "TCP/TLS/RTP/SAVPF",
    "TCP/RTP/AVP",
    "udp",
    "udptl",
    "TCP",
    "UDP/DTLS/SCTP",
    "TCP/DTLS/SCTP",
    "DTLS/SCTP",
    "TCP/MSRP",
    "TCP/TLS/MSRP",
    "TCP/BFCP",
    "TCP/TLS/BFCP",
    "UDP/BFCP",
    "TCP/MRCPv2",
    "TCP/TLS/MRCPv2",
}

known_words! {
    /// Encoding names of `a=rtpmap` in common use, and those of RFC 3551's static types.
    known_encoding:
    "PCMU",
    "PCMA",
    "G722",
    "G729",
    "telephone-event",
    "opus",
    "CN",
    "iLBC",
    "speex",
    "AMR",
    "AMR-WB",
    "G7221",
    "GSM",
    "G723",
    "G726-32",
    "L16",
    "red",
    "ulpfec",
    "flexfec",
    "rtx",
    "H264",
    "H265",
    "VP8",
    "VP9",
    "AV1",
    "H263",
    "H263-1998",
    "H263-2000",
    "DVI4",
    "LPC",
    "QCELP",
    "MPA",
    "G728",
    "CelB",
    "JPEG",
    "nv",
    "H261",
    "MPV",
    "MP2T",
}

/// The RTP payload types 0 to 127 as `m=` lines write them (the common formats).
const PAYLOAD_TYPES: [&str; 128] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "110",
    "111", "112", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "123",
    "124", "125", "126", "127",
];

impl Word {
    /// `s`, borrowed from the static copy `known` finds of it (one of the lists above,
    /// [`known_kind`], [`known_proto`], [`known_encoding`]), else owned.
    pub(super) fn new(s: &str, known: fn(&str) -> Option<&'static str>) -> Word {
        match known(s) {
            Some(k) => Word(WordText::Static(k)),
            None => Word(WordText::Owned(s.into())),
        }
    }

    /// A format of an `m=` line: a payload type written as RTP writes it (0 to 127, no
    /// leading zero) is static.
    pub(super) fn format(s: &str) -> Word {
        // Digits without a leading zero (but "0" itself) name their entry of the table.
        let canonical = s.len() == 1 || !s.starts_with('0');
        let pt = super::decimal(s, 3)
            .filter(|_| canonical)
            .and_then(|n| PAYLOAD_TYPES.get(usize::try_from(n).ok()?));
        match pt {
            Some(p) => Word(WordText::Static(p)),
            None => Word(WordText::Owned(s.into())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            WordText::Static(s) => s,
            WordText::Owned(s) => s,
        }
    }
}

impl Deref for Word {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Word {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Word {
        Word(WordText::Owned(s.into()))
    }
}

impl From<String> for Word {
    fn from(s: String) -> Word {
        Word(WordText::Owned(s.into_boxed_str()))
    }
}

impl From<Word> for String {
    fn from(w: Word) -> String {
        match w.0 {
            WordText::Static(s) => s.to_owned(),
            WordText::Owned(s) => s.into_string(),
        }
    }
}

impl PartialEq for Word {
    fn eq(&self, other: &Word) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Word {}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Word {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl std::hash::Hash for Word {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The direction attribute of a media or of the session (RFC 8866 §6.7, RFC 3264 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv` (the default)
    SendRecv,
    /// `sendonly`
    SendOnly,
    /// `recvonly`
    RecvOnly,
    /// `inactive`
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// An `a=rtcp:<port> [<nettype> <addrtype> <address>]` attribute (RFC 3605).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtcpAttr {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when the attribute names one.
    pub connection: Option<Connection>,
}

/// An `a=rtpmap:<payload type> <encoding>/<clock rate>[/<parameters>]` attribute (RFC 8866
/// §6.6): what an RTP payload type stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type, 0 to 127.
    pub payload_type: u8,
    /// The encoding name as written, e.g. `PCMU`, `opus`, `telephone-event`.
    pub encoding: Word,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The encoding parameters (the channel count for audio), if given.
    pub params: Option<u32>,
}

impl RtpMap {
    /// Parses the value after `a=rtpmap:`; `None` when malformed. Two fields separated by
    /// ASCII white space (as `split_ascii_whitespace` reads them, any around), read left to
    /// right in one pass over the bytes: the payload type, then `encoding/rate[/params]`,
    /// the numbers read as their digits go by.
    pub fn parse(value: &str) -> Option<RtpMap> {
        let b = value.as_bytes();
        let blank = |at: usize| b.get(at).is_some_and(u8::is_ascii_whitespace);
        let number = |at: usize| {
            let (n, end) = super::digits(b, at, 10)?;
            Some((u32::try_from(n).ok()?, end))
        };
        let mut at = 0;
        while blank(at) {
            at += 1;
        }
        let (pt, end) = super::digits(b, at, 3)?;
        // The payload type is the whole first field: white space must follow it.
        let payload_type = u8::try_from(pt).ok().filter(|p| *p <= 127 && blank(end))?;
        at = end;
        while blank(at) {
            at += 1;
        }
        let start = at;
        while b
            .get(at)
            .is_some_and(|c| *c != b'/' && !c.is_ascii_whitespace())
        {
            at += 1;
        }
        let encoding = value.get(start..at)?;
        if !super::crypto::is_token(encoding) || b.get(at) != Some(&b'/') {
            return None;
        }
        let (clock_rate, end) = number(at + 1)?;
        at = end;
        let params = match b.get(at) {
            Some(b'/') => {
                let (p, end) = number(at + 1)?;
                at = end;
                Some(p)
            }
            _ => None,
        };
        // Only white space may follow: more in a number, a third field, or a fourth `/`
        // part, is refused.
        if !b
            .get(at..)
            .unwrap_or_default()
            .iter()
            .all(u8::is_ascii_whitespace)
        {
            return None;
        }
        Some(RtpMap {
            payload_type,
            encoding: Word::new(encoding, known_encoding),
            clock_rate,
            params,
        })
    }
}

/// The static RTP payload types of RFC 3551 §6 (tables 4 and 5): type, encoding name, clock
/// rate, channels (audio only).
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, Option<u32>)] = &[
    (0, "PCMU", 8000, Some(1)),
    (3, "GSM", 8000, Some(1)),
    (4, "G723", 8000, Some(1)),
    (5, "DVI4", 8000, Some(1)),
    (6, "DVI4", 16000, Some(1)),
    (7, "LPC", 8000, Some(1)),
    (8, "PCMA", 8000, Some(1)),
    (9, "G722", 8000, Some(1)),
    (10, "L16", 44100, Some(2)),
    (11, "L16", 44100, Some(1)),
    (12, "QCELP", 8000, Some(1)),
    (13, "CN", 8000, Some(1)),
    (14, "MPA", 90000, None),
    (15, "G728", 8000, Some(1)),
    (16, "DVI4", 11025, Some(1)),
    (17, "DVI4", 22050, Some(1)),
    (18, "G729", 8000, Some(1)),
    (25, "CelB", 90000, None),
    (26, "JPEG", 90000, None),
    (28, "nv", 90000, None),
    (31, "H261", 90000, None),
    (32, "MPV", 90000, None),
    (33, "MP2T", 90000, None),
    (34, "H263", 90000, None),
];

impl RtpMap {
    /// The static assignment of payload type `pt` (RFC 3551 §6), if it has one.
    pub fn static_type(pt: u8) -> Option<RtpMap> {
        STATIC_PAYLOAD_TYPES.iter().find(|(t, ..)| *t == pt).map(
            |&(payload_type, encoding, clock_rate, params)| RtpMap {
                payload_type,
                encoding: Word(WordText::Static(encoding)),
                clock_rate,
                params,
            },
        )
    }
}

impl std::fmt::Display for RtpMap {
    /// `PT ENCODING/RATE[/PARAMS]`, the attribute's value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        match self.params {
            Some(p) => write!(f, "/{p}"),
            None => Ok(()),
        }
    }
}

/// One media description.
#[derive(Clone, Debug)]
pub struct MediaInfo {
    /// The media type: `audio`, `video`, `application`, ...
    pub kind: Word,
    /// The transport port; 0 disables the stream (RFC 3264 §5.1).
    pub port: u16,
    /// How many transport ports (`m=video 49170/2 ...`; 1 when not given). For RTP the ports
    /// are `port`, `port + 2`, ... each with RTCP one above (RFC 8866 §5.14).
    pub port_count: u16,
    /// The transport protocol, e.g. `RTP/SAVP`.
    pub proto: Word,
    /// The media formats (RTP payload types for RTP), in order.
    pub formats: Vec<Word>,
    /// The `a=rtpmap` attributes, in order.
    pub rtpmaps: Vec<RtpMap>,
    /// The connection address: the media's own `c=`, else the session's.
    pub connection: Option<Connection>,
    /// True when [`MediaInfo::connection`] is the session-level one.
    pub connection_from_session: bool,
    /// The `a=rtcp` attribute, if any.
    pub rtcp: Option<RtcpAttr>,
    /// `a=rtcp-mux` (RFC 5761): RTCP shares the RTP port.
    pub rtcp_mux: bool,
    /// The direction: the media's attribute, else the session's, else `sendrecv`.
    pub direction: Direction,
    /// The `a=crypto` attributes, in order.
    pub crypto: Vec<CryptoAttr>,
}

impl MediaInfo {
    pub(super) fn new(
        kind: &str,
        port: u16,
        port_count: u16,
        proto: &str,
        formats: Vec<Word>,
    ) -> MediaInfo {
        MediaInfo {
            kind: Word::new(kind, known_kind),
            port,
            port_count,
            proto: Word::new(proto, known_proto),
            formats,
            rtpmaps: Vec::new(),
            connection: None,
            connection_from_session: false,
            rtcp: None,
            rtcp_mux: false,
            direction: Direction::SendRecv,
            crypto: Vec::new(),
        }
    }

    /// The stream is disabled (port 0).
    pub fn is_disabled(&self) -> bool {
        self.port == 0
    }

    /// What payload type `pt` stands for: its `a=rtpmap`, if the stream has one.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    /// What payload type `pt` stands for in this stream: its `a=rtpmap`, else the static
    /// assignment of RFC 3551 (§6, tables 4 and 5), else `None`.
    pub fn payload(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmap(pt).cloned().or_else(|| RtpMap::static_type(pt))
    }

    /// The connection address (media-level, else session-level), if any.
    pub fn addr(&self) -> Option<&str> {
        self.connection.as_ref().map(|c| c.address.as_str())
    }

    /// Where RTCP goes, for an enabled stream: the RTP port with `a=rtcp-mux` (RFC 5761
    /// §5.1.3: when both are offered, `a=rtcp` is the fallback for an answer without
    /// rtcp-mux), else the `a=rtcp` port (RFC 3605), else the RTP port + 1 (RFC 3550 §11).
    /// `None` for a disabled stream or when port + 1 does not exist.
    pub fn rtcp_port(&self) -> Option<u16> {
        self.rtcp_port_with(self.rtcp_mux)
    }

    /// [`MediaInfo::rtcp_port`] as it is once the offer/answer has settled whether RTCP is
    /// multiplexed: `mux` is true only when offer and answer both have `a=rtcp-mux` (RFC 5761
    /// §5.1.1), and an offerer whose answer declined it receives RTCP at its `a=rtcp` port,
    /// else at port + 1.
    pub fn rtcp_port_with(&self, mux: bool) -> Option<u16> {
        if self.is_disabled() {
            return None;
        }
        match (&self.rtcp, mux) {
            (_, true) => Some(self.port),
            (Some(a), false) => Some(a.port),
            (None, false) => self.port.checked_add(1),
        }
    }

    /// The RTCP address: the `a=rtcp` address when it names one (and rtcp-mux is not
    /// asked), else the connection address.
    pub fn rtcp_addr(&self) -> Option<&str> {
        self.rtcp_addr_with(self.rtcp_mux)
    }

    /// [`MediaInfo::rtcp_addr`] once the offer/answer has settled `mux` (see
    /// [`MediaInfo::rtcp_port_with`]).
    pub fn rtcp_addr_with(&self, mux: bool) -> Option<&str> {
        self.rtcp_port_with(mux)?;
        match (&self.rtcp, mux) {
            (
                Some(RtcpAttr {
                    connection: Some(c),
                    ..
                }),
                false,
            ) => Some(c.address.as_str()),
            _ => self.addr(),
        }
    }
}
