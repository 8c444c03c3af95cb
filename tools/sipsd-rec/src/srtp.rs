//! SRTP and SRTCP through libsrtp2, the reference implementation (Cisco; Debian `libsrtp2-1`).
//!
//! One [`Session`] holds one libsrtp context for one SSRC (policy `ssrc_specific`), so its
//! roll-over counter can be set when a capture starts in the middle of a call
//! ([`Session::set_roc`]) and a new SSRC of the same sender gets a context of its own. Master
//! keys are handed to libsrtp only inside [`Session::new`]; libsrtp derives the session keys
//! and wipes them in `srtp_dealloc` ([`Drop`]).

use std::ffi::CStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use sipsd::record::{sdes, CryptoAttr, SrtpSuite};
use zeroize::Zeroizing;

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/srtp_bindings.rs"));
}

/// Bytes libsrtp may append when protecting (tag + MKI).
pub const MAX_TRAILER: usize = ffi::SRTP_MAX_TRAILER_LEN as usize;
// Every MKI the SDP layer takes fits libsrtp's.
const _: () = assert!(sdes::MAX_MKI_LEN as u32 == ffi::SRTP_MAX_MKI_LEN);
/// Largest replay window libsrtp accepts.
pub const MAX_WINDOW: u32 = 0x8000;

/// A libsrtp2 error status, with the operation that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("libsrtp2 {op}: {}", status_name(*.status))]
pub struct SrtpError {
    /// The libsrtp function (`unprotect`, `create`, ...).
    pub op: &'static str,
    /// The `srtp_err_status_t` value.
    pub status: u32,
}

impl SrtpError {
    /// True for an authentication failure (wrong key, wrong ROC, tampered packet).
    pub fn is_auth(&self) -> bool {
        self.status == ffi::srtp_err_status_auth_fail
    }

    /// True for a replayed or too old packet (a duplicate, or reordered past the window).
    pub fn is_replay(&self) -> bool {
        self.status == ffi::srtp_err_status_replay_fail
            || self.status == ffi::srtp_err_status_replay_old
    }
}

/// The name of a status code (as in `srtp.h`).
pub fn status_name(s: u32) -> &'static str {
    match s {
        ffi::srtp_err_status_ok => "ok",
        ffi::srtp_err_status_fail => "fail",
        ffi::srtp_err_status_bad_param => "bad_param",
        ffi::srtp_err_status_alloc_fail => "alloc_fail",
        ffi::srtp_err_status_init_fail => "init_fail",
        ffi::srtp_err_status_terminus => "terminus",
        ffi::srtp_err_status_auth_fail => "auth_fail",
        ffi::srtp_err_status_cipher_fail => "cipher_fail",
        ffi::srtp_err_status_replay_fail => "replay_fail",
        ffi::srtp_err_status_replay_old => "replay_old",
        ffi::srtp_err_status_algo_fail => "algo_fail",
        ffi::srtp_err_status_no_such_op => "no_such_op",
        ffi::srtp_err_status_no_ctx => "no_ctx",
        ffi::srtp_err_status_cant_check => "cant_check",
        ffi::srtp_err_status_key_expired => "key_expired",
        ffi::srtp_err_status_bad_mki => "bad_mki",
        ffi::srtp_err_status_pkt_idx_old => "pkt_idx_old",
        ffi::srtp_err_status_pkt_idx_adv => "pkt_idx_adv",
        _ => "unknown status",
    }
}

fn check(op: &'static str, status: ffi::srtp_err_status_t) -> Result<(), SrtpError> {
    if status == ffi::srtp_err_status_ok {
        Ok(())
    } else {
        Err(SrtpError { op, status })
    }
}

static INIT: Once = Once::new();
static INIT_STATUS: AtomicU32 = AtomicU32::new(0);

/// Initialises libsrtp once per process (its crypto kernel self-tests run here).
pub fn init() -> Result<(), SrtpError> {
    INIT.call_once(|| {
        // SAFETY: srtp_init takes no arguments; Once runs it exactly once, before any other
        // libsrtp call of this module.
        let status = unsafe { ffi::srtp_init() };
        INIT_STATUS.store(status, Ordering::Release);
    });
    check("init", INIT_STATUS.load(Ordering::Acquire))
}

/// libsrtp's version string, e.g. `libsrtp2 2.5.0`.
pub fn version() -> String {
    // SAFETY: srtp_get_version_string returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::srtp_get_version_string()) }
        .to_string_lossy()
        .into_owned()
}

/// Sets `p` to the suite's crypto policy for SRTP (`rtcp` false) or SRTCP; false for a suite
/// libsrtp2 lacks (f8, which `sdes::srtp_keys` refuses first).
fn crypto_policy(suite: SrtpSuite, rtcp: bool, p: &mut ffi::srtp_crypto_policy_t) -> bool {
    // SAFETY: each setter only writes the fields of the policy struct `p` points to, a valid
    // exclusive reference.
    unsafe {
        match (suite, rtcp) {
            (SrtpSuite::AesCm128HmacSha1_80, _) | (SrtpSuite::AesCm128HmacSha1_32, true) => {
                // srtp.h defines srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 as this macro.
                ffi::srtp_crypto_policy_set_rtp_default(p)
            }
            (SrtpSuite::AesCm128HmacSha1_32, false) => {
                ffi::srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(p)
            }
            (SrtpSuite::Aes192CmHmacSha1_80, _) | (SrtpSuite::Aes192CmHmacSha1_32, true) => {
                ffi::srtp_crypto_policy_set_aes_cm_192_hmac_sha1_80(p)
            }
            (SrtpSuite::Aes192CmHmacSha1_32, false) => {
                ffi::srtp_crypto_policy_set_aes_cm_192_hmac_sha1_32(p)
            }
            (SrtpSuite::Aes256CmHmacSha1_80, _) | (SrtpSuite::Aes256CmHmacSha1_32, true) => {
                ffi::srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(p)
            }
            (SrtpSuite::Aes256CmHmacSha1_32, false) => {
                ffi::srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(p)
            }
            (SrtpSuite::AeadAes128Gcm, _) => ffi::srtp_crypto_policy_set_aes_gcm_128_16_auth(p),
            (SrtpSuite::AeadAes256Gcm, _) => ffi::srtp_crypto_policy_set_aes_gcm_256_16_auth(p),
            (SrtpSuite::F8_128HmacSha1_80, _) => return false,
        }
    }
    true
}

/// One libsrtp context for one SSRC of one sender.
pub struct Session {
    ctx: ffi::srtp_t,
    ssrc: u32,
    use_mki: bool,
}

// SAFETY: a Session owns its libsrtp context exclusively (no aliasing pointer is kept
// elsewhere); libsrtp contexts may be used from any thread, one at a time, which &mut self
// ensures.
unsafe impl Send for Session {}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("ssrc", &format_args!("{:08x}", self.ssrc))
            .field("use_mki", &self.use_mki)
            .finish()
    }
}

impl Session {
    /// A context for `ssrc` with the attribute's suite and master key(s) (several only with
    /// MKIs), replay window `window` (64..=[`MAX_WINDOW`]). An attribute the recorder cannot
    /// use ([`sdes::srtp_keys`]) is a bad parameter.
    pub fn new(attr: &CryptoAttr, ssrc: u32, window: u32) -> Result<Session, SrtpError> {
        init()?;
        let bad = SrtpError {
            op: "create",
            status: ffi::srtp_err_status_bad_param,
        };
        let (suite, attr_keys) = sdes::srtp_keys(attr).map_err(|_| bad)?;
        if attr_keys.is_empty() {
            return Err(bad);
        }
        // SAFETY: srtp_policy_t is a plain C struct for which all-zero is a valid (empty)
        // value: null pointers, zero counts.
        let mut policy: ffi::srtp_policy_t = unsafe { std::mem::zeroed() };
        if !crypto_policy(suite, false, &mut policy.rtp)
            || !crypto_policy(suite, true, &mut policy.rtcp)
        {
            return Err(bad);
        }
        policy.ssrc.type_ = ffi::ssrc_specific;
        policy.ssrc.value = ssrc;
        policy.window_size = u64::from(window.clamp(64, MAX_WINDOW)) as _;
        policy.allow_repeat_tx = 0;
        // Copies libsrtp may read during srtp_create (its API takes mutable pointers).
        let mut keys: Vec<Zeroizing<Vec<u8>>> = attr_keys
            .iter()
            .map(|k| Zeroizing::new(k.key_salt().to_vec()))
            .collect();
        let mut mkis: Vec<Vec<u8>> = attr_keys
            .iter()
            .map(|k| k.mki.map(|m| m.bytes()).unwrap_or_default())
            .collect();
        let use_mki = attr_keys[0].mki.is_some();
        let mut masters: Vec<ffi::srtp_master_key_t> = Vec::new();
        let mut master_ptrs: Vec<*mut ffi::srtp_master_key_t> = Vec::new();
        if use_mki {
            for (k, m) in keys.iter_mut().zip(mkis.iter_mut()) {
                masters.push(ffi::srtp_master_key_t {
                    key: k.as_mut_ptr(),
                    mki_id: m.as_mut_ptr(),
                    mki_size: m.len() as u32,
                });
            }
            master_ptrs = masters.iter_mut().map(|m| m as *mut _).collect();
            policy.keys = master_ptrs.as_mut_ptr();
            policy.num_master_keys = master_ptrs.len() as _;
        } else {
            policy.key = keys[0].as_mut_ptr();
        }
        let mut ctx: ffi::srtp_t = std::ptr::null_mut();
        // SAFETY: `policy` and every buffer it points to (keys, MKIs, the master key array)
        // live until after the call; libsrtp copies what it keeps. `ctx` is an out pointer.
        let status = unsafe { ffi::srtp_create(&mut ctx, &policy) };
        drop(master_ptrs);
        drop(masters);
        check("create", status)?;
        Ok(Session { ctx, ssrc, use_mki })
    }

    /// The SSRC this context is for.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sets the roll-over counter libsrtp assumes for the next packet (a capture that starts
    /// after the sequence number wrapped). Call before the first packet.
    pub fn set_roc(&mut self, roc: u32) -> Result<(), SrtpError> {
        // SAFETY: self.ctx is a live context; the SSRC has a stream in it (ssrc_specific).
        check("set_stream_roc", unsafe {
            ffi::srtp_set_stream_roc(self.ctx, self.ssrc, roc)
        })
    }

    /// The roll-over counter of the highest packet index seen.
    pub fn roc(&self) -> Result<u32, SrtpError> {
        let mut roc = 0u32;
        // SAFETY: self.ctx is a live context; `roc` is a valid out pointer.
        check("get_stream_roc", unsafe {
            ffi::srtp_get_stream_roc(self.ctx, self.ssrc, &mut roc)
        })?;
        Ok(roc)
    }

    fn in_place(
        &mut self,
        buf: &mut Vec<u8>,
        op: &'static str,
        grow: bool,
        f: unsafe extern "C" fn(ffi::srtp_t, *mut std::ffi::c_void, *mut i32, u32) -> u32,
    ) -> Result<(), SrtpError> {
        let len = buf.len();
        if grow {
            buf.resize(len + MAX_TRAILER, 0);
        }
        let mut n = i32::try_from(len).map_err(|_| SrtpError {
            op,
            status: ffi::srtp_err_status_bad_param,
        })?;
        // SAFETY: buf holds `len` bytes of packet (plus MAX_TRAILER spare bytes when
        // protecting, as libsrtp requires); libsrtp writes at most that many and stores the
        // new length in `n`. self.ctx is a live context used by one caller at a time.
        let status = unsafe {
            f(
                self.ctx,
                buf.as_mut_ptr().cast(),
                &mut n,
                u32::from(self.use_mki),
            )
        };
        match check(op, status) {
            Ok(()) => {
                buf.truncate(usize::try_from(n).unwrap_or(0));
                Ok(())
            }
            Err(e) => {
                buf.truncate(len);
                Err(e)
            }
        }
    }

    /// Decrypts and authenticates an SRTP packet in place (the tag and MKI are removed).
    pub fn unprotect(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.in_place(buf, "unprotect", false, ffi::srtp_unprotect_mki)
    }

    /// Decrypts and authenticates an SRTCP packet in place.
    pub fn unprotect_rtcp(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.in_place(buf, "unprotect_rtcp", false, ffi::srtp_unprotect_rtcp_mki)
    }

    /// Encrypts an RTP packet in place with the first master key (senders in tests and
    /// benchmarks).
    pub fn protect(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let use_mki = u32::from(self.use_mki);
        let len = buf.len();
        buf.resize(len + MAX_TRAILER, 0);
        let mut n = len as i32;
        // SAFETY: as in `in_place`: MAX_TRAILER spare bytes after the packet; MKI index 0
        // exists whenever use_mki is set.
        let status =
            unsafe { ffi::srtp_protect_mki(self.ctx, buf.as_mut_ptr().cast(), &mut n, use_mki, 0) };
        let r = check("protect", status);
        buf.truncate(if r.is_ok() { n as usize } else { len });
        r
    }

    /// Encrypts an RTCP packet in place with the first master key.
    pub fn protect_rtcp(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let use_mki = u32::from(self.use_mki);
        let len = buf.len();
        buf.resize(len + MAX_TRAILER, 0);
        let mut n = len as i32;
        // SAFETY: as in `protect`.
        let status = unsafe {
            ffi::srtp_protect_rtcp_mki(self.ctx, buf.as_mut_ptr().cast(), &mut n, use_mki, 0)
        };
        let r = check("protect_rtcp", status);
        buf.truncate(if r.is_ok() { n as usize } else { len });
        r
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: self.ctx came from srtp_create and is freed exactly once, here; libsrtp
        // zeroes the derived keys while freeing.
        unsafe {
            ffi::srtp_dealloc(self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(suite: &str, len: usize) -> CryptoAttr {
        use base64::Engine;
        let k =
            base64::engine::general_purpose::STANDARD.encode((0..len as u8).collect::<Vec<_>>());
        CryptoAttr::parse(&format!("1 {suite} inline:{k}")).unwrap()
    }

    #[test]
    fn suites_of_this_libsrtp_build() {
        use base64::Engine;
        let mut have = Vec::new();
        let mut missing = Vec::new();
        for suite in SrtpSuite::all() {
            let k = base64::engine::general_purpose::STANDARD.encode(vec![
                9u8;
                suite.key_len()
                    + suite.salt_len()
            ]);
            let a = CryptoAttr::parse(&format!("1 {suite} inline:{k}")).unwrap();
            match Session::new(&a, 1, 128) {
                Ok(mut tx) => {
                    let mut rx = Session::new(&a, 1, 128).unwrap();
                    let mut p = rtp(1, 1);
                    tx.protect(&mut p).unwrap();
                    rx.unprotect(&mut p).unwrap();
                    assert_eq!(p, rtp(1, 1));
                    have.push(suite.name());
                }
                Err(e) => missing.push(format!("{suite} ({e})")),
            }
        }
        assert!(
            have.contains(&"AES_CM_128_HMAC_SHA1_80") && have.contains(&"AES_CM_128_HMAC_SHA1_32")
        );
        println!(
            "  ok   {}: round-trips {have:?}; refuses with a clear error {missing:?}",
            version()
        );
    }

    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend(std::iter::repeat_n(0xd5u8, 160));
        p
    }

    #[test]
    fn mkis_of_every_length_the_sdp_allows_round_trip() {
        use base64::Engine;
        let k = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 30]);
        for len in [1u8, 4, 5, 16, 128] {
            // two keys: the packet names the one it is under by its MKI
            let value = format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{}|2^20|1:{len};inline:{}|2^20|2:{len}",
                k(1),
                k(2)
            );
            let a = CryptoAttr::parse(&value).unwrap();
            let mut tx =
                Session::new(&a, 0x51, 128).unwrap_or_else(|e| panic!("MKI of {len} bytes: {e}"));
            let mut rx = Session::new(&a, 0x51, 128).unwrap();
            let plain = rtp(3, 0x51);
            let mut p = plain.clone();
            tx.protect(&mut p).unwrap();
            assert_eq!(
                p.len(),
                plain.len() + usize::from(len) + 10,
                "MKI + tag appended"
            );
            assert_eq!(
                p[plain.len()..plain.len() + usize::from(len)].last(),
                Some(&1)
            );
            rx.unprotect(&mut p).unwrap();
            assert_eq!(p, plain, "MKI of {len} bytes");
        }
        println!("  ok   {}: MKIs of 1, 4, 5, 16 and 128 bytes (two keys each) protect and unprotect; the packet carries MKI + tag", version());
    }

    #[test]
    fn protect_unprotect_wrong_key_and_roc() {
        let a = attr("AES_CM_128_HMAC_SHA1_80", 30);
        let mut tx = Session::new(&a, 0x1234, 1024).unwrap();
        let mut rx = Session::new(&a, 0x1234, 1024).unwrap();
        let plain = rtp(7, 0x1234);
        let mut p = plain.clone();
        tx.protect(&mut p).unwrap();
        assert_eq!(p.len(), plain.len() + 10);
        let wire = p.clone();
        rx.unprotect(&mut p).unwrap();
        assert_eq!(p, plain);
        let mut again = wire.clone();
        assert!(rx.unprotect(&mut again).unwrap_err().is_replay());
        let mut other = Session::new(&attr("AES_CM_128_HMAC_SHA1_80", 30), 0x1234, 1024).unwrap();
        let wrong_key = CryptoAttr::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        )
        .unwrap();
        let mut w = Session::new(&wrong_key, 0x1234, 1024).unwrap();
        let mut q = wire.clone();
        assert!(w.unprotect(&mut q).unwrap_err().is_auth());
        assert_eq!(q, wire, "a failed unprotect leaves the packet as it was");
        // Attributes the SDP layer keeps but whose keys the recorder cannot use.
        for unusable in [
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 uri:x",
            "1 FUTURE_SUITE_X inline:AAAA",
        ] {
            assert!(Session::new(&CryptoAttr::parse(unusable).unwrap(), 1, 64).is_err());
        }
        // A sender whose ROC is 3: a fresh receiver fails, one told ROC 3 succeeds.
        let mut tx3 = Session::new(&a, 0x99, 1024).unwrap();
        tx3.set_roc(3).unwrap();
        let mut p3 = rtp(100, 0x99);
        tx3.protect(&mut p3).unwrap();
        let mut fresh = Session::new(&a, 0x99, 1024).unwrap();
        assert!(fresh.unprotect(&mut p3.clone()).unwrap_err().is_auth());
        let mut told = Session::new(&a, 0x99, 1024).unwrap();
        told.set_roc(3).unwrap();
        told.unprotect(&mut p3).unwrap();
        assert_eq!(told.roc().unwrap(), 3);
        let _ = other.unprotect(&mut wire.clone());
        println!("  ok   {}: protect/unprotect AES_CM_128_HMAC_SHA1_80, replay refused, wrong key auth_fail, ROC 3 via srtp_set_stream_roc", version());
    }
}
