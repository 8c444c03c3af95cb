//! What the recorder's end-to-end test and benchmark share: tool checks, network namespaces
//! (a core router with the caller, the callee and the recorder behind it), process guards,
//! key-channel helpers and the signal measurements (dominant frequency).
#![allow(dead_code)]

// The benchmark prints a table instead of checks.
#[allow(unused_macros)]
#[macro_use]
#[path = "../../../../tests/support/check.rs"]
mod check;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sipsd::record::{
    ChannelSender, Codec, Direction, Endpoint, KeyMessage, MediaStream, SdesValue,
};
use zeroize::Zeroizing;

/// The first of `names` found on PATH (or /usr/sbin, /sbin).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True if every tool is there and we are root; otherwise prints SKIPPED (or panics with
/// SIPSD_REQUIRE_E2E=1).
pub fn prerequisites(tools: &[&str]) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| which(t).is_none())
        .map(|t| t.to_string())
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (network namespaces)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("needs {} (scripts/setup-deps)", missing.join(", "));
    if std::env::var("SIPSD_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("SIPSD_REQUIRE_E2E=1 but {msg}");
    }
    println!("SKIPPED: {msg}");
    false
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Proc` (a child in its own process group, stopped with it when dropped) and `check!` are
/// the root package's test support, shared rather than written again.
#[path = "../../../../tests/support/procs.rs"]
mod procs;
// The benchmark uses no signal_group.
#[allow(unused_imports)]
pub use procs::{signal_group, Proc};

/// Starts `cmd` as `name`, output in `log` (run from the log's directory).
pub fn launch(name: &str, cmd: &mut Command, log: &Path) -> Proc {
    let dir = log.parent().unwrap_or(Path::new("."));
    Proc::spawn_logged(name, dir, log.to_path_buf(), cmd)
}

/// Waiting for a child that should finish by itself.
pub trait Finished {
    /// True if it exited with success within `limit`.
    fn finished(&mut self, limit: Duration) -> bool;
}

impl Finished for Proc {
    fn finished(&mut self, limit: Duration) -> bool {
        self.wait(limit).is_some_and(|s| s.success())
    }
}

/// Network namespaces A (caller), B (callee), M (recorder), each on a veth to R (the core
/// router, which forwards and mirrors). Deleted when dropped.
pub struct Topology {
    pub tag: String,
    pub a: String,
    pub b: String,
    pub r: String,
    pub m: String,
    pub ip_a: String,
    pub ip_b: String,
    pub ip_m: String,
    /// R's interface toward the recorder.
    pub r_to_m: String,
    /// R's interface toward the callee.
    pub r_to_b: String,
}

pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

impl Topology {
    pub fn new(tag: &str) -> Topology {
        let t = format!("{tag}{}", std::process::id() % 100000);
        let n = |x: &str| format!("{t}{x}");
        let topo = Topology {
            a: n("a"),
            b: n("b"),
            r: n("r"),
            m: n("m"),
            ip_a: "10.241.1.2".into(),
            ip_b: "10.241.2.2".into(),
            ip_m: "10.241.3.2".into(),
            r_to_m: "r-m".into(),
            r_to_b: "r-b".into(),
            tag: t,
        };
        for ns in [&topo.a, &topo.b, &topo.r, &topo.m] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        for (ns, peer, net) in [
            (&topo.a, "r-a", 1),
            (&topo.b, "r-b", 2),
            (&topo.m, "r-m", 3),
        ] {
            ip(&[
                "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns",
                &topo.r,
            ]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.241.{net}.2/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.241.{net}.1"),
            ]);
            ip(&[
                "-n",
                &topo.r,
                "addr",
                "add",
                &format!("10.241.{net}.1/24"),
                "dev",
                peer,
            ]);
            ip(&["-n", &topo.r, "link", "set", peer, "up"]);
        }
        run(Command::new("ip").args([
            "netns",
            "exec",
            &topo.r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]));
        // The hosts must not route: the recorder above all, or it would send the mirrored
        // copies (addressed to the callee) back into the core (a new namespace may inherit
        // forwarding from the host's).
        for ns in [&topo.a, &topo.b, &topo.m] {
            run(Command::new("ip").args([
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
            ]));
        }
        topo
    }

    /// A command run inside namespace `ns`.
    pub fn exec(&self, ns: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]);
        c
    }

    /// The recorder's key-channel address in M.
    pub fn key_channel(&self) -> String {
        format!("{}:7070", self.ip_m)
    }

    /// `sipsd-rec run` in M on its interface, the key channel on [`Self::key_channel`],
    /// stopping after `calls` calls or `max_secs`, with further options `extra`. It writes
    /// `dir/recordings/`, `dir/rec-stats.json` and its log `dir/recorder.log`.
    pub fn start_recorder(
        &self,
        bin: &Path,
        kek_arg: &str,
        dir: &Path,
        calls: usize,
        max_secs: u64,
        extra: &[&str],
    ) -> Proc {
        let mut cmd = self.exec(&self.m, bin.to_str().unwrap());
        cmd.args([
            "run",
            "--iface",
            "eth0",
            "--listen",
            &self.key_channel(),
            "--kek",
            kek_arg,
        ])
        .args([
            "--max-seconds",
            &max_secs.to_string(),
            "--exit-after-calls",
            &calls.to_string(),
        ])
        .arg("--out")
        .arg(dir.join("recordings"))
        .arg("--stats-file")
        .arg(dir.join("rec-stats.json"))
        .args(extra);
        launch("sipsd-rec", &mut cmd, &dir.join("recorder.log"))
    }

    /// Sends sealed key messages to the recorder from R (where the proxy sits).
    pub fn key_send(&self, bin: &Path, files: &[PathBuf]) {
        run(self
            .exec(&self.r, bin.to_str().unwrap())
            .args(["key-send", "--to", &self.key_channel()])
            .args(files));
    }

    /// What the firewall agent installs for a recorded call: in R's forward path, a copy of
    /// every packet to each `(address, port)` goes to the recorder, the original goes on.
    pub fn mirror(&self, flows: &[(&str, u16)]) {
        let mut rules = String::from(
            "table ip sipsd_mirror {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n",
        );
        for (addr, port) in flows {
            rules.push_str(&format!(
                "  ip daddr {addr} udp dport {{ {port}, {} }} dup to {} device \"{}\"\n",
                port + 1,
                self.ip_m,
                self.r_to_m
            ));
        }
        rules.push_str(" }\n}\n");
        let path = std::env::temp_dir().join(format!("{}-mirror.nft", self.tag));
        std::fs::write(&path, rules).unwrap();
        run(self.exec(&self.r, "nft").arg("-f").arg(&path));
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b, &self.r, &self.m] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    use std::io::Read;
    let mut v = Zeroizing::new(vec![0u8; n]);
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut v)
        .unwrap();
    v
}

pub fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A G.711 audio stream of a key message.
pub fn pcmu_stream(
    mline: u16,
    dir: Direction,
    src: (&str, u16),
    dst: (&str, u16),
    key_b64: &str,
) -> MediaStream {
    MediaStream {
        mline,
        media: "audio".into(),
        direction: dir,
        source: Some(Endpoint {
            address: src.0.into(),
            port: src.1,
        }),
        destination: Endpoint {
            address: dst.0.into(),
            port: dst.1,
        },
        rtcp_mux: false,
        codecs: vec![Codec::new(0, "PCMU", 8000), Codec::new(8, "PCMA", 8000)],
        crypto: SdesValue::new(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key_b64}|2^31"))
            .unwrap(),
    }
}

/// Both directions of a PCMU call between `a` (caller) and `b` (callee), each side's key.
pub fn pcmu_call(a: (&str, u16), b: (&str, u16), key_a: &str, key_b: &str) -> Vec<MediaStream> {
    vec![
        pcmu_stream(0, Direction::CallerToCallee, a, b, key_a),
        pcmu_stream(0, Direction::CalleeToCaller, b, a, key_b),
    ]
}

/// The key channel's KEK, written where the recorder reads it (mode 0600); returns the
/// sender and the recorder's `--kek` value.
pub fn channel(dir: &Path, label: &str) -> (ChannelSender, String) {
    use std::os::unix::fs::PermissionsExt;
    let kek = random_bytes(32);
    let path = dir.join(format!("{label}.kek"));
    std::fs::write(&path, sipsd::hex::encode(&kek)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sender = ChannelSender::new(b"recorder-kek-1", kek).unwrap();
    (
        sender,
        format!(
            "id=text:recorder-kek-1;key={};label={label}",
            path.display()
        ),
    )
}

/// Seals `msg` and writes it to `path`.
pub fn seal_to(sender: &ChannelSender, msg: &KeyMessage, path: &Path) {
    std::fs::write(path, sender.seal(msg).unwrap()).unwrap();
}

/// The tone sender's ffmpeg arguments and the signal measurements (dominant frequency,
/// energy share, G.711 error, alignment): the root package's test support, shared.
#[path = "../../../../tests/support/tone.rs"]
mod tone;
// The benchmark uses none of them.
#[allow(unused_imports)]
pub use tone::*;
