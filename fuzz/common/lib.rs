//! The bodies of sipsd's fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/`) and
//! by the regression test that replays every committed crash input
//! (`tests/fuzz_regressions.rs`, which includes this file with `#[path]`).
//!
//! Every function takes arbitrary bytes and must return without panicking; what it checks
//! besides "no panic, no crash, no hang" is written at each function.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use sipsd::crypto::cms::{self, Cek, CmsMessage, ContentAlg};
use sipsd::crypto::keys::{KeySpec, KeyStore, PskSpec, RsaKeySpec};
use sipsd::engine::signature::{self, SignaturePolicy};
use sipsd::ffi::{
    sd_config_free, sd_config_new, sd_config_set, sd_crypto_field, sd_ctx, sd_ctx_new,
    sd_dialog_end_msg, sd_field, sd_media_field, sd_msg, sd_plain_count, sd_plain_crypto_count,
    sd_plain_crypto_get, sd_plain_free, sd_plain_get, sd_plain_media_count, sd_plain_media_get,
    sd_rotate, sd_should_decrypt, sd_str, sd_unwrap_body,
};
use sipsd::ffi::{sd_plain, sd_result};
use sipsd::sip::body::{self, BodyLimits};
use sipsd::sip::disclose::DisclosureRequest;
use sipsd::sip::sdp::{self, SdpInfo};

/// The names of the targets, as `fuzz_targets/NAME.rs` and `fuzz/regressions/NAME/`.
pub const TARGETS: [&str; 7] = [
    "cms_open",
    "cms_open_with_cek",
    "body",
    "request",
    "sdp",
    "ffi_unwrap",
    "pcp",
];

/// Runs the target `name` on `data`; false if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "cms_open" => cms_open(data),
        "cms_open_with_cek" => cms_open_with_cek(data),
        "body" => body(data),
        "request" => request(data),
        "sdp" => sdp(data),
        "ffi_unwrap" => ffi_unwrap(data),
        "pcp" => pcp(data),
        _ => return false,
    }
    true
}

/// The test keys (`tests/data/vectors/keys`), found from this crate or the main one.
fn key_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in [
        here.join("tests/data/vectors/keys"),
        here.join("../tests/data/vectors/keys"),
    ] {
        if dir.join("proxy1.key").exists() {
            return dir;
        }
    }
    panic!("test keys not found from {}", here.display());
}

/// proxy1's RSA key and the pre-shared key `psk-proxy1`, as a proxy would load them.
pub fn keystore() -> &'static KeyStore {
    static KEYS: OnceLock<KeyStore> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = key_dir();
        KeyStore::load(&KeySpec {
            rsa: vec![RsaKeySpec {
                key_path: dir.join("proxy1.key"),
                cert_path: dir.join("proxy1.crt"),
                label: None,
            }],
            psk: vec![PskSpec {
                id: b"psk-proxy1".to_vec(),
                key_path: dir.join("psk-proxy1.hex"),
                label: None,
            }],
            identities: vec!["proxy1.example.com".into()],
            strict_permissions: false,
            ..Default::default()
        })
        .expect("load the test keys")
    })
}

/// `cms::inspect` then `cms::open` with proxy1's keys. Checks: inspect and open agree on the
/// kind when both succeed; a successful open reports a CEK of its algorithm's length.
///
/// And: the in-place reader of AuthEnvelopedData and the general decoder agree on it
/// ([`profile_agrees`], with the vectors' dialog key for `open_with_cek` and rotations).
pub fn cms_open(data: &[u8]) {
    let cek = Cek::from_bytes(ContentAlg::Aes256Gcm, &[0x5a; 32]).expect("32-byte key");
    if let Err(e) = profile_agrees(data, &[cek]) {
        panic!("profile reader and general decoder differ: {e}");
    }
    let insp = cms::inspect(data);
    if let Ok(opened) = cms::open(data, keystore()) {
        let insp = insp.expect("open succeeded where inspect failed");
        assert_eq!(insp.kind, opened.kind);
        assert_eq!(opened.cek.as_bytes().len(), opened.cek.alg().key_len());
    }
}

/// `cms::open_with_cek`: byte 0 picks the algorithm, the next key-length bytes are the key,
/// the rest is the message; the same message is also tried with the vectors' dialog key.
/// Checks: the profile reader (sipsd's EncryptedData read in place) and the general decoder
/// agree on the message ([`profile_agrees`]).
pub fn cms_open_with_cek(data: &[u8]) {
    // tests/data/vectors/keys/dialog-cek.hex, the key of encrypteddata-cbc256.der.
    const DIALOG_CEK: [u8; 32] = [
        0x14, 0x87, 0x4e, 0x90, 0x17, 0x77, 0xfc, 0xbe, 0x01, 0xd8, 0x7d, 0xaa, 0x45, 0x62, 0x1a,
        0x9d, 0x3e, 0xa2, 0xef, 0x32, 0xad, 0x99, 0x89, 0xfe, 0xae, 0xc5, 0x6a, 0xb8, 0x15, 0xf9,
        0x62, 0xc3,
    ];
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let algs = [
        ContentAlg::Aes128Gcm,
        ContentAlg::Aes256Gcm,
        ContentAlg::Aes128Cbc,
        ContentAlg::Aes256Cbc,
    ];
    let alg = algs[usize::from(sel) % algs.len()];
    if sel & 0x80 != 0 && rest.len() >= alg.key_len() {
        let (key, der) = rest.split_at(alg.key_len());
        let cek = Cek::from_bytes(alg, key).expect("key of the algorithm's length");
        let _ = cms::open_with_cek(der, &cek);
        if let Err(e) = profile_agrees(der, &[cek]) {
            panic!("profile reader and general decoder differ: {e}");
        }
    } else {
        let cek = Cek::from_bytes(ContentAlg::Aes256Cbc, &DIALOG_CEK).expect("32-byte key");
        let _ = cms::open_with_cek(rest, &cek);
        if let Err(e) = profile_agrees(rest, &[cek]) {
            panic!("profile reader and general decoder differ: {e}");
        }
    }
}

/// Everything a caller can learn from a parsed message: its inspection, whether it has a
/// rotation proof and which of proxy1's keys it names, what `open` with proxy1's keys gives
/// (under three RSA budgets), and for each key what `open_rotation`, `open_with_cek` and
/// `into_plaintext` give (plaintext or error text).
fn cms_outcome(
    der: &[u8],
    parse: fn(&[u8]) -> Result<CmsMessage, cms::CmsError>,
    ceks: &[Cek],
    keys: &dyn cms::KeyLookup,
) -> Vec<Result<Vec<u8>, String>> {
    let mut out = Vec::new();
    let parsed = match parse(der) {
        Ok(m) => m,
        Err(e) => return vec![Err(format!("parse: {e}"))],
    };
    let insp = parsed.inspect();
    out.push(Ok(format!("{insp:?}").into_bytes()));
    if let Ok(insp) = &insp {
        out.push(Ok(format!(
            "has_rotation_proof {} matching_recipient {:?}",
            insp.has_rotation_proof(),
            cms::matching_recipient(insp, keys)
        )
        .into_bytes()));
    }
    out.push(Ok(format!(
        "rotation proof: {}",
        parsed.has_rotation_proof()
    )
    .into_bytes()));
    // opened with the keys, with and without RSA budget
    for budget in [u32::MAX, 0] {
        out.push(
            parsed
                .open(keys, &mut cms::RsaBudget::new(budget))
                .map(|o| {
                    let mut v =
                        format!("{:?} {:?} {} ", o.kind, o.cek.alg(), o.key_label).into_bytes();
                    v.extend_from_slice(o.cek.as_bytes());
                    v.extend_from_slice(&o.plaintext);
                    v
                })
                .map_err(|e| format!("open: {e}")),
        );
    }
    for cek in ceks {
        out.push(
            parsed
                .open_rotation(cek)
                .map(|o| [o.cek.as_bytes(), o.plaintext.as_slice()].concat())
                .map_err(|e| format!("open_rotation: {e}")),
        );
    }
    for cek in ceks {
        out.push(
            parsed
                .open_with_cek(cek)
                .map(|p| p.to_vec())
                .map_err(|e| format!("open_with_cek: {e}")),
        );
        let again = parse(der).expect("parses as it did");
        out.push(
            again
                .into_plaintext(cek)
                .map(|p| p.as_bytes().to_vec())
                .map_err(|e| format!("into_plaintext: {e}")),
        );
    }
    out
}

/// The profile reader against the general decoder on `der` (`CmsMessage::parse_owned`, which
/// reads sipsd's EncryptedData profile and AuthEnvelopedData of the common shape in place, vs
/// `CmsMessage::parse_general_only`): both
/// accept or both refuse it, with the same error, inspection and plaintext under each of
/// `ceks`. `Ok(true)` when the profile reader read it, `Ok(false)` when it left it to the
/// general decoder; `Err` says what differs.
pub fn profile_agrees(der: &[u8], ceks: &[Cek]) -> Result<bool, String> {
    profile_agrees_with(der, ceks, keystore())
}

/// The pre-shared key `psk-proxy1` alone (no RSA key: opening costs no RSA operation), for
/// the mutations of tests/cms_profile_auth.rs.
#[allow(dead_code)] // not used by the targets, nor by tests/fuzz_regressions.rs
pub fn psk_keystore() -> &'static KeyStore {
    static KEYS: OnceLock<KeyStore> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeyStore::load(&KeySpec {
            psk: vec![PskSpec {
                id: b"psk-proxy1".to_vec(),
                key_path: key_dir().join("psk-proxy1.hex"),
                label: None,
            }],
            strict_permissions: false,
            ..Default::default()
        })
        .expect("load the test PSK")
    })
}

/// [`profile_agrees`] opening with `keys` instead of proxy1's.
pub fn profile_agrees_with(
    der: &[u8],
    ceks: &[Cek],
    keys: &dyn cms::KeyLookup,
) -> Result<bool, String> {
    let in_place = CmsMessage::parse(der).is_ok_and(|m| m.read_in_place());
    let mut fast = cms_outcome(der, |d| CmsMessage::parse_owned(d.to_vec()), ceks, keys);
    let mut general = cms_outcome(der, CmsMessage::parse_general_only, ceks, keys);
    // and `cms::open_with_cek`, which decrypts the profile straight from `der`
    fn show<P: std::ops::Deref<Target = Vec<u8>>>(
        r: Result<P, cms::CmsError>,
    ) -> Result<Vec<u8>, String> {
        r.map(|p| p.to_vec())
            .map_err(|e| format!("cms::open_with_cek: {e}"))
    }
    for cek in ceks {
        fast.push(show(cms::open_with_cek(der, cek)));
        general.push(show(
            CmsMessage::parse_general_only(der).and_then(|m| m.open_with_cek(cek)),
        ));
    }
    if fast == general {
        return Ok(in_place);
    }
    let show = |o: &[Result<Vec<u8>, String>]| {
        o.iter()
            .map(|r| match r {
                Ok(b) => format!("Ok({} bytes: {:?})", b.len(), String::from_utf8_lossy(b)),
                Err(e) => format!("Err({e})"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(format!(
        "read in place: {in_place}; profile: {}; general: {}",
        show(&fast),
        show(&general)
    ))
}

/// Splits `line1 \n line2 \n rest` (CR before LF dropped).
fn three(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    fn line(d: &[u8]) -> (&[u8], &[u8]) {
        match d.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let l = &d[..i];
                (l.strip_suffix(b"\r").unwrap_or(l), &d[i + 1..])
            }
            None => (d, &[]),
        }
    }
    let (a, rest) = line(data);
    let (b, rest) = line(rest);
    (a, b, rest)
}

/// `body::encrypted_parts` (first line: Content-Type, second: Content-Transfer-Encoding, the
/// rest: the body), `inspect` of each part found, and `body::parse_inner` of the whole input.
/// Checks: every part's range lies inside the body; limits hold.
pub fn body(data: &[u8]) {
    let (ct, te, raw) = three(data);
    let limits = BodyLimits {
        max_body: 8192,
        max_parts: 8,
        max_depth: 3,
    };
    if let (Ok(ct), Ok(te)) = (std::str::from_utf8(ct), std::str::from_utf8(te)) {
        let te = (!te.trim().is_empty()).then_some(te);
        if let Ok(parts) = body::encrypted_parts(ct, te, raw, &limits) {
            assert!(raw.len() <= limits.max_body);
            assert!(parts.len() <= limits.max_parts);
            for p in &parts {
                assert!(p.range.start <= p.range.end && p.range.end <= raw.len());
                let _ = cms::inspect(&p.der);
            }
        }
    }
    if let Ok((ct, inner)) = body::parse_inner(data) {
        assert!(inner.len() <= data.len());
        let _ = ct.len();
    }
    // A decrypted plaintext read through its optional multipart/signed signature (split,
    // signature part decoded, SignedData parsed and checked against no trusted signer).
    if let Ok(inner) = signature::read_inner(data, &[], SignaturePolicy::Report) {
        assert!(inner.body.len() <= data.len());
        assert_ne!(signature::status(&inner.signature), "valid");
    }
}

/// The request headers sipsd reads itself: `DisclosureRequest::parse` (Disclose-To) and
/// `NameAddr::parse` (a From value the server hands over unparsed). Checks: a parsed request
/// prints as a header value that parses back to the same request; a From's URI and tag are
/// non-empty / possibly empty slices of the input itself.
pub fn request(data: &[u8]) {
    if let Some(n) = sipsd::sip::name_addr::NameAddr::parse(data) {
        let inside = |s: &[u8]| data.as_ptr_range().contains(&s.as_ptr());
        assert!(
            !n.uri.is_empty() && inside(n.uri),
            "the URI borrows from the value"
        );
        assert!(
            n.tag.is_empty() || inside(n.tag),
            "the tag borrows from the value"
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(req) = DisclosureRequest::parse(text) {
        let _ = req.selection_for(&["proxy1.example.com".to_string()]);
        let printed = req.to_header_value();
        let again = DisclosureRequest::parse(&printed).expect("printed request parses");
        assert_eq!(req, again, "parse(print(r)) == r");
    }
}

/// PCP (`sipsd::pcp::wire`) request and response decoding, as the firewall agent and the
/// proxy's client read untrusted datagrams; what decodes must encode back to a message that
/// decodes to the same value, and the MAC check must refuse it without the key.
pub fn pcp(data: &[u8]) {
    use sipsd::pcp::wire::{Request, Response};
    use sipsd::pcp::{auth, AuthKey};
    if let Ok(req) = Request::decode(data) {
        let again = Request::decode(&req.encode_unsigned()).expect("encoded request decodes");
        assert_eq!(
            Request {
                options: sipsd::pcp::wire::Options {
                    auth: None,
                    ..req.options.clone()
                },
                ..req.clone()
            },
            again,
            "decode(encode(r)) == r"
        );
        // Without the key a valid MAC is a 2^-256 event: verification must refuse.
        let key = AuthKey::new(1, &[7u8; 32]).expect("key");
        if let Some(a) = &req.options.auth {
            assert!(
                auth::verify(data, Some(a), &[key]).is_err(),
                "MAC without the key"
            );
        }
    }
    if let Ok(resp) = Response::decode(data) {
        let _ = Response::decode(&resp.encode_unsigned());
    }
}

/// `SdpInfo::parse`, then everything a reader asks of each stream: RTCP port and address,
/// and the RFC 4568 keys of each `a=crypto`. Checks: the limits hold; every stream has a
/// format and a port count of at least 1 whose RTP/RTCP range fits in 16 bits; RTCP is absent
/// (port and address) exactly for disabled streams or port 65535 without a=rtcp/rtcp-mux;
/// decoded keys have their suite's length.
pub fn sdp(data: &[u8]) {
    let Ok(info) = SdpInfo::parse(data) else {
        return;
    };
    assert!(info.media.len() <= sdp::MAX_MEDIA);
    if let Some(i) = info.primary() {
        assert!(i < info.media.len());
    }
    for m in &info.media {
        assert!(!m.formats.is_empty() && m.formats.len() <= sdp::MAX_FORMATS);
        assert!(m.port_count >= 1);
        assert!(m.port_count == 1 || u32::from(m.port) + 2 * u32::from(m.port_count - 1) < 65536);
        let rtcp = m.rtcp_port();
        let expect_none = m.port == 0 || (m.port == 65535 && m.rtcp.is_none() && !m.rtcp_mux);
        assert_eq!(rtcp.is_none(), expect_none);
        assert!(rtcp.is_some() || m.rtcp_addr().is_none());
        assert!(m.crypto.len() <= sdp::MAX_CRYPTO);
        for c in &m.crypto {
            assert!(c.value().len() <= sdp::crypto::MAX_CRYPTO_LEN);
            if let (Ok(keys), Some(suite)) = (c.keys(), c.srtp_suite()) {
                for k in keys {
                    assert_eq!(k.key_salt().len(), suite.key_len() + suite.salt_len());
                }
            }
        }
    }
}

/// A proxy context over the C ABI with proxy1's keys, made once per process.
fn ctx() -> *const sd_ctx {
    static CTX: OnceLock<usize> = OnceLock::new();
    let addr = *CTX.get_or_init(|| {
        let dir = key_dir();
        let set = |cfg, name: &str, value: String| {
            let n = std::ffi::CString::new(name).expect("no NUL");
            let v = std::ffi::CString::new(value).expect("no NUL");
            // SAFETY: `cfg` from sd_config_new; both strings NUL-terminated and live.
            let rc = unsafe { sd_config_set(cfg, n.as_ptr(), v.as_ptr()) };
            assert_eq!(rc, sd_result::SD_OK, "sd_config_set {name}");
        };
        let cfg = sd_config_new();
        set(
            cfg,
            "rsa_key",
            format!(
                "key={};cert={}",
                dir.join("proxy1.key").display(),
                dir.join("proxy1.crt").display()
            ),
        );
        set(
            cfg,
            "psk",
            format!(
                "id=text:psk-proxy1;key={}",
                dir.join("psk-proxy1.hex").display()
            ),
        );
        set(cfg, "identity", "proxy1.example.com".into());
        set(cfg, "cache_capacity", "64".into());
        set(cfg, "max_body_size", "16384".into());
        let mut out: *mut sd_ctx = std::ptr::null_mut();
        // SAFETY: `cfg` from sd_config_new; `out` is a writable pointer.
        let rc = unsafe { sd_ctx_new(cfg, &mut out) };
        // SAFETY: `cfg` from sd_config_new, freed once.
        unsafe { sd_config_free(cfg) };
        assert_eq!(rc, sd_result::SD_OK, "sd_ctx_new");
        out as usize
    });
    addr as *const sd_ctx
}

/// The C ABI as Kamailio calls it, with an `sd_msg` built from the input: fields separated by
/// NUL bytes in the order flags, Call-ID, From-tag, To-tag, method, Content-Type,
/// Content-Transfer-Encoding, Disclose-To, body (the body is the rest and may hold NULs).
/// Flag bit 0: a 200 reply instead of a request; bits 1-2: the call (unwrap, rotate,
/// should-decrypt, dialog end). Checks: no call reports `SD_ERR_PANIC`; a result handle is
/// returned exactly on SD_OK and every field of it reads back.
pub fn ffi_unwrap(data: &[u8]) {
    let mut f = data.splitn(9, |&b| b == 0);
    let mut next = || f.next().unwrap_or(&[]);
    let flags = next().first().copied().unwrap_or(0);
    let msg = sd_msg {
        call_id: sd_str::of(next()),
        from_tag: sd_str::of(next()),
        to_tag: sd_str::of(next()),
        method: sd_str::of(next()),
        status: if flags & 1 == 0 { 0 } else { 200 },
        content_type: sd_str::of(next()),
        transfer_encoding: sd_str::of(next()),
        disclose_to: sd_str::of(next()),
        body: sd_str::of(next()),
        from_uri: sd_str::of(&[]),
        to_uri: sd_str::of(&[]),
        from: sd_str::of(&[]),
    };
    let ctx = ctx();
    let rc = match (flags >> 1) & 3 {
        0 => {
            let mut plain: *mut sd_plain = std::ptr::null_mut();
            // SAFETY: `ctx` from sd_ctx_new; `msg` borrows `data`, live for the call.
            let rc = unsafe { sd_unwrap_body(ctx, &msg, &mut plain) };
            assert_eq!(rc == sd_result::SD_OK, !plain.is_null());
            // SAFETY: `plain` is NULL or the live result of sd_unwrap_body.
            let n = unsafe { sd_plain_count(plain) };
            let mut out = sd_str::of(&[]);
            let fields = |n: usize| 0..=u32::try_from(n).unwrap_or(u32::MAX);
            for i in 0..=n {
                for field in fields(sd_field::ALL.len()) {
                    // SAFETY: `plain` NULL or live; `out` writable.
                    let r = unsafe { sd_plain_get(plain, i, field, &mut out) };
                    assert_ne!(r, sd_result::SD_ERR_PANIC);
                }
                // SAFETY: as above, for every stream and a=crypto (and one past the end).
                let streams = unsafe { sd_plain_media_count(plain, i) };
                for m in 0..=streams {
                    for field in fields(sd_media_field::ALL.len()) {
                        // SAFETY: as above.
                        let r = unsafe { sd_plain_media_get(plain, i, m, field, &mut out) };
                        assert_ne!(r, sd_result::SD_ERR_PANIC);
                    }
                    // SAFETY: as above.
                    let attrs = unsafe { sd_plain_crypto_count(plain, i, m) };
                    for c in 0..=attrs {
                        for field in fields(sd_crypto_field::ALL.len()) {
                            // SAFETY: as above.
                            let r = unsafe { sd_plain_crypto_get(plain, i, m, c, field, &mut out) };
                            assert_ne!(r, sd_result::SD_ERR_PANIC);
                        }
                    }
                }
            }
            // SAFETY: `plain` NULL or from sd_unwrap_body, freed once.
            unsafe { sd_plain_free(plain) };
            rc
        }
        1 => {
            let mut generation = 0u32;
            // SAFETY: `ctx` live; `msg` valid for the call; `generation` writable.
            unsafe { sd_rotate(ctx, &msg, &mut generation) }
        }
        // SAFETY: `ctx` live; `msg` valid for the call.
        2 => unsafe { sd_should_decrypt(ctx, &msg) },
        // SAFETY: `ctx` live; `msg` valid for the call.
        _ => unsafe { sd_dialog_end_msg(ctx, &msg) },
    };
    assert_ne!(
        rc,
        sd_result::SD_ERR_PANIC,
        "a panic crossed into the C ABI"
    );
}
