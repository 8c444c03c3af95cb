//! The edge role through real Kamailio, with user agents that only speak plain SDP:
//!
//! ```text
//!  alice (SIPp, plain SDP) -> edge A -> P1 (trusted) -> P2 (untrusted) -> edge B -> bob (SIPp, plain SDP)
//!                  cfg-examples/edge.cfg   trusted-proxy.cfg  untrusted-proxy.cfg   edge.cfg
//! ```
//!
//! all on loopback, the core (every datagram to or from P1 and P2) captured with tcpdump.
//! One call (tests/sipp/plain-uac.xml, plain-uas.xml: INVITE, MESSAGE, a re-INVITE after
//! edge A's 2-second `rotate_after`, MESSAGE, BYE; bob sends his first 200 OK twice), then on
//! the same topology (tests/edge_e2e/mod.rs): a call cancelled while ringing; a signed offer
//! changed after signing, sent to P1 by a holder of the keys; a call to a callee without a
//! certificate (refused by edge A), and the same through an edge with `unsealable=clear`.
//! Every check is printed.
//!
//! Needs kamailio, sipp, tcpdump, openssl (scripts/setup-deps) and build/sipsd.so (make):
//! without them SKIPPED, unless SIPSD_REQUIRE_E2E=1.
//! Run: `cargo test --test edge_e2e -- --nocapture --test-threads=1`.

#[macro_use]
mod support;

// the calls after the first: tests/edge_e2e/mod.rs
#[path = "edge_e2e/mod.rs"]
mod later_calls;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use later_calls::{callee_without_certificate, cancelled_call, tampered_signed_offer};
use support::kamailio::{edge_keys, next_hop, EdgeKamailio, Kamailio, P1, P2};
use support::openssl::self_signed;
use support::p1log::edge_lines_with;
use support::pcap::{find_plaintext, pcap_datagrams, LoopbackCapture};
use support::ports::{free_ports, wait_bound, ADDR};
use support::procs::{wait_for, Proc};
use support::sip::SipMsg;
use support::sipp::{of_call, one, parse_trace, sent_and_received};
use support::tools::{find_in_path, kamailio_e2e, skip, Tools};
use support::vectors::key_path;
use support::work::WorkDir;

const ALICE_CN: &str = "alice.example.net";

/// What must never cross the core in clear: SDP lines, SRTP keys, media addresses, the
/// MESSAGE texts.
const SECRETS: [&str; 12] = [
    "v=0",
    "m=audio",
    "c=IN IP4",
    "a=crypto",
    "inline:",
    "QUxJQ0VTX1NSVFBfS0VZX0ZPUl9USEVfVEVTVF8x",
    "Qk9CU19TUlRQX0tFWV9GT1JfVEhFX1RFU1RfMjJf",
    "QUxJQ0VfUkVLRVlFRF9TUlRQX0tFWV9URVNUXzNf",
    "192.0.2.10",
    "198.51.100.20",
    "hello bob",
    "under the new key",
];

struct Topology {
    edge_a: Kamailio,
    p1: Kamailio,
    p2: Kamailio,
    edge_b: Kamailio,
    alice_port: u16,
    bob_port: u16,
}

fn sipp(t: &Tools, role: &str, port: u16, extra: &[&str]) -> Command {
    let mut c = Command::new(&t.sipp);
    c.args(extra)
        .arg("-sf")
        .arg(t.root.join(format!("tests/sipp/{role}.xml")))
        .args(["-i", ADDR, "-p", &port.to_string(), "-m", "1", "-nostdin"])
        .args(["-timeout", "60s", "-recv_timeout", "15s", "-timeout_error"])
        .args(["-trace_msg", "-message_file", &format!("{role}-msgs.txt")])
        .args(["-trace_err", "-error_file", &format!("{role}-errors.txt")]);
    c
}

#[test]
fn plain_sdp_user_agents_call_through_two_edges() {
    let Some((_serial, t)) = kamailio_e2e("two edges around P1 and P2, plain SDP user agents")
    else {
        return;
    };
    let Some(tcpdump) = find_in_path("tcpdump") else {
        skip::<()>(
            "SIPSD_REQUIRE_E2E",
            "edge e2e needs tcpdump (sudo scripts/setup-deps)",
        );
        return;
    };
    let work = WorkDir::new("edge");
    let dir: &Path = &work;
    println!("  work directory {}", dir.display());

    // --- keys: alice's made here, bob's are the vectors' callee, proxy1's the vectors'
    let (alice_key, alice_crt) = self_signed(dir, "alice", ALICE_CN);
    let (bob_key, bob_crt) = (key_path("callee.key"), key_path("callee.crt"));
    let p1_crt = key_path("proxy1.crt");
    let keys_a = edge_keys(
        &dir.join("keys-a"),
        (&alice_key, &alice_crt),
        &p1_crt,
        &[("bob@example.net", &bob_crt)],
        &[],
    );
    let keys_b = edge_keys(
        &dir.join("keys-b"),
        (&bob_key, &bob_crt),
        &p1_crt,
        &[("alice@example.net", &alice_crt)],
        &[&alice_crt],
    );

    // --- the topology, from the callee's end to the caller's
    let ports = free_ports(2);
    let (alice_port, bob_port) = (ports[0], ports[1]);
    let bob_ua = format!("\"sip:{ADDR}:{bob_port}\"");
    let alice_ua = format!("\"sip:{ADDR}:{alice_port}\"");
    let signers = alice_crt.display().to_string();
    let edge_b = EdgeKamailio::start(
        &t,
        dir,
        "edge-b",
        &keys_b,
        &[
            ("LOCAL_UA", Some(&bob_ua)),
            // bob places no call in this test: his edge's core side is unused
            ("NEXT_HOP", Some(&next_hop(9))),
            ("LOCAL_AOR", Some("bob@example.net")),
        ],
    );
    let p2 = P2::start(&t, dir, &[("NEXT_HOP", Some(&next_hop(edge_b.port)))]);
    let p1 = P1::start(
        &t,
        dir,
        &[
            ("NEXT_HOP", Some(&next_hop(p2.port))),
            ("SIPSD_TRUSTED_SIGNERS", Some(&signers)),
        ],
    );
    let edge_a = EdgeKamailio::start(
        &t,
        dir,
        "edge-a",
        &keys_a,
        &[
            ("LOCAL_UA", Some(&alice_ua)),
            ("NEXT_HOP", Some(&next_hop(p1.port))),
            ("LOCAL_AOR", Some("alice@example.net")),
            ("WITH_SIGN", None),
            ("SIPSD_ROTATE_AFTER", Some("2")),
        ],
    );
    println!(
        "  ports on {ADDR}: alice {alice_port} -> edge A {} -> P1 {} -> P2 {} -> edge B {} -> bob {bob_port}",
        edge_a.port, p1.port, p2.port, edge_b.port
    );
    let mut net = Topology {
        edge_a,
        p1,
        p2,
        edge_b,
        alice_port,
        bob_port,
    };
    let capture = LoopbackCapture::start(&tcpdump, dir, "core", &[net.p1.port, net.p2.port]);

    let call = the_call(&t, dir, &mut net);
    cancelled_call(&net);
    let tampered = tampered_signed_offer(dir, &net, &alice_key, &alice_crt);
    let pcap = capture.finish();
    the_core_carries_no_plaintext(&pcap, &call, &tampered);
    callee_without_certificate(&t, dir, &net, &keys_a);

    for (name, k) in [
        ("edge A", &mut net.edge_a),
        ("P1", &mut net.p1),
        ("P2", &mut net.p2),
        ("edge B", &mut net.edge_b),
    ] {
        let alive = k.alive() && k.children() == k.workers;
        check!(
            alive,
            "{name}: main process and all {} workers still alive, none replaced",
            k.workers.len()
        );
    }
}

/// The call alice -> bob; returns its Call-ID.
fn the_call(t: &Tools, dir: &Path, net: &mut Topology) -> String {
    let mut uas = Proc::spawn(
        "sipp-uas",
        dir,
        &mut sipp(t, "plain-uas", net.bob_port, &[]),
    );
    wait_bound(&mut uas, net.bob_port);
    let edge_a = format!("{ADDR}:{}", net.edge_a.port);
    let mut uac = Proc::spawn(
        "sipp-uac",
        dir,
        &mut sipp(t, "plain-uac", net.alice_port, &["-s", "bob", &edge_a]),
    );
    let st = uac.wait(Duration::from_secs(90));
    check!(
        st.is_some_and(|s| s.success()),
        "alice (SIPp, plain SDP): INVITE/200/ACK, MESSAGE/200, re-INVITE/200/ACK, MESSAGE/200, BYE/200 completed through both edges, exit {st:?}"
    );
    let st = uas.wait(Duration::from_secs(30));
    check!(
        st.is_some_and(|s| s.success()),
        "bob (SIPp, plain SDP): the call answered, exit {st:?}"
    );

    let alice = parse_trace(&dir.join("plain-uac-msgs.txt"));
    let bob = parse_trace(&dir.join("plain-uas-msgs.txt"));
    let call = one(&alice, "alice's INVITE", |m| {
        m.sent && m.cseq() == "1 INVITE"
    })
    .call_id()
    .to_string();
    let (alice, bob) = (of_call(&alice, &call), of_call(&bob, &call));

    // --- the user agents saw plain SDP, byte for byte, with correct headers
    let pairs = [
        ("INVITE", "1 INVITE", true),
        ("MESSAGE", "2 MESSAGE", true),
        ("re-INVITE", "3 INVITE", true),
        ("MESSAGE after the rotation", "4 MESSAGE", true),
        ("200 OK (answer)", "1 INVITE", false),
        ("200 OK to the re-INVITE", "3 INVITE", false),
    ];
    for (what, cseq, request) in pairs {
        let (from, to) = if request {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let (s, g) = sent_and_received(from, to, what, cseq, request);
        let length_ok = g
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            == Some(g.body.len());
        let clean = g.header("content-transfer-encoding").is_none()
            && g.header("disclose-to").is_none()
            && g.header("content-disposition").is_none();
        check!(
            g.body == s.body && g.header("content-type") == s.header("content-type") && length_ok && clean,
            "{what}: received byte for byte as sent ({} bytes, {}), Content-Length right, no Content-Transfer-Encoding/-Disposition or Disclose-To left",
            g.body.len(),
            g.header("content-type").unwrap_or("")
        );
    }
    let answers = alice
        .iter()
        .filter(|m| !m.sent && m.cseq() == "1 INVITE" && m.status() == Some(200))
        .count();
    check!(answers >= 2, "alice got bob's first 200 OK {answers} times (bob sent it twice), each the same plain answer");

    // --- P1: read the offer (its key), the answer (the cached key, maybe in another worker)
    let p1 = net.p1.log_lines_of(&call);
    let p1_find = |what: &str, gen: &str| {
        p1.iter()
            .find(|l| l.what == what && l.decrypted && l.get("gen") == gen)
            .unwrap_or_else(|| panic!("FAILED: P1 has no decrypted {what} gen={gen}: {p1:#?}"))
    };
    let offer = p1_find("INVITE", "1");
    check!(
        offer.get("source") == "wrapped"
            && offer.get("media") == "192.0.2.10:40000"
            && offer.get("signature") == "valid"
            && offer.get("signer") == ALICE_CN,
        "P1 decrypted the offer with its own key: media {}, signature {} by {}",
        offer.get("media"),
        offer.get("signature"),
        offer.get("signer")
    );
    let answer = p1_find("INVITE200", "1");
    check!(
        answer.get("source") == "cache" && answer.get("media") == "198.51.100.20:50000",
        "P1 decrypted bob's answer (EncryptedData) with the cached key, media {} (worker {} after {})",
        answer.get("media"),
        answer.pid,
        offer.pid
    );
    let message = p1_find("MESSAGE", "1");
    check!(
        message.get("source") == "cache",
        "P1 read alice's MESSAGE under the same key (EncryptedData, gen 1)"
    );
    let rotation = p1_find("INVITE", "2");
    let reanswer = p1_find("INVITE200", "2");
    let message2 = p1_find("MESSAGE", "2");
    check!(
        rotation.get("source") == "wrapped"
            && rotation.get("media") == "192.0.2.10:40002"
            && reanswer.get("source") == "cache"
            && message2.get("source") == "cache",
        "edge A's rotate_after (2 s) rotated the key at the re-INVITE: P1 holds generation 2, and read its answer and the MESSAGE after it"
    );
    check!(
        p1.iter().all(|l| l.decrypted),
        "P1 decrypted every body of the call ({} lines, none refused)",
        p1.len()
    );
    let p1_log = net.p1.log_text();
    check!(
        !p1_log.contains("a=crypto") && !p1_log.contains("inline:") && !p1_log.contains("v=0"),
        "P1's log holds media facts, no SDP text, no SRTP key"
    );

    // --- P2: ciphertext only
    let p2 = net.p2.p2_lines();
    let p2_log = net.p2.log_text();
    let leaks: Vec<&str> = SECRETS
        .iter()
        .copied()
        .filter(|s| p2_log.contains(s))
        .collect();
    check!(
        p2.iter().filter(|l| l.call == call).count() >= 5 && leaks.is_empty(),
        "P2 forwarded the call's requests ({} lines) and its log shows no SDP, key or address: {leaks:?}",
        p2.iter().filter(|l| l.call == call).count()
    );

    // --- the edges
    let a = net.edge_a.edge_lines_of(&call, 6);
    let b = net.edge_b.edge_lines_of(&call, 7);
    let offer = edge_lines_with(&a, "INVITE", "sealed", "1");
    check!(
        offer.len() == 1
            && offer[0].get("sealing") == "offer"
            && offer[0].get("signer") == ALICE_CN,
        "edge A sealed alice's offer once (a fresh key for bob and proxy1, signed by alice)"
    );
    check!(
        edge_lines_with(&a, "INVITE200", "opened", "1")
            .iter()
            .all(|l| l.get("source") == "cache")
            && edge_lines_with(&a, "INVITE200", "opened", "1").len() >= 2,
        "edge A opened both copies of bob's answer with the key it made"
    );
    check!(
        edge_lines_with(&a, "MESSAGE", "sealed", "1")
            .first()
            .is_some_and(|l| l.get("sealing") == "in-dialog"),
        "edge A sealed the MESSAGE as EncryptedData under the call's key"
    );
    check!(
        edge_lines_with(&a, "INVITE", "sealed", "2").first().is_some_and(|l| l.get("sealing") == "rotation")
            && edge_lines_with(&a, "INVITE200", "opened", "2").len() == 1
            && edge_lines_with(&a, "MESSAGE", "sealed", "2").first().is_some_and(|l| l.get("sealing") == "in-dialog"),
        "edge A: the re-INVITE 2.5 s in carried a new key with the proof (generation 2); the answer and the next MESSAGE under it"
    );
    let b_offer = edge_lines_with(&b, "INVITE", "opened", "1");
    check!(
        b_offer.len() == 1
            && b_offer[0].get("source") == "wrapped"
            && b_offer[0].get("signature") == "valid"
            && b_offer[0].get("signer") == ALICE_CN,
        "edge B opened the offer with bob's key and verified alice's signature"
    );
    let b_answers = edge_lines_with(&b, "INVITE200", "sealed", "1");
    check!(
        b_answers.len() == 2 && b_answers.iter().all(|l| l.get("sealing") == "in-dialog"),
        "edge B sealed both copies of bob's 200 OK under the call's key (claim 4: EncryptedData)"
    );
    check!(
        edge_lines_with(&b, "INVITE", "opened", "2").len() == 1
            && edge_lines_with(&b, "INVITE200", "sealed", "2").len() == 1
            && edge_lines_with(&b, "MESSAGE", "opened", "2").len() == 1,
        "edge B followed the rotation: generation 2 for the re-INVITE, its answer and the MESSAGE"
    );
    let workers: BTreeSet<u32> = a.iter().chain(b.iter()).map(|l| l.pid).collect();
    println!("       edge workers that handled the call: {workers:?}");

    // --- the call's key is gone everywhere once the BYE was answered
    let gone = wait_for(Duration::from_secs(3), || {
        [&net.edge_a, &net.p1, &net.edge_b]
            .iter()
            .all(|k| k.stat("cache_entries") == 0)
    });
    check!(gone, "after the BYE's 200 OK no edge and no proxy holds a key (cache_entries 0 at edge A, P1, edge B)");
    check!(
        net.edge_a.stat("edge_offers_sealed") == 1
            && net.edge_a.stat("edge_rotations") == 1
            && net.edge_a.stat("edge_in_dialog_sealed") == 2
            && net.edge_a.stat("edge_signed") == 4,
        "edge A's statistics: 1 offer, 1 rotation, 2 in-dialog bodies, 4 signed"
    );
    check!(
        net.edge_b.stat("edge_opened") >= 4 && net.edge_b.stat("signatures_valid") >= 4,
        "edge B's statistics: {} bodies opened, {} signatures valid",
        net.edge_b.stat("edge_opened"),
        net.edge_b.stat("signatures_valid")
    );
    call
}

fn the_core_carries_no_plaintext(pcap: &[u8], call: &str, tampered: &str) {
    let grams = pcap_datagrams(pcap);
    let needles: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    let hits = find_plaintext(pcap, &grams, &needles);
    let of_call: Vec<SipMsg> = grams
        .iter()
        .map(|g| SipMsg::parse(false, &g.payload))
        .filter(|m| m.call_id() == call)
        .collect();
    check!(
        of_call.len() >= 20 && hits.is_empty(),
        "the core capture (every datagram to or from P1 and P2, {} of the call, {} in all): no SDP line, SRTP key, media address or MESSAGE text: {hits:?}",
        of_call.len(),
        grams.len()
    );
    let invite = of_call
        .iter()
        .find(|m| m.is_request() && m.cseq() == "1 INVITE")
        .expect("the INVITE on the core");
    check!(
        invite.header("content-type").is_some_and(|c| c.contains("authEnveloped-data"))
            && invite.header("content-disposition") == Some("session; handling=required")
            && invite.header("disclose-to") == Some("proxy1.example.net")
            && invite.header("content-length").and_then(|v| v.parse::<usize>().ok()) == Some(invite.body.len()),
        "on the core the INVITE is S/MIME: {}, Content-Disposition {:?}, Disclose-To {:?}, Content-Length {} = body",
        invite.header("content-type").unwrap_or(""),
        invite.header("content-disposition"),
        invite.header("disclose-to"),
        invite.body.len()
    );
    let answers: Vec<&SipMsg> = of_call
        .iter()
        .filter(|m| m.status() == Some(200) && m.cseq() == "1 INVITE")
        .collect();
    let bodies: BTreeSet<&[u8]> = answers.iter().map(|m| m.body.as_slice()).collect();
    check!(
        answers.len() >= 4
            && bodies.len() == 1
            && answers.iter().all(|m| m.header("content-type").is_some_and(|c| c.contains("encrypted-data"))),
        "bob's 200 OK on the core: {} datagrams (two copies, each hop), one EncryptedData body: the retransmission was sealed to the same bytes",
        answers.len()
    );
    let later: Vec<&SipMsg> = of_call
        .iter()
        .filter(|m| m.is_request() && (m.cseq() == "2 MESSAGE" || m.cseq() == "4 MESSAGE"))
        .collect();
    check!(
        !later.is_empty()
            && later.iter().all(|m| m
                .header("content-type")
                .is_some_and(|c| c.contains("encrypted-data"))),
        "the MESSAGEs in the call are EncryptedData on the core"
    );
    let rotation = of_call
        .iter()
        .find(|m| m.is_request() && m.cseq() == "3 INVITE");
    check!(
        rotation.is_some_and(|m| m
            .header("content-type")
            .is_some_and(|c| c.contains("authEnveloped-data"))),
        "the re-INVITE is a new AuthEnvelopedData (the rotation)"
    );
    let t: Vec<SipMsg> = grams
        .iter()
        .map(|g| SipMsg::parse(false, &g.payload))
        .filter(|m| m.call_id() == tampered && m.is_request())
        .collect();
    check!(
        !t.is_empty(),
        "the tampered offer crossed the core ({} datagrams), P1 and P2 forwarded it",
        t.len()
    );
}
