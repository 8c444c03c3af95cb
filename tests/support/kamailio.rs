//! Kamailio proxies from cfg-examples, as the tests run them:
//!
//! - [`P1`]: trusted-proxy.cfg with the sipsd module (`build/`), proxy1's keys copied into a
//!   private `DIR/keys`, a private control socket for kamcmd;
//! - [`P2`]: untrusted-proxy.cfg, no module;
//! - [`EdgeKamailio`]: edge.cfg, sipsd in role edge, with a key directory the test prepares
//!   ([`edge_keys`]).
//!
//! ```ignore
//! let sink = Peer::answering(|m| Some(reply(m, 200, "OK")));
//! let p1 = P1::start(&t, &dir, &[("WITH_DIALOG", None), ("NEXT_HOP", Some(&next_hop(sink.port())))]);
//! p1.rpc_fields(&["sipsd.stats"]); p1.log_lines();
//! ```
//!
//! The command line comes from `scripts/lib/proxies.sh` (`sd_proxy_args`), the one place the
//! shell scripts take it from too. `start` returns once the UDP port is bound, the control
//! socket answers and the worker processes are all forked; the process group is killed when
//! the value drops.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::p1log::{parse_edge, parse_p1, parse_p2, EdgeLine, P1Line, P2Line};
use super::ports::{free_port, wait_bound, ADDR};
use super::procs::{wait_for, Proc};
use super::tools::Tools;

/// Which example configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// cfg-examples/trusted-proxy.cfg, sipsd loaded
    Trusted,
    /// cfg-examples/untrusted-proxy.cfg
    Untrusted,
    /// cfg-examples/edge.cfg, sipsd in role edge
    Edge,
}

/// A running Kamailio.
pub struct Kamailio {
    pub proc: Proc,
    pub role: Role,
    pub name: String,
    /// its UDP port on ADDR
    pub port: u16,
    /// kamcmd's `-s` argument (trusted only)
    pub ctl: Option<String>,
    /// the child processes once start-up settled
    pub workers: BTreeSet<u32>,
    kamcmd: PathBuf,
}

/// The trusted proxy.
pub struct P1;
/// The untrusted proxy.
pub struct P2;

impl P1 {
    /// trusted-proxy.cfg in `dir` with `defines` (`NEXT_HOP` among them: see [`next_hop`]).
    pub fn start(t: &Tools, dir: &Path, defines: &[(&str, Option<&str>)]) -> Kamailio {
        Kamailio::start(t, dir, Role::Trusted, "p1", defines)
    }
}

impl P2 {
    /// untrusted-proxy.cfg in `dir` with `defines` (`NEXT_HOP` among them).
    pub fn start(t: &Tools, dir: &Path, defines: &[(&str, Option<&str>)]) -> Kamailio {
        Kamailio::start(t, dir, Role::Untrusted, "p2", defines)
    }
}

/// An edge.
pub struct EdgeKamailio;

impl EdgeKamailio {
    /// edge.cfg in `dir` as `name`, with the keys of `keys` (see [`edge_keys`]) and `defines`
    /// (`NEXT_HOP`, the core side, and `LOCAL_UA` among them).
    pub fn start(
        t: &Tools,
        dir: &Path,
        name: &str,
        keys: &Path,
        defines: &[(&str, Option<&str>)],
    ) -> Kamailio {
        Kamailio::start_with_keys(t, dir, Role::Edge, name, Some(keys), defines)
    }
}

/// The key directory of an edge (edge.cfg's SIPSD_KEY_DIR) in `dir`: the local user's key and
/// certificate as local.key/local.crt, `proxy1.crt`, `peers/AOR.crt` for each of `peers`
/// (address of record, certificate file), `signers/` with `signers`; directory 0700, keys
/// 0600.
pub fn edge_keys(
    dir: &Path,
    local: (&Path, &Path),
    proxy_cert: &Path,
    peers: &[(&str, &Path)],
    signers: &[&Path],
) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    for sub in ["peers", "signers"] {
        fs::create_dir_all(dir.join(sub)).expect("create the edge's key directory");
    }
    fs::copy(local.0, dir.join("local.key")).expect("copy the local key");
    fs::copy(local.1, dir.join("local.crt")).expect("copy the local certificate");
    fs::copy(proxy_cert, dir.join("proxy1.crt")).expect("copy proxy1.crt");
    for (aor, cert) in peers {
        fs::copy(cert, dir.join("peers").join(format!("{aor}.crt"))).expect("copy a peer");
    }
    for (i, cert) in signers.iter().enumerate() {
        fs::copy(cert, dir.join("signers").join(format!("signer{i}.crt"))).expect("copy a signer");
    }
    let mode = |p: &Path, m| fs::set_permissions(p, fs::Permissions::from_mode(m)).expect("chmod");
    mode(&dir.join("local.key"), 0o600);
    mode(dir, 0o700);
    dir.to_path_buf()
}

/// The `NEXT_HOP` define for `ADDR:port` (a quoted SIP URI).
pub fn next_hop(port: u16) -> String {
    format!("\"sip:{ADDR}:{port}\"")
}

/// The Kamailio argument vector `scripts/lib/proxies.sh` makes for a proxy (and, for P1, the
/// private key directory it fills).
fn proxy_args(
    t: &Tools,
    dir: &Path,
    role: Role,
    name: &str,
    port: u16,
    keys: Option<&Path>,
    defines: &[String],
) -> Vec<String> {
    let script = r#"set -e
. "$SD_LIB"
SD_WORK=$1 role=$2 name=$3 port=$4
shift 4
if [ "$role" = p1 ]; then
    sd_keys "$SD_KEYS_SRC"
    SD_MODULE_DIR=$SD_BUILD
fi
if [ "$role" = edge ]; then
    SD_KEY_DIR=$SD_EDGE_KEYS
    SD_MODULE_DIR=$SD_BUILD
fi
sd_proxy_args "$role" "$name" "$port" - "$@"
printf '%s\0' "${SD_ARGS[@]}""#;
    let role = match role {
        Role::Trusted => "p1",
        Role::Untrusted => "p2",
        Role::Edge => "edge",
    };
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("proxies.sh")
        .arg(dir)
        .args([role, name, &port.to_string()])
        .args(defines)
        .env("SD_LIB", t.root.join("scripts/lib/proxies.sh"))
        .env("SD_KEYS_SRC", &t.keys)
        .env("SD_BUILD", &t.build)
        .env("SD_EDGE_KEYS", keys.unwrap_or(Path::new("")))
        .env("SD_ADDR", ADDR)
        .output()
        .expect("run bash for scripts/lib/proxies.sh");
    assert!(
        out.status.success(),
        "scripts/lib/proxies.sh sd_proxy_args {role} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Direct children of `pid` that are not zombies (from /proc/*/stat).
pub fn children_of(pid: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid = f.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) && state != "Z" {
            out.insert(p);
        }
    }
    out
}

/// The worker set of a Kamailio main process, once it stops growing (10 s at most).
pub fn stable_children(pid: u32) -> BTreeSet<u32> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = children_of(pid);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = children_of(pid);
        if (now == last && !now.is_empty()) || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

/// `name: value` lines of an RPC answer with a number as value.
pub fn numeric_fields(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
        .collect()
}

impl Kamailio {
    /// Starts `role`'s configuration in `dir` (log `dir/NAME.log`, runtime directory
    /// `dir/NAME`; NAME gets a suffix when `dir` already ran one of that name).
    pub fn start(
        t: &Tools,
        dir: &Path,
        role: Role,
        name: &str,
        defines: &[(&str, Option<&str>)],
    ) -> Kamailio {
        Kamailio::start_with_keys(t, dir, role, name, None, defines)
    }

    /// [`Kamailio::start`] with an edge's key directory.
    pub fn start_with_keys(
        t: &Tools,
        dir: &Path,
        role: Role,
        name: &str,
        keys: Option<&Path>,
        defines: &[(&str, Option<&str>)],
    ) -> Kamailio {
        let base = name;
        let mut name = base.to_string();
        let mut n = 1;
        while dir.join(format!("{name}.log")).exists() {
            n += 1;
            name = format!("{base}-{n}");
        }
        let defines: Vec<String> = defines
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.to_string(),
            })
            .collect();
        assert!(
            defines.iter().any(|d| d.starts_with("NEXT_HOP=")),
            "{name}: give NEXT_HOP among the defines (support::kamailio::next_hop)"
        );
        let port = free_port();
        let args = proxy_args(t, dir, role, &name, port, keys, &defines);
        let ctl = args
            .iter()
            .find_map(|a| a.strip_prefix("CTL_SOCKET="))
            .map(str::to_string);
        // Without cargo's LD_LIBRARY_PATH (target/debug/deps, ahead of the module's RUNPATH
        // $ORIGIN): P1 loads the libsipsd.so beside the sipsd.so it was given, the release
        // build `make` made, as an installed Kamailio does; not the test build's debug one.
        let mut kamailio = Command::new(&t.kamailio);
        kamailio.env_remove("LD_LIBRARY_PATH").args(&args);
        let mut proc = Proc::spawn(&name, dir, &mut kamailio);
        wait_bound(&mut proc, port);
        let mut k = Kamailio {
            proc,
            role,
            name,
            port,
            ctl,
            workers: BTreeSet::new(),
            kamcmd: t.kamcmd.clone(),
        };
        if k.ctl.is_some() && k.kamcmd.is_file() {
            let end = Instant::now() + Duration::from_secs(15);
            while k.rpc(&["core.uptime"]).is_empty() {
                assert!(k.proc.alive(), "{} exited at start", k.name);
                assert!(
                    Instant::now() < end,
                    "{}: the control socket does not answer",
                    k.name
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Workers are forked after the socket is bound: wait for the set to settle.
        k.workers = stable_children(k.pid());
        k
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn alive(&mut self) -> bool {
        self.proc.alive()
    }

    /// The child processes now.
    pub fn children(&self) -> BTreeSet<u32> {
        children_of(self.pid())
    }

    /// The main process and its children now.
    pub fn pids(&self) -> BTreeSet<u32> {
        let mut p = self.children();
        p.insert(self.pid());
        p
    }

    pub fn log_path(&self) -> &Path {
        &self.proc.log
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// P1's `sipsd:` lines so far.
    pub fn log_lines(&self) -> Vec<P1Line> {
        parse_p1(&self.log_text())
    }

    /// P1's `sipsd:` lines of `call` so far.
    pub fn log_lines_of(&self, call: &str) -> Vec<P1Line> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.call == call)
            .collect()
    }

    /// P2's `untrusted:` lines so far.
    pub fn p2_lines(&self) -> Vec<P2Line> {
        parse_p2(&self.log_text())
    }

    /// An edge's `edge:` lines so far.
    pub fn edge_lines(&self) -> Vec<EdgeLine> {
        parse_edge(&self.log_text())
    }

    /// The edge's lines for `call`, waiting (2 s at most) until at least `n` are there.
    pub fn edge_lines_of(&self, call: &str, n: usize) -> Vec<EdgeLine> {
        let mut lines = Vec::new();
        wait_for(Duration::from_secs(2), || {
            lines = self
                .edge_lines()
                .into_iter()
                .filter(|l| l.call == call)
                .collect();
            lines.len() >= n
        });
        lines
    }

    /// `kamcmd -s CTL ARGS...`: its standard output ("" without a control socket).
    pub fn rpc(&self, args: &[&str]) -> String {
        let Some(ctl) = &self.ctl else {
            return String::new();
        };
        Command::new(&self.kamcmd)
            .arg("-s")
            .arg(ctl)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The numeric `name: value` fields of an RPC answer (`sipsd.stats`, `core.shmmem`).
    pub fn rpc_fields(&self, args: &[&str]) -> BTreeMap<String, u64> {
        numeric_fields(&self.rpc(args))
    }

    /// One figure of `sipsd.stats`. The RPC lists every statistic the library has, so a
    /// missing one (a wrong name, or a node that does not answer) fails the test here.
    pub fn stat(&self, name: &str) -> u64 {
        match self.rpc_fields(&["sipsd.stats"]).get(name) {
            Some(v) => *v,
            None => panic!("sipsd.stats has no {name}: a wrong name, or the node does not answer"),
        }
    }

    /// Kamailio statistics of a group (`stats.get_statistics sipsd:`): `sipsd:errors` -> N.
    pub fn statistics(&self, group: &str) -> BTreeMap<String, u64> {
        self.rpc(&["stats.get_statistics", group])
            .lines()
            .filter_map(|l| l.trim().split_once(" = "))
            .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
            .collect()
    }

    /// Shared memory in use (`core.shmmem` real_used), bytes.
    pub fn shm_used(&self) -> u64 {
        self.rpc_fields(&["core.shmmem"])
            .get("real_used")
            .copied()
            .unwrap_or(0)
    }

    /// Waits (12 s at most) until tm has freed its transactions and shared memory stops
    /// changing, then reads it.
    pub fn settled_shm(&self) -> u64 {
        let end = Instant::now() + Duration::from_secs(12);
        let mut last = self.shm_used();
        let mut stable = 0;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.shm_used();
            let current = self
                .rpc_fields(&["tm.stats"])
                .get("current")
                .copied()
                .unwrap_or(1);
            if now == last && current == 0 {
                stable += 1;
                if stable >= 2 {
                    break;
                }
            } else {
                stable = 0;
            }
            last = now;
        }
        last
    }

    /// Sum of RssAnon (private memory: Kamailio's pkg pool and the Rust/C heap; shared memory
    /// pages each process touches are RssShmem and not counted) over its processes, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("RssAnon:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .sum()
    }

    /// Stops the whole process group (also done on drop).
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}
