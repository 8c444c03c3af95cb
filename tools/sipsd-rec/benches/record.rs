//! Benchmark of the SRTP recorder (docs/BENCHMARKS.md, section "SRTP recorder"):
//!
//! 1. libsrtp2's own decrypt rate: `srtp_unprotect` of 20 ms PCMU packets
//!    (AES_CM_128_HMAC_SHA1_80) in a loop, in this process;
//! 2. concurrent calls recorded live: the topology of the end-to-end test (caller, callee,
//!    core router with `nft dup` to the recorder's namespace); per call two SRTP streams of
//!    50 packets/s (one from each side), sent by this program re-run as a sender inside the
//!    caller's and the callee's namespaces through libsrtp2; `sipsd-rec run` records them. For
//!    each step: packets sent, packets written (sum of the manifests), kernel drops, and the
//!    recorder's CPU time per stream and per packet, next to libsrtp2's.
//!
//! `cargo bench -p sipsd-rec --bench record -- [--secs S] [--calls "50 100 200"] [--out FILE]`
//! (root; ip, nft, openssl). The markdown section goes to stdout and to --out.

#[path = "../tests/support/mod.rs"]
#[macro_use]
mod support;

use std::io::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sipsd::engine::cache::DialogKey;
use sipsd::record::{CallStart, CallStop, CryptoAttr, Event, KeyMessage};
use sipsd_rec::manifest::Manifest;
use sipsd_rec::srtp::Session;
use support::*;

const BASE_PORT: u16 = 20000;

fn rtp_packet(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160).map(|i| if (i / 4) % 2 == 0 { 0x20u8 } else { 0xa0 }));
    p
}

fn attr(key_b64: &str) -> CryptoAttr {
    CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key_b64}")).unwrap()
}

/// libsrtp2's srtp_unprotect rate (packets/s) over `secs`.
fn libsrtp_rate(secs: f64) -> f64 {
    let a = attr(&b64(&random_bytes(30)));
    let mut tx = Session::new(&a, 0x5151, 1024).unwrap();
    let packets: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| {
            let mut p = rtp_packet(i as u16, i * 160, 0x5151);
            tx.protect(&mut p).unwrap();
            p
        })
        .collect();
    let (mut n, t0) = (0u64, Instant::now());
    while t0.elapsed().as_secs_f64() < secs {
        let mut rx = Session::new(&a, 0x5151, 1024).unwrap();
        for p in &packets {
            let mut b = p.clone();
            rx.unprotect(&mut b).unwrap();
            n += 1;
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Sender role (run inside a namespace): `keys` has one line per stream, `PORT KEY_B64`;
/// sends 50 packets/s per stream to `dst` for `secs`; prints the packets sent.
fn sender(keys: &Path, dst: &str, secs: u64) {
    let lines = std::fs::read_to_string(keys).unwrap();
    let mut streams: Vec<(u16, Session, u32)> = lines
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let (port, key) = l.split_once(' ').unwrap();
            let ssrc = 0x1000_0000 + i as u32;
            (
                port.parse().unwrap(),
                Session::new(&attr(key), ssrc, 1024).unwrap(),
                ssrc,
            )
        })
        .collect();
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    let ticks = secs * 50;
    let t0 = Instant::now();
    let mut sent = 0u64;
    for tick in 0..ticks {
        let due = t0 + Duration::from_millis(tick * 20);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        for (port, s, ssrc) in &mut streams {
            let mut p = rtp_packet(tick as u16, tick as u32 * 160, *ssrc);
            s.protect(&mut p).unwrap();
            if sock.send_to(&p, (dst, *port)).is_ok() {
                sent += 1;
            }
        }
    }
    println!("sent {sent}");
}

struct Step {
    calls: usize,
    sent: u64,
    written: u64,
    kernel_drops: u64,
    cpu_s: f64,
    media_s: f64,
    lost: u64,
    recorded: u64,
    wall_s: f64,
    user_s: f64,
}

fn step(bin: &Path, work: &Path, calls: usize, secs: u64) -> Step {
    let topo = Topology::new("sdb");
    let mut flows: Vec<(String, u16)> = Vec::new();
    let dir = work.join(format!("calls-{calls}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (chan, kek_arg) = channel(&dir, "proxy1");
    let (mut keys_a, mut keys_b) = (String::new(), String::new());
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    let seq0 = sipsd::record::channel::initial_sequence();
    for c in 0..calls {
        let port = BASE_PORT + 2 * c as u16;
        let (ka, kb) = (b64(&random_bytes(30)), b64(&random_bytes(30)));
        keys_a.push_str(&format!("{port} {ka}\n"));
        keys_b.push_str(&format!("{port} {kb}\n"));
        flows.push((topo.ip_b.clone(), port));
        flows.push((topo.ip_a.clone(), port));
        let dialog = DialogKey::new(format!("bench-{c}").as_bytes(), b"t");
        let streams = pcmu_call((&topo.ip_a, port), (&topo.ip_b, port), &ka, &kb);
        let start = KeyMessage::new(
            "proxy1",
            seq0 + 2 * c as u64,
            sipsd::record::channel::now_ms(),
            dialog.as_bytes(),
            Event::Start(CallStart {
                call_id: format!("bench-{c}"),
                caller: "a".into(),
                callee: "b".into(),
                streams,
            }),
        );
        let p = dir.join(format!("start-{c}.p7m"));
        seal_to(&chan, &start, &p);
        starts.push(p);
        let mut stop = start.clone();
        stop.sequence += 1;
        stop.event = Event::Stop(CallStop {
            reason: "BYE".into(),
        });
        stops.push(stop);
    }
    let flow_refs: Vec<(&str, u16)> = flows.iter().map(|(a, p)| (a.as_str(), *p)).collect();
    topo.mirror(&flow_refs);
    std::fs::write(dir.join("keys-a"), keys_a).unwrap();
    std::fs::write(dir.join("keys-b"), keys_b).unwrap();
    let out = dir.join("recordings");
    let stats = dir.join("rec-stats.json");
    let mut rec = topo.start_recorder(bin, &kek_arg, &dir, calls, secs + 60, &[]);
    std::thread::sleep(Duration::from_millis(500));
    topo.key_send(bin, &starts);
    std::thread::sleep(Duration::from_millis(300));
    let me = std::env::current_exe().unwrap();
    let spawn_sender = |ns: &str, keys: &str, dst: &str, log: &str| {
        launch(
            "sender",
            topo.exec(ns, me.to_str().unwrap()).env(
                "SIPSD_REC_BENCH_SENDER",
                format!("{}|{dst}|{secs}", dir.join(keys).display()),
            ),
            &dir.join(log),
        )
    };
    let mut sa = spawn_sender(&topo.a, "keys-a", &topo.ip_b, "sender-a.log");
    let mut sb = spawn_sender(&topo.b, "keys-b", &topo.ip_a, "sender-b.log");
    assert!(
        sa.finished(Duration::from_secs(secs + 60)) && sb.finished(Duration::from_secs(secs + 60)),
        "senders failed"
    );
    std::thread::sleep(Duration::from_millis(500));
    let stop_files: Vec<PathBuf> = stops
        .iter()
        .enumerate()
        .map(|(c, m)| {
            let mut m = m.clone();
            m.sent_at_ms = sipsd::record::channel::now_ms();
            let p = dir.join(format!("stop-{c}.p7m"));
            seal_to(&chan, &m, &p);
            p
        })
        .collect();
    topo.key_send(bin, &stop_files);
    assert!(
        rec.finished(Duration::from_secs(120)),
        "recorder failed: {}",
        std::fs::read_to_string(dir.join("recorder.log")).unwrap_or_default()
    );
    let sent: u64 = ["sender-a.log", "sender-b.log"]
        .iter()
        .map(|l| {
            std::fs::read_to_string(dir.join(l))
                .unwrap()
                .trim()
                .trim_start_matches("sent ")
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let (mut written, mut lost) = (0u64, 0u64);
    for e in std::fs::read_dir(&out).unwrap() {
        let m: Manifest = serde_json::from_slice(
            &std::fs::read(e.unwrap().path().join("manifest.json")).unwrap(),
        )
        .unwrap();
        written += m.streams.iter().map(|s| s.packets).sum::<u64>();
        lost += m.streams.iter().map(|s| s.lost).sum::<u64>();
    }
    let cpu_s = st["cpu_user_s"].as_f64().unwrap() + st["cpu_system_s"].as_f64().unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let recorded = st["recorder"]["calls_started"].as_u64().unwrap_or(0);
    Step {
        recorded,
        wall_s: st["wall_s"].as_f64().unwrap_or(0.0),
        user_s: st["cpu_user_s"].as_f64().unwrap_or(0.0),
        calls,
        sent,
        written,
        kernel_drops: st["kernel_drops"].as_u64().unwrap_or(0),
        cpu_s,
        media_s: secs as f64,
        lost,
    }
}

fn main() {
    if let Ok(spec) = std::env::var("SIPSD_REC_BENCH_SENDER") {
        let mut f = spec.split('|');
        let (keys, dst, secs) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        sender(Path::new(keys), dst, secs.parse().unwrap());
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let secs: u64 = arg("--secs").map_or(10, |s| s.parse().unwrap());
    let calls: Vec<usize> = arg("--calls")
        .unwrap_or_else(|| "50 100 200".into())
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    if !prerequisites(&["ip", "nft", "sysctl", "kill"]) {
        return;
    }
    // Built by `cargo bench` with the bench (optimised) profile.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sipsd-rec"));
    let work = tempfile::tempdir().unwrap();
    let rate = libsrtp_rate(2.0);
    let mut rows = Vec::new();
    for &n in &calls {
        let s = step(&bin, work.path(), n, secs);
        eprintln!(
            "calls={} recorded={} sent={} written={} drops={} cpu={:.2}s wall={:.1}s",
            s.calls, s.recorded, s.sent, s.written, s.kernel_drops, s.cpu_s, s.wall_s
        );
        rows.push(s);
    }
    let mut md = String::new();
    md.push_str("## 7. SRTP recorder (sipsd-rec)\n\n");
    md.push_str(&format!(
        "`cargo bench -p sipsd-rec --bench record -- --secs {secs} --calls \"{}\"` on this machine ({} cores, load {}).\n\
         Calls of two SRTP streams (AES_CM_128_HMAC_SHA1_80, PCMU 20 ms: 50 packets/s each way) sent through\n\
         libsrtp2 from the caller's and the callee's namespaces, mirrored by `nft dup` in the core router to the\n\
         recorder's namespace, recorded by `sipsd-rec run` (AF_PACKET capture, libsrtp2 decrypt, WAV + decrypted\n\
         pcap + manifest per call) for {secs} s per step. *Recorded*: calls whose start message the recorder accepted;\n\
         *written*: the sum of the manifests' packets.\n\n",
        calls.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));
    md.push_str(&format!(
        "{} alone, `srtp_unprotect` in a loop (one core): **{:.0} packets/s** ({:.2} µs per packet).\n\n",
        sipsd_rec::srtp::version(),
        rate,
        1e6 / rate
    ));
    md.push_str("| calls | recorded | streams | packets/s | sent | written | lost | kernel drops | recorder CPU (user) / run | CPU per stream | µs per packet | vs libsrtp alone |\n");
    md.push_str(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in &rows {
        let streams = 2 * s.calls;
        let per_pkt = s.cpu_s / s.written.max(1) as f64 * 1e6;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} s ({:.2} s) / {:.1} s | {:.3}% of a core | {:.2} | {:.1}x |\n",
            s.calls,
            s.recorded,
            streams,
            streams * 50,
            s.sent,
            s.written,
            s.lost,
            s.kernel_drops,
            s.cpu_s,
            s.user_s,
            s.wall_s,
            100.0 * s.cpu_s / s.media_s / streams as f64,
            per_pkt,
            per_pkt / (1e6 / rate)
        ));
    }
    let best = rows
        .iter()
        .filter(|s| s.written == s.sent && s.kernel_drops == 0 && s.recorded == s.calls as u64)
        .map(|s| s.calls)
        .max();
    md.push_str(&format!(
        "\nHighest step recorded without loss (written = sent, no kernel drop): **{}**. The recorder's CPU covers the\n\
         whole run (start-up, key messages, {secs} s of media, closing the files), so per packet it is an upper bound; *CPU per stream* is that CPU time over\n\
         streams x media seconds. *Run* is the recorder's whole wall time. On a shared machine both rates move\n\
         with the load (printed above): compare the two columns of one run, not runs with each other.\n",
        best.map_or("none".to_string(), |c| format!("{c} concurrent calls"))
    ));
    print!("{md}");
    if let Some(p) = arg("--out") {
        std::fs::File::create(&p)
            .unwrap()
            .write_all(md.as_bytes())
            .unwrap();
    }
}
