//! The Debian packages, end to end (docs/PACKAGING.md):
//!
//! 1. `scripts/build-debs SUITE`: dpkg-buildpackage in a clean, offline container of
//!    each suite (Kamailio 5.6.3 on Debian 12, 6.0.1 on Debian 13); lintian of that suite on
//!    the result must report no error (its warnings are printed); the tools package's systemd
//!    units (sipsd-fw, sipsd-rec) parse and are confined (`systemd-analyze security`);
//! 2. reproducible: the Debian 12 packages built again from a fresh copy under another path
//!    (`--build-root /srv/sipsd-again`: the workspace's crates, the module and the packages are
//!    rebuilt; the vendored crates, whose paths do not change, come from cargo's cache) are byte
//!    for byte the same. The Debian 13 build runs beside the two Debian 12 builds (its output
//!    printed when it ends), a container each;
//! 3. in a clean container of the testbed's base image of each suite (sipsd-base:SUITE):
//!    `apt-get install ./kamailio-sipsd-module_*.deb ./sipsd_*.deb`, then a SIPp call through
//!    the packaged module with the packaged example cfg (trusted P1) and an untrusted P2, then
//!    `apt-get purge --autoremove` and the file lists compared (tests/packaging/install-check.sh).
//!
//! Needs a Docker engine (the images are built from debootstrap rootfs, no registry: about
//! 1 minute per suite once) and the host's Rust toolchain; without Docker it prints
//! "SKIPPED: no docker" and passes, unless SIPSD_REQUIRE_DOCKER=1.
//! Run: `cargo test --test packaging -- --nocapture`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {{
        let what = format!($($fmt)+);
        if $cond {
            println!("  ok   {what}");
        } else {
            panic!("FAILED: {what}");
        }
    }};
}

const SUITES: [(&str, &str); 2] = [("bookworm", "12"), ("trixie", "13")];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` with its output passed through, panicking with `what` if it fails.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "FAILED: {what}\n{stdout}");
    stdout
}

/// A command running beside others, its output kept in files until `finish` prints it (the
/// lines of two builds interleaved would be unreadable).
struct Background {
    what: String,
    child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    /// Starts `cmd`, its stdout and stderr written to `logs/SLUG.out` and `logs/SLUG.err`.
    fn spawn(what: &str, cmd: &mut Command, logs: &Path) -> Self {
        std::fs::create_dir_all(logs).unwrap_or_else(|e| panic!("{}: {e}", logs.display()));
        let slug: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let stdout = logs.join(format!("{slug}.out"));
        let stderr = logs.join(format!("{slug}.err"));
        let file =
            |p: &Path| std::fs::File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Background {
            what: what.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the command, prints its stderr, and panics with `what` if it failed (as `run`).
    fn finish(mut self) -> String {
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("{}: {e}", self.what));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        eprint!("{}", read(&self.stderr));
        let stdout = read(&self.stdout);
        assert!(status.success(), "FAILED: {}\n{stdout}", self.what);
        stdout
    }
}

impl Drop for Background {
    /// A check failed while the command runs: let it end before the test does (it writes
    /// under target/).
    fn drop(&mut self) {
        let _ = self.child.wait();
    }
}

fn sha256(path: &Path) -> String {
    let out = run(
        "sha256sum",
        Command::new("sha256sum").arg(path).stderr(Stdio::inherit()),
    );
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The .debs of one suite's output directory: file name -> sha256.
fn debs(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, sha256(&p))
        })
        .collect()
}

/// Removes the named container when dropped (also when a check panics).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The services of the tools package, read by systemd's own analyzer from the unpacked
/// package: each unit parses, and its exposure score (`systemd-analyze security`, 0 = fully
/// confined, 10 = unconfined) stays at most 3.0 (`--threshold` counts tenths), so the
/// sandboxing of the units is tested.
fn units_are_confined(suite: &str, dir: &Path, n: &str) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("         {suite}: no systemd-analyze on this host: units not analyzed");
        return;
    }
    let unpacked = dir.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    run(
        "dpkg-deb -x sipsd",
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(dir.join(format!("sipsd_0.1.0+deb{n}_amd64.deb")))
            .arg(&unpacked),
    );
    for unit in ["sipsd-fw.service", "sipsd-rec.service"] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=30", "--no-pager"])
            .arg(format!("--root={}", unpacked.display()))
            .arg(unit)
            .stdin(Stdio::null())
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        let score = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .unwrap_or("(no score)")
            .trim()
            .to_string();
        check!(
            out.status.success(),
            "{suite}: systemd-analyze security {unit}: {score}, at most 3.0{}",
            if out.status.success() {
                String::new()
            } else {
                format!("\n{text}{}", String::from_utf8_lossy(&out.stderr))
            }
        );
    }
}

#[test]
fn debian_packages_build_install_call_purge() {
    if !docker_available() {
        if std::env::var("SIPSD_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("no Docker engine answers and SIPSD_REQUIRE_DOCKER=1");
        }
        println!("SKIPPED: no docker");
        return;
    }
    let out = root().join("target/packaging-test");
    let _ = std::fs::remove_dir_all(&out);

    // 1. build, lintian; 2. reproducible. The Debian 13 build in the background, beside the
    // Debian 12 build and then its rebuild under another path (which reuses the cargo cache of
    // that suite the first build filled).
    let trixie = Background::spawn(
        "scripts/build-debs trixie",
        Command::new(root().join("scripts/build-debs"))
            .arg("--out")
            .arg(out.join("a"))
            .arg("trixie"),
        &out.join("logs"),
    );
    run(
        "scripts/build-debs bookworm",
        Command::new(root().join("scripts/build-debs"))
            .arg("--out")
            .arg(out.join("a"))
            .arg("bookworm"),
    );
    run(
        "scripts/build-debs --build-root /srv/sipsd-again bookworm",
        Command::new(root().join("scripts/build-debs"))
            .arg("--out")
            .arg(out.join("b"))
            .args(["--build-root", "/srv/sipsd-again", "bookworm"]),
    );
    trixie.finish();
    let mut built = BTreeMap::new();
    for (suite, n) in SUITES {
        let dir = out.join("a").join(suite);
        let found = debs(&dir);
        let version = format!("0.1.0+deb{n}");
        for pkg in ["kamailio-sipsd-module", "sipsd"] {
            let name = format!("{pkg}_{version}_amd64.deb");
            check!(
                found.contains_key(&name),
                "{suite}: dpkg-buildpackage made {name} (sha256 {})",
                found.get(&name).map(|h| &h[..16]).unwrap_or("-")
            );
        }
        let lintian = std::fs::read_to_string(dir.join("lintian.txt")).unwrap_or_default();
        let errors: Vec<&str> = lintian.lines().filter(|l| l.starts_with("E: ")).collect();
        let warnings: Vec<&str> = lintian.lines().filter(|l| l.starts_with("W: ")).collect();
        for w in &warnings {
            println!("         lintian {suite} {w}");
        }
        check!(
            errors.is_empty(),
            "{suite}: lintian reports no error ({} warnings){}",
            warnings.len(),
            errors
                .iter()
                .map(|e| format!("\n  {e}"))
                .collect::<String>()
        );
        units_are_confined(suite, &dir, n);
        built.insert(suite, found);
    }

    let again = debs(&out.join("b/bookworm"));
    for (name, hash) in &built["bookworm"] {
        check!(
            again.get(name) == Some(hash),
            "reproducible: {name} rebuilt under another path is the same file (sha256 {})",
            &hash[..16]
        );
    }

    // 3. install, call, purge in clean containers of the testbed's base images
    for (suite, _) in SUITES {
        let name = format!("sipsd-pkgtest-{suite}-{}", std::process::id());
        let _guard = Container(name.clone());
        let base = if suite == "bookworm" {
            std::env::var("SIPSD_BASE_IMAGE").unwrap_or_else(|_| "sipsd-base:bookworm".into())
        } else {
            format!("sipsd-base:{suite}")
        };
        let mount = |host: PathBuf, at: &str| format!("{}:{at}:ro", host.display());
        let status = Command::new("timeout")
            .args(["600", "docker", "run", "--rm", "--name", &name, "-v"])
            .arg(mount(out.join("a").join(suite), "/debs"))
            .arg("-v")
            .arg(mount(root().join("tests/data/vectors/keys"), "/keys"))
            .arg("-v")
            .arg(mount(
                root().join("tests/packaging/install-check.sh"),
                "/install-check.sh",
            ))
            .args([&base, "bash", "/install-check.sh"])
            .stdin(Stdio::null())
            .status()
            .expect("docker run");
        check!(
            status.success(),
            "{suite}: install, call through the packaged module, purge ({base})"
        );
    }
}
