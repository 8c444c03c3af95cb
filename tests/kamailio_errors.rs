//! What the trusted proxy does with bodies meant for it that it cannot open, with real
//! processes on loopback (tests/support):
//!
//! * `corrupt_bodies_forwarded_and_proxies_survive`: SIPp caller -> P1 -> P2 -> SIPp callee
//!   with truncated DER bodies; calls complete, P1 reports the parse error, every Kamailio
//!   process is still alive;
//! * `on_error_reject_answers_493_and_forward_relays_unchanged`: a malformed INVITE sent to P1
//!   over UDP: with `on_error=reject` (`-A WITH_REJECT_ON_ERROR`) P1 answers 493 Undecipherable
//!   and forwards nothing; with the default `forward` the INVITE reaches the next hop
//!   unchanged.
//!
//! Needs kamailio, sipp (scripts/setup-deps) and build/sipsd.so (make); otherwise SKIPPED
//! unless SIPSD_REQUIRE_E2E=1. Run: `cargo test --test kamailio_errors -- --nocapture`.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::calls::{run, Options};
use support::kamailio::{next_hop, P1};
use support::p1log::P1Line;
use support::ports::ADDR;
use support::sip::{Peer, Request, SMIME_AUTH};
use support::tools::kamailio_e2e as start;
use support::work::WorkDir;

#[test]
fn corrupt_bodies_forwarded_and_proxies_survive() {
    let Some((_serial, t)) = start("corrupt bodies (3 calls)") else {
        return;
    };
    let work = WorkDir::new("corrupt");
    let o = run(
        &t,
        &work,
        &Options {
            calls: 3,
            proxy_cert: true,
            corrupt: true,
        },
    );
    let lines = o.check_p1_never_decrypted();
    let requests: Vec<&&P1Line> = lines
        .iter()
        .filter(|l| l.what == "INVITE" || l.what == "MESSAGE")
        .collect();
    let codes: BTreeSet<(String, String)> = requests
        .iter()
        .map(|l| (l.get("code").to_string(), l.get("error").to_string()))
        .collect();
    check!(
        codes.len() == 1 && !requests.is_empty(),
        "P1 reports the same error for all {} corrupt INVITEs/MESSAGEs: {codes:?}",
        requests.len()
    );
    o.check_bodies_unchanged();

    let f = o.captured_invite("captured-invite.sip");
    let cli = t.sipsd(&["open", "--key", &t.key_pair("proxy1"), "--in", &f]);
    let err = String::from_utf8_lossy(&cli.stderr);
    check!(
        !cli.status.success() && !err.contains("not a recipient") && !err.contains("none of our keys"),
        "sipsd open with proxy1's key rejects the corrupt body as malformed, not as 'not a recipient': {}",
        err.trim()
    );
}

/// One INVITE with a malformed S/MIME body: (the request, its body).
fn corrupt_invite(n: u32) -> (Request, Vec<u8>) {
    // a DER SEQUENCE announcing 256 bytes, then an EnvelopedData OID, then nothing
    let body = b"MIIBAAYJKoZIhvcNAQcD\r\n".to_vec();
    let call = format!("onerror-{n}-{}@{ADDR}", std::process::id());
    let req = Request::new("INVITE", &call)
        .with_from_tag(&format!("onerror-{n}"))
        .body(SMIME_AUTH, &body)
        .header("Content-Transfer-Encoding", "base64");
    (req, body)
}

#[test]
fn on_error_reject_answers_493_and_forward_relays_unchanged() {
    let Some((_serial, t)) = start("on_error: reject answers 493, forward relays unchanged") else {
        return;
    };
    let work = WorkDir::new("onerror");
    for (n, reject) in [(1u32, true), (2, false)] {
        let run_dir = work.sub(&format!("run{n}"));
        // the next hop records and never answers; the caller collects P1's replies
        let sink = Peer::bind();
        let client = Peer::bind();
        let hop = next_hop(sink.port());
        let mut defines = vec![("NEXT_HOP", Some(hop.as_str()))];
        if reject {
            defines.push(("WITH_REJECT_ON_ERROR", None));
        }
        let mut p1 = P1::start(&t, &run_dir, &defines);
        let (invite, body) = corrupt_invite(n);
        client.send(p1.port, &invite.build(client.port()));
        if reject {
            let reply = client.wait(Duration::from_secs(10), |m| {
                !m.is_request() && m.status() != Some(100)
            });
            let reply = reply.map(|r| r.start);
            check!(
                reply.as_deref() == Some("SIP/2.0 493 Undecipherable"),
                "on_error=reject: a malformed body meant for P1 is answered {reply:?}"
            );
            let forwarded = sink.wait(Duration::from_secs(1), |m| m.method() == "INVITE");
            check!(
                forwarded.is_none(),
                "on_error=reject: nothing was forwarded to the next hop"
            );
        } else {
            let forwarded = sink.wait(Duration::from_secs(10), |m| {
                m.is_request() && m.method() == "INVITE"
            });
            check!(
                forwarded.map(|m| m.body).as_deref() == Some(body.as_slice()),
                "on_error=forward (default): the INVITE reached the next hop with its body unchanged"
            );
        }
        check!(p1.alive(), "P1 is still running");
    }
}
