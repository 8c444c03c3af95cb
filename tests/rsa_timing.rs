//! Bleichenbacher / Marvin resistance of RSA PKCS#1 v1.5 key transport (docs/SECURITY.md).
//!
//! Two classes of AuthEnvelopedData (AES-256-GCM) for proxy1, identical except for the KTRI's
//! encryptedKey (GCM, not CBC: with CBC about one wrong key in 256 passes the padding check and
//! yields garbage instead of an error, which would make the "same error" check flaky):
//! - **valid padding**: a correct PKCS#1 v1.5 block around a random 32-byte key (the wrong key
//!   for the content, so decryption fails after the RSA step);
//! - **invalid padding**: random blocks (bad leading bytes, no zero separator, wrong key
//!   length).
//!
//! Both must fail the same way (`CmsError::Decrypt`: a bad padding becomes a stand-in CEK, so no
//! error tells them apart) and take the same time. The timing check is dudect-style: samples
//! of both classes interleaved in random order, timed around `sipsd::crypto::cms::open`, compared with
//! Welch's t-test (raw, and cropped at the pooled 50th/90th percentiles against outliers).
//!
//! In the test suite the run is small (a few seconds) and fails only on an extreme |t| > 50
//! (a shared, noisy machine); `SIPSD_TIMING_SAMPLES=N` (and `--release`) runs the long
//! version, as `scripts/rsa-timing` does. Run: `cargo test --test rsa_timing -- --nocapture`.

mod support;

use std::time::Instant;

use openssl::rsa::Padding;
use sipsd::crypto::cms::{self, Cek, CmsError, ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::crypto::keys::{KeySpec, KeyStore, RsaKeySpec};

use support::rng::Rng;
use support::vectors::keys;

/// Mean and variance (unbiased).
fn stats(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Welch's t statistic of two samples.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = stats(a);
    let (mb, vb) = stats(b);
    (ma - mb) / (va / a.len() as f64 + vb / b.len() as f64).sqrt()
}

fn percentile(all: &mut [f64], p: f64) -> f64 {
    all.sort_by(f64::total_cmp);
    all[((all.len() - 1) as f64 * p) as usize]
}

#[test]
fn pkcs1v15_padding_is_not_an_oracle() {
    let samples: usize = std::env::var("SIPSD_TIMING_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 100 } else { 3000 });
    let dir = keys();
    let keys = KeyStore::load(&KeySpec {
        rsa: vec![RsaKeySpec {
            key_path: dir.join("proxy1.key"),
            cert_path: dir.join("proxy1.crt"),
            label: None,
        }],
        ..Default::default()
    })
    .expect("proxy1 keys");
    let recipient = Recipient::from_cert_file(
        &dir.join("proxy1.crt"),
        IdKind::IssuerSerial,
        RsaPadding::Pkcs1v15,
    )
    .expect("proxy1 cert");
    let cek = Cek::generate(ContentAlg::Aes256Gcm).expect("cek");
    let template = cms::seal(
        b"Content-Type: application/sdp\r\n\r\nv=0\r\n",
        &[recipient],
        &cek,
    )
    .expect("seal");
    // Sanity: the template opens.
    assert_eq!(
        cms::open(&template, &keys).expect("open").cek.as_bytes(),
        cek.as_bytes()
    );
    // The encryptedKey is the only 256-byte OCTET STRING (04 82 01 00).
    let at = template
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .expect("encryptedKey")
        + 4;
    let cert = openssl::x509::X509::from_pem(&std::fs::read(dir.join("proxy1.crt")).unwrap())
        .expect("cert");
    let rsa = cert.public_key().unwrap().rsa().unwrap();
    let modulus = rsa.n().to_vec();
    let k = modulus.len();
    assert_eq!(k, 256);
    let raw_encrypt = |em: &[u8]| {
        let mut out = vec![0u8; k];
        let n = rsa
            .public_encrypt(em, &mut out, Padding::NONE)
            .expect("raw RSA");
        assert_eq!(n, k);
        out
    };
    let with_key = |ct: &[u8]| {
        let mut m = template.clone();
        m[at..at + k].copy_from_slice(ct);
        m
    };

    let mut rng = Rng::new(0x7171_0102_0304_0506);
    // A pool of messages per class (encrypting is not what is timed).
    let pool = if cfg!(debug_assertions) { 16 } else { 64 };
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for i in 0..pool {
        // Valid: 00 02 PS(non-zero) 00 K(32).
        let mut em = vec![0u8; k];
        em[1] = 2;
        for b in &mut em[2..k - 33] {
            *b = rng.nonzero();
        }
        rng.fill(&mut em[k - 32..]);
        valid.push(with_key(&raw_encrypt(&em)));
        // Invalid, four kinds.
        let mut em = vec![0u8; k];
        match i % 4 {
            0 => {
                em[1] = 1; // block type 1
                for b in &mut em[2..k - 33] {
                    *b = 0xff;
                }
                rng.fill(&mut em[k - 32..]);
            }
            1 => {
                em[1] = 2; // no zero separator
                for b in &mut em[2..] {
                    *b = rng.nonzero();
                }
            }
            2 => {
                em[1] = 2; // separator too early: a 200-byte "key"
                for b in &mut em[2..k - 201] {
                    *b = rng.nonzero();
                }
                rng.fill(&mut em[k - 200..]);
            }
            _ => {
                rng.fill(&mut em[1..]); // random (first byte 0 so that m < n)
                em[1] = em[1].max(3);
            }
        }
        invalid.push(with_key(&raw_encrypt(&em)));
    }
    // Both classes fail the same way.
    for (name, class) in [("valid padding", &valid), ("invalid padding", &invalid)] {
        for m in class.iter() {
            match cms::open(m, &keys) {
                Err(CmsError::Decrypt) => {}
                other => panic!("{name}: expected CmsError::Decrypt, got {other:?}"),
            }
        }
    }
    println!(
        "both classes ({pool} messages each) fail with the same error: {}",
        CmsError::Decrypt
    );

    // Warm up, then interleave at random.
    for m in valid.iter().chain(&invalid).take(16) {
        let _ = cms::open(m, &keys);
    }
    let mut ta = Vec::with_capacity(samples);
    let mut tb = Vec::with_capacity(samples);
    let started = Instant::now();
    while ta.len() < samples || tb.len() < samples {
        let r = rng.next();
        let pick_valid = (r & 1 == 0 && ta.len() < samples) || tb.len() >= samples;
        let idx = ((r >> 8) % pool as u64) as usize;
        let m = if pick_valid {
            &valid[idx]
        } else {
            &invalid[idx]
        };
        let t0 = Instant::now();
        let res = cms::open(std::hint::black_box(m), &keys);
        let dt = t0.elapsed().as_nanos() as f64;
        std::hint::black_box(res.is_err());
        if pick_valid {
            ta.push(dt)
        } else {
            tb.push(dt)
        }
    }
    let elapsed = started.elapsed();
    let t_raw = welch_t(&ta, &tb);
    let mut pooled: Vec<f64> = ta.iter().chain(&tb).copied().collect();
    let mut crops = Vec::new();
    for p in [0.5, 0.9] {
        let cut = percentile(&mut pooled, p);
        let a: Vec<f64> = ta.iter().copied().filter(|&x| x <= cut).collect();
        let b: Vec<f64> = tb.iter().copied().filter(|&x| x <= cut).collect();
        if a.len() > 10 && b.len() > 10 {
            crops.push((p, welch_t(&a, &b)));
        }
    }
    let (ma, _) = stats(&ta);
    let (mb, _) = stats(&tb);
    println!(
        "{samples} + {samples} timed opens in {elapsed:?} ({}): mean valid-padding {:.1} us, invalid-padding {:.1} us",
        if cfg!(debug_assertions) { "debug build" } else { "release build" },
        ma / 1000.0,
        mb / 1000.0
    );
    println!("Welch t: raw {t_raw:.2}; cropped {crops:?} (|t| > 4.5 would suggest a leak on a quiet machine; the suite fails above 50)");
    let worst = crops.iter().map(|c| c.1.abs()).fold(t_raw.abs(), f64::max);
    assert!(
        worst < 50.0,
        "timing of valid vs invalid PKCS#1 v1.5 padding differs: |t| = {worst:.1}"
    );
}
