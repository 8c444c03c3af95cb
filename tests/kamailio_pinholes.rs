//! Firewall pinholes from Kamailio: P1 (cfg-examples/trusted-proxy.cfg with build/sipsd.so,
//! `-A WITH_PINHOLES`) reads the sealed offer and answer of real SIP calls and asks the real
//! firewall agent (`sipsd-fw`, nftables) for exactly the negotiated media; RTP-shaped UDP
//! from both sides crosses the firewall namespace, counted by the receivers and by the
//! agent's nft counters.
//!
//! ```text
//!   caller net 10.77.1.2 ── fw (sipsd-fw, table inet sipsd) ── callee net 10.77.2.2 (+ .3)
//!                              │ 10.77.8.1:5351 PCP + MAC
//!   this namespace 10.77.8.2: P1 (Kamailio + sipsd) on 127.0.0.1, the SIP caller and callee
//! ```
//! The namespaces are the agent's own test topology (tools/sipsd-fw/tests/support/netns.rs);
//! SIP stays on loopback, the SDP names the media addresses in the namespaces.
//!
//! Checked, each printed: (call 1) before the answer the callee's media to the caller and
//! the caller's to the callee are dropped; after the 200 OK both ways pass (RTP and RTCP),
//! another port of the caller and another source are dropped; `sipsd.pinholes` lists the
//! dialog; the key-replacement attack (same Call-ID and From tag, a new key wrapped for P1,
//! no proof; initial and in-dialog) opens nothing; the agent killed and restarted mid-call
//! keeps the media passing and the same elements; the lifetimes are refreshed; a re-INVITE
//! with new ports moves the pinholes (the old ones deleted); after the BYE
//! nothing passes. (call 2) its BYE is lost: once pinhole_max_duration and the lifetime are
//! over, the agent's elements expire and nothing passes. Statistics agree. (P1 restarted with
//! pinhole_on_offer=1, pinhole_on_failure=reject) the agent down: the INVITE is answered 503
//! and not forwarded, nothing stays open; call 4: early media passes from any source at the
//! offer, the answer narrows it to the callee, the BYE closes it.
//!
//! Needs root (namespaces, nftables), kamailio, kamcmd and build/sipsd.so (make); otherwise
//! SKIPPED unless SIPSD_REQUIRE_E2E=1. Run: `cargo test --test kamailio_pinholes -- --nocapture`.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use sipsd::crypto::cms::{ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::engine::ua::UaSession;
use sipsd::sip::body::BodyOptions;

use support::dialog::{lines, received, Dialog};
use support::fwbed::netns::{CALLEE, CALLER, OTHER};
use support::fwbed::{fw_line, netns_kamailio, sa, sdp, Bed, FW_LINK, TABLE};
use support::kamailio::{next_hop, Kamailio, P1};
use support::procs::wait_for;
use support::sip::{reply, reply_with, Peer};
use support::vectors::cert_recipient;
use support::work::WorkDir;

const LIFETIME: u64 = 4;
const MAX_DURATION: u64 = 14;

/// Seals the caller's INVITE for `call`, offering `who`'s media at the caller's `port`, and
/// sends it to P1 for the callee.
fn send_offer(
    call: &str,
    who: &str,
    port: u16,
    recipients: &[Recipient],
    p1: &Kamailio,
    caller: &Peer,
    callee: &Peer,
) -> Dialog {
    let (d, invite) = Dialog::offer(
        call,
        &sdp(who, CALLER, port),
        recipients,
        ContentAlg::Aes256Gcm,
        p1,
        callee.port(),
    );
    caller.send(p1.port, &invite.build(caller.port()));
    d
}

#[test]
fn pinholes_follow_calls_through_kamailio() {
    let Some((_serial, t)) = netns_kamailio("kamailio_pinholes") else {
        return;
    };
    let started = Instant::now();
    let work = WorkDir::new("pinholes");
    let dir = work.path().to_path_buf();
    let (mut bed, _link, key_path) = Bed::up("k", &t.root, &work);
    println!(
        "  ok   agent up in {} on {FW_LINK}:5351 (table inet {TABLE})",
        bed.topo.f
    );
    println!("  --- the agent's table before any call (nft list table inet {TABLE}):");
    for l in bed.topo.nft(&["list", "table", "inet", TABLE]).lines() {
        println!("      {l}");
    }

    let caller = Peer::bind();
    let callee = Peer::bind();
    let hop = next_hop(callee.port());
    let agent = format!("{FW_LINK}:5351");
    let key = key_path.to_string_lossy().into_owned();
    let (life, maxd) = (LIFETIME.to_string(), MAX_DURATION.to_string());
    let mut p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_PINHOLES", None),
            ("PINHOLE_AGENT", Some(&agent)),
            ("PINHOLE_KEY", Some(&key)),
            ("PINHOLE_LIFETIME", Some(&life)),
            ("PINHOLE_MAX_DURATION", Some(&maxd)),
        ],
    );
    println!(
        "P1 (pid {}) on 127.0.0.1:{}, pinhole_agent {agent}, lifetime {LIFETIME} s, max duration {MAX_DURATION} s",
        p1.pid(),
        p1.port
    );

    let (a, b) = (bed.topo.a.clone(), bed.topo.b.clone());
    let caller_rtp = (a.as_str(), sa(CALLER, 40000));
    let caller_rtcp = (a.as_str(), sa(CALLER, 40001));
    let caller_other = (a.as_str(), sa(CALLER, 40010));
    let callee_rtp = (b.as_str(), sa(CALLEE, 50000));
    let callee_rtcp = (b.as_str(), sa(CALLEE, 50001));
    let other_host = (b.as_str(), sa(OTHER, 50000));
    let recipients = ["callee", "proxy1"]
        .map(|w| cert_recipient(w, IdKind::IssuerSerial, RsaPadding::OaepSha256));
    let opts = BodyOptions::default();

    // ---- call 1: offer ------------------------------------------------------------------
    let c1 = "fw-1@test";
    bed.topo.show_sets(TABLE, "before call 1");
    let mut d = send_offer(c1, "alice", 40000, &recipients, &p1, &caller, &callee);
    let inv = received(&callee, c1, "INVITE", 1).expect("P1 relays the INVITE");
    let line = fw_line(&p1, c1, "INVITE").unwrap_or_default();
    check!(
        line.contains("rc=1 pinholes=0"),
        "offer: sd_pinhole_open() kept it, nothing opened before the answer ({line})"
    );
    bed.topo
        .show_sets(TABLE, "after the offer (pinhole_on_offer=0)");
    check!(
        bed.elements().is_empty(),
        "offer only: the agent's sets are empty"
    );
    bed.expect_both_ways(
        false,
        "before the answer",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );

    // ---- call 1: answer ----------------------------------------------------------------
    let t_answer = Instant::now();
    let ok = d.answer(&p1, &caller, &callee, &inv, &sdp("bob", CALLEE, 50000));
    let effective = t_answer.elapsed();
    let line = fw_line(&p1, c1, "INVITE200").unwrap_or_default();
    check!(
        line.contains("rc=1 pinholes=4"),
        "answer: 4 pinholes confirmed by the agent (RTP and RTCP both ways), $sd(pinholes)=4 ({line}); 200 OK relayed {effective:?} after the callee sent it"
    );
    bed.topo
        .show_sets(TABLE, "after the answer (during call 1)");
    let during = bed.elements();
    check!(
        during.len() == 4 && !during.iter().any(|e| e.starts_with("open4")),
        "answered: 4 exact elements, no any-source one: {during:?}"
    );
    bed.expect_both_ways(
        true,
        "answered",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );
    bed.expect_both_ways(
        true,
        "answered",
        ("caller RTCP", caller_rtcp),
        ("callee RTCP", callee_rtcp),
    );
    bed.expect(
        false,
        "answered: another source -> caller",
        other_host,
        caller_rtp,
    );
    bed.expect(
        false,
        "answered: callee -> another port of the caller",
        callee_rtp,
        caller_other,
    );
    let rpc = p1.rpc(&["sipsd.pinholes"]);
    check!(
        rpc.contains(c1)
            && rpc.contains("answered")
            && rpc.contains("10.77.1.2:40000 <- 10.77.2.2:50000"),
        "RPC sipsd.pinholes lists the dialog, answered, with its flows:\n{}",
        rpc.trim_end()
    );

    // ---- the key-replacement attack: same Call-ID and From tag, a new key, no proof ------
    let mut stranger = send_offer(c1, "mallory", 40010, &recipients, &p1, &caller, &callee);
    wait_for(Duration::from_secs(5), || {
        lines(&p1, c1, "INVITE").len() >= 2
    });
    let l = lines(&p1, c1, "INVITE");
    check!(
        l.len() >= 2 && !l[1].decrypted,
        "attack, initial INVITE with a new key wrapped for P1: not decrypted ({})",
        l.get(1).map(|x| x.get("code")).unwrap_or_default()
    );
    stranger.learn_route(&ok);
    let (_, fresh) = UaSession::offer(
        "application/sdp",
        &sdp("mallory", OTHER, 50010),
        &recipients,
        ContentAlg::Aes256Gcm,
        None,
        &opts,
    )
    .expect("seal");
    caller.send(
        p1.port,
        &stranger.request("INVITE", &fresh).build(caller.port()),
    );
    wait_for(Duration::from_secs(5), || {
        lines(&p1, c1, "INVITE").len() >= 3
    });
    let l = lines(&p1, c1, "INVITE");
    check!(
        l.len() >= 3 && !l[2].decrypted,
        "attack, re-INVITE with a new key and no rotation proof: not decrypted ({})",
        l.get(2).map(|x| x.get("code")).unwrap_or_default()
    );
    check!(
        bed.elements() == during,
        "the attacks opened no pinhole: the same 4 elements"
    );
    // The stranger's initial INVITE is relayed and nobody answers it: P1's transaction fails
    // (408 after fr_timer). Wait for that failure, so the re-INVITE below shows it ended
    // neither the dialog key nor the pinholes.
    check!(
        wait_for(Duration::from_secs(15), || caller
            .received()
            .iter()
            .any(|m| m.call_id() == c1 && m.status() == Some(408))),
        "the stranger's INVITE failed at P1 (408 to its sender)"
    );
    bed.expect(
        false,
        "after the attack: callee -> the attacker's port",
        callee_rtp,
        caller_other,
    );
    bed.expect(
        false,
        "after the attack: the attacker's address -> caller",
        other_host,
        caller_rtp,
    );

    // ---- agent restarted mid-call ----------------------------------------------------------
    bed.agent.kill();
    bed.expect(true, "agent down: callee -> caller", callee_rtp, caller_rtp);
    bed.start_agent();
    bed.topo.show_sets(TABLE, "after the agent's restart");
    check!(
        bed.elements() == during,
        "agent restarted (SIGKILL, then run): the same 4 elements, nothing added or flushed"
    );
    bed.expect_both_ways(
        true,
        "after restart",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );
    bed.expect(
        false,
        "after restart: another source -> caller",
        other_host,
        caller_rtp,
    );
    let refreshed = wait_for(Duration::from_secs(2 * LIFETIME), || {
        p1.rpc_fields(&["sipsd.stats"])
            .get("pinholes_refreshed")
            .is_some_and(|n| *n > 0)
    });
    check!(
        refreshed && bed.elements() == during,
        "the timer process refreshed the lifetimes (pinholes_refreshed > 0), elements unchanged"
    );
    bed.expect(
        true,
        "after the refresh: callee -> caller",
        callee_rtp,
        caller_rtp,
    );

    // ---- re-INVITE with new media: the pinholes follow
    let reinv = d.encrypted("INVITE", &sdp("alice", CALLER, 40020));
    caller.send(p1.port, &reinv.build(caller.port()));
    let rinv = callee
        .wait(Duration::from_secs(5), |m| {
            m.method() == "INVITE" && m.call_id() == c1 && m.body == reinv.body
        })
        .expect("P1 relays the re-INVITE");
    let reans =
        d.ua.encrypt("application/sdp", &sdp("bob", CALLEE, 50020), &opts)
            .expect("the new answer");
    callee.send(
        p1.port,
        &reply_with(
            &rinv,
            200,
            "OK",
            &[("Content-Type", reans.content_type.as_str())],
            &reans.body,
        ),
    );
    let moved = wait_for(Duration::from_secs(5), || {
        let e = bed.elements();
        e.len() == 4 && e.iter().all(|x| x.contains("40020") || x.contains("40021"))
    });
    bed.topo
        .show_sets(TABLE, "after the re-INVITE (new ports 40020 / 50020)");
    check!(
        moved,
        "re-INVITE answered: 4 elements for the new ports, the old ones deleted"
    );
    let reinv_line = lines(&p1, c1, "INVITE");
    check!(
        reinv_line.last().is_some_and(|l| l.decrypted && l.get("source") == "cache"),
        "the re-INVITE opened with the dialog key: the stranger's INVITE, refused and failed (408), ended neither the key nor the pinholes"
    );
    let caller_rtp = (a.as_str(), sa(CALLER, 40020));
    let caller_rtcp = (a.as_str(), sa(CALLER, 40021));
    let callee_rtp = (b.as_str(), sa(CALLEE, 50020));
    let callee_rtcp = (b.as_str(), sa(CALLEE, 50021));
    bed.expect(
        true,
        "re-INVITE: callee -> caller (new ports)",
        callee_rtp,
        caller_rtp,
    );
    bed.expect(
        true,
        "re-INVITE: caller -> callee (new ports)",
        caller_rtp,
        callee_rtp,
    );
    bed.expect(
        false,
        "re-INVITE: the old ports no longer pass",
        (b.as_str(), sa(CALLEE, 50000)),
        (a.as_str(), sa(CALLER, 40000)),
    );

    // ---- BYE ------------------------------------------------------------------------------------
    let bye = d.bare("BYE");
    caller.send(p1.port, &bye.build(caller.port()));
    let breq = received(&callee, c1, "BYE", d.cseq()).expect("P1 relays the BYE");
    callee.send(p1.port, &reply(&breq, 200, "OK"));
    let gone = wait_for(Duration::from_secs(5), || bed.elements().is_empty());
    bed.topo.show_sets(TABLE, "after call 1's BYE");
    check!(gone, "BYE answered 200: the agent's sets are empty");
    bed.expect_both_ways(
        false,
        "after BYE",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );
    bed.expect(
        false,
        "after BYE: callee RTCP -> caller RTCP",
        callee_rtcp,
        caller_rtcp,
    );

    let caller_rtp = (a.as_str(), sa(CALLER, 40000));
    let callee_rtp = (b.as_str(), sa(CALLEE, 50000));

    // ---- call 2: the BYE is lost -----------------------------------------------------------------
    let c2 = "fw-2@test";
    let mut d2 = send_offer(c2, "alice", 40000, &recipients, &p1, &caller, &callee);
    let inv = received(&callee, c2, "INVITE", 1).expect("P1 relays call 2's INVITE");
    let answer = d2
        .ua
        .encrypt("application/sdp", &sdp("bob", CALLEE, 50000), &opts)
        .expect("answer");
    let t2 = Instant::now();
    callee.send(
        p1.port,
        &reply_with(
            &inv,
            200,
            "OK",
            &[("Content-Type", answer.content_type.as_str())],
            &answer.body,
        ),
    );
    let line = fw_line(&p1, c2, "INVITE200").unwrap_or_default();
    check!(line.contains("pinholes=4"), "call 2 answered: {line}");
    bed.expect_both_ways(
        true,
        "call 2",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );
    bed.topo
        .show_sets(TABLE, "during call 2 (its BYE will never come)");
    let limit = Duration::from_secs(MAX_DURATION + LIFETIME + 6);
    let expired = wait_for(limit, || bed.elements().is_empty());
    check!(
        expired && t2.elapsed() >= Duration::from_secs(MAX_DURATION - 1),
        "call 2's BYE lost: refreshed until pinhole_max_duration, then the elements expired at the agent ({:?} after the answer)",
        t2.elapsed()
    );
    bed.topo.show_sets(TABLE, "after call 2's expiry");
    bed.expect_both_ways(
        false,
        "call 2 expired",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );
    let forgotten = wait_for(Duration::from_secs(LIFETIME + 3), || {
        !p1.rpc(&["sipsd.pinholes"]).contains(c2)
    });
    check!(
        forgotten,
        "P1 forgot call 2 (sipsd.pinholes no longer lists it)"
    );

    // ---- statistics ------------------------------------------------------------------------------
    let s = p1.rpc_fields(&["sipsd.stats"]);
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    check!(
        g("pinholes_opened") >= 8
            && g("pinholes_closed") >= 4
            && g("pinholes_expired") >= 1
            && g("pinhole_exchanges") > 0
            && g("pinhole_latency_max_us") > 0,
        "statistics: pinholes_opened {}, _closed {}, _expired {}, _refreshed {}, _refused {}, agent_errors {}, exchanges {}, mean latency {} us, max {} us",
        g("pinholes_opened"),
        g("pinholes_closed"),
        g("pinholes_expired"),
        g("pinholes_refreshed"),
        g("pinholes_refused"),
        g("pinhole_agent_errors"),
        g("pinhole_exchanges"),
        g("pinhole_latency_us") / g("pinhole_exchanges").max(1),
        g("pinhole_latency_max_us")
    );
    let stats = p1.statistics("sipsd:");
    check!(
        stats.contains_key("sipsd:pinholes_opened"),
        "the pinhole counters are Kamailio statistics too (sipsd:pinholes_opened = {:?})",
        stats.get("sipsd:pinholes_opened")
    );
    let log = p1.log_text();
    check!(
        !log.contains("inline:") && !log.contains("m=audio"),
        "P1's log holds no key parameters and no SDP text"
    );
    p1.stop();

    // ---- P1 again, with pinhole_on_offer=1 and pinhole_on_failure=reject ------------------------
    let p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_PINHOLES", None),
            ("PINHOLE_AGENT", Some(&agent)),
            ("PINHOLE_KEY", Some(&key)),
            ("PINHOLE_LIFETIME", Some(&life)),
            ("PINHOLE_MAX_DURATION", Some(&maxd)),
            ("PINHOLE_ON_OFFER", Some("1")),
            ("WITH_PINHOLE_REJECT", None),
        ],
    );
    println!(
        "P1 restarted (pid {}) with pinhole_on_offer=1, pinhole_on_failure=reject",
        p1.pid()
    );
    bed.agent.kill();
    let c3 = "fw-3@test";
    let t3 = Instant::now();
    let _d3 = send_offer(c3, "alice", 40000, &recipients, &p1, &caller, &callee);
    let final3 = caller.wait(Duration::from_secs(5), |m| {
        m.call_id() == c3 && m.status().is_some_and(|s| s >= 200)
    });
    let took = t3.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    check!(
        final3.as_ref().and_then(|m| m.status()) == Some(503) && !callee.has_request(c3),
        "agent down, pinhole_on_failure=reject: the INVITE is answered {:?} after {took:?} (pinhole_timeout 300 ms, then the undo) and not forwarded",
        final3.as_ref().and_then(|m| m.status())
    );
    bed.start_agent();
    check!(
        bed.elements().is_empty(),
        "agent back: nothing open for the refused INVITE"
    );

    let c4 = "fw-4@test";
    let mut d4 = send_offer(c4, "alice", 40000, &recipients, &p1, &caller, &callee);
    let inv = received(&callee, c4, "INVITE", 1).expect("P1 relays call 4's INVITE");
    let line = fw_line(&p1, c4, "INVITE").unwrap_or_default();
    check!(
        line.contains("rc=1 pinholes=2"),
        "pinhole_on_offer=1: the offer opened 2 any-source pinholes (RTP, RTCP) to the caller ({line})"
    );
    bed.topo
        .show_sets(TABLE, "after call 4's offer (pinhole_on_offer=1)");
    let early = bed.elements();
    check!(
        early.len() == 2 && early.iter().all(|e| e.starts_with("open4")),
        "offer: 2 any-source elements: {early:?}"
    );
    bed.expect(
        true,
        "early media: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    bed.expect(
        true,
        "early media (any source): another source -> caller",
        other_host,
        caller_rtp,
    );
    bed.expect(
        false,
        "early media: caller -> callee (not open before the answer)",
        caller_rtp,
        callee_rtp,
    );
    let answer = d4
        .ua
        .encrypt("application/sdp", &sdp("bob", CALLEE, 50000), &opts)
        .expect("answer");
    callee.send(
        p1.port,
        &reply_with(
            &inv,
            200,
            "OK",
            &[("Content-Type", answer.content_type.as_str())],
            &answer.body,
        ),
    );
    let ok4 = caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(200) && m.call_id() == c4
        })
        .expect("call 4's 200 OK");
    d4.learn_route(&ok4);
    let line = fw_line(&p1, c4, "INVITE200").unwrap_or_default();
    check!(line.contains("pinholes=4"), "call 4 answered: {line}");
    bed.topo
        .show_sets(TABLE, "after call 4's answer (narrowed)");
    let narrowed = bed.elements();
    check!(
        narrowed.len() == 4 && !narrowed.iter().any(|e| e.starts_with("open4")),
        "answer: the any-source elements narrowed to the callee's address:port, 4 exact elements"
    );
    bed.expect_both_ways(
        true,
        "narrowed",
        ("caller", caller_rtp),
        ("callee", callee_rtp),
    );
    bed.expect(
        false,
        "narrowed: another source -> caller",
        other_host,
        caller_rtp,
    );
    let bye = d4.bare("BYE");
    caller.send(p1.port, &bye.build(caller.port()));
    let breq = received(&callee, c4, "BYE", d4.cseq()).expect("P1 relays call 4's BYE");
    callee.send(p1.port, &reply(&breq, 200, "OK"));
    let gone = wait_for(Duration::from_secs(5), || bed.elements().is_empty());
    check!(gone, "call 4's BYE: the agent's sets are empty");
    bed.expect(
        false,
        "after call 4's BYE: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    println!("  ok   whole run {:?}", started.elapsed());
}
