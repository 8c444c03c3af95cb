//! Every counter of the library is a Kamailio statistic and an RPC field: a real trusted
//! Kamailio (cfg-examples/trusted-proxy.cfg with build/sipsd.so) is asked with
//! `kamcmd stats.get_statistics sipsd:` and `kamcmd sipsd.stats`, and both must list exactly
//! the library's statistics table (`sipsd::engine::proxy::stats()`, what `sd_stat_count()` /
//! `sd_stat_name()` give C), with the values moving when a message is decrypted.
//! Run: `cargo test --test kamailio_stats -- --nocapture`.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::engine::proxy::stats;

use support::dialog::{last, sdp, through, Dialog};
use support::kamailio::{next_hop, P1};
use support::sip::{reply, Peer};
use support::tools::{Need, Tools};
use support::vectors::cert_recipient;
use support::work::WorkDir;

#[test]
fn every_library_counter_is_a_kamailio_statistic() {
    let _serial = support::serial();
    let Some(t) = Tools::require(
        "kamailio_stats",
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let dir = WorkDir::new("stats");
    let sink = Peer::answering(|m| (m.method() != "ACK").then(|| reply(m, 200, "OK")));
    let caller = Peer::bind();
    let hop = next_hop(sink.port());
    let p1 = P1::start(&t, &dir, &[("NEXT_HOP", Some(hop.as_str()))]);
    let library: BTreeSet<String> = stats().map(|s| s.name().to_string()).collect();
    let kamailio: BTreeSet<String> = p1
        .statistics("sipsd:")
        .keys()
        .map(|k| k.trim_start_matches("sipsd:").to_string())
        .collect();
    let missing: Vec<_> = library.difference(&kamailio).collect();
    let extra: Vec<_> = kamailio.difference(&library).collect();
    check!(
        missing.is_empty() && extra.is_empty(),
        "stats.get_statistics sipsd: lists the {} library statistics exactly (missing {missing:?}, extra {extra:?})",
        library.len()
    );
    let rpc: BTreeSet<String> = p1.rpc_fields(&["sipsd.stats"]).into_keys().collect();
    check!(
        rpc == library,
        "RPC sipsd.stats has one field per library statistic ({} fields)",
        rpc.len()
    );
    let before = p1.statistics("sipsd:");
    let proxy1 = cert_recipient("proxy1", IdKind::IssuerSerial, RsaPadding::OaepSha256);
    let (_, invite) = Dialog::offer(
        "stats@kamailio",
        &sdp("192.0.2.50", 46000),
        &[proxy1],
        ContentAlg::Aes256Gcm,
        &p1,
        sink.port(),
    );
    through(&p1, &caller, &sink, &invite);
    let l = last(&p1, "stats@kamailio", "INVITE", 1);
    let after = p1.statistics("sipsd:");
    let moved =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    check!(
        l.decrypted
            && moved("sipsd:decrypted") == 1
            && moved("sipsd:rsa_ops") == 1
            && moved("sipsd:cache_inserts") == 1,
        "one decrypted INVITE moves sipsd:decrypted, sipsd:rsa_ops and sipsd:cache_inserts by one"
    );
}
