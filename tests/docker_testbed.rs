//! The Dockerised testbed: caller, trusted proxy, untrusted proxy and callee, each its own
//! container with its own address on private Docker networks (docker/compose.yml):
//!
//! ```text
//!   uac ── A ── p1 (Kamailio + sipsd) ── core ── p2 (plain Kamailio) ── B ── uas
//!                                          └── tap: tcpdump of the core network (p2's netns)
//! ```
//!
//! One test, `docker_topology`, runs the phases on one topology and prints every check:
//!
//! 1. calls across the four hosts: P1 reads the offer, the answer, the MESSAGE and the rotated
//!    key; P2 only sees ciphertext and proxy2's key does not open it; the callee receives the
//!    caller's bodies byte for byte (and the caller the callee's) and opens them;
//! 2. P1 restarted in the middle of a dialog: the next in-dialog MESSAGE is forwarded but not
//!    read (the cache is gone), the re-INVITE with a new wrapped key makes P1 read again, and
//!    the call completes;
//! 3. one Kamailio worker of P1 killed (SIGKILL): Kamailio's main process stops all its
//!    processes, the container's restart policy brings P1 back, SIPp retransmissions carry the
//!    calls in flight, every call completes;
//! 4. P1 cut from the core network: a dialog idle during the cut survives and completes (and P1
//!    still holds its key); requests sent while the link is down fail at once and cleanly
//!    (477 from P1's tm: no route), SIPp does not hang, calls after the reconnect complete;
//! 5. the wire: the core capture holds the encrypted bodies and never the plaintext SDP (media
//!    address, `a=crypto` keys, `v=0`), through all the faults above;
//! 6. the detector is shown to work: P1 restarted with `-A WITH_REPLACE_BODY`
//!    (`sd_replace_body()`, cfg-examples/trusted-proxy.cfg) forwards the plaintext, and the
//!    same search finds it in the capture.
//!
//! Containers and networks are removed at the end, also when a check fails (a Drop guard,
//! one compose project name per run).
//!
//! Needs a Docker engine, docker-compose (or `docker compose`), the base image (built by
//! docker/build-base when missing, about 2 minutes), build/sipsd.so (`make`). Without a Docker
//! engine the test prints "SKIPPED: no docker" and passes, unless SIPSD_REQUIRE_DOCKER=1.
//! Run: `cargo test --test docker_testbed -- --nocapture`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

const SIP_PORT: u16 = 5060;

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Poll `f` until it returns true or `limit` passes.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `docker-compose` (v1) or the `docker compose` plugin, whichever exists.
fn compose_tool() -> Option<Vec<String>> {
    let ok = |c: &mut Command| {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(Command::new("docker-compose").arg("version")) {
        return Some(vec!["docker-compose".into()]);
    }
    if ok(Command::new("docker").args(["compose", "version"])) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The topology: a compose project, removed on drop
// ---------------------------------------------------------------------------------------------

struct Testbed {
    root: PathBuf,
    compose: Vec<String>,
    project: String,
    env: Vec<(String, String)>,
    work: PathBuf,
    net: String,
    up: bool,
}

impl Testbed {
    fn compose_cmd(&self) -> Command {
        let mut c = Command::new(&self.compose[0]);
        c.args(&self.compose[1..])
            .arg("-f")
            .arg(self.root.join("docker/compose.yml"))
            .args(["-p", &self.project]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn compose(&self, args: &[&str]) -> Output {
        output(self.compose_cmd().args(args))
    }

    fn addr(&self, net: u8, host: u8) -> String {
        format!("{}.{net}.{host}", self.net)
    }

    fn container(&self, service: &str) -> String {
        let o = self.compose(&["ps", "-q", service]);
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(!id.is_empty(), "no container for {service}: {}", text(&o));
        id
    }

    /// `sh -c CMD` in a service's container.
    fn exec(&self, service: &str, cmd: &str) -> Output {
        let id = self.container(service);
        output(Command::new("docker").args(["exec", &id, "sh", "-c", cmd]))
    }

    fn spawn_exec(&self, service: &str, cmd: &str) -> Child {
        let id = self.container(service);
        Command::new("docker")
            .args(["exec", &id, "sh", "-c", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker exec")
    }

    fn logs(&self, service: &str) -> String {
        let id = self.container(service);
        text(&output(Command::new("docker").args(["logs", &id])))
    }

    fn inspect(&self, service: &str, fmt: &str) -> String {
        let id = self.container(service);
        String::from_utf8_lossy(
            &output(Command::new("docker").args(["inspect", "-f", fmt, &id])).stdout,
        )
        .trim()
        .to_string()
    }

    fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    /// Wait until both proxies listen and the capture runs (as their logs say).
    fn wait_ready(&self, p1_starts: usize) {
        let ok = wait_for(Duration::from_secs(60), || {
            let p1 = self.logs("p1");
            p1.matches("ready (dialog callbacks").count() >= p1_starts
                && p1.matches("io_listen_loop").count() >= p1_starts
                && self.logs("p2").contains("probe_max_receive_buffer")
                && self.logs("tap").contains("listening on")
        });
        if !ok {
            println!("{}", self.logs("p1"));
        }
        check!(
            ok,
            "p1 (sipsd ready, start #{p1_starts}), p2 and the core capture are up"
        );
        // the UDP sockets exist once the log says so; give the workers a moment
        std::thread::sleep(Duration::from_millis(500));
    }

    fn down(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        let o = self.compose(&["down", "-v", "--remove-orphans", "-t", "3"]);
        if !o.status.success() {
            eprintln!("compose down: {}", text(&o));
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::thread::panicking() && self.up {
            for s in ["p1", "p2"] {
                let id = self.compose(&["ps", "-q", s]);
                let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
                if !id.is_empty() {
                    let log = text(&output(
                        Command::new("docker").args(["logs", "--tail", "60", &id]),
                    ));
                    eprintln!("----- last log lines of {s} -----\n{log}");
                }
            }
        }
        self.down();
        if std::env::var_os("SIPSD_DOCKER_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.work);
        }
    }
}

/// A `10.X` prefix whose 10.X.1-3.0/24 no Docker network uses yet.
fn free_net_prefix() -> String {
    let o = output(Command::new("sh").args([
        "-c",
        "docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'",
    ]));
    let used = String::from_utf8_lossy(&o.stdout).to_string();
    for x in 231..=250 {
        let p = format!("10.{x}.");
        if !used.split_whitespace().any(|s| s.starts_with(&p)) {
            return format!("10.{x}");
        }
    }
    panic!("no free 10.231-250 prefix for the testbed networks");
}

// ---------------------------------------------------------------------------------------------
// SIP messages from SIPp's -trace_msg file
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct SipMsg {
    sent: bool,
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl SipMsg {
    fn parse(sent: bool, raw: &[u8]) -> SipMsg {
        let (head, body) = match find(raw, b"\r\n\r\n").or_else(|| find(raw, b"\n\n")) {
            Some(i) => {
                let skip = if raw[i..].starts_with(b"\r\n\r\n") {
                    4
                } else {
                    2
                };
                (&raw[..i], raw[i + skip..].to_vec())
            }
            None => (raw, Vec::new()),
        };
        let head = String::from_utf8_lossy(head).into_owned();
        let mut lines = head.lines();
        let start = lines.next().unwrap_or("").trim().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        SipMsg {
            sent,
            start,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn call_id(&self) -> &str {
        self.header("call-id")
    }

    fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/2.0 ")
    }

    /// The body without the line ends SIPp adds after it.
    fn body_trimmed(&self) -> &[u8] {
        self.body.trim_ascii_end()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_trace(path: &Path) -> Vec<SipMsg> {
    let data = fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut at = 0;
    let recv: &[u8] = b"UDP message received [";
    let sent: &[u8] = b"UDP message sent (";
    loop {
        let r = find(&data[at..], recv).map(|i| (i, false));
        let s = find(&data[at..], sent).map(|i| (i, true));
        let (i, is_sent) = match (r, s) {
            (Some(r), Some(s)) => std::cmp::min_by_key(r, s, |x| x.0),
            (Some(x), None) | (None, Some(x)) => x,
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
        out.push(SipMsg::parse(is_sent, &data[start..end]));
        at = end;
    }
    out
}

/// The first message of `call` matching `pred`.
fn one<'a>(msgs: &'a [SipMsg], what: &str, pred: impl Fn(&SipMsg) -> bool) -> &'a SipMsg {
    msgs.iter()
        .find(|m| pred(m))
        .unwrap_or_else(|| panic!("FAILED: no {what} in the SIPp trace"))
}

// ---------------------------------------------------------------------------------------------
// Injection files (sipsd sipp-calls) and SIPp runs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Row {
    /// INVITE, MESSAGE, re-INVITE, MESSAGE bodies (base64, one line)
    uac: Vec<String>,
    /// 200 OK bodies: answer, answer after rotation
    uas: Vec<String>,
    offer: String,
    answer: String,
    rotated: String,
}

fn csv(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

fn read_rows(dir: &Path) -> Vec<Row> {
    let (uac, uas, exp) = (
        csv(&dir.join("uac.csv")),
        csv(&dir.join("uas.csv")),
        csv(&dir.join("expected.csv")),
    );
    assert!(uac.len() == uas.len() && uac.len() == exp.len());
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

struct Run {
    /// host directory (under the work dir, /work/NAME in the UA containers)
    dir: PathBuf,
    name: String,
    rows: Vec<Row>,
}

struct SippResult {
    uac: Option<ExitStatus>,
    uas: Option<ExitStatus>,
    successful: usize,
    failed: usize,
}

impl Testbed {
    /// `sipsd sipp-calls` in the caller's container: N calls for the callee and proxy1.
    fn make_calls(&self, name: &str, calls: usize) -> Run {
        let o = self.exec(
            "uac",
            &format!(
                "sipsd sipp-calls --calls {calls} --callee-cert /etc/sipsd/certs/callee.crt \
                 --proxy-cert /etc/sipsd/certs/proxy1.crt --out-dir /work/{name}"
            ),
        );
        check!(
            o.status.success(),
            "uac: `sipsd sipp-calls --calls {calls}` wrote the injection files for run {name} ({})",
            text(&o).trim()
        );
        let dir = self.work.join(name);
        let rows = read_rows(&dir);
        Run {
            dir,
            name: name.to_string(),
            rows,
        }
    }

    /// The callee: `tests/sipp/uas.xml`, its pid in /work/NAME/uas.pid (so it can be stopped).
    fn start_uas(&self, run: &Run, calls: usize, timeout_s: u32) -> Child {
        let _ = fs::remove_file(run.dir.join("uas.pid"));
        let cmd = format!(
            "cd /work/{n} && echo $$ > uas.pid && exec sipp -sf /usr/share/sipsd/sipp/uas.xml \
             -inf uas.csv -i {ip} -p {SIP_PORT} -m {calls} -nostdin -timeout {timeout_s}s \
             -trace_msg -message_file uas-msgs.txt -trace_err -error_file uas-errors.txt \
             -trace_stat -stf uas-stat.csv >uas.out 2>&1",
            n = run.name,
            ip = self.addr(3, 13)
        );
        let child = self.spawn_exec("uas", &cmd);
        let up = wait_for(Duration::from_secs(20), || {
            self.exec(
                "uas",
                &format!("ss -Hlun 'sport = :{SIP_PORT}' | grep -q ."),
            )
            .status
            .success()
        });
        check!(
            up,
            "uas: SIPp callee listening on {}:{SIP_PORT}",
            self.addr(3, 13)
        );
        child
    }

    fn stop_uas(&self, run: &Run) {
        if let Ok(pid) = fs::read_to_string(run.dir.join("uas.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() {
                let _ = self.exec("uas", &format!("kill {pid} 2>/dev/null; true"));
            }
        }
    }

    /// The caller: scenario `scenario` (a path inside the uac container), one call at a time.
    fn start_uac(&self, run: &Run, scenario: &str, calls: usize) -> Child {
        let cmd = format!(
            "cd /work/{n} && exec sipp {p1}:{SIP_PORT} -sf {scenario} -inf uac.csv -i {ip} \
             -p {SIP_PORT} -m {calls} -l 1 -r 2 -nostdin -timeout 120s -timeout_error \
             -recv_timeout 20s -trace_msg -message_file uac-msgs.txt -trace_err \
             -error_file uac-errors.txt >uac.out 2>&1",
            n = run.name,
            p1 = self.addr(1, 11),
            ip = self.addr(1, 10)
        );
        self.spawn_exec("uac", &cmd)
    }

    fn finish(&self, run: &Run, mut uac: Child, mut uas: Child) -> SippResult {
        let uac_st = wait_deadline(&mut uac, Duration::from_secs(150));
        let uas_st = wait_deadline(&mut uas, Duration::from_secs(30));
        if uas_st.is_none() {
            self.stop_uas(run);
        }
        let out = fs::read_to_string(run.dir.join("uac.out")).unwrap_or_default();
        let count = |label: &str| -> usize {
            out.lines()
                .filter(|l| l.trim_start().starts_with(label))
                .filter_map(|l| l.split('|').nth(2))
                .filter_map(|c| c.trim().parse().ok())
                .next_back()
                .unwrap_or(0)
        };
        SippResult {
            uac: uac_st,
            uas: uas_st,
            successful: count("Successful call"),
            failed: count("Failed call"),
        }
    }

    /// uac.xml with a long pause after the first ACK: the dialog stays open while the test
    /// restarts P1 or cuts its link. Derived from tests/sipp/uac.xml at run time.
    fn pause_scenario(&self, run: &Run, pause_ms: u32) -> String {
        let xml = fs::read_to_string(self.root.join("tests/sipp/uac.xml")).expect("uac.xml");
        let marker = "<pause milliseconds=\"100\"/>";
        assert!(
            xml.contains(marker),
            "tests/sipp/uac.xml has no {marker} after the ACK to lengthen"
        );
        let xml = xml.replacen(marker, &format!("<pause milliseconds=\"{pause_ms}\"/>"), 1);
        fs::write(run.dir.join("uac-pause.xml"), xml).expect("write uac-pause.xml");
        format!("/work/{}/uac-pause.xml", run.name)
    }
}

/// Wait until the caller has sent `n` messages whose CSeq is `cseq` (e.g. "1 ACK").
fn wait_sent(run: &Run, cseq: &str, n: usize, limit: Duration) -> bool {
    wait_for(limit, || {
        parse_trace(&run.dir.join("uac-msgs.txt"))
            .iter()
            .filter(|m| m.sent && m.header("cseq") == cseq)
            .count()
            >= n
    })
}

// ---------------------------------------------------------------------------------------------
// Proxy logs
// ---------------------------------------------------------------------------------------------

/// `sipsd: pid=P WHAT call=ID decrypted gen=G source=S media=M` or `... not-decrypted ...`
#[derive(Debug, Clone)]
struct P1Line {
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
            let _pid = it.next()?;
            let what = it.next()?.to_string();
            let call = it.next()?.strip_prefix("call=")?.to_string();
            let rest = it.next()?;
            let (outcome, kv) = rest.split_once(' ').unwrap_or((rest, ""));
            let decrypted = match outcome {
                "decrypted" => true,
                "not-decrypted" => false,
                _ => return None,
            };
            let (kv, error) = match kv.split_once("error=") {
                Some((a, e)) => (a, Some(e)),
                None => (kv, None),
            };
            let mut fields: BTreeMap<String, String> = kv
                .split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if let Some(e) = error {
                fields.insert("error".into(), e.trim().to_string());
            }
            Some(P1Line {
                what,
                call,
                decrypted,
                fields,
            })
        })
        .collect()
}

/// The lines of one call for one request (or reply, e.g. "INVITE200"), in log order.
fn p1_lines<'a>(lines: &'a [P1Line], call: &str, what: &str) -> Vec<&'a P1Line> {
    lines
        .iter()
        .filter(|l| l.call == call && l.what == what)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The capture: pcap, IPv4 reassembly, UDP payloads
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Datagram {
    src: [u8; 4],
    dst: [u8; 4],
    payload: Vec<u8>,
}

/// IPv4 fragments are reassembled per (source, destination, identification).
type FragKey = ([u8; 4], [u8; 4], u16);
/// (offset, more fragments follow, data)
type Fragment = (usize, bool, Vec<u8>);

/// The UDP datagrams of a pcap file (Linux cooked v1/v2 or Ethernet), IPv4 fragments
/// reassembled. A truncated last record (the capture is still running) is ignored.
fn pcap_datagrams(data: &[u8]) -> Vec<Datagram> {
    if data.len() < 24 {
        return Vec::new();
    }
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => panic!("not a pcap file (magic {magic:#x})"),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(data, 20);
    let l2 = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked v1
        276 => 20, // Linux cooked v2
        101 => 0,  // raw IP
        _ => panic!("unsupported link type {link}"),
    };
    let mut frags: BTreeMap<FragKey, Vec<Fragment>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32_at(data, at + 8) as usize;
        let start = at + 16;
        if start + incl > data.len() {
            break;
        }
        let pkt = &data[start..start + incl];
        at = start + incl;
        if pkt.len() < l2 + 20 {
            continue;
        }
        let ip = &pkt[l2..];
        if ip[0] >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        if ip[9] != 17 || total < ihl {
            continue;
        }
        let id = u16::from_be_bytes([ip[4], ip[5]]);
        let flags_off = u16::from_be_bytes([ip[6], ip[7]]);
        let more = flags_off & 0x2000 != 0;
        let off = usize::from(flags_off & 0x1fff) * 8;
        let src = [ip[12], ip[13], ip[14], ip[15]];
        let dst = [ip[16], ip[17], ip[18], ip[19]];
        let body = ip[ihl..total].to_vec();
        let whole = if !more && off == 0 {
            Some(body)
        } else {
            let list = frags.entry((src, dst, id)).or_default();
            if !list.iter().any(|f| f.0 == off) {
                list.push((off, more, body));
            }
            list.sort_by_key(|f| f.0);
            // complete: contiguous from 0 and the last has no "more fragments"
            let mut next = 0;
            let mut done = false;
            for f in list.iter() {
                if f.0 != next {
                    break;
                }
                next += f.2.len();
                if !f.1 {
                    done = true;
                }
            }
            if done {
                let list = frags.remove(&(src, dst, id)).unwrap_or_default();
                Some(list.into_iter().flat_map(|f| f.2).collect())
            } else {
                None
            }
        };
        if let Some(udp) = whole {
            if udp.len() >= 8 {
                out.push(Datagram {
                    src,
                    dst,
                    payload: udp[8..].to_vec(),
                });
            }
        }
    }
    out
}

/// How a needle is shown: SRTP keys (the 40-character `inline:` values) are never printed.
fn label(n: &str) -> String {
    if n.len() == 40 && !n.contains(' ') && !n.contains('=') {
        "an a=crypto inline key".to_string()
    } else {
        format!("{n:?}")
    }
}

/// The plaintext detector: where a needle occurs in a UDP payload of the capture (datagram
/// index), or anywhere in the raw file (across packets).
fn find_plaintext(raw: &[u8], grams: &[Datagram], needles: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    for n in needles {
        for (i, g) in grams.iter().enumerate() {
            if find(&g.payload, n.as_bytes()).is_some() {
                hits.push(format!("{} in datagram #{i}", label(n)));
            }
        }
        if find(raw, n.as_bytes()).is_some() {
            hits.push(format!("{} in the raw capture", label(n)));
        }
    }
    hits
}

fn ip4(s: &str) -> [u8; 4] {
    let v: Vec<u8> = s.split('.').map(|p| p.parse().expect("IPv4")).collect();
    [v[0], v[1], v[2], v[3]]
}

/// The plaintext of a base64 body as the callee (or a dialog-key holder) opens it.
fn open_on_host(cli: &Path, keys: &Path, work: &Path, b64: &str, cek_out: Option<&Path>) -> Output {
    static N: AtomicUsize = AtomicUsize::new(0);
    let f = work.join(format!("body-{}.b64", N.fetch_add(1, Ordering::Relaxed)));
    fs::write(&f, b64).expect("write body");
    let mut c = Command::new(cli);
    c.arg("open")
        .arg("--key")
        .arg(format!(
            "{}:{}",
            keys.join("callee.key").display(),
            keys.join("callee.crt").display()
        ))
        .arg("--in")
        .arg(&f);
    if let Some(p) = cek_out {
        c.arg("--cek-out").arg(p);
    }
    output(&mut c)
}

/// The strings that betray a plaintext SDP of these calls: media address lines, the a=crypto
/// keys (opened with the callee's key on the host), the `v=0` line.
fn plaintext_needles(cli: &Path, keys: &Path, work: &Path, rows: &[Row]) -> Vec<String> {
    let mut needles = vec![
        "v=0\r\n".to_string(),
        "IN IP4 192.0.2.".to_string(),
        "a=crypto:".to_string(),
    ];
    for r in rows {
        for b64 in [&r.uac[0], &r.uac[2]] {
            let o = open_on_host(cli, keys, work, b64, None);
            assert!(
                o.status.success(),
                "callee key opens the offer: {}",
                text(&o)
            );
            let sdp = String::from_utf8_lossy(&o.stdout);
            for l in sdp.lines() {
                if let Some(k) = l.split("inline:").nth(1) {
                    needles.push(k.trim().to_string());
                }
            }
        }
        for m in [&r.offer, &r.answer, &r.rotated] {
            needles.push(format!("c=IN IP4 {}", m.split(':').next().unwrap_or("")));
        }
    }
    needles.sort();
    needles.dedup();
    needles
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

fn find_keys(root: &Path) -> PathBuf {
    for d in [
        root.join("tests/data/vectors/keys"),
        root.join("../shared/vectors/keys"),
        PathBuf::from("/work/shared/vectors/keys"),
    ] {
        if d.join("proxy1.key").is_file() && d.join("callee.key").is_file() {
            return d;
        }
    }
    panic!("no test keys (tests/data/vectors/keys)");
}

fn skip_or_fail(why: &str) {
    if std::env::var("SIPSD_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("SIPSD_REQUIRE_DOCKER=1 but {why}");
    }
    println!("SKIPPED: {why}");
}

#[test]
fn docker_topology() {
    let t0 = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_sipsd"));
    if !docker_available() {
        return skip_or_fail("no docker");
    }
    let Some(compose) = compose_tool() else {
        return skip_or_fail("no docker-compose / docker compose");
    };
    if !root.join("build/sipsd.so").is_file() || !root.join("build/libsipsd.so").is_file() {
        return skip_or_fail("no build/sipsd.so (run make)");
    }
    let keys = find_keys(&root);
    println!("Docker testbed ({})", compose.join(" "));

    // --- images -----------------------------------------------------------------------------
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    let project = format!("sipsdt{}x{stamp}", std::process::id());
    let work = std::env::temp_dir().join(format!("{project}.work"));
    fs::create_dir_all(&work).expect("work dir");
    let o = output(
        Command::new(root.join("docker/build-images"))
            .arg("--env-file")
            .arg(work.join("images.env"))
            .env("SIPSD_CLI", &cli),
    );
    check!(
        o.status.success(),
        "docker/build-images: images built or reused by input hash\n{}",
        String::from_utf8_lossy(&o.stdout).trim()
    );
    let mut env: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let net = free_net_prefix();
    env.push(("SIPSD_NET".into(), net.clone()));
    env.push(("SIPSD_KEYS".into(), keys.display().to_string()));
    env.push(("SIPSD_WORK".into(), work.display().to_string()));
    env.push(("SIPSD_DEFINES".into(), String::new()));

    let mut tb = Testbed {
        root: root.clone(),
        compose,
        project,
        env,
        work: work.clone(),
        net,
        up: true,
    };
    let o = tb.compose(&["up", "-d"]);
    check!(
        o.status.success(),
        "compose project {}: networks {n}.1.0/24 (A), {n}.2.0/24 (core), {n}.3.0/24 (B), containers uac p1 p2 uas tap{}",
        tb.project,
        if o.status.success() { String::new() } else { text(&o) },
        n = tb.net
    );
    tb.wait_ready(1);
    let p1_a = tb.inspect(
        "p1",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            tb.network("a")
        ),
    );
    let p1_core = tb.inspect(
        "p1",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            tb.network("core")
        ),
    );
    check!(
        p1_a == tb.addr(1, 11) && p1_core == tb.addr(2, 11),
        "p1 has its own address on A ({p1_a}) and on core ({p1_core})"
    );
    let psx = tb.exec("p1", "kamcmd -s unix:/run/kamailio/kamailio_ctl core.psx");
    let receivers = text(&psx).matches("udp receiver").count();
    check!(
        receivers >= 8,
        "p1: {receivers} UDP worker processes (children=4 on each of its 2 sockets)"
    );

    // --- 1. the scenarios across the four hosts -----------------------------------------------
    println!("1. calls across uac -> p1 -> p2 -> uas");
    let run1 = tb.make_calls("calls", 3);
    let n = run1.rows.len();
    let uas = tb.start_uas(&run1, n, 90);
    let uac = tb.start_uac(&run1, "/usr/share/sipsd/sipp/uac.xml", n);
    let r = tb.finish(&run1, uac, uas);
    check!(
        r.uac.is_some_and(|s| s.success()) && r.successful == n,
        "SIPp caller: {}/{n} calls completed (INVITE, MESSAGE, re-INVITE with a rotated key, MESSAGE, BYE), exit {:?}",
        r.successful,
        r.uac
    );
    check!(
        r.uas.is_some_and(|s| s.success()),
        "SIPp callee: {n} calls answered, exit {:?}",
        r.uas
    );
    let uac_msgs = parse_trace(&run1.dir.join("uac-msgs.txt"));
    let uas_msgs = parse_trace(&run1.dir.join("uas-msgs.txt"));
    let p1 = parse_p1(&tb.logs("p1"));
    let p2_log = tb.logs("p2");
    for (i, row) in run1.rows.iter().enumerate() {
        let invite = one(&uac_msgs, "INVITE", |m| {
            m.sent && m.header("cseq") == "1 INVITE" && m.body_trimmed() == row.uac[0].as_bytes()
        });
        let call = invite.call_id().to_string();
        let is = |l: &[&P1Line], gen: &str, src: &str, media: Option<&str>| {
            l.iter().any(|l| {
                l.decrypted
                    && l.get("gen") == gen
                    && l.get("source") == src
                    && media.is_none_or(|m| l.get("media") == m)
            })
        };
        check!(
            is(
                &p1_lines(&p1, &call, "INVITE"),
                "1",
                "wrapped",
                Some(&row.offer)
            ),
            "call {i} ({call}): p1 read the offer with its own key (gen=1 source=wrapped media={})",
            row.offer
        );
        check!(
            is(
                &p1_lines(&p1, &call, "INVITE200"),
                "1",
                "cache",
                Some(&row.answer)
            ),
            "call {i}: p1 read the answer with the dialog key (media={})",
            row.answer
        );
        check!(
            is(&p1_lines(&p1, &call, "MESSAGE"), "1", "cache", None),
            "call {i}: p1 read the MESSAGE with the dialog key (gen=1)"
        );
        check!(
            is(
                &p1_lines(&p1, &call, "INVITE"),
                "2",
                "wrapped",
                Some(&row.rotated)
            ),
            "call {i}: p1 read the re-INVITE's rotated key (gen=2 source=wrapped media={})",
            row.rotated
        );
        check!(
            is(&p1_lines(&p1, &call, "MESSAGE"), "2", "cache", None),
            "call {i}: p1 read the MESSAGE under the rotated key (gen=2)"
        );
        // byte for byte: what the caller sent is what the callee got, both ways
        let pairs = [
            ("1 INVITE", 0usize),
            ("2 MESSAGE", 1),
            ("3 INVITE", 2),
            ("4 MESSAGE", 3),
        ];
        for (cseq, f) in pairs {
            let sent = one(&uac_msgs, cseq, |m| {
                m.sent && m.call_id() == call && m.header("cseq") == cseq
            });
            let got = one(&uas_msgs, cseq, |m| {
                !m.sent
                    && m.is_request()
                    && m.header("cseq") == cseq
                    && m.body_trimmed() == row.uac[f].as_bytes()
            });
            check!(
                sent.body == got.body && sent.body_trimmed() == row.uac[f].as_bytes(),
                "call {i}: {cseq} body reached the callee byte for byte ({} bytes)",
                got.body.len()
            );
            let p2_line = p2_log.lines().any(|l| {
                l.contains("untrusted: pid=")
                    && l.contains(&format!(
                        " {} call={call} body-bytes={}",
                        cseq.split(' ').nth(1).unwrap_or(""),
                        sent.body.len()
                    ))
            });
            check!(
                p2_line,
                "call {i}: p2 forwarded the {cseq} with its {}-byte ciphertext body (its log)",
                sent.body.len()
            );
        }
        for (cseq, f) in [("1 INVITE", 0usize), ("3 INVITE", 1)] {
            let ok_sent = one(&uas_msgs, "200", |m| {
                m.sent
                    && m.start.starts_with("SIP/2.0 200")
                    && m.header("cseq") == cseq
                    && m.body_trimmed() == row.uas[f].as_bytes()
            });
            let ok_got = one(&uac_msgs, "200", |m| {
                !m.sent
                    && m.call_id() == call
                    && m.start.starts_with("SIP/2.0 200")
                    && m.header("cseq") == cseq
            });
            check!(
                ok_sent.body == ok_got.body,
                "call {i}: the callee's 200 OK ({cseq}) body reached the caller byte for byte"
            );
        }
        // the callee opens what it got, in its own container with its own key
        let got = one(&uas_msgs, "INVITE", |m| {
            !m.sent && m.header("cseq") == "1 INVITE" && m.body_trimmed() == row.uac[0].as_bytes()
        });
        fs::write(
            run1.dir.join(format!("got-invite-{i}.b64")),
            got.body_trimmed(),
        )
        .expect("write");
        let o = tb.exec(
            "uas",
            &format!(
                "sipsd open --key /etc/sipsd/keys/callee.key:/etc/sipsd/keys/callee.crt --in /work/{}/got-invite-{i}.b64",
                run1.name
            ),
        );
        let (addr, port) = row.offer.split_once(':').unwrap_or(("", ""));
        let sdp = String::from_utf8_lossy(&o.stdout);
        check!(
            o.status.success() && sdp.contains(&format!("c=IN IP4 {addr}")) && sdp.contains(&format!("m=audio {port} ")),
            "call {i}: the callee (uas container, callee key) opens the offer it received: media {}",
            row.offer
        );
        // P2 cannot: the body is not for proxy2's key either
        let f = run1.dir.join(format!("got-invite-{i}.b64"));
        let o = output(
            Command::new(&cli)
                .arg("open")
                .arg("--key")
                .arg(format!(
                    "{}:{}",
                    keys.join("proxy2.key").display(),
                    keys.join("proxy2.crt").display()
                ))
                .arg("--in")
                .arg(&f),
        );
        check!(
            !o.status.success(),
            "call {i}: proxy2's key does not open the offer p2 forwarded ({})",
            text(&o).trim()
        );
    }
    check!(
        !p2_log.contains("decrypted")
            && tb
                .exec(
                    "p2",
                    "ls /usr/lib/x86_64-linux-gnu/kamailio/modules/sipsd.so"
                )
                .status
                .code()
                != Some(0),
        "p2 has no sipsd module and logged no decryption"
    );
    let mut all_rows = run1.rows.clone();

    // --- 2. restart p1 in the middle of a dialog --------------------------------------------
    println!("2. p1 restarted in the middle of a dialog");
    let run2 = tb.make_calls("restart", 1);
    let scen = tb.pause_scenario(&run2, 8000);
    let uas = tb.start_uas(&run2, 1, 90);
    let uac = tb.start_uac(&run2, &scen, 1);
    check!(
        wait_sent(&run2, "1 ACK", 1, Duration::from_secs(30)),
        "the call is set up (ACK sent), the caller pauses 8 s"
    );
    let o = output(Command::new("docker").args(["restart", "-t", "3", &tb.container("p1")]));
    check!(
        o.status.success(),
        "docker restart p1 (its shared-memory key cache is gone)"
    );
    tb.wait_ready(2);
    let r = tb.finish(&run2, uac, uas);
    check!(
        r.uac.is_some_and(|s| s.success()) && r.successful == 1,
        "the call completes across the restart (caller exit {:?}, callee exit {:?})",
        r.uac,
        r.uas
    );
    let call = one(
        &parse_trace(&run2.dir.join("uac-msgs.txt")),
        "INVITE",
        |m| m.sent && m.header("cseq") == "1 INVITE",
    )
    .call_id()
    .to_string();
    let p1 = parse_p1(&tb.logs("p1"));
    let msg = p1_lines(&p1, &call, "MESSAGE");
    check!(
        msg.first().is_some_and(|l| !l.decrypted),
        "after the restart p1 forwards the in-dialog MESSAGE without reading it: {}",
        msg.first()
            .map(|l| format!(
                "not-decrypted code={} error={}",
                l.get("code"),
                l.get("error")
            ))
            .unwrap_or_default()
    );
    let row = &run2.rows[0];
    check!(
        p1_lines(&p1, &call, "INVITE")
            .iter()
            .any(|l| l.decrypted && l.get("source") == "wrapped" && l.get("media") == row.rotated),
        "the UA recovers by rotating: p1 reads the re-INVITE's new wrapped key (media={})",
        row.rotated
    );
    check!(
        msg.iter()
            .skip(1)
            .any(|l| l.decrypted && l.get("source") == "cache"),
        "and the MESSAGE after it with the new dialog key"
    );
    all_rows.extend(run2.rows.iter().cloned());

    // --- 3. kill one Kamailio worker of p1 ----------------------------------------------------
    println!("3. one p1 worker killed with SIGKILL during calls");
    let restarts = tb.inspect("p1", "{{.RestartCount}}");
    let run3 = tb.make_calls("killworker", 6);
    let uas = tb.start_uas(&run3, 6, 120);
    let uac = tb.start_uac(&run3, "/usr/share/sipsd/sipp/uac.xml", 6);
    check!(
        wait_sent(&run3, "5 BYE", 1, Duration::from_secs(30)),
        "first call done, more in flight"
    );
    let psx = text(&tb.exec("p1", "kamcmd -s unix:/run/kamailio/kamailio_ctl core.psx"));
    let a_sock = format!("udp receiver child=1 sock={}:{SIP_PORT}", tb.addr(1, 11));
    let mut pid = None;
    let mut last_pid = None;
    for l in psx.lines() {
        if let Some(p) = l.trim().strip_prefix("PID:") {
            last_pid = p.trim().parse::<u32>().ok();
        }
        if l.contains(&a_sock) {
            pid = last_pid;
        }
    }
    let pid = pid.expect("the pid of a p1 UDP worker");
    let o = tb.exec("p1", &format!("kill -9 {pid}"));
    check!(o.status.success(), "kill -9 {pid} ({a_sock}) in p1");
    let r = tb.finish(&run3, uac, uas);
    let restarts2 = tb.inspect("p1", "{{.RestartCount}}");
    check!(
        restarts2 != restarts && tb.logs("p1").contains(&format!("child process {pid} exited by a signal 9")),
        "Kamailio's main process stopped p1 on the dead worker; the restart policy brought it back (restarts {restarts} -> {restarts2})"
    );
    check!(
        r.uac.is_some_and(|s| s.success()) && r.successful == 6 && r.failed == 0,
        "all 6 calls completed, SIPp retransmissions carried the ones in flight ({} ok, {} failed, caller exit {:?})",
        r.successful,
        r.failed,
        r.uac
    );
    all_rows.extend(run3.rows.iter().cloned());
    tb.wait_ready(3);

    // --- 4. cut p1 from the core network --------------------------------------------------------
    println!("4. p1 cut from the core network and reconnected");
    let core = tb.network("core");
    let p1c = tb.container("p1");
    let run4 = tb.make_calls("cut-idle", 1);
    let scen = tb.pause_scenario(&run4, 8000);
    let uas = tb.start_uas(&run4, 1, 90);
    let uac = tb.start_uac(&run4, &scen, 1);
    check!(
        wait_sent(&run4, "1 ACK", 1, Duration::from_secs(30)),
        "call set up, the caller pauses 8 s"
    );
    let o = output(Command::new("docker").args(["network", "disconnect", &core, &p1c]));
    check!(
        o.status.success(),
        "docker network disconnect {core} p1 {}",
        text(&o).trim()
    );
    std::thread::sleep(Duration::from_secs(3));
    let o = output(Command::new("docker").args([
        "network",
        "connect",
        "--ip",
        &tb.addr(2, 11),
        &core,
        &p1c,
    ]));
    check!(
        o.status.success(),
        "docker network connect --ip {} {core} p1 after 3 s {}",
        tb.addr(2, 11),
        text(&o).trim()
    );
    let r = tb.finish(&run4, uac, uas);
    check!(
        r.uac.is_some_and(|s| s.success()) && r.successful == 1,
        "the dialog idle during the cut completes (caller exit {:?})",
        r.uac
    );
    let call = one(
        &parse_trace(&run4.dir.join("uac-msgs.txt")),
        "INVITE",
        |m| m.sent && m.header("cseq") == "1 INVITE",
    )
    .call_id()
    .to_string();
    let p1 = parse_p1(&tb.logs("p1"));
    check!(
        p1_lines(&p1, &call, "MESSAGE")
            .first()
            .is_some_and(|l| l.decrypted && l.get("source") == "cache"),
        "p1 kept its dialog key through the cut: the MESSAGE after it is read from the cache"
    );
    all_rows.extend(run4.rows.iter().cloned());

    let run5 = tb.make_calls("cut-busy", 10);
    let uas = tb.start_uas(&run5, 10, 40);
    let uac = tb.start_uac(&run5, "/usr/share/sipsd/sipp/uac.xml", 10);
    check!(
        wait_sent(&run5, "5 BYE", 1, Duration::from_secs(30)),
        "first call done, more in flight"
    );
    let o = output(Command::new("docker").args(["network", "disconnect", &core, &p1c]));
    check!(
        o.status.success(),
        "docker network disconnect {core} p1 while calls run"
    );
    std::thread::sleep(Duration::from_secs(3));
    let o = output(Command::new("docker").args([
        "network",
        "connect",
        "--ip",
        &tb.addr(2, 11),
        &core,
        &p1c,
    ]));
    check!(o.status.success(), "reconnected after 3 s");
    let t_cut = Instant::now();
    let mut uac = uac;
    let st = wait_deadline(&mut uac, Duration::from_secs(150));
    tb.stop_uas(&run5);
    let r = tb.finish(&run5, uac, uas);
    let errors = fs::read_to_string(run5.dir.join("uac-errors.txt")).unwrap_or_default();
    let clean = errors.contains("477") || errors.contains("408") || r.failed == 0;
    check!(
        st.is_some() && r.successful + r.failed == 10 && clean,
        "no call hangs: {} completed, {} failed cleanly (p1 answers 477 while it has no route to p2), SIPp done {:.1} s after the reconnect",
        r.successful,
        r.failed,
        t_cut.elapsed().as_secs_f32()
    );
    let run6 = tb.make_calls("after-cut", 3);
    let uas = tb.start_uas(&run6, 3, 60);
    let uac = tb.start_uac(&run6, "/usr/share/sipsd/sipp/uac.xml", 3);
    let r = tb.finish(&run6, uac, uas);
    check!(
        r.uac.is_some_and(|s| s.success()) && r.successful == 3,
        "after the reconnect new calls complete (3/3)"
    );
    all_rows.extend(run5.rows.iter().cloned());
    all_rows.extend(run6.rows.iter().cloned());

    // --- 5. the wire ----------------------------------------------------------------------------
    println!("5. the core network capture (tcpdump in p2's network namespace)");
    std::thread::sleep(Duration::from_secs(1));
    let raw = fs::read(work.join("core.pcap")).expect("core.pcap");
    let grams = pcap_datagrams(&raw);
    let (c1, c2) = (ip4(&tb.addr(2, 11)), ip4(&tb.addr(2, 12)));
    let between = grams
        .iter()
        .filter(|g| (g.src == c1 && g.dst == c2) || (g.src == c2 && g.dst == c1))
        .count();
    check!(
        between > 50,
        "{} UDP datagrams captured on core, {between} between p1 and p2",
        grams.len()
    );
    for (i, row) in run1.rows.iter().enumerate() {
        for (f, what) in [
            (0usize, "offer"),
            (1, "MESSAGE"),
            (2, "rotated offer"),
            (3, "MESSAGE"),
        ] {
            let present = grams.iter().any(|g| {
                g.src == c1 && g.dst == c2 && find(&g.payload, row.uac[f].as_bytes()).is_some()
            });
            check!(
                present,
                "call {i}: the encrypted {what} body crossed core from p1 to p2"
            );
        }
        for (f, what) in [(0usize, "answer"), (1, "answer after rotation")] {
            let present = grams.iter().any(|g| {
                g.src == c2 && g.dst == c1 && find(&g.payload, row.uas[f].as_bytes()).is_some()
            });
            check!(
                present,
                "call {i}: the encrypted {what} crossed core from p2 to p1"
            );
        }
    }
    let needles = plaintext_needles(&cli, &keys, &work, &all_rows);
    let hits = find_plaintext(&raw, &grams, &needles);
    check!(
        hits.is_empty(),
        "no plaintext SDP on core in any phase: {} needles (v=0, media addresses, a=crypto keys of {} calls) not found {:?}",
        needles.len(),
        all_rows.len(),
        hits.iter().take(5).collect::<Vec<_>>()
    );

    // --- 6. the detector catches a proxy that forwards plaintext ---------------------------------
    println!("6. p1 with -A WITH_REPLACE_BODY (sd_replace_body): the detector must find plaintext");
    for (k, v) in tb.env.iter_mut() {
        if k == "SIPSD_DEFINES" {
            *v = "WITH_REPLACE_BODY".into();
        }
    }
    let o = tb.compose(&["up", "-d", "--no-deps", "p1"]);
    check!(
        o.status.success(),
        "p1 recreated with SIPSD_DEFINES=WITH_REPLACE_BODY {}",
        if o.status.success() {
            String::new()
        } else {
            text(&o)
        }
    );
    tb.wait_ready(1);
    check!(
        tb.logs("p1").contains("-A WITH_REPLACE_BODY"),
        "p1 runs cfg-examples/trusted-proxy.cfg with -A WITH_REPLACE_BODY"
    );
    let run7 = tb.make_calls("replace-body", 1);
    let uas = tb.start_uas(&run7, 1, 60);
    let uac = tb.start_uac(&run7, "/usr/share/sipsd/sipp/uac.xml", 1);
    let r = tb.finish(&run7, uac, uas);
    println!(
        "     (the plaintext call: caller exit {:?}, {} ok)",
        r.uac, r.successful
    );
    std::thread::sleep(Duration::from_secs(1));
    let raw2 = fs::read(work.join("core.pcap")).expect("core.pcap");
    let grams2 = pcap_datagrams(&raw2);
    let needles7 = plaintext_needles(&cli, &keys, &work, &run7.rows);
    let hits = find_plaintext(&raw2, &grams2, &needles7);
    let key_found = hits.iter().any(|h| h.starts_with("an a=crypto inline key"));
    check!(
        hits.iter().any(|h| h.starts_with("\"v=0\\r\\n\"")) && key_found,
        "the detector FINDS the plaintext when p1 forwards it: {} hits of {:?}",
        hits.len(),
        hits.iter()
            .filter_map(|h| h.split(" in ").next())
            .collect::<std::collections::BTreeSet<_>>()
    );

    // --- teardown -------------------------------------------------------------------------------
    tb.down();
    let left = output(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", tb.project),
    ]));
    let nets = output(Command::new("docker").args([
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", tb.project),
    ]));
    check!(
        left.stdout.trim_ascii().is_empty() && nets.stdout.trim_ascii().is_empty(),
        "compose down removed every container and network of {}",
        tb.project
    );
    println!("Docker testbed done in {:.0} s", t0.elapsed().as_secs_f32());
}
