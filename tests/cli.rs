//! The `sipsd` command line as a user agent uses it, with OpenSSL as the independent peer:
//! what `sipsd seal` makes, `openssl cms -decrypt` opens as every recipient.

mod support;

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
