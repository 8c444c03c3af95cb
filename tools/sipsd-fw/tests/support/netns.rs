//! Network namespaces for the agent's tests and benchmark: a caller network, the firewall
//! host that routes between it and the callee network, the callee network, and a management
//! network where the proxy (this process, one thread at a time) talks to the agent.
//!
//! ```text
//!   caller A 10.77.1.2 ── fw F ── callee B 10.77.2.2 (+ "other" 10.77.2.3)
//!       fd00:77:1::2    10.77.1.1 │ 10.77.2.1     fd00:77:2::2 (+ fd00:77:2::3)
//!                        10.77.9.1
//!                             │ management
//!                      proxy P 10.77.9.2 (+ not allowed 10.77.9.3)
//! ```
//!
//! Names carry the process id, so parallel runs do not clash; everything is deleted on drop,
//! also when a test panics. Addresses live only inside these namespaces.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// Runs a command, panics with its output if it fails; returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why this machine cannot run the namespace tests, if it cannot.
pub fn missing_tools() -> Option<String> {
    // the effective uid, from /proc
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        return Some("not root (network namespaces and nftables need CAP_NET_ADMIN)".into());
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!("{tool} not installed (scripts/setup-deps)"));
        }
    }
    None
}

/// Skips (prints SKIPPED and returns true) unless the tools are there; with
/// SIPSD_REQUIRE_E2E=1 a missing tool fails the test instead.
pub fn skip_unless_able(test: &str) -> bool {
    match missing_tools() {
        None => false,
        Some(why) if std::env::var("SIPSD_REQUIRE_E2E").as_deref() == Ok("1") => {
            panic!("{test}: {why} (SIPSD_REQUIRE_E2E=1)")
        }
        Some(why) => {
            println!("SKIPPED: {test}: {why}");
            true
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets it creates belong there.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// The four namespaces and their links.
pub struct Topology {
    /// Caller network.
    pub a: String,
    /// Firewall host.
    pub f: String,
    /// Callee network.
    pub b: String,
    /// Proxy (management network).
    pub p: String,
}

pub const CALLER: &str = "10.77.1.2";
pub const CALLEE: &str = "10.77.2.2";
pub const OTHER: &str = "10.77.2.3";
pub const FW_MGMT: &str = "10.77.9.1";
pub const PROXY: &str = "10.77.9.2";
pub const PROXY_NOT_ALLOWED: &str = "10.77.9.3";
pub const CALLER6: &str = "fd00:77:1::2";
pub const CALLEE6: &str = "fd00:77:2::2";
pub const OTHER6: &str = "fd00:77:2::3";

impl Topology {
    /// Creates the namespaces, links, addresses and routes; forwarding on in F.
    pub fn new(tag: &str) -> Self {
        let id = std::process::id();
        let name = |r: &str| format!("sfw{id}{tag}{r}");
        let t = Topology {
            a: name("a"),
            f: name("f"),
            b: name("b"),
            p: name("p"),
        };
        for ns in [&t.a, &t.f, &t.b, &t.p] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // veth pairs: (ns1, if1, addr1) <-> (ns2, if2, addr2)
        let links = [
            (
                &t.a,
                "a0",
                vec![CALLER, CALLER6],
                &t.f,
                "fa",
                vec!["10.77.1.1", "fd00:77:1::1"],
            ),
            (
                &t.b,
                "b0",
                vec![CALLEE, OTHER, CALLEE6, OTHER6],
                &t.f,
                "fb",
                vec!["10.77.2.1", "fd00:77:2::1"],
            ),
            (
                &t.p,
                "p0",
                vec![PROXY, PROXY_NOT_ALLOWED],
                &t.f,
                "fm",
                vec![FW_MGMT],
            ),
        ];
        for (n1, i1, a1, n2, i2, a2) in links {
            sh(&[
                "ip", "-n", n1, "link", "add", i1, "type", "veth", "peer", "name", i2, "netns", n2,
            ]);
            for (ns, ifname, addrs) in [(n1, i1, a1), (n2, i2, a2)] {
                for a in addrs {
                    // IPv6 without duplicate address detection: usable at once
                    let (prefix, extra): (&str, &[&str]) = if a.contains(':') {
                        ("64", &["nodad"])
                    } else {
                        ("24", &[])
                    };
                    let cidr = format!("{a}/{prefix}");
                    let mut cmd = vec!["ip", "-n", ns, "addr", "add", &cidr, "dev", ifname];
                    cmd.extend_from_slice(extra);
                    sh(&cmd);
                }
                sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            }
        }
        sh(&[
            "ip",
            "-n",
            &t.a,
            "route",
            "add",
            "default",
            "via",
            "10.77.1.1",
        ]);
        sh(&[
            "ip",
            "-n",
            &t.b,
            "route",
            "add",
            "default",
            "via",
            "10.77.2.1",
        ]);
        for (ns, via) in [(&t.a, "fd00:77:1::1"), (&t.b, "fd00:77:2::1")] {
            sh(&["ip", "-n", ns, "-6", "route", "add", "default", "via", via]);
        }
        for knob in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            sh(&["ip", "netns", "exec", &t.f, "sysctl", "-q", "-w", knob]);
        }
        t
    }

    /// `nft ARGS` inside the firewall namespace.
    pub fn nft(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.f, "nft"];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// A named counter of the agent's table: (packets, bytes).
    pub fn counter(&self, table: &str, name: &str) -> u64 {
        let json = self.nft(&["-j", "list", "counter", "inet", table, name]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("nft JSON");
        v["nftables"]
            .as_array()
            .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
            .expect("counter packets")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.a, &self.f, &self.b, &self.p] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A process in its own process group, killed with its group on drop.
pub struct Guard(pub Option<Child>);

impl Guard {
    /// Spawns `cmd` in a new process group.
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.process_group(0);
        Guard(Some(cmd.spawn().expect("spawn")))
    }

    /// Kills the group (SIGKILL) and reaps the child.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `sipsd-fw run` in the firewall namespace with `config`, logging to `log`.
pub fn start_agent(bin: &Path, topo: &Topology, config: &Path, log: &Path) -> Guard {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("agent log");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &topo.f])
        .arg(bin)
        .arg("run")
        .arg("-c")
        .arg(config)
        .stdout(out.try_clone().expect("log"))
        .stderr(out);
    Guard::spawn(cmd)
}

/// Writes a MAC key file as sipsd-fw reads it: hex, mode 0600.
pub fn write_key(path: &Path, key: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    writeln!(f, "{}", sipsd::hex::encode(key)).expect("key file");
}

/// A PCP client whose socket lives in namespace `ns`, with `key` (id 1) if given.
pub fn pcp_client(
    ns: &str,
    server: SocketAddr,
    key: Option<&[u8]>,
    irt: Duration,
) -> sipsd::pcp::Client {
    in_ns(ns, || {
        let mut cfg = sipsd::pcp::ClientConfig::new(server);
        cfg.key = key.map(|k| sipsd::pcp::AuthKey::new(1, k).expect("key"));
        cfg.initial_retransmit = irt;
        sipsd::pcp::Client::new(cfg).expect("client")
    })
}

/// RTP-shaped datagrams (version 2, PCMU, 160 bytes of payload) from `from` (in `from_ns`)
/// to `to` (in `to_ns`); returns how many arrived.
pub fn rtp_probe(from_ns: &str, from: SocketAddr, to_ns: &str, to: SocketAddr, n: u16) -> u16 {
    let rx = in_ns(to_ns, || UdpSocket::bind(to).expect("bind receiver"));
    let tx = in_ns(from_ns, || UdpSocket::bind(from).expect("bind sender"));
    rx.set_nonblocking(true).expect("nonblocking");
    for seq in 0..n {
        let mut pkt = vec![0x80, 0x00];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x5195_0001u32.to_be_bytes());
        pkt.resize(12 + 160, 0xff);
        // A dropped datagram is not an error for the sender (no ICMP from nftables drop).
        let _ = tx.send_to(&pkt, to);
        std::thread::sleep(Duration::from_micros(500));
    }
    let until = Instant::now() + Duration::from_millis(150);
    let mut got = 0u16;
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        match rx.recv_from(&mut buf) {
            Ok((len, src)) if src == from && len == 172 => got += 1,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    got
}

/// Where the agent keeps a set: the mirror sets in `ip`/`ip6` TABLE_mirror, the others in
/// `inet` TABLE.
pub fn set_place(table: &str, set: &str) -> (&'static str, String) {
    match set {
        "mirror4" => ("ip", format!("{table}_mirror")),
        "mirror6" => ("ip6", format!("{table}_mirror")),
        _ => ("inet", table.to_string()),
    }
}

/// The agent's pinhole sets.
pub const PINHOLE_SETS: [&str; 8] = [
    "open4", "peer4", "flow4", "mirror4", "open6", "peer6", "flow6", "mirror6",
];

impl Topology {
    /// The elements of the agent's pinhole sets in `table`, without their remaining time.
    pub fn elements(&self, table: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for set in PINHOLE_SETS {
            let (fam, t) = set_place(table, set);
            let json = self.nft(&["-j", "list", "set", fam, &t, set]);
            let v: serde_json::Value = serde_json::from_str(&json).expect("nft JSON");
            for o in v["nftables"].as_array().into_iter().flatten() {
                for e in o["set"]["elem"].as_array().into_iter().flatten() {
                    out.insert(format!(
                        "{set} {} {}",
                        e["elem"]["val"], e["elem"]["comment"]
                    ));
                }
            }
        }
        out
    }

    /// Prints the elements of the agent's sets (`when`: before, during, after ...).
    pub fn show_sets(&self, table: &str, when: &str) {
        println!("  --- agent's sets {when} (nft list set inet {table} ...):");
        for set in PINHOLE_SETS {
            let (fam, t) = set_place(table, set);
            let text = self.nft(&["list", "set", fam, &t, set]);
            if set.ends_with('6') && !text.contains("elements") {
                continue;
            }
            let elems: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.contains("comment") || l.starts_with("elements"))
                .collect();
            println!(
                "      {set}: {}",
                if elems.is_empty() {
                    "(empty)".into()
                } else {
                    elems.join(" ")
                }
            );
        }
    }

    /// Sends 20 RTP packets from `from` to `to` (namespace, address) and checks that all
    /// arrive (`pass`) or none does, the nft counters `accepted` of `table` and `dropped` of
    /// `drops_in` agreeing; prints what it checked.
    pub fn expect_media(
        &self,
        table: &str,
        drops_in: &str,
        pass: bool,
        what: &str,
        from: (&str, SocketAddr),
        to: (&str, SocketAddr),
    ) {
        let (acc0, drop0) = (
            self.counter(table, "accepted"),
            self.counter(drops_in, "dropped"),
        );
        let got = rtp_probe(from.0, from.1, to.0, to.1, 20);
        let (acc1, drop1) = (
            self.counter(table, "accepted"),
            self.counter(drops_in, "dropped"),
        );
        let (acc, dropped) = (acc1 - acc0, drop1 - drop0);
        if pass {
            assert!(
                got == 20 && acc >= 20,
                "{what}: {got}/20 arrived, accepted +{acc}, dropped +{dropped}"
            );
        } else {
            assert!(
                got == 0 && dropped >= 20,
                "{what}: {got}/20 arrived, accepted +{acc}, dropped +{dropped}"
            );
        }
        println!(
            "  ok   {what} {} -> {}: {} ({got}/20 received; nft accepted +{acc}, dropped +{dropped})",
            from.1,
            to.1,
            if pass { "passes" } else { "dropped" }
        );
    }
}

/// A PCP client in this process's own namespace, key id 1.
pub fn pcp_client_here(server: SocketAddr, key: &[u8]) -> sipsd::pcp::Client {
    let mut cfg = sipsd::pcp::ClientConfig::new(server);
    cfg.key = Some(sipsd::pcp::AuthKey::new(1, key).expect("key"));
    cfg.initial_retransmit = Duration::from_millis(50);
    sipsd::pcp::Client::new(cfg).expect("client")
}
