//! Child processes, each in its own process group and killed with the whole group when its
//! guard drops — also when a check panics — so that forked workers (Kamailio's) go too. When a
//! test fails, the last lines of each process's log are printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child: its own process group, stdout and stderr in `log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    stopped: bool,
}

/// `kill -SIG -- -PGID`: signal a whole process group. Errors (already gone) do not matter.
pub fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The exit status of `child`, or None if it still runs after `limit`.
pub fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}

/// The exit status of `child` within `limit`; past it the child is killed and reaped (None).
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let st = wait_deadline(child, limit);
    if st.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    st
}

/// Polls `f` every 100 ms until it holds or `limit` passes; returns its last answer.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

impl Proc {
    /// Starts `cmd` in `dir` in a new process group, stdout and stderr to `log`.
    pub fn spawn_logged(name: &str, dir: &Path, log: PathBuf, cmd: &mut Command) -> Proc {
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("dup log file");
        let child = std::os::unix::process::CommandExt::process_group(
            cmd.current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
            0,
        )
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        println!("  started {name} (pid {})", child.id());
        Proc {
            name: name.to_string(),
            child,
            log,
            stopped: false,
        }
    }

    /// Starts `cmd` in `dir`, logging to `dir/NAME.log`.
    pub fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        Proc::spawn_logged(name, dir, log, cmd)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running (not exited, not reaped)?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit status at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_deadline(&mut self.child, limit)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// TERM to the group, KILL after 5 s; then KILL to the group again for stragglers (forked
    /// workers) if the leader went first.
    pub fn stop(&mut self) {
        let pgid = self.child.id();
        if self.alive() {
            signal_group(pgid, "-TERM");
            if wait_deadline(&mut self.child, Duration::from_secs(5)).is_none() {
                signal_group(pgid, "-KILL");
                let _ = self.child.wait();
            }
        }
        signal_group(pgid, "-KILL");
        self.stopped = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
        if std::thread::panicking() {
            eprintln!("--- last lines of {} ({})", self.name, self.log.display());
            for l in tail(&self.log, 20) {
                eprintln!("    {l}");
            }
        }
    }
}
