use super::*;

const K1: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
const K2: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";

/// Audio (session c=, two crypto, a=rtcp with an address), video (IPv6 c=, port count,
/// a=rtcp without address, sendonly), an rtcp-mux stream, a disabled one, multicast.
fn offer() -> String {
    format!(
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         a=recvonly\r\n\
         m=audio 49170 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|2^20|1:32\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K2} KDR=0\r\n\
         a=rtcp:53020 IN IP4 198.51.100.9\r\na=sendrecv\r\n\
         m=video 51372/2 RTP/SAVPF 96 97\r\nc=IN IP6 2001:db8::2\r\na=rtcp:51400\r\na=sendonly\r\n\
         a=rtpmap:97 opus/48000/2\r\n\
         m=application 9 UDP/TLS/RTP/SAVPF 100\r\na=rtcp-mux\r\na=rtcp:9999\r\n\
         m=audio 0 RTP/AVP 0\r\n\
         m=audio 30000 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127/3\r\na=inactive\r\n"
    )
}

#[test]
fn every_stream() {
    let info = SdpInfo::parse(offer().as_bytes()).unwrap();
    assert_eq!(info.session_addr(), Some("192.0.2.10"));
    assert_eq!(info.session_direction, Some(Direction::RecvOnly));
    assert_eq!(info.media.len(), 5);
    let [a, v, app, off, mc] = &info.media[..] else {
        panic!("five media")
    };

    assert_eq!(
        (a.kind.as_str(), a.port, a.port_count, a.proto.as_str()),
        ("audio", 49170, 1, "RTP/SAVP")
    );
    assert_eq!(a.formats, ["0", "8", "101"]);
    assert_eq!(
        a.rtpmap(0),
        Some(&RtpMap {
            payload_type: 0,
            encoding: "PCMU".into(),
            clock_rate: 8000,
            params: None
        })
    );
    assert_eq!(a.rtpmap(8), None, "no a=rtpmap for 8 in this offer");
    assert_eq!(
        v.rtpmap(97)
            .map(|r| (r.encoding.as_str(), r.clock_rate, r.params)),
        Some(("opus", 48000, Some(2)))
    );
    assert_eq!(
        (a.addr(), a.connection_from_session),
        (Some("192.0.2.10"), true)
    );
    assert_eq!(a.connection.as_ref().unwrap().addr_type, AddrType::Ip4);
    assert_eq!(
        (a.rtcp_port(), a.rtcp_addr()),
        (Some(53020), Some("198.51.100.9"))
    );
    assert_eq!(a.direction, Direction::SendRecv, "media-level wins");
    assert_eq!(a.crypto.len(), 2);
    assert_eq!(
        (a.crypto[0].tag(), a.crypto[0].suite()),
        (1, "AES_CM_128_HMAC_SHA1_80")
    );
    assert_eq!(a.crypto[0].key_params(), format!("inline:{K1}|2^20|1:32"));
    assert_eq!(a.crypto[1].key_params(), format!("inline:{K2}"));
    assert_eq!(a.crypto[1].session_params(), "KDR=0");
    println!("  ok   audio: session-level c=, 3 formats and an a=rtpmap, a=rtcp with its own address, two a=crypto (tags, suites, keys, KDR)");

    assert_eq!(
        (v.port, v.port_count, v.proto.as_str()),
        (51372, 2, "RTP/SAVPF")
    );
    let c = v.connection.as_ref().unwrap();
    assert_eq!(
        (c.addr_type, c.address.as_str(), v.connection_from_session),
        (AddrType::Ip6, "2001:db8::2", false)
    );
    assert_eq!(
        (v.rtcp_port(), v.rtcp_addr()),
        (Some(51400), Some("2001:db8::2"))
    );
    assert_eq!(v.direction, Direction::SendOnly);
    assert!(v.crypto.is_empty());
    println!("  ok   video: IPv6 media-level c=, port count 2, a=rtcp without address, sendonly");

    assert!(app.rtcp_mux);
    assert_eq!(
        (app.rtcp_port(), app.rtcp_addr()),
        (Some(9), Some("192.0.2.10"))
    );
    assert_eq!(
        app.direction,
        Direction::RecvOnly,
        "session-level direction"
    );
    println!("  ok   rtcp-mux: RTCP on the RTP port (a=rtcp is the fallback), session-level recvonly inherited");

    assert!(off.is_disabled());
    assert_eq!(
        (off.rtcp_port(), off.rtcp_addr(), off.addr()),
        (None, None, Some("192.0.2.10"))
    );
    println!("  ok   port 0: disabled, no RTCP");

    let c = mc.connection.as_ref().unwrap();
    assert!(c.is_multicast());
    assert_eq!(
        (c.address.as_str(), c.ttl, c.count),
        ("224.2.1.1", Some(127), 3)
    );
    assert_eq!(
        (mc.rtcp_port(), mc.direction),
        (Some(30001), Direction::Inactive)
    );
    println!("  ok   multicast c= flagged with TTL 127 and 3 addresses; RTCP port+1; inactive");

    assert_eq!(info.primary(), Some(0));
    assert_eq!(info.first_audio().map(|m| m.port), Some(49170));
}

#[test]
fn defaults_and_primary() {
    let info = SdpInfo::parse(b"v=0\nm=video 9 RTP/AVP 31\nm=audio 7000 RTP/AVP 0\n").unwrap();
    assert_eq!(info.primary(), Some(1), "first audio, not first media");
    let v = &info.media[0];
    assert_eq!(
        (v.addr(), v.rtcp_addr(), v.rtcp_port()),
        (None, None, Some(10))
    );
    assert_eq!(v.direction, Direction::SendRecv);
    let only_video = SdpInfo::parse(b"v=0\nm=video 9 RTP/AVP 31\n").unwrap();
    assert_eq!(only_video.primary(), Some(0));
    assert!(only_video.first_audio().is_none());
    let none = SdpInfo::parse(b"v=0\r\ns=-\r\n").unwrap();
    assert_eq!(none.primary(), None);
    let top = SdpInfo::parse(b"v=0\nm=audio 65535 RTP/AVP 0\n").unwrap();
    assert_eq!(top.media[0].rtcp_port(), None, "65535 + 1 does not exist");
    println!("  ok   no c=: no address; sendrecv by default; primary = first audio else first; RTCP of port 65535 absent");
}

#[test]
fn debug_redacts_keys() {
    let info = SdpInfo::parse(offer().as_bytes()).unwrap();
    let dbg = format!("{info:?}");
    assert!(!dbg.contains(K1) && !dbg.contains(K2), "{dbg}");
    assert!(dbg.contains("AES_CM_128_HMAC_SHA1_32") && dbg.contains("<redacted>"));
    println!("  ok   Debug of the whole description shows suites, never keys");
}

#[test]
fn malformed_lines() {
    let cases: Vec<(String, SdpError)> = [
        ("", SdpError::NoVersion),
        ("o=- 1 1 IN IP4 x\r\n", SdpError::NoVersion),
        ("v=1\r\n", SdpError::NoVersion),
        ("v=0\r\nm=audio port RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio 70000 RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio +5 RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio 5000 RTP/AVP\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio 5000/0 RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio 0/2 RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio 65530/4 RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=au(dio 5000 RTP/AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\nm=audio 5000 RTP//AVP 0\r\n", SdpError::BadLine(2)),
        ("v=0\r\n\r\nc=IN IP4\r\n", SdpError::BadLine(3)),
        (
            "v=0\r\nc=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n",
            SdpError::BadLine(4),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:0\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:99999\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:5000 IN IP4\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:5000\r\na=rtcp:5002\r\n",
            SdpError::BadLine(4),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n",
            SdpError::BadLine(4),
        ),
        ("v=0\r\na=inactive\r\na=sendrecv\r\n", SdpError::BadLine(3)),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=crypto:one AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80\r\n",
            SdpError::BadLine(3),
        ),
        ("v=0\r\ns=a\0b\r\n", SdpError::BadLine(2)),
        ("v=0\r\ns=a\rb\r\n", SdpError::BadLine(2)),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:128 PCMU/8000\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8k\r\n",
            SdpError::BadLine(3),
        ),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1/2\r\n",
            SdpError::BadLine(3),
        ),
        ("v=0\nX=1\n", SdpError::BadLine(2)),
        ("v=0\nnoequals\n", SdpError::BadLine(2)),
    ]
    .into_iter()
    .map(|(s, e)| (s.to_string(), e))
    .collect();
    for (sdp, want) in &cases {
        assert_eq!(
            SdpInfo::parse(sdp.as_bytes()).unwrap_err(),
            *want,
            "{sdp:?}"
        );
    }
    assert_eq!(SdpInfo::parse(b"\xff").unwrap_err(), SdpError::NotUtf8);
    // Repeating the same direction, a session-level a=crypto or rtcp: accepted, ignored.
    let ok = "v=0\r\na=crypto:x\r\na=rtcp:0\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\na=sendonly\r\na=x-unknown:1\r\n";
    let info = SdpInfo::parse(ok.as_bytes()).unwrap();
    assert_eq!(info.media[0].direction, Direction::SendOnly);
    println!(
        "  ok   {} malformed descriptions refused with the line (ports, counts, tokens, c=, a=rtcp, directions, a=crypto, a=rtpmap, NUL/CR); UTF-8 required; repeats of one direction and session-level media attributes pass",
        cases.len()
    );
}

#[test]
fn limits() {
    let many = format!("v=0\r\n{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
    assert_eq!(
        SdpInfo::parse(many.as_bytes()).unwrap_err(),
        SdpError::TooMany(MAX_MEDIA + 2)
    );
    let fmts = ["0"; MAX_FORMATS + 1].join(" ");
    let sdp = format!("v=0\r\nm=audio 1 RTP/AVP {fmts}\r\n");
    assert_eq!(
        SdpInfo::parse(sdp.as_bytes()).unwrap_err(),
        SdpError::TooMany(2)
    );
    let line = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K1}\r\n");
    let sdp = format!(
        "v=0\r\nm=audio 1 RTP/AVP 0\r\n{}",
        line.repeat(MAX_CRYPTO + 1)
    );
    assert_eq!(
        SdpInfo::parse(sdp.as_bytes()).unwrap_err(),
        SdpError::TooMany(MAX_CRYPTO + 3)
    );
    let sdp = format!("v=0\r\nm=audio 1 RTP/AVP 0\r\n{}", line.repeat(MAX_CRYPTO));
    assert_eq!(
        SdpInfo::parse(sdp.as_bytes()).unwrap().media[0]
            .crypto
            .len(),
        MAX_CRYPTO
    );
    assert_eq!(
        SdpInfo::parse(&vec![b'v'; MAX_SDP + 1]).unwrap_err(),
        SdpError::TooLarge
    );
    println!("  ok   limits: {MAX_MEDIA} media, {MAX_FORMATS} formats, {MAX_CRYPTO} a=crypto per media, {MAX_SDP} bytes");
}

/// The NUL/CR check looks at the whole text once and at a line only when the text has one:
/// the error still names the line that has it, wherever it is; a CR before LF or at the very
/// end, or in a blank line, is no error.
#[test]
fn nul_and_cr_found_in_their_line() {
    let lines = [
        "v=0",
        "o=a 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    ];
    let mut checked = 0;
    for k in 2..=lines.len() {
        for (stray, at_end) in [("\0", false), ("\r", false), ("\0", true)] {
            let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let l = &mut v[k - 1];
            if at_end {
                l.push_str(stray);
            } else {
                l.insert_str(2, stray);
            }
            for eol in ["\r\n", "\n"] {
                let sdp = v.join(eol) + eol;
                assert_eq!(
                    SdpInfo::parse(sdp.as_bytes()).unwrap_err(),
                    SdpError::BadLine(k),
                    "{sdp:?}"
                );
                checked += 1;
            }
        }
    }
    // A CR ending the text, a CR before a LF, a CR in a blank line, a mix of CRLF and LF.
    for ok in [
        "v=0\r\ns=-\r",
        "v=0\ns=-\r\n",
        "v=0\r\n \r \r\ns=-\n",
        "v=0\r\n\r\r\nm=audio 1 RTP/AVP 0\r\n",
    ] {
        assert!(SdpInfo::parse(ok.as_bytes()).is_ok(), "{ok:?}");
    }
    // A NUL as the very last byte, and a CR before CR LF.
    assert_eq!(
        SdpInfo::parse(b"v=0\r\ns=-\0").unwrap_err(),
        SdpError::BadLine(2)
    );
    assert_eq!(
        SdpInfo::parse(b"v=0\r\ns=-\r\r\n").unwrap_err(),
        SdpError::BadLine(2)
    );
    println!("  ok   NUL/CR: {checked} placements (lines 2 to {}, inside or ending a line, CRLF or LF) refused as BadLine(k); CR at the end, before LF or in a blank line accepted", lines.len());
}

/// Media type, transport, formats and encodings read as written, whether a common word
/// (static) or not (owned): same text, same comparisons.
#[test]
fn words_as_written() {
    let sdp = "v=0\r\nm=Audio 4000 RTP/AVP 0 08 127 128 x-fmt\r\na=rtpmap:08 pcmu/8000\r\n\
               a=rtpmap:0 PCMU/8000\r\nm=video 5000 RTP/XYZ 96\r\n";
    let info = SdpInfo::parse(sdp.as_bytes()).unwrap();
    let (a, v) = (&info.media[0], &info.media[1]);
    assert_eq!((a.kind.as_str(), a.proto.as_str()), ("Audio", "RTP/AVP"));
    assert_eq!(a.formats, ["0", "08", "127", "128", "x-fmt"]);
    assert_eq!(a.formats.join(" "), "0 08 127 128 x-fmt");
    let enc: Vec<&str> = a.rtpmaps.iter().map(|r| r.encoding.as_str()).collect();
    assert_eq!(enc, ["pcmu", "PCMU"]);
    assert_eq!((&*v.kind, &*v.proto), ("video", "RTP/XYZ"));
    assert_eq!(Word::from("PCMU"), a.rtpmaps[1].encoding);
    assert_eq!(String::from(v.kind.clone()), "video");
    assert_eq!(format!("{:?} {}", a.kind, v.proto), "\"Audio\" RTP/XYZ");
    assert_eq!(info.primary(), Some(0));
    // a=rtpmap's two fields, white space around and between as split_ascii_whitespace reads it.
    for (v, ok) in [
        ("0 PCMU/8000", true),
        (" 0  PCMU/8000 ", true),
        ("0\tPCMU/8000\x0c", true),
        ("0 PCMU/8000 x", false),
        ("0 ", false),
        ("0", false),
        ("", false),
        (" ", false),
    ] {
        let got = RtpMap::parse(v);
        assert_eq!(got.is_some(), ok, "{v:?}");
        if let Some(r) = got {
            assert_eq!(
                (r.payload_type, r.encoding.as_str(), r.clock_rate),
                (0, "PCMU", 8000)
            );
        }
    }
    println!("  ok   words: Audio, 08, 128, x-fmt, pcmu, RTP/XYZ kept as written; 0, 127, PCMU, video equal to owned copies; Debug/Display/join as text");
}

/// The byte-loop splitters agree with `str::split`/`split_once` on every position of the
/// separator across the 8-byte words (first, last, none, repeated, empty fields).
#[test]
fn byte_splits_agree_with_str() {
    let mut checked = 0;
    for len in 0..40 {
        for at in [
            None,
            Some(0),
            Some(7),
            Some(8),
            Some(15),
            Some(16),
            Some(len / 2),
        ] {
            let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            if let Some(i) = at.filter(|i| *i < len) {
                s[i] = b'\n';
                if i + 3 < len {
                    s[i + 3] = b'\n';
                }
            }
            let s = String::from_utf8(s).unwrap();
            assert_eq!(split_once_byte(&s, b'\n'), s.split_once('\n'), "{s:?}");
            let ours: Vec<&str> = split_byte(&s, b'\n').collect();
            let std: Vec<&str> = s.split('\n').collect();
            assert_eq!(ours, std, "{s:?}");
            checked += 1;
        }
    }
    // A separator byte whose neighbours are 0x80 or above (the zero-byte test's borrows).
    for s in [
        "é\n€;\u{ff}\n",
        "\x0b\x0b\x0b\n\x0b\x0b\x0b\x0b\x0b\x0b\n\x0b;\x0b\x0b\x0b\x0b\x0b",
        "\x09\x0b\n\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\n",
    ] {
        let ours: Vec<&str> = split_byte(s, b'\n').collect();
        assert_eq!(ours, s.split('\n').collect::<Vec<_>>(), "{s:?}");
        assert_eq!(split_once_byte(s, b';'), s.split_once(';'), "{s:?}");
    }
    println!("  ok   split_byte/split_once_byte equal str::split/split_once on {checked} texts of 0 to 39 bytes and on neighbours one bit off or at 0x80 and above");
}
