//! Every media stream of a disclosed SDP, as a Kamailio script reads it: P1
//! (cfg-examples/trusted-proxy.cfg with build/sipsd.so, `-A WITH_MEDIA_LOG`, and
//! `-A SIPSD_MEDIA_JS=tests/kamailio/media-log.js` for the KEMI twin) between a caller and a
//! next hop that answers, over UDP on loopback. The route logs `$sd(media[$var(i)]/NAME)` and
//! `$sd(media[$var(i)]/crypto[$var(j)]/NAME)` in `while` loops; the JavaScript logs
//! `KSR.sipsd.sd_get("media[i]/NAME")`. Checked, each printed:
//!
//! 1. the INVITE's four-stream offer (tests/data/sip/multistream.sdp: audio with two a=crypto
//!    and an a=rtcp address, IPv6 video with a port count, an rtcp-mux stream, a disabled
//!    one): every field of every stream and attribute as expected, the keys as their
//!    SHA-256; `$sd(media_addr)` and friends unchanged;
//! 2. the 200 OK's answer (EncryptedData under the dialog key, session-level IPv6 `c=`):
//!    read in onreply_route, every stream;
//! 3. an offer whose SDP is malformed: `$sd(sdp_error)` names the line, no stream is shown;
//! 4. KEMI: the same values through `KSR.sipsd.sd_get`, an unknown name is `$null`;
//! 5. no key parameter and no SDP text in P1's log.
//!
//! Needs kamailio and build/sipsd.so (make); otherwise SKIPPED unless SIPSD_REQUIRE_E2E=1.
//! Run: `cargo test --test kamailio_media -- --nocapture`.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::engine::ua::UaSession;
use sipsd::sip::body::{BodyOptions, SipBody};

use support::dialog::received;
use support::kamailio::{next_hop, Kamailio, P1};
use support::ports::ADDR;
use support::procs::wait_for;
use support::sip::{reply, reply_with, Peer, Request, SMIME_ENC};
use support::tools::{Need, Tools};
use support::vectors::{cert_recipient, data, root, sha256_hex};
use support::work::WorkDir;

/// The key parameters of multistream.sdp, and of the answer below.
const K1: &str = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";
const K2: &str = "inline:e/IE6DDnxCd/vDkFWDQMew4l8R2szuZ69f5frz9wQDBAOr2WASQcfvnx5QGWww==|2^31";
const K3: &str = "inline:CQG/tnHyTi+J7QJor/frrcuc1dzNTAyGqS/GKA==";
const K4: &str = "inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";

/// The callee's answer: session-level IPv6, audio with rtcp-mux and one a=crypto, video and
/// the last audio refused (port 0), the application stream kept.
fn answer_sdp() -> String {
    format!(
        "v=0\r\no=bob 7 7 IN IP6 2001:db8::20\r\ns=-\r\nc=IN IP6 2001:db8::20\r\nt=0 0\r\n\
         m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {K4}\r\n\
         m=video 0 RTP/SAVPF 96\r\n\
         m=application 40002 UDP/TLS/RTP/SAVPF 100\r\na=rtcp-mux\r\na=sendonly\r\n\
         m=audio 0 RTP/AVP 0\r\n"
    )
}

/// Line 7 is an m= line with a port above 65535.
const BAD_SDP: &[u8] = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
t=0 0\r\nm=audio 49170 RTP/AVP 0\r\nm=video 99999 RTP/AVP 31\r\n";

/// The fields of the media lines, as `route[MEDIA_LOG]` and media-log.js print them.
#[rustfmt::skip]
const MEDIA_FIELDS: [&str; 14] = [
    "kind", "port", "port_count", "proto", "formats", "addr", "addr_type",
    "multicast", "rtcp_port", "rtcp_addr", "rtcp_mux", "direction", "crypto_count", "rtpmap",
];

/// What P1 must show of each stream of the offer, in MEDIA_FIELDS order.
#[rustfmt::skip]
const OFFER_MEDIA: [[&str; 14]; 4] = [
    ["audio", "49170", "1", "RTP/SAVP", "0 8 101", "192.0.2.10", "IP4", "0", "49171", "198.51.100.9", "0", "sendrecv", "2", "0 PCMU/8000, 8 PCMA/8000, 101 telephone-event/8000"],
    ["video", "51372", "2", "RTP/SAVPF", "96 97", "2001:db8::2", "IP6", "0", "51381", "2001:db8::2", "0", "sendonly", "1", "96 H264/90000, 97 VP8/90000"],
    ["application", "50000", "1", "UDP/TLS/RTP/SAVPF", "100", "192.0.2.10", "IP4", "0", "50000", "192.0.2.10", "1", "recvonly", "0", "<null>"],
    ["audio", "0", "1", "RTP/AVP", "0", "192.0.2.10", "IP4", "0", "<null>", "<null>", "0", "sendrecv", "0", "<null>"],
];

#[rustfmt::skip]
const ANSWER_MEDIA: [[&str; 14]; 4] = [
    ["audio", "40000", "1", "RTP/SAVP", "0", "2001:db8::20", "IP6", "0", "40000", "2001:db8::20", "1", "sendrecv", "1", "0 PCMU/8000"],
    ["video", "0", "1", "RTP/SAVPF", "96", "2001:db8::20", "IP6", "0", "<null>", "<null>", "0", "sendrecv", "0", "<null>"],
    ["application", "40002", "1", "UDP/TLS/RTP/SAVPF", "100", "2001:db8::20", "IP6", "0", "40002", "2001:db8::20", "1", "sendonly", "0", "<null>"],
    ["audio", "0", "1", "RTP/AVP", "0", "2001:db8::20", "IP6", "0", "<null>", "<null>", "0", "sendrecv", "0", "<null>"],
];

/// (stream, attribute, tag, suite, session params, key params) of the offer and answer.
type CryptoRow = (
    usize,
    usize,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
const OFFER_CRYPTO: [CryptoRow; 3] = [
    (0, 0, "1", "AES_CM_128_HMAC_SHA1_80", "<null>", K1),
    (0, 1, "2", "AES_256_CM_HMAC_SHA1_80", "KDR=0 WSH=128", K2),
    (1, 0, "7", "AEAD_AES_128_GCM", "<null>", K3),
];
const ANSWER_CRYPTO: [CryptoRow; 1] = [(0, 0, "1", "AES_CM_128_HMAC_SHA1_80", "<null>", K4)];

/// The `key=value` fields of P1's log lines starting with `tag: ` for `call` and `what`.
fn lines(p1: &Kamailio, tag: &str, call: &str, what: &str) -> Vec<BTreeMap<String, String>> {
    let prefix = format!("{tag}: ");
    p1.log_text()
        .lines()
        .filter_map(|l| l.split_once(prefix.as_str()).map(|(_, r)| r))
        .map(|r| {
            r.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|f| f.get("call").map(String::as_str) == Some(call))
        .filter(|f| f.get("what").map(String::as_str) == Some(what))
        .collect()
}

/// The script's and the KEMI lines of one message, once both are in the log.
struct Logged {
    sdp: Vec<BTreeMap<String, String>>,
    media: Vec<BTreeMap<String, String>>,
    crypto: Vec<BTreeMap<String, String>>,
    kemi_sdp: Vec<BTreeMap<String, String>>,
    kemi_media: Vec<BTreeMap<String, String>>,
    kemi_crypto: Vec<BTreeMap<String, String>>,
}

fn logged(p1: &Kamailio, call: &str, what: &str) -> Logged {
    // the KEMI summary is the last line route[MEDIA_LOG] makes for a message
    let done = wait_for(Duration::from_secs(5), || {
        !lines(p1, "sipsd-kemi-sdp", call, what).is_empty()
    });
    assert!(done, "P1 logged no media lines for {what} of {call}");
    Logged {
        sdp: lines(p1, "sipsd-sdp", call, what),
        media: lines(p1, "sipsd-media", call, what),
        crypto: lines(p1, "sipsd-crypto", call, what),
        kemi_sdp: lines(p1, "sipsd-kemi-sdp", call, what),
        kemi_media: lines(p1, "sipsd-kemi-media", call, what),
        kemi_crypto: lines(p1, "sipsd-kemi-crypto", call, what),
    }
}

/// Checks one message's lines against the expected streams and attributes.
fn check_streams(name: &str, l: &Logged, media: &[[&str; 14]], crypto: &[CryptoRow]) {
    check!(
        l.sdp.len() == 1
            && l.sdp[0].get("media_count").map(String::as_str) == Some(&media.len().to_string())
            && l.sdp[0].get("sdp_error").map(String::as_str) == Some("<null>"),
        "{name}: $sd(media_count) = {}, $sd(sdp_error) = <null> ({:?})",
        media.len(),
        l.sdp
    );
    check!(
        l.media.len() == media.len(),
        "{name}: the while loop over $sd(media_count) logged {} stream lines",
        l.media.len()
    );
    for (i, want) in media.iter().enumerate() {
        let got = &l.media[i];
        let diff: Vec<String> = MEDIA_FIELDS
            .iter()
            .zip(want)
            .filter(|(f, w)| got.get(**f).map(String::as_str) != Some(**w))
            .map(|(f, w)| format!("{f}: got {:?}, want {w}", got.get(*f)))
            .collect();
        check!(
            got.get("i").map(String::as_str) == Some(&i.to_string()) && diff.is_empty(),
            "{name}: $sd(media[{i}]/...) all {} fields: {} {} port {} {} rtcp {} port {} {} {diff:?}",
            MEDIA_FIELDS.len(),
            want[0],
            want[5],
            want[1],
            want[3],
            want[9],
            want[8],
            want[11]
        );
    }
    check!(
        l.crypto.len() == crypto.len(),
        "{name}: the inner loop over $sd(media[$var(i)]/crypto_count) logged {} a=crypto lines",
        l.crypto.len()
    );
    for (k, (i, j, tag, suite, session, keys)) in crypto.iter().enumerate() {
        let got = &l.crypto[k];
        let get = |f: &str| got.get(f).map(String::as_str).unwrap_or("");
        check!(
            get("i") == i.to_string()
                && get("j") == j.to_string()
                && get("tag") == *tag
                && get("suite") == *suite
                && get("session_params") == *session
                && get("key_sha256").eq_ignore_ascii_case(&sha256_hex(keys.as_bytes())),
            "{name}: $sd(media[{i}]/crypto[{j}]/...): tag {tag}, {suite}, session params {session}, key_params whose SHA-256 is {}...",
            &get("key_sha256").get(..16).unwrap_or("")
        );
    }
    // KEMI: the same values (keys as their length)
    let same_media = l.kemi_media.len() == l.media.len()
        && l.kemi_media.iter().zip(&l.media).all(|(k, s)| {
            MEDIA_FIELDS
                .iter()
                .chain(["i"].iter())
                .all(|f| k.get(*f) == s.get(*f))
        });
    check!(
        same_media,
        "{name}: KSR.sipsd.sd_get(\"media[i]/NAME\") gives the same {} x {} values",
        l.kemi_media.len(),
        MEDIA_FIELDS.len()
    );
    let same_crypto = l.kemi_crypto.len() == crypto.len()
        && l.kemi_crypto.iter().zip(crypto).all(|(k, c)| {
            let get = |f: &str| k.get(f).map(String::as_str).unwrap_or("");
            get("tag") == c.2
                && get("suite") == c.3
                && get("session_params") == c.4
                && get("key_len") == c.5.len().to_string()
        });
    check!(
        same_crypto,
        "{name}: KSR.sipsd.sd_get(\"media[i]/crypto[j]/NAME\") for {} attributes: tag, suite, session params, key params of the right length",
        crypto.len()
    );
}

#[test]
fn every_stream_through_pseudo_variables_and_kemi() {
    let _serial = support::serial();
    let Some(t) = Tools::require(
        "kamailio_media",
        &[Need::Kamailio, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let dir = WorkDir::new("media");
    let opts = BodyOptions::default();
    let both = ["callee", "proxy1"]
        .map(|w| cert_recipient(w, IdKind::IssuerSerial, RsaPadding::OaepSha256));
    let offer_sdp = std::fs::read(data().join("sip/multistream.sdp")).expect("multistream.sdp");
    let (mut ua, offer) = UaSession::offer(
        "application/sdp",
        &offer_sdp,
        &both,
        ContentAlg::Aes256Gcm,
        None,
        &opts,
    )
    .expect("seal the offer");
    let answer: SipBody = ua
        .encrypt("application/sdp", answer_sdp().as_bytes(), &opts)
        .expect("the answer under the dialog key");
    let (_, bad) = UaSession::offer(
        "application/sdp",
        BAD_SDP,
        &both,
        ContentAlg::Aes256Gcm,
        None,
        &opts,
    )
    .expect("seal the bad offer");

    // The next hop answers the first call's INVITE with the encrypted answer.
    let answer_body = Arc::new(Mutex::new(answer.body.clone()));
    let sink = Peer::answering(move |m| match m.method() {
        "ACK" => None,
        "INVITE" if m.call_id() == "media-1@test" => {
            let body = answer_body.lock().unwrap().clone();
            Some(reply_with(
                m,
                200,
                "OK",
                &[("Content-Type", SMIME_ENC)],
                &body,
            ))
        }
        _ => Some(reply(m, 200, "OK")),
    });
    let caller = Peer::bind();
    let hop = next_hop(sink.port());
    let js = root().join("tests/kamailio/media-log.js");
    let js = js.to_string_lossy();
    let p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_MEDIA_LOG", None),
            ("SIPSD_MEDIA_JS", Some(&js)),
        ],
    );
    println!(
        "P1 (pid {}) on {ADDR}:{}, next hop {}, KEMI twin {js}",
        p1.pid(),
        p1.port,
        sink.port()
    );

    // 1, 2. The four-stream offer, and its answer in the 200 OK.
    let invite = Request::new("INVITE", "media-1@test")
        .uri(&format!("sip:bob@{ADDR}:{}", sink.port()))
        .body(&offer.content_type, &offer.body);
    caller.send(p1.port, &invite.build(caller.port()));
    let relayed = received(&sink, "media-1@test", "INVITE", 1).expect("P1 relays the INVITE");
    check!(
        relayed.body == offer.body,
        "the INVITE reached the next hop with its body unchanged ({} bytes)",
        offer.body.len()
    );
    check!(
        caller
            .wait(Duration::from_secs(5), |m| m.status() == Some(200))
            .is_some_and(|m| m.body == answer.body),
        "the 200 OK with the encrypted answer came back through P1 unchanged"
    );
    let l = logged(&p1, "media-1@test", "INVITE");
    check_streams("offer (INVITE)", &l, &OFFER_MEDIA, &OFFER_CRYPTO);
    let p1lines = p1.log_lines();
    let first = p1lines
        .iter()
        .find(|x| x.call == "media-1@test" && x.what == "INVITE")
        .expect("P1's sipsd: line of the INVITE");
    check!(
        first.decrypted && first.get("media") == "192.0.2.10:49170",
        "$sd(media_addr):$sd(media_port) still show the first audio stream: {}",
        first.get("media")
    );
    let l = logged(&p1, "media-1@test", "INVITE200");
    check_streams(
        "answer (200 OK, dialog key)",
        &l,
        &ANSWER_MEDIA,
        &ANSWER_CRYPTO,
    );

    // 3. A malformed SDP: decrypted, but no stream shown.
    let invite = Request::new("INVITE", "media-2@test")
        .uri(&format!("sip:bob@{ADDR}:{}", sink.port()))
        .body(&bad.content_type, &bad.body);
    caller.send(p1.port, &invite.build(caller.port()));
    received(&sink, "media-2@test", "INVITE", 1).expect("P1 relays the bad INVITE");
    let l = logged(&p1, "media-2@test", "INVITE");
    let sdp = l.sdp.first().cloned().unwrap_or_default();
    check!(
        sdp.get("sdp_error").map(String::as_str) == Some("malformed SDP line 7")
            && sdp.get("media_count").map(String::as_str) == Some("<null>")
            && l.media.is_empty()
            && l.kemi_media.is_empty(),
        "malformed SDP: $sd(sdp_error) = \"malformed SDP line 7\", $sd(media_count) = <null>, no stream lines ({sdp:?})"
    );

    // 4. KEMI names.
    let kemi = &l.kemi_sdp[0];
    check!(
        kemi.get("bogus").map(String::as_str) == Some("<null>")
            && p1
                .log_text()
                .contains("unknown sd_get name: media[0]/bogus"),
        "KSR.sipsd.sd_get(\"media[0]/bogus\") is $null and the module names the bad name"
    );

    // 5. Nothing secret in the log.
    let log = p1.log_text();
    let leaks: Vec<&str> = [K1, K2, K3, K4, "m=audio", "a=crypto", "o=alice 2890844527"]
        .into_iter()
        .filter(|k| log.contains(*k))
        .collect();
    check!(
        leaks.is_empty(),
        "P1's log holds no key parameters and no SDP text: {leaks:?}"
    );
}
