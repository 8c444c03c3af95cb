//! Hostile SIP traffic through a real trusted Kamailio proxy (P1: cfg-examples/trusted-proxy.cfg
//! with build/sipsd.so), forwarding to a UDP sink that records what P1 relays and answers it.
//!
//! More than 1,000 malformed or adversarial messages — truncated, over-long and absurd-length
//! DER, bit flips, deep and huge multipart bodies, wrong content types, invalid base64, bodies
//! near the UDP limit, Content-IDs that point nowhere, hostile `Disclose-To` values,
//! EncryptedData for unknown dialogs, too many recipients — after a warm-up batch. Checks, each
//! printed:
//! - no Kamailio process died (the same PIDs before and after);
//! - every message reached the next hop with its body byte for byte (default `on_error`:
//!   forward), and P1 logged a not-decrypted line for each with the expected result class;
//! - the limits set through the configuration (`max_body_size`, `max_parts`, `max_depth`,
//!   `max_recipients`) applied (`SD_ERR_BODY_LIMIT` = 121);
//! - the error counter (RPC `sipsd.stats` and statistic `sipsd:errors`) grew by exactly the
//!   number of failed messages;
//! - shared memory (`core.shmmem`) and the RSS of P1's processes did not grow beyond a small
//!   bound between the warm-up batch and the end;
//! - a new key for a known dialog is refused from outside the dialog and, inside it, taken only
//!   with the rotation proof under the current key;
//! - P1's log holds no key, plaintext or SDES key marker.
//!
//! Needs kamailio, kamcmd and build/sipsd.so (make); otherwise SKIPPED unless
//! SIPSD_REQUIRE_E2E=1. Run: `cargo test --test hostile_sip -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sipsd::crypto::cms::{self, Cek, ContentAlg, IdKind, Recipient, RsaPadding};

const ADDR: &str = "127.0.0.1";
const MAX_BODY: usize = 32768;
const MAX_PARTS: usize = 8;
const MAX_DEPTH: usize = 3;
const MAX_RECIPIENTS: usize = 4;
const BODY_LIMIT: u32 = 121;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {{
        let what = format!($($fmt)+);
        if $cond {
            println!("  ok   {what}");
        } else {
            panic!("FAILED: {what}");
        }
    }};
}

// ----- prerequisites --------------------------------------------------------------------------

struct Tools {
    root: PathBuf,
    kamailio: PathBuf,
    kamcmd: PathBuf,
    build: PathBuf,
    keys: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tools() -> Option<Tools> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let build = std::env::var_os("SIPSD_BUILD")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build"));
    let keys = root.join("tests/data/vectors/keys");
    let kamailio = find_in_path("kamailio");
    let kamcmd = find_in_path("kamcmd");
    let mut missing = Vec::new();
    if kamailio.is_none() || kamcmd.is_none() {
        missing.push("kamailio + kamcmd (sudo scripts/setup-deps)".to_string());
    }
    for f in ["sipsd.so", "libsipsd.so"] {
        if !build.join(f).is_file() {
            missing.push(format!("{} (make)", build.join(f).display()));
        }
    }
    if find_in_path("kill").is_none() {
        missing.push("kill".into());
    }
    if !missing.is_empty() {
        let msg = format!("hostile_sip needs: {}", missing.join(", "));
        if std::env::var("SIPSD_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("SIPSD_REQUIRE_E2E=1 but {msg}");
        }
        println!("SKIPPED: {msg}");
        return None;
    }
    Some(Tools {
        root,
        kamailio: kamailio?,
        kamcmd: kamcmd?,
        build,
        keys,
    })
}

// ----- P1 in its own process group, killed with the group on drop ----------------------------

struct P1 {
    child: Child,
    log: PathBuf,
    ctl: String,
    kamcmd: PathBuf,
}

fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for P1 {
    fn drop(&mut self) {
        let pgid = self.child.id();
        signal_group(pgid, "-TERM");
        let end = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pgid, "-KILL");
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of P1's log ({})", self.log.display());
            for l in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("    {l}");
            }
        }
    }
}

impl P1 {
    fn rpc(&self, args: &[&str]) -> String {
        let out = Command::new(&self.kamcmd)
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
            .expect("run kamcmd");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `name: value` fields of an RPC answer.
    fn rpc_fields(&self, args: &[&str]) -> BTreeMap<String, u64> {
        self.rpc(args)
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
            .collect()
    }

    /// The main process and its (non-zombie) children.
    fn pids(&self) -> BTreeSet<u32> {
        let main = self.child.id();
        let mut out = BTreeSet::from([main]);
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("");
            if f.next().and_then(|s| s.parse::<u32>().ok()) == Some(main) && state != "Z" {
                out.insert(p);
            }
        }
        out
    }

    /// Sum of RssAnon (private memory: Kamailio's pkg pool and the Rust/C heap; shared memory
    /// pages each process touches are RssShmem and not counted) over P1's processes, in KiB.
    fn rss_kib(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("RssAnon:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .sum()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X}");
    fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&needle))
        })
    })
}

fn start_p1(t: &Tools, dir: &Path, p1_port: u16, sink_port: u16) -> P1 {
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).expect("mkdir keys");
    for f in ["proxy1.key", "proxy1.crt"] {
        fs::copy(t.keys.join(f), keys.join(f)).expect("copy key");
        fs::set_permissions(keys.join(f), fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let run = dir.join("run");
    fs::create_dir_all(&run).expect("mkdir run");
    let ctl = format!("unix:{}/ctl", run.display());
    let log = dir.join("p1.log");
    let out = fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("dup");
    let defines = [
        format!("P1_ADDR={ADDR}"),
        format!("P1_PORT={p1_port}"),
        format!("NEXT_HOP=\"sip:{ADDR}:{sink_port}\""),
        format!("SIPSD_KEY_DIR={}", keys.display()),
        format!("SIPSD_MODULE_DIR={}", t.build.display()),
        format!("CTL_SOCKET={ctl}"),
        format!("SIPSD_MAX_BODY_SIZE={MAX_BODY}"),
        format!("SIPSD_MAX_PARTS={MAX_PARTS}"),
        format!("SIPSD_MAX_DEPTH={MAX_DEPTH}"),
        format!("SIPSD_MAX_RECIPIENTS={MAX_RECIPIENTS}"),
    ];
    let mut cmd = Command::new(&t.kamailio);
    cmd.args(["-DD", "-E", "-Y"])
        .arg(&run)
        .arg("-w")
        .arg(&run)
        .arg("-f")
        .arg(t.root.join("cfg-examples/trusted-proxy.cfg"));
    for d in &defines {
        cmd.arg("-A").arg(d);
    }
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .expect("start kamailio");
    let mut p1 = P1 {
        child,
        log,
        ctl,
        kamcmd: t.kamcmd.clone(),
    };
    let end = Instant::now() + Duration::from_secs(15);
    while !udp_bound(p1_port) || p1.rpc(&["core.uptime"]).is_empty() {
        if let Ok(Some(st)) = p1.child.try_wait() {
            panic!("P1 exited ({st}) at start:\n{}", p1.log());
        }
        assert!(Instant::now() < end, "P1 did not start:\n{}", p1.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Workers are forked after the socket is bound: wait for the set to settle.
    let mut last = p1.pids();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = p1.pids();
        if now == last {
            break;
        }
        last = now;
    }
    p1
}

// ----- the next hop: records what P1 relays, answers it -------------------------------------

#[derive(Default)]
struct SinkLog {
    /// Call-ID -> body of the first request received with it.
    bodies: BTreeMap<String, Vec<u8>>,
    requests: usize,
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

fn split_message(d: &[u8]) -> (&str, &[u8]) {
    let i = d
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(d.len());
    let head = std::str::from_utf8(&d[..i]).unwrap_or("");
    (head, d.get(i + 4..).unwrap_or(&[]))
}

fn run_sink(sock: UdpSocket, log: Arc<Mutex<SinkLog>>) {
    let mut buf = vec![0u8; 70000];
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            if Arc::strong_count(&log) == 1 {
                return;
            }
            continue;
        };
        let d = &buf[..n];
        if d.starts_with(b"SIP/2.0") {
            continue;
        }
        let (head, body) = split_message(d);
        let method = head.split(' ').next().unwrap_or("");
        let call_id = header(head, "call-id").first().copied().unwrap_or("");
        {
            let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
            l.requests += 1;
            l.bodies
                .entry(call_id.to_string())
                .or_insert_with(|| body.to_vec());
        }
        if method == "ACK" {
            continue;
        }
        // INVITEs are refused (the failure route then forgets the dialog), except the
        // rotation scenario's, whose dialog must live on.
        let (code, reason) = if method == "INVITE" && !call_id.starts_with("rotation") {
            (486, "Busy Here")
        } else {
            (200, "OK")
        };
        let mut reply = format!("SIP/2.0 {code} {reason}\r\n");
        for v in header(head, "via") {
            reply.push_str(&format!("Via: {v}\r\n"));
        }
        let to = header(head, "to")
            .first()
            .copied()
            .unwrap_or("")
            .to_string();
        let to = if to.contains(";tag=") {
            to
        } else {
            format!("{to};tag=sink")
        };
        for (n, v) in [
            ("From", header(head, "from").first().copied().unwrap_or("")),
            ("To", to.as_str()),
            ("Call-ID", call_id),
            ("CSeq", header(head, "cseq").first().copied().unwrap_or("")),
        ] {
            reply.push_str(&format!("{n}: {v}\r\n"));
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        let _ = sock.send_to(reply.as_bytes(), from);
    }
}

// ----- hostile messages ------------------------------------------------------------------------

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What P1 should make of a message (the `code=` of its log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Any error code (>= 100).
    Error,
    /// Exactly this error code.
    Code(u32),
    /// Not encrypted or not for this proxy (1 or 2), or an error: no decryption.
    NoDecrypt,
    /// Anything: a bit flip in what the proxy does not use (the callee's RecipientInfo, which
    /// no tag covers) leaves the message decryptable.
    Any,
}

struct Hostile {
    category: &'static str,
    call_id: String,
    in_dialog: bool,
    content_type: String,
    transfer_encoding: Option<String>,
    disclose_to: Option<String>,
    body: Vec<u8>,
    expect: Expect,
}

struct Env {
    gcm: Vec<u8>,
    encrypted: Vec<u8>,
    sdp: Vec<u8>,
    proxy1_cert: PathBuf,
}

const SMIME_AUTH: &str = "application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m";
const SMIME_ENC: &str = "application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m";

fn multipart(boundary: &str, parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, body) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// A multipart body nested `depth` levels with the GCM message innermost.
fn nested(env: &Env, depth: usize) -> (String, Vec<u8>) {
    let mut ct = SMIME_AUTH.to_string();
    let mut body = env.gcm.clone();
    for level in 0..depth {
        let b = format!("nest{level}");
        body = multipart(&b, &[(format!("Content-Type: {ct}"), body)]);
        ct = format!("multipart/mixed; boundary={b}");
    }
    (ct, body)
}

#[allow(clippy::too_many_lines)]
fn hostile_batch(env: &Env, rng: &mut Rng, prefix: &str, scale: usize) -> Vec<Hostile> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<Hostile>,
                category: &'static str,
                in_dialog: bool,
                ct: &str,
                te: Option<&str>,
                dt: Option<String>,
                body: Vec<u8>,
                expect: Expect| {
        let n = out.len();
        out.push(Hostile {
            category,
            call_id: format!("{prefix}-{n}-{category}@hostile.example"),
            in_dialog,
            content_type: ct.to_string(),
            transfer_encoding: te.map(str::to_string),
            disclose_to: dt,
            body,
            expect,
        });
    };
    let n = |k: usize| (k * scale).div_ceil(100);
    let gcm = &env.gcm;
    // Truncated DER.
    for i in 0..n(120) {
        let cut = 1 + (i * 7919 + rng.below(13)) % (gcm.len() - 1);
        push(
            &mut out,
            "truncated-der",
            false,
            SMIME_AUTH,
            None,
            None,
            gcm[..cut].to_vec(),
            Expect::Error,
        );
    }
    // Over-long DER: trailing garbage, or an outer length larger than the data.
    for i in 0..n(80) {
        let mut b = gcm.clone();
        if i % 2 == 0 {
            let extra = 1 + rng.below(3000);
            b.extend(rng.bytes(extra));
        } else {
            b[1] = 0x84;
            b.splice(2..4, [0x7f, 0xff, 0xff, 0xf0]);
        }
        push(
            &mut out,
            "overlong-der",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Error,
        );
    }
    // Absurd lengths and deep BER nesting.
    for i in 0..n(60) {
        let b = match i % 4 {
            0 => vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x06, 0x01, 0x00],
            1 => [0x30u8, 0x80].repeat(200 + i * 50),
            2 => {
                let mut v = vec![0x30, 0x88];
                v.extend(rng.bytes(8));
                v.extend(rng.bytes(64));
                v
            }
            _ => {
                let mut v = Vec::new();
                for _ in 0..(500 + i) {
                    v.extend([0x30, 0x82, 0xff, 0xff]);
                }
                v
            }
        };
        push(
            &mut out,
            "absurd-length",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Error,
        );
    }
    // Bit flips anywhere in a valid message (header, recipient keys, nonce, ciphertext, tag).
    for _ in 0..n(250) {
        let mut b = gcm.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        push(
            &mut out,
            "bit-flip",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Any,
        );
    }
    // Deep nesting (beyond max_depth) and huge multiparts (beyond max_parts).
    for i in 0..n(40) {
        let depth = MAX_DEPTH + 1 + i % 40;
        let (ct, body) = nested(env, depth);
        push(
            &mut out,
            "deep-multipart",
            false,
            &ct,
            None,
            None,
            body,
            Expect::Code(BODY_LIMIT),
        );
    }
    for i in 0..n(40) {
        let count = MAX_PARTS + 1 + (i * 37) % 400;
        let parts: Vec<_> = (0..count)
            .map(|k| {
                (
                    format!("Content-Type: text/plain\r\nContent-ID: <p{k}@x>"),
                    b"x".to_vec(),
                )
            })
            .collect();
        let body = multipart("huge", &parts);
        let expect = BODY_LIMIT;
        push(
            &mut out,
            "huge-multipart",
            false,
            "multipart/mixed; boundary=huge",
            None,
            None,
            body,
            Expect::Code(expect),
        );
    }
    // Wrong content types.
    let wrong: [(&str, &[u8]); 8] = [
        (SMIME_AUTH, &env.sdp),
        ("application/sdp", gcm),
        ("multipart/mixed", gcm),
        ("application/pkcs7-mime; smime-type=bogus", gcm),
        ("application/pkcs7-mime; smime-type=signed-data", gcm),
        ("text/plain; charset=\"\u{0}\"", gcm),
        ("multipart/mixed; boundary=\"\"", gcm),
        ("application/pkcs7-mime; smime-type=enveloped-data", gcm),
    ];
    for i in 0..n(60) {
        let (ct, body) = wrong[i % wrong.len()];
        let ct = if i % 3 == 2 {
            format!("{ct}; x={}", "a".repeat(1500))
        } else {
            ct.replace('\u{0}', "")
        };
        // smime-type is a hint (RFC 8551 3.2.2): an AuthEnvelopedData labelled enveloped-data
        // is still opened, as the DER says what it is.
        let expect = if ct.contains("smime-type=enveloped-data") {
            Expect::Any
        } else {
            Expect::NoDecrypt
        };
        push(
            &mut out,
            "wrong-content-type",
            false,
            &ct,
            None,
            None,
            body.to_vec(),
            expect,
        );
    }
    // Invalid base64.
    let b64 = base64::engine::general_purpose::STANDARD.encode(gcm);
    for i in 0..n(60) {
        let mut s = b64.clone().into_bytes();
        match i % 4 {
            0 => s.insert(rng.below(s.len()), b'*'),
            1 => s.truncate(s.len() - 1 - rng.below(3)),
            2 => s.extend_from_slice(b"===="),
            _ => {
                let at = rng.below(s.len());
                s[at] = 0x80 | rng.next() as u8;
            }
        }
        push(
            &mut out,
            "invalid-base64",
            false,
            SMIME_AUTH,
            Some("base64"),
            None,
            s,
            Expect::Error,
        );
    }
    // Bodies up to the UDP limit (sipsd's max_body_size is set below Kamailio's).
    for i in 0..n(20) {
        let len = MAX_BODY + 1 + i * 1400;
        let mut b = vec![0x30, 0x83];
        b.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        b.extend(rng.bytes(len - 5));
        push(
            &mut out,
            "big-body",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Code(BODY_LIMIT),
        );
    }
    // Content-IDs that point nowhere.
    for i in 0..n(60) {
        let body = multipart(
            "cids",
            &[
                ("Content-Type: application/sdp".into(), b"v=0\r\n".to_vec()),
                (
                    format!("Content-Type: {SMIME_AUTH}\r\nContent-ID: <sdp@alice.example>"),
                    gcm.clone(),
                ),
            ],
        );
        let dt = format!("proxy1.example.net;cid=<nowhere-{i}@hostile.example>");
        push(
            &mut out,
            "cid-nowhere",
            false,
            "multipart/mixed; boundary=cids",
            None,
            Some(dt),
            body,
            Expect::Error,
        );
    }
    // Hostile Disclose-To values.
    let hostile_dt: Vec<String> = vec![
        "a".repeat(4000),
        (0..600)
            .map(|k| format!("p{k}.example"))
            .collect::<Vec<_>>()
            .join(", "),
        "proxy1.example.net;cid=".into(),
        "proxy1.example.net;cid=\"<unterminated".into(),
        ";;;;,,,,".into(),
        "[::1".into(),
        "proxy1.example.net;cid=<a@b>;cid=<a@b>;cid=<a@b>;cid=<a@b>;cid=<a@b>;cid=<a@b>".into(),
        "pr\u{f6}xy1.example.net".into(),
        "proxy1.example.net\t;\tcid\t=\t<x@y>".into(),
        format!("proxy1.example.net;{}", "x=1;".repeat(500)),
        "\u{7f}\u{1}\u{2}".into(),
        "proxy1.example.net;cid=<".into(),
    ];
    for i in 0..n(120) {
        let dt = hostile_dt[i % hostile_dt.len()].clone();
        push(
            &mut out,
            "hostile-disclose-to",
            false,
            SMIME_AUTH,
            None,
            Some(dt),
            gcm.clone(),
            Expect::NoDecrypt,
        );
    }
    // EncryptedData for dialogs P1 never saw, in and out of dialog.
    for i in 0..n(100) {
        let in_dialog = i % 2 == 0;
        push(
            &mut out,
            "unknown-dialog",
            in_dialog,
            SMIME_ENC,
            None,
            None,
            env.encrypted.clone(),
            Expect::NoDecrypt,
        );
    }
    // Too many recipients (proxy1's certificate named max_recipients + 1 times and more).
    for i in 0..n(20) {
        let recips: Vec<_> = (0..MAX_RECIPIENTS + 1 + i % 4)
            .map(|_| {
                Recipient::from_cert_file(
                    &env.proxy1_cert,
                    IdKind::IssuerSerial,
                    RsaPadding::OaepSha256,
                )
                .expect("cert")
            })
            .collect();
        let cek = Cek::generate(ContentAlg::Aes128Gcm).expect("cek");
        let der = cms::seal(b"Content-Type: text/plain\r\n\r\nx", &recips, &cek).expect("seal");
        push(
            &mut out,
            "too-many-recipients",
            false,
            SMIME_AUTH,
            None,
            None,
            der,
            Expect::Code(BODY_LIMIT),
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    call_id: &str,
    from_tag: &str,
    to_tag: Option<&str>,
    cseq: u32,
    ports: (u16, u16, u16),
    content_type: &str,
    transfer_encoding: Option<&str>,
    disclose_to: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let (client, p1, sink) = ports;
    let mut h = format!(
        "{method} sip:bob@{ADDR}:{sink} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ADDR}:{client};branch=z9hG4bK-{cseq}-{:x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:mallory@attacker.example>;tag={from_tag}\r\n",
        call_id.len() as u64 * 7919 + u64::from(cseq) + body.len() as u64
    );
    match to_tag {
        Some(t) => {
            h.push_str(&format!("To: <sip:bob@example.net>;tag={t}\r\n"));
            h.push_str(&format!("Route: <sip:{ADDR}:{p1};lr>\r\n"));
        }
        None => h.push_str("To: <sip:bob@example.net>\r\n"),
    }
    h.push_str(&format!(
        "Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:mallory@{ADDR}:{client}>\r\n"
    ));
    if let Some(d) = disclose_to {
        h.push_str(&format!("Disclose-To: {d}\r\n"));
    }
    if !content_type.is_empty() {
        h.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some(te) = transfer_encoding {
        h.push_str(&format!("Content-Transfer-Encoding: {te}\r\n"));
    }
    h.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut m = h.into_bytes();
    m.extend_from_slice(body);
    m
}

/// Sends a batch, at most `window` messages ahead of what the sink has seen.
fn send_batch(
    batch: &[Hostile],
    client: &UdpSocket,
    ports: (u16, u16, u16),
    sink: &Arc<Mutex<SinkLog>>,
) {
    let window = 16;
    let base = sink.lock().unwrap_or_else(|e| e.into_inner()).bodies.len();
    for (i, h) in batch.iter().enumerate() {
        let (method, to_tag) = if h.in_dialog {
            ("MESSAGE", Some("t-hostile"))
        } else {
            ("INVITE", None)
        };
        let msg = request(
            method,
            &h.call_id,
            "f-hostile",
            to_tag,
            1,
            ports,
            &h.content_type,
            h.transfer_encoding.as_deref(),
            h.disclose_to.as_deref(),
            &h.body,
        );
        client.send_to(&msg, (ADDR, ports.1)).expect("send");
        if msg.len() > 8192 {
            // A large datagram may be dropped by a full socket buffer (UDP): wait for it and
            // retransmit like a user agent would (T1 = 500 ms).
            for _ in 0..6 {
                let end = Instant::now() + Duration::from_millis(500);
                while !sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .bodies
                    .contains_key(&h.call_id)
                    && Instant::now() < end
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                if sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .bodies
                    .contains_key(&h.call_id)
                {
                    break;
                }
                client.send_to(&msg, (ADDR, ports.1)).expect("send");
            }
        }
        let end = Instant::now() + Duration::from_secs(5);
        while sink.lock().unwrap_or_else(|e| e.into_inner()).bodies.len() + window < base + i + 1 {
            if Instant::now() > end {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    wait_sink(sink, base + batch.len(), Duration::from_secs(10));
}

fn wait_sink(sink: &Arc<Mutex<SinkLog>>, count: usize, limit: Duration) {
    let end = Instant::now() + limit;
    while sink.lock().unwrap_or_else(|e| e.into_inner()).bodies.len() < count
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// P1's `sipsd:` log lines by Call-ID: (decrypted?, code, generation).
fn p1_lines(log: &str) -> BTreeMap<String, Vec<(bool, u32, Option<u32>)>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for l in log.lines() {
        let Some(rest) = l.split("sipsd: pid=").nth(1) else {
            continue;
        };
        let field = |name: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let Some(call) = field("call=") else {
            continue;
        };
        let decrypted = rest.contains(" decrypted gen=");
        let code = field("code=").and_then(|c| c.parse().ok()).unwrap_or(0);
        let generation = field("gen=").and_then(|g| g.parse().ok());
        out.entry(call)
            .or_default()
            .push((decrypted, code, generation));
    }
    out
}

fn shm_used(p1: &P1) -> u64 {
    p1.rpc_fields(&["core.shmmem"])
        .get("real_used")
        .copied()
        .unwrap_or(0)
}

/// Waits until tm has freed the batch's transactions (shm stops changing), then reads it.
fn settled_shm(p1: &P1) -> u64 {
    let end = Instant::now() + Duration::from_secs(12);
    let mut last = shm_used(p1);
    let mut stable = 0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
        let now = shm_used(p1);
        let current = p1
            .rpc_fields(&["tm.stats"])
            .get("current")
            .copied()
            .unwrap_or(1);
        if now == last && current == 0 {
            stable += 1;
            if stable >= 2 {
                break;
            }
        } else {
            stable = 0;
        }
        last = now;
    }
    last
}

#[test]
fn hostile_traffic_through_kamailio() {
    let Some(t) = tools() else {
        return;
    };
    let started = Instant::now();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("sipsd-hostile-{}-{stamp}", std::process::id()));
    fs::create_dir_all(&dir).expect("work dir");

    let vectors = t.root.join("tests/data/vectors/msgs");
    // A plaintext with markers that must never reach the log.
    const SDES: &str = "WVNfUmVhbGx5U2VjcmV0U0RFU0tleU1hcmtlcjEyMzQ1";
    let sdp = format!(
        "v=0\r\no=alice 1 1 IN IP4 198.51.100.7\r\ns=PLAINTEXT-MARKER-7f3a\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES}\r\n"
    );
    let inner = format!("Content-Type: application/sdp\r\n\r\n{sdp}").into_bytes();
    let env = Env {
        gcm: fs::read(vectors.join("gcm256-oaep-callee-proxy1.der")).expect("vector"),
        encrypted: fs::read(vectors.join("encrypteddata-cbc256.der")).expect("vector"),
        sdp: fs::read(vectors.join("offer.sdp")).expect("vector"),
        proxy1_cert: t.keys.join("proxy1.crt"),
    };

    let sink_sock = UdpSocket::bind((ADDR, 0)).expect("bind sink");
    let client = UdpSocket::bind((ADDR, 0)).expect("bind client");
    let sink_port = sink_sock.local_addr().unwrap().port();
    let client_port = client.local_addr().unwrap().port();
    let p1_port = {
        let s = UdpSocket::bind((ADDR, 0)).expect("free port");
        s.local_addr().unwrap().port()
    };
    let ports = (client_port, p1_port, sink_port);
    // Replies from P1 to the client are drained and dropped.
    let drain = client.try_clone().expect("clone");
    drain
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let stop = Arc::new(());
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut b = vec![0u8; 70000];
        while Arc::strong_count(&stop2) > 1 {
            let _ = drain.recv_from(&mut b);
        }
    });
    let sink = Arc::new(Mutex::new(SinkLog::default()));
    let sink2 = sink.clone();
    let sink_thread = std::thread::spawn(move || run_sink(sink_sock, sink2));

    let p1 = start_p1(&t, &dir, p1_port, sink_port);
    println!(
        "P1 (pid {}) on {ADDR}:{p1_port}, sink {sink_port}, limits body {MAX_BODY} parts {MAX_PARTS} depth {MAX_DEPTH} recipients {MAX_RECIPIENTS}",
        p1.child.id()
    );
    let pids_before = p1.pids();
    check!(
        pids_before.len() > 4,
        "P1 runs {} processes",
        pids_before.len()
    );

    // 1. Rotation and legitimate use through Kamailio, with keys made here.
    let proxy1 = Recipient::from_cert_file(
        &env.proxy1_cert,
        IdKind::IssuerSerial,
        RsaPadding::OaepSha256,
    )
    .expect("proxy1 cert");
    let k1 = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let k2 = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let invite_k1 = cms::seal(&inner, std::slice::from_ref(&proxy1), &k1).expect("seal");
    // K2 rotates with the proof (a KEKRecipientInfo under K1); K3 is a new key without one.
    let invite_k2 =
        cms::seal(&inner, &[proxy1.clone(), cms::proof_recipient(&k1)], &k2).expect("seal");
    let k3 = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let invite_k3 = cms::seal(&inner, std::slice::from_ref(&proxy1), &k3).expect("seal");
    let enc_k1 = cms::seal_encrypted(&inner, &k1).expect("seal");
    let enc_k2 = cms::seal_encrypted(&inner, &k2).expect("seal");
    let cid = "rotation-1@hostile.example";
    /// method, content type, To tag, body, what it checks
    type Step<'a> = (&'a str, &'a str, Option<&'a str>, &'a [u8], &'a str);
    let steps: [Step; 6] = [
        (
            "INVITE",
            SMIME_AUTH,
            None,
            &invite_k1,
            "INVITE wraps K1: stored, gen 1",
        ),
        (
            "MESSAGE",
            SMIME_ENC,
            Some("t1"),
            &enc_k1,
            "in-dialog EncryptedData under K1: cache, gen 1",
        ),
        (
            "INVITE",
            SMIME_AUTH,
            None,
            &invite_k2,
            "out-of-dialog INVITE wrapping K2 for the same dialog: rejected (146), proof or not",
        ),
        (
            "MESSAGE",
            SMIME_ENC,
            Some("t1"),
            &enc_k1,
            "K1 still the dialog key after the outside attempt",
        ),
        (
            "INVITE",
            SMIME_AUTH,
            Some("t1"),
            &invite_k3,
            "in-dialog re-INVITE wrapping K3 without a rotation proof: rejected (145)",
        ),
        (
            "INVITE",
            SMIME_AUTH,
            Some("t1"),
            &invite_k2,
            "in-dialog re-INVITE wrapping K2 with the proof under K1: rotation to gen 2",
        ),
    ];
    for (n, (method, ct, to_tag, body, _)) in steps.iter().enumerate() {
        let before = sink.lock().unwrap().requests;
        let m = request(
            method,
            cid,
            "f-rot",
            *to_tag,
            n as u32 + 1,
            ports,
            ct,
            None,
            None,
            body,
        );
        client.send_to(&m, (ADDR, p1_port)).expect("send");
        let end = Instant::now() + Duration::from_secs(5);
        while sink.lock().unwrap().requests == before && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let m = request(
        "MESSAGE",
        cid,
        "f-rot",
        Some("t1"),
        9,
        ports,
        SMIME_ENC,
        None,
        None,
        &enc_k2,
    );
    client.send_to(&m, (ADDR, p1_port)).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let lines = p1_lines(&p1.log());
    let rot = lines.get(cid).cloned().unwrap_or_default();
    let expect_rot = [
        (true, 0, Some(1)),
        (true, 0, Some(1)),
        (false, 146, None),
        (true, 0, Some(1)),
        (false, 145, None),
        (true, 0, Some(2)),
        (true, 0, Some(2)),
    ];
    for (i, want) in expect_rot.iter().enumerate() {
        let what = steps
            .get(i)
            .map_or("EncryptedData under K2 after the rotation: gen 2", |s| s.4);
        check!(
            rot.get(i) == Some(want),
            "rotation through P1: {what} (log {:?})",
            rot.get(i)
        );
    }

    // 2. Warm-up batch, then the measured batch.
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let warm = hostile_batch(&env, &mut rng, "warm", 20);
    send_batch(&warm, &client, ports, &sink);
    let stats_warm = p1.rpc_fields(&["sipsd.stats"]);
    let shm_warm = settled_shm(&p1);
    let rss_warm = p1.rss_kib();
    println!(
        "warm-up: {} messages; shm real_used {shm_warm} B, RSS {rss_warm} KiB",
        warm.len()
    );

    let batch = hostile_batch(&env, &mut rng, "main", 100);
    let t_batch = Instant::now();
    send_batch(&batch, &client, ports, &sink);
    println!(
        "main batch: {} messages sent in {:?}",
        batch.len(),
        t_batch.elapsed()
    );
    check!(
        batch.len() >= 1000,
        "at least 1000 hostile messages ({})",
        batch.len()
    );

    // 3. Forwarded unchanged.
    let forwarded = sink.lock().unwrap().bodies.clone();
    let mut per_cat: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    for h in warm.iter().chain(&batch) {
        let e = per_cat.entry(h.category).or_default();
        e.0 += 1;
        match forwarded.get(&h.call_id) {
            Some(b) if *b == h.body => e.1 += 1,
            Some(_) => changed.push(h.call_id.clone()),
            None => missing.push(h.call_id.clone()),
        }
    }
    for (cat, (sent, same)) in &per_cat {
        println!("    {cat:<22} sent {sent:>4}, forwarded byte-identical {same:>4}");
    }
    check!(
        missing.is_empty() && changed.is_empty(),
        "every hostile message reached the next hop with its body unchanged (missing {}: {:?}, changed {}: {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        changed.len(),
        changed.iter().take(3).collect::<Vec<_>>()
    );

    // 4. P1's verdict on each, and the limits.
    let lines = p1_lines(&p1.log());
    let mut errors_main = 0u64;
    let mut decrypted_main = 0u64;
    let mut wrong = Vec::new();
    let mut limit_hits = 0;
    for h in &batch {
        let verdict = lines.get(&h.call_id).and_then(|v| v.first()).copied();
        let ok = match (verdict, h.expect) {
            (Some((false, c, _)), Expect::Error) => c >= 100,
            (Some((false, c, _)), Expect::Code(want)) => c == want,
            (Some((false, c, _)), Expect::NoDecrypt) => c == 1 || c == 2 || c >= 100,
            (Some(_), Expect::Any) => true,
            _ => false,
        };
        if let Some((true, _, _)) = verdict {
            decrypted_main += 1;
        }
        if let Some((false, c, _)) = verdict {
            if c >= 100 {
                errors_main += 1;
            }
            if c == BODY_LIMIT {
                limit_hits += 1;
            }
        }
        if !ok {
            wrong.push((h.category, h.call_id.clone(), verdict));
        }
    }
    check!(
        wrong.is_empty(),
        "P1 logged the expected verdict for every message; only bit-flipped ones decrypted ({decrypted_main}, flips outside what proxy1 uses) ({} wrong: {:?})",
        wrong.len(),
        wrong.iter().take(5).collect::<Vec<_>>()
    );
    check!(
        limit_hits > 0,
        "configured limits applied through Kamailio: {limit_hits} messages refused with code {BODY_LIMIT} (body > {MAX_BODY}, parts > {MAX_PARTS}, depth > {MAX_DEPTH}, recipients > {MAX_RECIPIENTS})"
    );

    // 5. Counters.
    let stats_end = p1.rpc_fields(&["sipsd.stats"]);
    let d =
        |k: &str| stats_end.get(k).copied().unwrap_or(0) - stats_warm.get(k).copied().unwrap_or(0);
    check!(
        d("errors") == errors_main,
        "RPC sipsd.stats errors grew by {} = the {errors_main} messages P1 logged as failed",
        d("errors")
    );
    check!(
        d("decrypted") == decrypted_main,
        "RPC sipsd.stats decrypted grew by {} = the messages P1 logged as decrypted (bit flips outside proxy1's parts, mislabelled smime-type)",
        d("decrypted")
    );
    let stat = p1.rpc(&["stats.get_statistics", "sipsd:"]);
    let stat = stat
        .lines()
        .find(|l| l.contains("sipsd:errors"))
        .unwrap_or("")
        .to_string();
    check!(
        stat.contains(&format!(
            "sipsd:errors = {}",
            stats_end.get("errors").copied().unwrap_or(0)
        )),
        "statistic sipsd:errors agrees with the RPC ({})",
        stat.trim()
    );

    // 6. Processes and memory.
    let pids_after = p1.pids();
    check!(
        pids_after == pids_before,
        "no Kamailio process died or was replaced ({} PIDs, same before and after)",
        pids_after.len()
    );
    let shm_end = settled_shm(&p1);
    let rss_end = p1.rss_kib();
    let shm_growth = shm_end.saturating_sub(shm_warm);
    let rss_growth = rss_end.saturating_sub(rss_warm);
    check!(
        shm_growth < 64 * 1024,
        "shared memory after {} more messages: {shm_warm} -> {shm_end} B (growth {shm_growth} B < 64 KiB)",
        batch.len()
    );
    check!(
        rss_growth < 4096,
        "private RSS (RssAnon) of P1's processes: {rss_warm} -> {rss_end} KiB (growth {rss_growth} KiB < 4 MiB)"
    );

    // 7. Log hygiene: no key, plaintext or SDES key in P1's log.
    let log = p1.log();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let psk = fs::read_to_string(t.keys.join("psk-proxy1.hex")).unwrap_or_default();
    let markers = [
        ("SDES key", SDES.to_string()),
        (
            "plaintext session name",
            "PLAINTEXT-MARKER-7f3a".to_string(),
        ),
        (
            "plaintext a=crypto line",
            "AES_CM_128_HMAC_SHA1_80".to_string(),
        ),
        ("K1 hex", hex(k1.as_bytes())),
        ("K1 HEX", hex(k1.as_bytes()).to_uppercase()),
        ("K1 base64", b64(k1.as_bytes())),
        ("K2 hex", hex(k2.as_bytes())),
        ("PEM private key", "PRIVATE KEY".to_string()),
        ("pre-shared key", psk.trim().to_string()),
    ];
    for (what, m) in &markers {
        check!(
            !m.is_empty() && !log.contains(m.as_str()),
            "P1's log ({} lines) does not contain the {what}",
            log.lines().count()
        );
    }
    check!(
        started.elapsed() < Duration::from_secs(120),
        "finished in {:?}",
        started.elapsed()
    );
    drop(p1);
    drop(stop);
    drop(sink);
    let _ = sink_thread.join();
    let _ = fs::remove_dir_all(&dir);
}
