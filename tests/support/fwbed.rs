//! The firewall bed of the Kamailio pinhole test and benchmark: the agent's namespaces
//! (tools/sipsd-fw/tests/support/netns.rs: caller net, fw, callee net), a veth from this
//! namespace to the firewall (P1's path to the agent), the agent (`sipsd-fw`) started with a
//! PCP MAC key, and P1's `sipsd-fw:` log lines.

#[path = "../../tools/sipsd-fw/tests/support/netns.rs"]
pub mod netns;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::kamailio::Kamailio;
use super::procs::wait_for;
use super::work::WorkDir;
use netns::{Guard, Topology};

pub const TABLE: &str = "sipsd";
pub const KEY: [u8; 32] = *b"kamailio pinholes key, 32 bytes!";
pub const FW_LINK: &str = "10.77.8.1";
pub const HERE_LINK: &str = "10.77.8.2";

pub fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

pub fn sdp(user: &str, addr: &str, port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no={user} 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfUmVhbGx5U2VjcmV0U0RFU0tleU1hcmtlcjEy\r\n"
    )
    .into_bytes()
}

/// A veth between this namespace (HERE_LINK) and the firewall's (FW_LINK): P1's path to the
/// agent. Deleted with the firewall namespace, and on drop.
pub struct Link(String);

impl Link {
    pub fn new(topo: &Topology) -> Link {
        let name = format!("sph{}", std::process::id());
        netns::sh(&[
            "ip", "link", "add", &name, "type", "veth", "peer", "name", "fr", "netns", &topo.f,
        ]);
        let l = Link(name);
        let here = format!("{HERE_LINK}/30");
        let fw = format!("{FW_LINK}/30");
        netns::sh(&["ip", "addr", "add", &here, "dev", &l.0]);
        netns::sh(&["ip", "link", "set", &l.0, "up"]);
        netns::sh(&["ip", "-n", &topo.f, "addr", "add", &fw, "dev", "fr"]);
        netns::sh(&["ip", "-n", &topo.f, "link", "set", "fr", "up"]);
        l
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The agent binary of this workspace, built if missing.
pub fn agent_bin(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/sipsd-fw");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", "sipsd-fw"])
        .current_dir(root)
        .status()
        .expect("cargo build -p sipsd-fw");
    assert!(st.success() && bin.is_file(), "build {}", bin.display());
    bin
}

pub struct Bed {
    pub topo: Topology,
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub agent: Guard,
}

impl Bed {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    pub fn start_agent(&mut self) {
        self.agent = netns::start_agent(
            &self.bin,
            &self.topo,
            &self.dir.join("fw.toml"),
            &self.dir.join("agent.log"),
        );
        let client = netns::pcp_client_here(sa(FW_LINK, 5351), &KEY);
        let t = Instant::now();
        while !client
            .announce(Duration::from_millis(200))
            .unwrap()
            .all_succeeded()
        {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "agent did not answer; log:\n{}",
                self.log_text()
            );
        }
    }

    pub fn expect(&self, pass: bool, what: &str, from: (&str, SocketAddr), to: (&str, SocketAddr)) {
        self.topo.expect_media(TABLE, TABLE, pass, what, from, to);
    }

    pub fn elements(&self) -> std::collections::BTreeSet<String> {
        self.topo.elements(TABLE)
    }
}

/// P1's `sipsd-fw:` line for `call` and `what` (INVITE, INVITE200), once it is logged.
pub fn fw_line(p1: &Kamailio, call: &str, what: &str) -> Option<String> {
    let needle = format!("sipsd-fw: call={call} what={what} ");
    let mut found = None;
    wait_for(Duration::from_secs(5), || {
        found = p1
            .log_text()
            .lines()
            .rev()
            .find(|l| l.contains(&needle))
            .map(|l| l[l.find("sipsd-fw:").unwrap_or(0)..].to_string());
        found.is_some()
    });
    found
}

impl Bed {
    /// The namespaces (names tagged with `tag`), the link to the firewall, the agent's key and
    /// configuration in `work`, the agent started and answering.
    pub fn up(tag: &str, root: &Path, work: &WorkDir) -> (Bed, Link, PathBuf) {
        let dir = work.path().to_path_buf();
        let topo = Topology::new(tag);
        let link = Link::new(&topo);
        let key_path = dir.join("pcp.key");
        netns::write_key(&key_path, &KEY);
        std::fs::write(
            dir.join("fw.toml"),
            format!(
                "listen = \"{FW_LINK}:5351\"\nallow = [\"{HERE_LINK}\"]\ninterfaces = [\"fa\", \"fb\"]\n\
                 media_networks = [\"10.77.1.0/24\", \"10.77.2.0/24\"]\nmedia_ports = \"10000-65535\"\n\
                 min_lifetime = 2\n[[key]]\nid = 1\nfile = \"{}\"\n",
                key_path.display()
            ),
        )
        .unwrap();
        let mut bed = Bed {
            topo,
            dir,
            bin: agent_bin(root),
            agent: Guard(None),
        };
        bed.start_agent();
        (bed, link, key_path)
    }
}
