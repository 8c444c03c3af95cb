//! A work directory per test: removed when the test passed, kept (and named on stderr) when a
//! check failed or `SIPSD_E2E_KEEP` is set.

use std::fs;
use std::path::{Path, PathBuf};

pub struct WorkDir(PathBuf);

impl WorkDir {
    /// A fresh `$TMPDIR/sipsd-e2e-NAME-PID-STAMP`.
    pub fn new(name: &str) -> WorkDir {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("sipsd-e2e-{name}-{}-{stamp}", std::process::id()));
        fs::create_dir_all(&p).expect("create work dir");
        WorkDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A subdirectory, created.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(&p).expect("create work subdirectory");
        p
    }
}

impl std::ops::Deref for WorkDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SIPSD_E2E_KEEP").is_some() {
            eprintln!("work directory kept: {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
