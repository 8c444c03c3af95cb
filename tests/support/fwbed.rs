//! The firewall bed of the Kamailio pinhole and recording tests and the benchmark: the
//! agent's namespaces (tools/sipsd-fw/tests/support/netns.rs: caller net, fw, callee net), a
//! veth from this namespace to the firewall (P1's path to the agent), the agent (`sipsd-fw`)
//! started with a PCP MAC key, and P1's `sipsd-fw:` log lines. For recording: the recorder's
//! namespace ([`RecorderNs`]) on a link of its own to the firewall, which the agent mirrors
//! recorded media to, and on a link from this namespace (P1's key channel to `sipsd-rec`).
//!
//! ```text
//!   caller 10.77.1.2 ── fw (sipsd-fw) ── callee 10.77.2.2
//!                        │ fr 10.77.8.1      │ fc 10.77.3.1 (dup to)
//!   this namespace 10.77.8.2 (P1)      recorder m0 10.77.3.2 (capture)
//!                  10.77.7.2 ──────────────── k0 10.77.7.1 (key channel)
//! ```

#[path = "../../tools/sipsd-fw/tests/support/netns.rs"]
pub mod netns;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::kamailio::Kamailio;
use super::procs::wait_for;
use super::tools::{Need, Tools};
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
    super::dialog::srtp_sdp(user, addr, port, "WVNfUmVhbGx5U2VjcmV0U0RFU0tleU1hcmtlcjEy")
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

/// The binary of workspace package `name` (`sipsd-fw`, `sipsd-rec`), built if missing.
pub fn workspace_bin(root: &Path, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", name])
        .current_dir(root)
        .status()
        .unwrap_or_else(|e| panic!("cargo build -p {name}: {e}"));
    assert!(st.success() && bin.is_file(), "build {}", bin.display());
    bin
}

/// The agent binary of this workspace, built if missing.
pub fn agent_bin(root: &Path) -> PathBuf {
    workspace_bin(root, "sipsd-fw")
}

/// The recorder's address on its link to the firewall: where the agent's `dup to` sends
/// the copies (`sipsd-rec --iface REC_IFACE` captures them).
pub const REC_CAPTURE: &str = "10.77.3.2";
/// The recorder's interface toward the firewall, and the firewall's toward the recorder.
pub const REC_IFACE: &str = "m0";
pub const FW_TO_REC: &str = "fc";
/// The recorder's key-channel address, on its link from this namespace.
pub const REC_KEYS: &str = "10.77.7.1";

/// The recorder host: a namespace linked to the firewall (the mirrored copies) and to this
/// namespace (the key channel), which does not forward IP (a forwarding recorder would route
/// the copies, addressed to the callee, back into the core). Deleted on drop.
pub struct RecorderNs {
    pub ns: String,
    link: String,
}

impl RecorderNs {
    pub fn new(topo: &Topology) -> RecorderNs {
        let ns = format!("{}m", topo.f);
        netns::sh(&["ip", "netns", "add", &ns]);
        let r = RecorderNs {
            ns,
            link: format!("srk{}", std::process::id()),
        };
        netns::sh(&["ip", "-n", &r.ns, "link", "set", "lo", "up"]);
        let (f, m) = (topo.f.as_str(), r.ns.as_str());
        let link = r.link.as_str();
        netns::sh(&[
            "ip", "-n", f, "link", "add", FW_TO_REC, "type", "veth", "peer", "name", REC_IFACE,
            "netns", m,
        ]);
        netns::sh(&[
            "ip", "link", "add", link, "type", "veth", "peer", "name", "k0", "netns", m,
        ]);
        let fw_side = "10.77.3.1/24".to_string();
        let rec_side = format!("{REC_CAPTURE}/24");
        let keys = format!("{REC_KEYS}/30");
        for (ns, dev, addr) in [
            (Some(f), FW_TO_REC, fw_side.as_str()),
            (Some(m), REC_IFACE, rec_side.as_str()),
            (Some(m), "k0", keys.as_str()),
            (None, link, "10.77.7.2/30"),
        ] {
            let mut cmd = vec!["ip"];
            if let Some(ns) = ns {
                cmd.extend(["-n", ns]);
            }
            let mut add = cmd.clone();
            add.extend(["addr", "add", addr, "dev", dev]);
            netns::sh(&add);
            cmd.extend(["link", "set", dev, "up"]);
            netns::sh(&cmd);
        }
        for knob in ["net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"] {
            netns::sh(&["ip", "netns", "exec", m, "sysctl", "-q", "-w", knob]);
        }
        r
    }

    /// A command run in the recorder's namespace.
    pub fn exec(&self, prog: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(prog);
        c
    }
}

impl Drop for RecorderNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(std::process::Stdio::null())
            .status();
    }
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

    /// [`Bed::expect`] both ways between a caller's and a callee's endpoint, each named
    /// (`("caller", rtp)`): "WHAT: callee -> caller", then "WHAT: caller -> callee".
    pub fn expect_both_ways(
        &self,
        pass: bool,
        what: &str,
        caller: (&str, (&str, SocketAddr)),
        callee: (&str, (&str, SocketAddr)),
    ) {
        let ((caller_name, caller), (callee_name, callee)) = (caller, callee);
        self.expect(
            pass,
            &format!("{what}: {callee_name} -> {caller_name}"),
            callee,
            caller,
        );
        self.expect(
            pass,
            &format!("{what}: {caller_name} -> {callee_name}"),
            caller,
            callee,
        );
    }

    pub fn elements(&self) -> std::collections::BTreeSet<String> {
        self.topo.elements(TABLE)
    }
}

/// The start of a test through Kamailio and the pinhole agent in network namespaces: takes
/// `support::serial()`, then returns the tools it needs (Kamailio, kamcmd, the module, the
/// keys); None after SKIPPED, when it may not make namespaces or a tool is missing.
pub fn netns_kamailio(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Tools)> {
    let guard = super::serial();
    if netns::skip_unless_able(name) {
        return None;
    }
    let t = Tools::require(
        name,
        &[Need::Kamailio, Need::Kamcmd, Need::Module, Need::Keys],
    )?;
    Some((guard, t))
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
        let topo = Topology::new(tag);
        let (mut bed, link, key) = Bed::configured(topo, root, work, "");
        bed.start_agent();
        (bed, link, key)
    }

    /// [`Bed::up`] with the recorder's namespace, the agent configured to mirror to it
    /// (`recorder`, `recorder_device`: FIREWALL.md §10.1).
    pub fn up_mirrored(tag: &str, root: &Path, work: &WorkDir) -> (Bed, Link, PathBuf, RecorderNs) {
        let topo = Topology::new(tag);
        let rec = RecorderNs::new(&topo);
        let extra = format!("recorder = \"{REC_CAPTURE}\"\nrecorder_device = \"{FW_TO_REC}\"\n");
        let (mut bed, link, key) = Bed::configured(topo, root, work, &extra);
        bed.start_agent();
        (bed, link, key, rec)
    }

    /// The link to the firewall and the agent's key and configuration (`extra`: more
    /// top-level keys), the agent not started.
    fn configured(
        topo: Topology,
        root: &Path,
        work: &WorkDir,
        extra: &str,
    ) -> (Bed, Link, PathBuf) {
        let dir = work.path().to_path_buf();
        let link = Link::new(&topo);
        let key_path = dir.join("pcp.key");
        netns::write_key(&key_path, &KEY);
        std::fs::write(
            dir.join("fw.toml"),
            format!(
                "listen = \"{FW_LINK}:5351\"\nallow = [\"{HERE_LINK}\"]\ninterfaces = [\"fa\", \"fb\"]\n\
                 media_networks = [\"10.77.1.0/24\", \"10.77.2.0/24\"]\nmedia_ports = \"10000-65535\"\n\
                 min_lifetime = 2\n{extra}[[key]]\nid = 1\nfile = \"{}\"\n",
                key_path.display()
            ),
        )
        .unwrap();
        let bed = Bed {
            topo,
            dir,
            bin: agent_bin(root),
            agent: Guard(None),
        };
        (bed, link, key_path)
    }
}
