//! The session description a trusted proxy reads from a disclosed SDP (RFC 8866, formerly
//! RFC 4566), reduced to what policy needs: every media stream with its connection address
//! (media-level, else session-level; IPv4, IPv6, multicast flagged), port and port count,
//! transport, formats and their `a=rtpmap`, RTCP port and address (RFC 3605, RFC 5761),
//! direction (RFC 8866 §6.7) and SDES keys (`a=crypto`, RFC 4568).
//!
//! The text is untrusted: size, media, formats and crypto attributes are limited, and a line
//! this module interprets must be well formed or the whole description is refused
//! ([`SdpError`]); attributes it does not interpret are skipped. Two `c=` lines, two
//! `a=rtcp` or two different direction attributes at one level are refused rather than
//! guessed between: a firewall must not read another address than the endpoint uses.
//!
//! Submodules: [`connection`] (`c=` values), [`media`] (one media description), [`crypto`]
//! (the `a=crypto` attribute, the one definition of it in sipsd).

pub mod connection;
pub mod crypto;
pub mod media;

pub use connection::{AddrType, Connection};
pub use crypto::{CryptoAttr, MasterKey, Mki, SrtpSuite};
pub use media::{Direction, MediaInfo, RtcpAttr, RtpMap, Word};

/// Largest SDP accepted, in bytes.
pub const MAX_SDP: usize = 65536;
/// Most `m=` lines accepted.
pub const MAX_MEDIA: usize = 64;
/// Most `a=crypto` lines accepted per media.
pub const MAX_CRYPTO: usize = 32;
/// Most formats on one `m=` line, and most `a=rtpmap` per media.
pub const MAX_FORMATS: usize = 64;

/// The session description, reduced to what a proxy needs.
#[derive(Clone, Debug, Default)]
pub struct SdpInfo {
    /// The session-level `c=`.
    pub session_connection: Option<Connection>,
    /// The session-level direction attribute.
    pub session_direction: Option<Direction>,
    /// The media descriptions in order, session-level defaults applied.
    pub media: Vec<MediaInfo>,
}

/// Why an SDP, or the keys of one of its `a=crypto` attributes, could not be read. No
/// message contains text of the SDP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// The SDP is not UTF-8.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The first line is not `v=0`.
    #[error("SDP does not start with v=0")]
    NoVersion,
    /// A malformed line (1-based line number).
    #[error("malformed SDP line {0}")]
    BadLine(usize),
    /// The SDP is larger than [`MAX_SDP`] bytes.
    #[error("SDP larger than {MAX_SDP} bytes")]
    TooLarge,
    /// More than [`MAX_MEDIA`] media, [`MAX_FORMATS`] formats or `a=rtpmap` in one media,
    /// or [`MAX_CRYPTO`] crypto attributes in one media (the line).
    #[error("too many media, formats or crypto lines at line {0}")]
    TooMany(usize),
    /// An `a=crypto` value that is not `tag suite key-params [session-params]`.
    #[error("a=crypto value malformed: {0}")]
    BadCrypto(&'static str),
    /// An `a=crypto` value over [`crypto::MAX_CRYPTO_LEN`] bytes or [`crypto::MAX_KEYS`] keys.
    #[error("crypto attribute over its size or key limit")]
    CryptoTooLarge,
    /// Keys asked of a suite sipsd does not know the key length of.
    #[error("unknown SRTP crypto suite")]
    UnknownSuite,
    /// A key parameter whose method is not `inline` (the only one SRTP defines).
    #[error("key method is not inline")]
    KeyMethod,
    /// The text after `inline:` does not decode as base64.
    #[error("key||salt is not valid base64")]
    KeyBase64,
    /// The key||salt does not have the suite's length.
    #[error("key||salt of {got} bytes where the suite needs {want}")]
    KeyLength {
        /// Bytes decoded.
        got: usize,
        /// Bytes the suite needs.
        want: usize,
    },
    /// A key lifetime that is not `2^n` (n ≤ 63) or a positive number, or not first.
    #[error("key lifetime is neither 2^n nor a packet count")]
    Lifetime,
    /// An MKI that is not `value:length` with the value fitting in 1 to 128 bytes.
    #[error("MKI is not value:length within 1 to 128 bytes")]
    Mki,
    /// Several keys without MKIs, or with MKIs of different lengths.
    #[error("keys of one attribute disagree on their MKI")]
    MkiMismatch,
}

/// `s` as a decimal number of 1 to `max` ASCII digits, without sign or space; `None` when
/// it is not one or does not fit a `u64` (what `str::parse::<u64>` takes of such digits).
pub(super) fn decimal(s: &str, max: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The run of ASCII digits at `b[at..]` as a number, and where the run ends; `None` when it
/// has no digit or more than `max` (at most 19: nothing overflows). What [`decimal`] reads,
/// for a parser that walks the bytes and finds the field's end as it goes.
pub(super) fn digits(b: &[u8], at: usize, max: usize) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut end = at;
    while let Some(d) = b.get(end).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
        n = n.wrapping_mul(10).wrapping_add(u64::from(d));
        end += 1;
    }
    (end > at && end - at <= max.min(19)).then_some((n, end))
}

/// `digits` as a number of at most 5 digits (a port), without sign or space.
fn port_number(s: &str) -> Option<u16> {
    u16::try_from(decimal(s, 5)?).ok()
}

/// A transport protocol: tokens separated by `/` (`RTP/SAVP`, `UDP/TLS/RTP/SAVPF`).
fn is_proto(s: &str) -> bool {
    split_byte(s, b'/').all(crypto::is_token)
}

/// `<media> <port>[/<count>] <proto> <fmt> ...`; the RTP port range with its RTCP ports
/// must fit below 65536.
fn media_line(value: &str, n: usize) -> Result<MediaInfo, SdpError> {
    let bad = SdpError::BadLine(n);
    let mut f = value.split_ascii_whitespace();
    let (kind, ports, proto) = (
        f.next().ok_or(SdpError::BadLine(n))?,
        f.next().ok_or(SdpError::BadLine(n))?,
        f.next().ok_or(SdpError::BadLine(n))?,
    );
    if !crypto::is_token(kind) || !is_proto(proto) {
        return Err(bad);
    }
    let (port, count) = match ports.split_once('/') {
        Some((p, c)) => (port_number(p), port_number(c)),
        None => (port_number(ports), Some(1)),
    };
    let (Some(port), Some(count)) = (port, count) else {
        return Err(bad);
    };
    // RTP uses port, port + 2, ... with RTCP one above each (RFC 8866 §5.14).
    let last = u32::from(port) + 2 * u32::from(count.saturating_sub(1)) + 1;
    if count == 0 || (count > 1 && (port == 0 || last > 65535)) {
        return Err(bad);
    }
    // Sized once: n fields need n - 1 separators, so the formats (all fields but the first
    // three) are at most the white-space bytes less two; never more than the limit.
    let room = value.bytes().filter(u8::is_ascii_whitespace).count();
    let mut formats = Vec::with_capacity(room.saturating_sub(2).min(MAX_FORMATS));
    for fmt in f {
        if !crypto::is_token(fmt) {
            return Err(SdpError::BadLine(n));
        }
        if formats.len() == MAX_FORMATS {
            return Err(SdpError::TooMany(n));
        }
        formats.push(media::Word::format(fmt));
    }
    if formats.is_empty() {
        return Err(bad);
    }
    Ok(MediaInfo::new(kind, port, count, proto, formats))
}

/// `<port> [<nettype> <addrtype> <address>]` of `a=rtcp` (RFC 3605 §2.1).
fn rtcp_attr(value: &str) -> Option<RtcpAttr> {
    let value = value.trim_matches(' ');
    let (port, rest) = value.split_once(' ').unwrap_or((value, ""));
    let port = port_number(port).filter(|p| *p != 0)?;
    let connection = match rest.trim_matches(' ') {
        "" => None,
        c => Some(Connection::parse(c)?),
    };
    Some(RtcpAttr { port, connection })
}

/// True when `text` has a NUL, or a CR anywhere but at the end of a line (before LF, or
/// last): what [`SdpInfo::parse`] refuses inside a line. One branch-free pass over the text
/// (the compiler makes it wide), not one search per line.
fn stray_nul_or_cr(text: &str) -> bool {
    let b = text.as_bytes();
    let next = b.get(1..).unwrap_or_default();
    let inner = b.iter().zip(next).fold(false, |stray, (&x, &y)| {
        stray | (x == 0) | ((x == b'\r') & (y != b'\n'))
    });
    inner || b.last() == Some(&0)
}

/// The first `c` in `hay`, eight bytes at a time (the zero-byte test on `u64` words): SDP
/// lines and fields are tens of bytes, too short for a general search to pay its setup.
pub(super) fn find_byte(hay: &[u8], c: u8) -> Option<usize> {
    find_either(hay, c, c)
}

/// The first `a` or `b` in `hay`, as [`find_byte`].
pub(super) fn find_either(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes of x that are zero, flagged in their high bit; a borrow can flag only bytes above
    // a zero one, so the lowest flag is exact.
    let zeros = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
    let (pa, pb) = (LOW * u64::from(a), LOW * u64::from(b));
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes);
        let found = zeros(x ^ pa) | zeros(x ^ pb);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&x| x == a || x == b)
        .map(|i| at + i)
}

/// `s` split at its first `c` (ASCII) by a plain byte loop, as `str::split_once` does.
pub(super) fn split_once_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let at = find_byte(s.as_bytes(), c)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// `s` split at every `c` (ASCII) by a plain byte loop, as `str::split` does: the short
/// fields of SDP cost less so than through a general search.
pub(super) fn split_byte(s: &str, c: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let t = rest?;
        match split_once_byte(t, c) {
            Some((field, after)) => {
                rest = Some(after);
                Some(field)
            }
            None => rest.take(),
        }
    })
}

/// The lines of `text`, split at LF as `str::split('\n')` does.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    split_byte(text, b'\n')
}

/// An `a=` line as [`SdpInfo::parse`] reads it: one of the attributes it interprets, with
/// the value after the colon, or any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attr<'a> {
    /// `sendrecv`, `sendonly`, `recvonly`, `inactive` (no value).
    Direction(Direction),
    /// `crypto:<value>`
    Crypto(&'a str),
    /// `rtcp:<value>`
    Rtcp(&'a str),
    /// `rtcp-mux` (no value).
    RtcpMux,
    /// `rtpmap:<value>`
    RtpMap(&'a str),
    /// Any other attribute, or one of these with a value where it takes none or the reverse.
    Other,
}

/// What the text after `a=` is. The name is what precedes the first `:`; an attribute
/// without one is its text less trailing spaces. Told apart by the first byte before any
/// name is compared: most attributes of a real SDP (`candidate`, `ice-*`, `fmtp`,
/// `rtcp-fb`, `ptime`, ...) are none of these and cost a look-up or two.
fn attribute(text: &str) -> Attr<'_> {
    let valued = |name: &str| text.strip_prefix(name)?.strip_prefix(':');
    let flag = |name: &str| {
        let len = text.len() - text.bytes().rev().take_while(|b| *b == b' ').count();
        text.get(..len) == Some(name)
    };
    match text.as_bytes().first() {
        Some(b'c') => valued("crypto").map_or(Attr::Other, Attr::Crypto),
        Some(b'r') => {
            if let Some(v) = valued("rtpmap") {
                Attr::RtpMap(v)
            } else if let Some(v) = valued("rtcp") {
                Attr::Rtcp(v)
            } else if flag("rtcp-mux") {
                Attr::RtcpMux
            } else if flag(Direction::RecvOnly.name()) {
                Attr::Direction(Direction::RecvOnly)
            } else {
                Attr::Other
            }
        }
        Some(b's') if flag(Direction::SendRecv.name()) => Attr::Direction(Direction::SendRecv),
        Some(b's') if flag(Direction::SendOnly.name()) => Attr::Direction(Direction::SendOnly),
        Some(b'i') if flag(Direction::Inactive.name()) => Attr::Direction(Direction::Inactive),
        _ => Attr::Other,
    }
}

/// What one level (the session, or one media) has declared so far, to refuse repeats.
#[derive(Default)]
struct Seen {
    connection: bool,
    direction: Option<Direction>,
    rtcp: bool,
}

impl Seen {
    /// Records a direction attribute; false when it contradicts an earlier one.
    fn direction(&mut self, d: Direction) -> bool {
        let same = self.direction.is_none_or(|old| old == d);
        self.direction = Some(d);
        same
    }
}

impl SdpInfo {
    /// Parses an SDP. Lines end with CRLF or LF; each is `<letter>=<value>`; blank lines are
    /// skipped; the first line must be `v=0`; NUL and a CR inside a line are refused.
    /// Interpreted: `c=`; `m=`; at media level `a=crypto`, `a=rtcp`, `a=rtcp-mux`, `a=rtpmap`; at both
    /// levels `a=sendrecv|sendonly|recvonly|inactive`. Session-level `a=crypto`, `a=rtcp`
    /// and `a=rtcp-mux` are ignored (the RFCs define them for media only).
    pub fn parse(sdp: &[u8]) -> Result<SdpInfo, SdpError> {
        if sdp.len() > MAX_SDP {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(sdp).map_err(|_| SdpError::NotUtf8)?;
        // Lines are looked at byte by byte for NUL and CR only when the whole text has one
        // where a line may not (rare): the line that has it is then the one refused.
        let check_bytes = stray_nul_or_cr(text);
        let mut info = SdpInfo::default();
        let mut session = Seen::default();
        // What the last media has declared (`info.media.last()`).
        let mut current = Seen::default();
        let mut seen_version = false;
        for (i, raw) in lines(text).enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let bytes = line.as_bytes();
            // A line starting with a visible ASCII byte is not blank; else trim decides.
            if !bytes.first().is_some_and(u8::is_ascii_graphic) && line.trim().is_empty() {
                continue;
            }
            let (Some(&ty), Some(b'=')) = (bytes.first(), bytes.get(1)) else {
                return Err(if seen_version {
                    SdpError::BadLine(n)
                } else {
                    SdpError::NoVersion
                });
            };
            if !ty.is_ascii_lowercase()
                || (check_bytes && bytes.iter().any(|&b| b == 0 || b == b'\r'))
            {
                return Err(SdpError::BadLine(n));
            }
            let value = line.get(2..).unwrap_or_default();
            if !seen_version {
                if ty != b'v' || value.trim() != "0" {
                    return Err(SdpError::NoVersion);
                }
                seen_version = true;
                continue;
            }
            let level = match info.media.is_empty() {
                false => &mut current,
                true => &mut session,
            };
            match ty {
                b'c' => {
                    let c = Connection::parse(value).ok_or(SdpError::BadLine(n))?;
                    if std::mem::replace(&mut level.connection, true) {
                        return Err(SdpError::BadLine(n));
                    }
                    match info.media.last_mut() {
                        Some(m) => m.connection = Some(c),
                        None => info.session_connection = Some(c),
                    }
                }
                b'm' => {
                    if info.media.len() == MAX_MEDIA {
                        return Err(SdpError::TooMany(n));
                    }
                    let m = media_line(value, n)?;
                    info.finish_last(&current, &session);
                    current = Seen::default();
                    info.media.push(m);
                }
                b'a' => {
                    let attr = attribute(value);
                    if let Attr::Direction(d) = attr {
                        if !level.direction(d) {
                            return Err(SdpError::BadLine(n));
                        }
                        continue;
                    }
                    let Some(m) = info.media.last_mut() else {
                        continue;
                    };
                    match attr {
                        Attr::Crypto(v) => {
                            if m.crypto.len() == MAX_CRYPTO {
                                return Err(SdpError::TooMany(n));
                            }
                            let c = CryptoAttr::parse(v).map_err(|_| SdpError::BadLine(n))?;
                            m.crypto.push(c);
                        }
                        Attr::Rtcp(v) => {
                            if std::mem::replace(&mut level.rtcp, true) {
                                return Err(SdpError::BadLine(n));
                            }
                            m.rtcp = Some(rtcp_attr(v).ok_or(SdpError::BadLine(n))?);
                        }
                        Attr::RtcpMux => m.rtcp_mux = true,
                        Attr::RtpMap(v) => {
                            if m.rtpmaps.len() == MAX_FORMATS {
                                return Err(SdpError::TooMany(n));
                            }
                            let map = RtpMap::parse(v).ok_or(SdpError::BadLine(n))?;
                            if m.rtpmaps.capacity() == 0 {
                                // Usually one per format: sized once.
                                m.rtpmaps.reserve_exact(m.formats.len());
                            }
                            m.rtpmaps.push(map);
                        }
                        Attr::Direction(_) | Attr::Other => {}
                    }
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::NoVersion);
        }
        info.finish_last(&current, &session);
        info.session_direction = session.direction;
        Ok(info)
    }

    /// Applies the session-level defaults to the last media once all its lines are read
    /// (`seen`: what it declared): the session's lines all come before the first `m=`.
    fn finish_last(&mut self, seen: &Seen, session: &Seen) {
        let Some(m) = self.media.last_mut() else {
            return;
        };
        if m.connection.is_none() {
            m.connection.clone_from(&self.session_connection);
            m.connection_from_session = m.connection.is_some();
        }
        m.direction = seen
            .direction
            .or(session.direction)
            .unwrap_or(Direction::SendRecv);
    }

    /// The session-level connection address, if any.
    pub fn session_addr(&self) -> Option<&str> {
        self.session_connection.as_ref().map(|c| c.address.as_str())
    }

    /// The first `m=audio` description, if any (it may be disabled: port 0).
    pub fn first_audio(&self) -> Option<&MediaInfo> {
        self.media
            .iter()
            .find(|m| m.kind.eq_ignore_ascii_case("audio"))
    }

    /// The index of the stream a single-stream reader is shown: the first audio, else the
    /// first media.
    pub fn primary(&self) -> Option<usize> {
        self.media
            .iter()
            .position(|m| m.kind.eq_ignore_ascii_case("audio"))
            .or((!self.media.is_empty()).then_some(0))
    }
}

#[cfg(test)]
mod tests;
