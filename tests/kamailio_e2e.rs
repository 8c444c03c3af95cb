//! End to end with real processes: SIPp caller -> P1 (Kamailio, trusted, sipsd module) ->
//! P2 (Kamailio, untrusted, no module) -> SIPp callee, all on loopback (tests/support/calls.rs).
//!
//! The bodies come from `sipsd sipp-calls` (AuthEnvelopedData offers for the callee and, when
//! asked, proxy1; EncryptedData answers and MESSAGEs under the dialog key; a re-INVITE that
//! rotates the key). Every scenario prints each check it makes:
//!
//! * `trusted_proxy_reads_offer_answer_message_and_rotation`: P1 decrypts the offer (wrapped
//!   key), the answer and the MESSAGE (cached key, often in another worker process), the
//!   re-INVITE (generation 2) and the MESSAGE after it; P2 only sees ciphertext and proxy2's
//!   key does not open it; the callee gets the caller's bodies byte for byte and opens them.
//! * `proxy_not_a_recipient_forwards_unchanged`: P1 is not a recipient; calls complete, P1
//!   reports "not for this proxy", the bodies reach the callee unchanged.
//!
//! What P1 does with bodies it cannot open is in tests/kamailio_errors.rs.
//!
//! Needs kamailio, sipp (scripts/setup-deps) and build/sipsd.so (make). Without them the tests
//! print "SKIPPED: ..." and pass, unless SIPSD_REQUIRE_E2E=1 is set: then they fail.
//! Run: `cargo test --test kamailio_e2e -- --nocapture --test-threads=1`.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use support::calls::{media_of, run, Options};
use support::p1log::P1Line;
use support::sip::SipMsg;
use support::sipp::one;
use support::tools::kamailio_e2e as start;
use support::work::WorkDir;

#[test]
fn trusted_proxy_reads_offer_answer_message_and_rotation() {
    let Some((_serial, t)) = start("trusted proxy is a recipient (6 calls)") else {
        return;
    };
    let work = WorkDir::new("trusted");
    let o = run(
        &t,
        &work,
        &Options {
            calls: 6,
            proxy_cert: true,
            corrupt: false,
        },
    );

    // --- P1: what the trusted proxy read
    let mut moved = 0;
    let mut workers = BTreeSet::new();
    for (call, &row) in &o.calls {
        let r = &o.rows[row];
        let lines = o.p1_of(call);
        let find = |what: &str, gen: &str| -> &P1Line {
            lines
                .iter()
                .find(|l| l.what == what && l.decrypted && l.get("gen") == gen)
                .copied()
                .unwrap_or_else(|| {
                    panic!("FAILED: P1 has no decrypted {what} gen={gen} for {call}: {lines:#?}")
                })
        };
        let offer = find("INVITE", "1");
        let answer = find("INVITE200", "1");
        let message = find("MESSAGE", "1");
        let reinvite = find("INVITE", "2");
        let reanswer = find("INVITE200", "2");
        let message2 = find("MESSAGE", "2");
        check!(
            offer.get("source") == "wrapped" && offer.get("media") == r.offer,
            "{call}: P1 decrypted the offer with its own RSA key (source=wrapped gen=1) media={} = expected {}",
            offer.get("media"),
            r.offer
        );
        check!(
            answer.get("source") == "cache" && answer.get("media") == r.answer,
            "{call}: P1 decrypted the 200 OK answer (EncryptedData) with the cached dialog key (source=cache) media={} = expected {}",
            answer.get("media"),
            r.answer
        );
        check!(
            message.get("source") == "cache",
            "{call}: P1 decrypted the in-dialog MESSAGE with the cached dialog key (gen=1 source=cache)"
        );
        check!(
            reinvite.get("source") == "wrapped" && reinvite.get("media") == r.rotated,
            "{call}: after the re-INVITE P1 holds generation 2 (source=wrapped) media={} = expected {}",
            reinvite.get("media"),
            r.rotated
        );
        check!(
            reanswer.get("source") == "cache" && message2.get("source") == "cache",
            "{call}: the re-INVITE's 200 OK and the later MESSAGE were opened with the NEW key (gen=2 source=cache)"
        );
        check!(
            lines.iter().all(|l| l.decrypted),
            "{call}: no not-decrypted line for this call"
        );
        let differs = answer.pid != offer.pid || message.pid != offer.pid;
        println!(
            "       worker PIDs {call}: offer {} answer {} MESSAGE {} | re-INVITE {} answer {} MESSAGE {}{}",
            offer.pid,
            answer.pid,
            message.pid,
            reinvite.pid,
            reanswer.pid,
            message2.pid,
            if differs { "  <- key shared across workers" } else { "" }
        );
        if differs {
            moved += 1;
        }
        workers.extend(lines.iter().map(|l| l.pid));
    }
    check!(
        moved >= 1,
        "in {moved} of {} calls the cached key was used by a worker other than the one that unwrapped it (workers seen: {workers:?})",
        o.calls.len()
    );
    check!(
        !o.p1_log.contains("a=crypto")
            && !o.p1_log.contains("inline:")
            && !o.p1_log.contains("v=0"),
        "P1's log holds media facts only: no SDP text, no SRTP keys"
    );

    // --- P2: only ciphertext
    for (call, &row) in &o.calls {
        let r = &o.rows[row];
        let seen: Vec<(&str, usize)> =
            o.p2.iter()
                .filter(|l| &l.call == call)
                .map(|l| (l.method.as_str(), l.body_bytes))
                .collect();
        let want = [
            ("INVITE", r.uac[0].len() + 2),
            ("MESSAGE", r.uac[1].len() + 2),
            ("INVITE", r.uac[2].len() + 2),
            ("MESSAGE", r.uac[3].len() + 2),
        ];
        check!(
            want.iter().all(|w| seen.contains(w)),
            "{call}: P2 forwarded INVITE/MESSAGE/re-INVITE/MESSAGE with the ciphertext sizes the caller sent {:?}",
            want.iter().map(|w| w.1).collect::<Vec<_>>()
        );
    }
    let leaks: Vec<String> = o
        .rows
        .iter()
        .flat_map(|r| [&r.offer, &r.answer, &r.rotated])
        .flat_map(|m| [m.clone(), m.split(':').next().unwrap_or("").to_string()])
        .chain(["v=0", "m=audio", "c=IN", "a=crypto", "inline:", "PCMU"].map(String::from))
        .filter(|s| !s.is_empty() && o.p2_log.contains(s.as_str()))
        .collect();
    check!(
        leaks.is_empty(),
        "P2's log shows no SDP and none of the media addresses: {leaks:?}"
    );

    // --- the callee
    o.check_bodies_unchanged();
    let captured = o.captured_invite("captured-invite.sip");
    let ins = t.sipsd(&["inspect", "--in", &captured]);
    println!(
        "       sipsd inspect on the INVITE P2 forwarded:\n         {}",
        String::from_utf8_lossy(&ins.stdout)
            .trim()
            .replace('\n', "\n         ")
    );
    let p2_open = t.sipsd(&["open", "--key", &t.key_pair("proxy2"), "--in", &captured]);
    check!(
        !p2_open.status.success() && p2_open.stdout.is_empty(),
        "sipsd open with proxy2's key on the captured INVITE fails, nothing printed: {}",
        String::from_utf8_lossy(&p2_open.stderr).trim()
    );

    for (call, &row) in &o.calls {
        let r = &o.rows[row];
        let at_uas = o.msgs_of(&o.uas, call);
        let at_uac = o.msgs_of(&o.uac, call);
        let tag = call.split('@').next().unwrap_or(call);
        let get = |side: &[SipMsg], cseq: &str, reply: bool| -> String {
            let m = one(side, &format!("{cseq} of {call}"), |m| {
                !m.sent
                    && m.cseq() == cseq
                    && if reply {
                        m.status() == Some(200)
                    } else {
                        m.is_request()
                    }
            });
            o.save(
                &format!(
                    "{tag}-{}{}.sip",
                    cseq.replace(' ', "-"),
                    if reply { "-200" } else { "" }
                ),
                m,
            )
        };
        let cek1 = o.work.join(format!("{tag}-cek1")).display().to_string();
        let cek2 = o.work.join(format!("{tag}-cek2")).display().to_string();
        let callee = t.key_pair("callee");
        let open = |args: &[&str]| -> (bool, String) {
            let out = t.sipsd(args);
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (ok, sdp) = open(&[
            "open",
            "--key",
            &callee,
            "--cek-out",
            &cek1,
            "--in",
            &get(&at_uas, "1 INVITE", false),
        ]);
        check!(
            ok && media_of(&sdp).as_deref() == Some(r.offer.as_str()),
            "{call}: the callee opens the INVITE with its key: media {:?}",
            media_of(&sdp)
        );
        let (ok, text) = open(&[
            "open",
            "--cek",
            &cek1,
            "--in",
            &get(&at_uas, "2 MESSAGE", false),
        ]);
        check!(
            ok && text.contains("text/plain"),
            "{call}: the callee opens the MESSAGE with the dialog key"
        );
        let (ok, sdp) = open(&[
            "open",
            "--cek",
            &cek1,
            "--in",
            &get(&at_uac, "1 INVITE", true),
        ]);
        check!(
            ok && media_of(&sdp).as_deref() == Some(r.answer.as_str()),
            "{call}: the caller opens the 200 OK answer it received with the dialog key: media {:?}",
            media_of(&sdp)
        );
        let (ok, sdp) = open(&[
            "open",
            "--key",
            &callee,
            "--cek-out",
            &cek2,
            "--in",
            &get(&at_uas, "3 INVITE", false),
        ]);
        check!(
            ok && media_of(&sdp).as_deref() == Some(r.rotated.as_str()),
            "{call}: the callee opens the re-INVITE (rotated key): media {:?}",
            media_of(&sdp)
        );
        let msg2 = get(&at_uas, "4 MESSAGE", false);
        let (ok_new, _) = open(&["open", "--cek", &cek2, "--in", &msg2]);
        let (ok_old, _) = open(&["open", "--cek", &cek1, "--in", &msg2]);
        check!(
            ok_new && !ok_old,
            "{call}: the MESSAGE after rotation opens with the new key and NOT with the old one"
        );
        let (ok, _) = open(&[
            "open",
            "--key",
            &t.key_pair("proxy2"),
            "--in",
            &get(&at_uas, "3 INVITE", false),
        ]);
        check!(
            !ok,
            "{call}: proxy2's key does not open the re-INVITE either"
        );
    }
}

#[test]
fn proxy_not_a_recipient_forwards_unchanged() {
    let Some((_serial, t)) = start("trusted proxy NOT a recipient (3 calls)") else {
        return;
    };
    let work = WorkDir::new("notrecipient");
    let o = run(
        &t,
        &work,
        &Options {
            calls: 3,
            proxy_cert: false,
            corrupt: false,
        },
    );
    let lines = o.check_p1_never_decrypted();
    let codes: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| (l.get("code").to_string(), l.get("error").to_string()))
        .collect();
    check!(
        codes.len() == 1
            && lines
                .iter()
                .all(|l| l.get("code") != "0" && !l.get("code").is_empty()),
        "P1 reports one reason for every message: {codes:?}"
    );
    o.check_bodies_unchanged();

    let (call, &row) = o.calls.iter().next().expect("a call");
    let f = o.captured_invite("captured-invite.sip");
    let p1_open = t.sipsd(&["open", "--key", &t.key_pair("proxy1"), "--in", &f]);
    check!(
        !p1_open.status.success(),
        "sipsd open with proxy1's key fails too: {}",
        String::from_utf8_lossy(&p1_open.stderr).trim()
    );
    let callee = t.sipsd(&["open", "--key", &t.key_pair("callee"), "--in", &f]);
    let media = media_of(&String::from_utf8_lossy(&callee.stdout));
    check!(
        callee.status.success() && media.as_deref() == Some(o.rows[row].offer.as_str()),
        "{call}: the callee still opens the offer: media {media:?}"
    );
}
