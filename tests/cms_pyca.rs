//! pyca `cryptography` (PyPI; its ASN.1 is rust-asn1, strict DER) as a second independent CMS
//! peer next to OpenSSL, driven through `tests/pyca/peer.py`:
//! - what sipsd seals in the profile pyca implements (EnvelopedData, AES-128/256-CBC, RSA
//!   PKCS#1 v1.5, issuerAndSerialNumber), 1 to 4 recipients, text and binary plaintexts, through
//!   the library (DER) and the CLI (DER, and the S/MIME base64 form it writes), pyca opens as
//!   every recipient, every time, and reports the plaintext's SHA-256;
//! - what pyca's PKCS7EnvelopeBuilder seals (DER and S/MIME), sipsd opens as every recipient;
//! - every kind sipsd seals — AuthEnvelopedData (GCM) too, which pyca cannot decrypt, and
//!   OAEP, subjectKeyIdentifier and pre-shared-key recipients — passes pyca's strict DER parser
//!   with the RecipientInfos as a SET OF: its components in DER order (X.690 §11.6).
//!
//! The interpreter is `$SIPSD_PYTHON`, else `$SIPSD_VENV/bin/python` (default
//! /var/cache/sipsd/venv, made by scripts/setup-deps). Without it (or without openssl, which
//! makes the fourth identity) the tests print SKIPPED, unless SIPSD_REQUIRE_E2E=1: then they
//! fail. The random choices come from `$SIPSD_PYCA_SEED` (default: the clock), printed so a
//! failure can be replayed.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use sipsd::crypto::cms::{self, Cek, CmsKind, ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::crypto::keys::{KeySpec, KeyStore, RsaKeySpec};
use sipsd::sip::body::{self, BodyLimits};

use support::vectors::{hex, key_path, psk_recipient};

/// The four RSA identities: three from the vectors, `proxy3` made fresh by openssl.
const WHO: [&str; 4] = ["callee", "proxy1", "proxy2", "proxy3"];

/// SplitMix64: a small reproducible generator for the test's random choices.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("SIPSD_PYCA_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("  seed SIPSD_PYCA_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// 1 to 4 distinct identities, in random order.
    fn recipients(&mut self) -> Vec<&'static str> {
        let k = 1 + self.below(WHO.len());
        let mut all = WHO.to_vec();
        for i in (1..all.len()).rev() {
            all.swap(i, self.below(i + 1));
        }
        all.truncate(k);
        all
    }

    /// A CRLF text (SDP-like lines) or random binary bytes, 1 to about 1500 bytes.
    fn plaintext(&mut self, binary: bool) -> Vec<u8> {
        if binary {
            let len = 1 + self.below(1500);
            return self.bytes(len);
        }
        let mut t = String::from("v=0\r\n");
        for _ in 0..self.below(30) {
            let n = self.next() % 100_000;
            t.push_str(&format!("a=x-line:{n} {}\r\n", hex(&self.bytes(8))));
        }
        t.into_bytes()
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn require_e2e() -> bool {
    std::env::var("SIPSD_REQUIRE_E2E").as_deref() == Ok("1")
}

/// The pyca peer: its interpreter and a directory with WHO.key/WHO.crt for every identity.
struct Peer {
    python: PathBuf,
    keydir: tempfile::TempDir,
    version: String,
}

/// The peer, or None after printing SKIPPED (panics instead under SIPSD_REQUIRE_E2E=1).
fn peer() -> Option<Peer> {
    match find_peer() {
        Ok(p) => Some(p),
        Err(why) if require_e2e() => panic!("SIPSD_REQUIRE_E2E=1 but {why}"),
        Err(why) => {
            println!("SKIPPED: {why} (run scripts/setup-deps)");
            None
        }
    }
}

fn find_peer() -> Result<Peer, String> {
    let python = match std::env::var_os("SIPSD_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(
            std::env::var_os("SIPSD_VENV").unwrap_or_else(|| "/var/cache/sipsd/venv".into()),
        )
        .join("bin/python"),
    };
    let probe = Command::new(&python)
        .args([
            "-c",
            "import cryptography\n\
             from cryptography.hazmat import asn1\n\
             from cryptography.hazmat.primitives.serialization.pkcs7 import \
             pkcs7_decrypt_der, PKCS7EnvelopeBuilder\n\
             print(cryptography.__version__)",
        ])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} has no usable pyca cryptography: {}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    let keydir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for who in &WHO[..3] {
        for ext in ["key", "crt"] {
            let name = format!("{who}.{ext}");
            std::fs::copy(key_path(&name), keydir.path().join(&name))
                .map_err(|e| format!("{name}: {e}"))?;
        }
    }
    // The fourth identity, the same shape as the others (RSA-2048, self-signed, CN only).
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
        .args(["-days", "2", "-subj", "/CN=proxy3.example.net", "-keyout"])
        .arg(keydir.path().join("proxy3.key"))
        .arg("-out")
        .arg(keydir.path().join("proxy3.crt"))
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Peer {
        python,
        keydir,
        version,
    })
}

impl Peer {
    fn cert(&self, who: &str) -> PathBuf {
        self.keydir.path().join(format!("{who}.crt"))
    }

    fn key(&self, who: &str) -> PathBuf {
        self.keydir.path().join(format!("{who}.key"))
    }

    fn recipient(&self, who: &str, id: IdKind, padding: RsaPadding) -> Recipient {
        Recipient::from_cert_file(&self.cert(who), id, padding).unwrap()
    }

    /// A key store holding `who`'s key only.
    fn store(&self, who: &str) -> KeyStore {
        KeyStore::load(&KeySpec {
            rsa: vec![RsaKeySpec {
                key_path: self.key(who),
                cert_path: self.cert(who),
                label: Some(who.into()),
            }],
            ..Default::default()
        })
        .unwrap()
    }

    /// Runs the jobs through peer.py; one result (tab-separated fields) per job, in order.
    fn run(&self, jobs: &[Vec<String>], dir: &Path) -> Vec<Vec<String>> {
        let file = dir.join("jobs.tsv");
        let text: String = jobs.iter().map(|j| j.join("\t") + "\n").collect();
        std::fs::write(&file, text).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyca/peer.py");
        let out = Command::new(&self.python)
            .arg(script)
            .arg(self.keydir.path())
            .arg(&file)
            .output()
            .expect("run peer.py");
        assert!(
            out.status.success(),
            "peer.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let results: Vec<Vec<String>> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').map(String::from).collect())
            .collect();
        assert_eq!(results.len(), jobs.len(), "one result per job");
        results
    }
}

fn s(x: impl AsRef<str>) -> String {
    x.as_ref().to_string()
}

/// A message for pyca to open: where it is, in which form, for whom, what it must give.
struct Sealed {
    /// The file pyca opens.
    file: PathBuf,
    /// "der" or "smime".
    form: &'static str,
    /// The DER, for the order check.
    der_file: PathBuf,
    recipients: Vec<&'static str>,
    sha256: String,
}

/// Tallies failed jobs; shows the first few.
#[derive(Default)]
struct Failures {
    count: usize,
    shown: Vec<String>,
}

impl Failures {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.shown.len() < 5 {
            self.shown.push(what);
        }
    }

    fn assert_none(&self, total: usize, what: &str) {
        assert!(
            self.count == 0,
            "{} of {total} {what} failed; first: {:#?}",
            self.count,
            self.shown
        );
    }
}

#[test]
fn pyca_opens_every_cbc_pkcs1_message_sipsd_seals() {
    let Some(peer) = peer() else { return };
    println!("  pyca cryptography {}", peer.version);
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let mut sealed: Vec<Sealed> = Vec::new();
    let (n_lib, n_cli) = (160, 60);
    let (mut cli_smime, mut cli_der) = (0, 0);

    for i in 0..n_lib {
        let alg = [ContentAlg::Aes128Cbc, ContentAlg::Aes256Cbc][rng.below(2)];
        let who = rng.recipients();
        let plain = rng.plaintext(i % 2 == 1);
        let recips: Vec<Recipient> = who
            .iter()
            .map(|w| peer.recipient(w, IdKind::IssuerSerial, RsaPadding::Pkcs1v15))
            .collect();
        let der = cms::seal(&plain, &recips, &Cek::generate(alg).unwrap()).unwrap();
        let file = dir.path().join(format!("lib-{i}.der"));
        std::fs::write(&file, &der).unwrap();
        sealed.push(Sealed {
            der_file: file.clone(),
            file,
            form: "der",
            recipients: who,
            sha256: sha256_hex(&plain),
        });
    }

    for i in 0..n_cli {
        let alg = ["aes-128-cbc", "aes-256-cbc"][rng.below(2)];
        let who = rng.recipients();
        let plain = rng.plaintext(i % 2 == 0);
        let smime = i % 3 != 2;
        let input = dir.path().join(format!("cli-{i}.in"));
        let body = dir.path().join(format!("cli-{i}.body"));
        std::fs::write(&input, &plain).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sipsd"));
        cmd.args(["seal", "--raw", "--alg", alg, "--padding", "pkcs1"]);
        for w in &who {
            cmd.arg("--to").arg(peer.cert(w));
        }
        if smime {
            cmd.arg("--base64");
        }
        let out = cmd.arg("--in").arg(&input).arg("--out").arg(&body).output();
        let out = out.expect("run sipsd");
        assert!(
            out.status.success(),
            "sipsd seal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body_bytes = std::fs::read(&body).unwrap();
        let (file, der_file) = if smime {
            // The S/MIME entity: the headers the CLI prints, a blank line, the base64 body.
            let headers = String::from_utf8(out.stdout).unwrap();
            assert!(
                headers.contains("Content-Transfer-Encoding: base64"),
                "{headers}"
            );
            let mut entity = b"MIME-Version: 1.0\r\n".to_vec();
            for line in headers.lines() {
                entity.extend_from_slice(line.as_bytes());
                entity.extend_from_slice(b"\r\n");
            }
            entity.extend_from_slice(b"\r\n");
            entity.extend_from_slice(&body_bytes);
            let file = dir.path().join(format!("cli-{i}.smime"));
            std::fs::write(&file, entity).unwrap();
            let ct = headers
                .lines()
                .find_map(|l| l.strip_prefix("Content-Type: "))
                .unwrap();
            let der = body::encrypted_parts(ct, Some("base64"), &body_bytes, &Default::default())
                .unwrap()
                .remove(0)
                .der;
            let der_file = dir.path().join(format!("cli-{i}.der"));
            std::fs::write(&der_file, der).unwrap();
            cli_smime += 1;
            (file, der_file)
        } else {
            cli_der += 1;
            (body.clone(), body)
        };
        sealed.push(Sealed {
            file,
            form: if smime { "smime" } else { "der" },
            der_file,
            recipients: who,
            sha256: sha256_hex(&plain),
        });
    }

    let mut jobs = Vec::new();
    for m in &sealed {
        jobs.push(vec![s("order"), s(m.der_file.to_str().unwrap())]);
        for w in &m.recipients {
            jobs.push(vec![
                s("open"),
                s(m.form),
                s(m.file.to_str().unwrap()),
                s(w),
            ]);
        }
    }
    let results = peer.run(&jobs, dir.path());
    let mut results = results.into_iter();
    let (mut opened, mut fails) = (0, Failures::default());
    let mut refused_messages = 0;
    for m in &sealed {
        let before = fails.count;
        let order = results.next().unwrap();
        if order[0] != "order"
            || order[2] != "enveloped"
            || order[3] != m.recipients.len().to_string()
        {
            fails.add(format!("order {}: {order:?}", m.der_file.display()));
        }
        for w in &m.recipients {
            let r = results.next().unwrap();
            if r[0] == "open" && r[3] == m.sha256 {
                opened += 1;
            } else {
                fails.add(format!("open {} as {w}: {r:?}", m.file.display()));
            }
        }
        refused_messages += usize::from(fails.count > before);
    }
    println!(
        "  pyca refused {refused_messages} of {} messages ({} failed jobs)",
        sealed.len(),
        fails.count
    );
    fails.assert_none(jobs.len(), "pyca jobs");
    println!(
        "  ok   pyca opened all {} messages sipsd sealed ({n_lib} library DER, {n_cli} CLI: \
         {cli_smime} S/MIME base64, {cli_der} DER; AES-128/256-CBC, PKCS#1 v1.5, issuer+serial, \
         1-4 recipients, text and binary) as every recipient: {opened} openings, each \
         plaintext SHA-256 matched",
        sealed.len()
    );
    println!(
        "  ok   pyca's strict DER parser accepted every EnvelopedData's RecipientInfos SET OF \
         (DER order) with the right count"
    );
}

#[test]
fn sipsd_opens_what_pyca_seals() {
    let Some(peer) = peer() else { return };
    println!("  pyca cryptography {}", peer.version);
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    let mut made = Vec::new();
    let mut jobs = Vec::new();
    for i in 0..n {
        let who = rng.recipients();
        let bits = ["128", "256"][rng.below(2)];
        let form = ["der", "smime"][i % 2];
        // Binary (PKCS7Options.Binary) for random bytes; text mode only for CRLF text, which
        // pyca's canonicalization leaves as it is.
        let binary = i % 4 < 2;
        let plain = rng.plaintext(binary);
        let input = dir.path().join(format!("py-{i}.in"));
        std::fs::write(&input, &plain).unwrap();
        let out = dir.path().join(format!("py-{i}.{form}"));
        jobs.push(vec![
            s("seal"),
            s(out.to_str().unwrap()),
            s(form),
            s(bits),
            s(if binary { "1" } else { "0" }),
            s(input.to_str().unwrap()),
            who.join(","),
        ]);
        made.push((out, form, bits, who, sha256_hex(&plain)));
    }
    for (r, j) in peer.run(&jobs, dir.path()).iter().zip(&jobs) {
        assert_eq!(r[0], "sealed", "pyca seal {j:?}: {r:?}");
    }
    let stores: Vec<(&str, KeyStore)> = WHO.iter().map(|w| (*w, peer.store(w))).collect();
    let mut opened = 0;
    for (file, form, bits, who, sha) in &made {
        let raw = std::fs::read(file).unwrap();
        let der = if *form == "der" {
            raw
        } else {
            // pyca's S/MIME entity: headers, a blank line, the base64 body (LF line ends).
            let text = String::from_utf8(raw).unwrap();
            let (head, body_text) = text.split_once("\n\n").expect("headers and body");
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let ct = header("Content-Type").expect("Content-Type");
            let te = header("Content-Transfer-Encoding");
            let mut parts = body::encrypted_parts(
                &ct,
                te.as_deref(),
                body_text.as_bytes(),
                &BodyLimits::default(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(parts.len(), 1);
            parts.remove(0).der
        };
        let insp = cms::inspect(&der).unwrap();
        assert_eq!(insp.kind, CmsKind::EnvelopedData);
        let want_alg = if *bits == "128" {
            ContentAlg::Aes128Cbc
        } else {
            ContentAlg::Aes256Cbc
        };
        assert_eq!(insp.content_alg.clone().unwrap(), want_alg);
        assert_eq!(insp.recipients.len(), who.len());
        for (name, store) in &stores {
            let res = cms::open(&der, store);
            if who.contains(name) {
                let o = res.unwrap_or_else(|e| panic!("{} as {name}: {e}", file.display()));
                assert_eq!(
                    &sha256_hex(&o.plaintext),
                    sha,
                    "{} as {name}",
                    file.display()
                );
                assert_eq!(o.key_label, *name);
                opened += 1;
            } else {
                assert!(
                    matches!(res, Err(cms::CmsError::NotRecipient)),
                    "{} as non-recipient {name}: {:?}",
                    file.display(),
                    res.map(|o| o.key_label)
                );
            }
        }
    }
    println!(
        "  ok   sipsd opened all {n} messages pyca's PKCS7EnvelopeBuilder sealed (DER and S/MIME, \
         AES-128/256-CBC, binary and text mode, 1-4 recipients) as every recipient: {opened} \
         openings, plaintext SHA-256 matched; non-recipients got NotRecipient"
    );
}

#[test]
fn recipient_infos_are_in_der_order_for_every_kind() {
    let Some(peer) = peer() else { return };
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let n = 120;
    let mut jobs = Vec::new();
    let mut want = Vec::new();
    let (mut gcm, mut with_psk) = (0, 0);
    for i in 0..n {
        let alg = ContentAlg::ALL[i % 4];
        let padding = [
            RsaPadding::OaepSha1,
            RsaPadding::OaepSha256,
            RsaPadding::Pkcs1v15,
        ][rng.below(3)];
        let id = [IdKind::IssuerSerial, IdKind::SubjectKeyId][rng.below(2)];
        let who = rng.recipients();
        let mut recips: Vec<Recipient> =
            who.iter().map(|w| peer.recipient(w, id, padding)).collect();
        if rng.below(2) == 0 || recips.len() == 1 {
            recips.insert(rng.below(recips.len() + 1), psk_recipient());
            with_psk += 1;
        }
        let der = cms::seal(b"v=0\r\n", &recips, &Cek::generate(alg).unwrap()).unwrap();
        let file = dir.path().join(format!("kind-{i}.der"));
        std::fs::write(&file, &der).unwrap();
        jobs.push(vec![s("order"), s(file.to_str().unwrap())]);
        let kind = if alg.is_aead() {
            gcm += 1;
            "auth-enveloped"
        } else {
            "enveloped"
        };
        want.push((
            kind,
            recips.len(),
            format!("{alg} {padding:?} {id:?} {who:?}"),
        ));
    }
    let mut fails = Failures::default();
    for (r, (kind, count, what)) in peer.run(&jobs, dir.path()).iter().zip(&want) {
        if !(r[0] == "order" && r[2] == *kind && r[3] == count.to_string()) {
            fails.add(format!("{what}: {r:?}"));
        }
    }
    println!("  {} of {n} messages refused by pyca's parser", fails.count);
    fails.assert_none(n, "order checks");
    println!(
        "  ok   pyca's strict DER parser accepted the RecipientInfos SET OF of {n} messages \
         ({gcm} AuthEnvelopedData GCM, {} EnvelopedData CBC; OAEP-SHA1/SHA256 and PKCS#1 v1.5, \
         issuer+serial and subjectKeyIdentifier, {with_psk} with a KEKRI, 2-5 recipients)",
        n - gcm
    );
}
