//! The recorder host `rec` of docker/compose.phones.yml: sipsd-rec records the softphones'
//! call from the copies fw's agent makes (nft `dup`) with the keys p1 sends over the key
//! channel. The checks of tests/docker_phones.rs on that recording: the start came from p1,
//! the manifest (streams, packets, SSRCs, codec), the tone of each direction's WAV (also after
//! the re-INVITEs), every packet the phones exchanged recorded, the stop at the BYE, no key
//! in the recorder's log or manifest.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::phones::{dominant_hz_in, sip_of};
use super::{field, Testbed};
use crate::support::pcap::{ip4, Datagram};
use crate::support::procs::wait_for;

/// The KEK p1 seals the key channel under and the recorder opens it with (hex file, 0600, in
/// p1's key directory: `rec.kek`, copied by p1 and rec).
pub const KEK_FILE: &str = "rec.kek";

/// One finished recording: what the recorder logged about it, its directory (on the host)
/// and its manifest.
pub struct Recording {
    /// The recorder's log line of the start.
    pub started: String,
    /// The recorder's log line of the end.
    pub finished: String,
    /// The dialog id's first 16 hex digits, as the recorder logs it.
    pub short: String,
    pub dir: PathBuf,
    pub manifest: Value,
}

/// Waits until the recorder has finished the recording of `call` (at most `limit`), and
/// reads it.
pub fn finished(tb: &Testbed, call: &str, limit: Duration) -> Recording {
    let needle = format!("recording call-id={call} ");
    let mut log = String::new();
    let done = wait_for(limit, || {
        log = tb.logs("rec");
        log.lines()
            .find(|l| l.contains(&needle))
            .and_then(short_id)
            .is_some_and(|s| log.contains(&format!("dialog {s}: finished")))
    });
    check!(
        done,
        "rec: sipsd-rec started and finished a recording of the call {call}"
    );
    let started = log.lines().find(|l| l.contains(&needle)).unwrap_or("");
    let short = short_id(started).unwrap_or_default();
    let finished = log
        .lines()
        .find(|l| l.contains(&format!("dialog {short}: finished")))
        .unwrap_or("")
        .to_string();
    // "... into /work/recordings/<dialog>-<ms>": the same directory under the work mount
    let inside = started.rsplit(" into ").next().unwrap_or("");
    let dir = tb.work.join(inside.trim().trim_start_matches("/work/"));
    let text = fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("FAILED: {}/manifest.json: {e}", dir.display()));
    let manifest: Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    Recording {
        started: started.to_string(),
        finished,
        short,
        dir,
        manifest,
    }
}

fn short_id(line: &str) -> Option<String> {
    let rest = line.split("dialog ").nth(1)?;
    let id = rest.split(':').next()?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The stream of the manifest that `sender` (`caller` or `callee`) sent.
fn stream<'a>(m: &'a Value, sender: &str) -> &'a Value {
    m["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|st| s(&st["sender"]) == sender))
        .unwrap_or(&Value::Null)
}

/// The start came from p1 over the key channel: the recorder's log, p1's RPC and statistics.
pub fn started_by_p1(tb: &Testbed, rec: &Recording, call: &str) {
    let m = &rec.manifest;
    let rpc = tb.rpc("p1", "sipsd.recordings");
    check!(
        rec.started.contains(" from proxy1 (2 streams)")
            && s(&m["key_sender"]) == "proxy1"
            && s(&m["call_id"]) == call
            && s(&m["dialog_id"]).starts_with(&rec.short),
        "rec: the keys came from p1 (sender proxy1, the label of its KEK), for both directions: {}",
        rec.started.trim()
    );
    check!(
        rpc.contains(call) && rpc.contains(s(&m["dialog_id"])) && rpc.contains("finished"),
        "p1: sipsd.recordings lists the call, finished, under the recorder's dialog id {}:\n{}",
        rec.short,
        rpc.trim()
    );
    let (started, stopped, errors) = (
        tb.stat("p1", "recordings_started"),
        tb.stat("p1", "recordings_stopped"),
        tb.stat("p1", "record_errors"),
    );
    // the start, then an update at the answer of each re-INVITE (hold, resume)
    let updates = tb
        .logs("rec")
        .matches(&format!("dialog {}: update", rec.short))
        .count();
    check!(
        started == 1 && stopped == 1 && errors == 0 && u(&m["key_messages"]) >= 3 && updates >= 2,
        "p1 started and stopped one recording (record_errors {errors}); the recorder applied {} key messages: the start and {updates} updates (hold, resume)",
        u(&m["key_messages"])
    );
}

/// The manifest: both streams between the phones' media addresses, decrypted packets, SSRCs,
/// PCMU, no authentication failure.
pub fn manifest_streams(tb: &Testbed, rec: &Recording) {
    let (a_media, b_media) = (tb.addr(5, 31), tb.addr(6, 32));
    for (sender, dst) in [("caller", &b_media), ("callee", &a_media)] {
        let st = stream(&rec.manifest, sender);
        let ssrcs: Vec<&Value> = st["ssrcs"].as_array().into_iter().flatten().collect();
        let pts: Vec<String> = ssrcs
            .iter()
            .flat_map(|x| x["payload_types"].as_object().into_iter().flatten())
            .map(|(pt, _)| pt.clone())
            .collect();
        let codecs: Vec<&str> = st["codecs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| s(&c["name"]))
            .collect();
        check!(
            s(&st["destination"]).starts_with(&format!("{dst}:"))
                && u(&st["packets"]) > 0
                && !ssrcs.is_empty()
                && ssrcs.iter().all(|x| u(&x["packets"]) > 0)
                && pts.iter().all(|p| p == "0")
                && !pts.is_empty()
                && codecs.contains(&"PCMU")
                && u(&st["auth_failures"]) == 0
                && s(&st["suite"]) == "AES_CM_128_HMAC_SHA1_80",
            "rec: manifest stream {sender} -> {}: {} packets, SSRCs {:?}, payload types {pts:?} (PCMU; the start message's codecs {codecs:?}), {}, {} lost, {} auth failures; SRTCP {} decrypted, {} refused",
            s(&st["destination"]),
            u(&st["packets"]),
            ssrcs.iter().map(|x| s(&x["ssrc"])).collect::<Vec<_>>(),
            s(&st["suite"]),
            u(&st["lost"]),
            u(&st["auth_failures"]),
            u(&st["rtcp_packets"]),
            u(&st["rtcp_auth_failures"])
        );
    }
}

/// Each direction's WAV has its sender's tone before the hold (its seconds 0.5 to 3; the hold
/// re-INVITE comes 5 s after the dial) and in its last seconds (after the hold and the resume
/// re-INVITEs, whose answers p1 sent as updates). Not the middle of the file: how long the
/// call lasts depends on the machine, and the middle can fall into the hold, when alice's
/// phone sends nothing.
pub fn tones(rec: &Recording) {
    for (sender, who, tone) in [("caller", "alice", 440u32), ("callee", "bob", 660)] {
        let name = s(&stream(&rec.manifest, sender)["wav"]).to_string();
        let wav = fs::read(rec.dir.join(&name))
            .unwrap_or_else(|e| panic!("FAILED: {}/{name}: {e}", rec.dir.display()));
        let (hz, share, secs) = dominant_hz_in(&wav, Some((0.5, 3.0)));
        let (tail_hz, tail_share, _) = dominant_hz_in(&wav, Some((secs - 4.0, secs - 1.0)));
        check!(
            hz.abs_diff(tone) <= 10
                && share > 0.5
                && tail_hz.abs_diff(tone) <= 10
                && tail_share > 0.5
                && secs >= 14.0,
            "rec: {name} (what {who} sent, {secs:.1} s) has {who}'s {tone} Hz: dominant {hz} Hz ({:.0}% of the power) in its seconds 0.5-3, before the hold, and {tail_hz} Hz ({:.0}%) in its last seconds, after the resume",
            share * 100.0,
            tail_share * 100.0
        );
    }
    check!(
        rec.dir.join("mixed.wav").is_file() && rec.dir.join("rtp.pcap").is_file(),
        "rec: the recording also holds mixed.wav and rtp.pcap ({})",
        rec.dir.display()
    );
}

/// The RTP (version 2, not an RTCP packet type: RFC 5761) datagrams from `src` to `dst`
/// among `grams`.
fn rtp(grams: &[Datagram], src: [u8; 4], dst: [u8; 4]) -> u64 {
    grams
        .iter()
        .filter(|g| g.src == src && g.dst == dst && g.payload.len() > 12)
        .filter(|g| g.payload[0] >> 6 == 2 && !(200..=204).contains(&g.payload[1]))
        .count() as u64
}

/// Every RTP packet the phones exchanged while the call was up (in alice's capture, from her
/// first 200 OK to her BYE) is in the recording, and it holds no more than the capture saw.
pub fn every_packet(tb: &Testbed, rec: &Recording, at_alice: &[Datagram], call: &str) {
    let (a_media, b_media) = (ip4(&tb.addr(5, 31)), ip4(&tb.addr(6, 32)));
    let sip = sip_of(at_alice, |g| g.src != a_media && g.dst != a_media);
    let at = |pred: &dyn Fn(&crate::support::sip::SipMsg) -> bool| {
        sip.iter()
            .find(|(_, m)| m.call_id() == call && pred(m))
            .map(|(i, _)| *i)
    };
    let answered = at(&|m| m.status() == Some(200) && m.cseq().ends_with(" INVITE"));
    let bye = at(&|m| m.is_request() && m.method() == "BYE");
    let (Some(answered), Some(bye)) = (answered, bye) else {
        panic!("FAILED: alice's capture has no 200 OK to the INVITE or no BYE of {call}");
    };
    for (sender, src, dst) in [("caller", a_media, b_media), ("callee", b_media, a_media)] {
        let (up, all) = (
            rtp(&at_alice[answered..bye], src, dst),
            rtp(at_alice, src, dst),
        );
        let got = u(&stream(&rec.manifest, sender)["packets"]);
        check!(
            up > 500 && got >= up && got <= all,
            "rec: the {sender}'s {got} recorded packets include all {up} alice's capture saw between her 200 OK and her BYE ({all} in the whole capture)"
        );
    }
}

/// The recording ended with p1's stop at the BYE: reason `BYE`, within the second p1's
/// `sipsd.recordings` gives as the stop, a few seconds after alice hung up at most (not when
/// the recorder stopped).
pub fn stopped_at_bye(tb: &Testbed, rec: &Recording, hangup: SystemTime) {
    let m = &rec.manifest;
    let hangup_ms = hangup
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let stopped_s = field(&tb.rpc("p1", "sipsd.recordings"), "stopped").unwrap_or(0);
    let ended = u(&m["ended_ms"]);
    let reason = s(&m["end_reason"]);
    check!(
        reason == "BYE"
            && ended / 1000 >= stopped_s
            && ended / 1000 <= stopped_s + 1
            && ended + 500 >= hangup_ms
            && ended <= hangup_ms + 5000,
        "rec: the recording ended with p1's stop (reason {reason:?}, p1 stopped it at {stopped_s} s), {} ms after alice hung up: {}",
        ended as i64 - hangup_ms as i64,
        rec.finished.trim()
    );
}

/// No SRTP key of the call (base64 as in the SDP, the master key and salt raw or in hex) in
/// the recorder's log or the manifest.
pub fn no_key(tb: &Testbed, rec: &Recording, keys: &[String]) {
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for k in keys {
        needles.push(k.as_bytes().to_vec());
        let attr =
            sipsd::record::CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{k}"))
                .unwrap_or_else(|e| panic!("FAILED: the SDP's key {k:.4}...: {e:?}"));
        let raw = attr
            .keys()
            .unwrap_or_else(|e| panic!("FAILED: the SDP's key {k:.4}...: {e:?}"))[0]
            .key_salt()
            .to_vec();
        let hex = sipsd::hex::encode(&raw);
        needles.push(hex.to_uppercase().into_bytes());
        needles.push(hex.into_bytes());
        needles.push(raw);
    }
    let log = tb.logs("rec").into_bytes();
    let manifest = fs::read(rec.dir.join("manifest.json")).unwrap_or_default();
    let found = needles
        .iter()
        .filter(|n| {
            [&log, &manifest]
                .iter()
                .any(|h| h.windows(n.len()).any(|w| w == &n[..]))
        })
        .count();
    check!(
        !keys.is_empty() && found == 0,
        "rec: none of the call's {} SRTP keys (base64, hex, raw key and salt) in the recorder's log ({} bytes) or manifest",
        keys.len(),
        log.len()
    );
}
