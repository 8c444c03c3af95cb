//! Pinholes and recording survive a proxy failover (issue 15): two trusted Kamailio proxies
//! of one cluster on loopback (trusted-proxy.cfg with `WITH_CLUSTER`, `WITH_PINHOLES`,
//! `WITH_RECORDING`: DMQ between them), the real firewall agent (`sipsd-fw`, nftables in the
//! namespaces of tests/support/fwbed.rs) that both nodes may ask, and the recorder's end of
//! the key channel (`sipsd::record::ChannelReceiver` on a UDP socket, as kamailio_record).
//!
//! ```text
//!   caller net 10.77.1.2 ── fw (sipsd-fw) ── callee net 10.77.2.2
//!                              │ 10.77.8.1:5351 PCP + MAC (allow 10.77.8.2: both nodes)
//!   this namespace 10.77.8.2: p1a, p1b (Kamailio + sipsd, DMQ on loopback), caller, callee
//! ```
//! Checked, each printed: the call set up through p1a opens 4 pinholes and p1a starts the
//! recording; p1b lists the dialog's pinholes and recording as replicas owned by p1a; p1a
//! killed (SIGKILL) after the 200 OK; p1b takes the dialog over when p1a's refresh is
//! overdue and refreshes it: media still passes both ways after the first lifetime; the BYE
//! through p1b deletes the pinholes (media dropped after) and the recorder gets the stop
//! (p1a is dead: it comes from p1b, with a newer sequence than the start); replication
//! messages sealed by the test as a third node: a replayed one cannot bring back a closed
//! dialog, an overdue one under another key is refused and opens nothing while the same
//! under the cluster key, for a dialog whose key p1b holds, is taken over (so the takeover is
//! what the refusal prevents).
//!
//! Needs root (namespaces, nftables), kamailio, kamcmd and build/sipsd.so (make); otherwise
//! SKIPPED unless SIPSD_REQUIRE_E2E=1. Run: `cargo test --test cluster_pinholes -- --nocapture`.

#[macro_use]
mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::crypto::keys::{KeyStore, PskSpec};
use sipsd::engine::cluster::{Cluster, ClusterConfig, MediaFlow, MediaStage, MediaState};
use sipsd::record::{ChannelReceiver, Event, KeyMessage};

use support::cluster::{cluster_view, kdmq, sealed_key_update, start_node, write_key, KEY_ID};
use support::dialog::{received, Dialog};
use support::fwbed::netns::{CALLEE, CALLER};
use support::fwbed::{netns_kamailio, sa, sdp, Bed, FW_LINK, TABLE};
use support::kamailio::next_hop;
use support::ports::free_ports;
use support::procs::{signal_group, wait_for};
use support::sip::{reply, Peer};
use support::vectors::cert_recipient;
use support::work::WorkDir;

const LIFETIME: u64 = 9;

fn next_key_message(sock: &UdpSocket, rx: &mut ChannelReceiver) -> Option<KeyMessage> {
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(rx.open(&buf[..n]).expect("opens under the shared KEK"))
}

/// A replicated state of a dialog the test makes up, owned by node `owner`.
fn made_up(call: &str, version: u64, expires_at: u64, port: u16) -> MediaState {
    let flow = |internal: &str, p, remote: &str, rp| MediaFlow {
        internal: internal.parse().unwrap(),
        port: p,
        remote: Some(remote.parse().unwrap()),
        remote_port: rp,
    };
    MediaState {
        call_id: call.as_bytes().to_vec(),
        tag: b"made-up".to_vec(),
        version,
        owner: "p1t".into(),
        stage: MediaStage::Answered,
        opened_at: expires_at.saturating_sub(LIFETIME),
        expires_at,
        flows: vec![
            flow(CALLER, port, CALLEE, port + 10000),
            flow(CALLEE, port + 10000, CALLER, port),
        ],
        recording: None,
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn pinholes_and_recording_follow_the_dialog_to_the_other_node() {
    let Some((_serial, t)) = netns_kamailio("cluster_pinholes") else {
        return;
    };
    let work = WorkDir::new("cluster-pinholes");
    let dir = work.path().to_path_buf();
    let (bed, _link, key_path) = Bed::up("c", &t.root, &work);
    let keys = work.sub("keys");
    write_key(&keys.join("cluster.key"), 0x5c);
    let kek = dir.join("rec.kek");
    write_key(&kek, 0x5a);
    let rec_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rec = support::record::key_channel_receiver(&kek);

    let caller = Peer::bind();
    let callee = Peer::bind();
    let hop = next_hop(callee.port());
    let (agent, pkey) = (
        format!("{FW_LINK}:5351"),
        key_path.to_string_lossy().into_owned(),
    );
    let (life, recorder, kek_path) = (
        LIFETIME.to_string(),
        rec_sock.local_addr().unwrap().to_string(),
        kek.to_string_lossy().into_owned(),
    );
    let extra = [
        ("WITH_PINHOLES", None),
        ("PINHOLE_AGENT", Some(agent.as_str())),
        ("PINHOLE_KEY", Some(pkey.as_str())),
        ("PINHOLE_LIFETIME", Some(life.as_str())),
        ("PINHOLE_MAX_DURATION", Some("600")),
        ("PINHOLE_TIMEOUT", Some("2000")),
        ("WITH_RECORDING", None),
        ("RECORDER", Some(recorder.as_str())),
        ("RECORD_KEK", Some(kek_path.as_str())),
    ];
    let dmq = free_ports(2);
    let mut p1a = start_node(&t, &dir, "p1a", (dmq[0], dmq[1]), &hop, &extra);
    let p1b = start_node(&t, &dir, "p1b", (dmq[1], dmq[0]), &hop, &extra);
    check!(
        wait_for(Duration::from_secs(20), || cluster_view(&p1a) == (1, 1)
            && cluster_view(&p1b) == (1, 1)),
        "p1a and p1b found each other over DMQ and synced; both ask the agent at {agent} (lifetime {LIFETIME} s)"
    );

    // ---- a call through p1a, recorded -----------------------------------------------------
    let (a, b) = (bed.topo.a.clone(), bed.topo.b.clone());
    let caller_rtp = (a.as_str(), sa(CALLER, 40000));
    let callee_rtp = (b.as_str(), sa(CALLEE, 50000));
    let recipients = ["callee", "proxy1"]
        .map(|w| cert_recipient(w, IdKind::IssuerSerial, RsaPadding::OaepSha256));
    let call = "failover-fw@cluster";
    let (mut d, invite) = Dialog::offer(
        call,
        &sdp("alice", CALLER, 40000),
        &recipients,
        ContentAlg::Aes256Gcm,
        &p1a,
        callee.port(),
    );
    let invite = invite.header("X-Record", "yes");
    caller.send(p1a.port, &invite.build(caller.port()));
    let inv = received(&callee, call, "INVITE", 1).expect("p1a relays the INVITE");
    d.answer(&p1a, &caller, &callee, &inv, &sdp("bob", CALLEE, 50000));
    let answered = Instant::now();
    let ack = d.bare("ACK");
    caller.send(p1a.port, &ack.build(caller.port()));
    let start = next_key_message(&rec_sock, &mut rec).expect("p1a's recording start");
    check!(
        matches!(&start.event, Event::Start(s) if s.call_id == call),
        "p1a sent the recorder the start of {call} at the 200 OK"
    );
    let opened = wait_for(Duration::from_secs(5), || bed.elements().len() == 4);
    check!(
        opened,
        "p1a opened 4 pinholes at the agent: {:?}",
        bed.elements()
    );
    let applied = wait_for(Duration::from_secs(5), || {
        p1b.stat("cluster_media_applied") >= 1
    });
    check!(
        applied,
        "p1b applied the dialog's pinhole state p1a replicated (cluster_media_applied={})",
        p1b.stat("cluster_media_applied")
    );
    let rpc = p1b.rpc(&["sipsd.pinholes"]);
    check!(
        rpc.contains(call)
            && rpc.contains("replica")
            && rpc.contains("p1a")
            && rpc.contains("10.77.1.2:40000 <- 10.77.2.2:50000"),
        "p1b's sipsd.pinholes lists them, source replica, owner p1a:\n{}",
        rpc.trim_end()
    );
    let recs = p1b.rpc(&["sipsd.recordings"]);
    check!(
        recs.contains(call) && recs.contains("active") && recs.contains("replica"),
        "p1b's sipsd.recordings lists the recording as an active replica:\n{}",
        recs.trim_end()
    );
    let secret = "WVNfUmVhbGx5U2VjcmV0U0RFU0tleU1hcmtlcjEy";
    check!(
        !recs.contains(secret) && !p1b.log_text().contains(secret),
        "no a=crypto key on p1b (RPC, log): the replicated recording state carries none"
    );

    // ---- p1a dies ----------------------------------------------------------------------------
    check!(
        p1b.stat("pinholes_taken_over") == 0 && p1b.stat("pinhole_exchanges") == 0,
        "while p1a lives p1b leaves the dialog to it: no takeover, no exchange with the agent"
    );
    signal_group(p1a.pid(), "-KILL");
    let dead = wait_for(Duration::from_secs(5), || !p1a.alive());
    check!(
        dead,
        "p1a killed (SIGKILL) {:?} after the 200 OK",
        answered.elapsed()
    );
    let killed = Instant::now();
    let taken = wait_for(Duration::from_secs(3 * LIFETIME), || {
        p1b.stat("pinholes_taken_over") >= 1
    });
    check!(
        taken,
        "p1b took the dialog over when p1a's refresh was overdue: {:?} after the kill, {:?} after the answer (pinholes_taken_over=1)",
        killed.elapsed(),
        answered.elapsed()
    );
    let past = wait_for(Duration::from_secs(4 * LIFETIME), || {
        answered.elapsed() > Duration::from_secs(LIFETIME + 3)
            && p1b.stat("pinholes_refreshed") >= 2
    });
    check!(
        past,
        "{:?} after the answer (lifetime {LIFETIME} s): p1b refreshed the pinholes {} times",
        answered.elapsed(),
        p1b.stat("pinholes_refreshed")
    );
    bed.topo
        .show_sets(TABLE, "after the first lifetime, p1a dead");
    check!(
        bed.elements().len() == 4,
        "the agent still holds the 4 elements"
    );
    bed.expect(true, "p1a dead: callee -> caller", callee_rtp, caller_rtp);
    bed.expect(true, "p1a dead: caller -> callee", caller_rtp, callee_rtp);
    let rpc = p1b.rpc(&["sipsd.pinholes"]);
    check!(
        rpc.contains("local") && rpc.contains("p1b"),
        "p1b's sipsd.pinholes: now source local, owner p1b"
    );

    // ---- the BYE through p1b -----------------------------------------------------------------
    let bye = d.bare("BYE");
    caller.send(p1b.port, &bye.build(caller.port()));
    let breq = received(&callee, call, "BYE", d.cseq()).expect("p1b relays the BYE");
    callee.send(p1b.port, &reply(&breq, 200, "OK"));
    check!(
        wait_for(Duration::from_secs(5), || bed.elements().is_empty()),
        "BYE answered 200 through p1b: the agent's sets are empty"
    );
    bed.expect(false, "after BYE: callee -> caller", callee_rtp, caller_rtp);
    bed.expect(false, "after BYE: caller -> callee", caller_rtp, callee_rtp);
    let stop = next_key_message(&rec_sock, &mut rec).expect("a stop");
    check!(
        matches!(stop.event, Event::Stop(_)) && stop.sequence > start.sequence,
        "the recorder accepted the stop, from p1b (p1a is dead), sequence {} > the start's {}",
        stop.sequence,
        start.sequence
    );
    check!(
        !p1b.rpc(&["sipsd.pinholes"]).contains(call)
            && p1b.rpc(&["sipsd.recordings"]).contains("finished"),
        "p1b's RPC: no pinholes left, the recording finished"
    );

    // ---- replication messages made by the test (a third node, p1t) ----------------------------
    let spec = PskSpec {
        id: sipsd::hex::decode(KEY_ID).expect("hex"),
        key_path: keys.join("cluster.key"),
        label: None,
    };
    let third = |key: PskSpec, name: &str| {
        Cluster::new(
            &ClusterConfig {
                keys: vec![key],
                node: Some(name.into()),
                ..ClusterConfig::default()
            },
            true,
            &[],
            &KeyStore::default(),
        )
        .expect("cluster")
        .expect("configured")
    };
    let ours = third(spec.clone(), "p1t");
    let injector = Peer::bind();
    let answers = |n: usize, code: u16| support::cluster::answered(&injector, n, code);
    let far = now_secs() + 600;
    let ghost = ours
        .seal_media(&made_up("ghost@cluster", 1, far, 40200))
        .unwrap();
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 1, &ghost));
    check!(
        answers(1, 200) && p1b.rpc(&["sipsd.pinholes"]).contains("ghost@cluster"),
        "a state sealed with the cluster key: accepted, listed on p1b as p1t's replica"
    );
    let mut closed = made_up("ghost@cluster", 2, far, 40200);
    closed.stage = MediaStage::Closed;
    let closing = ours.seal_media(&closed).unwrap();
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 2, &closing));
    check!(
        answers(2, 200) && !p1b.rpc(&["sipsd.pinholes"]).contains("ghost@cluster"),
        "its close (a newer version): gone from p1b, the agent not asked"
    );
    let replays = p1b.stat("cluster_replays");
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 3, &ghost));
    check!(
        answers(1, 403)
            && p1b.stat("cluster_replays") == replays + 1
            && !p1b.rpc(&["sipsd.pinholes"]).contains("ghost@cluster"),
        "the first message replayed: refused (403, cluster_replays +1), the dialog not back"
    );
    let other_key = dir.join("other.key");
    write_key(&other_key, 0x77);
    let stranger = third(
        PskSpec {
            key_path: other_key,
            ..spec
        },
        "p1x",
    );
    let bad = p1b.stat("cluster_bad_seal");
    let taken = p1b.stat("pinholes_taken_over");
    let forged = stranger
        .seal_media(&made_up("forged@cluster", 1, now_secs(), 40300))
        .unwrap();
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 4, &forged));
    check!(
        answers(2, 403) && p1b.stat("cluster_bad_seal") == bad + 1,
        "an overdue state under another key: refused (403, cluster_bad_seal +1)"
    );
    // the same overdue state under the cluster key, for a dialog whose key p1b holds (a
    // takeover needs it: a replica of a dialog without a key is forgotten, not taken over)
    let key = sealed_key_update(&ours, b"control@cluster", b"made-up");
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 5, &key));
    check!(
        answers(3, 200),
        "the made-up dialog's key, from p1t: accepted"
    );
    let control = ours
        .seal_media(&made_up("control@cluster", 1, now_secs(), 40400))
        .unwrap();
    injector.send(dmq[1], &kdmq(dmq[1], injector.port(), 6, &control));
    check!(
        answers(4, 200)
            && wait_for(Duration::from_secs(5), || p1b.stat("pinholes_taken_over")
                == taken + 1),
        "the same overdue state under the cluster key: p1b takes it over (pinholes_taken_over +1)"
    );
    let rpc = p1b.rpc(&["sipsd.pinholes"]);
    let el = bed.elements();
    check!(
        !rpc.contains("forged@cluster")
            && rpc.contains("control@cluster")
            && !el.iter().any(|e| e.contains("40300"))
            && el.iter().any(|e| e.contains("40400")),
        "the refused state opened nothing, the accepted one did (agent elements {el:?})"
    );
    p1a.stop();
}
