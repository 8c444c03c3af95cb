//! The firewall host `fw` of docker/compose.phones.yml: sipsd-fw's table `inet sipsd` read
//! with `nft -j list table inet sipsd` in the container (its counters and set elements), and
//! UDP datagrams sent from a phone's container, optionally from a given source port; the
//! checks of tests/docker_phones.rs on the agent during and after the call (its pinholes, and
//! the mirror set `mirror4` of `ip sipsd_mirror`: what it copies to the recorder).

use std::time::Duration;

use serde_json::Value;

use super::{text, Testbed};
use crate::support::procs::wait_for;

/// A MAC key file as the agent and the module read it: hex, mode 0600.
pub fn write_key(path: &std::path::Path, key: &[u8]) {
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

/// One element of one of the agent's sets: `set` (open4, peer4, flow4 ...), its key as nft
/// prints it (`a . b . c`), its comment (`n=<nonce>`) and seconds left.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub set: String,
    pub key: String,
    pub comment: String,
    pub expires: u64,
}

/// The agent's table at one moment.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub accepted: u64,
    pub dropped: u64,
    pub elements: Vec<Element>,
    pub sets: Vec<String>,
}

impl Table {
    pub fn of_set(&self, set: &str) -> Vec<&Element> {
        self.elements.iter().filter(|e| e.set == set).collect()
    }

    /// The elements whose key mentions `addr` (an address of the call).
    pub fn mentioning(&self, addr: &str) -> Vec<&Element> {
        self.elements
            .iter()
            .filter(|e| e.key.split(" . ").any(|p| p == addr))
            .collect()
    }

    /// One line per set with elements (all sets listed), and the counters.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "counters accepted {} dropped {}; sets {}",
            self.accepted,
            self.dropped,
            self.sets.join(" ")
        );
        if self.elements.is_empty() {
            s.push_str("; no elements");
        }
        for e in &self.elements {
            s.push_str(&format!(
                "\n      {}: {} expires {}s {}",
                e.set, e.key, e.expires, e.comment
            ));
        }
        s
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("concat") => o["concat"]
            .as_array()
            .map(|a| a.iter().map(scalar).collect::<Vec<_>>().join(" . "))
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Parses `nft -j list table inet sipsd`.
pub fn parse_table(json: &str) -> Table {
    let v: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("FAILED: nft -j output is not JSON ({e}): {json}"));
    let mut t = Table::default();
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("counter") {
            let n = c["packets"].as_u64().unwrap_or(0);
            match c["name"].as_str() {
                Some("accepted") => t.accepted = n,
                Some("dropped") => t.dropped = n,
                _ => {}
            }
        }
        if let Some(s) = item.get("set") {
            let name = s["name"].as_str().unwrap_or("").to_string();
            t.sets.push(name.clone());
            for e in s["elem"].as_array().into_iter().flatten() {
                let (val, inner) = match e.get("elem") {
                    Some(inner) => (&inner["val"], inner),
                    None => (e, e),
                };
                t.elements.push(Element {
                    set: name.clone(),
                    key: scalar(val),
                    comment: inner["comment"].as_str().unwrap_or("").to_string(),
                    expires: inner["expires"].as_u64().unwrap_or(0),
                });
            }
        }
    }
    t
}

impl Testbed {
    /// The agent's table in `fw`, parsed.
    pub fn fw_table(&self) -> Table {
        self.nft_table("inet sipsd")
    }

    /// The agent's mirror table in `fw` (`ip sipsd_mirror`: the set `mirror4` of the
    /// destinations whose packets are copied to the recorder), parsed.
    pub fn fw_mirror(&self) -> Table {
        self.nft_table("ip sipsd_mirror")
    }

    fn nft_table(&self, table: &str) -> Table {
        let o = self.exec("fw", &format!("nft -j list table {table}"));
        assert!(
            o.status.success(),
            "FAILED: fw: nft -j list table {table}: {}",
            text(&o)
        );
        parse_table(&String::from_utf8_lossy(&o.stdout))
    }

    /// `count` UDP datagrams from `service`'s container to `to` (addr:port), from source port
    /// `from_port` (0: any), 20 ms apart (perl: the one scripting language of every image).
    pub fn send_udp(&self, service: &str, to: &str, from_port: u16, count: u32) {
        let (addr, port) = to.rsplit_once(':').expect("addr:port");
        let local = if from_port == 0 {
            String::new()
        } else {
            format!("LocalPort => {from_port}, ReuseAddr => 1, ")
        };
        // single-quoted for sh: the script itself has no single quote
        let script = format!(
            "use IO::Socket::INET; my $s = IO::Socket::INET->new(Proto => q(udp), {local}\
             PeerAddr => q({addr}), PeerPort => {port}) or die qq(socket: $!); \
             for (1..{count}) {{ $s->send(qq(sipsd probe $_)); select(undef, undef, undef, 0.02) }}"
        );
        let o = self.exec(service, &format!("perl -e '{script}'"));
        check!(
            o.status.success(),
            "{service}: {count} UDP datagrams to {to} from port {} sent ({})",
            if from_port == 0 {
                "any".to_string()
            } else {
                from_port.to_string()
            },
            text(&o).trim()
        );
    }
}

/// The call's RTP flow as the agent holds it: alice's and bob's media address:port, and the
/// dialog's nonce (the elements' comment).
pub struct Flow {
    pub alice: String,
    pub bob: String,
    pub nonce: String,
}

/// During the call (after the resume): the agent's table, p1's RPC, the counters.
pub fn during_call(tb: &Testbed, call: &str) -> Flow {
    let (a_media, b_media) = (tb.addr(5, 31), tb.addr(6, 32));
    let t1 = tb.fw_table();
    println!("  fw during the call: {}", t1.summary());
    // flow4: peer . port . media . port; the RTP flow is the one of the lowest ports
    let flows: Vec<(String, String)> = t1
        .of_set("flow4")
        .iter()
        .filter_map(|e| {
            let p: Vec<&str> = e.key.split(" . ").collect();
            (p.len() == 4).then(|| (format!("{}:{}", p[0], p[1]), format!("{}:{}", p[2], p[3])))
        })
        .map(|(x, y)| {
            if x.starts_with(&a_media) {
                (x, y)
            } else {
                (y, x)
            }
        })
        .filter(|(x, y)| {
            x.starts_with(&format!("{a_media}:")) && y.starts_with(&format!("{b_media}:"))
        })
        .collect();
    // each party's mapping holds the flow from its side: the same pair twice
    let flows: Vec<(String, String)> = flows
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let nonces: std::collections::BTreeSet<&str> = t1
        .mentioning(&a_media)
        .iter()
        .chain(t1.mentioning(&b_media).iter())
        .map(|e| e.comment.as_str())
        .collect();
    let (alice, bob) = flows.iter().min().cloned().unwrap_or_default();
    check!(
        !flows.is_empty() && nonces.len() == 1,
        "fw: the agent holds the call's flows {a_media} <-> {b_media} exactly ({flows:?}), all under one dialog nonce {nonces:?}"
    );
    let rpc = tb.rpc("p1", "sipsd.pinholes");
    check!(
        rpc.contains(call) && rpc.contains(&a_media) && rpc.contains(&b_media),
        "p1: sipsd.pinholes lists the call {call} with both media addresses:\n{}",
        rpc.trim()
    );
    std::thread::sleep(Duration::from_secs(1));
    let t2 = tb.fw_table();
    check!(
        t2.accepted >= t1.accepted + 50,
        "fw: the pinholes let the media through: `accepted` {} -> {} in about a second",
        t1.accepted,
        t2.accepted
    );
    let port: u16 = bob
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let other = format!("{b_media}:{}", port + 10);
    tb.send_udp("alice", &other, 0, 20);
    let t3 = tb.fw_table();
    check!(
        t3.dropped >= t2.dropped + 20,
        "fw: 20 datagrams alice sent to another port of bob ({other}) were dropped: `dropped` {} -> {}",
        t2.dropped,
        t3.dropped
    );
    let nonce = nonces.into_iter().next().unwrap_or("").to_string();
    // the recorded call's media goes to the recorder too: RTP and RTCP towards each phone
    let mirror = tb.fw_mirror();
    let copied: std::collections::BTreeSet<String> = mirror
        .of_set("mirror4")
        .iter()
        .filter(|e| e.comment == nonce)
        .map(|e| e.key.replace(" . ", ":"))
        .collect();
    let plus_one = |a: &str| {
        let (h, p) = a.rsplit_once(':').unwrap_or((a, "0"));
        format!("{h}:{}", p.parse::<u16>().unwrap_or(0) + 1)
    };
    let want: std::collections::BTreeSet<String> =
        [alice.clone(), plus_one(&alice), bob.clone(), plus_one(&bob)].into();
    check!(
        copied == want && mirror.elements.len() == want.len(),
        "fw: the agent mirrors the call to the recorder: mirror4 holds {copied:?} under the call's nonce ({} elements in all)",
        mirror.elements.len()
    );
    Flow { alice, bob, nonce }
}

/// After the BYE: none of the call's elements, the old flow dropped, no refusal.
pub fn after_call(tb: &Testbed, flow: &Flow) {
    let mut t = Table::default();
    let gone = wait_for(Duration::from_secs(5), || {
        t = tb.fw_table();
        t.elements.iter().all(|e| e.comment != flow.nonce)
    });
    println!("  fw after the call: {}", t.summary());
    let mirror = tb.fw_mirror();
    check!(
        gone && mirror.elements.is_empty(),
        "fw: after the BYE the table holds none of the call's elements ({}), the mirror set none at all",
        flow.nonce
    );
    let from: u16 = flow
        .alice
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    tb.send_udp("alice", &flow.bob, from, 20);
    let t2 = tb.fw_table();
    check!(
        t2.dropped >= t.dropped + 20 && t2.accepted == t.accepted,
        "fw: 20 datagrams along the old flow {} -> {} were dropped: `dropped` {} -> {}, `accepted` stays {}",
        flow.alice,
        flow.bob,
        t.dropped,
        t2.dropped,
        t2.accepted
    );
    let log = tb.logs("fw");
    let granted = log
        .matches(&format!("n={}", flow.nonce.trim_start_matches("n=")))
        .count();
    check!(
        !log.contains("REFUSED") && granted >= 2,
        "fw: the agent refused nothing and answered {granted} requests of the call (open, refresh, delete)"
    );
}
