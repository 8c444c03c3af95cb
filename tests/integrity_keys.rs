//! Dialog key integrity through a real trusted Kamailio (P1: cfg-examples/trusted-proxy.cfg
//! with build/sipsd.so, `WITH_REPLACE_BODY`, `SIPSD_ROTATE_MAX_USES=4`), a next hop that
//! records and answers, and a stranger who knows every dialog's Call-ID and tags (they travel
//! in clear) but not its key. Each attack of docs/SECURITY.md §6, each check printed:
//!
//! 1. key replacement: an INVITE, re-INVITE, UPDATE and MESSAGE for a live dialog wrapping the
//!    stranger's own key for proxy1 are refused (146 / 145), spend no RSA operation, and the
//!    dialog keeps generation 1 and its media address;
//! 2. a rotation with the proof under the current key is taken (generation 2, no RSA
//!    operation); the old key then opens nothing;
//! 3. garbage in-dialog bodies neither count as uses nor burn the key (`rotate_max_uses` = 4
//!    counts only bodies that authenticated), and a real body replayed (or retransmitted)
//!    opens again but is one use;
//! 4. CBC in a known dialog: good and bad padding get the same answer (refused unread, 147);
//! 5. a body naming proxy1 in 16 RecipientInfos costs one RSA operation; a multipart body
//!    whose parts share one key costs one;
//! 6. a replayed body routed by the stranger to a next hop of its choice is not relayed in
//!    clear (the configured next hop gets plaintext, the stranger ciphertext).
//!
//! Every counter comes from RPC `sipsd.stats`. Against the module of an older build
//! (`SIPSD_BUILD=...`) these checks fail: that is what they are for.
//! Run: `cargo test --test integrity_keys -- --nocapture`.

#[macro_use]
mod support;

use std::collections::BTreeMap;

use sipsd::crypto::cms::{self, Cek, ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::sip::body::{build_multipart, BodyOptions, SipBody};

use support::dialog::{last, received, sdp, through, Dialog};
use support::kamailio::{next_hop, Kamailio, P1};
use support::ports::ADDR;
use support::rng::Rng;
use support::sip::{reply, Peer, Request, SMIME_AUTH, SMIME_ENC, SMIME_ENV};
use support::tools::{Need, Tools};
use support::vectors::cert_recipient;
use support::work::WorkDir;

fn cert(who: &str) -> Recipient {
    cert_recipient(who, IdKind::IssuerSerial, RsaPadding::OaepSha256)
}

fn stats(p1: &Kamailio) -> BTreeMap<String, u64> {
    p1.rpc_fields(&["sipsd.stats"])
}

fn stat(s: &BTreeMap<String, u64>, name: &str) -> u64 {
    *s.get(name)
        .unwrap_or_else(|| panic!("sipsd.stats has no {name}: {s:?}"))
}

/// The stranger's body: its own fresh key, wrapped for proxy1 (and the callee), its own SDP.
fn strangers_body() -> SipBody {
    let (_, body) = sipsd::engine::ua::UaSession::offer(
        "application/sdp",
        &sdp("203.0.113.66", 6666),
        &[cert("callee"), cert("proxy1")],
        ContentAlg::Aes256Gcm,
        None,
        &BodyOptions::default(),
    )
    .expect("seal");
    body
}

#[test]
fn dialog_keys_resist_strangers() {
    let _serial = support::serial();
    let Some(t) = Tools::require(
        "integrity_keys",
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let dir = WorkDir::new("integrity-keys");
    let sink = Peer::answering(|m| match m.method() {
        "ACK" => None,
        _ => Some(reply(m, 200, "OK")),
    });
    let caller = Peer::bind();
    let stranger = Peer::bind();
    // Somewhere the stranger would like the plaintext to go.
    let loot = Peer::answering(|m| Some(reply(m, 200, "OK")));
    let hop = next_hop(sink.port());
    let p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_REPLACE_BODY", None),
            ("SIPSD_ROTATE_MAX_USES", Some("4")),
        ],
    );
    println!(
        "P1 (pid {}) on {ADDR}:{}, next hop {}, stranger's drop box {}",
        p1.pid(),
        p1.port,
        sink.port(),
        loot.port()
    );
    let both = [cert("callee"), cert("proxy1")];

    // --- 0. A legitimate call: the offer, then the answer under the dialog key. ----------------
    let (mut d1, invite) = Dialog::offer(
        "d1@integrity",
        &sdp("192.0.2.10", 40000),
        &both,
        ContentAlg::Aes256Gcm,
        &p1,
        sink.port(),
    );
    let pids = p1.pids();
    let at_hop = through(&p1, &caller, &sink, &invite);
    let l = last(&p1, "d1@integrity", "INVITE", 1);
    check!(
        l.decrypted
            && l.generation() == Some(1)
            && l.get("source") == "wrapped"
            && l.get("media") == "192.0.2.10:40000",
        "the offer: gen=1 source=wrapped media=192.0.2.10:40000 ({l:?})"
    );
    check!(
        at_hop.header("content-type") == Some("application/sdp")
            && at_hop.body_trimmed().starts_with(b"v=0"),
        "the configured next hop (plaintext_next_hop) gets the plaintext SDP"
    );
    let before = stats(&p1);

    // --- 1. Key replacement by a stranger, four ways. ------------------------------------------
    let evil = strangers_body();
    let attacks: [(&str, Request, u32); 4] = [
        (
            "INVITE (no To tag)",
            d1.initial("INVITE", 1).body(&evil.content_type, &evil.body),
            146,
        ),
        (
            "re-INVITE (made-up To tag)",
            d1.initial("INVITE", 50)
                .in_dialog("made-up")
                .route(p1.port)
                .body(&evil.content_type, &evil.body),
            145,
        ),
        (
            "UPDATE",
            d1.initial("UPDATE", 51)
                .in_dialog("peer")
                .route(p1.port)
                .body(&evil.content_type, &evil.body),
            145,
        ),
        (
            "MESSAGE",
            d1.initial("MESSAGE", 52)
                .in_dialog("peer")
                .route(p1.port)
                .body(&evil.content_type, &evil.body),
            145,
        ),
    ];
    let mut n_invite = 1;
    for (what, req, code) in &attacks {
        through(&p1, &stranger, &sink, req);
        let kind = req.method.as_str();
        if kind == "INVITE" {
            n_invite += 1;
        }
        let count = if kind == "INVITE" { n_invite } else { 1 };
        let l = last(&p1, "d1@integrity", kind, count);
        check!(
            !l.decrypted && l.code() == *code,
            "stranger's {what} wrapping its own key for proxy1: refused, code {code} ({l:?})"
        );
    }
    let after = stats(&p1);
    check!(
        stat(&after, "rsa_ops") == stat(&before, "rsa_ops"),
        "the four refusals cost no RSA operation (rsa_ops {} -> {})",
        stat(&before, "rsa_ops"),
        stat(&after, "rsa_ops")
    );
    check!(
        stat(&after, "initial_collisions") == stat(&before, "initial_collisions") + 1
            && stat(&after, "rotations_refused") == stat(&before, "rotations_refused") + 3,
        "counted: initial_collisions +1, rotations_refused +3"
    );
    let msg = d1.encrypted("MESSAGE", &sdp("192.0.2.10", 40000));
    through(&p1, &caller, &sink, &msg);
    let l = last(&p1, "d1@integrity", "MESSAGE", 2);
    check!(
        l.decrypted && l.generation() == Some(1) && l.get("source") == "cache"
            && l.get("media") == "192.0.2.10:40000",
        "the caller's next MESSAGE still opens under the original key: gen=1 media=192.0.2.10:40000"
    );
    check!(
        !p1.log_text().contains("203.0.113.66"),
        "P1 never read the stranger's media address"
    );

    // --- 2. A proven rotation is taken, without RSA. -------------------------------------------
    let old = d1.ua.cek().clone();
    let rsa = stat(&stats(&p1), "rsa_ops");
    let rot = d1.rotation("INVITE", &sdp("192.0.2.10", 40002), &both);
    through(&p1, &caller, &sink, &rot);
    let d1_current = rot.body.clone();
    n_invite += 1;
    let l = last(&p1, "d1@integrity", "INVITE", n_invite);
    check!(
        l.decrypted && l.generation() == Some(2) && l.get("media") == "192.0.2.10:40002",
        "re-INVITE with the rotation proof: gen=2 media=192.0.2.10:40002"
    );
    check!(
        stat(&stats(&p1), "rsa_ops") == rsa,
        "the rotation cost no RSA operation"
    );
    let stale = cms::seal_encrypted(b"old key", &old).expect("seal");
    let req = d1.request(
        "MESSAGE",
        &SipBody {
            content_type: SMIME_ENC.into(),
            transfer_encoding: None,
            disclose_to: None,
            body: stale,
        },
    );
    through(&p1, &caller, &sink, &req);
    let l = last(&p1, "d1@integrity", "MESSAGE", 3);
    check!(
        !l.decrypted && l.code() == 136,
        "a body under the replaced key no longer opens (136)"
    );

    // --- 3. Garbage does not wear a key out. ---------------------------------------------------
    let (mut d2, invite) = Dialog::offer(
        "d2@integrity",
        &sdp("192.0.2.20", 41000),
        &both,
        ContentAlg::Aes256Gcm,
        &p1,
        sink.port(),
    );
    through(&p1, &caller, &sink, &invite);
    let mut rng = Rng::new(0x1a7e_0f9a);
    let hits = stat(&stats(&p1), "cache_hits");
    for i in 0..6 {
        // A well-formed GCM EncryptedData under a random key: only the tag is wrong.
        let junk = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
        let mut body = cms::seal_encrypted(&rng.bytes(200), &junk).expect("seal");
        let last_byte = body.len() - 1;
        body[last_byte] ^= 1;
        let req = d2.request(
            "MESSAGE",
            &SipBody {
                content_type: SMIME_ENC.into(),
                transfer_encoding: None,
                disclose_to: None,
                body,
            },
        );
        through(&p1, &stranger, &sink, &req);
        let l = last(&p1, "d2@integrity", "MESSAGE", i + 1);
        assert!(!l.decrypted && l.code() == 136, "garbage {i}: {l:?}");
    }
    check!(
        stat(&stats(&p1), "cache_hits") == hits,
        "6 garbage EncryptedData for dialog 2: all 136, no use counted"
    );
    // the first real MESSAGE, then the stranger replays its body six times (or the network
    // retransmits it): it opens each time but is one use of the key
    let first = d2.encrypted("MESSAGE", b"v=0\r\n");
    through(&p1, &caller, &sink, &first);
    let repeats = stat(&stats(&p1), "cache_repeats");
    let replayed = SipBody {
        content_type: SMIME_ENC.into(),
        transfer_encoding: None,
        disclose_to: None,
        body: first.body.clone(),
    };
    for i in 0..6 {
        let req = d2.request("MESSAGE", &replayed);
        through(&p1, &stranger, &sink, &req);
        let l = last(&p1, "d2@integrity", "MESSAGE", 8 + i);
        assert!(l.decrypted && l.code() == 0, "replay {i}: {l:?}");
    }
    check!(
        stat(&stats(&p1), "cache_repeats") == repeats + 6,
        "the first real body replayed 6 times: opens each time, counted as repeats (cache_repeats +6), not as uses"
    );
    for i in 0..5 {
        // the first went before the replays (MESSAGE 7 of the dialog)
        let n = if i == 0 {
            7
        } else {
            let req = d2.encrypted("MESSAGE", b"v=0\r\n");
            through(&p1, &caller, &sink, &req);
            13 + i
        };
        let l = last(&p1, "d2@integrity", "MESSAGE", n);
        let want = if i < 4 { 0 } else { 143 };
        check!(
            l.code() == want && l.decrypted == (i < 4),
            "real MESSAGE {} of dialog 2 after the garbage and the replays: {}",
            i + 1,
            if i < 4 {
                "opens"
            } else {
                "key worn out after 4 real uses (143)"
            }
        );
    }

    // --- 4. CBC in a known dialog: no padding oracle. ------------------------------------------
    let (mut d3, invite) = Dialog::offer(
        "d3@integrity",
        &sdp("192.0.2.30", 42000),
        &both,
        ContentAlg::Aes256Cbc,
        &p1,
        sink.port(),
    );
    check!(
        invite.headers.iter().any(|(_, v)| v == SMIME_ENV),
        "dialog 3 opens with an AES-256-CBC EnvelopedData"
    );
    through(&p1, &caller, &sink, &invite);
    let good = d3.encrypted("MESSAGE", b"good padding");
    let good_body = good.body.clone();
    let mut bad_body = good_body.clone();
    let n = bad_body.len();
    bad_body[n - 1] ^= 0x55; // the last block: its padding no longer checks
    let bad = d3.request(
        "MESSAGE",
        &SipBody {
            content_type: SMIME_ENC.into(),
            transfer_encoding: None,
            disclose_to: None,
            body: bad_body,
        },
    );
    let fwd_good = through(&p1, &stranger, &sink, &good);
    let fwd_bad = through(&p1, &stranger, &sink, &bad);
    let (lg, lb) = (
        last(&p1, "d3@integrity", "MESSAGE", 1),
        last(&p1, "d3@integrity", "MESSAGE", 2),
    );
    check!(
        !lg.decrypted && !lb.decrypted && lg.code() == 147 && lb.code() == 147,
        "CBC EncryptedData with good and with bad padding: both refused unread (147, 147)"
    );
    check!(
        fwd_good.body == good_body
            && fwd_bad.header("content-type") == fwd_good.header("content-type"),
        "both forwarded the same way, encrypted: the sender learns nothing from the padding"
    );

    // --- 5. RSA work per message. ---------------------------------------------------------------
    let cek = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let many: Vec<Recipient> = (0..16).map(|_| cert("proxy1")).collect();
    let mut der = cms::seal(b"v=0\r\n", &many, &cek).expect("seal");
    // Spoil every RSA ciphertext (OCTET STRING of 256 bytes): each KTRI now fails to unwrap.
    let marker = [0x04, 0x82, 0x01, 0x00];
    let spots: Vec<usize> = der
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i + 4)
        .collect();
    for &i in &spots {
        der[i] ^= 0xff;
    }
    let req = Request::new("INVITE", "d4@integrity")
        .uri(&format!("sip:bob@{ADDR}:{}", sink.port()))
        .body(SMIME_AUTH, &der);
    let rsa = stat(&stats(&p1), "rsa_ops");
    through(&p1, &stranger, &sink, &req);
    let l = last(&p1, "d4@integrity", "INVITE", 1);
    let spent = stat(&stats(&p1), "rsa_ops") - rsa;
    check!(
        !l.decrypted && spots.len() == 16 && spent == 1,
        "16 spoiled KeyTransRecipientInfos naming proxy1: refused ({}) after {spent} RSA operation",
        l.code()
    );
    let parts: Vec<_> = (0..3)
        .map(|i| {
            let inner = format!("Content-Type: application/sdp\r\n\r\nv=0 part {i}\r\n");
            let der = cms::seal(inner.as_bytes(), &[cert("proxy1")], &cek).expect("seal");
            (SMIME_AUTH.to_string(), Some(format!("p{i}@d5")), None, der)
        })
        .collect();
    let (ct, body) = build_multipart(&parts);
    let req = Request::new("INVITE", "d5@integrity")
        .uri(&format!("sip:bob@{ADDR}:{}", sink.port()))
        .body(&ct, &body);
    let rsa = stat(&stats(&p1), "rsa_ops");
    through(&p1, &caller, &sink, &req);
    let l = last(&p1, "d5@integrity", "INVITE", 1);
    let spent = stat(&stats(&p1), "rsa_ops") - rsa;
    check!(
        l.decrypted && spent == 1,
        "3 encrypted parts under one key: all open after {spent} RSA operation"
    );

    // --- 6. A replayed body is not relayed in clear where the stranger wants it. ---------------
    // The caller's last offer (the rotation), replayed inside its dialog (P1 can open it: the
    // current key) and routed through P1 to the stranger's host.
    let replay = d1
        .initial("INFO", 60)
        .in_dialog("peer")
        .route(p1.port)
        .route(loot.port())
        .body(SMIME_AUTH, &d1_current);
    let refused = stat(&stats(&p1), "plaintext_refused");
    stranger.send(p1.port, &replay.build(stranger.port()));
    let got = received(&loot, "d1@integrity", "INFO", 60)
        .expect("the stranger's routed request reaches its drop box");
    let l = last(&p1, "d1@integrity", "INFO", 1);
    check!(
        l.decrypted && got.body == d1_current,
        "the replayed offer is read by P1 ({l:?}) but reaches the stranger's host byte for byte, encrypted"
    );
    // A new dialog id with a body P1 opens (the stranger's own key), routed the same way.
    let fresh = Request::new("INFO", "d6@integrity")
        .in_dialog("peer")
        .route(p1.port)
        .route(loot.port())
        .body(&evil.content_type, &evil.body);
    stranger.send(p1.port, &fresh.build(stranger.port()));
    let got = received(&loot, "d6@integrity", "INFO", 1).expect("second drop");
    check!(
        got.body == evil.body,
        "a new dialog's body sent to the stranger's host: relayed byte for byte, encrypted"
    );
    check!(
        stat(&stats(&p1), "plaintext_refused") >= refused + 2,
        "plaintext_refused counted both refusals"
    );
    check!(
        p1.pids() == pids,
        "no Kamailio process died ({} processes)",
        pids.len()
    );
}
