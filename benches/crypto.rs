//! sipsd's decryption paths next to OpenSSL 3 doing the same work on the same bytes, in the
//! same process. `scripts/bench` runs this and puts the medians in docs/BENCHMARKS.md.
//!
//! Groups (criterion ids `GROUP/NAME`):
//!
//! * `cache_hit_gcm`: an in-dialog EncryptedData (AES-256-GCM, sipsd's profile: tag appended to
//!   the ciphertext) carrying a ~1 KB SDP, decrypted with the dialog key already cached:
//!   - `sipsd_abi`: `sd_unwrap_body` on an `sd_msg` of the cached dialog + `sd_plain_free`,
//!     exactly as the Kamailio module calls it (content type, dialog key hash, shared-cache
//!     lookup, DER, GCM, inner MIME, SDP facts, result allocation and zeroizing free);
//!   - `sipsd_open_with_cek`: `cms::open_with_cek` (DER + GCM, no SIP layer, no cache);
//!   - `rustcrypto_aes_gcm`: the `aes-gcm` crate alone on the ciphertext;
//!   - `openssl_evp_gcm`: OpenSSL EVP AES-256-GCM (`openssl::symm::decrypt_aead`) on the same
//!     nonce, ciphertext and tag. OpenSSL's CMS has no EncryptedData-with-GCM profile, so this is
//!     OpenSSL's crypto alone: a lower bound for any CMS reader, not a like-for-like message.
//! * `cache_hit_cbc`: the like-for-like full-CMS comparison. An EncryptedData with AES-256-CBC
//!   (a standard structure both read) carrying the same SDP:
//!   - `sipsd_abi`, `sipsd_open_with_cek` as above (the dialog was opened with a CBC offer);
//!   - `openssl_cms`: `d2i_CMS_ContentInfo` + `CMS_EncryptedData_decrypt` into a memory BIO.
//! * `cache_miss_rsa`: AuthEnvelopedData (AES-256-GCM) for callee + proxy1, RSA-2048 OAEP
//!   (SHA-1), opened with proxy1's key:
//!   - `sipsd_abi`: `sd_unwrap_body` on a new dialog each time (unwrap, cache insert);
//!   - `sipsd_cms_open`: `cms::open` with a KeyStore;
//!   - `openssl_cms`: `CmsContentInfo::from_der` + `decrypt(pkey, cert)`.
//! * `rsa_oaep_2048`: the RSA private-key operation alone (OAEP SHA-1, 32-byte CEK):
//!   - `rsa_crate`: `rsa::PrivateKey::decrypt` (blinded, as sipsd calls it);
//!   - `openssl`: `Rsa::private_decrypt` with PKCS1_OAEP.
//!   - `aws_lc` (only with `--features aws-lc`): aws-lc-rs `OaepPrivateDecryptingKey`.
//!     With that feature, `cache_miss_rsa/sipsd_*` unwrap through AWS-LC too (scripts/bench
//!     runs those two groups a second time with it, into the "aws-lc" rows).
//! * `psk_kekri`: AuthEnvelopedData for callee (KTRI) + a pre-shared key (KEKRI, AES-256 key
//!   wrap), opened with the pre-shared key:
//!   - `sipsd_abi` (new dialog each time), `sipsd_cms_open`;
//!   - `openssl_cms`: `d2i_CMS_ContentInfo` + `CMS_decrypt_set1_key` + `CMS_decrypt`.
//!
//! * `whole_call`: the library's share of one call at a trusted proxy, as the Kamailio module and
//!   `cfg-examples/trusted-proxy.cfg` make it (scripts/bench step 9's calls): the INVITE's offer
//!   (`sd_unwrap_body` on a new dialog), the fields the script logs (`key_source`,
//!   `media_addr`, `media_port`, `signature`, `signer`: `sd_plain_get`), `sd_plain_free`; the
//!   200 OK's answer under the dialog key, the same fields; the dialog's end at the BYE's 200
//!   (`sd_dialog_end_msg`):
//!   - `psk`: offers for callee (KTRI) + the pre-shared key (KEKRI);
//!   - `psk_b64`: the same bodies base64-encoded in 76-character CRLF lines
//!     (`Content-Transfer-Encoding: base64`), as SIPp sends them in P1;
//!   - `rsa`: offers for callee + proxy1 (RSA-2048 OAEP): one RSA operation per call;
//!   - `plain`: plain SDP in both (`sd_unwrap_body` says not encrypted, nothing is read).
//!
//!   Run it under `valgrind --tool=callgrind` for the instructions per call and where they go.
//!
//! Every bench checks its first result against the plaintext before measuring.
//!
//! `unsafe` here: calls into the sipsd C ABI (what the task measures) and into libcrypto's CMS
//! functions that the `openssl` crate does not wrap; each call says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_uint, c_void, CString};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::ptr;

use criterion::{criterion_group, criterion_main, Criterion};

use aes_gcm::aead::{AeadInOut, KeyInit};
use sipsd::crypto::cms::{self, Cek, ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::crypto::keys::{KeySpec, KeyStore, PskSpec, RsaKeySpec};
use sipsd::engine::ua::UaSession;
use sipsd::ffi::{
    sd_config_free, sd_config_new, sd_config_set, sd_ctx, sd_ctx_free, sd_ctx_new,
    sd_dialog_end_msg, sd_field, sd_msg, sd_plain, sd_plain_free, sd_plain_get, sd_result, sd_str,
    sd_unwrap_body,
};
use sipsd::sip::body::BodyOptions;

// ---------------------------------------------------------------------------------------------
// libcrypto functions the openssl crate does not wrap (KEK recipients, EncryptedData).
// The openssl crate links libcrypto into this binary; these are its documented C signatures.
// ---------------------------------------------------------------------------------------------
extern "C" {
    fn d2i_CMS_ContentInfo(a: *mut *mut c_void, pp: *mut *const u8, len: c_long) -> *mut c_void;
    fn CMS_ContentInfo_free(cms: *mut c_void);
    fn CMS_EncryptedData_decrypt(
        cms: *mut c_void,
        key: *const u8,
        keylen: usize,
        dcont: *mut c_void,
        out: *mut c_void,
        flags: c_uint,
    ) -> c_int;
    fn CMS_decrypt_set1_key(
        cms: *mut c_void,
        key: *mut u8,
        keylen: usize,
        id: *const u8,
        idlen: usize,
    ) -> c_int;
    fn CMS_decrypt(
        cms: *mut c_void,
        pkey: *mut c_void,
        cert: *mut c_void,
        dcont: *mut c_void,
        out: *mut c_void,
        flags: c_uint,
    ) -> c_int;
    fn BIO_new(method: *const c_void) -> *mut c_void;
    fn BIO_s_mem() -> *const c_void;
    fn BIO_free(b: *mut c_void) -> c_int;
    fn BIO_ctrl(b: *mut c_void, cmd: c_int, larg: c_long, parg: *mut c_void) -> c_long;
}

/// `BIO_CTRL_INFO`: for a memory BIO, the number of bytes held and a pointer to them.
const BIO_CTRL_INFO: c_int = 3;
/// `CMS_BINARY`: no MIME canonicalisation of the content.
const CMS_BINARY: c_uint = 0x80;

/// Which OpenSSL CMS operation [`openssl_cms_raw`] performs.
enum RawOp<'a> {
    /// `CMS_EncryptedData_decrypt` with this key.
    EncryptedData(&'a [u8]),
    /// `CMS_decrypt_set1_key(key, id)` + `CMS_decrypt`.
    Kek { key: &'a [u8], id: &'a [u8] },
}

/// Parses `der` with OpenSSL and decrypts it as `op` says; the plaintext length, or None.
fn openssl_cms_raw(der: &[u8], op: &RawOp<'_>) -> Option<usize> {
    let mut p = der.as_ptr();
    // SAFETY: `p` points to `der.len()` readable bytes; d2i reads at most that many and returns
    // NULL or a new CMS_ContentInfo that we free below.
    let cms = unsafe { d2i_CMS_ContentInfo(ptr::null_mut(), &mut p, der.len() as c_long) };
    if cms.is_null() {
        return None;
    }
    // SAFETY: BIO_s_mem returns a static method table; BIO_new returns NULL or a BIO we free.
    let out = unsafe { BIO_new(BIO_s_mem()) };
    if out.is_null() {
        // SAFETY: `cms` came from d2i above and is freed once.
        unsafe { CMS_ContentInfo_free(cms) };
        return None;
    }
    let ok = match op {
        // SAFETY: `cms` and `out` are live; the key slice is valid for the call.
        RawOp::EncryptedData(key) => unsafe {
            CMS_EncryptedData_decrypt(
                cms,
                key.as_ptr(),
                key.len(),
                ptr::null_mut(),
                out,
                CMS_BINARY,
            )
        },
        RawOp::Kek { key, id } => {
            let mut k = key.to_vec();
            // SAFETY: `cms` and `out` are live; `k` and `id` are valid for the calls (OpenSSL
            // copies the key); NULL pkey/cert are allowed once a key is set.
            unsafe {
                CMS_decrypt_set1_key(cms, k.as_mut_ptr(), k.len(), id.as_ptr(), id.len()) == 1
                    && CMS_decrypt(
                        cms,
                        ptr::null_mut(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        out,
                        CMS_BINARY,
                    ) == 1
            }
            .into()
        }
    };
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: `out` is a live memory BIO; BIO_CTRL_INFO stores a pointer to its buffer.
    let len = unsafe {
        BIO_ctrl(
            out,
            BIO_CTRL_INFO,
            0,
            (&mut data as *mut *mut c_void).cast(),
        )
    };
    // SAFETY: both objects were created above and are freed exactly once.
    unsafe {
        BIO_free(out);
        CMS_ContentInfo_free(cms);
    }
    (ok == 1).then_some(len as usize)
}

// ---------------------------------------------------------------------------------------------
// Fixture: keys, a ~1 KB SDP, the messages
// ---------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn keys_dir() -> PathBuf {
    root().join("tests/data/vectors/keys")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(text: &str) -> Vec<u8> {
    let t = text.trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An SDP offer of about 1 KB: audio + video, SRTP crypto lines, ICE candidates.
pub fn sdp_1k() -> Vec<u8> {
    let mut s = String::from(
        "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=sipsd bench\r\n\
         c=IN IP4 192.0.2.10\r\nt=0 0\r\na=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n\
         m=audio 49170 RTP/SAVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
         a=ptime:20\r\na=sendrecv\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32\r\n\
         a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host\r\n\
         a=candidate:2 1 UDP 1694498815 198.51.100.7 49170 typ srflx raddr 192.0.2.10 rport 49170\r\n\
         m=video 51372 RTP/SAVP 96 97\r\na=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=rtpmap:97 VP8/90000\r\n\
         a=rtcp-fb:96 nack pli\r\na=rtcp-fb:97 nack pli\r\na=sendrecv\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32\r\n\
         a=candidate:1 1 UDP 2130706431 192.0.2.10 51372 typ host\r\n",
    );
    while s.len() < 1000 {
        s.push_str("a=x-pad:sipsd-benchmark-padding\r\n");
    }
    s.into_bytes()
}

fn cert(name: &str) -> Recipient {
    Recipient::from_cert_file(
        &keys_dir().join(format!("{name}.crt")),
        IdKind::IssuerSerial,
        RsaPadding::OaepSha1,
    )
    .expect("certificate")
}

fn psk() -> (Vec<u8>, Vec<u8>) {
    let id = hex(&String::from_utf8(read(&keys_dir().join("psk-proxy1.id.hex"))).unwrap());
    let key = hex(&String::from_utf8(read(&keys_dir().join("psk-proxy1.hex"))).unwrap());
    (id, key)
}

fn keystore(rsa: bool, with_psk: bool) -> KeyStore {
    let mut spec = KeySpec::default();
    if rsa {
        spec.rsa.push(RsaKeySpec {
            key_path: keys_dir().join("proxy1.key"),
            cert_path: keys_dir().join("proxy1.crt"),
            label: Some("proxy1".into()),
        });
    }
    if with_psk {
        spec.psk.push(PskSpec {
            id: psk().0,
            key_path: keys_dir().join("psk-proxy1.hex"),
            label: Some("psk".into()),
        });
    }
    KeyStore::load(&spec).expect("keys")
}

/// The C ABI context the module would make: proxy1's RSA key and the pre-shared key.
struct Ctx(*mut sd_ctx);

impl Ctx {
    fn new() -> Ctx {
        let k = keys_dir();
        let opts = [
            (
                "rsa_key",
                format!(
                    "key={};cert={};label=proxy1",
                    k.join("proxy1.key").display(),
                    k.join("proxy1.crt").display()
                ),
            ),
            (
                "psk",
                format!(
                    "id={};key={};label=psk",
                    String::from_utf8(read(&k.join("psk-proxy1.id.hex")))
                        .unwrap()
                        .trim(),
                    k.join("psk-proxy1.hex").display()
                ),
            ),
            ("mode", "both".into()),
            ("cache_capacity", "10000".into()),
            ("cache_ttl", "3600".into()),
            ("strict_key_permissions", "0".into()),
            // the CBC group's in-dialog body is unauthenticated EncryptedData, which a proxy
            // opens only when the operator allows it (old peers); GCM bodies are unaffected
            ("allow_cbc_in_dialog", "1".into()),
        ];
        // SAFETY: sd_config_new returns an owned config (or NULL, checked), every option string
        // is NUL-terminated and lives for its call, and the config is freed once after
        // sd_ctx_new (which borrows it).
        unsafe {
            let cfg = sd_config_new();
            assert!(!cfg.is_null(), "sd_config_new");
            for (name, value) in &opts {
                let n = CString::new(*name).unwrap();
                let v = CString::new(value.as_str()).unwrap();
                assert_eq!(
                    sd_config_set(cfg, n.as_ptr(), v.as_ptr()),
                    sd_result::SD_OK,
                    "option {name}"
                );
            }
            let mut ctx = ptr::null_mut();
            let r = sd_ctx_new(cfg, &mut ctx);
            sd_config_free(cfg);
            assert_eq!(r, sd_result::SD_OK, "sd_ctx_new");
            Ctx(ctx)
        }
    }

    /// `sd_unwrap_body` + `sd_plain_free`; the result code.
    fn unwrap_free(&self, msg: &sd_msg) -> sd_result {
        let mut out: *mut sd_plain = ptr::null_mut();
        // SAFETY: the context is live, `msg` borrows byte strings that outlive the call, `out`
        // is writable; the result (NULL or owned) is freed exactly once.
        unsafe {
            let r = sd_unwrap_body(self.0, msg, &mut out);
            sd_plain_free(black_box(out));
            r
        }
    }
}

impl Ctx {
    /// What the module does for one body: `sd_unwrap_body`, the fields the example script logs
    /// after a decryption, `sd_plain_free`. Returns the result code and the bytes read.
    fn unwrap_read_free(&self, msg: &sd_msg) -> (sd_result, usize) {
        const LOGGED: [sd_field; 5] = [
            sd_field::SD_FIELD_KEY_SOURCE,
            sd_field::SD_FIELD_MEDIA_ADDR,
            sd_field::SD_FIELD_MEDIA_PORT,
            sd_field::SD_FIELD_SIGNATURE,
            sd_field::SD_FIELD_SIGNER,
        ];
        let mut out: *mut sd_plain = ptr::null_mut();
        let mut read = 0;
        // SAFETY: as in unwrap_free; `v` is writable and read only while `out` is live.
        unsafe {
            let r = sd_unwrap_body(self.0, msg, &mut out);
            if r == sd_result::SD_OK {
                for f in LOGGED {
                    let mut v = sd_str::EMPTY;
                    if sd_plain_get(out, 0, f as u32, &mut v) == sd_result::SD_OK {
                        read += v.len;
                    }
                }
            }
            sd_plain_free(black_box(out));
            (r, read)
        }
    }

    /// `sd_dialog_end_msg` (the BYE's 200 OK).
    fn dialog_end(&self, msg: &sd_msg) -> sd_result {
        // SAFETY: the context is live and `msg` borrows byte strings that outlive the call.
        unsafe { sd_dialog_end_msg(self.0, msg) }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: made by sd_ctx_new in this process, freed once.
        unsafe { sd_ctx_free(self.0) }
    }
}

fn s(b: &[u8]) -> sd_str {
    sd_str {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

const SMIME_AUTH: &[u8] = b"application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m";
const SMIME_ENV: &[u8] = b"application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m";
const SMIME_ENC: &[u8] = b"application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m";

/// An `sd_msg` borrowing its fields.
fn msg(
    call_id: &[u8],
    to_tag: &[u8],
    method: &[u8],
    status: u32,
    ct: &[u8],
    body: &[u8],
) -> sd_msg {
    sd_msg {
        call_id: s(call_id),
        from_tag: s(b"bench-from-tag"),
        to_tag: s(to_tag),
        method: s(method),
        status,
        content_type: s(ct),
        transfer_encoding: s(b""),
        disclose_to: s(b""),
        body: s(body),
        from_uri: s(b""),
        to_uri: s(b""),
        from: s(b""),
    }
}

/// (nonce, ciphertext, tag) of a GCM EncryptedData in sipsd's profile.
fn gcm_parts(der: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use der::{Decode, Encode};
    let ci = ::cms::content_info::ContentInfo::from_der(der).expect("ContentInfo");
    let ed: ::cms::encrypted_data::EncryptedData = ci.content.decode_as().expect("EncryptedData");
    let eci = ed.enc_content_info;
    let params = eci.content_enc_alg.parameters.expect("GCM parameters");
    let gp = cms::GcmParameters::from_der(&params.to_der().unwrap()).expect("GCMParameters");
    let body = eci.encrypted_content.expect("content").as_bytes().to_vec();
    let tag_len = gp.icv_len as usize;
    let (ct, tag) = body.split_at(body.len() - tag_len);
    (gp.nonce.as_bytes().to_vec(), ct.to_vec(), tag.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Benches
// ---------------------------------------------------------------------------------------------

fn cache_hit(c: &mut Criterion) {
    let sdp = sdp_1k();
    let opts = BodyOptions::default();
    let inner = sipsd::sip::body::mime_entity("application/sdp", &sdp);
    let both = [cert("callee"), cert("proxy1")];
    let ctx = Ctx::new();

    for (alg, group, offer_ct) in [
        (ContentAlg::Aes256Gcm, "cache_hit_gcm", SMIME_AUTH),
        (ContentAlg::Aes256Cbc, "cache_hit_cbc", SMIME_ENV),
    ] {
        let call_id = format!("{group}@bench.example");
        let (mut ua, offer) =
            UaSession::offer("application/sdp", &sdp, &both, alg, None, &opts).expect("offer");
        // the INVITE caches the dialog key
        let m = msg(call_id.as_bytes(), b"", b"INVITE", 0, offer_ct, &offer.body);
        assert_eq!(ctx.unwrap_free(&m), sd_result::SD_OK, "{group}: offer");
        // the in-dialog body: the 200 OK's answer under the dialog key
        let answer = ua.encrypt("application/sdp", &sdp, &opts).expect("answer");
        let der = answer.body.clone();
        let m = msg(
            call_id.as_bytes(),
            b"bench-to-tag",
            b"INVITE",
            200,
            SMIME_ENC,
            &der,
        );
        assert_eq!(ctx.unwrap_free(&m), sd_result::SD_OK, "{group}: answer");
        let cek = Cek::from_bytes(alg, ua.cek().as_bytes()).unwrap();
        assert_eq!(&cms::open_with_cek(&der, &cek).unwrap()[..], &inner[..]);
        println!(
            "{group}: plaintext {} bytes (SDP {} + inner MIME header), DER {} bytes",
            inner.len(),
            sdp.len(),
            der.len()
        );

        let mut g = c.benchmark_group(group);
        g.bench_function("sipsd_abi", |b| {
            b.iter(|| assert_eq!(ctx.unwrap_free(black_box(&m)), sd_result::SD_OK))
        });
        g.bench_function("sipsd_open_with_cek", |b| {
            b.iter(|| cms::open_with_cek(black_box(&der), &cek).unwrap())
        });
        match alg {
            ContentAlg::Aes256Gcm => {
                let (nonce, ct, tag) = gcm_parts(&der);
                let key = cek.as_bytes().to_vec();
                let ossl = openssl::symm::decrypt_aead(
                    openssl::symm::Cipher::aes_256_gcm(),
                    &key,
                    Some(&nonce),
                    &[],
                    &ct,
                    &tag,
                )
                .expect("openssl gcm");
                assert_eq!(ossl, &inner[..]);
                let aes = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
                g.bench_function("rustcrypto_aes_gcm", |b| {
                    b.iter(|| {
                        let mut buf = black_box(&ct).clone();
                        aes.decrypt_inout_detached(
                            nonce.as_slice().try_into().unwrap(),
                            &[],
                            buf.as_mut_slice().into(),
                            tag.as_slice().try_into().unwrap(),
                        )
                        .unwrap();
                        buf
                    })
                });
                g.bench_function("openssl_evp_gcm", |b| {
                    b.iter(|| {
                        openssl::symm::decrypt_aead(
                            openssl::symm::Cipher::aes_256_gcm(),
                            &key,
                            Some(&nonce),
                            &[],
                            black_box(&ct),
                            &tag,
                        )
                        .unwrap()
                    })
                });
            }
            _ => {
                let key = cek.as_bytes().to_vec();
                let op = RawOp::EncryptedData(&key);
                assert_eq!(openssl_cms_raw(&der, &op), Some(inner.len()), "openssl cbc");
                g.bench_function("openssl_cms", |b| {
                    b.iter(|| openssl_cms_raw(black_box(&der), &op).unwrap())
                });
            }
        }
        g.finish();
    }
}

fn cache_miss(c: &mut Criterion) {
    let sdp = sdp_1k();
    let opts = BodyOptions::default();
    let inner = sipsd::sip::body::mime_entity("application/sdp", &sdp);
    let both = [cert("callee"), cert("proxy1")];
    let (_, offer) = UaSession::offer(
        "application/sdp",
        &sdp,
        &both,
        ContentAlg::Aes256Gcm,
        None,
        &opts,
    )
    .expect("offer");
    let der = offer.body;
    let ctx = Ctx::new();
    let store = keystore(true, false);
    let pkey = openssl::pkey::PKey::private_key_from_pem(&read(&keys_dir().join("proxy1.key")))
        .expect("key");
    let x509 = openssl::x509::X509::from_pem(&read(&keys_dir().join("proxy1.crt"))).expect("cert");
    let ossl = openssl::cms::CmsContentInfo::from_der(&der)
        .unwrap()
        .decrypt(&pkey, &x509)
        .expect("openssl decrypt");
    assert_eq!(ossl, &inner[..]);
    assert_eq!(&cms::open(&der, &store).unwrap().plaintext[..], &inner[..]);

    let mut g = c.benchmark_group("cache_miss_rsa");
    let mut n = 0u64;
    g.bench_function("sipsd_abi", |b| {
        b.iter(|| {
            n += 1;
            let call_id = format!("miss-{n}@bench.example");
            let m = msg(call_id.as_bytes(), b"", b"INVITE", 0, SMIME_AUTH, &der);
            assert_eq!(ctx.unwrap_free(&m), sd_result::SD_OK)
        })
    });
    g.bench_function("sipsd_cms_open", |b| {
        b.iter(|| cms::open(black_box(&der), &store).unwrap())
    });
    g.bench_function("openssl_cms", |b| {
        b.iter(|| {
            openssl::cms::CmsContentInfo::from_der(black_box(&der))
                .unwrap()
                .decrypt(&pkey, &x509)
                .unwrap()
        })
    });
    g.finish();

    // the RSA operation alone, on one OAEP(SHA-1) ciphertext of a 32-byte key
    let rsa_ossl = pkey.rsa().unwrap();
    let mut wrapped = vec![0u8; rsa_ossl.size() as usize];
    let cek = [0x5au8; 32];
    let n_ct = rsa_ossl
        .public_encrypt(&cek, &mut wrapped, openssl::rsa::Padding::PKCS1_OAEP)
        .unwrap();
    wrapped.truncate(n_ct);
    let pem = String::from_utf8(read(&keys_dir().join("proxy1.key"))).unwrap();
    let rsa_rc =
        <rsa::PrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem).expect("rsa key");
    assert_eq!(
        rsa_rc
            .decrypt(rsa::Oaep::<sha1::Sha1>::new(), &wrapped)
            .unwrap(),
        cek
    );
    let mut g = c.benchmark_group("rsa_oaep_2048");
    g.bench_function("rsa_crate", |b| {
        b.iter(|| {
            rsa_rc
                .decrypt(rsa::Oaep::<sha1::Sha1>::new(), black_box(&wrapped))
                .unwrap()
        })
    });
    g.bench_function("openssl", |b| {
        let mut out = vec![0u8; rsa_ossl.size() as usize];
        b.iter(|| {
            rsa_ossl
                .private_decrypt(
                    black_box(&wrapped),
                    &mut out,
                    openssl::rsa::Padding::PKCS1_OAEP,
                )
                .unwrap()
        })
    });
    g.finish();
}

fn psk_path(c: &mut Criterion) {
    let sdp = sdp_1k();
    let opts = BodyOptions::default();
    let inner = sipsd::sip::body::mime_entity("application/sdp", &sdp);
    let (id, key) = psk();
    let recips = [
        cert("callee"),
        Recipient::Psk {
            id: id.clone(),
            kek: zeroize::Zeroizing::new(key.clone()),
        },
    ];
    let (_, offer) = UaSession::offer(
        "application/sdp",
        &sdp,
        &recips,
        ContentAlg::Aes256Gcm,
        None,
        &opts,
    )
    .expect("offer");
    let der = offer.body;
    let ctx = Ctx::new();
    let store = keystore(false, true);
    assert_eq!(&cms::open(&der, &store).unwrap().plaintext[..], &inner[..]);
    let op = RawOp::Kek { key: &key, id: &id };
    assert_eq!(openssl_cms_raw(&der, &op), Some(inner.len()), "openssl kek");

    let mut g = c.benchmark_group("psk_kekri");
    let mut n = 0u64;
    g.bench_function("sipsd_abi", |b| {
        b.iter(|| {
            n += 1;
            let call_id = format!("psk-{n}@bench.example");
            let m = msg(call_id.as_bytes(), b"", b"INVITE", 0, SMIME_AUTH, &der);
            assert_eq!(ctx.unwrap_free(&m), sd_result::SD_OK)
        })
    });
    g.bench_function("sipsd_cms_open", |b| {
        b.iter(|| cms::open(black_box(&der), &store).unwrap())
    });
    g.bench_function("openssl_cms", |b| {
        b.iter(|| openssl_cms_raw(black_box(&der), &op).unwrap())
    });
    g.finish();
}

/// With the `aws-lc` feature: the RSA-OAEP private-key operation alone through aws-lc-rs, as
/// `sipsd::crypto::cms` calls it (`OaepPrivateDecryptingKey::decrypt`, OAEP SHA-1, 32-byte CEK), on
/// an OpenSSL-made ciphertext, as `rsa_oaep_2048/aws_lc` next to `rsa_crate` and `openssl`.
/// (`cache_miss_rsa/sipsd_*` themselves go through AWS-LC when the feature is on.)
#[cfg(feature = "aws-lc")]
fn rsa_oaep_aws_lc(c: &mut Criterion) {
    use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1};
    use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let pem = String::from_utf8(read(&keys_dir().join("proxy1.key"))).unwrap();
    let pkcs8 = rsa::PrivateKey::from_pkcs8_pem(&pem)
        .expect("rsa key")
        .to_pkcs8_der()
        .expect("pkcs8");
    let key = OaepPrivateDecryptingKey::new(
        PrivateDecryptingKey::from_pkcs8(pkcs8.as_bytes()).expect("aws-lc key"),
    )
    .expect("aws-lc oaep key");
    let pkey = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes()).expect("key");
    let rsa_ossl = pkey.rsa().unwrap();
    let mut wrapped = vec![0u8; rsa_ossl.size() as usize];
    let cek = [0x5au8; 32];
    let n_ct = rsa_ossl
        .public_encrypt(&cek, &mut wrapped, openssl::rsa::Padding::PKCS1_OAEP)
        .unwrap();
    wrapped.truncate(n_ct);
    let mut out = vec![0u8; key.min_output_size()];
    assert_eq!(
        key.decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut out, None)
            .unwrap(),
        &cek[..]
    );
    let mut g = c.benchmark_group("rsa_oaep_2048");
    g.bench_function("aws_lc", |b| {
        b.iter(|| {
            key.decrypt(&OAEP_SHA1_MGF1SHA1, black_box(&wrapped), &mut out, None)
                .unwrap()
                .len()
        })
    });
    g.finish();
}

fn whole_call(c: &mut Criterion) {
    let sdp = sdp_1k();
    let psk_recipient = || {
        let (id, key) = psk();
        Recipient::Psk {
            id,
            kek: zeroize::Zeroizing::new(key),
        }
    };
    let ctx = Ctx::new();
    let mut g = c.benchmark_group("whole_call");
    for (name, recipients, base64) in [
        ("psk", vec![cert("callee"), psk_recipient()], false),
        ("psk_b64", vec![cert("callee"), psk_recipient()], true),
        ("rsa", vec![cert("callee"), cert("proxy1")], false),
        ("plain", vec![], false),
    ] {
        let opts = BodyOptions {
            base64,
            ..BodyOptions::default()
        };
        let te: &[u8] = if base64 { b"base64" } else { b"" };
        // (content type, offer, answer): the same two bodies for every call, as SIPp sends them
        let (offer_ct, offer, answer_ct, answer) = if recipients.is_empty() {
            (
                &b"application/sdp"[..],
                sdp.clone(),
                &b"application/sdp"[..],
                sdp.clone(),
            )
        } else {
            let (mut ua, offer) = UaSession::offer(
                "application/sdp",
                &sdp,
                &recipients,
                ContentAlg::Aes256Gcm,
                None,
                &opts,
            )
            .expect("offer");
            let answer = ua.encrypt("application/sdp", &sdp, &opts).expect("answer");
            (SMIME_AUTH, offer.body, SMIME_ENC, answer.body)
        };
        let expect = if recipients.is_empty() {
            sd_result::SD_NOT_ENCRYPTED
        } else {
            sd_result::SD_OK
        };
        let mut n = 0u64;
        let mut one_call = || {
            n += 1;
            let call_id = format!("{name}-{n}@bench.example");
            let mut invite = msg(call_id.as_bytes(), b"", b"INVITE", 0, offer_ct, &offer);
            invite.transfer_encoding = s(te);
            let (r, read) = ctx.unwrap_read_free(&invite);
            assert_eq!(r, expect, "{name}: offer");
            let mut ok = msg(
                call_id.as_bytes(),
                b"bench-to-tag",
                b"INVITE",
                200,
                answer_ct,
                &answer,
            );
            ok.transfer_encoding = s(te);
            let (r, read2) = ctx.unwrap_read_free(&ok);
            assert_eq!(r, expect, "{name}: answer");
            let bye_ok = msg(call_id.as_bytes(), b"bench-to-tag", b"BYE", 200, b"", b"");
            ctx.dialog_end(&bye_ok);
            read + read2
        };
        let first = one_call();
        if expect == sd_result::SD_OK {
            // key_source, the address and port, signature "none" read from both bodies
            assert!(first > 0, "{name}: no field was read");
        }
        g.bench_function(name, |b| b.iter(&mut one_call));
    }
    g.finish();
}

criterion_group!(benches, cache_hit, cache_miss, psk_path, whole_call);
#[cfg(feature = "aws-lc")]
criterion_group!(aws_lc_benches, rsa_oaep_aws_lc);
#[cfg(not(feature = "aws-lc"))]
criterion_main!(benches);
#[cfg(feature = "aws-lc")]
criterion_main!(benches, aws_lc_benches);
