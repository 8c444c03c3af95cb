//! Benchmark of the firewall agent (root, network namespaces; `scripts/bench` runs it).
//!
//! 1. The nftables driver, with 10,000 elements in the set: one element added (and one
//!    deleted) per transaction through (a) the `nftables` crate (`nft -j -f -` per batch,
//!    what the agent uses), (b) `nft -f -` with the text syntax per batch, (c) one long-lived
//!    `nft -e -i` process fed a line per transaction.
//! 2. The agent: 10,000 pinholes opened through PCP (open throughput), then calls against
//!    that full set: offer (2 flows), answer (4 flows: the 200 OK's exchange), delete; the
//!    answer's request → response time is the time until the pinhole is effective (the agent
//!    answers after the nftables transaction has committed, and a packet sent right after
//!    the answer is checked to pass); then the 10,000 closed (close throughput).
//!
//! `cargo bench -p sipsd-fw --bench agent [-- --quick]`; with SIPSD_BENCH_OUT=FILE the
//! Markdown section for docs/BENCHMARKS.md is written there too.

#[path = "../tests/support/netns.rs"]
mod netns;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns::*;
use sipsd::pcp::{Flow, Remote};
use sipsd_fw::config::Config;
use sipsd_fw::nft::{Nft, Op};
use sipsd_fw::pinholes::Key;

const KEY: [u8; 32] = *b"sipsd-fw bench key, 32 bytes lng";
const PRELOAD: usize = 10_000;

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A scratch key for element `i`: 10.200.x.y:port, distinct for i < 65536 * 200.
fn scratch(i: usize) -> Key {
    Key::Open {
        internal: SocketAddr::new(
            std::net::Ipv4Addr::new(10, 200, (i / 250 % 250) as u8, (i % 250) as u8 + 1).into(),
            (10_000 + i / 62_500) as u16,
        ),
    }
}

/// A scratch element as `nft` text: `add` (timeout 1 h, a nonce comment) or `delete`.
fn element_text(k: &Key, add: bool) -> String {
    let Key::Open { internal } = k else {
        unreachable!("scratch keys are open4 elements")
    };
    let (ip, port) = (internal.ip(), internal.port());
    if add {
        format!("add element inet fwbench open4 {{ {ip} . {port} timeout 3600s comment \"n=000102030405060708090a0b\" }}\n")
    } else {
        format!("delete element inet fwbench open4 {{ {ip} . {port} }}\n")
    }
}

/// Times `add` then `delete` of `n` fresh scratch elements, one transaction each.
fn measure(
    n: usize,
    next: &mut usize,
    mut add: impl FnMut(Key),
    mut delete: impl FnMut(Key),
) -> ((Duration, Duration), (Duration, Duration)) {
    let (mut a, mut d) = (Vec::new(), Vec::new());
    for _ in 0..n {
        *next += 1;
        let k = scratch(*next);
        let t = Instant::now();
        add(k);
        a.push(t.elapsed());
        let t = Instant::now();
        delete(k);
        d.push(t.elapsed());
    }
    (stats(a), stats(d))
}

struct DriverResult {
    name: &'static str,
    add: (Duration, Duration),
    /// None when the driver gives no sign that a delete finished
    del: Option<(Duration, Duration)>,
}

fn driver_bench(n: usize) -> (Duration, Vec<DriverResult>, usize) {
    let cfg = Config::parse(
        "listen = \"127.0.0.1:5351\"\nallow = [\"127.0.0.1\"]\nrequire_auth = false\ntable = \"fwbench\"\n",
    )
    .unwrap();
    let nft = Nft::new("nft".into(), "fwbench".into());
    nft.setup(&cfg).unwrap();
    let comment = "n=000102030405060708090a0b".to_string();
    let add = |k: Key| Op::Add {
        key: k,
        timeout: 3600,
        comment: comment.clone(),
    };
    let t = Instant::now();
    nft.apply(&(0..PRELOAD).map(|i| add(scratch(i))).collect::<Vec<_>>())
        .unwrap();
    let bulk = t.elapsed();
    let mut next = PRELOAD;
    // (a) the nftables crate, nft -j -f - per batch
    let (add_a, del_a) = measure(
        n,
        &mut next,
        |k| nft.apply(&[add(k)]).unwrap(),
        |k| nft.apply(&[Op::Delete(k)]).unwrap(),
    );
    // (b) nft -f - with the text syntax per batch
    let run_text = |s: String| {
        let mut c = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success());
    };
    let (add_b, del_b) = measure(
        n,
        &mut next,
        |k| run_text(element_text(&k, true)),
        |k| run_text(element_text(&k, false)),
    );
    let results = vec![
        DriverResult {
            name: "`nftables` crate: `nft -j -f -` per transaction (the agent's driver)",
            add: add_a,
            del: Some(del_a),
        },
        DriverResult {
            name: "`nft -f -` text syntax per transaction",
            add: add_b,
            del: Some(del_b),
        },
    ];
    (bulk, results, next)
}

/// (c) one long-lived `nft -e -i` in namespace `ns`, started through `ip netns exec` (its
/// start is not measured): a line per transaction, done at nft's "# new generation" echo.
fn interactive_bench(ns: &str, n: usize, mut next: usize) -> DriverResult {
    // nft's stdout is a pipe here: stdbuf makes it line-buffered, or the echo would wait
    // for nft to exit
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            "exec stdbuf -oL -eL nft -e -i 2>&1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // An add is done when its echo and "# new generation" come back. A delete echoes
    // nothing, so there is no sign on the pipe that it finished: it is sent unmeasured, and
    // the next add's echo shows it was done.
    let mut send = |s: String, wait: bool| {
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
        if !wait {
            return;
        }
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "nft -i ended");
            assert!(!line.starts_with("Error"), "nft -i: {line}");
            if line.starts_with("# new generation") {
                break;
            }
        }
    };
    let mut a = Vec::new();
    for _ in 0..n {
        next += 1;
        let k = scratch(next);
        let t = Instant::now();
        send(element_text(&k, true), true);
        a.push(t.elapsed());
        send(element_text(&k, false), false);
    }
    drop(stdin);
    let _ = child.wait();
    DriverResult {
        name: "one long-lived `nft -e -i` process",
        add: stats(a),
        del: None,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if let Some(why) = missing_tools() {
        println!("SKIPPED: sipsd-fw agent bench: {why}");
        return;
    }
    let (n_driver, n_calls) = if quick { (100, 100) } else { (300, 300) };
    let topo = Topology::new("b");

    println!("sipsd-fw bench: nftables driver, {PRELOAD} elements in the set, {n_driver} transactions each");
    let (bulk, mut drivers, next) = in_ns(&topo.f, || driver_bench(n_driver));
    drivers.push(interactive_bench(&topo.f, n_driver, next));
    topo.nft(&["delete", "table", "inet", "fwbench"]);
    for r in &drivers {
        println!(
            "  {}: add median {} p99 {}; delete {}",
            r.name,
            ms(r.add.0),
            ms(r.add.1),
            r.del.map_or("not measurable".into(), |d| format!(
                "median {} p99 {}",
                ms(d.0),
                ms(d.1)
            ))
        );
    }

    // ---- the agent -------------------------------------------------------------------------
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    write_key(&key_path, &KEY);
    let cfg = dir.path().join("fw.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{FW_MGMT}:5351\"\nallow = [\"{PROXY}\"]\ninterfaces = [\"fa\", \"fb\"]\n\
             max_elements = 100000\n[[key]]\nid = 1\nfile = \"{}\"\n",
            key_path.display()
        ),
    )
    .unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sipsd-fw"));
    let _agent = start_agent(bin, &topo, &cfg, &dir.path().join("agent.log"));
    let client = pcp_client(
        &topo.p,
        sa(FW_MGMT, 5351),
        Some(&KEY),
        Duration::from_millis(100),
    );
    let t = Instant::now();
    while !client
        .announce(Duration::from_millis(200))
        .unwrap()
        .all_succeeded()
    {
        assert!(t.elapsed() < Duration::from_secs(20), "agent did not start");
    }
    let deadline = Duration::from_millis(500);

    // Open and close in bursts of BURST flows per exchange: the client sends them at once,
    // the agent takes what is queued into one transaction.
    const BURST: usize = 32;
    println!("sipsd-fw bench: opening {PRELOAD} pinholes through PCP, {BURST} flows per exchange");
    let pre_flow = |i: usize| Flow::any_source(sa(CALLER, 10_000 + i as u16));
    let chunks: Vec<Vec<Flow>> = (0..PRELOAD)
        .collect::<Vec<_>>()
        .chunks(BURST)
        .map(|c| c.iter().map(|&i| pre_flow(i)).collect())
        .collect();
    let t = Instant::now();
    for (i, flows) in chunks.iter().enumerate() {
        let x = client
            .map(
                format!("pre-{i}").as_bytes(),
                flows,
                3600,
                Duration::from_secs(2),
            )
            .unwrap();
        assert!(x.all_succeeded(), "preload {i}: {:?}", x.outcomes);
    }
    let open_rate = PRELOAD as f64 / t.elapsed().as_secs_f64();
    println!(
        "  opened {PRELOAD} in {:.1} s: {open_rate:.0} pinholes/s",
        t.elapsed().as_secs_f64()
    );

    println!("sipsd-fw bench: {n_calls} calls with {PRELOAD} pinholes in the set");
    let rx = in_ns(&topo.a, || UdpSocket::bind(sa(CALLER, 40000)).unwrap());
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let tx = in_ns(&topo.b, || UdpSocket::bind(sa(CALLEE, 50000)).unwrap());
    let (mut offer_t, mut answer_t, mut del_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut effective = 0;
    let mut buf = [0u8; 64];
    for c in 0..n_calls {
        let d = format!("call-{c}");
        let offer = [
            Flow::any_source(sa(CALLER, 40000)),
            Flow::any_source(sa(CALLER, 40001)),
        ];
        let callee = Remote {
            addr: CALLEE.parse().unwrap(),
            port: None,
        };
        let caller = |p| Remote {
            addr: CALLER.parse().unwrap(),
            port: Some(p),
        };
        let answer = [
            Flow::between(sa(CALLER, 40000), callee),
            Flow::between(sa(CALLER, 40001), callee),
            Flow::between(sa(CALLEE, 50000), caller(40000)),
            Flow::between(sa(CALLEE, 50001), caller(40001)),
        ];
        let x = client.map(d.as_bytes(), &offer, 60, deadline).unwrap();
        assert!(x.all_succeeded());
        offer_t.push(x.elapsed);
        let x = client.map(d.as_bytes(), &answer, 60, deadline).unwrap();
        assert!(x.all_succeeded());
        answer_t.push(x.elapsed);
        // effective: a packet from the callee sent right after the answer passes
        tx.send_to(b"rtp", sa(CALLER, 40000)).unwrap();
        if rx.recv(&mut buf).is_ok() {
            effective += 1;
        }
        let x = client.delete(d.as_bytes(), &answer, deadline).unwrap();
        assert!(x.all_succeeded());
        del_t.push(x.elapsed);
    }
    let (offer_m, offer_p) = stats(offer_t);
    let (answer_m, answer_p) = stats(answer_t);
    let (del_m, del_p) = stats(del_t);
    println!(
        "  offer (2 flows) median {} p99 {}; answer (4 flows) median {} p99 {}; delete (4) median {} p99 {}; effective right after the answer: {effective}/{n_calls}",
        ms(offer_m), ms(offer_p), ms(answer_m), ms(answer_p), ms(del_m), ms(del_p)
    );

    println!("sipsd-fw bench: closing the {PRELOAD} pinholes, {BURST} flows per exchange");
    let t = Instant::now();
    for (i, flows) in chunks.iter().enumerate() {
        let x = client
            .delete(format!("pre-{i}").as_bytes(), flows, Duration::from_secs(2))
            .unwrap();
        assert!(x.all_succeeded(), "close {i}: {:?}", x.outcomes);
    }
    let close_rate = PRELOAD as f64 / t.elapsed().as_secs_f64();
    println!(
        "  closed {PRELOAD} in {:.1} s: {close_rate:.0} pinholes/s",
        t.elapsed().as_secs_f64()
    );

    let mut md = String::new();
    md += "## 6. Firewall agent (sipsd-fw, nftables)\n\n";
    md += &format!(
        "`cargo bench -p sipsd-fw --bench agent{}` (tools/sipsd-fw/benches/agent.rs), as root: network namespaces caller / fw / callee / proxy on veth links, the real agent in the fw namespace, the library's PCP client (HMAC-authenticated) in the proxy namespace. Medians and 99th percentiles.\n\n",
        if quick { " -- --quick" } else { "" }
    );
    md += &format!("### nftables driver: one element per transaction, {PRELOAD} elements in the set ({n_driver} each)\n\n");
    md += "| driver | add median | add p99 | delete median | delete p99 |\n| --- | --- | --- | --- | --- |\n";
    for r in &drivers {
        let (dm, dp) = r
            .del
            .map_or(("no completion signal".into(), "—".into()), |d| {
                (ms(d.0), ms(d.1))
            });
        md += &format!(
            "| {} | {} | {} | {dm} | {dp} |\n",
            r.name,
            ms(r.add.0),
            ms(r.add.1),
        );
    }
    md += &format!(
        "\nLoading the {PRELOAD} elements in one transaction (crate, JSON) took {}.\n\n",
        ms(bulk)
    );
    md += &format!("### Through the agent, {PRELOAD} pinholes in the set ({n_calls} calls)\n\n");
    md += "| exchange (PCP request → authenticated response, nftables committed) | median | p99 |\n| --- | --- | --- |\n";
    md += &format!(
        "| offer: 2 flows any source → caller | {} | {} |\n",
        ms(offer_m),
        ms(offer_p)
    );
    md += &format!(
        "| **answer (the 200 OK): 4 flows, narrowing + exact, = time to an effective pinhole** | **{}** | **{}** |\n",
        ms(answer_m),
        ms(answer_p)
    );
    md += &format!(
        "| delete (BYE): 4 flows | {} | {} |\n\n",
        ms(del_m),
        ms(del_p)
    );
    md += &format!(
        "Measured at the agent: from the proxy's PCP request to its authenticated answer, which the agent sends after the nftables transaction committed (the whole way of the 200 OK through Kamailio P1 is in the next table). A packet from the callee sent right after each answer reached the caller in {effective} of {n_calls} calls. Opening {PRELOAD} pinholes, {BURST} flows per exchange (one MAP each, sent at once; the agent puts what is queued into one nftables transaction): **{open_rate:.0} pinholes/s**; closing them the same way: **{close_rate:.0} pinholes/s**.\n"
    );
    if let Ok(path) = std::env::var("SIPSD_BENCH_OUT") {
        std::fs::write(&path, &md).unwrap();
        println!("wrote {path}");
    } else {
        println!("\n{md}");
    }
}
