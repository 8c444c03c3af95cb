//! Two trusted proxies of one cluster in the Docker testbed (docker/compose.yml +
//! docker/compose.cluster.yml), failing over the way operators do it:
//!
//! ```text
//!   uac -- A --> lb (dispatcher, failover) --> p1a | p1b -- core --> p2 -- B --> uas
//!                              p1a <-- cluster network, DMQ --> p1b   (tapc captures it)
//! ```
//!
//! One test, `docker_cluster`, on one topology, printing every check:
//!
//! 1. **SIGKILL**: calls A and B set up through p1a (lb's first node by priority), their keys
//!    replicated to p1b; p1a's container killed (`docker kill -s KILL`) after the 200 OK and
//!    ACK; the MESSAGE, the re-INVITE rotating the key and the MESSAGE after it reach p1b
//!    through lb's failover, and p1b reads them from the replicated key (its log:
//!    `source=replica`, then the rotation gen 2); call A ends (BYE) while p1a is down;
//! 2. **rejoin**: p1a started again asks for a sync and gets B's key as rotated on p1b (gen 2),
//!    not A's (that dialog ended while it was down); lb sends B's next MESSAGE to p1a again,
//!    which reads it with the synced key; B's BYE ends the key on both nodes;
//! 3. **replayed and forged**: replication messages p1a sent, captured on the cluster network,
//!    sent again to p1b byte for byte: the one just sent (its counter was seen) and the first
//!    of the run (sent outside `cluster_max_skew`) refused as replays; the fresh one with one
//!    byte of its GCM tag flipped refused as not sealed for the cluster; all counted, nothing
//!    applied;
//! 4. **`docker stop`**: call C set up through p1a, p1a stopped (SIGTERM), C completes through
//!    p1b with the replicated key;
//! 5. **the wire**: the capture of the cluster network holds the sealed replication messages
//!    (CMS AuthEnvelopedData with a KEKRecipientInfo for the cluster key, as `sipsd inspect`
//!    reads them) and none of the calls' dialog keys (raw, hex, base64) nor their SDP.
//!
//! Needs what tests/docker_testbed.rs needs. Run:
//! `cargo test --test docker_cluster -- --nocapture`.

#[macro_use]
mod support;
mod testbed;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;

use support::p1log::{lines_of, parse_p1, P1Line};
use support::pcap::{find_plaintext, ip4, pcap_datagrams, Datagram};
use support::procs::{wait_for, wait_or_kill};
use support::sip::find;
use support::sipp::parse_trace;
use support::vectors;
use testbed::{field, open_on_host, output, plaintext_needles, text, Run, Testbed, SIP_PORT};

/// The vectors' keys plus a fresh cluster key, in a directory of this run (mounted read-only).
struct Keys(PathBuf);

impl Keys {
    fn new(from: &Path) -> Keys {
        let dir = std::env::temp_dir().join(format!("sipsd-cluster-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("keys dir");
        for e in fs::read_dir(from).expect("vector keys").flatten() {
            if e.path().is_file() {
                fs::copy(e.path(), dir.join(e.file_name())).expect("copy key");
            }
        }
        let mut key = [0u8; 32];
        getrandom_fill(&mut key);
        fs::write(dir.join("cluster.key"), sipsd::hex::encode(&key)).expect("cluster.key");
        fs::set_permissions(dir.join("cluster.key"), fs::Permissions::from_mode(0o600))
            .expect("chmod");
        Keys(dir)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    let mut f = fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, buf).expect("random bytes");
}

/// The log of a service since its `start`-th start (1 = the first).
fn log_since_start(tb: &Testbed, service: &str, start: usize) -> String {
    let log = tb.logs(service);
    let marks: Vec<usize> = log
        .match_indices("ready (dialog callbacks")
        .map(|(i, _)| i)
        .collect();
    match marks.get(start - 1) {
        Some(&i) => log[i..].to_string(),
        None => String::new(),
    }
}

/// The caller of one call: `scenario` (waits after the ACKs, [`go`]), its own csv line and
/// port, through lb.
fn start_caller(tb: &Testbed, run: &Run, who: &str, scenario: &str, port: u16) -> Child {
    let cmd = format!(
        "cd /work/{n} && exec sipp {lb}:{SIP_PORT} -sf {scenario} -inf uac-{who}.csv -i {ip} \
         -p {port} -m 1 -nostdin -timeout 120s -timeout_error -recv_timeout 30s \
         -trace_msg -message_file uac-{who}-msgs.txt -trace_err -error_file uac-{who}-errors.txt \
         >uac-{who}.out 2>&1",
        n = run.name,
        lb = tb.addr(1, 20),
        ip = tb.addr(1, 10)
    );
    tb.spawn_exec("uac", &cmd)
}

/// uac.xml where the caller, after the ACKs marked in `wait`, waits for the test's go (a
/// NOTIFY in its dialog, [`go`]) instead of 100 ms: the test kills or starts p1a meanwhile,
/// however long that takes on a loaded machine.
fn scenario(tb: &Testbed, run: &Run, who: &str, wait: [bool; 2]) -> String {
    let mut xml = fs::read_to_string(tb.root.join("tests/sipp/uac.xml")).expect("uac.xml");
    let marker = "<pause milliseconds=\"100\"/>";
    assert_eq!(
        xml.matches(marker).count(),
        2,
        "uac.xml: two pauses after the ACKs"
    );
    let hold = "<recv request=\"NOTIFY\" timeout=\"150000\"/>\n  <send>\n    <![CDATA[\n\n      \
                SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n      \
                [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n  \
                <pause milliseconds=\"100\" />";
    for w in wait {
        xml = xml.replacen(
            marker,
            if w {
                hold
            } else {
                "<pause milliseconds=\"100\" />"
            },
            1,
        );
    }
    fs::write(run.dir.join(format!("uac-{who}.xml")), xml).expect("write scenario");
    format!("/work/{}/uac-{who}.xml", run.name)
}

/// Lets caller `who` (SIPp on uac's `port`) go on past its `n`-th wait: a NOTIFY with its
/// Call-ID, sent from inside the uac container.
fn go(tb: &Testbed, run: &Run, who: &str, port: u16, n: u32) {
    let ip = tb.addr(1, 10);
    let msg = format!(
        "NOTIFY sip:caller@{ip}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ip}:9;branch=z9hG4bK-go-{who}-{n}\r\n\
         From: <sip:test@{ip}>;tag=go-{who}\r\n\
         To: <sip:caller@{ip}>\r\n\
         Call-ID: {}\r\n\
         CSeq: {n} NOTIFY\r\n\
         Event: sipsd-test\r\n\
         Content-Length: 0\r\n\r\n",
        call_id(run, who)
    );
    let file = format!("go-{who}-{n}.sip");
    fs::write(run.dir.join(&file), msg).expect("write the go");
    let o = tb.exec(
        "uac",
        &format!(
            "bash -c 'cat /work/{}/{file} > /dev/udp/{ip}/{port}'",
            run.name
        ),
    );
    assert!(o.status.success(), "send the go to {who}: {}", text(&o));
}

/// Writes uac-WHO.csv: line `i` of the run's uac.csv alone.
fn csv_for(run: &Run, who: &str, i: usize) {
    let all = fs::read_to_string(run.dir.join("uac.csv")).expect("uac.csv");
    let mut lines = all.lines();
    let head = lines.next().unwrap_or("SEQUENTIAL");
    let line = lines
        .filter(|l| !l.trim().is_empty())
        .nth(i)
        .expect("a line per call");
    fs::write(
        run.dir.join(format!("uac-{who}.csv")),
        format!("{head}\n{line}\n"),
    )
    .expect("write csv");
}

fn sent(run: &Run, who: &str, cseq: &str) -> bool {
    parse_trace(&run.dir.join(format!("uac-{who}-msgs.txt")))
        .iter()
        .any(|m| m.sent && m.cseq() == cseq)
}

fn call_id(run: &Run, who: &str) -> String {
    parse_trace(&run.dir.join(format!("uac-{who}-msgs.txt")))
        .iter()
        .find(|m| m.sent && m.cseq() == "1 INVITE")
        .map(|m| m.call_id().to_string())
        .unwrap_or_else(|| panic!("FAILED: call {who} sent no INVITE"))
}

fn finished(run: &Run, who: &str, child: &mut Child) -> bool {
    let st = wait_or_kill(child, Duration::from_secs(90));
    let out = fs::read_to_string(run.dir.join(format!("uac-{who}.out"))).unwrap_or_default();
    let ok = out
        .lines()
        .filter(|l| l.trim_start().starts_with("Successful call"))
        .filter_map(|l| l.split('|').nth(2))
        .filter_map(|c| c.trim().parse::<u32>().ok())
        .next_back()
        == Some(1);
    st.is_some_and(|s| s.success()) && ok
}

fn is(l: &[&P1Line], gen: &str, src: &str) -> bool {
    l.iter()
        .any(|l| l.decrypted && l.get("gen") == gen && l.get("source") == src)
}

/// The dispatcher's view of node `addr`: its flags (`AP` active, `IP`/`IX` inactive...).
fn lb_flags(tb: &Testbed, addr: &str) -> String {
    let list = tb.rpc("lb", "dispatcher.list");
    let mut flags = String::new();
    let mut seen = false;
    for l in list.lines() {
        let l = l.trim();
        if l.starts_with("URI:") {
            seen = l.contains(addr);
        } else if seen && l.starts_with("FLAGS:") {
            flags = l.trim_start_matches("FLAGS:").trim().to_string();
            seen = false;
        }
    }
    flags
}

fn docker(args: &[&str]) -> std::process::Output {
    output(Command::new("docker").args(args))
}

/// The sipsd replication messages in a capture (KDMQ to the peer `sipsd`), from `src` to `dst`.
fn replication(grams: &[Datagram], src: [u8; 4], dst: [u8; 4]) -> Vec<&Datagram> {
    grams
        .iter()
        .filter(|g| g.src == src && g.dst == dst && g.payload.starts_with(b"KDMQ sip:sipsd@"))
        .collect()
}

fn body_of(payload: &[u8]) -> &[u8] {
    find(payload, b"\r\n\r\n").map_or(&[][..], |i| &payload[i + 4..])
}

#[test]
fn docker_cluster() {
    let t0 = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_sipsd"));
    let vkeys = vectors::keys();
    let keys = Keys::new(&vkeys);
    let Some(mut tb) = testbed::create(&root, &cli, &keys.0, &["docker/compose.cluster.yml"])
    else {
        return;
    };
    tb.start_services(
        "compose.yml + compose.cluster.yml",
        &["uac", "lb", "p1a", "p1b", "p2", "uas", "tapc"],
    );
    let (a, b) = (tb.addr(1, 21), tb.addr(1, 22));
    let p1a_id = tb.container("p1a");
    let ready = wait_for(Duration::from_secs(60), || {
        ["p1a", "p1b"].iter().all(|s| {
            let l = tb.logs(s);
            l.contains("ready (dialog callbacks") && l.contains("cluster replication over DMQ")
        }) && tb.logs("lb").contains("io_listen_loop")
            && tb.logs("tapc").contains("listening on")
    });
    check!(
        ready,
        "p1a and p1b (sipsd + DMQ), lb (dispatcher) and the cluster capture are up"
    );
    let joined = wait_for(Duration::from_secs(30), || {
        ["p1a", "p1b"].iter().all(|s| {
            let c = tb.rpc(s, "sipsd.cluster");
            field(&c, "peers") == Some(1) && field(&c, "last_sync").is_some_and(|t| t > 0)
        })
    });
    check!(
        joined,
        "p1a and p1b found each other over DMQ and synced (sipsd.cluster: 1 peer each)"
    );
    let active = wait_for(Duration::from_secs(20), || {
        lb_flags(&tb, &a).starts_with('A') && lb_flags(&tb, &b).starts_with('A')
    });
    check!(
        active,
        "lb probes both nodes and has them active (dispatcher.list: {a} {}, {b} {}; A = active, P = probed)",
        lb_flags(&tb, &a),
        lb_flags(&tb, &b)
    );

    // ---- 1. SIGKILL -------------------------------------------------------------------------
    println!("1. calls A and B through p1a; p1a SIGKILLed after the 200 OK; p1b takes over");
    let run = tb.make_calls("failover", 3);
    for (i, who) in ["a", "b", "c"].iter().enumerate() {
        csv_for(&run, who, i);
    }
    let uas = tb.start_uas(&run, 3, 170);
    // both wait after their first ACK (p1a is killed meanwhile); B waits again after the
    // re-INVITE's ACK (p1a comes back meanwhile). B starts once A's INVITE is out, so the
    // callee answers them in that order (uas.csv is sequential).
    let sc_a = scenario(&tb, &run, "a", [true, false]);
    let sc_b = scenario(&tb, &run, "b", [true, true]);
    let mut uac_a = start_caller(&tb, &run, "a", &sc_a, 5061);
    check!(
        wait_for(Duration::from_secs(15), || sent(&run, "a", "1 INVITE")),
        "call A: INVITE sent to lb"
    );
    let mut uac_b = start_caller(&tb, &run, "b", &sc_b, 5062);
    check!(
        wait_for(Duration::from_secs(15), || sent(&run, "a", "1 ACK")),
        "call A: INVITE, 200 OK, ACK"
    );
    check!(
        wait_for(Duration::from_secs(15), || sent(&run, "b", "1 ACK")),
        "call B: INVITE, 200 OK, ACK"
    );
    let (call_a, call_b) = (call_id(&run, "a"), call_id(&run, "b"));
    let applied = || tb.stat("p1b", "cluster_applied");
    let ok = wait_for(Duration::from_secs(10), || applied() >= 2);
    check!(
        ok,
        "p1b holds both keys, replicated over DMQ (cluster_applied {})",
        applied()
    );
    let ok = docker(&["kill", "-s", "KILL", &p1a_id]).status.success()
        && wait_for(Duration::from_secs(10), || {
            tb.inspect("p1a", "{{.State.Status}}") == "exited"
        });
    check!(
        ok,
        "p1a SIGKILLed (docker kill -s KILL): exit code {}",
        tb.inspect("p1a", "{{.State.ExitCode}}")
    );
    let p1a_log = parse_p1(&tb.logs("p1a"));
    check!(
        is(&lines_of(&p1a_log, &call_a, "INVITE"), "1", "wrapped")
            && is(&lines_of(&p1a_log, &call_b, "INVITE"), "1", "wrapped")
            && lines_of(&p1a_log, &call_a, "MESSAGE").is_empty(),
        "lb had sent both INVITEs to p1a, which read them with its own key (gen=1 source=wrapped), and nothing after them"
    );
    go(&tb, &run, "a", 5061, 1);
    go(&tb, &run, "b", 5062, 1);
    check!(
        finished(&run, "a", &mut uac_a),
        "call A completed: MESSAGE, re-INVITE, MESSAGE and BYE with p1a dead"
    );
    check!(
        wait_for(Duration::from_secs(15), || sent(&run, "b", "3 ACK")),
        "call B: MESSAGE and the re-INVITE answered with p1a dead; B waits with its key rotated on p1b"
    );
    let p1b_log = parse_p1(&tb.logs("p1b"));
    for (who, call) in [("A", &call_a), ("B", &call_b)] {
        check!(
            is(&lines_of(&p1b_log, call, "MESSAGE"), "1", "replica"),
            "call {who}: p1b read the MESSAGE from the replicated key (gen=1 source=replica)"
        );
        check!(
            is(&lines_of(&p1b_log, call, "INVITE"), "2", "wrapped")
                && !is(&lines_of(&p1b_log, call, "INVITE"), "1", "wrapped"),
            "call {who}: p1b took the re-INVITE's rotation (gen 2), and never saw the first INVITE"
        );
    }
    check!(
        is(&lines_of(&p1b_log, &call_a, "MESSAGE"), "2", "cache"),
        "call A: p1b read the MESSAGE under the rotated key (gen=2)"
    );
    let lb_log = tb.logs("lb");
    let flags = lb_flags(&tb, &a);
    check!(
        lb_log.contains(&format!("MESSAGE call={call_a} to sip:{b}"))
            && (flags.starts_with('I') || lb_log.contains("trying the next")),
        "lb: p1a failed (a probe or a request timed out; dispatcher.list {a} {flags}), the in-dialog requests went to p1b"
    );
    check!(
        wait_for(Duration::from_secs(5), || tb.stat("p1b", "cache_entries")
            == 1),
        "p1b ended call A's key at its BYE: one key left (B's)"
    );

    // ---- 2. rejoin --------------------------------------------------------------------------
    println!("2. p1a comes back: sync, then it carries call B again");
    let s = docker(&["start", &p1a_id]);
    check!(s.status.success(), "p1a started again (docker start)");
    let synced = wait_for(Duration::from_secs(30), || {
        log_since_start(&tb, "p1a", 2).contains("sync done from p1b: 1 key(s) stored")
    });
    check!(
        synced,
        "p1a asked for a sync at start: 'sync done from p1b: 1 key(s) stored'"
    );
    check!(
        tb.stat("p1a", "cache_entries") == 1,
        "p1a holds one key, call B's: call A's ended while p1a was down and is not synced"
    );
    let ok = wait_for(Duration::from_secs(20), || {
        lb_flags(&tb, &a).starts_with('A')
    });
    check!(ok, "lb probed p1a back to active ({})", lb_flags(&tb, &a));
    let (ca, cb) = (ip4(&tb.addr(4, 21)), ip4(&tb.addr(4, 22)));
    let capture = || pcap_datagrams(&fs::read(tb.work.join("cluster.pcap")).unwrap_or_default());
    let before = replication(&capture(), ca, cb).len();
    go(&tb, &run, "b", 5062, 2);
    check!(finished(&run, "b", &mut uac_b), "call B completed");
    // B's BYE makes p1a send p1b the dialog end: capture it for step 3 at once
    let fresh = wait_for(Duration::from_secs(5), || {
        replication(&capture(), ca, cb).len() > before
    });

    // ---- 3. replayed and forged ---------------------------------------------------------------
    println!("3. captured replication messages replayed to p1b, and one forged");
    let grams = capture();
    let from_a = replication(&grams, ca, cb);
    check!(
        fresh,
        "p1a's message to p1b for B's dialog end is on the wire ({} from p1a so far)",
        from_a.len()
    );
    let last = from_a
        .last()
        .expect("a replication message from p1a to p1b");
    let oldest = from_a.first().expect("p1a's first replication message");
    fs::write(tb.work.join("replay.sip"), &last.payload).expect("replay.sip");
    fs::write(tb.work.join("old.sip"), &oldest.payload).expect("old.sip");
    let body = body_of(&last.payload);
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body.trim_ascii())
        .expect("the body is base64");
    let tag_byte = der.len() - 1;
    der[tag_byte] ^= 0x80;
    let forged_body = base64::engine::general_purpose::STANDARD.encode(&der);
    let head = &last.payload[..last.payload.len() - body.len()];
    let mut forged = head.to_vec();
    forged.extend_from_slice(forged_body.as_bytes());
    forged.extend_from_slice(&body[body.trim_ascii_end().len()..]);
    assert_eq!(
        forged.len(),
        last.payload.len(),
        "same length: Content-Length holds"
    );
    fs::write(tb.work.join("forged.sip"), &forged).expect("forged.sip");
    let dst = tb.addr(4, 22);
    let inject = |file: &str| {
        tb.exec(
            "tapc",
            &format!("bash -c 'cat /capture/{file} > /dev/udp/{dst}/5090'"),
        )
        .status
        .success()
    };
    let replays = || tb.stat("p1b", "cluster_replays");
    let bad = || tb.stat("p1b", "cluster_bad_seal");
    let (replays0, bad0) = (replays(), bad());
    let in0 = tb.stat("p1b", "cluster_in");
    let ok = inject("replay.sip") && wait_for(Duration::from_secs(5), || replays() == replays0 + 1);
    check!(
        ok,
        "the message p1a just sent p1b ({} bytes, captured), sent again byte for byte: refused (cluster_replays {replays0} -> {})",
        last.payload.len(),
        replays()
    );
    let ok = inject("old.sip") && wait_for(Duration::from_secs(5), || replays() == replays0 + 2);
    check!(
        ok,
        "p1a's first message of the run, sent again: refused (cluster_replays -> {})",
        replays()
    );
    let ok = inject("forged.sip") && wait_for(Duration::from_secs(5), || bad() == bad0 + 1);
    check!(
        ok,
        "the fresh one with one bit of its GCM tag flipped: refused, not sealed for the cluster (cluster_bad_seal {bad0} -> {})",
        bad()
    );
    let p1b_text = tb.logs("p1b");
    let why = p1b_text
        .lines()
        .filter(|l| l.contains("cluster: message from") && l.contains("refused"))
        .filter_map(|l| l.rsplit(": ").next())
        .collect::<Vec<_>>();
    check!(
        why.iter().any(|w| w.contains("replayed or too old"))
            && why.iter().any(|w| w.contains("outside the accepted window"))
            && why
                .iter()
                .any(|w| w.contains("does not open under a cluster key")),
        "p1b's log says why: the counter was seen (the fresh one), sent outside cluster_max_skew (the old one), no cluster key opens it (the forged one): {why:?}"
    );
    let p1a_log2 = parse_p1(&log_since_start(&tb, "p1a", 2));
    check!(
        is(&lines_of(&p1a_log2, &call_b, "MESSAGE"), "2", "replica"),
        "call B: the restarted p1a read the MESSAGE with the key rotated on p1b, from the sync (gen=2 source=replica)"
    );
    check!(
        wait_for(Duration::from_secs(10), || {
            tb.stat("p1a", "cache_entries") == 0 && tb.stat("p1b", "cache_entries") == 0
        }),
        "call B's BYE through p1a ended its key on p1a and, replicated, on p1b"
    );
    check!(
        tb.stat("p1b", "cluster_in") == in0,
        "none of the three replayed or forged messages was applied (cluster_in unchanged, no key on p1b)"
    );

    // ---- 4. docker stop ---------------------------------------------------------------------
    println!("4. call C through p1a; p1a stopped (docker stop); p1b takes over");
    let sc_c = scenario(&tb, &run, "c", [true, false]);
    let applied0 = tb.stat("p1b", "cluster_applied");
    let mut uac_c = start_caller(&tb, &run, "c", &sc_c, 5063);
    check!(
        wait_for(Duration::from_secs(15), || sent(&run, "c", "1 ACK")),
        "call C: INVITE, 200 OK, ACK"
    );
    let call_c = call_id(&run, "c");
    check!(
        is(
            &lines_of(
                &parse_p1(&log_since_start(&tb, "p1a", 2)),
                &call_c,
                "INVITE"
            ),
            "1",
            "wrapped"
        ),
        "lb sent C's INVITE to p1a again (first by priority), which read it"
    );
    check!(
        wait_for(Duration::from_secs(10), || {
            tb.stat("p1b", "cluster_applied") > applied0
        }),
        "p1b holds C's key"
    );
    let st = docker(&["stop", "-t", "5", &p1a_id]);
    check!(
        st.status.success() && tb.inspect("p1a", "{{.State.Status}}") == "exited",
        "p1a stopped (docker stop: SIGTERM)"
    );
    go(&tb, &run, "c", 5063, 1);
    check!(
        finished(&run, "c", &mut uac_c),
        "call C completed through p1b"
    );
    let p1b_log = parse_p1(&tb.logs("p1b"));
    check!(
        is(&lines_of(&p1b_log, &call_c, "MESSAGE"), "1", "replica")
            && is(&lines_of(&p1b_log, &call_c, "INVITE"), "2", "wrapped")
            && is(&lines_of(&p1b_log, &call_c, "MESSAGE"), "2", "cache"),
        "call C: p1b read the MESSAGE from the replicated key (gen=1 source=replica), took the rotation (gen 2) and read the MESSAGE after it"
    );
    check!(
        wait_for(Duration::from_secs(5), || tb.stat("p1b", "cache_entries")
            == 0),
        "C's BYE ended its key on p1b"
    );
    let mut uas = uas;
    let uas_st = wait_or_kill(&mut uas, Duration::from_secs(30));
    check!(
        uas_st.is_some_and(|s| s.success()),
        "the callee answered all 3 calls"
    );

    // ---- 5. the wire ------------------------------------------------------------------------
    println!("5. the cluster network: sealed replication messages, no key, no SDP");
    std::thread::sleep(Duration::from_millis(500));
    let raw = fs::read(tb.work.join("cluster.pcap")).expect("cluster.pcap");
    let grams = pcap_datagrams(&raw);
    let msgs: Vec<&Datagram> = grams
        .iter()
        .filter(|g| g.payload.starts_with(b"KDMQ sip:sipsd@"))
        .collect();
    let (ab, ba) = (
        replication(&grams, ca, cb).len(),
        replication(&grams, cb, ca).len(),
    );
    check!(
        ab >= 3 && ba >= 3,
        "{} sipsd replication messages captured ({ab} p1a -> p1b, {ba} p1b -> p1a)",
        msgs.len()
    );
    let sample = tb.work.join("sample.b64");
    fs::write(&sample, body_of(&msgs[0].payload)).expect("sample");
    let insp = output(Command::new(&cli).arg("inspect").arg("--in").arg(&sample));
    let insp = text(&insp);
    check!(
        insp.contains("kind: AuthEnvelopedData")
            && insp.contains("content-encryption: aes-256-gcm")
            && insp.contains("aes256-wrap by kek-id 73697073642d636c7573746572"),
        "a replication body is CMS AuthEnvelopedData (AES-256-GCM) for one KEKRecipientInfo, the cluster key 'sipsd-cluster' (sipsd inspect)"
    );
    let mut needles = plaintext_needles(&cli, &vkeys, &tb.work, &run.rows);
    let mut raw_keys: Vec<Vec<u8>> = Vec::new();
    for (i, row) in run.rows.iter().enumerate() {
        for (j, b64) in [&row.uac[0], &row.uac[2]].iter().enumerate() {
            let cek_file = tb.work.join(format!("cek-{i}-{j}"));
            let o = open_on_host(&cli, &vkeys, &tb.work, b64, Some(&cek_file));
            assert!(o.status.success(), "callee opens the offer: {}", text(&o));
            let line = fs::read_to_string(&cek_file).expect("cek file");
            let hex = line.trim().split(':').nth(1).expect("ALG:HEX").to_string();
            let bytes = sipsd::hex::decode(&hex).expect("hex");
            needles.push(hex.clone());
            needles.push(hex.to_uppercase());
            needles.push(base64::engine::general_purpose::STANDARD.encode(&bytes));
            raw_keys.push(bytes);
        }
    }
    let hits = find_plaintext(&raw, &grams, &needles);
    let raw_hits = raw_keys.iter().filter(|k| find(&raw, k).is_some()).count();
    check!(
        hits.is_empty() && raw_hits == 0,
        "none of the {} dialog keys of the calls (raw, hex, HEX, base64) nor their SDP ({} needles: v=0, media lines, a=crypto keys) in the cluster capture {:?}",
        raw_keys.len(),
        needles.len(),
        hits.iter().take(5).collect::<Vec<_>>()
    );

    tb.down();
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", tb.project),
    ]);
    check!(
        left.stdout.trim_ascii().is_empty(),
        "compose down removed every container of {}",
        tb.project
    );
    println!("Docker cluster done in {:.0} s", t0.elapsed().as_secs_f32());
}
