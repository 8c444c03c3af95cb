//! Calls made by `sipsd sipp-calls` and placed through the loopback topology
//!
//! ```text
//!   SIPp caller (tests/sipp/uac.xml) -> P1 (trusted, sipsd) -> P2 (untrusted) -> SIPp callee (uas.xml)
//! ```
//!
//! [`read_rows`] reads the injection files (one line per call: the caller's bodies, the
//! callee's, the expected media); [`run`] places the calls one at a time and returns the SIPp
//! traces and both proxies' logs as an [`Outcome`], whose methods hold the checks several
//! scenarios share.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::kamailio::{next_hop, P1, P2};
use super::p1log::{P1Line, P2Line};
use super::ports::{free_ports, wait_bound, ADDR};
use super::procs::Proc;
use super::sip::SipMsg;
use super::sipp::{of_call, one, parse_trace, sent_and_received};
use super::tools::Tools;

/// One line of the injection files and of expected.csv.
#[derive(Debug, Clone)]
pub struct Row {
    /// INVITE, MESSAGE, re-INVITE, MESSAGE bodies (base64, one line)
    pub uac: Vec<String>,
    /// 200 OK bodies: answer, answer after rotation
    pub uas: Vec<String>,
    /// media `ADDR:PORT` of the offer, the answer, the rotated offer
    pub offer: String,
    pub answer: String,
    pub rotated: String,
}

/// The lines of a `;`-separated file after its first (SEQUENTIAL / header) line.
pub fn csv(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

/// uac.csv, uas.csv and expected.csv of a `sipsd sipp-calls --out-dir DIR`.
pub fn read_rows(dir: &Path) -> Vec<Row> {
    let (uac, uas, exp) = (
        csv(&dir.join("uac.csv")),
        csv(&dir.join("uas.csv")),
        csv(&dir.join("expected.csv")),
    );
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

/// A field as SIPp sends it: the base64 line plus the CRLF that ends the message.
pub fn crlf(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    v
}

/// `ADDR:PORT` of an SDP's first `c=IN IP4` and `m=audio` lines.
pub fn media_of(sdp: &str) -> Option<String> {
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

/// What a run places.
pub struct Options {
    pub calls: usize,
    /// proxy1 is a recipient (`--proxy-cert`)
    pub proxy_cert: bool,
    /// the bodies are truncated DER (`--corrupt`)
    pub corrupt: bool,
}

pub struct Outcome {
    pub work: PathBuf,
    pub rows: Vec<Row>,
    /// Call-ID -> index in rows, from the INVITEs the caller sent
    pub calls: BTreeMap<String, usize>,
    pub uac: Vec<SipMsg>,
    pub uas: Vec<SipMsg>,
    pub p1: Vec<P1Line>,
    pub p1_log: String,
    pub p2: Vec<P2Line>,
    pub p2_log: String,
}

/// `opts.calls` calls, one at a time (the callee's answer line must match the caller's line),
/// through P1 and P2 started in `dir`; checks that every call completed and that no Kamailio
/// process died or was replaced.
pub fn run(t: &Tools, dir: &Path, opts: &Options) -> Outcome {
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
    let o = t.sipsd(&args);
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

    // 2. the proxies and the callee
    let ports = free_ports(2);
    let (uas_port, uac_port) = (ports[0], ports[1]);
    let mut p2 = P2::start(t, dir, &[("NEXT_HOP", Some(&next_hop(uas_port)))]);
    let mut p1 = P1::start(t, dir, &[("NEXT_HOP", Some(&next_hop(p2.port)))]);
    println!(
        "  ports on {ADDR}: P1 trusted {}, P2 untrusted {}, callee {uas_port}, caller {uac_port}",
        p1.port, p2.port
    );
    let sipp = |role: &str, port: u16, extra: &[&str]| {
        let mut c = Command::new(&t.sipp);
        c.args(extra)
            .arg("-sf")
            .arg(t.root.join(format!("tests/sipp/{role}.xml")))
            .args(["-inf", &format!("calls/{role}.csv"), "-i", ADDR])
            .args([
                "-p",
                &port.to_string(),
                "-m",
                &n,
                "-nostdin",
                "-timeout",
                "90s",
            ])
            .args(["-trace_msg", "-message_file", &format!("{role}-msgs.txt")])
            .args(["-trace_err", "-error_file", &format!("{role}-errors.txt")]);
        c
    };
    let mut uas = Proc::spawn("sipp-uas", dir, &mut sipp("uas", uas_port, &[]));
    wait_bound(&mut uas, uas_port);
    println!(
        "  P1 kamailio main {}, {} child processes; P2 main {}, {} child processes",
        p1.pid(),
        p1.workers.len(),
        p2.pid(),
        p2.workers.len()
    );

    // 3. the calls, one at a time
    let p1_uri = format!("{ADDR}:{}", p1.port);
    let mut uac = Proc::spawn(
        "sipp-uac",
        dir,
        sipp("uac", uac_port, &[&p1_uri]).args([
            "-r",
            "2",
            "-l",
            "1",
            "-timeout_error",
            "-recv_timeout",
            "10s",
        ]),
    );
    let st = uac.wait(Duration::from_secs(120));
    check!(
        st.is_some_and(|s| s.success()),
        "SIPp caller: all {n} calls completed (INVITE/200/ACK, MESSAGE/200, re-INVITE/200/ACK, MESSAGE/200, BYE/200), exit {st:?}"
    );
    let st = uas.wait(Duration::from_secs(30));
    check!(
        st.is_some_and(|s| s.success()),
        "SIPp callee: all {n} calls answered, exit {st:?}"
    );

    // 4. every Kamailio process survived
    std::thread::sleep(Duration::from_millis(300));
    for (name, k) in [("P1", &mut p1), ("P2", &mut p2)] {
        let alive = k.alive();
        let now = k.children();
        check!(
            alive && now == k.workers && !k.workers.is_empty(),
            "{name}: main process {} and all {} children still alive, none replaced (children {:?})",
            k.pid(),
            k.workers.len(),
            now
        );
    }
    p1.stop();
    p2.stop();

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
    Outcome {
        work: dir.to_path_buf(),
        rows,
        calls,
        uac: uac_msgs,
        uas: uas_msgs,
        p1: p1.log_lines(),
        p1_log: p1.log_text(),
        p2: p2.p2_lines(),
        p2_log: p2.log_text(),
    }
}

impl Outcome {
    pub fn msgs_of(&self, side: &[SipMsg], call: &str) -> Vec<SipMsg> {
        of_call(side, call)
    }

    pub fn p1_of(&self, call: &str) -> Vec<&P1Line> {
        self.p1.iter().filter(|l| l.call == call).collect()
    }

    /// Writes a message to `work/NAME`; returns the path.
    pub fn save(&self, name: &str, m: &SipMsg) -> String {
        let p = self.work.join(name);
        let mut f = fs::File::create(&p).expect("create capture file");
        f.write_all(&m.raw).expect("write capture file");
        p.display().to_string()
    }

    /// The callee received exactly the caller's bodies and the caller exactly the callee's.
    pub fn check_bodies_unchanged(&self) {
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
                let (s, g) = sent_and_received(
                    sender,
                    receiver,
                    &format!("{what} of {call}"),
                    cseq,
                    request,
                );
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
    pub fn check_p1_never_decrypted(&self) -> Vec<&P1Line> {
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

    /// The first INVITE the callee received (as P2 forwarded it), saved as `NAME`.
    pub fn captured_invite(&self, name: &str) -> String {
        let (call, _) = self.calls.iter().next().expect("a call");
        let at_uas = self.msgs_of(&self.uas, call);
        let inv = one(&at_uas, "INVITE at the callee", |m| {
            !m.sent && m.cseq() == "1 INVITE"
        });
        self.save(name, inv)
    }
}
