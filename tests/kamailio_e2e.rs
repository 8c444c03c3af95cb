//! End to end with real processes: SIPp caller -> P1 (Kamailio, trusted, sipsd module) ->
//! P2 (Kamailio, untrusted, no module) -> SIPp callee, all on loopback.
//!
//! The bodies come from `sipsd sipp-calls` (AuthEnvelopedData offers for the callee and, when
//! asked, proxy1; EncryptedData answers and MESSAGEs under the dialog key; a re-INVITE that
//! rotates the key). Every scenario prints each check it makes:
//!
//! * `trusted_proxy_reads_offer_answer_message_and_rotation`: P1 decrypts the offer (wrapped
//!   key), the answer and the MESSAGE (cached key, often in another worker process), the
//!   re-INVITE (generation 2) and the MESSAGE after it; P2 only sees ciphertext and proxy2's
//!   key does not open it; the callee gets the caller's bodies byte for byte and opens them.
//! * `proxy_not_a_recipient_forwards_unchanged`: P1 is not a recipient; calls complete, P1
//!   reports "not for this proxy", the bodies reach the callee unchanged.
//! * `corrupt_bodies_forwarded_and_proxies_survive`: truncated DER; calls complete, P1 reports
//!   the parse error, every Kamailio process is still alive.
//!
//! Needs kamailio, sipp (scripts/setup-deps) and build/sipsd.so (make). Without them the tests
//! print "SKIPPED: ..." and pass, unless SIPSD_REQUIRE_E2E=1 is set: then they fail.
//! Run: `cargo test --test kamailio_e2e -- --nocapture --test-threads=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The scenarios bind ports and start process trees: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const ADDR: &str = "127.0.0.1";

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

// ---------------------------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------------------------

struct Tools {
    root: PathBuf,
    kamailio: PathBuf,
    sipp: PathBuf,
    build: PathBuf,
    keys: PathBuf,
    sipsd: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn find_keys(root: &Path) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(v) = std::env::var_os("SIPSD_VECTORS") {
        dirs.push(PathBuf::from(v).join("keys"));
    }
    dirs.push(root.join("tests/data/vectors/keys"));
    dirs.push(root.join("../shared/vectors/keys"));
    dirs.push(PathBuf::from("/work/shared/vectors/keys"));
    dirs.into_iter().find(|d| {
        ["callee", "proxy1", "proxy2"]
            .iter()
            .all(|n| d.join(format!("{n}.key")).is_file() && d.join(format!("{n}.crt")).is_file())
    })
}

/// The tools, or None after printing SKIPPED (panics instead under SIPSD_REQUIRE_E2E=1).
fn tools() -> Option<Tools> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let build = std::env::var_os("SIPSD_BUILD")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build"));
    let mut missing = Vec::new();
    let kamailio = find_in_path("kamailio");
    if kamailio.is_none() {
        missing.push("kamailio (sudo scripts/setup-deps)".to_string());
    }
    let sipp = find_in_path("sipp");
    if sipp.is_none() {
        missing.push("sipp (sudo scripts/setup-deps)".to_string());
    }
    for f in ["sipsd.so", "libsipsd.so"] {
        if !build.join(f).is_file() {
            missing.push(format!("{} (make)", build.join(f).display()));
        }
    }
    if find_in_path("kill").is_none() {
        missing.push("kill (procps)".to_string());
    }
    let keys = find_keys(&root);
    if keys.is_none() {
        missing.push("test keys callee/proxy1/proxy2 (tests/data/vectors/keys)".to_string());
    }
    if !missing.is_empty() {
        let msg = format!("kamailio e2e needs: {}", missing.join(", "));
        if std::env::var("SIPSD_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("SIPSD_REQUIRE_E2E=1 but {msg}");
        }
        println!("SKIPPED: {msg}");
        return None;
    }
    Some(Tools {
        root,
        kamailio: kamailio?,
        sipp: sipp?,
        build,
        keys: keys?,
        sipsd: PathBuf::from(env!("CARGO_BIN_EXE_sipsd")),
    })
}

// ---------------------------------------------------------------------------------------------
// Processes: every child in its own process group, killed with its group on drop (also when a
// check panics), so Kamailio's forked workers go too.
// ---------------------------------------------------------------------------------------------

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

#[derive(Default)]
struct Procs {
    list: Vec<Proc>,
}

fn signal_group(pgid: u32, sig: &str) {
    // `kill -SIG -- -PGID`: the whole group. Errors (already gone) do not matter here.
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}

impl Procs {
    /// Start `cmd` in `dir` in a new process group, stdout+stderr to `dir/NAME.log`.
    fn spawn(&mut self, name: &str, dir: &Path, cmd: &mut Command) -> usize {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("dup log file");
        let child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        println!("  started {name} (pid {})", child.id());
        self.list.push(Proc {
            name: name.to_string(),
            child,
            log,
        });
        self.list.len() - 1
    }

    fn stop(&mut self, idx: usize) {
        let p = &mut self.list[idx];
        let pgid = p.child.id();
        if matches!(p.child.try_wait(), Ok(None)) {
            signal_group(pgid, "-TERM");
            if wait_deadline(&mut p.child, Duration::from_secs(5)).is_none() {
                signal_group(pgid, "-KILL");
                let _ = p.child.wait();
            }
        }
        // stragglers of the group (forked workers) if the leader went first
        signal_group(pgid, "-KILL");
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for i in (0..self.list.len()).rev() {
            self.stop(i);
            if panicking {
                let p = &self.list[i];
                let text = fs::read_to_string(&p.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(15);
                eprintln!("--- last lines of {} ({})", p.name, p.log.display());
                for l in &lines[from..] {
                    eprintln!("    {l}");
                }
            }
        }
    }
}

/// A fresh work directory, removed on success, kept (and named) when a check failed.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(name: &str) -> WorkDir {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("sipsd-e2e-{name}-{}-{stamp}", std::process::id()));
        fs::create_dir_all(&p).expect("create work dir");
        WorkDir(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SIPSD_E2E_KEEP").is_some() {
            eprintln!("work directory kept: {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// `n` distinct UDP ports free on ADDR right now (all held while choosing, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind((ADDR, 0)).expect("bind an ephemeral UDP port"))
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().expect("local addr").port())
        .collect()
}

/// Is something bound to UDP `port` (read /proc/net/udp: no probing bind that could race)?
fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").contains(&needle))
            })
        })
    })
}

fn wait_bound(procs: &mut Procs, idx: usize, port: u16) {
    let end = Instant::now() + Duration::from_secs(15);
    while !udp_bound(port) {
        if let Ok(Some(st)) = procs.list[idx].child.try_wait() {
            panic!(
                "{} exited ({st}) before binding udp port {port}",
                procs.list[idx].name
            );
        }
        assert!(
            Instant::now() < end,
            "{} did not bind udp port {port}",
            procs.list[idx].name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Direct children of `pid` that are not zombies (from /proc/*/stat).
fn children_of(pid: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid = f.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) && state != "Z" {
            out.insert(p);
        }
    }
    out
}

/// The worker set of a Kamailio main process, once it stops growing.
fn stable_children(pid: u32) -> BTreeSet<u32> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = children_of(pid);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = children_of(pid);
        if (now == last && !now.is_empty()) || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

// ---------------------------------------------------------------------------------------------
// SIP messages from SIPp's -trace_msg file
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct SipMsg {
    sent: bool,
    raw: Vec<u8>,
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl SipMsg {
    fn parse(sent: bool, raw: Vec<u8>) -> SipMsg {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let (head, body) = match split {
            Some(i) => (&raw[..i], raw[i + 4..].to_vec()),
            None => (&raw[..], Vec::new()),
        };
        let head = String::from_utf8_lossy(head).into_owned();
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        SipMsg {
            sent,
            raw,
            start,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn call_id(&self) -> &str {
        self.header("call-id").unwrap_or("")
    }

    fn cseq(&self) -> &str {
        self.header("cseq").unwrap_or("")
    }

    fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/2.0 ")
    }

    fn status(&self) -> Option<u16> {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
    }
}

fn parse_trace(path: &Path) -> Vec<SipMsg> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut at = 0;
    let recv = b"UDP message received [";
    let sent = b"UDP message sent (";
    while at < data.len() {
        let next_r = find(&data[at..], recv).map(|i| (i, false));
        let next_s = find(&data[at..], sent).map(|i| (i, true));
        let (i, is_sent) = match (next_r, next_s) {
            (Some(r), Some(s)) => {
                if r.0 < s.0 {
                    r
                } else {
                    s
                }
            }
            (Some(r), None) => r,
            (None, Some(s)) => s,
            (None, None) => break,
        };
        let p = at + i + if is_sent { sent.len() } else { recv.len() };
        let digits = data[p..].iter().take_while(|b| b.is_ascii_digit()).count();
        let n: usize = std::str::from_utf8(&data[p..p + digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let Some(nl) = find(&data[p..], b"\n\n") else {
            break;
        };
        let start = p + nl + 2;
        let end = (start + n).min(data.len());
        out.push(SipMsg::parse(is_sent, data[start..end].to_vec()));
        at = end;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The one message of a call matching `pred` (retransmissions must be identical).
fn one<'a>(msgs: &'a [SipMsg], what: &str, pred: impl Fn(&SipMsg) -> bool) -> &'a SipMsg {
    let found: Vec<&SipMsg> = msgs.iter().filter(|m| pred(m)).collect();
    assert!(!found.is_empty(), "no {what} in the SIPp trace");
    assert!(
        found.iter().all(|m| m.body == found[0].body),
        "retransmissions of {what} differ"
    );
    found[0]
}

// ---------------------------------------------------------------------------------------------
// Proxy logs
// ---------------------------------------------------------------------------------------------

/// `sipsd: pid=P WHAT call=ID decrypted gen=G source=S media=M` or
/// `sipsd: pid=P WHAT call=ID not-decrypted code=C error=TEXT` (WHAT: method, +status on replies).
#[derive(Debug, Clone)]
struct P1Line {
    pid: u32,
    what: String,
    call: String,
    decrypted: bool,
    fields: BTreeMap<String, String>,
}

impl P1Line {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

fn parse_p1(log: &str) -> Vec<P1Line> {
    log.lines()
        .filter_map(|l| l.split_once("sipsd: pid=").map(|(_, r)| r))
        .filter_map(|r| {
            let mut it = r.splitn(4, ' ');
            let pid = it.next()?.parse().ok()?;
            let what = it.next()?.to_string();
            let call = it.next()?.strip_prefix("call=")?.to_string();
            let rest = it.next()?;
            let (outcome, kv) = rest.split_once(' ').unwrap_or((rest, ""));
            let decrypted = match outcome {
                "decrypted" => true,
                "not-decrypted" => false,
                _ => return None,
            };
            let mut fields = BTreeMap::new();
            // error= is last and may contain spaces
            let (kv, error) = match kv.split_once("error=") {
                Some((a, e)) => (a, Some(e)),
                None => (kv, None),
            };
            for p in kv.split_whitespace() {
                if let Some((k, v)) = p.split_once('=') {
                    fields.insert(k.to_string(), v.to_string());
                }
            }
            if let Some(e) = error {
                fields.insert("error".to_string(), e.trim().to_string());
            }
            Some(P1Line {
                pid,
                what,
                call,
                decrypted,
                fields,
            })
        })
        .collect()
}

/// `untrusted: pid=P METHOD call=ID body-bytes=N`
fn parse_p2(log: &str) -> Vec<(String, String, usize)> {
    log.lines()
        .filter_map(|l| l.split_once("untrusted: pid=").map(|(_, r)| r))
        .filter_map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            let method = f.get(1)?.to_string();
            let call = f.get(2)?.strip_prefix("call=")?.to_string();
            let n = f.get(3)?.strip_prefix("body-bytes=")?.parse().ok()?;
            Some((method, call, n))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A run: injection files, two proxies, SIPp callee and caller
// ---------------------------------------------------------------------------------------------

/// One line of the injection files and of expected.csv.
#[derive(Debug, Clone)]
struct Row {
    uac: Vec<String>,
    uas: Vec<String>,
    offer: String,
    answer: String,
    rotated: String,
}

fn read_rows(dir: &Path) -> Vec<Row> {
    let lines = |f: &str| -> Vec<Vec<String>> {
        fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("read {f}: {e}"))
            .lines()
            .skip(1) // SEQUENTIAL / header
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(';').map(str::to_string).collect())
            .collect()
    };
    let uac = lines("uac.csv");
    let uas = lines("uas.csv");
    let exp = lines("expected.csv");
    assert!(
        uac.len() == uas.len() && uac.len() == exp.len(),
        "injection files disagree"
    );
    uac.into_iter()
        .zip(uas)
        .zip(exp)
        .map(|((uac, uas), e)| Row {
            uac,
            uas,
            offer: e[1].clone(),
            answer: e[2].clone(),
            rotated: e[3].clone(),
        })
        .collect()
}

struct Outcome {
    work: PathBuf,
    rows: Vec<Row>,
    /// Call-ID -> index in rows, from the INVITEs the caller sent
    calls: BTreeMap<String, usize>,
    uac: Vec<SipMsg>,
    uas: Vec<SipMsg>,
    p1: Vec<P1Line>,
    p1_log: String,
    p2: Vec<(String, String, usize)>,
    p2_log: String,
}

struct Options {
    calls: usize,
    proxy_cert: bool,
    corrupt: bool,
}

fn key_pair(t: &Tools, name: &str) -> String {
    format!(
        "{}:{}",
        t.keys.join(format!("{name}.key")).display(),
        t.keys.join(format!("{name}.crt")).display()
    )
}

fn sipsd(t: &Tools, args: &[&str]) -> Output {
    Command::new(&t.sipsd)
        .args(args)
        .output()
        .expect("run the sipsd CLI")
}

fn run(t: &Tools, work: &WorkDir, opts: &Options) -> Outcome {
    let dir = &work.0;
    println!("  work directory {}", dir.display());

    // 1. bodies
    let calls_dir = dir.join("calls");
    let n = opts.calls.to_string();
    let callee_crt = t.keys.join("callee.crt").display().to_string();
    let proxy1_crt = t.keys.join("proxy1.crt").display().to_string();
    let out_dir = calls_dir.display().to_string();
    let mut args = vec![
        "sipp-calls",
        "--calls",
        &n,
        "--callee-cert",
        &callee_crt,
        "--out-dir",
        &out_dir,
    ];
    if opts.proxy_cert {
        args.extend(["--proxy-cert", &proxy1_crt]);
    }
    if opts.corrupt {
        args.push("--corrupt");
    }
    let o = sipsd(t, &args);
    assert!(
        o.status.success(),
        "sipsd sipp-calls failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows = read_rows(&calls_dir);
    println!(
        "  sipsd sipp-calls: {} calls, recipients callee{}{}",
        rows.len(),
        if opts.proxy_cert {
            " + proxy1"
        } else {
            " only"
        },
        if opts.corrupt {
            ", bodies corrupted"
        } else {
            ""
        }
    );

    // 2. P1's key directory, private to this run (the library refuses readable keys)
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).expect("mkdir keys");
    for f in ["proxy1.key", "proxy1.crt"] {
        fs::copy(t.keys.join(f), keys.join(f)).expect("copy key");
        fs::set_permissions(keys.join(f), fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o700)).expect("chmod");

    let ports = free_ports(4);
    let (p1_port, p2_port, uas_port, uac_port) = (ports[0], ports[1], ports[2], ports[3]);
    println!(
        "  ports on {ADDR}: P1 trusted {p1_port}, P2 untrusted {p2_port}, callee {uas_port}, caller {uac_port}"
    );

    let mut procs = Procs::default();
    for d in ["run1", "run2"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir runtime dir");
    }
    let p1 = procs.spawn(
        "p1-trusted",
        dir,
        Command::new(&t.kamailio).args([
            "-DD",
            "-E",
            "-Y",
            "run1",
            "-w",
            "run1",
            "-f",
            &t.root
                .join("cfg-examples/trusted-proxy.cfg")
                .display()
                .to_string(),
            "-A",
            &format!("P1_ADDR={ADDR}"),
            "-A",
            &format!("P1_PORT={p1_port}"),
            "-A",
            &format!("NEXT_HOP=\"sip:{ADDR}:{p2_port}\""),
            "-A",
            &format!("SIPSD_KEY_DIR={}", keys.display()),
            "-A",
            &format!("SIPSD_MODULE_DIR={}", t.build.display()),
        ]),
    );
    let p2 = procs.spawn(
        "p2-untrusted",
        dir,
        Command::new(&t.kamailio).args([
            "-DD",
            "-E",
            "-Y",
            "run2",
            "-w",
            "run2",
            "-f",
            &t.root
                .join("cfg-examples/untrusted-proxy.cfg")
                .display()
                .to_string(),
            "-A",
            &format!("P2_ADDR={ADDR}"),
            "-A",
            &format!("P2_PORT={p2_port}"),
            "-A",
            &format!("NEXT_HOP=\"sip:{ADDR}:{uas_port}\""),
        ]),
    );
    let uas = procs.spawn(
        "sipp-uas",
        dir,
        Command::new(&t.sipp).args([
            "-sf",
            &t.root.join("tests/sipp/uas.xml").display().to_string(),
            "-inf",
            "calls/uas.csv",
            "-i",
            ADDR,
            "-p",
            &uas_port.to_string(),
            "-m",
            &n,
            "-nostdin",
            "-timeout",
            "90s",
            "-trace_msg",
            "-message_file",
            "uas-msgs.txt",
            "-trace_err",
            "-error_file",
            "uas-errors.txt",
        ]),
    );
    wait_bound(&mut procs, p1, p1_port);
    wait_bound(&mut procs, p2, p2_port);
    wait_bound(&mut procs, uas, uas_port);
    let p1_pid = procs.list[p1].child.id();
    let p2_pid = procs.list[p2].child.id();
    let p1_kids = stable_children(p1_pid);
    let p2_kids = stable_children(p2_pid);
    println!(
        "  P1 kamailio main {p1_pid}, {} child processes; P2 main {p2_pid}, {} child processes",
        p1_kids.len(),
        p2_kids.len()
    );

    // 3. the calls, one at a time (the callee's answer line must match the caller's line)
    let uac = procs.spawn(
        "sipp-uac",
        dir,
        Command::new(&t.sipp).args([
            &format!("{ADDR}:{p1_port}"),
            "-sf",
            &t.root.join("tests/sipp/uac.xml").display().to_string(),
            "-inf",
            "calls/uac.csv",
            "-i",
            ADDR,
            "-p",
            &uac_port.to_string(),
            "-m",
            &n,
            "-r",
            "2",
            "-l",
            "1",
            "-nostdin",
            "-timeout",
            "90s",
            "-timeout_error",
            "-recv_timeout",
            "10s",
            "-trace_msg",
            "-message_file",
            "uac-msgs.txt",
            "-trace_err",
            "-error_file",
            "uac-errors.txt",
        ]),
    );
    let st = wait_deadline(&mut procs.list[uac].child, Duration::from_secs(120));
    check!(
        st.is_some_and(|s| s.success()),
        "SIPp caller: all {n} calls completed (INVITE/200/ACK, MESSAGE/200, re-INVITE/200/ACK, MESSAGE/200, BYE/200), exit {st:?}"
    );
    let st = wait_deadline(&mut procs.list[uas].child, Duration::from_secs(30));
    check!(
        st.is_some_and(|s| s.success()),
        "SIPp callee: all {n} calls answered, exit {st:?}"
    );

    // 4. every Kamailio process survived
    std::thread::sleep(Duration::from_millis(300));
    for (name, idx, pid, kids) in [("P1", p1, p1_pid, &p1_kids), ("P2", p2, p2_pid, &p2_kids)] {
        let alive = matches!(procs.list[idx].child.try_wait(), Ok(None));
        let now = children_of(pid);
        check!(
            alive && now == *kids && !kids.is_empty(),
            "{name}: main process {pid} and all {} children still alive, none replaced (children {:?})",
            kids.len(),
            now
        );
    }
    procs.stop(p1);
    procs.stop(p2);

    let p1_log = fs::read_to_string(dir.join("p1-trusted.log")).unwrap_or_default();
    let p2_log = fs::read_to_string(dir.join("p2-untrusted.log")).unwrap_or_default();
    let uac_msgs = parse_trace(&dir.join("uac-msgs.txt"));
    let uas_msgs = parse_trace(&dir.join("uas-msgs.txt"));

    // Call-ID -> row, from the bodies of the INVITEs the caller sent
    let mut calls = BTreeMap::new();
    for m in uac_msgs.iter().filter(|m| m.sent && m.cseq() == "1 INVITE") {
        let row = rows
            .iter()
            .position(|r| m.body == crlf(&r.uac[0]))
            .expect("a sent INVITE body is one of the injection lines");
        calls.insert(m.call_id().to_string(), row);
    }
    check!(
        calls.len() == rows.len() && calls.values().collect::<BTreeSet<_>>().len() == rows.len(),
        "caller trace: {} INVITEs, each carrying the offer of its own injection line",
        calls.len()
    );
    let outcome = Outcome {
        work: dir.clone(),
        rows,
        calls,
        uac: uac_msgs,
        uas: uas_msgs,
        p1: parse_p1(&p1_log),
        p1_log,
        p2: parse_p2(&p2_log),
        p2_log,
    };
    drop(procs);
    outcome
}

/// A field as SIPp sends it: the base64 line plus the CRLF that ends the message.
fn crlf(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    v
}

impl Outcome {
    fn msgs_of<'a>(&'a self, side: &'a [SipMsg], call: &'a str) -> Vec<SipMsg> {
        side.iter()
            .filter(|m| m.call_id() == call)
            .cloned()
            .collect()
    }

    fn p1_of(&self, call: &str) -> Vec<&P1Line> {
        self.p1.iter().filter(|l| l.call == call).collect()
    }

    fn save(&self, name: &str, m: &SipMsg) -> String {
        let p = self.work.join(name);
        let mut f = fs::File::create(&p).expect("create capture file");
        f.write_all(&m.raw).expect("write capture file");
        p.display().to_string()
    }

    /// The callee received exactly the caller's bodies and the caller exactly the callee's.
    fn check_bodies_unchanged(&self) {
        let pairs: [(&str, &str, usize, bool); 6] = [
            ("INVITE", "1 INVITE", 0, true),
            ("MESSAGE", "2 MESSAGE", 1, true),
            ("re-INVITE", "3 INVITE", 2, true),
            ("MESSAGE after rotation", "4 MESSAGE", 3, true),
            ("200 OK (answer)", "1 INVITE", 0, false),
            ("200 OK to the re-INVITE", "3 INVITE", 1, false),
        ];
        let mut counted = 0;
        for (call, &row) in &self.calls {
            let r = &self.rows[row];
            let at_uas = self.msgs_of(&self.uas, call);
            let at_uac = self.msgs_of(&self.uac, call);
            for (what, cseq, field, request) in pairs {
                let (sender, receiver, want) = if request {
                    (&at_uac, &at_uas, &r.uac[field])
                } else {
                    (&at_uas, &at_uac, &r.uas[field])
                };
                let pred = |sent: bool| {
                    move |m: &SipMsg| {
                        m.sent == sent
                            && m.cseq() == cseq
                            && if request {
                                m.is_request()
                            } else {
                                m.status() == Some(200)
                            }
                    }
                };
                let s = one(sender, &format!("sent {what} of {call}"), pred(true));
                let g = one(receiver, &format!("received {what} of {call}"), pred(false));
                assert_eq!(
                    s.body,
                    crlf(want),
                    "{what} of {call}: the sender did not send field {field}"
                );
                assert!(
                    g.body == s.body,
                    "{what} of {call}: body changed on the way ({} bytes sent, {} received)",
                    s.body.len(),
                    g.body.len()
                );
                for h in [
                    "content-type",
                    "content-transfer-encoding",
                    "content-length",
                ] {
                    assert_eq!(s.header(h), g.header(h), "{what} of {call}: {h} changed");
                }
                counted += 1;
            }
        }
        check!(
            counted == 6 * self.calls.len(),
            "{counted} bodies (INVITE, MESSAGE, re-INVITE, MESSAGE, both 200 OKs per call) arrived byte for byte as sent, with the same Content-Type/-Transfer-Encoding/-Length, through both proxies"
        );
    }

    /// P1 logged not-decrypted (never decrypted) for every encrypted message of every call.
    fn check_p1_never_decrypted(&self) -> Vec<&P1Line> {
        let lines: Vec<&P1Line> = self
            .p1
            .iter()
            .filter(|l| self.calls.contains_key(&l.call))
            .collect();
        check!(
            lines.iter().all(|l| !l.decrypted),
            "P1 decrypted nothing ({} sipsd log lines, all not-decrypted)",
            lines.len()
        );
        for (call, _) in self.calls.iter() {
            let whats: BTreeSet<&str> = self.p1_of(call).iter().map(|l| l.what.as_str()).collect();
            check!(
                ["INVITE", "INVITE200", "MESSAGE"]
                    .iter()
                    .all(|w| whats.contains(w)),
                "P1 looked at the INVITEs, their 200 OKs and the MESSAGEs of {call}: {whats:?}"
            );
        }
        lines
    }
}

fn media_of(sdp: &str) -> Option<String> {
    let addr = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .split_whitespace()
        .next()?
        .to_string();
    let port = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .to_string();
    Some(format!("{addr}:{port}"))
}

fn start(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Tools)> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    println!("== kamailio e2e: {name}");
    let t = tools()?;
    Some((guard, t))
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[test]
fn trusted_proxy_reads_offer_answer_message_and_rotation() {
    let Some((_serial, t)) = start("trusted proxy is a recipient (6 calls)") else {
        return;
    };
    let work = WorkDir::new("trusted");
    let o = run(
        &t,
        &work,
        &Options {
            calls: 6,
            proxy_cert: true,
            corrupt: false,
        },
    );

    // --- P1: what the trusted proxy read
    let mut moved = 0;
    let mut workers = BTreeSet::new();
    for (call, &row) in &o.calls {
        let r = &o.rows[row];
        let lines = o.p1_of(call);
        let find = |what: &str, gen: &str| -> &P1Line {
            lines
                .iter()
                .find(|l| l.what == what && l.decrypted && l.get("gen") == gen)
                .copied()
                .unwrap_or_else(|| {
                    panic!("FAILED: P1 has no decrypted {what} gen={gen} for {call}: {lines:#?}")
                })
        };
        let offer = find("INVITE", "1");
        let answer = find("INVITE200", "1");
        let message = find("MESSAGE", "1");
        let reinvite = find("INVITE", "2");
        let reanswer = find("INVITE200", "2");
        let message2 = find("MESSAGE", "2");
        check!(
            offer.get("source") == "wrapped" && offer.get("media") == r.offer,
            "{call}: P1 decrypted the offer with its own RSA key (source=wrapped gen=1) media={} = expected {}",
            offer.get("media"),
            r.offer
        );
        check!(
            answer.get("source") == "cache" && answer.get("media") == r.answer,
            "{call}: P1 decrypted the 200 OK answer (EncryptedData) with the cached dialog key (source=cache) media={} = expected {}",
            answer.get("media"),
            r.answer
        );
        check!(
            message.get("source") == "cache",
            "{call}: P1 decrypted the in-dialog MESSAGE with the cached dialog key (gen=1 source=cache)"
        );
        check!(
            reinvite.get("source") == "wrapped" && reinvite.get("media") == r.rotated,
            "{call}: after the re-INVITE P1 holds generation 2 (source=wrapped) media={} = expected {}",
            reinvite.get("media"),
            r.rotated
        );
        check!(
            reanswer.get("source") == "cache" && message2.get("source") == "cache",
            "{call}: the re-INVITE's 200 OK and the later MESSAGE were opened with the NEW key (gen=2 source=cache)"
        );
        check!(
            lines.iter().all(|l| l.decrypted),
            "{call}: no not-decrypted line for this call"
        );
        let differs = answer.pid != offer.pid || message.pid != offer.pid;
        println!(
            "       worker PIDs {call}: offer {} answer {} MESSAGE {} | re-INVITE {} answer {} MESSAGE {}{}",
            offer.pid,
            answer.pid,
            message.pid,
            reinvite.pid,
            reanswer.pid,
            message2.pid,
            if differs { "  <- key shared across workers" } else { "" }
        );
        if differs {
            moved += 1;
        }
        workers.extend(lines.iter().map(|l| l.pid));
    }
    check!(
        moved >= 1,
        "in {moved} of {} calls the cached key was used by a worker other than the one that unwrapped it (workers seen: {workers:?})",
        o.calls.len()
    );
    check!(
        !o.p1_log.contains("a=crypto")
            && !o.p1_log.contains("inline:")
            && !o.p1_log.contains("v=0"),
        "P1's log holds media facts only: no SDP text, no SRTP keys"
    );

    // --- P2: only ciphertext
    for (call, &row) in &o.calls {
        let r = &o.rows[row];
        let seen: Vec<(&str, usize)> =
            o.p2.iter()
                .filter(|(_, c, _)| c == call)
                .map(|(m, _, n)| (m.as_str(), *n))
                .collect();
        let want = [
            ("INVITE", r.uac[0].len() + 2),
            ("MESSAGE", r.uac[1].len() + 2),
            ("INVITE", r.uac[2].len() + 2),
            ("MESSAGE", r.uac[3].len() + 2),
        ];
        check!(
            want.iter().all(|w| seen.contains(w)),
            "{call}: P2 forwarded INVITE/MESSAGE/re-INVITE/MESSAGE with the ciphertext sizes the caller sent {:?}",
            want.iter().map(|w| w.1).collect::<Vec<_>>()
        );
    }
    let leaks: Vec<String> = o
        .rows
        .iter()
        .flat_map(|r| [&r.offer, &r.answer, &r.rotated])
        .flat_map(|m| [m.clone(), m.split(':').next().unwrap_or("").to_string()])
        .chain(["v=0", "m=audio", "c=IN", "a=crypto", "inline:", "PCMU"].map(String::from))
        .filter(|s| !s.is_empty() && o.p2_log.contains(s.as_str()))
        .collect();
    check!(
        leaks.is_empty(),
        "P2's log shows no SDP and none of the media addresses: {leaks:?}"
    );

    // --- the callee
    o.check_bodies_unchanged();
    let (first_call, _) = o.calls.iter().next().expect("a call");
    let uas_msgs = o.msgs_of(&o.uas, first_call);
    let invite = one(&uas_msgs, "INVITE at the callee", |m| {
        !m.sent && m.cseq() == "1 INVITE"
    });
    let captured = o.save("captured-invite.sip", invite);
    let ins = sipsd(&t, &["inspect", "--in", &captured]);
    println!(
        "       sipsd inspect on the INVITE P2 forwarded:\n         {}",
        String::from_utf8_lossy(&ins.stdout)
            .trim()
            .replace('\n', "\n         ")
    );
    let p2_open = sipsd(
        &t,
        &["open", "--key", &key_pair(&t, "proxy2"), "--in", &captured],
    );
    check!(
        !p2_open.status.success() && p2_open.stdout.is_empty(),
        "sipsd open with proxy2's key on the captured INVITE fails, nothing printed: {}",
        String::from_utf8_lossy(&p2_open.stderr).trim()
    );

    for (call, &row) in &o.calls {
        let r = &o.rows[row];
        let at_uas = o.msgs_of(&o.uas, call);
        let at_uac = o.msgs_of(&o.uac, call);
        let tag = call.split('@').next().unwrap_or(call);
        let get = |side: &[SipMsg], cseq: &str, reply: bool| -> String {
            let m = one(side, &format!("{cseq} of {call}"), |m| {
                !m.sent
                    && m.cseq() == cseq
                    && if reply {
                        m.status() == Some(200)
                    } else {
                        m.is_request()
                    }
            });
            o.save(
                &format!(
                    "{tag}-{}{}.sip",
                    cseq.replace(' ', "-"),
                    if reply { "-200" } else { "" }
                ),
                m,
            )
        };
        let cek1 = o.work.join(format!("{tag}-cek1")).display().to_string();
        let cek2 = o.work.join(format!("{tag}-cek2")).display().to_string();
        let callee = key_pair(&t, "callee");
        let open = |args: &[&str]| -> (bool, String) {
            let out = sipsd(&t, args);
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (ok, sdp) = open(&[
            "open",
            "--key",
            &callee,
            "--cek-out",
            &cek1,
            "--in",
            &get(&at_uas, "1 INVITE", false),
        ]);
        check!(
            ok && media_of(&sdp).as_deref() == Some(r.offer.as_str()),
            "{call}: the callee opens the INVITE with its key: media {:?}",
            media_of(&sdp)
        );
        let (ok, text) = open(&[
            "open",
            "--cek",
            &cek1,
            "--in",
            &get(&at_uas, "2 MESSAGE", false),
        ]);
        check!(
            ok && text.contains("text/plain"),
            "{call}: the callee opens the MESSAGE with the dialog key"
        );
        let (ok, sdp) = open(&[
            "open",
            "--cek",
            &cek1,
            "--in",
            &get(&at_uac, "1 INVITE", true),
        ]);
        check!(
            ok && media_of(&sdp).as_deref() == Some(r.answer.as_str()),
            "{call}: the caller opens the 200 OK answer it received with the dialog key: media {:?}",
            media_of(&sdp)
        );
        let (ok, sdp) = open(&[
            "open",
            "--key",
            &callee,
            "--cek-out",
            &cek2,
            "--in",
            &get(&at_uas, "3 INVITE", false),
        ]);
        check!(
            ok && media_of(&sdp).as_deref() == Some(r.rotated.as_str()),
            "{call}: the callee opens the re-INVITE (rotated key): media {:?}",
            media_of(&sdp)
        );
        let msg2 = get(&at_uas, "4 MESSAGE", false);
        let (ok_new, _) = open(&["open", "--cek", &cek2, "--in", &msg2]);
        let (ok_old, _) = open(&["open", "--cek", &cek1, "--in", &msg2]);
        check!(
            ok_new && !ok_old,
            "{call}: the MESSAGE after rotation opens with the new key and NOT with the old one"
        );
        let (ok, _) = open(&[
            "open",
            "--key",
            &key_pair(&t, "proxy2"),
            "--in",
            &get(&at_uas, "3 INVITE", false),
        ]);
        check!(
            !ok,
            "{call}: proxy2's key does not open the re-INVITE either"
        );
    }
}

#[test]
fn proxy_not_a_recipient_forwards_unchanged() {
    let Some((_serial, t)) = start("trusted proxy NOT a recipient (3 calls)") else {
        return;
    };
    let work = WorkDir::new("notrecipient");
    let o = run(
        &t,
        &work,
        &Options {
            calls: 3,
            proxy_cert: false,
            corrupt: false,
        },
    );
    let lines = o.check_p1_never_decrypted();
    let codes: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| (l.get("code").to_string(), l.get("error").to_string()))
        .collect();
    check!(
        codes.len() == 1
            && lines
                .iter()
                .all(|l| l.get("code") != "0" && !l.get("code").is_empty()),
        "P1 reports one reason for every message: {codes:?}"
    );
    o.check_bodies_unchanged();

    let (call, &row) = o.calls.iter().next().expect("a call");
    let at_uas = o.msgs_of(&o.uas, call);
    let inv = one(&at_uas, "INVITE at the callee", |m| {
        !m.sent && m.cseq() == "1 INVITE"
    });
    let f = o.save("captured-invite.sip", inv);
    let p1_open = sipsd(&t, &["open", "--key", &key_pair(&t, "proxy1"), "--in", &f]);
    check!(
        !p1_open.status.success(),
        "sipsd open with proxy1's key fails too: {}",
        String::from_utf8_lossy(&p1_open.stderr).trim()
    );
    let callee = sipsd(&t, &["open", "--key", &key_pair(&t, "callee"), "--in", &f]);
    let media = media_of(&String::from_utf8_lossy(&callee.stdout));
    check!(
        callee.status.success() && media.as_deref() == Some(o.rows[row].offer.as_str()),
        "{call}: the callee still opens the offer: media {media:?}"
    );
}

#[test]
fn corrupt_bodies_forwarded_and_proxies_survive() {
    let Some((_serial, t)) = start("corrupt bodies (3 calls)") else {
        return;
    };
    let work = WorkDir::new("corrupt");
    let o = run(
        &t,
        &work,
        &Options {
            calls: 3,
            proxy_cert: true,
            corrupt: true,
        },
    );
    let lines = o.check_p1_never_decrypted();
    let requests: Vec<&&P1Line> = lines
        .iter()
        .filter(|l| l.what == "INVITE" || l.what == "MESSAGE")
        .collect();
    let codes: BTreeSet<(String, String)> = requests
        .iter()
        .map(|l| (l.get("code").to_string(), l.get("error").to_string()))
        .collect();
    check!(
        codes.len() == 1 && !requests.is_empty(),
        "P1 reports the same error for all {} corrupt INVITEs/MESSAGEs: {codes:?}",
        requests.len()
    );
    o.check_bodies_unchanged();

    let (call, _) = o.calls.iter().next().expect("a call");
    let at_uas = o.msgs_of(&o.uas, call);
    let inv = one(&at_uas, "INVITE at the callee", |m| {
        !m.sent && m.cseq() == "1 INVITE"
    });
    let f = o.save("captured-invite.sip", inv);
    let cli = sipsd(&t, &["open", "--key", &key_pair(&t, "proxy1"), "--in", &f]);
    let err = String::from_utf8_lossy(&cli.stderr);
    check!(
        !cli.status.success() && !err.contains("not a recipient") && !err.contains("none of our keys"),
        "sipsd open with proxy1's key rejects the corrupt body as malformed, not as 'not a recipient': {}",
        err.trim()
    );
}

/// One INVITE with a malformed S/MIME body sent straight to P1 over UDP.
fn corrupt_invite(n: u32, client_port: u16) -> (Vec<u8>, Vec<u8>) {
    // a DER SEQUENCE announcing 256 bytes, then an EnvelopedData OID, then nothing
    let body = b"MIIBAAYJKoZIhvcNAQcD\r\n".to_vec();
    let head = format!(
        "INVITE sip:bob@{ADDR} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ADDR}:{client_port};branch=z9hG4bK-onerror-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{ADDR}>;tag=onerror-{n}\r\n\
         To: <sip:bob@{ADDR}>\r\n\
         Call-ID: onerror-{n}-{}@{ADDR}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{ADDR}:{client_port}>\r\n\
         Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Length: {}\r\n\r\n",
        std::process::id(),
        body.len()
    );
    let mut msg = head.into_bytes();
    msg.extend_from_slice(&body);
    (msg, body)
}

/// Datagrams on `sock` until `until` matches one or `secs` pass.
fn receive_until(sock: &UdpSocket, secs: u64, until: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
        if let Ok(n) = sock.recv(&mut buf) {
            if until(&buf[..n]) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

#[test]
fn on_error_reject_answers_493_and_forward_relays_unchanged() {
    let Some((_serial, t)) = start("on_error: reject answers 493, forward relays unchanged") else {
        return;
    };
    let work = WorkDir::new("onerror");
    let keys = work.0.join("keys");
    fs::create_dir_all(&keys).expect("mkdir keys");
    for f in ["proxy1.key", "proxy1.crt"] {
        fs::copy(t.keys.join(f), keys.join(f)).expect("copy key");
        fs::set_permissions(keys.join(f), fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    for (n, reject) in [(1u32, true), (2, false)] {
        let run_dir = work.0.join(format!("run{n}"));
        fs::create_dir_all(&run_dir).expect("mkdir");
        let sink = UdpSocket::bind((ADDR, 0)).expect("bind the next hop");
        let client = UdpSocket::bind((ADDR, 0)).expect("bind the caller");
        let sink_port = sink.local_addr().unwrap().port();
        let client_port = client.local_addr().unwrap().port();
        let p1_port = free_ports(1)[0];
        let mut args = vec![
            "-DD".to_string(),
            "-E".into(),
            "-Y".into(),
            run_dir.display().to_string(),
            "-w".into(),
            run_dir.display().to_string(),
            "-f".into(),
            t.root
                .join("cfg-examples/trusted-proxy.cfg")
                .display()
                .to_string(),
            "-A".into(),
            format!("P1_ADDR={ADDR}"),
            "-A".into(),
            format!("P1_PORT={p1_port}"),
            "-A".into(),
            format!("NEXT_HOP=\"sip:{ADDR}:{sink_port}\""),
            "-A".into(),
            format!("SIPSD_KEY_DIR={}", keys.display()),
            "-A".into(),
            format!("SIPSD_MODULE_DIR={}", t.build.display()),
            "-A".into(),
            format!("CTL_SOCKET=unix:{}/ctl", run_dir.display()),
        ];
        if reject {
            args.extend(["-A".to_string(), "WITH_REJECT_ON_ERROR".to_string()]);
        }
        let mut procs = Procs::default();
        let p1 = procs.spawn(
            if reject { "p1-reject" } else { "p1-forward" },
            &work.0,
            Command::new(&t.kamailio).args(&args),
        );
        wait_bound(&mut procs, p1, p1_port);
        let (invite, body) = corrupt_invite(n, client_port);
        client
            .send_to(&invite, (ADDR, p1_port))
            .expect("send the INVITE");
        if reject {
            let reply = receive_until(&client, 10, |d| !d.starts_with(b"SIP/2.0 100"));
            let reply = reply.map(|r| {
                String::from_utf8_lossy(&r)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
            check!(
                reply.as_deref() == Some("SIP/2.0 493 Undecipherable"),
                "on_error=reject: a malformed body meant for P1 is answered {reply:?}"
            );
            let forwarded = receive_until(&sink, 1, |d| d.starts_with(b"INVITE"));
            check!(
                forwarded.is_none(),
                "on_error=reject: nothing was forwarded to the next hop"
            );
        } else {
            let forwarded = receive_until(&sink, 10, |d| d.starts_with(b"INVITE"));
            let fwd_body = forwarded.as_deref().and_then(|d| {
                d.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| d[p + 4..].to_vec())
            });
            check!(
                fwd_body.as_deref() == Some(body.as_slice()),
                "on_error=forward (default): the INVITE reached the next hop with its body unchanged"
            );
        }
        check!(
            procs.list[p1].child.try_wait().ok().flatten().is_none(),
            "P1 is still running"
        );
    }
}
