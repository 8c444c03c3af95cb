//! Two unmodified softphones (baresip 1.0, SDES-SRTP, PCMU) calling each other through sipsd
//! edges in the Docker testbed (docker/compose.yml + docker/compose.phones.yml):
//!
//! ```text
//!   alice (baresip, 440 Hz) -> edge A -> p1 (trusted) -> p2 (untrusted) -> edge B -> bob (baresip, 660 Hz)
//!        |                                  | PCP (mgmt network)                              |
//!        +-- caller media network ------- fw (sipsd-fw) ------- callee media network ------+
//! ```
//!
//! The phones' SRTP crosses `fw`, which routes between the two media networks and drops UDP
//! media unless the agent's table `inet sipsd` holds a pinhole p1 asked for (WITH_PINHOLES).
//!
//! One test, `docker_phones`, one call of about 17 s driven through baresip's ctrl_tcp
//! (`sipsd-phonectl` in the phone containers): dial, hold (a re-INVITE under the call's key),
//! resume after edge A's `rotate_after` (8 s: the re-INVITE carries a new key with the
//! proof), hang up; then a call to carol, who has no certificate at edge A. Checks, printed:
//!
//! 1. the call is established and ends after the hangup on both phones; what bob heard
//!    (baresip's `sndfile` recording of the decoded audio) has alice's 440 Hz as its dominant
//!    frequency and what alice heard bob's 660 Hz; media flowed both ways on the media network
//!    after the rotation, and it is SRTP (payload bytes near 8 bits of entropy), with no SRTP
//!    error at either phone;
//! 2. the core capture: every SIP message of the call S/MIME or bodiless, none of the SDP text,
//!    media addresses or SRTP keys (taken from the plain SDP alice exchanged with edge A);
//! 3. p1 decrypted the offer with its key and the answer with the cached key (media addresses
//!    of both phones, alice's signature valid); p2's log shows only body sizes;
//! 4. the hold re-INVITE is EncryptedData under the same key (generation 1 at p1 and edge B),
//!    the resume re-INVITE a proven rotation (generation 2 at edge A, p1 and edge B, p1's
//!    `rotations` statistic);
//! 5. a call to a user without a certificate: edge A answers 606 with a Warning, baresip sees
//!    it (its log and alice's own capture), nothing reaches p1;
//! 6. the firewall (`nft -j list table inet sipsd` in fw, printed before, during and after the
//!    call): no element before; during the call the call's flows between the two media
//!    addresses under one nonce, its mirror set the call's four destinations (copied to the
//!    recorder), p1's `sipsd.pinholes` lists the call, the `accepted` counter
//!    moves with the media, and datagrams alice sends to another port of bob move `dropped`;
//!    after the BYE none of the call's elements is left and datagrams along the old flow
//!    (alice's RTP port to bob's) are dropped, none accepted; the agent refused nothing;
//! 7. the recording (edge A marks alice's calls `X-Record: yes`, p1 runs WITH_RECORDING, fw
//!    mirrors to `rec`, where sipsd-rec records): the start came from p1 (sender proxy1, both
//!    directions, p1's `sipsd.recordings`), updates at the hold and the resume; the manifest
//!    lists both streams (destination, packets, SSRCs, PCMU, no authentication failure);
//!    the caller's WAV has 440 Hz and the callee's 660 Hz, also in their last seconds (after
//!    the re-INVITEs); every RTP packet alice's capture saw while the call was up is
//!    recorded; the recording ended with p1's stop at the BYE; no SRTP key in the recorder's
//!    log or manifest.
//!
//! Needs what tests/docker_testbed.rs needs (Docker, docker-compose, `make`); the phone image
//! installs baresip-core and sox from the Debian mirror. Without Docker: SKIPPED, unless
//! SIPSD_REQUIRE_DOCKER=1. Run: `cargo test --test docker_phones -- --nocapture`.

#[macro_use]
mod support;
mod testbed;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use support::kamailio::edge_keys;
use support::openssl::self_signed;
use support::p1log::{parse_edge, parse_p1, parse_p2, EdgeLine, P1Line};
use support::pcap::{find_plaintext, ip4, pcap_datagrams, Datagram};
use support::procs::wait_for;
use support::sip::SipMsg;
use support::vectors;
use testbed::fw;
use testbed::phones::{
    dominant_hz, entropy, heard, phone, plain_sdp, set_env, sip_of, srtp_keys, until, wait_log,
};
use testbed::{rec, text, Testbed};

const ALICE_CN: &str = "alice.example.net";
const ROTATE_AFTER_S: u64 = 8;
const PCP_KEY: [u8; 32] = *b"docker phones pinhole key, 32 B!";
const REC_KEK: [u8; 32] = *b"docker phones recorder KEK 32 B!";

/// The keys of this run: p1's (the vectors' plus alice's certificate, which p1 trusts for
/// signatures) and each edge's key directory; removed on drop.
struct Keys {
    dir: PathBuf,
    p1: PathBuf,
    edge_a: PathBuf,
    edge_b: PathBuf,
}

impl Keys {
    fn new() -> Keys {
        let dir = std::env::temp_dir().join(format!("sipsd-phones-keys-{}", std::process::id()));
        let p1 = dir.join("p1");
        fs::create_dir_all(&p1).expect("keys dir");
        for e in fs::read_dir(vectors::keys())
            .expect("vector keys")
            .flatten()
        {
            if e.path().is_file() {
                fs::copy(e.path(), p1.join(e.file_name())).expect("copy key");
            }
        }
        // the MAC key p1 and the firewall agent share (PCP, key id 1)
        fw::write_key(&p1.join("pcp.key"), &PCP_KEY);
        // the key channel's KEK p1 and the recorder share
        fw::write_key(&p1.join(rec::KEK_FILE), &REC_KEK);
        let (alice_key, alice_crt) = self_signed(&dir, "alice", ALICE_CN);
        fs::copy(&alice_crt, p1.join("alice.crt")).expect("alice.crt for p1");
        let (bob_key, bob_crt) = (
            vectors::key_path("callee.key"),
            vectors::key_path("callee.crt"),
        );
        let p1_crt = vectors::key_path("proxy1.crt");
        let edge_a = edge_keys(
            &dir.join("edge-a"),
            (&alice_key, &alice_crt),
            &p1_crt,
            &[("bob@example.net", &bob_crt)],
            &[],
        );
        let edge_b = edge_keys(
            &dir.join("edge-b"),
            (&bob_key, &bob_crt),
            &p1_crt,
            &[("alice@example.net", &alice_crt)],
            &[&alice_crt],
        );
        Keys {
            dir,
            p1,
            edge_a,
            edge_b,
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn of_call(lines: &[EdgeLine], call: &str) -> Vec<EdgeLine> {
    lines.iter().filter(|l| l.call == call).cloned().collect()
}

fn count(lines: &[EdgeLine], what: &str, action: &str, gen: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.what == what && l.action == action && l.get("gen") == gen)
        .count()
}

#[test]
fn docker_phones() {
    let t0 = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_sipsd"));
    let keys = Keys::new();
    let Some(mut tb) = testbed::create(&root, &cli, &keys.p1, &["docker/compose.phones.yml"])
    else {
        return;
    };
    set_env(
        &mut tb,
        "SIPSD_EDGE_A_KEYS",
        &keys.edge_a.display().to_string(),
    );
    set_env(
        &mut tb,
        "SIPSD_EDGE_B_KEYS",
        &keys.edge_b.display().to_string(),
    );
    set_env(
        &mut tb,
        "SIPSD_EDGE_A_DEFINES",
        &format!("WITH_SIGN SIPSD_ROTATE_AFTER={ROTATE_AFTER_S}"),
    );
    set_env(
        &mut tb,
        "SIPSD_DEFINES",
        "SIPSD_TRUSTED_SIGNERS=/keys/alice.crt",
    );
    start(&tb);
    let (call, hangup) = the_call(&tb);
    let carol = callee_without_certificate(&tb);
    let alice_pcap = fs::read(tb.work.join("alice.pcap")).expect("alice.pcap");
    let core_pcap = fs::read(tb.work.join("core.pcap")).expect("core.pcap");
    let at_alice = pcap_datagrams(&alice_pcap);
    what_the_phones_heard(&tb, &at_alice, &call);
    the_core(&tb, &core_pcap, &at_alice, &call);
    who_read_what(&tb, &call);
    reinvites_and_rotation(&tb, &call);
    carol_refused(&tb, &at_alice, &carol);
    the_recording(&tb, &at_alice, &call, hangup);
    tb.down();
    println!("docker_phones: all checks passed in {:?}", t0.elapsed());
}

fn start(tb: &Testbed) {
    tb.start_services(
        "compose.yml + compose.phones.yml",
        &[
            "fw", "rec", "edgea", "alice", "p1", "p2", "tap", "edgeb", "bob", "tapa",
        ],
    );
    tb.wait_ready(1);
    let ready = wait_for(Duration::from_secs(60), || {
        ["edgea", "edgeb"]
            .iter()
            .all(|e| tb.logs(e).contains("ready (dialog callbacks"))
            && ["alice", "bob"]
                .iter()
                .all(|p| tb.logs(p).contains("baresip is ready"))
            && tb.logs("tapa").contains("listening on")
            && tb.logs("fw").contains("sipsd-fw: listening on")
            && tb.logs("rec").contains(" ready: capture on ")
    });
    if !ready {
        for s in ["fw", "rec", "edgea", "edgeb", "alice", "bob"] {
            println!("----- {s} -----\n{}", tb.logs(s));
        }
    }
    check!(
        ready,
        "edge A, edge B (sipsd role edge), alice and bob (baresip, media on {n}.5.0/24 and {n}.6.0/24), fw's agent, the recorder and alice's capture are up",
        n = tb.net
    );
}

/// alice calls bob: dial, hold at 5 s, resume at 10 s (after edge A's rotate_after), hang up
/// at 17 s. Returns the Call-ID and when alice hung up.
fn the_call(tb: &Testbed) -> (String, SystemTime) {
    let before = tb.fw_table();
    println!("  fw before the call: {}", before.summary());
    let (a_media, b_media) = (tb.addr(5, 31), tb.addr(6, 32));
    check!(
        before.mentioning(&a_media).is_empty() && before.mentioning(&b_media).is_empty(),
        "fw: before the call the agent's table holds nothing for {a_media} or {b_media} (default drop for UDP media between them)"
    );
    println!("  -- alice calls bob (hold at 5 s, resume at 10 s, hang up at 17 s)");
    phone(tb, "alice", "dial sip:bob@example.net");
    let dialled = Instant::now();
    let up = wait_log(tb, "alice", "Call established", 1, Duration::from_secs(15))
        && wait_log(tb, "bob", "Call established", 1, Duration::from_secs(5));
    if !up {
        for s in ["alice", "edgea", "p1", "p2", "edgeb", "bob"] {
            println!("----- {s} -----\n{}", tb.logs(s));
        }
    }
    check!(
        up,
        "the call is established at both phones (bob answers automatically) in {:?}",
        dialled.elapsed()
    );
    until(dialled, 5.0);
    phone(tb, "alice", "hold");
    check!(
        wait_log(tb, "bob", "got re-INVITE", 1, Duration::from_secs(5)),
        "bob's phone got the hold re-INVITE"
    );
    until(dialled, ROTATE_AFTER_S as f64 + 2.0);
    phone(tb, "alice", "resume");
    check!(
        wait_log(tb, "bob", "got re-INVITE", 2, Duration::from_secs(5)),
        "bob's phone got the resume re-INVITE, {:.1} s after the dial (edge A's rotate_after is {ROTATE_AFTER_S} s)",
        dialled.elapsed().as_secs_f64()
    );
    let call = last_call_at_edge_a(tb, "sealed an offer", |l| {
        l.action == "sealed" && l.get("sealing") == "offer"
    });
    let flow = fw::during_call(tb, &call);
    until(dialled, 17.0);
    let hangup = SystemTime::now();
    phone(tb, "alice", "hangup");
    let ended = wait_log(
        tb,
        "alice",
        "terminated (duration",
        1,
        Duration::from_secs(5),
    ) && wait_log(tb, "bob", "terminated (duration", 1, Duration::from_secs(5));
    let duration = tb
        .logs("bob")
        .split("terminated (duration: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    check!(
        ended && duration >= 15,
        "the hangup ended the call at both phones: bob's baresip says it lasted {duration} s"
    );
    fw::after_call(tb, &flow);
    (call, hangup)
}

/// The Call-ID of the last INVITE edge A logged as `pred` says.
fn last_call_at_edge_a(tb: &Testbed, what: &str, pred: impl Fn(&EdgeLine) -> bool) -> String {
    let a = parse_edge(&tb.logs("edgea"));
    a.iter()
        .rfind(|l| l.what == "INVITE" && pred(l))
        .map(|l| l.call.clone())
        .unwrap_or_else(|| panic!("FAILED: edge A {what}: none in {a:#?}"))
}

/// alice calls carol, whose certificate edge A does not have. Returns the Call-ID.
fn callee_without_certificate(tb: &Testbed) -> String {
    println!("  -- alice calls carol (no certificate at edge A)");
    phone(tb, "alice", "dial sip:carol@example.net");
    let refused = wait_log(
        tb,
        "alice",
        "sip:carol@example.net",
        2,
        Duration::from_secs(10),
    ) && wait_for(Duration::from_secs(10), || {
        tb.logs("alice")
            .lines()
            .any(|l| l.contains("carol") && l.contains("606"))
    });
    let line = tb
        .logs("alice")
        .lines()
        .rfind(|l| l.contains("606"))
        .unwrap_or("")
        .to_string();
    check!(
        refused,
        "alice's baresip shows the call to carol refused: {}",
        line.trim()
    );
    last_call_at_edge_a(tb, "refused an INVITE", |l| l.action == "refused")
}

fn what_the_phones_heard(tb: &Testbed, at_alice: &[Datagram], call: &str) {
    for (who, from, tone) in [("bob", "alice", 440u32), ("alice", "bob", 660)] {
        let wav = heard(tb, who)
            .unwrap_or_else(|| panic!("FAILED: no recording in {}/rec/{who}", tb.work.display()));
        let (hz, share, secs) = dominant_hz(&fs::read(&wav).expect("read the recording"));
        let sox = text(&tb.exec(
            who,
            &format!(
                "sox /work/rec/{who}/{} -n stat 2>&1 | grep -i 'rough'",
                wav.file_name().unwrap().to_string_lossy()
            ),
        ));
        check!(
            hz.abs_diff(tone) <= 10 && share > 0.5 && secs >= 3.0,
            "{who} heard {from}'s {tone} Hz tone: dominant {hz} Hz ({:.0}% of the power) over {secs:.1} s of decoded SRTP ({}, sox: {})",
            share * 100.0,
            wav.file_name().unwrap().to_string_lossy(),
            sox.split_whitespace().last().unwrap_or("?")
        );
    }
    // media after the rotation: datagrams between the media addresses after alice got the
    // 200 OK to the resume re-INVITE (the capture's order is the kernel's)
    let a_media = ip4(&tb.addr(5, 31));
    let b_media = ip4(&tb.addr(6, 32));
    let sip = sip_of(at_alice, |g| g.src != a_media && g.dst != a_media);
    let resumed = sip
        .iter()
        .filter(|(_, m)| {
            m.call_id() == call && m.status() == Some(200) && m.cseq().ends_with(" INVITE")
        })
        .map(|(i, m)| (*i, m.cseq().to_string()))
        .collect::<Vec<_>>();
    let cseqs: std::collections::BTreeSet<&str> = resumed.iter().map(|(_, c)| c.as_str()).collect();
    check!(
        cseqs.len() == 3,
        "alice got 200 OK for 3 INVITEs of the call (offer, hold, resume): {cseqs:?}"
    );
    let after = resumed.last().map(|(i, _)| *i).unwrap_or(usize::MAX);
    let sent: Vec<&Datagram> = at_alice[after.min(at_alice.len())..]
        .iter()
        .filter(|g| g.src == a_media && g.dst == b_media)
        .collect();
    let got: Vec<&Datagram> = at_alice[after.min(at_alice.len())..]
        .iter()
        .filter(|g| g.src == b_media && g.dst == a_media)
        .collect();
    let payload: Vec<u8> = sent
        .iter()
        .chain(got.iter())
        .filter(|g| g.payload.len() > 12)
        .flat_map(|g| g.payload[12..].to_vec())
        .collect();
    let bits = entropy(&payload);
    check!(
        sent.len() >= 150 && got.len() >= 150 && bits > 7.9,
        "after the rotation media still flows phone to phone: {} packets alice -> bob, {} bob -> alice, payload entropy {bits:.3} bits/byte (SRTP, not plain PCMU)",
        sent.len(),
        got.len()
    );
    for who in ["alice", "bob"] {
        let errors = tb
            .logs(who)
            .lines()
            .filter(|l| {
                l.contains("failed to decrypt RTP packet")
                    || l.contains("srtp: failed to unprotect")
            })
            .count();
        check!(
            errors == 0,
            "{who}'s baresip reported no SRTP decryption failure of RTP"
        );
    }
}

fn the_core(tb: &Testbed, core_pcap: &[u8], at_alice: &[Datagram], call: &str) {
    let plain = plain_sdp(at_alice, ip4(&tb.addr(5, 31)), call);
    let keys = srtp_keys(&plain.iter().collect::<Vec<_>>());
    check!(
        plain.len() >= 6 && keys.len() >= 2,
        "alice and edge A exchanged plain SDP ({} bodies, {} distinct SRTP keys): the needles for the core",
        plain.len(),
        keys.len()
    );
    let mut needles: Vec<String> = [
        "v=0", "m=audio", "c=IN IP4", "a=crypto", "inline:", "RTP/SAVP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    needles.push(tb.addr(5, 31));
    needles.push(tb.addr(6, 32));
    needles.extend(keys);
    let grams = pcap_datagrams(core_pcap);
    let hits = find_plaintext(core_pcap, &grams, &needles);
    let msgs: Vec<SipMsg> = grams
        .iter()
        .map(|g| SipMsg::parse(false, &g.payload))
        .filter(|m| m.call_id() == call)
        .collect();
    let methods: std::collections::BTreeSet<&str> = msgs
        .iter()
        .filter(|m| m.is_request())
        .map(|m| m.method())
        .collect();
    check!(
        msgs.len() >= 12 && methods.len() == 3 && hits.is_empty(),
        "the core capture ({} datagrams of the call: {methods:?}; {} in all): no SDP line, media address or SRTP key of the call: {hits:?}",
        msgs.len(),
        grams.len()
    );
    let bodies: Vec<&SipMsg> = msgs.iter().filter(|m| !m.body.is_empty()).collect();
    check!(
        bodies.len() >= 6
            && bodies.iter().all(|m| m
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/pkcs7-mime"))),
        "every body of the call on the core is S/MIME ({} messages with a body)",
        bodies.len()
    );
    let kinds: Vec<&str> = msgs
        .iter()
        .filter(|m| m.is_request() && m.method() == "INVITE")
        .map(|m| {
            let ct = m.header("content-type").unwrap_or("");
            if ct.contains("authEnveloped-data") {
                "AuthEnvelopedData"
            } else if ct.contains("encrypted-data") {
                "EncryptedData"
            } else {
                "other"
            }
        })
        .collect();
    check!(
        kinds == ["AuthEnvelopedData", "EncryptedData", "AuthEnvelopedData"],
        "the INVITEs on the core: offer, hold, resume = {kinds:?} (the hold under the call's key, the resume a new wrapped key)"
    );
}

fn who_read_what(tb: &Testbed, call: &str) {
    let p1: Vec<P1Line> = parse_p1(&tb.logs("p1"))
        .into_iter()
        .filter(|l| l.call == call)
        .collect();
    let find = |what: &str, gen: &str| {
        p1.iter()
            .find(|l| l.what == what && l.decrypted && l.get("gen") == gen)
            .unwrap_or_else(|| panic!("FAILED: p1 has no decrypted {what} gen={gen}: {p1:#?}"))
    };
    let a_media = tb.addr(5, 31);
    let b_media = tb.addr(6, 32);
    let offer = find("INVITE", "1");
    check!(
        offer.get("source") == "wrapped"
            && offer.get("media").starts_with(&format!("{a_media}:"))
            && offer.get("signature") == "valid"
            && offer.get("signer") == ALICE_CN,
        "p1 decrypted alice's offer with its own key: media {}, signature {} by {}",
        offer.get("media"),
        offer.get("signature"),
        offer.get("signer")
    );
    let answer = find("INVITE200", "1");
    check!(
        answer.get("source") == "cache" && answer.get("media").starts_with(&format!("{b_media}:")),
        "p1 decrypted bob's answer with the cached dialog key: media {} (worker {}, the offer's {})",
        answer.get("media"),
        answer.pid,
        offer.pid
    );
    let b_offer = of_call(&parse_edge(&tb.logs("edgeb")), call)
        .into_iter()
        .find(|l| l.what == "INVITE" && l.action == "opened");
    check!(
        b_offer.as_ref().is_some_and(|l| l.get("source") == "wrapped"
            && l.get("signature") == "valid"
            && l.get("signer") == ALICE_CN),
        "edge B opened the offer with bob's key and verified alice's signature (edge A signs, WITH_SIGN)"
    );
    check!(
        p1.iter().all(|l| l.decrypted),
        "p1 decrypted every body of the call ({} lines)",
        p1.len()
    );
    let p1_log = tb.logs("p1");
    check!(
        !p1_log.contains("a=crypto") && !p1_log.contains("inline:"),
        "p1's log holds media facts, no SDP text or SRTP key"
    );
    let p2: Vec<_> = parse_p2(&tb.logs("p2"))
        .into_iter()
        .filter(|l| l.call == call)
        .collect();
    let p2_log = tb.logs("p2");
    let leaks: Vec<&str> = [
        "v=0",
        "a=crypto",
        "inline:",
        a_media.as_str(),
        b_media.as_str(),
    ]
    .into_iter()
    .filter(|s| p2_log.contains(s))
    .collect();
    check!(
        p2.len() >= 4 && leaks.is_empty(),
        "p2 forwarded the call ({} lines: method, Call-ID, body size) and its log has no SDP, key or media address: {leaks:?}",
        p2.len()
    );
}

fn reinvites_and_rotation(tb: &Testbed, call: &str) {
    let p1: Vec<P1Line> = parse_p1(&tb.logs("p1"))
        .into_iter()
        .filter(|l| l.call == call)
        .collect();
    let invites: Vec<&P1Line> = p1.iter().filter(|l| l.what == "INVITE").collect();
    let hold = invites.get(1);
    let resume = invites.get(2);
    check!(
        hold.is_some_and(|l| l.get("gen") == "1" && l.get("source") == "cache"),
        "p1 read the hold re-INVITE with the call's key (EncryptedData, generation 1, source {})",
        hold.map(|l| l.get("source")).unwrap_or("none")
    );
    check!(
        resume.is_some_and(|l| l.get("gen") == "2" && l.get("source") == "wrapped")
            && p1.iter().any(|l| l.what == "INVITE200" && l.get("gen") == "2"),
        "p1 took the resume re-INVITE's new key (generation 2, wrapped for it) and read its answer under it"
    );
    let a = of_call(&parse_edge(&tb.logs("edgea")), call);
    let b = of_call(&parse_edge(&tb.logs("edgeb")), call);
    let a_invites: Vec<&EdgeLine> = a
        .iter()
        .filter(|l| l.what == "INVITE" && l.action == "sealed")
        .collect();
    let sealings: Vec<String> = a_invites
        .iter()
        .map(|l| format!("{}/gen{}", l.get("sealing"), l.get("gen")))
        .collect();
    check!(
        sealings == ["offer/gen1", "in-dialog/gen1", "rotation/gen2"],
        "edge A sealed alice's INVITEs as {sealings:?} (the hold under the same key, the resume rotated)"
    );
    check!(
        count(&b, "INVITE", "opened", "1") == 2
            && count(&b, "INVITE", "opened", "2") == 1
            && count(&b, "INVITE200", "sealed", "2") >= 1,
        "edge B opened the offer and the hold (generation 1) and the resume (generation 2), and sealed bob's answer under generation 2"
    );
    let (p1_rot, b_rot, a_rot) = (
        tb.stat("p1", "rotations"),
        tb.stat("edgeb", "rotations"),
        tb.stat("edgea", "edge_rotations"),
    );
    check!(
        p1_rot >= 1 && a_rot == 1,
        "statistics: edge A edge_rotations {a_rot}, p1 rotations (proven) {p1_rot}, edge B rotations {b_rot}"
    );
}

fn carol_refused(tb: &Testbed, at_alice: &[Datagram], carol: &str) {
    let a_media = ip4(&tb.addr(5, 31));
    let local = sip_of(at_alice, |g| g.src != a_media && g.dst != a_media);
    let refusal = local
        .iter()
        .map(|(_, m)| m)
        .find(|m| m.call_id() == carol && m.status() == Some(606));
    let warning = refusal.and_then(|m| m.header("warning")).unwrap_or("");
    check!(
        refusal.is_some() && warning.contains("no certificate for the callee"),
        "alice's phone received {} with Warning: {warning}",
        refusal.map(|m| m.start.as_str()).unwrap_or("no 606")
    );
    check!(
        !tb.logs("p1").contains(carol) && !tb.logs("p2").contains(carol),
        "the call to carol never left edge A (p1 and p2 never saw it)"
    );
    let a = of_call(&parse_edge(&tb.logs("edgea")), carol);
    check!(
        a.first()
            .is_some_and(|l| l.action == "refused" && l.get("code") == "149"),
        "edge A logged it refused (code 149: {})",
        a.first().map(|l| l.get("error")).unwrap_or("")
    );
}

fn the_recording(tb: &Testbed, at_alice: &[Datagram], call: &str, hangup: SystemTime) {
    let r = rec::finished(tb, call, Duration::from_secs(10));
    rec::started_by_p1(tb, &r, call);
    rec::manifest_streams(tb, &r);
    rec::tones(&r);
    rec::every_packet(tb, &r, at_alice, call);
    rec::stopped_at_bye(tb, &r, hangup);
    let plain = plain_sdp(at_alice, ip4(&tb.addr(5, 31)), call);
    rec::no_key(tb, &r, &srtp_keys(&plain.iter().collect::<Vec<_>>()));
}
