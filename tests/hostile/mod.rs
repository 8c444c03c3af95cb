//! The hostile messages of tests/hostile_sip.rs: more than 1,000 malformed or adversarial
//! S/MIME bodies, each with the verdict P1 must log for it.

use std::path::PathBuf;

use base64::Engine as _;
use sipsd::crypto::cms::{self, Cek, ContentAlg, IdKind, Recipient, RsaPadding};

use crate::support::rng::Rng;
pub use crate::support::sip::{SMIME_AUTH, SMIME_ENC};

/// The limits P1 is started with (`-A SIPSD_MAX_...`).
pub const MAX_BODY: usize = 32768;
pub const MAX_PARTS: usize = 8;
pub const MAX_DEPTH: usize = 3;
pub const MAX_RECIPIENTS: usize = 4;
/// `SD_ERR_BODY_LIMIT`
pub const BODY_LIMIT: u32 = 121;

/// What P1 should make of a message (the `code=` of its log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Any error code (>= 100).
    Error,
    /// Exactly this error code.
    Code(u32),
    /// Not encrypted or not for this proxy (1 or 2), or an error: no decryption.
    NoDecrypt,
    /// Anything: a bit flip in what the proxy does not use (the callee's RecipientInfo, which
    /// no tag covers) leaves the message decryptable.
    Any,
}

pub struct Hostile {
    pub category: &'static str,
    pub call_id: String,
    pub in_dialog: bool,
    pub content_type: String,
    pub transfer_encoding: Option<String>,
    pub disclose_to: Option<String>,
    pub body: Vec<u8>,
    pub expect: Expect,
}

pub struct Env {
    pub gcm: Vec<u8>,
    pub encrypted: Vec<u8>,
    pub sdp: Vec<u8>,
    pub proxy1_cert: PathBuf,
}

fn multipart(boundary: &str, parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, body) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// A multipart body nested `depth` levels with the GCM message innermost.
fn nested(env: &Env, depth: usize) -> (String, Vec<u8>) {
    let mut ct = SMIME_AUTH.to_string();
    let mut body = env.gcm.clone();
    for level in 0..depth {
        let b = format!("nest{level}");
        body = multipart(&b, &[(format!("Content-Type: {ct}"), body)]);
        ct = format!("multipart/mixed; boundary={b}");
    }
    (ct, body)
}

#[allow(clippy::too_many_lines)]
pub fn hostile_batch(env: &Env, rng: &mut Rng, prefix: &str, scale: usize) -> Vec<Hostile> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<Hostile>,
                category: &'static str,
                in_dialog: bool,
                ct: &str,
                te: Option<&str>,
                dt: Option<String>,
                body: Vec<u8>,
                expect: Expect| {
        let n = out.len();
        out.push(Hostile {
            category,
            call_id: format!("{prefix}-{n}-{category}@hostile.example"),
            in_dialog,
            content_type: ct.to_string(),
            transfer_encoding: te.map(str::to_string),
            disclose_to: dt,
            body,
            expect,
        });
    };
    let n = |k: usize| (k * scale).div_ceil(100);
    let gcm = &env.gcm;
    // Truncated DER.
    for i in 0..n(120) {
        let cut = 1 + (i * 7919 + rng.below(13)) % (gcm.len() - 1);
        push(
            &mut out,
            "truncated-der",
            false,
            SMIME_AUTH,
            None,
            None,
            gcm[..cut].to_vec(),
            Expect::Error,
        );
    }
    // Over-long DER: trailing garbage, or an outer length larger than the data.
    for i in 0..n(80) {
        let mut b = gcm.clone();
        if i % 2 == 0 {
            let extra = 1 + rng.below(3000);
            b.extend(rng.bytes(extra));
        } else {
            b[1] = 0x84;
            b.splice(2..4, [0x7f, 0xff, 0xff, 0xf0]);
        }
        push(
            &mut out,
            "overlong-der",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Error,
        );
    }
    // Absurd lengths and deep BER nesting.
    for i in 0..n(60) {
        let b = match i % 4 {
            0 => vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x06, 0x01, 0x00],
            1 => [0x30u8, 0x80].repeat(200 + i * 50),
            2 => {
                let mut v = vec![0x30, 0x88];
                v.extend(rng.bytes(8));
                v.extend(rng.bytes(64));
                v
            }
            _ => {
                let mut v = Vec::new();
                for _ in 0..(500 + i) {
                    v.extend([0x30, 0x82, 0xff, 0xff]);
                }
                v
            }
        };
        push(
            &mut out,
            "absurd-length",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Error,
        );
    }
    // Bit flips anywhere in a valid message (header, recipient keys, nonce, ciphertext, tag).
    for _ in 0..n(250) {
        let mut b = gcm.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        push(
            &mut out,
            "bit-flip",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Any,
        );
    }
    // Deep nesting (beyond max_depth) and huge multiparts (beyond max_parts).
    for i in 0..n(40) {
        let depth = MAX_DEPTH + 1 + i % 40;
        let (ct, body) = nested(env, depth);
        push(
            &mut out,
            "deep-multipart",
            false,
            &ct,
            None,
            None,
            body,
            Expect::Code(BODY_LIMIT),
        );
    }
    for i in 0..n(40) {
        let count = MAX_PARTS + 1 + (i * 37) % 400;
        let parts: Vec<_> = (0..count)
            .map(|k| {
                (
                    format!("Content-Type: text/plain\r\nContent-ID: <p{k}@x>"),
                    b"x".to_vec(),
                )
            })
            .collect();
        let body = multipart("huge", &parts);
        let expect = BODY_LIMIT;
        push(
            &mut out,
            "huge-multipart",
            false,
            "multipart/mixed; boundary=huge",
            None,
            None,
            body,
            Expect::Code(expect),
        );
    }
    // Wrong content types.
    let wrong: [(&str, &[u8]); 8] = [
        (SMIME_AUTH, &env.sdp),
        ("application/sdp", gcm),
        ("multipart/mixed", gcm),
        ("application/pkcs7-mime; smime-type=bogus", gcm),
        ("application/pkcs7-mime; smime-type=signed-data", gcm),
        ("text/plain; charset=\"\u{0}\"", gcm),
        ("multipart/mixed; boundary=\"\"", gcm),
        ("application/pkcs7-mime; smime-type=enveloped-data", gcm),
    ];
    for i in 0..n(60) {
        let (ct, body) = wrong[i % wrong.len()];
        let ct = if i % 3 == 2 {
            format!("{ct}; x={}", "a".repeat(1500))
        } else {
            ct.replace('\u{0}', "")
        };
        // smime-type is a hint (RFC 8551 3.2.2): an AuthEnvelopedData labelled enveloped-data
        // is still opened, as the DER says what it is.
        let expect = if ct.contains("smime-type=enveloped-data") {
            Expect::Any
        } else {
            Expect::NoDecrypt
        };
        push(
            &mut out,
            "wrong-content-type",
            false,
            &ct,
            None,
            None,
            body.to_vec(),
            expect,
        );
    }
    // Invalid base64.
    let b64 = base64::engine::general_purpose::STANDARD.encode(gcm);
    for i in 0..n(60) {
        let mut s = b64.clone().into_bytes();
        match i % 4 {
            0 => s.insert(rng.below(s.len()), b'*'),
            1 => s.truncate(s.len() - 1 - rng.below(3)),
            2 => s.extend_from_slice(b"===="),
            _ => {
                let at = rng.below(s.len());
                s[at] = 0x80 | rng.next() as u8;
            }
        }
        push(
            &mut out,
            "invalid-base64",
            false,
            SMIME_AUTH,
            Some("base64"),
            None,
            s,
            Expect::Error,
        );
    }
    // Bodies up to the UDP limit (sipsd's max_body_size is set below Kamailio's).
    for i in 0..n(20) {
        let len = MAX_BODY + 1 + i * 1400;
        let mut b = vec![0x30, 0x83];
        b.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        b.extend(rng.bytes(len - 5));
        push(
            &mut out,
            "big-body",
            false,
            SMIME_AUTH,
            None,
            None,
            b,
            Expect::Code(BODY_LIMIT),
        );
    }
    // Content-IDs that point nowhere.
    for i in 0..n(60) {
        let body = multipart(
            "cids",
            &[
                ("Content-Type: application/sdp".into(), b"v=0\r\n".to_vec()),
                (
                    format!("Content-Type: {SMIME_AUTH}\r\nContent-ID: <sdp@alice.example>"),
                    gcm.clone(),
                ),
            ],
        );
        let dt = format!("proxy1.example.net;cid=<nowhere-{i}@hostile.example>");
        push(
            &mut out,
            "cid-nowhere",
            false,
            "multipart/mixed; boundary=cids",
            None,
            Some(dt),
            body,
            Expect::Error,
        );
    }
    // Hostile Disclose-To values.
    let hostile_dt: Vec<String> = vec![
        "a".repeat(4000),
        (0..600)
            .map(|k| format!("p{k}.example"))
            .collect::<Vec<_>>()
            .join(", "),
        "proxy1.example.net;cid=".into(),
        "proxy1.example.net;cid=\"<unterminated".into(),
        ";;;;,,,,".into(),
        "[::1".into(),
        "proxy1.example.net;cid=<a@b>;cid=<a@b>;cid=<a@b>;cid=<a@b>;cid=<a@b>;cid=<a@b>".into(),
        "pr\u{f6}xy1.example.net".into(),
        "proxy1.example.net\t;\tcid\t=\t<x@y>".into(),
        format!("proxy1.example.net;{}", "x=1;".repeat(500)),
        "\u{7f}\u{1}\u{2}".into(),
        "proxy1.example.net;cid=<".into(),
    ];
    for i in 0..n(120) {
        let dt = hostile_dt[i % hostile_dt.len()].clone();
        push(
            &mut out,
            "hostile-disclose-to",
            false,
            SMIME_AUTH,
            None,
            Some(dt),
            gcm.clone(),
            Expect::NoDecrypt,
        );
    }
    // EncryptedData for dialogs P1 never saw, in and out of dialog.
    for i in 0..n(100) {
        let in_dialog = i % 2 == 0;
        push(
            &mut out,
            "unknown-dialog",
            in_dialog,
            SMIME_ENC,
            None,
            None,
            env.encrypted.clone(),
            Expect::NoDecrypt,
        );
    }
    // Too many recipients (proxy1's certificate named max_recipients + 1 times and more).
    for i in 0..n(20) {
        let recips: Vec<_> = (0..MAX_RECIPIENTS + 1 + i % 4)
            .map(|_| {
                Recipient::from_cert_file(
                    &env.proxy1_cert,
                    IdKind::IssuerSerial,
                    RsaPadding::OaepSha256,
                )
                .expect("cert")
            })
            .collect();
        let cek = Cek::generate(ContentAlg::Aes128Gcm).expect("cek");
        let der = cms::seal(b"Content-Type: text/plain\r\n\r\nx", &recips, &cek).expect("seal");
        push(
            &mut out,
            "too-many-recipients",
            false,
            SMIME_AUTH,
            None,
            None,
            der,
            Expect::Code(BODY_LIMIT),
        );
    }
    out
}
