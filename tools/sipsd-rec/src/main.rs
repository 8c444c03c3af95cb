//! `sipsd-rec`: the SRTP recorder's command line (docs/RECORDING.md).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde::Serialize;
use sipsd::crypto::keys::{KeySpec, KeyStore, PskSpec};
use sipsd::engine::proxy::ProxyConfig;
use sipsd::record::ChannelReceiver;
use sipsd_rec::audit;
use sipsd_rec::call::RecordOptions;
use sipsd_rec::capture::{self, KernelStats, PacketSocket, Signals};
use sipsd_rec::recorder::{Recorder, RecorderStats};

#[derive(Parser)]
#[command(
    name = "sipsd-rec",
    version,
    about = "Records SRTP calls with the keys a trusted sipsd proxy discloses"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Tuning {
    /// SRTP replay window per SSRC (packets of reordering tolerated), 64..32768.
    #[arg(long, default_value_t = 1024)]
    window: u32,
    /// Highest roll-over counter tried when a capture starts in the middle of a call.
    #[arg(long, default_value_t = 64)]
    max_roc: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record live: mirrored packets from an interface, keys from the key channel.
    Run(RunArgs),
    /// Send sealed key messages (files of DER) to a recorder's key channel over UDP.
    KeySend {
        /// The recorder's --listen address.
        #[arg(long)]
        to: SocketAddr,
        /// Sealed key message files, sent in order.
        files: Vec<PathBuf>,
    },
    /// Write the man pages (sipsd-rec.1 and one per command) into a directory (packaging).
    #[command(hide = true)]
    GenerateMan {
        /// The directory, created when missing.
        #[arg(long)]
        man: PathBuf,
    },
    /// Open a recording kept with --auditor-cert, with the auditor's private key.
    AuditOpen {
        /// The auditor's key: `key=PATH;cert=PATH` (or `KEY:CERT`).
        #[arg(long)]
        key: String,
        /// The recording's directory (with keys.p7m and srtp.pcap).
        #[arg(long)]
        recording: PathBuf,
        /// Where to write the decrypted recording.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        tuning: Tuning,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The interface the mirrored packets arrive on (AF_PACKET capture; needs CAP_NET_RAW).
    #[arg(long)]
    iface: String,
    /// UDP address of the key channel (sealed key messages from the proxies).
    #[arg(long)]
    listen: SocketAddr,
    /// A proxy's key-encryption key: `id=HEX|text:ID;key=PATH;label=PROXYNAME` (the label
    /// is the sender name its messages carry) — repeatable.
    #[arg(long = "kek", required = true)]
    keks: Vec<String>,
    /// Directory for the recordings (one sub-directory per call).
    #[arg(long)]
    out: PathBuf,
    /// Keep each call's SRTP as received with its keys sealed for this certificate.
    #[arg(long)]
    auditor_cert: Option<PathBuf>,
    /// With --auditor-cert: write no plaintext (no WAV, no decrypted pcap).
    #[arg(long, requires = "auditor_cert")]
    auditor_only: bool,
    /// Refuse key messages sent further than this from our clock (seconds).
    #[arg(long, default_value_t = 30)]
    max_skew: u64,
    /// Refuse KEK files readable by group or others.
    #[arg(long)]
    strict_key_permissions: bool,
    /// Socket receive buffer for the capture, bytes.
    #[arg(long, default_value_t = 32 << 20)]
    rcvbuf: usize,
    /// Stop after this many seconds (0: run until SIGTERM/SIGINT).
    #[arg(long, default_value_t = 0)]
    max_seconds: u64,
    /// Stop once this many calls have been finished (0: never).
    #[arg(long, default_value_t = 0)]
    exit_after_calls: u64,
    /// Write the run's counters (JSON) here when stopping.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Microseconds to let packets gather after each batch read (0: wake for every packet).
    #[arg(long, default_value_t = 1000)]
    batch_wait_us: u64,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Serialize)]
struct RunStats {
    recorder: RecorderStats,
    kernel_packets: u64,
    kernel_drops: u64,
    cpu_user_s: f64,
    cpu_system_s: f64,
    wall_s: f64,
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: rusage is plain data (all-zero is valid) and getrusage fills the struct it is
    // given; RUSAGE_SELF cannot fail with a valid pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn kek_specs(values: &[String]) -> Result<Vec<PskSpec>, String> {
    let mut cfg = ProxyConfig::default();
    for v in values {
        cfg.set("psk", v).map_err(|e| format!("--kek {v:?}: {e}"))?;
    }
    Ok(cfg.keys.psk)
}

fn auditor_keys(value: &str) -> Result<KeyStore, String> {
    let spec = match value.split_once(':') {
        Some((k, c)) if !value.contains('=') => format!("key={k};cert={c}"),
        _ => value.to_string(),
    };
    let mut cfg = ProxyConfig::default();
    cfg.set("rsa_key", &spec)
        .map_err(|e| format!("--key: {e}"))?;
    KeyStore::load(&KeySpec {
        rsa: cfg.keys.rsa,
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

fn run(args: RunArgs) -> Result<(), String> {
    let RunArgs {
        iface,
        listen,
        keks,
        out,
        auditor_cert,
        auditor_only,
        max_skew,
        strict_key_permissions: strict,
        rcvbuf,
        max_seconds,
        exit_after_calls,
        stats_file,
        batch_wait_us,
        tuning,
    } = args;
    sipsd_rec::srtp::init().map_err(|e| e.to_string())?;
    let mut channel =
        ChannelReceiver::new(kek_specs(&keks)?, strict, Duration::from_secs(max_skew))
            .map_err(|e| e.to_string())?;
    for w in channel.warnings() {
        eprintln!("sipsd-rec: warning: {w}");
    }
    let auditor = auditor_cert
        .as_deref()
        .map(audit::auditor)
        .transpose()
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let opts = RecordOptions {
        window: tuning.window,
        max_roc: tuning.max_roc,
        plaintext: !auditor_only,
        keep_srtp: auditor.is_some(),
    };
    let signals = Signals::new().map_err(|e| e.to_string())?;
    let sock = PacketSocket::open(&iface, rcvbuf).map_err(|e| e.to_string())?;
    let keys = UdpSocket::bind(listen).map_err(|e| format!("key channel {listen}: {e}"))?;
    keys.set_nonblocking(true).map_err(|e| e.to_string())?;
    // Proxies may send many starts at once (a burst of new calls): 4 MB of key messages.
    capture::set_rcvbuf(std::os::fd::AsRawFd::as_raw_fd(&keys), 4 << 20);
    let mut rec = Recorder::new(&out, opts, auditor);
    eprintln!(
        "sipsd-rec: {} ready: capture on {iface}, key channel on {listen}, recordings in {}",
        sipsd_rec::srtp::version(),
        out.display()
    );
    let batch_wait = Duration::from_micros(batch_wait_us);
    let started = Instant::now();
    let mut kernel = KernelStats::default();
    let mut buf = vec![0u8; 65536];
    let mut kbuf = vec![0u8; 65536];
    let reason = loop {
        if max_seconds > 0 && started.elapsed() >= Duration::from_secs(max_seconds) {
            break "recorder stopped (--max-seconds)";
        }
        if exit_after_calls > 0 && rec.stats.calls_finished >= exit_after_calls {
            break "recorder stopped (--exit-after-calls)";
        }
        let ready = capture::wait(&sock, Some(&keys), &signals, Duration::from_millis(200))
            .map_err(|e| e.to_string())?;
        if ready.signal && signals.take().is_some() {
            break "recorder stopped (signal)";
        }
        // Key messages first: a start must be in place before its first packets.
        if ready.keys {
            while let Ok((n, from)) = keys.recv_from(&mut kbuf) {
                match channel.open(&kbuf[..n]) {
                    Ok(msg) => rec.on_key_message(msg).map_err(|e| e.to_string())?,
                    Err(e) => {
                        rec.stats.key_messages_refused += 1;
                        eprintln!("sipsd-rec: key message from {from} refused: {e}");
                    }
                }
            }
        }
        if ready.packets {
            let mut n_read = 0;
            for _ in 0..4096 {
                match sock.recv(&mut buf).map_err(|e| e.to_string())? {
                    Some(n) => {
                        n_read += 1;
                        rec.on_ip(capture::now(), &buf[..n])
                            .map_err(|e| e.to_string())?
                    }
                    None => break,
                }
            }
            // Let packets gather (the socket buffer holds seconds of them) rather than wake up
            // for each one: fewer context switches per packet. Arrival times keep 1 ms accuracy.
            if n_read < 4096 && batch_wait > Duration::ZERO {
                std::thread::sleep(batch_wait);
            }
        }
    };
    // What is still queued belongs to the run.
    while let Some(n) = sock.recv(&mut buf).map_err(|e| e.to_string())? {
        rec.on_ip(capture::now(), &buf[..n])
            .map_err(|e| e.to_string())?;
    }
    rec.finish_all(reason).map_err(|e| e.to_string())?;
    if let Ok(k) = sock.stats() {
        kernel.packets += k.packets;
        kernel.drops += k.drops;
    }
    let (u, s) = cpu_times();
    let stats = RunStats {
        recorder: rec.stats.clone(),
        kernel_packets: kernel.packets,
        kernel_drops: kernel.drops,
        cpu_user_s: u,
        cpu_system_s: s,
        wall_s: started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "sipsd-rec: {reason}: {} calls, {} packets in, {} decrypted, {} failed authentication, {} unmatched, kernel drops {}",
        rec.stats.calls_finished, rec.stats.packets_in, rec.stats.decrypted, rec.stats.auth_failed, rec.stats.unmatched, kernel.drops
    );
    if let Some(p) = stats_file {
        std::fs::write(
            &p,
            serde_json::to_vec_pretty(&stats).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Recordings hold plaintext audio (and audit-open writes it): directories 0700, files 0600.
    // SAFETY: umask(2) only sets this process's file mode mask.
    unsafe { libc::umask(0o077) };
    let res = match cli.cmd {
        Cmd::Run(args) => run(args),
        Cmd::GenerateMan { man } => (|| {
            use clap::CommandFactory as _;
            let io = |e: std::io::Error| format!("{}: {e}", man.display());
            std::fs::create_dir_all(&man).map_err(io)?;
            clap_mangen::generate_to(Cli::command(), &man).map_err(io)
        })(),
        Cmd::KeySend { to, files } => (|| {
            let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
                .map_err(|e| e.to_string())?;
            for f in &files {
                let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
                sock.send_to(&data, to)
                    .map_err(|e| format!("send to {to}: {e}"))?;
            }
            eprintln!("sipsd-rec: sent {} key messages to {to}", files.len());
            Ok(())
        })(),
        Cmd::AuditOpen {
            key,
            recording,
            out,
            tuning,
        } => (|| {
            let keys = auditor_keys(&key)?;
            let opts = RecordOptions {
                window: tuning.window,
                max_roc: tuning.max_roc,
                ..Default::default()
            };
            let ms =
                audit::open_recording(&recording, &keys, &out, &opts).map_err(|e| e.to_string())?;
            for m in &ms {
                let packets: u64 = m.streams.iter().map(|s| s.packets).sum();
                println!(
                    "opened dialog {} (call-id {}): {} streams, {packets} RTP packets",
                    m.dialog_id,
                    m.call_id,
                    m.streams.len()
                );
            }
            Ok(())
        })(),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipsd-rec: {e}");
            ExitCode::FAILURE
        }
    }
}
