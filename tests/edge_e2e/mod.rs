//! The calls of tests/edge_e2e.rs after the first, on the same topology: one cancelled while
//! ringing, a signed offer changed after signing, and a call to a callee without a
//! certificate (refused, then sent in clear by an edge configured so).

use std::path::Path;
use std::time::Duration;

use sipsd::crypto::cms::signed::sign_detached;
use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::crypto::keys::{KeySpec, KeyStore, SignKeySpec};
use sipsd::engine::ua::UaSession;
use sipsd::sip::body::signed::multipart_signed;
use sipsd::sip::body::{mime_entity, BodyOptions};

use super::Topology;
use crate::support::kamailio::{next_hop, EdgeKamailio, Kamailio};
use crate::support::ports::ADDR;
use crate::support::procs::wait_for;
use crate::support::sip::{reply, Peer, Request};
use crate::support::tools::Tools;
use crate::support::vectors::cert_recipient;

/// A call alice cancels while bob's phone rings: the CANCEL passes the edges as it is, the
/// INVITE fails with 487, and every edge and proxy forgets the call's key.
pub fn cancelled_call(net: &Topology) {
    println!("  -- a call cancelled while ringing");
    let sdp = b"v=0\r\no=alice 5 5 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40006 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUxJQ0VTX1NSVFBfS0VZX0ZPUl9USEVfVEVTVF8x\r\n";
    // bob's and alice's SIPp are gone: these peers take their addresses
    let bob = Peer::answering_at(net.bob_port, |m| match m.method() {
        "INVITE" => Some(reply(m, 180, "Ringing")),
        "CANCEL" => Some(reply(m, 200, "OK")),
        _ => None,
    });
    let alice = Peer::bind_at(net.alice_port);
    let call = format!("cancel-{}@example.net", std::process::id());
    let invite = Request::new("INVITE", &call)
        .uri("sip:bob@example.net")
        .parties("sip:alice@example.net", "sip:bob@example.net")
        .body("application/sdp", sdp);
    alice.send(net.edge_a.port, &invite.build(alice.port()));
    let at_bob = bob.wait(Duration::from_secs(10), |m| {
        m.call_id() == call && m.is_request() && m.method() == "INVITE"
    });
    let at_bob = at_bob.unwrap_or_else(|| panic!("FAILED: the INVITE never reached bob"));
    check!(
        at_bob.body == sdp && at_bob.header("content-type") == Some("application/sdp"),
        "bob's phone rings with alice's plain SDP"
    );
    let ringing = alice.wait(Duration::from_secs(5), |m| {
        m.call_id() == call && m.status() == Some(180)
    });
    check!(
        ringing.is_some(),
        "alice hears the 180 Ringing through both edges"
    );
    let keys = |want: u64| {
        wait_for(Duration::from_secs(3), || {
            [&net.edge_a, &net.p1, &net.edge_b]
                .iter()
                .all(|k| k.stat("cache_entries") == want)
        })
    };
    check!(
        keys(1),
        "while it rings, edge A, P1 and edge B each hold the call's key"
    );
    let ended = |k: &Kamailio| k.stat("dialogs_ended");
    let before = [ended(&net.edge_a), ended(&net.p1), ended(&net.edge_b)];
    let cancel = Request::new("CANCEL", &call)
        .uri("sip:bob@example.net")
        .parties("sip:alice@example.net", "sip:bob@example.net")
        .branch(&invite.branch);
    alice.send(net.edge_a.port, &cancel.build(alice.port()));
    let cancelled = bob.wait(Duration::from_secs(5), |m| {
        m.call_id() == call && m.method() == "CANCEL"
    });
    check!(
        cancelled.is_some_and(|m| m.body.is_empty()),
        "the CANCEL reached bob through the edges, unchanged (no body)"
    );
    bob.send(net.edge_b.port, &reply(&at_bob, 487, "Request Terminated"));
    let terminated = alice.wait(Duration::from_secs(5), |m| {
        m.call_id() == call && m.status() == Some(487)
    });
    check!(
        terminated.is_some(),
        "the INVITE ends 487 Request Terminated at alice"
    );
    let ack = Request::new("ACK", &call)
        .uri("sip:bob@example.net")
        .parties("sip:alice@example.net", "sip:bob@example.net")
        .branch(&invite.branch)
        .in_dialog("peer");
    alice.send(net.edge_a.port, &ack.build(alice.port()));
    check!(
        keys(0),
        "the failed INVITE ended the key at edge A, P1 and edge B (cache_entries 0)"
    );
    let after = [ended(&net.edge_a), ended(&net.p1), ended(&net.edge_b)];
    check!(
        after.iter().zip(before).all(|(a, b)| *a == b + 1),
        "dialogs_ended +1 at each: {before:?} -> {after:?}"
    );
}

/// A signed offer changed after alice signed it, sealed for bob and proxy1 by someone who can
/// (it needs no secret), sent to P1. Returns its Call-ID.
pub fn tampered_signed_offer(
    dir: &Path,
    net: &Topology,
    alice_key: &Path,
    alice_crt: &Path,
) -> String {
    println!("  -- a signed offer changed after signing");
    let keys = KeyStore::load(&KeySpec {
        sign: vec![SignKeySpec {
            key_path: alice_key.to_path_buf(),
            cert_path: alice_crt.to_path_buf(),
            aor: None,
        }],
        ..Default::default()
    })
    .expect("alice's signing key");
    let sdp = b"v=0\r\no=alice 9 9 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/SAVP 0\r\n";
    let mut entity = mime_entity("application/sdp", sdp);
    let signature = sign_detached(&entity, keys.signer_for("alice@example.net").unwrap()).unwrap();
    let at = entity
        .windows(5)
        .position(|w| w == b"40000")
        .expect("the port in the signed SDP");
    entity[at..at + 5].copy_from_slice(b"46666");
    let (signed_type, signed) = multipart_signed(&entity, &signature);
    let recipients = [
        cert_recipient("callee", IdKind::IssuerSerial, RsaPadding::OaepSha256),
        cert_recipient("proxy1", IdKind::IssuerSerial, RsaPadding::OaepSha256),
    ];
    let (_, body) = UaSession::offer(
        &signed_type,
        &signed,
        &recipients,
        ContentAlg::Aes256Gcm,
        None,
        &BodyOptions::default(),
    )
    .unwrap();
    let caller = Peer::bind();
    let call = format!("tampered-{}@example.net", std::process::id());
    let req = Request::new("INVITE", &call)
        .uri("sip:bob@example.net")
        .parties("sip:alice@example.net", "sip:bob@example.net")
        .body(&body.content_type, &body.body);
    caller.send(net.p1.port, &req.build(caller.port()));
    let refused = caller.wait(Duration::from_secs(10), |m| {
        m.call_id() == call && m.status().is_some_and(|s| s >= 300)
    });
    let p1_line = wait_for(Duration::from_secs(2), || {
        net.p1.log_lines().iter().any(|l| l.call == call)
    });
    let p1 = net.p1.log_lines_of(&call);
    check!(
        p1_line && p1.first().is_some_and(|l| !l.decrypted && l.code() == 150),
        "P1 reports it: not-decrypted code={} ({})",
        p1.first().map(|l| l.code()).unwrap_or(0),
        p1.first().map(|l| l.get("error")).unwrap_or("")
    );
    let b = net.edge_b.edge_lines_of(&call, 1);
    check!(
        b.first()
            .is_some_and(|l| l.action == "not-opened" && l.get("code") == "150"),
        "edge B refuses to open it: {}",
        b.first().map(|l| l.get("error")).unwrap_or("")
    );
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "FAILED: no final answer to the tampered offer; peer got {:?}",
            caller
                .of_call(&call)
                .iter()
                .map(|m| m.start.clone())
                .collect::<Vec<_>>()
        )
    });
    let warning = refused.header("warning").unwrap_or("");
    check!(
        refused.status() == Some(403) && warning.contains("signature"),
        "the caller is answered {} with Warning: {warning}",
        refused.start
    );
    let _ = dir;
    call
}

/// A call to carol, whose certificate edge A does not have: refused by default, sent in clear
/// through an edge with `unsealable=clear`.
pub fn callee_without_certificate(t: &Tools, dir: &Path, net: &Topology, keys_a: &Path) {
    println!("  -- a callee without a certificate");
    let sdp = b"v=0\r\no=alice 7 7 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40004 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUxJQ0VTX1NSVFBfS0VZX0ZPUl9USEVfVEVTVF8x\r\n";
    // alice's SIPp is gone: this peer takes her address, the one edge A knows her by
    let alice = Peer::bind_at(net.alice_port);
    let call = format!("carol-{}@example.net", std::process::id());
    let invite = |call: &str| {
        Request::new("INVITE", call)
            .uri("sip:carol@example.net")
            .parties("sip:alice@example.net", "sip:carol@example.net")
            .body("application/sdp", sdp)
    };
    alice.send(net.edge_a.port, &invite(&call).build(alice.port()));
    let answer = alice.wait(Duration::from_secs(10), |m| {
        m.call_id() == call && m.status().is_some_and(|s| s >= 300)
    });
    let answer =
        answer.unwrap_or_else(|| panic!("FAILED: edge A did not answer the call to carol"));
    let warning = answer.header("warning").unwrap_or("");
    check!(
        answer.status() == Some(606) && warning.contains("no certificate for the callee"),
        "unsealable=reject (the default): edge A answers {} with Warning: {warning}",
        answer.start
    );
    std::thread::sleep(Duration::from_millis(300));
    check!(
        !net.p1.log_text().contains(&call) && !net.p2.log_text().contains(&call),
        "the call to carol never left edge A: P1 and P2 never saw it"
    );
    let a = net.edge_a.edge_lines_of(&call, 1);
    check!(
        a.first()
            .is_some_and(|l| l.action == "refused" && l.get("code") == "149"),
        "edge A logged it refused (code 149)"
    );
    drop(alice);

    // the same through an edge whose operator allows calls in clear to such callees
    let sink = Peer::answering(|_| None);
    let alice = Peer::bind_at(net.alice_port);
    let alice_ua = format!("\"sip:{ADDR}:{}\"", net.alice_port);
    let clear = EdgeKamailio::start(
        t,
        dir,
        "edge-a-clear",
        keys_a,
        &[
            ("LOCAL_UA", Some(&alice_ua)),
            ("NEXT_HOP", Some(&next_hop(sink.port()))),
            ("WITH_CLEAR", None),
        ],
    );
    let call2 = format!("carol-clear-{}@example.net", std::process::id());
    alice.send(clear.port, &invite(&call2).build(alice.port()));
    let got = sink.wait(Duration::from_secs(10), |m| {
        m.call_id() == call2 && m.is_request()
    });
    check!(
        got.as_ref()
            .is_some_and(|m| m.body == sdp && m.header("content-type") == Some("application/sdp")),
        "unsealable=clear: the edge forwards the call to carol with her plain SDP"
    );
    let l = clear.edge_lines_of(&call2, 1);
    check!(
        l.first()
            .is_some_and(|l| l.action == "clear" && l.get("code") == "4"),
        "and logs it sent in clear ({})",
        l.first().map(|l| l.get("error")).unwrap_or("")
    );
    check!(
        clear.stat("edge_sent_clear") == 1,
        "statistic edge_sent_clear = 1"
    );
}
