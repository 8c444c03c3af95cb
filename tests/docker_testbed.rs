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
//! The compose project and SIPp runs are in tests/testbed/mod.rs, the capture parser and the
//! plaintext detector in tests/support/pcap.rs.
//!
//! Needs a Docker engine, docker-compose (or `docker compose`), the base image (built by
//! docker/build-base when missing, about 2 minutes), build/sipsd.so (`make`). Without a Docker
//! engine the test prints "SKIPPED: no docker" and passes, unless SIPSD_REQUIRE_DOCKER=1.
//! Run: `cargo test --test docker_testbed -- --nocapture`.

#[macro_use]
mod support;
mod testbed;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::calls::Row;
use support::p1log::{lines_of, parse_p1, parse_p2, P1Line};
use support::pcap::{find_plaintext, ip4, pcap_datagrams};
use support::procs::wait_or_kill;
use support::sip::find;
use support::sipp::{first, parse_trace};
use support::vectors;
use testbed::{first_call_id, output, plaintext_needles, text, wait_sent, Run, Testbed, SIP_PORT};

/// 1. calls across the four hosts.
fn calls_across_hosts(tb: &Testbed, cli: &Path, keys: &Path) -> Run {
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
    let p2_lines = parse_p2(&p2_log);
    for (i, row) in run1.rows.iter().enumerate() {
        let invite = first(&uac_msgs, "INVITE", |m| {
            m.sent && m.cseq() == "1 INVITE" && m.body_trimmed() == row.uac[0].as_bytes()
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
                &lines_of(&p1, &call, "INVITE"),
                "1",
                "wrapped",
                Some(&row.offer)
            ),
            "call {i} ({call}): p1 read the offer with its own key (gen=1 source=wrapped media={})",
            row.offer
        );
        check!(
            is(
                &lines_of(&p1, &call, "INVITE200"),
                "1",
                "cache",
                Some(&row.answer)
            ),
            "call {i}: p1 read the answer with the dialog key (media={})",
            row.answer
        );
        check!(
            is(&lines_of(&p1, &call, "MESSAGE"), "1", "cache", None),
            "call {i}: p1 read the MESSAGE with the dialog key (gen=1)"
        );
        check!(
            is(
                &lines_of(&p1, &call, "INVITE"),
                "2",
                "wrapped",
                Some(&row.rotated)
            ),
            "call {i}: p1 read the re-INVITE's rotated key (gen=2 source=wrapped media={})",
            row.rotated
        );
        check!(
            is(&lines_of(&p1, &call, "MESSAGE"), "2", "cache", None),
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
            let sent = first(&uac_msgs, cseq, |m| {
                m.sent && m.call_id() == call && m.cseq() == cseq
            });
            let got = first(&uas_msgs, cseq, |m| {
                !m.sent
                    && m.is_request()
                    && m.cseq() == cseq
                    && m.body_trimmed() == row.uac[f].as_bytes()
            });
            check!(
                sent.body == got.body && sent.body_trimmed() == row.uac[f].as_bytes(),
                "call {i}: {cseq} body reached the callee byte for byte ({} bytes)",
                got.body.len()
            );
            let method = cseq.split(' ').nth(1).unwrap_or("");
            let p2_line = p2_lines
                .iter()
                .any(|l| l.method == method && l.call == call && l.body_bytes == sent.body.len());
            check!(
                p2_line,
                "call {i}: p2 forwarded the {cseq} with its {}-byte ciphertext body (its log)",
                sent.body.len()
            );
        }
        for (cseq, f) in [("1 INVITE", 0usize), ("3 INVITE", 1)] {
            let ok_sent = first(&uas_msgs, "200", |m| {
                m.sent
                    && m.start.starts_with("SIP/2.0 200")
                    && m.cseq() == cseq
                    && m.body_trimmed() == row.uas[f].as_bytes()
            });
            let ok_got = first(&uac_msgs, "200", |m| {
                !m.sent
                    && m.call_id() == call
                    && m.start.starts_with("SIP/2.0 200")
                    && m.cseq() == cseq
            });
            check!(
                ok_sent.body == ok_got.body,
                "call {i}: the callee's 200 OK ({cseq}) body reached the caller byte for byte"
            );
        }
        // the callee opens what it got, in its own container with its own key
        let got = first(&uas_msgs, "INVITE", |m| {
            !m.sent && m.cseq() == "1 INVITE" && m.body_trimmed() == row.uac[0].as_bytes()
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
            Command::new(cli)
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
    run1
}

/// 2. P1 restarted in the middle of a dialog.
fn restart_mid_dialog(tb: &Testbed) -> Run {
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
    let call = first_call_id(&run2);
    let p1 = parse_p1(&tb.logs("p1"));
    let msg = lines_of(&p1, &call, "MESSAGE");
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
        lines_of(&p1, &call, "INVITE")
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
    run2
}

/// 3. one Kamailio worker of P1 killed.
fn kill_a_worker(tb: &Testbed) -> Run {
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
    tb.wait_ready(3);
    run3
}

/// P1 (container `p1c`) cut from the network `core` for 3 s, then connected again with its
/// address: the outputs of `docker network disconnect` and `connect`.
fn cut_and_reconnect(tb: &Testbed, core: &str, p1c: &str) -> (Output, Output) {
    let cut = output(Command::new("docker").args(["network", "disconnect", core, p1c]));
    std::thread::sleep(Duration::from_secs(3));
    let back = output(Command::new("docker").args([
        "network",
        "connect",
        "--ip",
        &tb.addr(2, 11),
        core,
        p1c,
    ]));
    (cut, back)
}

/// 4. P1 cut from the core network, with a dialog idle and with calls running.
fn cut_from_core(tb: &Testbed) -> Vec<Row> {
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
    let (o, back) = cut_and_reconnect(tb, &core, &p1c);
    check!(
        o.status.success(),
        "docker network disconnect {core} p1 {}",
        text(&o).trim()
    );
    let o = back;
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
    let call = first_call_id(&run4);
    let p1 = parse_p1(&tb.logs("p1"));
    check!(
        lines_of(&p1, &call, "MESSAGE")
            .first()
            .is_some_and(|l| l.decrypted && l.get("source") == "cache"),
        "p1 kept its dialog key through the cut: the MESSAGE after it is read from the cache"
    );

    let run5 = tb.make_calls("cut-busy", 10);
    let uas = tb.start_uas(&run5, 10, 40);
    let uac = tb.start_uac(&run5, "/usr/share/sipsd/sipp/uac.xml", 10);
    check!(
        wait_sent(&run5, "5 BYE", 1, Duration::from_secs(30)),
        "first call done, more in flight"
    );
    let (o, back) = cut_and_reconnect(tb, &core, &p1c);
    check!(
        o.status.success(),
        "docker network disconnect {core} p1 while calls run"
    );
    let o = back;
    check!(o.status.success(), "reconnected after 3 s");
    let t_cut = Instant::now();
    let mut uac = uac;
    let st = wait_or_kill(&mut uac, Duration::from_secs(150));
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
    [run4, run5, run6]
        .into_iter()
        .flat_map(|r| r.rows)
        .collect()
}

/// 5. the core capture: the encrypted bodies crossed it, no plaintext ever did.
fn the_wire(tb: &Testbed, cli: &Path, keys: &Path, run1: &Run, all_rows: &[Row]) {
    println!("5. the core network capture (tcpdump in p2's network namespace)");
    std::thread::sleep(Duration::from_secs(1));
    let raw = fs::read(tb.work.join("core.pcap")).expect("core.pcap");
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
    let needles = plaintext_needles(cli, keys, &tb.work, all_rows);
    let hits = find_plaintext(&raw, &grams, &needles);
    check!(
        hits.is_empty(),
        "no plaintext SDP on core in any phase: {} needles (v=0, media addresses, a=crypto keys of {} calls) not found {:?}",
        needles.len(),
        all_rows.len(),
        hits.iter().take(5).collect::<Vec<_>>()
    );
}

/// 6. the detector finds plaintext when P1 forwards it (sd_replace_body).
fn detector_finds_plaintext(tb: &mut Testbed, cli: &Path, keys: &Path) {
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
    let raw2 = fs::read(tb.work.join("core.pcap")).expect("core.pcap");
    let grams2 = pcap_datagrams(&raw2);
    let needles7 = plaintext_needles(cli, keys, &tb.work, &run7.rows);
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
}

#[test]
fn docker_topology() {
    let t0 = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_sipsd"));
    let keys = vectors::keys();
    let Some(mut tb) = testbed::up(&root, &cli, &keys) else {
        return;
    };
    let run1 = calls_across_hosts(&tb, &cli, &keys);
    let mut all_rows = run1.rows.clone();
    all_rows.extend(restart_mid_dialog(&tb).rows);
    all_rows.extend(kill_a_worker(&tb).rows);
    all_rows.extend(cut_from_core(&tb));
    the_wire(&tb, &cli, &keys, &run1, &all_rows);
    detector_finds_plaintext(&mut tb, &cli, &keys);

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
