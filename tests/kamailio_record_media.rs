//! Recording end to end: a call through Kamailio whose SRTP media the firewall agent mirrors
//! to the recorder, which decrypts it with the keys only P1 read. P1 (cfg-examples/
//! trusted-proxy.cfg with build/sipsd.so, `-A WITH_PINHOLES -A WITH_RECORDING`) reads the
//! sealed offer and answer (`a=crypto` both ways), sends the sealed start over the key channel
//! to the real `sipsd-rec` and asks the real `sipsd-fw` for the pinholes with MIRROR; ffmpeg
//! sends a known tone each way as SRTP with the keys of the SDP, through the firewall.
//!
//! ```text
//!   caller 10.77.1.2:40000 ── fw (sipsd-fw: pinholes, dup to) ── callee 10.77.2.2:50000
//!   (ffmpeg 1000 Hz)            │ 10.77.8.1:5351   │ fc             (ffmpeg 700 Hz)
//!   this namespace: P1 ─────────┘                  recorder m0 10.77.3.2 (sipsd-rec --iface m0)
//!                   └──── key channel ──────────── k0 10.77.7.1:7070
//! ```
//!
//! Checked, each printed: the recorder logs the start from proxy1 at the 200 OK (this test
//! sends it no key message); the agent holds the call's 4 pinholes and 4 mirror elements;
//! each side's receiver namespace gets every packet of the other's tone (the copy did not
//! change the original flow); the recording stays open until the BYE and closes with reason
//! "BYE"; the manifest has P1's dialog id, the parties (From and To URIs), the media tuples,
//! all packets and the losses counted (none), no authentication failure; each direction's WAV
//! has its tone's frequency; after the BYE the agent holds nothing of the call; no key or
//! a=crypto value in P1's, the agent's or the recorder's log.
//!
//! Needs root (namespaces, nftables), kamailio, kamcmd, build/sipsd.so (make), ffmpeg;
//! otherwise SKIPPED unless SIPSD_REQUIRE_E2E=1.
//! Run: `cargo test --test kamailio_record_media -- --nocapture`.

#[macro_use]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sipsd::crypto::cms::{ContentAlg, IdKind, RsaPadding};
use sipsd::engine::cache::DialogKey;

use support::dialog::{received, srtp_sdp, Dialog};
use support::fwbed::netns::{self, Topology, CALLEE, CALLER};
use support::fwbed::{
    fw_line, netns_kamailio, workspace_bin, Bed, RecorderNs, FW_LINK, REC_IFACE, REC_KEYS,
};
use support::kamailio::{next_hop, P1};
use support::procs::{wait_for, Proc};
use support::sip::{reply, Peer};
use support::tone::{dominant_freq, ffmpeg_tx};
use support::tools::{find_in_path, skip};
use support::vectors::cert_recipient;
use support::work::WorkDir;

/// Each party's SDES master key and salt: base64 (the SDP's `inline:`) and hex of the 30 bytes.
const KEY_CALLER: (&str, &str) = (
    "HM0hivXYoD8F95RR395SjgjhHQ64T0Dp2vkfYMFQ",
    "1ccd218af5d8a03f05f79451dfde528e08e11d0eb84f40e9daf91f60c150",
);
const KEY_CALLEE: (&str, &str) = (
    "kqTjomDO9NHyUlNZv2cAhPis4FHJzaPpSnPVNOHP",
    "92a4e3a260cef4d1f2525359bf670084f8ace051c9cda3e94a73d534e1cf",
);
const CALLER_PORT: u16 = 40000;
const CALLEE_PORT: u16 = 50000;
const TONE_CALLER: u32 = 1000;
const TONE_CALLEE: u32 = 700;
const SECONDS: u32 = 3;
/// RTP packets per direction: 20 ms of PCMU each.
const PACKETS: u64 = SECONDS as u64 * 50;
const FROM_URI: &str = "sip:alice@a.example";
const TO_URI: &str = "sip:bob@b.example";

/// A counter in namespace `ns` of the UDP packets from `from` that reach `to` there (its
/// input hook: delivered to the host, whatever socket reads them).
fn rx_counter(ns: &str, from: (&str, u16), to: (&str, u16)) {
    let rules = format!(
        "table inet rx {{\n counter media {{ }}\n chain input {{\n  type filter hook input priority 0; policy accept;\n  \
         ip saddr {} udp sport {} ip daddr {} udp dport {} counter name \"media\"\n }}\n}}\n",
        from.0, from.1, to.0, to.1
    );
    let mut load = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut load.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(load.wait().unwrap().success(), "receiver counter in {ns}");
}

fn rx_count(ns: &str) -> u64 {
    let json = netns::sh(&[
        "ip", "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", "rx", "media",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("nft JSON");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .expect("counter packets")
}

/// Bytes the recorder's packet sockets hold unread (`ss -0`: the Recv-Q of each AF_PACKET
/// socket in its namespace, the first number after the socket type); `None` without one.
fn capture_queue(rec: &RecorderNs) -> Option<u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", &rec.ns, "ss", "-0", "-H", "-n"])
        .output()
        .expect("ss");
    let queues: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip(1).find_map(|f| f.parse().ok()))
        .collect();
    (!queues.is_empty()).then(|| queues.iter().sum())
}

/// The samples of a 16-bit WAV, decoded by ffmpeg (an implementation apart from the
/// recorder's WAV writer).
fn wav_samples(path: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg decodes {}", path.display());
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// ffmpeg in namespace `ns` sending `freq` Hz from `from` to `to` with `key` (stopped after
/// 30 s at the latest).
fn sender(
    dir: &Path,
    name: &str,
    ns: &str,
    freq: u32,
    key: &str,
    from: u16,
    to: (&str, u16),
) -> Proc {
    let ssrc = 0x5d00_0000 | freq;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "timeout", "30", "ffmpeg"])
        .args(ffmpeg_tx(freq, SECONDS, ssrc, 1000, key, to.0, to.1, from));
    Proc::spawn_logged(name, dir, dir.join(format!("{name}.log")), &mut cmd)
}

/// `sipsd-rec run` in the recorder's namespace: capture on REC_IFACE, the key channel on
/// REC_KEYS:7070 with P1's KEK, one call, recordings in `dir/recordings`.
fn recorder(rec: &RecorderNs, bin: &Path, dir: &Path, kek: &Path) -> Proc {
    let mut cmd = rec.exec(bin);
    cmd.args([
        "run",
        "--iface",
        REC_IFACE,
        "--listen",
        &format!("{REC_KEYS}:7070"),
    ])
    .arg("--kek")
    .arg(format!(
        "id=text:sipsd-rec;key={};label=proxy1",
        kek.display()
    ))
    .arg("--out")
    .arg(dir.join("recordings"))
    .arg("--stats-file")
    .arg(dir.join("rec-stats.json"))
    .args(["--max-seconds", "120", "--exit-after-calls", "1"]);
    Proc::spawn_logged("sipsd-rec", dir, dir.join("recorder.log"), &mut cmd)
}

fn only_recording(dir: &Path) -> PathBuf {
    let v: Vec<PathBuf> = std::fs::read_dir(dir.join("recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(v.len(), 1, "one recording: {v:?}");
    v[0].clone()
}

/// The `dialog` field of P1's `sipsd.recordings` row.
fn rpc_dialog(rows: &str) -> String {
    rows.lines()
        .filter_map(|l| l.trim().strip_prefix("dialog:"))
        .map(|v| v.trim().to_string())
        .next()
        .unwrap_or_default()
}

fn no_key_in(name: &str, log: &str) {
    for (b64, hex) in [KEY_CALLER, KEY_CALLEE] {
        assert!(
            !log.contains(b64) && !log.to_lowercase().contains(hex),
            "a key in {name}'s log"
        );
    }
    assert!(
        !log.contains("inline:"),
        "an a=crypto value in {name}'s log"
    );
}

#[test]
fn mirrored_srtp_call_through_kamailio_is_recorded() {
    let Some((_serial, t)) = netns_kamailio("kamailio_record_media") else {
        return;
    };
    if let Some(tool) = ["ffmpeg", "ss", "timeout"]
        .into_iter()
        .find(|n| find_in_path(n).is_none())
    {
        let why = format!("kamailio_record_media needs {tool} (scripts/setup-deps)");
        return skip::<()>("SIPSD_REQUIRE_E2E", &why).unwrap_or(());
    }
    let work = WorkDir::new("record-media");
    let dir = work.path().to_path_buf();
    let rec_bin = workspace_bin(&t.root, "sipsd-rec");
    let (bed, _link, key_path, rec_ns) = Bed::up_mirrored("r", &t.root, &work);
    let topo: &Topology = &bed.topo;
    println!(
        "  ok   agent up in {} mirroring to the recorder's namespace {} ({REC_IFACE})",
        topo.f, rec_ns.ns
    );
    let kek = dir.join("rec.kek");
    std::fs::write(&kek, "5a".repeat(32)).unwrap();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut rec = recorder(&rec_ns, &rec_bin, &dir, &kek);
    check!(
        wait_for(Duration::from_secs(20), || rec
            .log_text()
            .contains(" ready: ")),
        "sipsd-rec ready: capture on {REC_IFACE}, key channel on {REC_KEYS}:7070"
    );

    let caller = Peer::bind();
    let callee = Peer::bind();
    let hop = next_hop(callee.port());
    let agent = format!("{FW_LINK}:5351");
    let pcp_key = key_path.to_string_lossy().into_owned();
    let recorder_addr = format!("{REC_KEYS}:7070");
    let kek_path = kek.to_string_lossy().into_owned();
    let mut p1 = P1::start(
        &t,
        &dir,
        &[
            ("NEXT_HOP", Some(hop.as_str())),
            ("WITH_PINHOLES", None),
            ("PINHOLE_AGENT", Some(&agent)),
            ("PINHOLE_KEY", Some(&pcp_key)),
            ("WITH_RECORDING", None),
            ("RECORDER", Some(&recorder_addr)),
            ("RECORD_KEK", Some(&kek_path)),
        ],
    );
    println!(
        "P1 (pid {}) on 127.0.0.1:{}, pinhole_agent {agent}, record_recorder {recorder_addr}",
        p1.pid(),
        p1.port
    );

    // ---- the call: INVITE (X-Record: yes) and its 200 OK through P1 -----------------------
    let call_id = format!("recmedia-{}@a.example", std::process::id());
    let recipients = ["callee", "proxy1"]
        .map(|w| cert_recipient(w, IdKind::IssuerSerial, RsaPadding::OaepSha256));
    let (mut d, invite) = Dialog::offer(
        &call_id,
        &srtp_sdp("alice", CALLER, CALLER_PORT, KEY_CALLER.0),
        &recipients,
        ContentAlg::Aes256Gcm,
        &p1,
        callee.port(),
    );
    let invite = invite.parties(FROM_URI, TO_URI).header("X-Record", "yes");
    caller.send(p1.port, &invite.build(caller.port()));
    let inv = received(&callee, &call_id, "INVITE", 1).expect("P1 relays the INVITE");
    d.answer(
        &p1,
        &caller,
        &callee,
        &inv,
        &srtp_sdp("bob", CALLEE, CALLEE_PORT, KEY_CALLEE.0),
    );
    let line = fw_line(&p1, &call_id, "INVITE200").unwrap_or_default();
    check!(
        line.contains("pinholes=4"),
        "answer: the agent confirmed 4 pinholes ({line})"
    );
    let needle = format!("recording call-id={call_id} from proxy1");
    check!(
        wait_for(Duration::from_secs(5), || rec.log_text().contains(&needle)),
        "the recorder got the start from proxy1 over P1's key channel (this test sent it none): \"{needle}\""
    );
    let rows = p1.rpc(&["sipsd.recordings"]);
    let dialog = rpc_dialog(&rows);
    check!(
        rows.contains("active")
            && dialog
                == sipsd::hex::encode(
                    DialogKey::new(call_id.as_bytes(), d.from_tag.as_bytes()).as_bytes()
                ),
        "sipsd.recordings: active, dialog {dialog} = SHA-256 dialog key of Call-ID and caller tag"
    );
    let els = bed.elements();
    check!(
        els.iter().filter(|e| e.starts_with("mirror4")).count() == 4 && els.len() == 8,
        "the agent holds the call's 4 pinholes and 4 mirror4 elements (RTP and RTCP both ways)"
    );
    topo.show_sets("sipsd", "during the call");

    // ---- the media: a tone each way, SRTP with the SDP's keys, through the firewall --------
    let (a, b) = (topo.a.as_str(), topo.b.as_str());
    rx_counter(b, (CALLER, CALLER_PORT), (CALLEE, CALLEE_PORT));
    rx_counter(a, (CALLEE, CALLEE_PORT), (CALLER, CALLER_PORT));
    let mut tx_a = sender(
        &dir,
        "ffmpeg-caller",
        a,
        TONE_CALLER,
        KEY_CALLER.0,
        CALLER_PORT,
        (CALLEE, CALLEE_PORT),
    );
    let mut tx_b = sender(
        &dir,
        "ffmpeg-callee",
        b,
        TONE_CALLEE,
        KEY_CALLEE.0,
        CALLEE_PORT,
        (CALLER, CALLER_PORT),
    );
    let limit = Duration::from_secs(30);
    check!(
        tx_a.wait(limit).is_some_and(|s| s.success()) && tx_b.wait(limit).is_some_and(|s| s.success()),
        "ffmpeg sent {SECONDS} s of SRTP each way: {TONE_CALLER} Hz {CALLER}:{CALLER_PORT} -> {CALLEE}:{CALLEE_PORT}, {TONE_CALLEE} Hz back"
    );
    let delivered = || (rx_count(b), rx_count(a));
    wait_for(Duration::from_secs(5), || delivered() == (PACKETS, PACKETS));
    let (at_b, at_a) = delivered();
    check!(
        at_b == PACKETS && at_a == PACKETS,
        "the original flows are unchanged by the copy: the callee's namespace got {at_b}/{PACKETS}, the caller's {at_a}/{PACKETS}"
    );
    check!(
        wait_for(Duration::from_secs(5), || capture_queue(&rec_ns) == Some(0)),
        "the recorder read every copy queued on its capture socket"
    );
    check!(
        rec.alive(),
        "before the BYE the recording is still open (the recorder exits after its one call)"
    );

    // ---- BYE and its 200: the stop ---------------------------------------------------------
    let bye = d.bare("BYE").parties(FROM_URI, TO_URI);
    caller.send(p1.port, &bye.build(caller.port()));
    let breq = received(&callee, &call_id, "BYE", d.cseq()).expect("P1 relays the BYE");
    callee.send(p1.port, &reply(&breq, 200, "OK"));
    check!(
        rec.wait(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "the recorder closed the call at the stop and exited"
    );
    check!(
        wait_for(Duration::from_secs(5), || bed.elements().is_empty()),
        "after the BYE the agent holds no pinhole and no mirror element of the call"
    );
    let after = p1.rpc(&["sipsd.recordings"]);
    check!(
        after.contains("finished"),
        "sipsd.recordings after the BYE: finished"
    );

    // ---- the recording ---------------------------------------------------------------------
    let call = only_recording(&dir);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(call.join("manifest.json")).unwrap()).unwrap();
    check!(
        m["dialog_id"] == dialog.as_str() && m["call_id"] == call_id.as_str(),
        "manifest: dialog id = P1's ({dialog}), Call-ID {call_id}"
    );
    check!(
        m["caller"] == FROM_URI && m["callee"] == TO_URI,
        "manifest parties: caller {} callee {} (P1's From and To URIs)",
        m["caller"],
        m["callee"]
    );
    check!(
        m["key_sender"] == "proxy1" && m["key_messages"] == 1 && m["end_reason"] == "BYE",
        "manifest: keys from proxy1 (1 key message), end reason {}",
        m["end_reason"]
    );
    let streams = m["streams"].as_array().cloned().unwrap_or_default();
    let by = |who: &str| {
        streams
            .iter()
            .find(|s| s["sender"] == who)
            .cloned()
            .unwrap_or_default()
    };
    let (sa, sb) = (by("caller"), by("callee"));
    let tuple = |s: &serde_json::Value| {
        format!(
            "{} -> {}",
            s["source"].as_str().unwrap_or("?"),
            s["destination"].as_str().unwrap_or("?")
        )
    };
    check!(
        tuple(&sa) == format!("{CALLER}:{CALLER_PORT} -> {CALLEE}:{CALLEE_PORT}")
            && tuple(&sb) == format!("{CALLEE}:{CALLEE_PORT} -> {CALLER}:{CALLER_PORT}"),
        "manifest media tuples: caller {}, callee {}",
        tuple(&sa),
        tuple(&sb)
    );
    for (who, s) in [("caller", &sa), ("callee", &sb)] {
        let codecs: Vec<String> = s["codecs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}/{}",
                    c["payload_type"],
                    c["name"].as_str().unwrap_or("?"),
                    c["clock_rate"]
                )
            })
            .collect();
        check!(
            s["packets"] == PACKETS
                && s["lost"] == 0
                && s["auth_failures"] == 0
                && codecs == ["0 PCMU/8000"],
            "manifest {who} stream: codecs {codecs:?} (the answer's), {} packets (= what its receiver got), {} lost, {} reordered, {} failed authentication",
            s["packets"],
            s["lost"],
            s["reordered"],
            s["auth_failures"]
        );
    }
    let fa = dominant_freq(&wav_samples(&call.join("caller.wav")));
    let fb = dominant_freq(&wav_samples(&call.join("callee.wav")));
    check!(
        fa == f64::from(TONE_CALLER) && fb == f64::from(TONE_CALLEE),
        "dominant frequency: caller.wav {fa} Hz (sent {TONE_CALLER}), callee.wav {fb} Hz (sent {TONE_CALLEE})"
    );

    // ---- no key in any log -----------------------------------------------------------------
    p1.stop();
    let logs = [
        ("P1", p1.log_text()),
        ("the agent", bed.log_text()),
        ("the recorder", rec.log_text()),
    ];
    for (name, log) in &logs {
        no_key_in(name, log);
    }
    println!(
        "  ok   no SDES key (base64 or hex) and no a=crypto value in the logs of P1, the agent and the recorder ({} bytes)",
        logs.iter().map(|(_, l)| l.len()).sum::<usize>()
    );
    drop(rec_ns);
}
