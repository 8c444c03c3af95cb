//! Builds `tests/c/harness.c` against `include/sipsd.h` and `libsipsd.so` with the system C
//! compiler and runs it: the C ABI as a C caller sees it, with error paths and fork().

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sipsd::crypto::cms::{ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::engine::ua::UaSession;
use sipsd::sip::body::BodyOptions;

use support::vectors::{cert_recipient, data, keys, offer, root};

fn cert(name: &str) -> Recipient {
    cert_recipient(name, IdKind::IssuerSerial, RsaPadding::OaepSha1)
}

/// Writes the messages the harness reads (see the comment at the top of harness.c).
fn write_messages(dir: &Path) {
    let sdp = offer();
    let raw = BodyOptions {
        inner_mime: false,
        ..BodyOptions::default()
    };
    let both = [cert("callee"), cert("proxy1")];
    let put = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    let (mut a, offer) = UaSession::offer(
        "application/sdp",
        &sdp,
        &both,
        ContentAlg::Aes256Gcm,
        None,
        &raw,
    )
    .unwrap();
    put("offer.der", &offer.body);
    put("offer.sdp", &sdp);
    put("truncated.der", &offer.body[..offer.body.len() / 2]);
    put(
        "indialog.der",
        &a.encrypt("application/sdp", &sdp, &raw).unwrap().body,
    );
    put(
        "rotated.der",
        &a.rotate("application/sdp", &sdp, &both, &raw).unwrap().body,
    );
    put(
        "rotated-indialog.der",
        &a.encrypt("text/plain", b"after rotation", &raw)
            .unwrap()
            .body,
    );
    let (mut b, offer_b) = UaSession::offer(
        "application/sdp",
        &sdp,
        &both,
        ContentAlg::Aes128Gcm,
        None,
        &raw,
    )
    .unwrap();
    put("offer-b.der", &offer_b.body);
    put(
        "indialog-b.der",
        &b.encrypt("text/plain", b"dialog b", &raw).unwrap().body,
    );
    let (mut c, offer_c) = UaSession::offer(
        "application/sdp",
        &sdp,
        &both,
        ContentAlg::Aes128Cbc,
        None,
        &raw,
    )
    .unwrap();
    put("offer-cbc.der", &offer_c.body);
    put(
        "indialog-cbc.der",
        &c.encrypt("text/plain", b"dialog c", &raw).unwrap().body,
    );
    let (_, other) = UaSession::offer(
        "application/sdp",
        &sdp,
        &[cert("callee"), cert("proxy2")],
        ContentAlg::Aes256Gcm,
        None,
        &raw,
    )
    .unwrap();
    put("other.der", &other.body);

    let media = std::fs::read(data().join("sip/multistream.sdp")).unwrap();
    let (_, sealed) = UaSession::offer(
        "application/sdp",
        &media,
        &both,
        ContentAlg::Aes256Gcm,
        None,
        &raw,
    )
    .unwrap();
    put("media.sdp", &media);
    put("media.der", &sealed.body);
    // Line 6 is an m= line with a port above 65535.
    let bad = b"v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 99999 RTP/AVP 0\r\n";
    let (_, sealed) = UaSession::offer(
        "application/sdp",
        bad,
        &both,
        ContentAlg::Aes256Gcm,
        None,
        &raw,
    )
    .unwrap();
    put("badsdp.der", &sealed.body);
}

#[test]
fn c_harness_uses_the_header_like_a_c_caller() {
    // libsipsd.so: beside the sipsd binary when `cargo build` made the cdylib (scripts/test
    // does), else the one `make` put in build/.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sipsd"));
    let libdir = [bin.parent().unwrap().to_path_buf(), root().join("build")]
        .into_iter()
        .find(|d| d.join("libsipsd.so").exists())
        .expect("libsipsd.so not built: run `cargo build` (or `make`) before this test");
    println!("linking against {}", libdir.join("libsipsd.so").display());
    let work = tempfile::tempdir().unwrap();
    write_messages(work.path());
    let exe = work.path().join("harness");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-std=c99",
            "-D_DEFAULT_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/harness.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", libdir.display()))
        .arg("-lsipsd")
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "harness.c did not compile with {cc}");
    println!("compiled tests/c/harness.c with {cc} -Wall -Wextra -Werror against include/sipsd.h");

    // The harness's key directory: proxy1.key readable by others (a warning is expected),
    // the PSK private, and bob's certificate.
    let keydir = work.path().join("keys");
    std::fs::create_dir(&keydir).unwrap();
    for (f, mode) in [
        ("proxy1.key", 0o644),
        ("proxy1.crt", 0o644),
        ("psk-proxy1.hex", 0o600),
    ] {
        std::fs::copy(keys().join(f), keydir.join(f)).unwrap();
        std::fs::set_permissions(keydir.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // the callee an edge context seals for, by address of record
    std::fs::copy(
        keys().join("callee.crt"),
        keydir.join("bob@example.net.crt"),
    )
    .unwrap();
    let out = Command::new(&exe)
        .arg(&keydir)
        .arg(work.path())
        .output()
        .expect("run the harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the C harness reported failures");
    // Every CHECK of harness.c ran once (none skipped by an early return) and passed.
    let source = std::fs::read_to_string(root().join("tests/c/harness.c")).unwrap();
    let sites = source.matches("CHECK(").count() - 1; // minus the #define
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| {
            let (p, f) = l.strip_suffix(" failed")?.split_once(" passed, ")?;
            Some((p.parse::<usize>().ok()?, f.parse::<usize>().ok()?))
        })
        .expect("the harness prints `N passed, M failed`");
    let oks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(
        (summary, oks),
        ((sites, 0), sites),
        "harness.c has {sites} CHECKs: each printed ok once"
    );
    println!("all {sites} checks of tests/c/harness.c ran and passed");
}
