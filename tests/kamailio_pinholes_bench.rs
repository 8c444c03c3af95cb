//! Benchmark (not a timed test: `#[ignore]`, run by `scripts/bench` step 6): how long the
//! 200 OK spends in Kamailio P1 when P1 opens the call's pinholes before relaying it, next to
//! the same P1 without pinholes, on the firewall bed of tests/kamailio_pinholes.rs (the agent
//! `sipsd-fw` with real nftables in network namespaces, P1 = trusted-proxy.cfg WITH_PINHOLES).
//!
//! P1 relays the answer only after the agent confirmed the nftables transaction (the module
//! waits for the PCP answer, bounded by pinhole_timeout), so "the callee sent the 200 OK" →
//! "the caller received it" is the time from the 200 OK reaching P1 to the pinhole being
//! effective, plus two loopback hops. Every tenth call, a packet the callee sends right after
//! the caller got the 200 OK is required to reach the caller through the firewall.
//!
//! Run: `cargo test --release --test kamailio_pinholes_bench -- --ignored --nocapture`
//! (root, kamailio, build/sipsd.so); `SIPSD_BENCH_OUT=FILE` appends the markdown table there,
//! `SIPSD_BENCH_CALLS` sets the calls per variant (default 200).

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::sip::body::BodyOptions;
use support::dialog::{received, Dialog};
use support::fwbed::netns::{CALLEE, CALLER};
use support::fwbed::{sa, sdp, Bed, FW_LINK, TABLE};
use support::kamailio::{next_hop, Kamailio, P1};
use support::procs::wait_for;
use support::sip::{reply, reply_with, Peer};
use support::tools::{Need, Tools};
use support::vectors::cert_recipient;
use support::work::WorkDir;

/// Median and 99th percentile of `v` (sorted here).
fn median_p99(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `calls` calls from `caller` through `p1` to `callee` (P1's next hop): offer, answer
/// (timed), BYE; returns the answers' times.
fn calls(
    bed: &Bed,
    p1: &Kamailio,
    (caller, callee): (&Peer, &Peer),
    calls: u16,
    pinholes: bool,
) -> Vec<Duration> {
    let recipients = ["callee", "proxy1"]
        .map(|w| cert_recipient(w, IdKind::IssuerSerial, RsaPadding::OaepSha256));
    let opts = BodyOptions::default();
    let mut times = Vec::with_capacity(calls.into());
    for i in 0..calls {
        let call = format!("bench-{pinholes}-{i}@test");
        let (a_port, b_port) = (20000 + 2 * i, 40000 + 2 * i);
        let (mut d, invite) = Dialog::offer(
            &call,
            &sdp("alice", CALLER, a_port),
            &recipients,
            ContentAlg::Aes256Gcm,
            p1,
            callee.port(),
        );
        caller.send(p1.port, &invite.build(caller.port()));
        let inv = received(callee, &call, "INVITE", 1).expect("P1 relays the INVITE");
        let answer =
            d.ua.encrypt("application/sdp", &sdp("bob", CALLEE, b_port), &opts)
                .expect("the answer under the dialog key");
        let ok = reply_with(
            &inv,
            200,
            "OK",
            &[("Content-Type", answer.content_type.as_str())],
            &answer.body,
        );
        let t0 = Instant::now();
        callee.send(p1.port, &ok);
        let got = caller
            .wait(Duration::from_secs(5), |m| {
                m.status() == Some(200) && m.call_id() == call
            })
            .expect("the 200 OK reaches the caller");
        times.push(t0.elapsed());
        if pinholes && i % 10 == 0 {
            bed.expect(
                true,
                &format!("call {i}: callee -> caller right after the 200 OK"),
                (bed.topo.b.as_str(), sa(CALLEE, b_port)),
                (bed.topo.a.as_str(), sa(CALLER, a_port)),
            );
        }
        d.learn_route(&got);
        let bye = d.bare("BYE");
        caller.send(p1.port, &bye.build(caller.port()));
        let breq = received(callee, &call, "BYE", d.cseq()).expect("P1 relays the BYE");
        callee.send(p1.port, &reply(&breq, 200, "OK"));
    }
    if pinholes {
        check!(
            wait_for(Duration::from_secs(10), || bed.elements().is_empty()),
            "after {calls} calls and their BYEs the agent's sets are empty"
        );
    }
    times
}

#[test]
#[ignore = "benchmark: scripts/bench step 6"]
fn answer_to_effective_pinhole_through_kamailio() {
    let _serial = support::serial();
    if support::fwbed::netns::skip_unless_able("kamailio_pinholes_bench") {
        return;
    }
    let Some(t) = Tools::require(
        "kamailio_pinholes_bench",
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let n: u16 = std::env::var("SIPSD_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .clamp(10, 5000);
    let work = WorkDir::new("pinholes-bench");
    let dir = work.path().to_path_buf();
    let (bed, _link, key_path) = Bed::up("kb", &t.root, &work);
    let agent = format!("{FW_LINK}:5351");
    let key = key_path.to_string_lossy().into_owned();
    let mut results = Vec::new();
    for pinholes in [true, false] {
        let caller = Peer::bind();
        let callee = Peer::bind();
        let hop = next_hop(callee.port());
        let mut defines = vec![("NEXT_HOP", Some(hop.as_str()))];
        if pinholes {
            defines.extend([
                ("WITH_PINHOLES", None),
                ("PINHOLE_AGENT", Some(agent.as_str())),
                ("PINHOLE_KEY", Some(key.as_str())),
            ]);
        }
        let mut p1 = P1::start(&t, &dir, &defines);
        let mut times = calls(&bed, &p1, (&caller, &callee), n, pinholes);
        p1.stop();
        let (med, p99) = median_p99(&mut times);
        println!(
            "  {}: 200 OK callee -> caller through P1, {n} calls: median {}, p99 {}",
            if pinholes {
                "with pinholes"
            } else {
                "without pinholes"
            },
            ms(med),
            ms(p99)
        );
        results.push((pinholes, med, p99));
    }
    let (_, with_med, with_p99) = results[0];
    let (_, without_med, without_p99) = results[1];
    let table = format!(
        "\n### Through Kamailio P1 ({n} calls per variant, one at a time, {TABLE} table in the fw namespace)\n\n\
         `cargo test --release --test kamailio_pinholes_bench -- --ignored`: the callee's 200 OK to P1 until the caller has it \
         (P1 relays it once the agent confirmed the call's 4 pinholes). Every tenth call, a packet the callee sent right after \
         that crossed the firewall.\n\n\
         | P1 | 200 OK in → out, median | p99 |\n| --- | --- | --- |\n\
         | trusted-proxy.cfg WITH_PINHOLES (**= time from the 200 OK at P1 to the pinhole being effective**) | **{}** | **{}** |\n\
         | trusted-proxy.cfg without pinholes | {} | {} |\n\
         | difference (the agent exchange, seen from P1) | {} | {} |\n",
        ms(with_med),
        ms(with_p99),
        ms(without_med),
        ms(without_p99),
        ms(with_med.saturating_sub(without_med)),
        ms(with_p99.saturating_sub(without_p99)),
    );
    print!("{table}");
    if let Ok(out) = std::env::var("SIPSD_BENCH_OUT") {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .expect("SIPSD_BENCH_OUT");
        f.write_all(table.as_bytes())
            .expect("write SIPSD_BENCH_OUT");
    }
}
