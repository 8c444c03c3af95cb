//! The facts a proxy reads from a disclosed SDP (RFC 8866, formerly RFC 4566): the session
//! and media connection addresses, each media line, and its SDES keys (`a=crypto`, RFC 4568).
//!
//! `a=crypto` values hold SRTP master keys (`inline:...`): [`MediaInfo`]'s `Debug` redacts
//! them and they are zeroized when dropped.

use zeroize::Zeroize;

/// Largest SDP accepted, in bytes.
pub const MAX_SDP: usize = 65536;
/// Most `m=` lines accepted.
pub const MAX_MEDIA: usize = 64;
/// Most `a=crypto` lines accepted per media.
pub const MAX_CRYPTO: usize = 32;

/// The session description, reduced to what a proxy needs.
#[derive(Clone, Debug, Default)]
pub struct SdpInfo {
    /// The session-level `c=` address (without TTL / address count).
    pub session_addr: Option<String>,
    /// The media descriptions in order.
    pub media: Vec<MediaInfo>,
}

/// One media description (`m=` line and its attributes).
#[derive(Clone)]
pub struct MediaInfo {
    /// The media type: `audio`, `video`, `application`, ...
    pub kind: String,
    /// The transport port (0: stream disabled).
    pub port: u16,
    /// The transport protocol, e.g. `RTP/SAVP`.
    pub proto: String,
    /// The media-level `c=` address, else the session-level one.
    pub addr: Option<String>,
    /// The `a=crypto` values (everything after `a=crypto:`), key material included.
    pub crypto: Vec<String>,
}

impl Drop for MediaInfo {
    fn drop(&mut self) {
        for c in &mut self.crypto {
            c.zeroize();
        }
    }
}

/// Why an SDP could not be read.
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
    /// More than [`MAX_MEDIA`] media or [`MAX_CRYPTO`] crypto lines in one media (the line).
    #[error("too many media or crypto lines at line {0}")]
    TooMany(usize),
}

/// A crypto attribute with the key material of every `inline:` key replaced by `<redacted>`
/// (key-params are `inline:<key||salt>[|lifetime][|MKI:length]`, RFC 4568 §6.1).
fn redact_crypto(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find("inline:") {
        let (head, tail) = rest.split_at(i + "inline:".len());
        out.push_str(head);
        out.push_str("<redacted>");
        let key_end = tail
            .find(|c: char| c == '|' || c == ';' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = tail.get(key_end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

impl std::fmt::Debug for MediaInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let crypto: Vec<String> = self.crypto.iter().map(|c| redact_crypto(c)).collect();
        f.debug_struct("MediaInfo")
            .field("kind", &self.kind)
            .field("port", &self.port)
            .field("proto", &self.proto)
            .field("addr", &self.addr)
            .field("crypto", &crypto)
            .finish()
    }
}

/// The address of a `c=` value `<nettype> <addrtype> <address>[/ttl][/count]`.
fn connection_addr(value: &str) -> Option<String> {
    let mut f = value.split_ascii_whitespace();
    let (_net, _ty, addr) = (f.next()?, f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    let addr = addr.split('/').next()?;
    if addr.is_empty() {
        None
    } else {
        Some(addr.to_owned())
    }
}

/// The (kind, port, proto) of an `m=` value `<media> <port>[/<count>] <proto> <fmt> ...`.
fn media_line(value: &str) -> Option<(String, u16, String)> {
    let mut f = value.split_ascii_whitespace();
    let kind = f.next()?;
    let port = f.next()?.split('/').next()?.parse::<u16>().ok()?;
    let proto = f.next()?;
    Some((kind.to_owned(), port, proto.to_owned()))
}

impl SdpInfo {
    /// Parses an SDP. Lines end with CRLF or LF; each is `<letter>=<value>`; blank lines are
    /// skipped; the first line must be `v=0`. Only `c=`, `m=` and media-level `a=crypto:` are
    /// interpreted; session-level `a=crypto` is ignored (RFC 4568 §9.1: media level only).
    pub fn parse(sdp: &[u8]) -> Result<SdpInfo, SdpError> {
        if sdp.len() > MAX_SDP {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(sdp).map_err(|_| SdpError::NotUtf8)?;
        let mut info = SdpInfo::default();
        let mut seen_version = false;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            let (Some(&ty), Some(b'=')) = (bytes.first(), bytes.get(1)) else {
                return Err(if seen_version {
                    SdpError::BadLine(n)
                } else {
                    SdpError::NoVersion
                });
            };
            if !ty.is_ascii_lowercase() {
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
            match ty {
                b'c' => {
                    let addr = connection_addr(value).ok_or(SdpError::BadLine(n))?;
                    match info.media.last_mut() {
                        Some(m) => m.addr = Some(addr),
                        None => info.session_addr = Some(addr),
                    }
                }
                b'm' => {
                    if info.media.len() == MAX_MEDIA {
                        return Err(SdpError::TooMany(n));
                    }
                    let (kind, port, proto) = media_line(value).ok_or(SdpError::BadLine(n))?;
                    info.media.push(MediaInfo {
                        kind,
                        port,
                        proto,
                        addr: None,
                        crypto: Vec::new(),
                    });
                }
                b'a' => {
                    let Some(m) = info.media.last_mut() else {
                        continue;
                    };
                    let Some(c) = value.strip_prefix("crypto:") else {
                        continue;
                    };
                    if m.crypto.len() == MAX_CRYPTO {
                        return Err(SdpError::TooMany(n));
                    }
                    m.crypto.push(c.trim().to_owned());
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::NoVersion);
        }
        for m in &mut info.media {
            if m.addr.is_none() {
                m.addr.clone_from(&info.session_addr);
            }
        }
        Ok(info)
    }

    /// The first `m=audio` description, if any (it may be disabled: port 0).
    pub fn first_audio(&self) -> Option<&MediaInfo> {
        self.media
            .iter()
            .find(|m| m.kind.eq_ignore_ascii_case("audio"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    fn offer() -> String {
        format!(
            "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
             m=audio 49170 RTP/SAVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32\r\n\
             m=video 51372/2 RTP/AVP 31\r\nc=IN IP6 2001:db8::2\r\n\
             m=audio 0 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127/3\r\n"
        )
    }

    #[test]
    fn parses_media_addresses_and_crypto() {
        let info = SdpInfo::parse(offer().as_bytes()).unwrap();
        println!("{info:?}");
        assert_eq!(info.session_addr.as_deref(), Some("192.0.2.10"));
        assert_eq!(info.media.len(), 3);
        let a = info.first_audio().unwrap();
        assert_eq!(
            (a.kind.as_str(), a.port, a.proto.as_str()),
            ("audio", 49170, "RTP/SAVP")
        );
        assert_eq!(a.addr.as_deref(), Some("192.0.2.10"));
        assert_eq!(
            a.crypto,
            [format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32")]
        );
        assert_eq!(info.media[1].port, 51372);
        assert_eq!(info.media[1].addr.as_deref(), Some("2001:db8::2"));
        assert_eq!(info.media[2].addr.as_deref(), Some("224.2.1.1"));
    }

    #[test]
    fn debug_redacts_keys() {
        let info = SdpInfo::parse(offer().as_bytes()).unwrap();
        let dbg = format!("{info:?}");
        println!("{dbg}");
        assert!(!dbg.contains(KEY));
        assert!(dbg.contains("inline:<redacted>|2^20|1:32"));
        assert_eq!(
            redact_crypto("1 X inline:AAA|2^20 inline:BBB;inline:CCC"),
            "1 X inline:<redacted>|2^20 inline:<redacted>;inline:<redacted>"
        );
    }

    #[test]
    fn errors() {
        let cases: [(&[u8], SdpError); 8] = [
            (b"", SdpError::NoVersion),
            (b"o=- 1 1 IN IP4 x\r\n", SdpError::NoVersion),
            (b"v=1\r\n", SdpError::NoVersion),
            (b"\xff", SdpError::NotUtf8),
            (b"v=0\r\nm=audio port RTP/AVP 0\r\n", SdpError::BadLine(2)),
            (b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", SdpError::BadLine(2)),
            (b"v=0\r\n\r\nc=IN IP4\r\n", SdpError::BadLine(3)),
            (b"v=0\nX=1\n", SdpError::BadLine(2)),
        ];
        for (sdp, want) in cases {
            let got = SdpInfo::parse(sdp);
            println!("{:?} -> {got:?}", String::from_utf8_lossy(sdp));
            assert_eq!(got.unwrap_err(), want);
        }
        let many = format!("v=0\r\n{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
        assert_eq!(
            SdpInfo::parse(many.as_bytes()).unwrap_err(),
            SdpError::TooMany(MAX_MEDIA + 2)
        );
        assert_eq!(
            SdpInfo::parse(&vec![b'v'; MAX_SDP + 1]).unwrap_err(),
            SdpError::TooLarge
        );
        println!("media limit and size limit enforced");
    }

    #[test]
    fn no_audio() {
        let info = SdpInfo::parse(b"v=0\nm=video 9 RTP/AVP 31\n").unwrap();
        assert!(info.first_audio().is_none());
        assert_eq!(info.media[0].addr, None);
        println!("video only: first_audio() is None, no address");
    }
}
