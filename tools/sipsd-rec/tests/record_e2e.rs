//! End to end: two ffmpeg SRTP senders (a 1000 Hz tone from the caller, 700 Hz from the
//! callee, AES_CM_128_HMAC_SHA1_80, SRTCP) talk through a core router namespace whose nftables
//! `dup to` rule mirrors both flows to the recorder's namespace; ffmpeg receivers at both ends
//! decode the original flows with the SDP keys. The recorder (`sipsd-rec run`, AF_PACKET on its
//! interface) gets the keys through the real key channel (sealed under a shared KEK, sent over
//! UDP from the router namespace, where the proxy sits).
//!
//! ```text
//!   A caller 10.241.1.2 ── R core router (forward + nft dup, tcpdump) ── B callee 10.241.2.2
//!                                  └── M recorder 10.241.3.2 (sipsd-rec)
//! ```
//!
//! Checked in one run: the WAVs' dominant frequencies; the caller WAV against ffmpeg's own
//! source samples (within G.711 error) and against what the callee's ffmpeg decoded (equal);
//! ROC rollover (the caller starts at seq 65400); an SSRC change; SRTCP; the core capture
//! failing authentication without the key (libsrtp and ffmpeg: "HMAC mismatch") and decoded
//! by ffmpeg with it, agreeing with the recorder; no key in any log or output; replayed and
//! foreign key messages refused; the auditor copy opened with the auditor's key only; a
//! replay that drops and swaps packets, and one starting mid-call after the rollover (ROC 1),
//! still decoded, with the losses counted.
//!
//! Needs root, ip, nft, ffmpeg, tcpdump, openssl (scripts/setup-deps); otherwise SKIPPED
//! unless SIPSD_REQUIRE_E2E=1. Run: `cargo test -p sipsd-rec --test record_e2e -- --nocapture`.

#[macro_use]
mod support;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use sipsd::engine::cache::DialogKey;
use sipsd::record::{CallStart, CallStop, Direction, Event, KeyMessage};
use sipsd_rec::manifest::Manifest;
use sipsd_rec::pcap::{self, PcapReader, PcapWriter};
use sipsd_rec::wav;
use support::*;

const CALLER_PORT: u16 = 42000;
const CALLEE_PORT: u16 = 40000;
const TONE_CALLER: u32 = 1000;
const TONE_CALLEE: u32 = 700;
const SECONDS: u32 = 4;

fn sdp_receiver(addr: &str, port: u16, key: &str) -> String {
    format!(
        "v=0\r\no=- 0 0 IN IP4 {addr}\r\ns=rx\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/SAVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
    )
}

fn ffmpeg_rx(sdp: &Path, out: &Path, secs: f64) -> Vec<String> {
    [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-protocol_whitelist",
        "file,udp,rtp",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        sdp.display().to_string(),
        "-t".into(),
        format!("{secs}"),
        "-c:a".into(),
        "pcm_s16le".into(),
        out.display().to_string(),
    ])
    .collect()
}

fn udp_bound(topo: &Topology, ns: &str, port: u16) -> bool {
    let out = topo.exec(ns, "ss").args(["-Hunl"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} "))
}

fn wait_bound(topo: &Topology, ns: &str, port: u16) {
    for _ in 0..100 {
        if udp_bound(topo, ns, port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {ns} udp {port}");
}

fn read_manifest(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn only_subdir(dir: &Path) -> PathBuf {
    let v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(v.len(), 1, "one recording in {}: {v:?}", dir.display());
    v[0].clone()
}

/// The UDP payloads of a capture going to `port`, with their times.
fn payloads_to(capture: &Path, port: u16) -> Vec<(SystemTime, Vec<u8>)> {
    let r = PcapReader::open(capture).unwrap();
    let lt = r.linktype();
    r.read_all()
        .unwrap()
        .into_iter()
        .filter_map(|p| {
            let ip = pcap::ip_of(lt, &p.data)?;
            let d = sipsd_rec::net::parse_ip(ip)?;
            (d.dst.port() == port).then(|| (p.at, d.payload.to_vec()))
        })
        .collect()
}

/// Sends payloads to an ffmpeg SDP receiver on loopback (paced 4 ms apart); its log and WAV.
fn ffmpeg_decode(
    work: &Path,
    name: &str,
    payloads: &[(SystemTime, Vec<u8>)],
    key: &str,
) -> (String, Vec<i16>) {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        if p % 2 == 1 {
            p - 1
        } else {
            p
        }
    };
    let sdp = work.join(format!("{name}.sdp"));
    std::fs::write(&sdp, sdp_receiver("127.0.0.1", port, key)).unwrap();
    let wav_path = work.join(format!("{name}.wav"));
    let log = work.join(format!("{name}.log"));
    let secs = payloads.len() as f64 * 0.02 - 0.1;
    let mut rx = launch(
        name,
        Command::new("timeout")
            .arg("30")
            .arg("ffmpeg")
            .args(ffmpeg_rx(&sdp, &wav_path, secs)),
        &log,
    );
    for _ in 0..100 {
        if std::fs::read_to_string("/proc/net/udp")
            .unwrap()
            .contains(&format!(":{port:04X} "))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (_, p) in payloads {
        tx.send_to(p, ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(4));
    }
    // ffmpeg stops by itself at -t; a receiver that got too little is interrupted.
    let t0 = std::time::Instant::now();
    while rx.child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(rx.pid(), "-INT");
    rx.finished(Duration::from_secs(20));
    let samples = wav::read(&wav_path).map(|w| w.2).unwrap_or_default();
    (std::fs::read_to_string(&log).unwrap_or_default(), samples)
}

/// A copy of a recording directory whose srtp.pcap keeps only the packets `keep` accepts
/// (indices among the caller->callee RTP packets) and swaps the pairs `swap` names.
fn altered_recording(
    src: &Path,
    dst: &Path,
    keep: impl Fn(usize) -> bool,
    swap: impl Fn(usize) -> bool,
) -> (usize, usize) {
    std::fs::create_dir_all(dst).unwrap();
    std::fs::copy(src.join("keys.p7m"), dst.join("keys.p7m")).unwrap();
    let all = PcapReader::open(&src.join("srtp.pcap"))
        .unwrap()
        .read_all()
        .unwrap();
    let mut out: Vec<pcap::Packet> = Vec::new();
    let (mut dropped, mut swapped, mut idx) = (0, 0, 0usize);
    let mut pending_swap: Option<pcap::Packet> = None;
    for p in all {
        let is_caller_rtp =
            sipsd_rec::net::parse_ip(&p.data).is_some_and(|d| d.dst.port() == CALLEE_PORT);
        if !is_caller_rtp {
            out.push(p);
            continue;
        }
        let i = idx;
        idx += 1;
        if !keep(i) {
            dropped += 1;
            continue;
        }
        if let Some(held) = pending_swap.take() {
            out.push(p);
            out.push(held);
            swapped += 1;
        } else if swap(i) {
            pending_swap = Some(p);
        } else {
            out.push(p);
        }
    }
    out.extend(pending_swap);
    let mut w = PcapWriter::create(&dst.join("srtp.pcap")).unwrap();
    for p in &out {
        w.write(p.at, &p.data).unwrap();
    }
    w.finish().unwrap();
    (dropped, swapped)
}

/// `sipsd-rec audit-open` with the auditor's key (made in `work`); its stdout.
fn audit_open(bin: &Path, work: &Path, recording: &Path, out: &Path) -> String {
    let key = format!(
        "{}:{}",
        work.join("auditor.key").display(),
        work.join("auditor.crt").display()
    );
    run(Command::new(bin)
        .args(["audit-open", "--key", &key])
        .arg("--recording")
        .arg(recording)
        .arg("--out")
        .arg(out))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(files_under(&p));
        } else {
            v.push(p);
        }
    }
    v
}

#[test]
fn ffmpeg_srtp_call_mirrored_recorded_and_audited() {
    if !prerequisites(&[
        "ip", "nft", "ffmpeg", "tcpdump", "openssl", "ss", "timeout", "sysctl", "kill",
    ]) {
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sipsd-rec"));
    let tmp = tempfile::tempdir().unwrap();
    let (work_buf, _guard) = if std::env::var_os("SIPSD_KEEP").is_some() {
        let p = tmp.keep();
        println!("work directory kept: {}", p.display());
        (p, None)
    } else {
        (tmp.path().to_path_buf(), Some(tmp))
    };
    let work = work_buf.as_path();
    let topo = Topology::new("sdr");
    topo.mirror(&[(&topo.ip_b, CALLEE_PORT), (&topo.ip_a, CALLER_PORT)]);
    println!(
        "  ok   topology {}{{a,b,r,m}}: caller, callee, core router with nft dup to the recorder",
        topo.tag
    );

    // Keys: one SDES master key||salt per direction, the key channel's KEK, an auditor.
    let key_a = random_bytes(30);
    let key_b = random_bytes(30);
    let (ka, kb) = (b64(&key_a), b64(&key_b));
    let (sender, kek_arg) = channel(work, "proxy1");
    let (foreign, _) = channel(&work.join(".."), "proxy1-other");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=auditor",
        ])
        .arg("-keyout")
        .arg(work.join("auditor.key"))
        .arg("-out")
        .arg(work.join("auditor.crt"))
        .stderr(std::process::Stdio::null()));

    // The recorder in M.
    let out = work.join("recordings");
    let stats_file = work.join("rec-stats.json"); // written by the recorder (start_recorder)
    let rec_log = work.join("recorder.log");
    let auditor_cert = work.join("auditor.crt");
    let mut recorder = topo.start_recorder(
        &bin,
        &kek_arg,
        work,
        1,
        60,
        &["--auditor-cert", auditor_cert.to_str().unwrap()],
    );
    wait_bound(&topo, &topo.m, 7070); // Topology::key_channel

    // The proxy's start message for the dialog, sent from the core network.
    let call_id = format!("rec-e2e-{}@a.example", std::process::id());
    let dialog = DialogKey::new(call_id.as_bytes(), b"tag-a");
    let seq0 = sipsd::record::channel::initial_sequence();
    // The streams as the proxy works them out from the disclosed offer and answer.
    let sdp = |addr: &str, port: u16, tags: &[(u32, &str)]| {
        let mut s = format!("v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/SAVP 0\r\n");
        for (tag, key) in tags {
            s.push_str(&format!(
                "a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31\r\n"
            ));
        }
        sipsd::sip::sdp::SdpInfo::parse(s.as_bytes()).unwrap()
    };
    let other = b64(&random_bytes(30));
    let offer = sdp(&topo.ip_a, CALLER_PORT, &[(1, &other), (2, &ka)]);
    let answer = sdp(&topo.ip_b, CALLEE_PORT, &[(2, &kb)]);
    let streams =
        sipsd::record::streams_from_offer_answer(&offer, &answer, sipsd::record::Offerer::Caller)
            .unwrap();
    check!(
        streams.len() == 2 && streams[0].crypto.as_str().contains(ka.as_str()),
        "streams from offer/answer: caller sends with the offered key the answer accepted (tag 2), callee with the answered one"
    );
    let start = KeyMessage::new(
        "proxy1",
        seq0,
        sipsd::record::channel::now_ms(),
        dialog.as_bytes(),
        Event::Start(CallStart {
            call_id: call_id.clone(),
            caller: "sip:alice@a.example".into(),
            callee: "sip:bob@b.example".into(),
            streams,
        }),
    );
    seal_to(&sender, &start, &work.join("start.p7m"));
    let mut forged = start.clone();
    forged.sequence += 1;
    seal_to(&foreign, &forged, &work.join("foreign.p7m"));
    // The start, the same sealed start again (a replay), and one under an unknown KEK.
    topo.key_send(
        &bin,
        &[
            work.join("start.p7m"),
            work.join("start.p7m"),
            work.join("foreign.p7m"),
        ],
    );

    // Receivers at both ends (the original flows), a capture on the core network.
    std::fs::write(
        work.join("rx-b.sdp"),
        sdp_receiver(&topo.ip_b, CALLEE_PORT, &ka),
    )
    .unwrap();
    std::fs::write(
        work.join("rx-a.sdp"),
        sdp_receiver(&topo.ip_a, CALLER_PORT, &kb),
    )
    .unwrap();
    let rx_secs = f64::from(SECONDS) - 0.2;
    // ffmpeg in a namespace, stopped after 30 s at the latest, its output in work/LOG.
    let ffmpeg = |name: &str, ns: &str, args: Vec<String>, log: &str| {
        launch(
            name,
            topo.exec(ns, "timeout").arg("30").arg("ffmpeg").args(args),
            &work.join(log),
        )
    };
    let mut rx_b = ffmpeg(
        "ffmpeg rx B",
        &topo.b,
        ffmpeg_rx(&work.join("rx-b.sdp"), &work.join("rx-b.wav"), rx_secs),
        "rx-b.log",
    );
    let mut rx_a = ffmpeg(
        "ffmpeg rx A",
        &topo.a,
        ffmpeg_rx(&work.join("rx-a.sdp"), &work.join("rx-a.wav"), rx_secs),
        "rx-a.log",
    );
    let core = work.join("core.pcap");
    let tcpdump = launch(
        "tcpdump",
        topo.exec(&topo.r, "tcpdump")
            .args(["-i", &topo.r_to_b, "-U", "-n", "-w"])
            .arg(&core)
            .args(["udp", "port", &CALLEE_PORT.to_string()]),
        &work.join("tcpdump.log"),
    );
    wait_bound(&topo, &topo.b, CALLEE_PORT);
    wait_bound(&topo, &topo.a, CALLER_PORT);
    std::thread::sleep(Duration::from_millis(700));

    // The call: both senders at once; the caller starts near the sequence wrap.
    let mut tx_a = ffmpeg(
        "ffmpeg tx A",
        &topo.a,
        ffmpeg_tx(
            TONE_CALLER,
            SECONDS,
            0x1111_0001,
            65400,
            &ka,
            &topo.ip_b,
            CALLEE_PORT,
            CALLER_PORT + 10,
        ),
        "tx-a.log",
    );
    let mut tx_b = ffmpeg(
        "ffmpeg tx B",
        &topo.b,
        ffmpeg_tx(
            TONE_CALLEE,
            SECONDS,
            0x2222_0001,
            1000,
            &kb,
            &topo.ip_a,
            CALLER_PORT,
            CALLEE_PORT + 10,
        ),
        "tx-b.log",
    );
    check!(
        tx_a.finished(Duration::from_secs(30)) && tx_b.finished(Duration::from_secs(30)),
        "ffmpeg sent {SECONDS} s of SRTP each way (1000 Hz caller from seq 65400, 700 Hz callee)"
    );
    // A new SSRC from the caller (a restarted sender, same key): 1 s more.
    let mut tx_a2 = ffmpeg(
        "ffmpeg tx A2",
        &topo.a,
        ffmpeg_tx(
            TONE_CALLER,
            1,
            0x1111_0002,
            20000,
            &ka,
            &topo.ip_b,
            CALLEE_PORT,
            CALLER_PORT + 10,
        ),
        "tx-a2.log",
    );
    check!(
        tx_a2.finished(Duration::from_secs(30)),
        "caller sent 1 s more under a new SSRC"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut stop = start.clone();
    stop.sequence = seq0 + 5;
    stop.sent_at_ms = sipsd::record::channel::now_ms();
    stop.event = Event::Stop(CallStop {
        reason: "BYE".into(),
    });
    seal_to(&sender, &stop, &work.join("stop.p7m"));
    topo.key_send(&bin, &[work.join("stop.p7m")]);
    check!(
        recorder.finished(Duration::from_secs(20)),
        "recorder finished the call on the stop message and exited"
    );
    rx_a.finished(Duration::from_secs(20));
    rx_b.finished(Duration::from_secs(20));
    signal_group(tcpdump.pid(), "-INT");
    drop(tcpdump);

    let log = std::fs::read_to_string(&rec_log).unwrap();
    println!("--- recorder log ---\n{log}--------------------");
    check!(
        log.contains("replayed or too old"),
        "the replayed start message was refused"
    );
    check!(
        log.matches("refused").count() >= 2,
        "the message under an unknown KEK was refused too"
    );

    // The recording.
    let dir = only_subdir(&out);
    let m = read_manifest(&dir);
    check!(
        m.call_id == call_id
            && m.caller == "sip:alice@a.example"
            && m.key_sender == "proxy1"
            && m.end_reason == "BYE",
        "manifest: call-id, parties, key sender, end reason BYE"
    );
    check!(
        m.dialog_id == sipsd::hex::encode(dialog.as_bytes()),
        "manifest: dialog id = SHA-256(Call-ID, caller tag)"
    );
    let caller = m.streams.iter().find(|s| s.sender == "caller").unwrap();
    let callee = m.streams.iter().find(|s| s.sender == "callee").unwrap();
    let n = u64::from(SECONDS) * 50;
    check!(
        caller.ssrcs.len() == 2 && caller.ssrcs[0].packets == n && caller.ssrcs[1].packets == 50,
        "caller stream: SSRC change seen, {} + {} packets ({:?})",
        caller.ssrcs[0].packets,
        caller.ssrcs[1].packets,
        caller.ssrcs.iter().map(|s| &s.ssrc).collect::<Vec<_>>()
    );
    check!(
        callee.ssrcs.len() == 1 && callee.packets == n,
        "callee stream: {} packets",
        callee.packets
    );
    check!(
        caller.lost == 0
            && callee.lost == 0
            && caller.auth_failures == 0
            && callee.auth_failures == 0,
        "no loss, no authentication failure on the mirrored copies"
    );
    let first = &caller.ssrcs[0];
    check!(
        first.first_seq == Some(65400)
            && first.highest_seq == Some(65400 + n - 1)
            && first.highest_seq.unwrap() > 65535,
        "ROC rollover: extended seq 65400..{} (ROC 0 -> 1) decrypted without a gap",
        first.highest_seq.unwrap()
    );
    check!(
        caller.rtcp_packets >= 1
            && callee.rtcp_packets >= 1
            && caller.ssrcs[0].rtcp_sender_reports >= 1
            && caller.rtcp_auth_failures == 0,
        "SRTCP: {} + {} packets decrypted (sender reports)",
        caller.rtcp_packets,
        callee.rtcp_packets
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_file).unwrap()).unwrap();
    check!(
        stats["kernel_drops"] == 0,
        "no packet dropped by the capture socket ({} packets seen)",
        stats["kernel_packets"]
    );

    // The audio.
    let (_, _, caller_wav) = wav::read(&dir.join("caller.wav")).unwrap();
    let (_, _, callee_wav) = wav::read(&dir.join("callee.wav")).unwrap();
    let (_, _, mixed) = wav::read(&dir.join("mixed.wav")).unwrap();
    let fa = dominant_freq(&caller_wav);
    let fb = dominant_freq(&callee_wav);
    check!(
        fa == f64::from(TONE_CALLER) && fb == f64::from(TONE_CALLEE),
        "dominant frequency: caller.wav {fa} Hz, callee.wav {fb} Hz"
    );
    let share = (energy_share(&mixed, 1000.0), energy_share(&mixed, 700.0));
    check!(
        share.0 > 0.3 && share.1 > 0.3,
        "mixed.wav holds both tones (energy share {:.2} at 1000 Hz, {:.2} at 700 Hz)",
        share.0,
        share.1
    );
    // Against ffmpeg's own source samples.
    let src = work.join("src.wav");
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={TONE_CALLER}:sample_rate=8000:duration={SECONDS}"),
            "-c:a",
            "pcm_s16le",
        ])
        .arg(&src));
    let (_, _, src_samples) = wav::read(&src).unwrap();
    let seg = &caller_wav[..src_samples.len()];
    let worst = seg
        .iter()
        .zip(&src_samples)
        .map(|(r, s)| (i32::from(*r) - i32::from(*s)).abs() - mulaw_tolerance(*s))
        .max()
        .unwrap();
    let max_err = seg
        .iter()
        .zip(&src_samples)
        .map(|(r, s)| (i32::from(*r) - i32::from(*s)).abs())
        .max()
        .unwrap();
    check!(
        worst <= 0,
        "caller.wav = ffmpeg's source within G.711 error: {} samples, largest difference {max_err}",
        src_samples.len()
    );
    // Against what the callee's ffmpeg decoded from the original flow.
    let (_, _, rx_b_wav) = wav::read(&work.join("rx-b.wav")).unwrap();
    let (shift, equal) = best_alignment(&rx_b_wav, &caller_wav, 400);
    check!(rx_b_wav.len() > 7000 && equal == rx_b_wav.len(), "callee's ffmpeg (original flow) and the recorder agree sample for sample: {equal}/{} (shift {shift})", rx_b_wav.len());
    let (_, _, rx_a_wav) = wav::read(&work.join("rx-a.wav")).unwrap();
    let (_, eq_a) = best_alignment(&rx_a_wav, &callee_wav, 400);
    check!(
        rx_a_wav.len() > 7000 && eq_a == rx_a_wav.len(),
        "caller's ffmpeg and the recorder agree on the callee's audio: {eq_a}/{}",
        rx_a_wav.len()
    );
    let rtp_pcap = PcapReader::open(&dir.join("rtp.pcap"))
        .unwrap()
        .read_all()
        .unwrap();
    let plain_rtp = rtp_pcap
        .iter()
        .filter(|p| {
            sipsd_rec::net::parse_ip(&p.data)
                .is_some_and(|d| d.dst.port() == CALLEE_PORT && d.payload.len() == 172)
        })
        .count();
    check!(plain_rtp as u64 == n + 50, "rtp.pcap: {plain_rtp} decrypted caller RTP packets (12-byte header + 160 bytes PCMU, no tag)");

    // The core network's capture without and with the key.
    let core_rtp = payloads_to(&core, CALLEE_PORT);
    check!(
        core_rtp.len() as u64 >= n,
        "core capture: {} SRTP packets to the callee",
        core_rtp.len()
    );
    let wrong = b64(&random_bytes(30));
    let (wlog, wsamples) = ffmpeg_decode(work, "core-wrong-key", &core_rtp[..n as usize], &wrong);
    check!(
        wlog.contains("HMAC mismatch") && wsamples.is_empty(),
        "ffmpeg on the core capture with another key: \"HMAC mismatch\", no audio"
    );
    let (_, good) = ffmpeg_decode(work, "core-key", &core_rtp[..n as usize], &ka);
    let (_, eq_core) = best_alignment(&good, &caller_wav, 400);
    check!(good.len() > 7000 && eq_core == good.len(), "ffmpeg decoding the core capture with the key agrees with the recorder: {eq_core}/{} samples", good.len());
    let mut wrong_start = start.clone();
    wrong_start.event = Event::Start(CallStart {
        call_id: call_id.clone(),
        caller: "x".into(),
        callee: "y".into(),
        streams: vec![pcmu_stream(
            0,
            Direction::CallerToCallee,
            (&topo.ip_a, CALLER_PORT),
            (&topo.ip_b, CALLEE_PORT),
            &wrong,
        )],
    });
    let ms = sipsd_rec::audit::replay(
        &core,
        vec![wrong_start],
        &work.join("core-libsrtp"),
        &Default::default(),
    )
    .unwrap();
    let s = &ms[0].streams[0];
    check!(
        s.packets == 0 && s.auth_failures >= n - 16,
        "libsrtp on the core capture with another key: 0 decrypted, {} failed authentication",
        s.auth_failures
    );

    // No key anywhere the recorder wrote or said.
    let mut places = files_under(&out);
    places.push(rec_log.clone());
    places.push(stats_file.clone());
    for p in &places {
        let data = std::fs::read(p).unwrap();
        for k in [&key_a, &key_b] {
            assert!(
                !contains(&data, k)
                    && !contains(&data, b64(k).as_bytes())
                    && !contains(&data, sipsd::hex::encode(k).as_bytes()),
                "a key in {}",
                p.display()
            );
        }
    }
    println!("  ok   no SDES key (raw, base64 or hex) in the recorder's log, stats or any of {} recording files", places.len() - 2);

    // The auditor's copy.
    let audit_out = work.join("audit");
    let opened = audit_open(&bin, work, &dir, &audit_out);
    let adir = only_subdir(&audit_out);
    let (_, _, audit_caller) = wav::read(&adir.join("caller.wav")).unwrap();
    check!(
        opened.contains(&call_id) && audit_caller == caller_wav,
        "audit-open with the auditor's key: same caller.wav as the live recording ({} samples)",
        audit_caller.len()
    );
    let keys_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/vectors/keys");
    let refused = Command::new(&bin)
        .args(["audit-open", "--key"])
        .arg(format!(
            "{}:{}",
            keys_dir.join("proxy1.key").display(),
            keys_dir.join("proxy1.crt").display()
        ))
        .arg("--recording")
        .arg(&dir)
        .arg("--out")
        .arg(work.join("audit-wrong"))
        .output()
        .unwrap();
    check!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("recipient"),
        "audit-open with another key: {}",
        String::from_utf8_lossy(&refused.stderr).trim()
    );

    // Loss and reordering: drop one caller packet in 10 (never the first or last of an SSRC: those are not losses a receiver can see), swap a pair every 7.
    let lossy = work.join("lossy");
    let (dropped, swapped) = altered_recording(&dir, &lossy, |i| i % 10 != 5, |i| i % 7 == 3);
    let lossy_out = work.join("lossy-out");
    audit_open(&bin, work, &lossy, &lossy_out);
    let lm = read_manifest(&only_subdir(&lossy_out));
    let lc = lm.streams.iter().find(|s| s.sender == "caller").unwrap();
    let (_, _, lwav) = wav::read(&only_subdir(&lossy_out).join("caller.wav")).unwrap();
    check!(
        lc.lost == dropped as u64 && lc.reordered >= swapped as u64 - 1 && lc.auth_failures == 0,
        "replay with {dropped} dropped and {swapped} swapped: manifest lost {}, reordered {}",
        lc.lost,
        lc.reordered
    );
    check!(
        dominant_freq(&lwav) == 1000.0 && lwav.len() >= caller_wav.len() - 200,
        "lossy replay still decodes to 1000 Hz ({} samples, gaps silent)",
        lwav.len()
    );

    // A recording that starts mid-call: the first 150 caller packets (past the wrap) missing.
    let mid = work.join("mid");
    altered_recording(&dir, &mid, |i| i >= 150, |_| false);
    let mid_out = work.join("mid-out");
    audit_open(&bin, work, &mid, &mid_out);
    let mm = read_manifest(&only_subdir(&mid_out));
    let mc = mm.streams.iter().find(|s| s.sender == "caller").unwrap();
    let (_, _, mwav) = wav::read(&only_subdir(&mid_out).join("caller.wav")).unwrap();
    check!(mc.ssrcs[0].roc_at_start == Some(1) && mc.ssrcs[0].packets == n - 150 && mc.ssrcs[0].first_seq == Some(65400 + 150), "mid-call start after the wrap: ROC 1 found (srtp_set_stream_roc), {} packets from extended seq {:?}", mc.ssrcs[0].packets, mc.ssrcs[0].first_seq);
    check!(
        dominant_freq(&mwav) == 1000.0,
        "mid-call recording decodes to 1000 Hz"
    );
}
