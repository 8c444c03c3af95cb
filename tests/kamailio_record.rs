//! Recording, the module side through Kamailio: P1 (cfg-examples/trusted-proxy.cfg with
//! build/sipsd.so, `-A WITH_PINHOLES -A WITH_RECORDING`) reads the sealed offer and answer of
//! real SIP calls whose SDP carries `a=crypto` both ways; the recorder's end of the key
//! channel is the recorder's own receiver (`sipsd::record::ChannelReceiver`, as `sipsd-rec`
//! runs it) on a UDP socket here.
//!
//! Checked, each printed: a call whose INVITE has `X-Record: yes` (the example script's
//! `sd_record_start()` policy) gets one sealed start at its 200 OK with the caller's key from
//! the offer and the callee's from the answer, caller and callee = the From and To URIs;
//! `sipsd.recordings` lists it active with the recorder's dialog id and no key; the BYE's
//! 200 sends the stop with reason "BYE" and the row is finished; a call without the header
//! sends nothing; a marked call answered 183 with SDP (start) and then refused 486 gets the
//! stop "failure 486" from the failure route; the statistics count it; no key appears in
//! P1's log. P1 restarted with the dialog module (`WITH_DIALOG`): the same reasons for a BYE
//! and a 486, no second stop from the dialog's end callbacks, and a call without BYE gets
//! "dialog timeout" from the dialog module's timeout (`DIALOG_TIMEOUT=2`).
//!
//! Not here: the firewall agent (P1's `pinhole_agent` is a port nobody answers on, so each
//! pinhole exchange fails after `pinhole_timeout` and the call goes on) and `sipsd-rec`
//! writing the WAV from mirrored media (tests/kamailio_record_media.rs does both).
//!
//! Needs kamailio, kamcmd and build/sipsd.so (make); otherwise SKIPPED unless
//! SIPSD_REQUIRE_E2E=1. Run: `cargo test --test kamailio_record -- --nocapture`.

#[macro_use]
mod support;

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::engine::cache::DialogKey;
use sipsd::record::{ChannelReceiver, Direction, Event, KeyMessage};

use support::dialog::{received, srtp_sdp, Dialog};
use support::kamailio::{next_hop, Kamailio, P1};
use support::sip::{reply, reply_with, Peer};
use support::tools::{Need, Tools};
use support::vectors::cert_recipient;
use support::work::WorkDir;

const KEY_CALLER: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
const KEY_CALLEE: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";
const FROM_URI: &str = "sip:alice@a.example";
const TO_URI: &str = "sip:bob@b.example";

struct Recorder {
    sock: UdpSocket,
    rx: ChannelReceiver,
}

impl Recorder {
    fn next(&mut self, wait: Duration) -> Option<KeyMessage> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        Some(
            self.rx
                .open(&buf[..n])
                .expect("the datagram opens under the shared KEK"),
        )
    }
}

/// The INVITE of a call through P1 from FROM_URI to TO_URI (with `extra` headers), as the
/// callee received it.
fn offer(
    p1: &Kamailio,
    caller: &Peer,
    callee: &Peer,
    call_id: &str,
    extra: &[(&str, &str)],
) -> (Dialog, support::sip::SipMsg) {
    let recipients = ["callee", "proxy1"]
        .map(|w| cert_recipient(w, IdKind::IssuerSerial, RsaPadding::OaepSha256));
    let (d, mut invite) = Dialog::offer(
        call_id,
        &srtp_sdp("alice", "10.77.1.2", 40000, KEY_CALLER),
        &recipients,
        ContentAlg::Aes256Gcm,
        p1,
        callee.port(),
    );
    invite = invite.parties(FROM_URI, TO_URI);
    for (n, v) in extra {
        invite = invite.header(n, v);
    }
    caller.send(p1.port, &invite.build(caller.port()));
    let inv = received(callee, call_id, "INVITE", 1).expect("P1 relays the INVITE");
    (d, inv)
}

/// One call through P1: INVITE (with `extra` headers), 200 OK, `mid`, BYE and its 200.
/// Returns the caller's tag.
fn call(
    p1: &Kamailio,
    caller: &Peer,
    callee: &Peer,
    call_id: &str,
    extra: &[(&str, &str)],
    mid: impl FnOnce(),
) -> String {
    let (mut d, inv) = offer(p1, caller, callee, call_id, extra);
    d.answer(
        p1,
        caller,
        callee,
        &inv,
        &srtp_sdp("bob", "10.77.2.2", 50000, KEY_CALLEE),
    );
    mid();
    let bye = d.bare("BYE").parties(FROM_URI, TO_URI);
    caller.send(p1.port, &bye.build(caller.port()));
    let breq = received(callee, call_id, "BYE", d.cseq()).expect("P1 relays the BYE");
    callee.send(p1.port, &reply(&breq, 200, "OK"));
    d.from_tag.clone()
}

#[test]
fn recording_keys_reach_the_recorder_through_kamailio() {
    let _serial = support::serial();
    let Some(t) = Tools::require(
        "kamailio_record",
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    ) else {
        return;
    };
    let work = WorkDir::new("record");
    let dir = work.path().to_path_buf();
    let kek = dir.join("rec.kek");
    std::fs::write(&kek, "5a".repeat(32)).unwrap();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = support::record::key_channel_receiver(&kek);
    let recorder_addr = sock.local_addr().unwrap().to_string();
    let mut rec = Recorder { sock, rx };

    let caller = Peer::bind();
    let callee = Peer::bind();
    let hop = next_hop(callee.port());
    let agent = silent.local_addr().unwrap().to_string();
    let kek_path = kek.to_string_lossy().into_owned();
    let mut p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_PINHOLES", None),
            ("PINHOLE_AGENT", Some(&agent)),
            ("PINHOLE_TIMEOUT", Some("30")),
            ("WITH_RECORDING", None),
            ("RECORDER", Some(&recorder_addr)),
            ("RECORD_KEK", Some(&kek_path)),
        ],
    );
    println!(
        "P1 (pid {}) on 127.0.0.1:{}, record_recorder {recorder_addr}, no agent at {agent}",
        p1.pid(),
        p1.port
    );
    check!(
        p1.rpc(&["sipsd.recordings"]).trim().is_empty(),
        "sipsd.recordings: empty before any call"
    );

    // ---- call 1: marked by the script (X-Record: yes -> sd_record_start()) ---------------
    let c1 = "rec-1@test";
    let mut during = String::new();
    let mut start = None;
    let tag = call(&p1, &caller, &callee, c1, &[("X-Record", "yes")], || {
        start = rec.next(Duration::from_secs(5));
        during = p1.rpc(&["sipsd.recordings"]);
    });
    let start = start.expect("a key message at the answer");
    let Event::Start(s) = &start.event else {
        panic!("a start, got {}", start.event.name());
    };
    let by = |d| s.streams.iter().find(|m| m.direction == d);
    check!(
        s.caller == FROM_URI && s.callee == TO_URI,
        "start: caller {:?}, callee {:?} (the INVITE's From and To URIs, passed in sd_msg)",
        s.caller,
        s.callee
    );
    check!(
        s.call_id == c1
            && start.sender == "proxy1"
            && start.dialog_id.as_bytes()
                == DialogKey::new(c1.as_bytes(), tag.as_bytes()).as_bytes(),
        "start from sender proxy1 for {c1}, dialog id = SHA-256 dialog key of Call-ID and caller tag"
    );
    check!(
        s.streams.len() == 2
            && by(Direction::CallerToCallee).is_some_and(|m| m.crypto.as_str().contains(KEY_CALLER)
                && m.destination.port == 50000)
            && by(Direction::CalleeToCaller).is_some_and(|m| m.crypto.as_str().contains(KEY_CALLEE)
                && m.destination.port == 40000),
        "2 streams: caller->callee with the offer's key to :50000, callee->caller with the answer's key to :40000"
    );
    check!(
        during.contains(&start.dialog_hex())
            && during.contains("active")
            && !during.contains(KEY_CALLER)
            && !during.contains(KEY_CALLEE),
        "sipsd.recordings during the call: active, the recorder's dialog id, no key:\n{during}"
    );
    let stop = rec.next(Duration::from_secs(5)).expect("a stop at the BYE");
    check!(
        matches!(&stop.event, Event::Stop(s) if s.reason == "BYE")
            && stop.sequence > start.sequence,
        "BYE (closed at its 200): the recorder gets the stop with reason \"BYE\" (later sequence): {:?}",
        stop.event
    );
    let after = p1.rpc(&["sipsd.recordings"]);
    check!(
        after.contains("finished") && after.contains(&start.dialog_hex()),
        "sipsd.recordings after the BYE: the recording is finished:\n{after}"
    );

    // ---- call 2: not marked ---------------------------------------------------------------
    call(&p1, &caller, &callee, "rec-2@test", &[], || {});
    check!(
        rec.next(Duration::from_millis(500)).is_none(),
        "call 2 without X-Record: no key message"
    );

    // ---- call 3: marked, early media (183 with SDP), then refused 486 ---------------------
    refused_after_early_media(
        &p1,
        &caller,
        &callee,
        &mut rec,
        "rec-3@test",
        "the failure route's sd_pinhole_close()",
    );

    let st = p1.statistics("sipsd:");
    let get = |n: &str| st.get(&format!("sipsd:{n}")).copied().unwrap_or(u64::MAX);
    check!(
        get("recordings_started") == 2
            && get("recordings_stopped") == 2
            && get("record_key_messages") == 4
            && get("record_errors") == 0,
        "statistics: recordings_started=2 recordings_stopped=2 record_key_messages=4 record_errors=0"
    );
    let log = p1.log_text();
    check!(
        !log.contains(KEY_CALLER) && !log.contains(KEY_CALLEE),
        "no SRTP key in P1's log ({} bytes)",
        log.len()
    );
    p1.stop();

    // ---- P1 again with the dialog module: the script closes first (onreply and failure
    // routes run before the dialog's TERMINATED_CONFIRMED and FAILED callbacks); the same
    // reasons, and no second stop from the callbacks ---------------------------------------
    let mut p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_DIALOG", None),
            ("DIALOG_TIMEOUT", Some("2")),
            ("WITH_PINHOLES", None),
            ("PINHOLE_AGENT", Some(&agent)),
            ("PINHOLE_TIMEOUT", Some("30")),
            ("WITH_RECORDING", None),
            ("RECORDER", Some(&recorder_addr)),
            ("RECORD_KEK", Some(&kek_path)),
        ],
    );
    println!("P1 restarted with WITH_DIALOG (pid {})", p1.pid());
    call(
        &p1,
        &caller,
        &callee,
        "rec-4@test",
        &[("X-Record", "yes")],
        || {
            check!(
                rec.next(Duration::from_secs(5))
                    .is_some_and(|m| m.event.name() == "start"),
                "call 4 (dialog module loaded): the start at the 200 OK"
            );
        },
    );
    let stop4 = rec.next(Duration::from_secs(5)).expect("a stop at the BYE");
    check!(
        matches!(&stop4.event, Event::Stop(s) if s.reason == "BYE"),
        "call 4 ended by BYE with the dialog module loaded: reason \"BYE\" again: {:?}",
        stop4.event
    );
    refused_after_early_media(
        &p1,
        &caller,
        &callee,
        &mut rec,
        "rec-5@test",
        "the failure route (before the dialog module's callback)",
    );
    check!(
        rec.next(Duration::from_millis(500)).is_none(),
        "one stop per recording: the dialog module's end callbacks, running after the script's sd_pinhole_close(), send none"
    );
    // call 6: answered, never ended: the dialog module's timeout (DIALOG_TIMEOUT=2 s)
    let c6 = "rec-6@test";
    let (mut d6, inv6) = offer(&p1, &caller, &callee, c6, &[("X-Record", "yes")]);
    d6.answer(
        &p1,
        &caller,
        &callee,
        &inv6,
        &srtp_sdp("bob", "10.77.2.2", 50000, KEY_CALLEE),
    );
    let start6 = rec
        .next(Duration::from_secs(5))
        .expect("a start at the 200");
    let stop6 = rec
        .next(Duration::from_secs(15))
        .expect("a stop at the dialog's timeout");
    check!(
        matches!(&stop6.event, Event::Stop(s) if s.reason == "dialog timeout")
            && stop6.dialog_id == start6.dialog_id,
        "call 6 without BYE: the dialog module's timeout callback (sd_pinhole_close_dialog) sends the stop with reason \"dialog timeout\": {:?}",
        stop6.event
    );
    p1.stop();
    drop(silent);
}

/// A marked call answered 183 with SDP (the recording starts: early media) and then
/// refused 486: the stop says "failure 486". `by`: who closes it, for the output.
fn refused_after_early_media(
    p1: &Kamailio,
    caller: &Peer,
    callee: &Peer,
    rec: &mut Recorder,
    call_id: &str,
    by: &str,
) {
    let (mut d, inv) = offer(p1, caller, callee, call_id, &[("X-Record", "yes")]);
    let early =
        d.ua.encrypt(
            "application/sdp",
            &srtp_sdp("bob", "10.77.2.2", 50000, KEY_CALLEE),
            &Default::default(),
        )
        .expect("the 183's SDP under the dialog key");
    callee.send(
        p1.port,
        &reply_with(
            &inv,
            183,
            "Session Progress",
            &[("Content-Type", early.content_type.as_str())],
            &early.body,
        ),
    );
    let start = rec
        .next(Duration::from_secs(5))
        .expect("a start at the 183");
    check!(
        start.event.name() == "start",
        "{call_id}: the start at the 183 with SDP (early media is recorded)"
    );
    callee.send(p1.port, &reply(&inv, 486, "Busy Here"));
    let stop = rec.next(Duration::from_secs(5)).expect("a stop at the 486");
    check!(
        matches!(&stop.event, Event::Stop(s) if s.reason == "failure 486")
            && stop.dialog_id == start.dialog_id,
        "{call_id} refused 486: {by} sends the stop with reason \"failure 486\": {:?}",
        stop.event
    );
}
