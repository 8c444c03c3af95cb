//! The certificates of the parties an edge seals for: `callee_cert_dir/user@domain.crt` (or
//! `.pem`), looked up by the address of record the SIP server read from the message (the To
//! of a request). Read at each new key, so a certificate added to the directory is used from
//! the next call on, without a reload.

use std::path::Path;

use crate::crypto::cms::Recipient;
use crate::crypto::keys::{recipient_cert, KeyError};
use crate::engine::Result;

/// The file stem for `aor` (`user@domain`, the domain lower-cased), or `None` when it cannot
/// name a file of the directory: empty user or domain, a path separator, a NUL or another
/// control character, or a leading dot.
fn file_stem(aor: &str) -> Option<String> {
    let (user, domain) = aor.trim().rsplit_once('@')?;
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
    };
    (ok(user) && ok(domain)).then(|| format!("{user}@{}", domain.to_ascii_lowercase()))
}

/// The certificate of `aor` in `dir` as a recipient, `None` when there is none (no directory,
/// no such file, or an address that names no file). A file that is there but unreadable or
/// not a certificate is an error: it is never taken for "no certificate".
pub(super) fn certificate(dir: Option<&Path>, aor: &str) -> Result<Option<Recipient>> {
    let (Some(dir), Some(stem)) = (dir, file_stem(aor)) else {
        return Ok(None);
    };
    for ext in ["crt", "pem"] {
        match recipient_cert(&dir.join(format!("{stem}.{ext}"))) {
            Ok(r) => return Ok(Some(r)),
            Err(KeyError::Missing(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_files_of_the_directory_only() {
        assert_eq!(
            file_stem("bob@Example.NET").as_deref(),
            Some("bob@example.net")
        );
        assert_eq!(
            file_stem(" Bob@example.net ").as_deref(),
            Some("Bob@example.net")
        );
        for bad in [
            "bob",
            "@example.net",
            "bob@",
            "../x@y",
            "bob@../etc",
            "a/b@c",
            "a@b\0c",
            ".x@y",
        ] {
            assert_eq!(file_stem(bad), None, "{bad:?}");
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/keys");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            src.join("callee.crt"),
            dir.path().join("bob@example.net.pem"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("carol@example.net.crt"),
            b"not a certificate",
        )
        .unwrap();
        assert!(certificate(Some(dir.path()), "bob@EXAMPLE.net")
            .unwrap()
            .is_some());
        assert!(certificate(Some(dir.path()), "dave@example.net")
            .unwrap()
            .is_none());
        assert!(certificate(None, "bob@example.net").unwrap().is_none());
        assert!(certificate(Some(dir.path()), "carol@example.net").is_err());
        println!("callee_cert_dir: bob@EXAMPLE.net -> bob@example.net.pem; dave: none; a broken file is an error; unsafe names never read");
    }
}
