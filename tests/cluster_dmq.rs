//! Two trusted Kamailio proxies of one cluster on loopback (cfg-examples/trusted-proxy.cfg with
//! `WITH_CLUSTER`: DMQ between them, a record-route name both accept), the test as the caller
//! that picks the node, as a dispatcher would. Each check printed:
//!
//! - the nodes find each other and sync at start (`sipsd.cluster`: one peer, a sync each);
//! - a call set up through p1a: its in-dialog MESSAGE sent to p1b, which never saw the INVITE,
//!   is read there with the replicated key (`source=replica`);
//! - the re-INVITE rotating the key through p1b (gen 2), then a MESSAGE through p1a: read with
//!   the rotated key p1b replicated;
//! - p1a restarted: it asks for a sync and gets the live key back (gen 2), reads the next
//!   MESSAGE with it;
//! - the BYE through p1b ends the key there (the dialog module of p1b does not know the
//!   dialog) and on p1a;
//! - replication messages the test seals itself with the cluster key (as a third node would):
//!   taken once, the same message again refused as a replay, one with a flipped tag byte and
//!   one under another key refused as not sealed for the cluster; each counted, each answered
//!   403, and the dialog keys untouched.
//!
//! The Docker testbed (tests/docker_cluster.rs) does the failover with a dispatcher, SIGKILL
//! and `docker stop`, and looks at the DMQ traffic on the wire.
//! Run: `cargo test --test cluster_dmq -- --nocapture --test-threads=1`.

#[macro_use]
mod support;

use std::time::Duration;

use base64::Engine as _;
use sipsd::crypto::cms::{ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::crypto::keys::{KeyStore, PskSpec};
use sipsd::engine::cluster::{Cluster, ClusterConfig};

use support::cluster::{
    answered, cluster_view, kdmq, sealed_key_update, start_node, write_key, KEY_ID, RR,
};
use support::dialog::{last, sdp, through, Dialog};
use support::kamailio::next_hop;
use support::ports::free_ports;
use support::procs::wait_for;
use support::sip::{reply_with, Peer};
use support::tools::kamailio_e2e;
use support::vectors::cert_recipient;
use support::work::WorkDir;

fn cert(who: &str) -> Recipient {
    cert_recipient(who, IdKind::IssuerSerial, RsaPadding::OaepSha256)
}

#[test]
fn two_nodes_over_dmq_on_loopback() {
    let Some((_serial, t)) = kamailio_e2e("cluster over DMQ") else {
        return;
    };
    let dir = WorkDir::new("cluster-dmq");
    // the cluster key next to proxy1's keys (scripts/lib/proxies.sh copies those beside it)
    let keys = dir.sub("keys");
    write_key(&keys.join("cluster.key"), 0x5c);
    let ua = Peer::answering(|m| {
        let contact = [("Contact", "<sip:bob@127.0.0.1>")];
        match m.method() {
            "ACK" => None,
            _ => Some(reply_with(m, 200, "OK", &contact, &[])),
        }
    });
    let caller = Peer::bind();
    let hop = next_hop(ua.port());
    let dmq = free_ports(2);
    let mut p1a = start_node(&t, dir.path(), "p1a", (dmq[0], dmq[1]), &hop, &[]);
    let p1b = start_node(&t, dir.path(), "p1b", (dmq[1], dmq[0]), &hop, &[]);
    let up = wait_for(Duration::from_secs(20), || {
        cluster_view(&p1a) == (1, 1) && cluster_view(&p1b) == (1, 1)
    });
    check!(
        up,
        "p1a (DMQ {}) and p1b (DMQ {}) found each other: one peer each, a sync completed each way",
        dmq[0],
        dmq[1]
    );

    // a call through p1a
    let both = [cert("callee"), cert("proxy1")];
    let call = "failover-1@cluster";
    let (mut d, invite) = Dialog::offer(
        call,
        &sdp("192.0.2.60", 46000),
        &both,
        ContentAlg::Aes256Gcm,
        &p1a,
        ua.port(),
    );
    through(&p1a, &caller, &ua, &invite);
    let ok = caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(200) && m.call_id() == call
        })
        .expect("the 200 OK comes back through p1a");
    d.learn_route(&ok);
    let rr = ok.header("record-route").unwrap_or("").to_string();
    check!(
        rr.contains(RR),
        "p1a record-routed the cluster name both nodes accept ({rr})"
    );
    let ack = d.bare("ACK");
    caller.send(p1a.port, &ack.build(caller.port()));
    check!(
        last(&p1a, call, "INVITE", 1).get("source") == "wrapped",
        "p1a read the offer with its own key (gen 1, source=wrapped)"
    );
    let replicated = wait_for(Duration::from_secs(5), || p1b.stat("cluster_applied") >= 1);
    check!(
        replicated,
        "p1b stored the key p1a replicated (cluster_applied)"
    );

    // its in-dialog MESSAGE goes to p1b, which never saw the INVITE
    let msg = d.encrypted("MESSAGE", b"to the other node");
    through(&p1b, &caller, &ua, &msg);
    let l = last(&p1b, call, "MESSAGE", 1);
    check!(
        l.decrypted && l.get("source") == "replica" && l.get("gen") == "1",
        "p1b read the MESSAGE with the replicated key (gen={} source={})",
        l.get("gen"),
        l.get("source")
    );
    check!(
        p1b.log_lines()
            .iter()
            .all(|l| !(l.call == call && l.what == "INVITE")),
        "p1b never saw the INVITE"
    );

    // the rotation through p1b, then a MESSAGE through p1a
    let rot = d.rotation("INVITE", &sdp("192.0.2.61", 46002), &both);
    through(&p1b, &caller, &ua, &rot);
    let l = last(&p1b, call, "INVITE", 1);
    check!(
        l.decrypted && l.get("gen") == "2" && l.get("source") == "wrapped",
        "p1b took the re-INVITE's rotated key (gen=2, proven by the current key)"
    );
    let rotated = wait_for(Duration::from_secs(5), || p1a.stat("cluster_applied") >= 1);
    check!(rotated, "p1a stored the rotated key p1b replicated");
    let msg = d.encrypted("MESSAGE", b"back to the first node");
    through(&p1a, &caller, &ua, &msg);
    let l = last(&p1a, call, "MESSAGE", 1);
    check!(
        l.decrypted && l.get("gen") == "2" && l.get("source") == "replica",
        "p1a read the next MESSAGE with the key rotated on p1b (gen={} source={})",
        l.get("gen"),
        l.get("source")
    );

    // p1a restarts: it syncs from p1b and reads the dialog again
    p1a.stop();
    let mut p1a = start_node(&t, dir.path(), "p1a", (dmq[0], dmq[1]), &hop, &[]);
    let synced = wait_for(Duration::from_secs(20), || {
        p1a.stat("cluster_syncs_done") >= 1 && p1a.stat("cache_entries") == 1
    });
    check!(
        synced,
        "p1a restarted with an empty cache, asked p1b for a sync and holds the dialog's key again"
    );
    let msg = d.encrypted("MESSAGE", b"after the restart");
    through(&p1a, &caller, &ua, &msg);
    let l = last(&p1a, call, "MESSAGE", 1);
    check!(
        l.decrypted && l.get("gen") == "2" && l.get("source") == "replica",
        "restarted p1a read the MESSAGE with the synced key (gen={} source={})",
        l.get("gen"),
        l.get("source")
    );

    // the BYE through p1b ends the dialog on both nodes
    let bye = d.bare("BYE");
    through(&p1b, &caller, &ua, &bye);
    caller
        .wait(Duration::from_secs(5), |m| {
            m.status() == Some(200) && m.call_id() == call && m.cseq().ends_with("BYE")
        })
        .expect("the BYE's 200 comes back");
    let ended = wait_for(Duration::from_secs(5), || {
        p1b.stat("cache_entries") == 0 && p1a.stat("cache_entries") == 0
    });
    check!(
        ended,
        "the BYE answered 200 on p1b ended the key there (script: the dialog is unknown to p1b's dialog module) and, replicated, on p1a"
    );

    // replication messages sealed by the test with the cluster key, as a third node would
    let spec = PskSpec {
        id: sipsd::hex::decode(KEY_ID).expect("hex"),
        key_path: keys.join("cluster.key"),
        label: None,
    };
    let cfg = ClusterConfig {
        keys: vec![spec.clone()],
        node: Some("p1t".into()),
        ..ClusterConfig::default()
    };
    let ours = Cluster::new(&cfg, true, &[], &KeyStore::default())
        .expect("cluster")
        .expect("configured");
    let text = sealed_key_update(&ours, b"injected@cluster", b"tag");
    let injector = Peer::bind();
    let answers = |n: usize, code: u16| answered(&injector, n, code);
    let (in0, replays0, bad0) = (
        p1b.stat("cluster_in"),
        p1b.stat("cluster_replays"),
        p1b.stat("cluster_bad_seal"),
    );
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 1, &text));
    check!(
        answers(1, 200) && p1b.stat("cluster_in") == in0 + 1 && p1b.stat("cache_entries") == 1,
        "a message sealed with the cluster key by a third node: accepted (200), its key stored"
    );
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 2, &text));
    check!(
        answers(1, 403) && p1b.stat("cluster_replays") == replays0 + 1,
        "the same message again: refused as a replay (403, cluster_replays +1)"
    );
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .expect("base64");
    let last_byte = der.len() - 1;
    der[last_byte] ^= 0x01;
    let forged = base64::engine::general_purpose::STANDARD.encode(&der);
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 3, &forged));
    check!(
        answers(2, 403) && p1b.stat("cluster_bad_seal") == bad0 + 1,
        "one bit of its GCM tag flipped: refused, not sealed for the cluster (403, cluster_bad_seal +1)"
    );
    let other_key = dir.path().join("other.key");
    write_key(&other_key, 0x77);
    let other = Cluster::new(
        &ClusterConfig {
            keys: vec![PskSpec {
                key_path: other_key,
                ..spec
            }],
            node: Some("p1x".into()),
            ..ClusterConfig::default()
        },
        true,
        &[],
        &KeyStore::default(),
    )
    .expect("cluster")
    .expect("configured");
    let stranger = sealed_key_update(&other, b"injected@cluster", b"tag");
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 4, &stranger));
    check!(
        answers(3, 403) && p1b.stat("cluster_bad_seal") == bad0 + 2,
        "a message sealed under another key (same key id): refused (cluster_bad_seal +1)"
    );
    check!(
        p1b.stat("cache_entries") == 1 && p1b.stat("cluster_in") == in0 + 1,
        "the refused messages changed nothing: still the one injected key, one message accepted"
    );
    let log = p1b.log_text();
    check!(
        log.contains("replayed or too old") && log.contains("does not open under a cluster key"),
        "p1b's log says why each was refused"
    );
    check!(
        !log.contains(&"42".repeat(32)) && !p1a.log_text().contains(&"42".repeat(32)),
        "no key in either log"
    );
    drop(p1b);
    p1a.stop();
}
