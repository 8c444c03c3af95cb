//! The Dockerised testbed of tests/docker_testbed.rs (docker/compose.yml): one compose project
//! per run, its containers and networks, SIPp runs in the caller and callee containers, and
//! the plaintext needles the core capture is searched for. Removed on drop, also when a check
//! fails. Shared by tests/docker_testbed.rs and tests/docker_cluster.rs (each uses part of it).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::calls::{read_rows, Row};
use crate::support::procs::{wait_for, wait_or_kill};
use crate::support::sipp::parse_trace;
use crate::support::tools::skip;

pub mod fw;
pub mod phones;
pub mod rec;

pub const SIP_PORT: u16 = 5060;
/// kamcmd on the containers' control socket
pub const CTL: &str = "kamcmd -s unix:/run/kamailio/kamailio_ctl";

pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `docker-compose` (v1) or the `docker compose` plugin, whichever exists.
pub fn compose_tool() -> Option<Vec<String>> {
    let ok = |c: &mut Command| {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(Command::new("docker-compose").arg("version")) {
        return Some(vec!["docker-compose".into()]);
    }
    if ok(Command::new("docker").args(["compose", "version"])) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    None
}

pub struct Testbed {
    pub root: PathBuf,
    pub compose: Vec<String>,
    /// the compose files, docker/compose.yml first
    pub files: Vec<PathBuf>,
    pub project: String,
    pub env: Vec<(String, String)>,
    pub work: PathBuf,
    pub net: String,
    up: bool,
}

impl Testbed {
    pub fn compose_cmd(&self) -> Command {
        let mut c = Command::new(&self.compose[0]);
        c.args(&self.compose[1..]);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(["-p", &self.project]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn compose(&self, args: &[&str]) -> Output {
        output(self.compose_cmd().args(args))
    }

    pub fn addr(&self, net: u8, host: u8) -> String {
        format!("{}.{net}.{host}", self.net)
    }

    pub fn container(&self, service: &str) -> String {
        let o = self.compose(&["ps", "-q", service]);
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(!id.is_empty(), "no container for {service}: {}", text(&o));
        id
    }

    /// `sh -c CMD` in a service's container.
    pub fn exec(&self, service: &str, cmd: &str) -> Output {
        let id = self.container(service);
        output(Command::new("docker").args(["exec", &id, "sh", "-c", cmd]))
    }

    pub fn spawn_exec(&self, service: &str, cmd: &str) -> Child {
        let id = self.container(service);
        Command::new("docker")
            .args(["exec", &id, "sh", "-c", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker exec")
    }

    pub fn logs(&self, service: &str) -> String {
        let id = self.container(service);
        text(&output(Command::new("docker").args(["logs", &id])))
    }

    pub fn inspect(&self, service: &str, fmt: &str) -> String {
        let id = self.container(service);
        String::from_utf8_lossy(
            &output(Command::new("docker").args(["inspect", "-f", fmt, &id])).stdout,
        )
        .trim()
        .to_string()
    }

    /// A kamcmd RPC command (`sipsd.stats`, `dispatcher.list` ...) in a service's container.
    pub fn rpc(&self, service: &str, cmd: &str) -> String {
        text(&self.exec(service, &format!("{CTL} {cmd}")))
    }

    /// A sipsd statistic of a service's Kamailio (0 when it has none).
    pub fn stat(&self, service: &str, name: &str) -> u64 {
        field(&self.rpc(service, "sipsd.stats"), name).unwrap_or(0)
    }

    /// `up -d` of these services, checked (`label` names the compose files in the line).
    pub fn start_services(&self, label: &str, services: &[&str]) {
        let mut up = vec!["up", "-d"];
        up.extend(services);
        let o = self.compose(&up);
        check!(
            o.status.success(),
            "compose project {} ({label}): {} {}",
            self.project,
            services.join(" "),
            if o.status.success() {
                String::new()
            } else {
                text(&o)
            }
        );
    }

    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    /// Wait until both proxies listen and the capture runs (as their logs say).
    pub fn wait_ready(&self, p1_starts: usize) {
        let ok = wait_for(Duration::from_secs(60), || {
            let p1 = self.logs("p1");
            p1.matches("ready (dialog callbacks").count() >= p1_starts
                && p1.matches("io_listen_loop").count() >= p1_starts
                && self.logs("p2").contains("probe_max_receive_buffer")
                && self.logs("tap").contains("listening on")
        });
        if !ok {
            println!("{}", self.logs("p1"));
        }
        check!(
            ok,
            "p1 (sipsd ready, start #{p1_starts}), p2 and the core capture are up"
        );
        // the UDP sockets exist once the log says so; give the workers a moment
        std::thread::sleep(Duration::from_millis(500));
    }

    pub fn down(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        let o = self.compose(&["down", "-v", "--remove-orphans", "-t", "3"]);
        if !o.status.success() {
            eprintln!("compose down: {}", text(&o));
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::thread::panicking() && self.up {
            for s in [
                "p1", "p2", "lb", "p1a", "p1b", "edgea", "edgeb", "alice", "bob", "fw", "rec",
            ] {
                let id = self.compose(&["ps", "-q", s]);
                let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
                if !id.is_empty() && id.lines().count() == 1 {
                    let log = text(&output(
                        Command::new("docker").args(["logs", "--tail", "60", &id]),
                    ));
                    eprintln!("----- last log lines of {s} -----\n{log}");
                }
            }
        }
        self.down();
        if std::env::var_os("SIPSD_DOCKER_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.work);
        }
    }
}

/// A `name: number` field of an RPC answer (the last one when several structs have it).
pub fn field(answer: &str, name: &str) -> Option<u64> {
    answer
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.trim() == name)
        .filter_map(|(_, v)| v.trim().parse().ok())
        .next_back()
}

/// A `10.X` prefix whose 10.X.1-3.0/24 no Docker network uses yet.
pub fn free_net_prefix() -> String {
    let o = output(Command::new("sh").args([
        "-c",
        "docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'",
    ]));
    let used = String::from_utf8_lossy(&o.stdout).to_string();
    for x in 231..=250 {
        let p = format!("10.{x}.");
        if !used.split_whitespace().any(|s| s.starts_with(&p)) {
            return format!("10.{x}");
        }
    }
    panic!("no free 10.231-250 prefix for the testbed networks");
}

pub struct Run {
    /// host directory (under the work dir, /work/NAME in the UA containers)
    pub dir: PathBuf,
    pub name: String,
    pub rows: Vec<Row>,
}

pub struct SippResult {
    pub uac: Option<ExitStatus>,
    pub uas: Option<ExitStatus>,
    pub successful: usize,
    pub failed: usize,
}

impl Testbed {
    /// `sipsd sipp-calls` in the caller's container: N calls for the callee and proxy1.
    pub fn make_calls(&self, name: &str, calls: usize) -> Run {
        let o = self.exec(
            "uac",
            &format!(
                "sipsd sipp-calls --calls {calls} --callee-cert /etc/sipsd/certs/callee.crt \
                 --proxy-cert /etc/sipsd/certs/proxy1.crt --out-dir /work/{name}"
            ),
        );
        check!(
            o.status.success(),
            "uac: `sipsd sipp-calls --calls {calls}` wrote the injection files for run {name} ({})",
            text(&o).trim()
        );
        let dir = self.work.join(name);
        let rows = read_rows(&dir);
        Run {
            dir,
            name: name.to_string(),
            rows,
        }
    }

    /// The callee: `tests/sipp/uas.xml`, its pid in /work/NAME/uas.pid (so it can be stopped).
    pub fn start_uas(&self, run: &Run, calls: usize, timeout_s: u32) -> Child {
        let _ = fs::remove_file(run.dir.join("uas.pid"));
        let cmd = format!(
            "cd /work/{n} && echo $$ > uas.pid && exec sipp -sf /usr/share/sipsd/sipp/uas.xml \
             -inf uas.csv -i {ip} -p {SIP_PORT} -m {calls} -nostdin -timeout {timeout_s}s \
             -trace_msg -message_file uas-msgs.txt -trace_err -error_file uas-errors.txt \
             -trace_stat -stf uas-stat.csv >uas.out 2>&1",
            n = run.name,
            ip = self.addr(3, 13)
        );
        let child = self.spawn_exec("uas", &cmd);
        let up = wait_for(Duration::from_secs(20), || {
            self.exec(
                "uas",
                &format!("ss -Hlun 'sport = :{SIP_PORT}' | grep -q ."),
            )
            .status
            .success()
        });
        check!(
            up,
            "uas: SIPp callee listening on {}:{SIP_PORT}",
            self.addr(3, 13)
        );
        child
    }

    pub fn stop_uas(&self, run: &Run) {
        if let Ok(pid) = fs::read_to_string(run.dir.join("uas.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() {
                let _ = self.exec("uas", &format!("kill {pid} 2>/dev/null; true"));
            }
        }
    }

    /// The caller: scenario `scenario` (a path inside the uac container), one call at a time.
    pub fn start_uac(&self, run: &Run, scenario: &str, calls: usize) -> Child {
        let cmd = format!(
            "cd /work/{n} && exec sipp {p1}:{SIP_PORT} -sf {scenario} -inf uac.csv -i {ip} \
             -p {SIP_PORT} -m {calls} -l 1 -r 2 -nostdin -timeout 120s -timeout_error \
             -recv_timeout 20s -trace_msg -message_file uac-msgs.txt -trace_err \
             -error_file uac-errors.txt >uac.out 2>&1",
            n = run.name,
            p1 = self.addr(1, 11),
            ip = self.addr(1, 10)
        );
        self.spawn_exec("uac", &cmd)
    }

    pub fn finish(&self, run: &Run, mut uac: Child, mut uas: Child) -> SippResult {
        let uac_st = wait_or_kill(&mut uac, Duration::from_secs(150));
        let uas_st = wait_or_kill(&mut uas, Duration::from_secs(30));
        if uas_st.is_none() {
            self.stop_uas(run);
        }
        let out = fs::read_to_string(run.dir.join("uac.out")).unwrap_or_default();
        let count = |label: &str| -> usize {
            out.lines()
                .filter(|l| l.trim_start().starts_with(label))
                .filter_map(|l| l.split('|').nth(2))
                .filter_map(|c| c.trim().parse().ok())
                .next_back()
                .unwrap_or(0)
        };
        SippResult {
            uac: uac_st,
            uas: uas_st,
            successful: count("Successful call"),
            failed: count("Failed call"),
        }
    }

    /// uac.xml with a long pause after the first ACK: the dialog stays open while the test
    /// restarts P1 or cuts its link. Derived from tests/sipp/uac.xml at run time.
    pub fn pause_scenario(&self, run: &Run, pause_ms: u32) -> String {
        let xml = fs::read_to_string(self.root.join("tests/sipp/uac.xml")).expect("uac.xml");
        let marker = "<pause milliseconds=\"100\"/>";
        assert!(
            xml.contains(marker),
            "tests/sipp/uac.xml has no {marker} after the ACK to lengthen"
        );
        let xml = xml.replacen(marker, &format!("<pause milliseconds=\"{pause_ms}\"/>"), 1);
        fs::write(run.dir.join("uac-pause.xml"), xml).expect("write uac-pause.xml");
        format!("/work/{}/uac-pause.xml", run.name)
    }
}

/// The Call-ID of the first INVITE the caller of `run` sent.
pub fn first_call_id(run: &Run) -> String {
    parse_trace(&run.dir.join("uac-msgs.txt"))
        .iter()
        .find(|m| m.sent && m.cseq() == "1 INVITE")
        .map(|m| m.call_id().to_string())
        .unwrap_or_else(|| panic!("FAILED: no INVITE in the SIPp trace of {}", run.name))
}

/// Wait until the caller has sent `n` messages whose CSeq is `cseq` (e.g. "1 ACK").
pub fn wait_sent(run: &Run, cseq: &str, n: usize, limit: Duration) -> bool {
    wait_for(limit, || {
        parse_trace(&run.dir.join("uac-msgs.txt"))
            .iter()
            .filter(|m| m.sent && m.cseq() == cseq)
            .count()
            >= n
    })
}

pub fn open_on_host(
    cli: &Path,
    keys: &Path,
    work: &Path,
    b64: &str,
    cek_out: Option<&Path>,
) -> Output {
    static N: AtomicUsize = AtomicUsize::new(0);
    let f = work.join(format!("body-{}.b64", N.fetch_add(1, Ordering::Relaxed)));
    fs::write(&f, b64).expect("write body");
    let mut c = Command::new(cli);
    c.arg("open")
        .arg("--key")
        .arg(format!(
            "{}:{}",
            keys.join("callee.key").display(),
            keys.join("callee.crt").display()
        ))
        .arg("--in")
        .arg(&f);
    if let Some(p) = cek_out {
        c.arg("--cek-out").arg(p);
    }
    output(&mut c)
}

/// The strings that betray a plaintext SDP of these calls: media address lines, the a=crypto
/// keys (opened with the callee's key on the host), the `v=0` line.
pub fn plaintext_needles(cli: &Path, keys: &Path, work: &Path, rows: &[Row]) -> Vec<String> {
    let mut needles = vec![
        "v=0\r\n".to_string(),
        "IN IP4 192.0.2.".to_string(),
        "a=crypto:".to_string(),
    ];
    for r in rows {
        for b64 in [&r.uac[0], &r.uac[2]] {
            let o = open_on_host(cli, keys, work, b64, None);
            assert!(
                o.status.success(),
                "callee key opens the offer: {}",
                text(&o)
            );
            let sdp = String::from_utf8_lossy(&o.stdout);
            for l in sdp.lines() {
                if let Some(k) = l.split("inline:").nth(1) {
                    needles.push(k.trim().to_string());
                }
            }
        }
        for m in [&r.offer, &r.answer, &r.rotated] {
            needles.push(format!("c=IN IP4 {}", m.split(':').next().unwrap_or("")));
        }
    }
    needles.sort();
    needles.dedup();
    needles
}

/// Builds (or reuses) the images and makes the compose project of `extra` compose files on
/// top of docker/compose.yml (nothing started yet): None after SKIPPED when there is no Docker
/// engine, no compose or no build/sipsd.so.
pub fn create(root: &Path, cli: &Path, keys: &Path, extra: &[&str]) -> Option<Testbed> {
    if !docker_available() {
        return skip("SIPSD_REQUIRE_DOCKER", "no docker");
    }
    let Some(compose) = compose_tool() else {
        return skip("SIPSD_REQUIRE_DOCKER", "no docker-compose / docker compose");
    };
    if !root.join("build/sipsd.so").is_file() || !root.join("build/libsipsd.so").is_file() {
        return skip("SIPSD_REQUIRE_DOCKER", "no build/sipsd.so (run make)");
    }
    println!("Docker testbed ({})", compose.join(" "));

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    let project = format!("sipsdt{}x{stamp}", std::process::id());
    let work = std::env::temp_dir().join(format!("{project}.work"));
    fs::create_dir_all(&work).expect("work dir");
    let mut build = Command::new(root.join("docker/build-images"));
    build
        .arg("--env-file")
        .arg(work.join("images.env"))
        .env("SIPSD_CLI", cli);
    for (var, package) in [("SIPSD_FW", "sipsd-fw"), ("SIPSD_REC", "sipsd-rec")] {
        if std::env::var_os(var).is_none() {
            build.env(var, workspace_bin(root, cli, package));
        }
    }
    let o = output(&mut build);
    check!(
        o.status.success(),
        "docker/build-images: images built or reused by input hash\n{}",
        String::from_utf8_lossy(&o.stdout).trim()
    );
    let mut env: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let net = free_net_prefix();
    env.push(("SIPSD_NET".into(), net.clone()));
    env.push(("SIPSD_KEYS".into(), keys.display().to_string()));
    env.push(("SIPSD_WORK".into(), work.display().to_string()));
    env.push(("SIPSD_DEFINES".into(), String::new()));

    let mut files = vec![root.join("docker/compose.yml")];
    files.extend(extra.iter().map(|f| root.join(f)));
    Some(Testbed {
        root: root.to_path_buf(),
        compose,
        files,
        project,
        env,
        work,
        net,
        up: true,
    })
}

/// The binary of a workspace package beside the CLI (the same cargo profile), brought up to
/// date by cargo (`cargo test` builds only this crate's binaries): the firewall agent
/// `sipsd-fw`, which the proxy image carries (the `fw` host of docker/compose.phones.yml),
/// and the recorder `sipsd-rec` of the recorder image (its `rec` host).
pub fn workspace_bin(root: &Path, cli: &Path, package: &str) -> PathBuf {
    let bin = cli.with_file_name(package);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "-q", "-p", package]).current_dir(root);
    if cli.parent().is_some_and(|d| d.ends_with("release")) {
        c.arg("--release");
    }
    let st = c
        .status()
        .unwrap_or_else(|e| panic!("cargo build -p {package}: {e}"));
    assert!(st.success() && bin.is_file(), "build {}", bin.display());
    bin
}

/// [`create`], then every service of docker/compose.yml started and checked: None after
/// SKIPPED.
pub fn up(root: &Path, cli: &Path, keys: &Path) -> Option<Testbed> {
    let tb = create(root, cli, keys, &[])?;
    let o = tb.compose(&["up", "-d"]);
    check!(
        o.status.success(),
        "compose project {}: networks {n}.1.0/24 (A), {n}.2.0/24 (core), {n}.3.0/24 (B), containers uac p1 p2 uas tap{}",
        tb.project,
        if o.status.success() { String::new() } else { text(&o) },
        n = tb.net
    );
    tb.wait_ready(1);
    let p1_a = tb.inspect(
        "p1",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            tb.network("a")
        ),
    );
    let p1_core = tb.inspect(
        "p1",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            tb.network("core")
        ),
    );
    check!(
        p1_a == tb.addr(1, 11) && p1_core == tb.addr(2, 11),
        "p1 has its own address on A ({p1_a}) and on core ({p1_core})"
    );
    let psx = tb.exec("p1", "kamcmd -s unix:/run/kamailio/kamailio_ctl core.psx");
    let receivers = text(&psx).matches("udp receiver").count();
    check!(
        receivers >= 8,
        "p1: {receivers} UDP worker processes (children=4 on each of its 2 sockets)"
    );
    Some(tb)
}
