//! The `sipsd` command line as a user agent uses it, with OpenSSL as the independent peer:
//! what `sipsd seal` makes, `openssl cms -decrypt` opens as every recipient.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::openssl::decrypt_file;
use support::vectors::{key_path, keys};

fn k(name: &str) -> String {
    key_path(name).display().to_string()
}

fn sipsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipsd"))
        .args(args)
        .output()
        .expect("run sipsd")
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const SDP: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 0\r\n";

#[test]
fn what_sipsd_seals_openssl_opens_as_every_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let sdp = dir.path().join("offer.sdp");
    std::fs::write(&sdp, SDP).unwrap();
    let psk_id = std::fs::read_to_string(keys().join("psk-proxy1.id.hex")).unwrap();
    let psk_key = std::fs::read_to_string(keys().join("psk-proxy1.hex")).unwrap();
    let psk_arg = format!("{}:{}", psk_id.trim(), k("psk-proxy1.hex"));
    let (callee_crt, proxy1_crt) = (k("callee.crt"), k("proxy1.crt"));
    for (alg, padding, ski) in [
        ("aes-256-gcm", "oaep", false),
        ("aes-256-cbc", "oaep", false),
        ("aes-128-gcm", "oaep-sha256", true),
        ("aes-128-cbc", "pkcs1", true),
    ] {
        let out = dir.path().join(format!("{alg}-{padding}.p7m"));
        let mut args = vec![
            "seal",
            "--raw",
            "--alg",
            alg,
            "--padding",
            padding,
            "--to",
            &callee_crt,
            "--to",
            &proxy1_crt,
            "--psk",
            &psk_arg,
            "--in",
            sdp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        if ski {
            args.push("--ski");
        }
        let headers = String::from_utf8(ok(sipsd(&args), "sipsd seal").stdout).unwrap();
        let want_type = if alg.ends_with("gcm") {
            "authEnveloped-data"
        } else {
            "enveloped-data"
        };
        assert!(headers.contains(want_type), "{headers}");
        for (who, recip) in [
            (
                "callee",
                vec![
                    "-inkey".to_string(),
                    k("callee.key"),
                    "-recip".into(),
                    k("callee.crt"),
                ],
            ),
            (
                "proxy1",
                vec![
                    "-inkey".to_string(),
                    k("proxy1.key"),
                    "-recip".into(),
                    k("proxy1.crt"),
                ],
            ),
            (
                "psk",
                vec![
                    "-secretkey".to_string(),
                    psk_key.trim().into(),
                    "-secretkeyid".into(),
                    psk_id.trim().into(),
                ],
            ),
        ] {
            let r: Vec<&str> = recip.iter().map(String::as_str).collect();
            assert_eq!(decrypt_file(&out, &r), SDP.as_bytes());
            println!(
                "sipsd seal {alg} {padding}{}: openssl cms -decrypt opens it as {who}",
                if ski { " (subjectKeyIdentifier)" } else { "" }
            );
        }
        let out2 = sipsd(&[
            "open",
            "--key",
            &format!("{}:{}", k("proxy2.key"), k("proxy2.crt")),
            "--in",
            out.to_str().unwrap(),
        ]);
        assert!(!out2.status.success());
        assert!(
            String::from_utf8_lossy(&out2.stderr).contains("not a recipient")
                || String::from_utf8_lossy(&out2.stderr).contains("none of our keys")
        );
    }
    println!("proxy2 (not a recipient) cannot open any of them");
}

#[test]
fn dialog_key_round_trip_and_inspect_shows_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("offer.sdp"), SDP).unwrap();
    std::fs::write(p("msg.txt"), "in-dialog text").unwrap();
    ok(
        sipsd(&[
            "seal",
            "--base64",
            "--to",
            &k("callee.crt"),
            "--to",
            &k("proxy1.crt"),
            "--in",
            &p("offer.sdp"),
            "--out",
            &p("offer.b64"),
            "--cek-out",
            &p("ua.cek"),
        ]),
        "seal",
    );
    let cek_text = std::fs::read_to_string(p("ua.cek")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(p("ua.cek")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "dialog key file must be private");
    println!("seal --cek-out wrote the dialog key with mode 0600");

    let opened = ok(
        sipsd(&[
            "open",
            "--key",
            &format!("{}:{}", k("proxy1.key"), k("proxy1.crt")),
            "--in",
            &p("offer.b64"),
            "--cek-out",
            &p("proxy.cek"),
        ]),
        "open base64",
    );
    assert!(String::from_utf8_lossy(&opened.stdout).ends_with(SDP));
    assert_eq!(std::fs::read_to_string(p("proxy.cek")).unwrap(), cek_text);
    println!("proxy1 opened the base64 body and unwrapped the same dialog key");

    ok(
        sipsd(&[
            "encrypt",
            "--cek",
            &p("ua.cek"),
            "--content-type",
            "text/plain",
            "--in",
            &p("msg.txt"),
            "--out",
            &p("msg.p7m"),
        ]),
        "encrypt",
    );
    let plain = ok(
        sipsd(&["open", "--cek", &p("proxy.cek"), "--in", &p("msg.p7m")]),
        "open --cek",
    )
    .stdout;
    assert!(String::from_utf8_lossy(&plain).ends_with("in-dialog text"));
    println!("EncryptedData made with the UA's key opens with the proxy's copy");

    let insp =
        String::from_utf8(ok(sipsd(&["inspect", "--in", &p("offer.b64")]), "inspect").stdout)
            .unwrap();
    assert!(
        insp.contains("AuthEnvelopedData") && insp.contains("recipients: 2"),
        "{insp}"
    );
    let key_hex = cek_text.trim().split(':').nth(1).unwrap();
    assert!(!insp.contains(key_hex) && !insp.contains("v=0"));
    println!("inspect: kind, algorithm and 2 recipients shown; neither key nor plaintext:\n{insp}");
}

/// Runs sipsd under `umask 000` (through sh, which sets it before exec).
fn sipsd_umask_000(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_sipsd"))
        .args(args)
        .output()
        .expect("run sh")
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn secret_files_are_0600_from_creation_even_with_umask_000() {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let s = |n: &str| p(n).display().to_string();
    std::fs::write(p("offer.sdp"), SDP).unwrap();
    let seal = |cek_out: &str| {
        ok(
            sipsd_umask_000(&[
                "seal",
                "--to",
                &k("proxy1.crt"),
                "--in",
                &s("offer.sdp"),
                "--out",
                &s("offer.p7m"),
                "--cek-out",
                cek_out,
            ]),
            "seal --cek-out",
        )
    };

    // A new dialog key file: 0600 although the umask would allow 0666; the ciphertext, not a
    // secret, gets the umask's mode.
    seal(&s("new.cek"));
    assert_eq!(mode(&p("new.cek")), 0o600);
    let text = std::fs::read_to_string(p("new.cek")).unwrap();
    let (alg, hex) = text.trim_end().split_once(':').expect("ALG:HEX");
    assert_eq!(alg, "aes-256-gcm");
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(text.ends_with('\n'));
    println!(
        "  ok   seal --cek-out under umask 000: new key file mode {:03o} (the ciphertext: {:03o})",
        mode(&p("new.cek")),
        mode(&p("offer.p7m"))
    );

    // An existing 0644 file, held open by a reader from before: replaced by a 0600 file; the
    // old descriptor still sees only the old contents, never the key.
    std::fs::write(p("old.cek"), "old contents\n").unwrap();
    std::fs::set_permissions(p("old.cek"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut early_reader = std::fs::File::open(p("old.cek")).unwrap();
    seal(&s("old.cek"));
    assert_eq!(mode(&p("old.cek")), 0o600);
    let mut seen = String::new();
    early_reader.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "old contents\n");
    let new_text = std::fs::read_to_string(p("old.cek")).unwrap();
    assert!(new_text.starts_with("aes-256-gcm:"), "{new_text}");
    println!(
        "  ok   existing 0644 key file: now 0600 with the new key; a descriptor opened before \
         still reads the old contents only"
    );

    // A symbolic link at the path: replaced, its target left alone.
    std::fs::write(p("target"), "not a key\n").unwrap();
    std::os::unix::fs::symlink(p("target"), p("link.cek")).unwrap();
    seal(&s("link.cek"));
    assert!(!std::fs::symlink_metadata(p("link.cek"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(mode(&p("link.cek")), 0o600);
    assert_eq!(std::fs::read_to_string(p("target")).unwrap(), "not a key\n");
    println!("  ok   a symlink at --cek-out is replaced by a 0600 file; its target is untouched");

    // open: --cek-out and --out (decrypted content may carry SDES keys), under umask 000,
    // over an existing 0666 file.
    std::fs::write(p("plain.out"), "x").unwrap();
    std::fs::set_permissions(p("plain.out"), std::fs::Permissions::from_mode(0o666)).unwrap();
    ok(
        sipsd_umask_000(&[
            "open",
            "--key",
            &format!("{}:{}", k("proxy1.key"), k("proxy1.crt")),
            "--in",
            &s("offer.p7m"),
            "--cek-out",
            &s("proxy.cek"),
            "--out",
            &s("plain.out"),
        ]),
        "open --cek-out --out",
    );
    assert_eq!(mode(&p("proxy.cek")), 0o600);
    assert_eq!(mode(&p("plain.out")), 0o600);
    assert!(std::fs::read_to_string(p("plain.out"))
        .unwrap()
        .ends_with(SDP));
    assert_eq!(
        std::fs::read_to_string(p("proxy.cek")).unwrap(),
        std::fs::read_to_string(p("link.cek")).unwrap()
    );
    // No temporary files left behind.
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    println!(
        "  ok   open --cek-out and --out (over a 0666 file) under umask 000: both 0600; no \
         temporary files left"
    );

    // The dialog key file is read with the key store's checks: a symlink is refused.
    std::os::unix::fs::symlink(p("proxy.cek"), p("proxy-link.cek")).unwrap();
    ok(
        sipsd(&[
            "encrypt",
            "--cek",
            &s("proxy.cek"),
            "--in",
            &s("offer.sdp"),
            "--out",
            &s("ed.p7m"),
        ]),
        "encrypt --cek",
    );
    let out = sipsd(&["open", "--cek", &s("proxy-link.cek"), "--in", &s("ed.p7m")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    println!(
        "  ok   open --cek through a symlink: refused ({})",
        err.trim()
    );
}
