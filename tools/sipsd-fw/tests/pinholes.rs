//! The agent end to end: real nftables in network namespaces, the real `sipsd-fw` in the
//! firewall namespace, the library's PCP client standing in for the trusted proxy, and
//! RTP-shaped UDP both ways, counted by the receivers and by the agent's nft counters.
//!
//! One topology (support/netns.rs), one agent, every check of the issue that does not need
//! Kamailio: offer only, answer narrowing, other port and other source dropped, BYE, a lost
//! BYE's expiry, forged / unauthenticated / not-allowed / replayed / malformed requests
//! (never half-applied), the agent restarted mid-call, a call over IPv6, and mark mode behind
//! a host table that drops unmarked media.
//!
//! Run: `cargo test -p sipsd-fw --test pinholes -- --nocapture` (as root).

#[path = "support/netns.rs"]
mod netns;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netns::*;
use sipsd::pcp::auth::{self, AuthKey};
use sipsd::pcp::wire::{Filter, MapData, Options, Request, Response, PROTO_UDP};
use sipsd::pcp::{mapping_nonce, Client, Flow, FlowOutcome, Opcode, Remote, ResultCode};

const TABLE: &str = "sipsd";
const KEY: [u8; 32] = *b"sipsd-fw test key, 32 bytes long";
const DEADLINE: Duration = Duration::from_millis(500);

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

struct Bed {
    topo: Topology,
    dir: tempfile::TempDir,
    agent: Guard,
    client: Client,
    raw: UdpSocket,
    /// The table whose named counter `dropped` counts the media policy's drops: the agent's
    /// in enforce mode, the host's in mark mode.
    drops_in: &'static str,
}

impl Bed {
    fn config(&self) -> PathBuf {
        self.dir.path().join("fw.toml")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn start_agent(&mut self) {
        self.agent = start_agent(
            Path::new(env!("CARGO_BIN_EXE_sipsd-fw")),
            &self.topo,
            &self.config(),
            &self.log(),
        );
        let t = Instant::now();
        loop {
            let x = self.client.announce(Duration::from_millis(200)).unwrap();
            if x.all_succeeded() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "agent did not answer; log:\n{}",
                self.log_text()
            );
        }
    }

    /// The elements of the pinhole sets, without their remaining time.
    fn elements(&self) -> BTreeSet<String> {
        self.topo.elements(TABLE)
    }

    fn show(&self, when: &str) {
        self.topo.show_sets(TABLE, when);
    }

    /// Sends 20 RTP packets and checks they all arrive (`pass`) or none does, with the
    /// agent's counters agreeing.
    fn expect(&self, pass: bool, what: &str, from: (&str, SocketAddr), to: (&str, SocketAddr)) {
        self.topo
            .expect_media(TABLE, self.drops_in, pass, what, from, to);
    }

    fn raw_exchange(&self, bytes: &[u8]) -> Option<Response> {
        self.raw.send(bytes).unwrap();
        let mut buf = [0u8; 1200];
        match self.raw.recv(&mut buf) {
            Ok(n) => Some(Response::decode(&buf[..n]).expect("agent's response decodes")),
            Err(_) => None,
        }
    }
}

fn signed(req: &Request, key: &AuthKey) -> Vec<u8> {
    let mut b = req.encode_unsigned();
    auth::sign(&mut b, key, auth::now_ms(), auth::random_u64().unwrap());
    b
}

fn map_request(dialog: &[u8], internal: SocketAddr, filters: Vec<Filter>) -> Request {
    Request {
        opcode: Opcode::Map,
        lifetime: 60,
        client_addr: PROXY.parse().unwrap(),
        map: Some(MapData {
            nonce: mapping_nonce(dialog),
            protocol: PROTO_UDP,
            internal_port: internal.port(),
            external_port: 0,
            external_addr: "0.0.0.0".parse().unwrap(),
        }),
        options: Options {
            third_party: Some(internal.ip()),
            filters,
            ..Options::default()
        },
    }
}

/// Asks `client` for an any-source pinhole to the caller's RTP port.
fn open_caller_rtp(client: &Client, dialog: &[u8]) -> sipsd::pcp::Exchange {
    let flows = [Flow::any_source(sa(CALLER, 40000))];
    client
        .map(dialog, &flows, 60, Duration::from_millis(300))
        .unwrap()
}

/// The (authenticated) answer to the first flow was NOT_AUTHORIZED.
fn assert_not_authorized(x: &sipsd::pcp::Exchange) {
    assert!(
        matches!(
            x.outcomes[0],
            FlowOutcome::Answered {
                result: Ok(ResultCode::NotAuthorized),
                ..
            }
        ),
        "{}",
        result(x)
    );
}

fn result(x: &sipsd::pcp::Exchange) -> String {
    format!("{:?} in {:?}, {} datagrams", x.outcomes, x.elapsed, x.sent)
}

#[test]
fn pinholes_follow_the_dialog() {
    if skip_unless_able("pinholes_follow_the_dialog") {
        return;
    }
    let topo = Topology::new("t");
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("proxy1.key");
    write_key(&key_path, &KEY);
    let cfg_path = dir.path().join("fw.toml");
    let write_config = move |mode: &str, extra: &str| {
        std::fs::write(
            &cfg_path,
            format!(
                "listen = \"{FW_MGMT}:5351\"\nallow = [\"{PROXY}\"]\ninterfaces = [\"fa\", \"fb\"]\n\
                 media_networks = [\"10.77.1.0/24\", \"10.77.2.0/24\", \"fd00:77:1::/64\", \"fd00:77:2::/64\"]\n\
                 min_lifetime = 2\nmode = \"{mode}\"\nmark = 0x500000\n{extra}[[key]]\nid = 1\nfile = \"{}\"\n",
                key_path.display()
            ),
        )
        .unwrap()
    };
    write_config("enforce", "");
    let server = sa(FW_MGMT, 5351);
    let client = pcp_client(&topo.p, server, Some(&KEY), Duration::from_millis(50));
    let raw = in_ns(&topo.p, || {
        let s = UdpSocket::bind(sa(PROXY, 0)).unwrap();
        s.connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    });
    let mut bed = Bed {
        topo,
        dir,
        agent: Guard(None),
        client,
        raw,
        drops_in: TABLE,
    };
    bed.start_agent();
    println!("  ok   agent up in {} (nft table inet {TABLE})", bed.topo.f);
    println!("  --- the agent's table before any call (nft list table inet {TABLE}):");
    for l in bed.topo.nft(&["list", "table", "inet", TABLE]).lines() {
        println!("      {l}");
    }

    let (a, b, f) = (bed.topo.a.clone(), bed.topo.b.clone(), bed.topo.f.clone());
    let _ = f;
    let caller_rtp = (a.as_str(), sa(CALLER, 40000));
    let caller_rtcp = (a.as_str(), sa(CALLER, 40001));
    let caller_other_port = (a.as_str(), sa(CALLER, 40002));
    let callee_rtp = (b.as_str(), sa(CALLEE, 50000));
    let callee_rtcp = (b.as_str(), sa(CALLEE, 50001));
    let callee_other_port = (b.as_str(), sa(CALLEE, 50002));
    let other_host = (b.as_str(), sa(OTHER, 50000));

    // ---- no call: UDP media is dropped both ways -------------------------------------------
    bed.expect(false, "no call: callee -> caller", callee_rtp, caller_rtp);
    bed.expect(false, "no call: caller -> callee", caller_rtp, callee_rtp);

    // ---- forged, unauthenticated, not allowed, replayed, malformed requests ----------------
    let key = AuthKey::new(1, &KEY).unwrap();
    let forger = pcp_client(
        &bed.topo.p,
        server,
        Some(b"not the key, but 32 bytes long!!"),
        Duration::from_millis(50),
    );
    let x = open_caller_rtp(&forger, b"forged");
    assert!(
        matches!(
            x.outcomes[0],
            FlowOutcome::Unauthenticated {
                result: Ok(ResultCode::NotAuthorized)
            }
        ),
        "{}",
        result(&x)
    );
    assert!(
        bed.log_text().contains("forged: bad MAC"),
        "{}",
        bed.log_text()
    );
    println!("  ok   forged MAC (wrong key): answered NOT_AUTHORIZED without a MAC, logged 'REFUSED ... forged: bad MAC'");
    let plain = pcp_client(&bed.topo.p, server, None, Duration::from_millis(50));
    let x = open_caller_rtp(&plain, b"plain");
    assert_not_authorized(&x);
    assert!(bed.log_text().contains("not authenticated"));
    println!("  ok   request without the MAC option: NOT_AUTHORIZED, logged 'not authenticated'");
    let outsider = in_ns(&bed.topo.p, || {
        let s = UdpSocket::bind(sa(PROXY_NOT_ALLOWED, 0)).unwrap();
        s.connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    });
    let mut req = map_request(b"outsider", sa(CALLER, 40000), vec![]);
    req.client_addr = PROXY_NOT_ALLOWED.parse().unwrap();
    outsider.send(&signed(&req, &key)).unwrap();
    assert!(
        outsider.recv(&mut [0u8; 1200]).is_err(),
        "no answer outside the allow-list"
    );
    assert!(bed.log_text().contains("source not in allow"));
    println!("  ok   validly signed request from {PROXY_NOT_ALLOWED} (not in allow): no answer, logged 'source not in allow'");

    // Replay: a request that succeeded, sent again after the call's delete.
    let replayed = signed(&map_request(b"replay", sa(CALLER, 40000), vec![]), &key);
    let r = bed.raw_exchange(&replayed).expect("answer");
    assert_eq!(r.result, Ok(ResultCode::Success));
    bed.expect(
        true,
        "captured request applied: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    let x = bed
        .client
        .delete(b"replay", &[Flow::any_source(sa(CALLER, 40000))], DEADLINE)
        .unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    let r = bed.raw_exchange(&replayed).expect("answer");
    assert_eq!(r.result, Ok(ResultCode::NotAuthorized));
    assert!(bed.log_text().contains("replay: replayed message"));
    assert!(bed.elements().is_empty(), "{:?}", bed.elements());
    bed.expect(
        false,
        "after the replay: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    println!("  ok   replayed request (after its delete): NOT_AUTHORIZED, logged 'replay: replayed message', nothing opened");

    // Malformed: one good FILTER and one of the wrong family, validly signed: nothing applied.
    let good = Filter {
        prefix_len: 32,
        remote_port: 0,
        remote_addr: CALLEE.parse().unwrap(),
    };
    let wrong_family = Filter {
        prefix_len: 128,
        remote_port: 0,
        remote_addr: "2001:db8::1".parse().unwrap(),
    };
    let r = bed
        .raw_exchange(&signed(
            &map_request(b"half", sa(CALLER, 40000), vec![good, wrong_family]),
            &key,
        ))
        .expect("answer");
    assert_eq!(r.result, Ok(ResultCode::MalformedOption));
    let r = bed
        .raw_exchange(&signed(
            &map_request(
                b"half",
                sa(CALLER, 40000),
                vec![
                    good,
                    Filter {
                        prefix_len: 24,
                        ..good
                    },
                ],
            ),
            &key,
        ))
        .expect("answer");
    assert_eq!(r.result, Ok(ResultCode::UnsupportedOption));
    // A FILTER prefix beyond 32 bits: refused by the decoder, before authentication.
    let mut bad = signed(&map_request(b"half", sa(CALLER, 40000), vec![good]), &key);
    bad[24 + 36 + 20 + 5] = 33;
    assert_eq!(
        bed.raw_exchange(&bad).map(|r| r.result),
        Some(Ok(ResultCode::MalformedOption))
    );
    let mut unknown = map_request(b"half", sa(CALLER, 40000), vec![good]).encode_unsigned();
    unknown.extend_from_slice(&[100, 0, 0, 0]);
    auth::sign(&mut unknown, &key, auth::now_ms(), 1);
    assert_eq!(
        bed.raw_exchange(&unknown).map(|r| r.result),
        Some(Ok(ResultCode::UnsupportedOption))
    );
    assert_eq!(
        bed.raw_exchange(&[2, 1, 0, 0, 0, 0, 0]).map(|r| r.result),
        Some(Ok(ResultCode::MalformedRequest))
    );
    assert!(bed.elements().is_empty(), "{:?}", bed.elements());
    bed.expect(
        false,
        "after the malformed requests: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    println!("  ok   malformed: good + wrong-family FILTER -> MALFORMED_OPTION, /24 FILTER -> UNSUPP_OPTION, prefix 33 -> MALFORMED_OPTION, unknown mandatory option -> UNSUPP_OPTION, 7 bytes -> MALFORMED_REQUEST; nothing applied");

    // ---- call 1: offer, answer, agent restart, BYE ------------------------------------------
    let d1 = b"call-1@caller.example;from-tag=a1";
    bed.show("before call 1");
    let offer = [
        Flow::any_source(caller_rtp.1),
        Flow::any_source(caller_rtcp.1),
    ];
    let x = bed.client.map(d1, &offer, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    println!(
        "  ok   offer: 2 pinholes (RTP, RTCP) any source -> caller in {:?}",
        x.elapsed
    );
    bed.show("after the offer");
    bed.expect(
        false,
        "offer only, callee's media not open: caller -> callee",
        caller_rtp,
        callee_rtp,
    );
    bed.expect(
        false,
        "offer only: caller RTCP -> callee RTCP",
        caller_rtcp,
        callee_rtcp,
    );
    bed.expect(
        true,
        "offer only (any source -> caller): callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    bed.expect(
        false,
        "offer only: callee -> another port of the caller",
        callee_rtp,
        caller_other_port,
    );

    let callee = |port| Remote {
        addr: CALLEE.parse().unwrap(),
        port,
    };
    let caller = |port| Remote {
        addr: CALLER.parse().unwrap(),
        port: Some(port),
    };
    let answer = [
        Flow::between(caller_rtp.1, callee(None)),
        Flow::between(caller_rtcp.1, callee(None)),
        Flow::between(callee_rtp.1, caller(40000)),
        Flow::between(callee_rtcp.1, caller(40001)),
    ];
    let x = bed.client.map(d1, &answer, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    println!(
        "  ok   answer: caller's pinholes narrowed to the callee, callee <-> caller exact, in {:?}",
        x.elapsed
    );
    bed.show("after the answer (during call 1)");
    let during = bed.elements();
    assert_eq!(during.len(), 4, "{during:?}");
    assert!(
        !during.iter().any(|e| e.starts_with("open4")),
        "no any-source element left: {during:?}"
    );
    bed.expect(true, "answered: callee -> caller", callee_rtp, caller_rtp);
    bed.expect(true, "answered: caller -> callee", caller_rtp, callee_rtp);
    bed.expect(
        true,
        "answered: callee RTCP -> caller RTCP",
        callee_rtcp,
        caller_rtcp,
    );
    bed.expect(
        true,
        "answered: caller RTCP -> callee RTCP",
        caller_rtcp,
        callee_rtcp,
    );
    bed.expect(
        false,
        "answered: other address -> caller",
        other_host,
        caller_rtp,
    );
    bed.expect(
        false,
        "answered: callee -> another port of the caller",
        callee_rtp,
        caller_other_port,
    );
    bed.expect(
        false,
        "answered: caller -> another port of the callee",
        caller_rtp,
        callee_other_port,
    );

    // Agent restarted mid-call.
    bed.agent.kill();
    bed.expect(true, "agent down: callee -> caller", callee_rtp, caller_rtp);
    bed.start_agent();
    assert!(
        bed.log_text().contains("4 elements kept from before"),
        "{}",
        bed.log_text()
    );
    assert_eq!(bed.elements(), during, "the restart changed the sets");
    println!(
        "  ok   agent restarted (SIGKILL, then run): the same 4 elements, nothing added or flushed"
    );
    bed.show("after the restart");
    bed.expect(
        true,
        "after restart: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    bed.expect(
        true,
        "after restart: caller -> callee",
        caller_rtp,
        callee_rtp,
    );
    bed.expect(
        false,
        "after restart: other address -> caller",
        other_host,
        caller_rtp,
    );
    let r = bed.raw_exchange(&replayed).expect("answer");
    assert_eq!(r.result, Ok(ResultCode::NotAuthorized));
    assert!(bed
        .log_text()
        .contains("timestamp from before this receiver started"));
    println!("  ok   the request captured before the restart, replayed after it: NOT_AUTHORIZED ('from before this receiver started')");
    let x = bed
        .client
        .map(
            b"another dialog",
            &[Flow::any_source(caller_rtp.1)],
            60,
            DEADLINE,
        )
        .unwrap();
    assert_not_authorized(&x);
    println!("  ok   after restart another dialog cannot take over the caller's pinhole: NOT_AUTHORIZED (nonce read back from the element comments)");
    let x = bed.client.map(d1, &answer, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    assert_eq!(bed.elements(), during);
    println!("  ok   refresh after restart: SUCCESS, same elements");

    let x = bed.client.delete(d1, &answer, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    bed.show("after BYE");
    assert!(bed.elements().is_empty(), "{:?}", bed.elements());
    bed.expect(false, "after BYE: callee -> caller", callee_rtp, caller_rtp);
    bed.expect(false, "after BYE: caller -> callee", caller_rtp, callee_rtp);
    bed.expect(
        false,
        "after BYE: callee RTCP -> caller RTCP",
        callee_rtcp,
        caller_rtcp,
    );

    // ---- call 2: the BYE is lost; the elements expire ---------------------------------------
    let d2 = b"call-2@caller.example;from-tag=a2";
    let x = bed.client.map(d2, &offer, 3, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    let x = bed.client.map(d2, &answer, 3, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    assert!(matches!(
        x.outcomes[0],
        FlowOutcome::Answered { lifetime: 3, .. }
    ));
    bed.show("during call 2 (lifetime 3 s)");
    bed.expect(true, "call 2: callee -> caller", callee_rtp, caller_rtp);
    bed.expect(true, "call 2: caller -> callee", caller_rtp, callee_rtp);
    let t = Instant::now();
    while !bed.elements().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not expired: {:?}",
            bed.elements()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("  ok   call 2's BYE lost: its elements expired by their nftables timeout");
    bed.show("after call 2's expiry");
    bed.expect(
        false,
        "call 2 expired: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    bed.expect(
        false,
        "call 2 expired: caller -> callee",
        caller_rtp,
        callee_rtp,
    );

    // ---- call 3 over IPv6 ---------------------------------------------------------------------
    let (c6, e6) = (sa(CALLER6, 40010), sa(CALLEE6, 50010));
    let (caller6, callee6) = ((a.as_str(), c6), (b.as_str(), e6));
    let d3 = b"call-3@[fd00:77:1::2];from-tag=a3";
    let x = bed
        .client
        .map(d3, &[Flow::any_source(c6)], 60, DEADLINE)
        .unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    bed.expect(false, "IPv6 offer only: caller -> callee", caller6, callee6);
    let answer6 = [
        Flow::between(
            c6,
            Remote {
                addr: e6.ip(),
                port: None,
            },
        ),
        Flow::between(
            e6,
            Remote {
                addr: c6.ip(),
                port: Some(c6.port()),
            },
        ),
    ];
    let x = bed.client.map(d3, &answer6, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    bed.show("during call 3 (IPv6)");
    bed.expect(true, "IPv6 answered: callee -> caller", callee6, caller6);
    bed.expect(true, "IPv6 answered: caller -> callee", caller6, callee6);
    bed.expect(
        false,
        "IPv6 answered: other address -> caller",
        (b.as_str(), sa(OTHER6, 50010)),
        caller6,
    );
    bed.expect(
        false,
        "IPv6 answered: callee -> another port of the caller",
        callee6,
        (a.as_str(), sa(CALLER6, 40012)),
    );
    let x = bed.client.delete(d3, &answer6, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    assert!(bed.elements().is_empty(), "{:?}", bed.elements());
    bed.expect(false, "IPv6 after BYE: callee -> caller", callee6, caller6);

    // ---- mirroring: the agent copies a dialog's media to the recorder -----------------------
    // The proxy's namespace stands in for the recorder host (it does not forward IP): its own
    // prerouting counter counts the copies, addressed to the caller, that reach it.
    bed.agent.kill();
    write_config(
        "enforce",
        &format!("recorder = \"{PROXY}\"\nrecorder_device = \"fm\"\n"),
    );
    bed.start_agent();
    let mirror_chain = bed
        .topo
        .nft(&["list", "chain", "ip", "sipsd_mirror", "forward"]);
    assert!(
        mirror_chain.contains("ip daddr . udp dport @mirror4 dup to 10.77.9.2 device \"fm\""),
        "{mirror_chain}"
    );
    println!("  ok   agent restarted with a recorder: table ip sipsd_mirror, chain forward (one priority after the pinholes) dups @mirror4 to {PROXY} on fm:");
    for l in mirror_chain.lines() {
        println!("      {l}");
    }
    let rec_table = format!(
        "table inet rec {{\n counter copies {{ }}\n chain pre {{\n  type filter hook prerouting priority -300; policy accept;\n  ip daddr {CALLER} udp dport 40000 counter name \"copies\"\n }}\n}}\n"
    );
    let mut load = std::process::Command::new("ip")
        .args(["netns", "exec", &bed.topo.p, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut load.stdin.take().unwrap(), rec_table.as_bytes()).unwrap();
    assert!(load.wait().unwrap().success(), "recorder's counter table");
    let copies = || {
        let json = sh(&[
            "ip",
            "netns",
            "exec",
            &bed.topo.p,
            "nft",
            "-j",
            "list",
            "counter",
            "inet",
            "rec",
            "copies",
        ]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["nftables"]
            .as_array()
            .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
            .unwrap()
    };
    let d5 = b"call-5@caller.example;from-tag=a5";
    let mirrored: Vec<Flow> = answer.iter().cloned().map(|f| f.mirrored(true)).collect();
    let x = bed.client.map(d5, &mirrored, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    bed.show("during call 5 (mirrored)");
    let els = bed.elements();
    assert_eq!(
        els.iter().filter(|e| e.starts_with("mirror4")).count(),
        4,
        "{els:?}"
    );
    println!("  ok   call 5 asked with MIRROR: 4 pinholes and 4 mirror4 elements (RTP and RTCP of both sides)");
    let c0 = copies();
    bed.expect(true, "mirrored: callee -> caller", callee_rtp, caller_rtp);
    let c1 = copies();
    assert_eq!(c1 - c0, 20, "copies at the recorder");
    println!("  ok   mirrored: the 20 packets reached the caller AND 20 copies (daddr {CALLER}:40000) reached the recorder");
    bed.expect(
        false,
        "mirrored: other address -> caller",
        other_host,
        caller_rtp,
    );
    assert_eq!(copies(), c1, "a dropped packet is not copied");
    println!("  ok   a packet the pinholes drop is not copied (the mirror chain runs after them)");
    // the same mapping refreshed without MIRROR: the mirror elements go, the pinholes stay
    let x = bed.client.map(d5, &answer, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    assert!(
        !bed.elements().iter().any(|e| e.starts_with("mirror4")),
        "{:?}",
        bed.elements()
    );
    bed.expect(
        true,
        "mirror stopped: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    assert_eq!(copies(), c1, "no copies after the mirror stopped");
    println!("  ok   MAP again without MIRROR: mirror elements removed, media still passes, no more copies");
    let x = bed.client.map(d5, &mirrored, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    let x = bed.client.delete(d5, &answer, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    assert!(bed.elements().is_empty(), "{:?}", bed.elements());
    println!("  ok   mirrored again, then deleted (BYE): pinholes and mirror elements all gone");

    // ---- mark mode: the agent only marks, the host's own table drops unmarked media ---------
    bed.agent.kill();
    write_config("mark", "");
    let host = "table inet host {\n counter dropped { }\n chain forward {\n  type filter hook forward priority filter; policy accept;\n  meta l4proto udp udp dport 1024-65535 meta mark & 0x500000 != 0x500000 counter name \"dropped\" drop\n }\n}\n";
    let mut load = std::process::Command::new("ip")
        .args(["netns", "exec", &bed.topo.f, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut load.stdin.take().unwrap(), host.as_bytes()).unwrap();
    assert!(load.wait().unwrap().success(), "host table");
    bed.drops_in = "host";
    bed.start_agent();
    let chain = bed.topo.nft(&["list", "chain", "inet", TABLE, "forward"]);
    assert!(
        chain.contains("meta mark set meta mark | 0x00500000") && !chain.contains("drop"),
        "{chain}"
    );
    println!("  ok   agent restarted in mark mode: its chain marks (meta mark | 0x500000) and drops nothing; the host's table drops unmarked media");
    bed.expect(
        false,
        "mark mode, no call: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    let d4 = b"call-4@caller.example;from-tag=a4";
    let x = bed.client.map(d4, &answer, 60, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    bed.expect(
        true,
        "mark mode, answered: callee -> caller",
        callee_rtp,
        caller_rtp,
    );
    bed.expect(
        true,
        "mark mode, answered: caller -> callee",
        caller_rtp,
        callee_rtp,
    );
    bed.expect(
        false,
        "mark mode, answered: other address -> caller",
        other_host,
        caller_rtp,
    );
    let x = bed.client.delete(d4, &answer, DEADLINE).unwrap();
    assert!(x.all_succeeded(), "{}", result(&x));
    bed.expect(
        false,
        "mark mode, after BYE: callee -> caller",
        callee_rtp,
        caller_rtp,
    );

    let refused = bed
        .log_text()
        .lines()
        .filter(|l| l.contains("REFUSED"))
        .count();
    println!("  ok   agent log: {refused} REFUSED lines, e.g.:");
    for l in bed
        .log_text()
        .lines()
        .filter(|l| l.contains("REFUSED"))
        .take(4)
    {
        println!("      {l}");
    }
}
