//! Prerequisites of the end-to-end tests. A test asks for what it needs; when something is
//! missing it prints `SKIPPED: ...` and passes, unless `SIPSD_REQUIRE_E2E=1` (CI) is set: then
//! it fails, naming what is missing and how to get it.

use std::path::PathBuf;

use super::vectors;

/// What a test needs besides the Rust toolchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `kamailio` (scripts/setup-deps)
    Kamailio,
    /// `kamcmd`, Kamailio's RPC client
    Kamcmd,
    /// `sipp`
    Sipp,
    /// `build/sipsd.so` and `build/libsipsd.so` (`make`)
    Module,
    /// callee, proxy1 and proxy2 keys in the vectors
    Keys,
}

/// Where everything is. A tool not asked for holds its bare name.
#[derive(Clone, Debug)]
pub struct Tools {
    pub root: PathBuf,
    /// `$SIPSD_BUILD`, else `<root>/build`
    pub build: PathBuf,
    /// the vectors' `keys/`
    pub keys: PathBuf,
    /// the sipsd CLI cargo built for this test
    pub sipsd: PathBuf,
    pub kamailio: PathBuf,
    pub kamcmd: PathBuf,
    pub sipp: PathBuf,
}

/// `name` in `$PATH`, `/usr/sbin` or `/sbin`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Prints `SKIPPED: WHY` and returns None, or panics when the environment variable `require`
/// is `1` (`SIPSD_REQUIRE_E2E`, `SIPSD_REQUIRE_DOCKER`).
pub fn skip<T>(require: &str, why: &str) -> Option<T> {
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{require}=1 but {why}");
    }
    println!("SKIPPED: {why}");
    None
}

impl Tools {
    /// The tools `what` (a test's name, for the message) needs, or None after SKIPPED.
    pub fn require(what: &str, needs: &[Need]) -> Option<Tools> {
        let root = vectors::root();
        let build = std::env::var_os("SIPSD_BUILD")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("build"));
        let mut missing = Vec::new();
        let mut tool = |name: &str, need: Need, hint: &str| -> PathBuf {
            match find_in_path(name) {
                Some(p) => p,
                None => {
                    if needs.contains(&need) {
                        missing.push(format!("{name} ({hint})"));
                    }
                    PathBuf::from(name)
                }
            }
        };
        let kamailio = tool("kamailio", Need::Kamailio, "sudo scripts/setup-deps");
        let kamcmd = tool("kamcmd", Need::Kamcmd, "sudo scripts/setup-deps");
        let sipp = tool("sipp", Need::Sipp, "sudo scripts/setup-deps");
        let needs_procs = needs
            .iter()
            .any(|n| matches!(n, Need::Kamailio | Need::Sipp));
        if needs_procs && (find_in_path("kill").is_none() || find_in_path("bash").is_none()) {
            missing.push("kill and bash (procps, bash)".to_string());
        }
        if needs.contains(&Need::Module) {
            for f in ["sipsd.so", "libsipsd.so"] {
                if !build.join(f).is_file() {
                    missing.push(format!("{} (make)", build.join(f).display()));
                }
            }
        }
        let keys = vectors::keys();
        if needs.contains(&Need::Keys) && !vectors::has_keys(&keys, &["callee", "proxy1", "proxy2"])
        {
            missing.push(format!(
                "test keys callee/proxy1/proxy2 ({})",
                keys.display()
            ));
        }
        if !missing.is_empty() {
            return skip(
                "SIPSD_REQUIRE_E2E",
                &format!("{what} needs: {}", missing.join(", ")),
            );
        }
        Some(Tools {
            root,
            build,
            keys,
            sipsd: PathBuf::from(env!("CARGO_BIN_EXE_sipsd")),
            kamailio,
            kamcmd,
            sipp,
        })
    }

    /// `KEY:CERT` of `WHO` for the sipsd CLI's `--key`.
    pub fn key_pair(&self, who: &str) -> String {
        vectors::key_pair(who)
    }

    /// Runs the sipsd CLI with `args`.
    pub fn sipsd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(&self.sipsd)
            .args(args)
            .output()
            .expect("run the sipsd CLI")
    }
}

/// The start of a Kamailio + SIPp scenario: takes `support::serial()`, prints its name, and
/// returns the tools (or None after SKIPPED).
pub fn kamailio_e2e(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Tools)> {
    let guard = super::serial();
    println!("== kamailio e2e: {name}");
    let t = Tools::require(
        "kamailio e2e",
        &[Need::Kamailio, Need::Sipp, Need::Module, Need::Keys],
    )?;
    Some((guard, t))
}
