//! The `openssl` command (OpenSSL 3), the independent peer of the CMS tests.

use std::path::Path;
use std::process::Command;

/// A path as a command-line argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs `openssl ARGS`, returning stdout; panics with stderr if it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the `openssl` binary must be installed for these tests");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl cms -decrypt` of the DER file `input` with the extra arguments (the recipient);
/// returns the plaintext.
pub fn decrypt_file(input: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        path_str(input),
    ];
    args.extend_from_slice(extra);
    openssl(&args)
}

/// `openssl cms -decrypt` of DER `msg` (written to `dir/in.der`).
pub fn decrypt(dir: &Path, msg: &[u8], extra: &[&str]) -> Vec<u8> {
    let input = dir.join("in.der");
    std::fs::write(&input, msg).expect("write in.der");
    decrypt_file(&input, extra)
}

/// A fresh RSA-2048 key and self-signed certificate `dir/NAME.key`, `dir/NAME.crt` with
/// subject `CN=cn`, made by `openssl req` (key file mode 0600).
pub fn self_signed(dir: &Path, name: &str, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let subj = format!("/CN={cn}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-days",
        "2",
        "-subj",
        &subj,
        "-keyout",
        path_str(&key),
        "-out",
        path_str(&crt),
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    (key, crt)
}
