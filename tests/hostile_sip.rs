//! Hostile SIP traffic through a real trusted Kamailio proxy (P1: cfg-examples/trusted-proxy.cfg
//! with build/sipsd.so), forwarding to a UDP sink that records what P1 relays and answers it
//! (tests/support; the messages are made by tests/hostile/mod.rs).
//!
//! More than 1,000 malformed or adversarial messages — truncated, over-long and absurd-length
//! DER, bit flips, deep and huge multipart bodies, wrong content types, invalid base64, bodies
//! near the UDP limit, Content-IDs that point nowhere, hostile `Disclose-To` values,
//! EncryptedData for unknown dialogs, too many recipients — after a warm-up batch. Checks, each
//! printed:
//! - no Kamailio process died (the same PIDs before and after);
//! - every message reached the next hop with its body byte for byte (default `on_error`:
//!   forward), and P1 logged a not-decrypted line for each with the expected result class;
//! - the limits set through the configuration (`max_body_size`, `max_parts`, `max_depth`,
//!   `max_recipients`) applied (`SD_ERR_BODY_LIMIT` = 121);
//! - the error counter (RPC `sipsd.stats` and statistic `sipsd:errors`) grew by exactly the
//!   number of failed messages;
//! - shared memory (`core.shmmem`) and the RSS of P1's processes did not grow beyond a small
//!   bound between the warm-up batch and the end;
//! - a new key for a known dialog is refused from outside the dialog and, inside it, taken only
//!   with the rotation proof under the current key;
//! - P1's log holds no key, plaintext or SDES key marker.
//!
//! Needs kamailio, kamcmd and build/sipsd.so (make); otherwise SKIPPED unless
//! SIPSD_REQUIRE_E2E=1. Run: `cargo test --test hostile_sip -- --nocapture`.

#[macro_use]
mod support;
mod hostile;

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sipsd::crypto::cms::{self, Cek, ContentAlg, IdKind, Recipient, RsaPadding};

use hostile::{
    hostile_batch, Env, Expect, Hostile, BODY_LIMIT, MAX_BODY, MAX_DEPTH, MAX_PARTS,
    MAX_RECIPIENTS, SMIME_AUTH, SMIME_ENC,
};
use support::kamailio::{next_hop, Kamailio, P1};
use support::p1log::by_call;
use support::ports::ADDR;
use support::rng::Rng;
use support::sip::{reply, Peer, Request};
use support::tools::{Need, Tools};
use support::work::WorkDir;

/// The next hop: records what P1 relays and answers it. INVITEs are refused (the failure route
/// then forgets the dialog), except the rotation scenario's, whose dialog must live on.
fn sink() -> Peer {
    Peer::answering(|m| match m.method() {
        "ACK" => None,
        "INVITE" if !m.call_id().starts_with("rotation") => Some(reply(m, 486, "Busy Here")),
        _ => Some(reply(m, 200, "OK")),
    })
}

/// A request from mallory to the sink's address, through P1 (in-dialog: routed to P1).
#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    call_id: &str,
    from_tag: &str,
    to_tag: Option<&str>,
    cseq: u32,
    p1: &Kamailio,
    sink: &Peer,
    content_type: &str,
    transfer_encoding: Option<&str>,
    disclose_to: Option<&str>,
    body: &[u8],
) -> Request {
    let mut r = Request::new(method, call_id)
        .uri(&format!("sip:bob@{ADDR}:{}", sink.port()))
        .parties("sip:mallory@attacker.example", "sip:bob@example.net")
        .with_from_tag(from_tag)
        .cseq(cseq);
    if let Some(t) = to_tag {
        r = r.in_dialog(t).route(p1.port);
    }
    if let Some(d) = disclose_to {
        r = r.header("Disclose-To", d);
    }
    r = r.body(content_type, body);
    if let Some(te) = transfer_encoding {
        r = r.header("Content-Transfer-Encoding", te);
    }
    r
}

/// Sends a batch, at most `window` messages ahead of what the sink has seen.
fn send_batch(batch: &[Hostile], client: &Peer, p1: &Kamailio, sink: &Peer) {
    let window = 16;
    let base = sink.calls_seen();
    for (i, h) in batch.iter().enumerate() {
        let (method, to_tag) = if h.in_dialog {
            ("MESSAGE", Some("t-hostile"))
        } else {
            ("INVITE", None)
        };
        let msg = request(
            method,
            &h.call_id,
            "f-hostile",
            to_tag,
            1,
            p1,
            sink,
            &h.content_type,
            h.transfer_encoding.as_deref(),
            h.disclose_to.as_deref(),
            &h.body,
        )
        .build(client.port());
        client.send(p1.port, &msg);
        if msg.len() > 8192 {
            // A large datagram may be dropped by a full socket buffer (UDP): wait for it and
            // retransmit like a user agent would (T1 = 500 ms).
            for _ in 0..6 {
                if sink.wait_until(Duration::from_millis(500), |l| {
                    l.first_request.contains_key(&h.call_id)
                }) {
                    break;
                }
                client.send(p1.port, &msg);
            }
        }
        sink.wait_until(Duration::from_secs(5), |l| {
            l.first_request.len() + window > base + i
        });
    }
    sink.wait_until(Duration::from_secs(10), |l| {
        l.first_request.len() >= base + batch.len()
    });
}

#[test]
fn hostile_traffic_through_kamailio() {
    let _serial = support::serial();
    let Some(t) = Tools::require(
        "hostile_sip",
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let started = Instant::now();
    let dir = WorkDir::new("hostile");

    let vectors = t.root.join("tests/data/vectors/msgs");
    // A plaintext with markers that must never reach the log.
    const SDES: &str = "WVNfUmVhbGx5U2VjcmV0U0RFU0tleU1hcmtlcjEyMzQ1";
    let sdp = format!(
        "v=0\r\no=alice 1 1 IN IP4 198.51.100.7\r\ns=PLAINTEXT-MARKER-7f3a\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES}\r\n"
    );
    let inner = format!("Content-Type: application/sdp\r\n\r\n{sdp}").into_bytes();
    let env = Env {
        gcm: fs::read(vectors.join("gcm256-oaep-callee-proxy1.der")).expect("vector"),
        encrypted: fs::read(vectors.join("encrypteddata-cbc256.der")).expect("vector"),
        sdp: fs::read(vectors.join("offer.sdp")).expect("vector"),
        proxy1_cert: t.keys.join("proxy1.crt"),
    };

    // Replies from P1 to the client are recorded and not looked at.
    let client = Peer::bind();
    let sink = sink();
    let limits = [
        ("SIPSD_MAX_BODY_SIZE", MAX_BODY.to_string()),
        ("SIPSD_MAX_PARTS", MAX_PARTS.to_string()),
        ("SIPSD_MAX_DEPTH", MAX_DEPTH.to_string()),
        ("SIPSD_MAX_RECIPIENTS", MAX_RECIPIENTS.to_string()),
    ];
    let hop = next_hop(sink.port());
    let mut defines = vec![("NEXT_HOP", Some(hop.as_str()))];
    defines.extend(limits.iter().map(|(k, v)| (*k, Some(v.as_str()))));
    let p1 = P1::start(&t, &dir, &defines);
    println!(
        "P1 (pid {}) on {ADDR}:{}, sink {}, limits body {MAX_BODY} parts {MAX_PARTS} depth {MAX_DEPTH} recipients {MAX_RECIPIENTS}",
        p1.pid(),
        p1.port,
        sink.port()
    );
    let pids_before = p1.pids();
    check!(
        pids_before.len() > 4,
        "P1 runs {} processes",
        pids_before.len()
    );

    // 1. Rotation and legitimate use through Kamailio, with keys made here.
    let proxy1 = Recipient::from_cert_file(
        &env.proxy1_cert,
        IdKind::IssuerSerial,
        RsaPadding::OaepSha256,
    )
    .expect("proxy1 cert");
    let k1 = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let k2 = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let invite_k1 = cms::seal(&inner, std::slice::from_ref(&proxy1), &k1).expect("seal");
    // K2 rotates with the proof (a KEKRecipientInfo under K1); K3 is a new key without one.
    let invite_k2 =
        cms::seal(&inner, &[proxy1.clone(), cms::proof_recipient(&k1)], &k2).expect("seal");
    let k3 = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let invite_k3 = cms::seal(&inner, std::slice::from_ref(&proxy1), &k3).expect("seal");
    let enc_k1 = cms::seal_encrypted(&inner, &k1).expect("seal");
    let enc_k2 = cms::seal_encrypted(&inner, &k2).expect("seal");
    let cid = "rotation-1@hostile.example";
    /// method, content type, To tag, body, what it checks
    type Step<'a> = (&'a str, &'a str, Option<&'a str>, &'a [u8], &'a str);
    let steps: [Step; 6] = [
        (
            "INVITE",
            SMIME_AUTH,
            None,
            &invite_k1,
            "INVITE wraps K1: stored, gen 1",
        ),
        (
            "MESSAGE",
            SMIME_ENC,
            Some("t1"),
            &enc_k1,
            "in-dialog EncryptedData under K1: cache, gen 1",
        ),
        (
            "INVITE",
            SMIME_AUTH,
            None,
            &invite_k2,
            "out-of-dialog INVITE wrapping K2 for the same dialog: rejected (146), proof or not",
        ),
        (
            "MESSAGE",
            SMIME_ENC,
            Some("t1"),
            &enc_k1,
            "K1 still the dialog key after the outside attempt",
        ),
        (
            "INVITE",
            SMIME_AUTH,
            Some("t1"),
            &invite_k3,
            "in-dialog re-INVITE wrapping K3 without a rotation proof: rejected (145)",
        ),
        (
            "INVITE",
            SMIME_AUTH,
            Some("t1"),
            &invite_k2,
            "in-dialog re-INVITE wrapping K2 with the proof under K1: rotation to gen 2",
        ),
    ];
    let send = |method: &str, ct: &str, to_tag: Option<&str>, cseq: u32, body: &[u8]| {
        let m = request(
            method, cid, "f-rot", to_tag, cseq, &p1, &sink, ct, None, None, body,
        );
        client.send(p1.port, &m.build(client.port()));
    };
    for (n, (method, ct, to_tag, body, _)) in steps.iter().enumerate() {
        let before = sink.requests();
        send(method, ct, *to_tag, n as u32 + 1, body);
        sink.wait_until(Duration::from_secs(5), |l| l.requests != before);
    }
    send("MESSAGE", SMIME_ENC, Some("t1"), 9, &enc_k2);
    std::thread::sleep(Duration::from_millis(300));
    let lines = by_call(&p1.log_lines());
    let rot: Vec<(bool, u32, Option<u32>)> = lines
        .get(cid)
        .map(|v| {
            v.iter()
                .map(|l| (l.decrypted, l.code(), l.generation()))
                .collect()
        })
        .unwrap_or_default();
    let expect_rot = [
        (true, 0, Some(1)),
        (true, 0, Some(1)),
        (false, 146, None),
        (true, 0, Some(1)),
        (false, 145, None),
        (true, 0, Some(2)),
        (true, 0, Some(2)),
    ];
    for (i, want) in expect_rot.iter().enumerate() {
        let what = steps
            .get(i)
            .map_or("EncryptedData under K2 after the rotation: gen 2", |s| s.4);
        check!(
            rot.get(i) == Some(want),
            "rotation through P1: {what} (log {:?})",
            rot.get(i)
        );
    }

    // 2. Warm-up batch, then the measured batch.
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
    let warm = hostile_batch(&env, &mut rng, "warm", 20);
    send_batch(&warm, &client, &p1, &sink);
    let stats_warm = p1.rpc_fields(&["sipsd.stats"]);
    let shm_warm = p1.settled_shm();
    let rss_warm = p1.rss_kib();
    println!(
        "warm-up: {} messages; shm real_used {shm_warm} B, RSS {rss_warm} KiB",
        warm.len()
    );

    let batch = hostile_batch(&env, &mut rng, "main", 100);
    let t_batch = Instant::now();
    send_batch(&batch, &client, &p1, &sink);
    println!(
        "main batch: {} messages sent in {:?}",
        batch.len(),
        t_batch.elapsed()
    );
    check!(
        batch.len() >= 1000,
        "at least 1000 hostile messages ({})",
        batch.len()
    );

    // 3. Forwarded unchanged.
    let forwarded = sink.first_bodies();
    let mut per_cat: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    for h in warm.iter().chain(&batch) {
        let e = per_cat.entry(h.category).or_default();
        e.0 += 1;
        match forwarded.get(&h.call_id) {
            Some(b) if *b == h.body => e.1 += 1,
            Some(_) => changed.push(h.call_id.clone()),
            None => missing.push(h.call_id.clone()),
        }
    }
    for (cat, (sent, same)) in &per_cat {
        println!("    {cat:<22} sent {sent:>4}, forwarded byte-identical {same:>4}");
    }
    check!(
        missing.is_empty() && changed.is_empty(),
        "every hostile message reached the next hop with its body unchanged (missing {}: {:?}, changed {}: {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        changed.len(),
        changed.iter().take(3).collect::<Vec<_>>()
    );

    // 4. P1's verdict on each, and the limits.
    let lines = by_call(&p1.log_lines());
    let mut errors_main = 0u64;
    let mut decrypted_main = 0u64;
    let mut wrong = Vec::new();
    let mut limit_hits = 0;
    for h in &batch {
        let verdict = lines
            .get(&h.call_id)
            .and_then(|v| v.first())
            .map(|l| (l.decrypted, l.code(), l.generation()));
        let ok = match (verdict, h.expect) {
            (Some((false, c, _)), Expect::Error) => c >= 100,
            (Some((false, c, _)), Expect::Code(want)) => c == want,
            (Some((false, c, _)), Expect::NoDecrypt) => c == 1 || c == 2 || c >= 100,
            (Some(_), Expect::Any) => true,
            _ => false,
        };
        if let Some((true, _, _)) = verdict {
            decrypted_main += 1;
        }
        if let Some((false, c, _)) = verdict {
            if c >= 100 {
                errors_main += 1;
            }
            if c == BODY_LIMIT {
                limit_hits += 1;
            }
        }
        if !ok {
            wrong.push((h.category, h.call_id.clone(), verdict));
        }
    }
    check!(
        wrong.is_empty(),
        "P1 logged the expected verdict for every message; only bit-flipped ones decrypted ({decrypted_main}, flips outside what proxy1 uses) ({} wrong: {:?})",
        wrong.len(),
        wrong.iter().take(5).collect::<Vec<_>>()
    );
    check!(
        limit_hits > 0,
        "configured limits applied through Kamailio: {limit_hits} messages refused with code {BODY_LIMIT} (body > {MAX_BODY}, parts > {MAX_PARTS}, depth > {MAX_DEPTH}, recipients > {MAX_RECIPIENTS})"
    );

    // 5. Counters.
    let stats_end = p1.rpc_fields(&["sipsd.stats"]);
    let d =
        |k: &str| stats_end.get(k).copied().unwrap_or(0) - stats_warm.get(k).copied().unwrap_or(0);
    check!(
        d("errors") == errors_main,
        "RPC sipsd.stats errors grew by {} = the {errors_main} messages P1 logged as failed",
        d("errors")
    );
    check!(
        d("decrypted") == decrypted_main,
        "RPC sipsd.stats decrypted grew by {} = the messages P1 logged as decrypted (bit flips outside proxy1's parts, mislabelled smime-type)",
        d("decrypted")
    );
    let stat = p1.statistics("sipsd:").get("sipsd:errors").copied();
    check!(
        stat.is_some() && stat == stats_end.get("errors").copied(),
        "statistic sipsd:errors agrees with the RPC (sipsd:errors = {stat:?})"
    );

    // 6. Processes and memory.
    let pids_after = p1.pids();
    check!(
        pids_after == pids_before,
        "no Kamailio process died or was replaced ({} PIDs, same before and after)",
        pids_after.len()
    );
    let shm_end = p1.settled_shm();
    let rss_end = p1.rss_kib();
    let shm_growth = shm_end.saturating_sub(shm_warm);
    let rss_growth = rss_end.saturating_sub(rss_warm);
    check!(
        shm_growth < 64 * 1024,
        "shared memory after {} more messages: {shm_warm} -> {shm_end} B (growth {shm_growth} B < 64 KiB)",
        batch.len()
    );
    check!(
        rss_growth < 4096,
        "private RSS (RssAnon) of P1's processes: {rss_warm} -> {rss_end} KiB (growth {rss_growth} KiB < 4 MiB)"
    );

    // 7. Log hygiene: no key, plaintext or SDES key in P1's log.
    let log = p1.log_text();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let psk = fs::read_to_string(t.keys.join("psk-proxy1.hex")).unwrap_or_default();
    let markers = [
        ("SDES key", SDES.to_string()),
        (
            "plaintext session name",
            "PLAINTEXT-MARKER-7f3a".to_string(),
        ),
        (
            "plaintext a=crypto line",
            "AES_CM_128_HMAC_SHA1_80".to_string(),
        ),
        ("K1 hex", hex(k1.as_bytes())),
        ("K1 HEX", hex(k1.as_bytes()).to_uppercase()),
        ("K1 base64", b64(k1.as_bytes())),
        ("K2 hex", hex(k2.as_bytes())),
        ("PEM private key", "PRIVATE KEY".to_string()),
        ("pre-shared key", psk.trim().to_string()),
    ];
    for (what, m) in &markers {
        check!(
            !m.is_empty() && !log.contains(m.as_str()),
            "P1's log ({} lines) does not contain the {what}",
            log.lines().count()
        );
    }
    // Speed belongs to the benchmarks (docs/BENCHMARKS.md), not to a test: only reported.
    println!("finished in {:?}", started.elapsed());
}
