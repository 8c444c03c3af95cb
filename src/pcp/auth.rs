//! sipsd's authentication of PCP messages (docs/PROTOCOL.md §7).
//!
//! One option, [`option_code::SIPSD_AUTH`] (0xF0: optional to process, private use), is the
//! last option of a request or response. It holds a key id, the sender's clock in
//! milliseconds, a random 64-bit value, and HMAC-SHA256 under a pre-shared key over every
//! byte of the message before the MAC (the header, the opcode data, the other options and the
//! option's own first 24 bytes). A PCP server that does not know the option skips it (RFC
//! 6887 §7.3) and relies on its source allow-list; sipsd-fw requires it.
//!
//! Replays: a receiver accepts a timestamp only inside a window around its clock and only
//! after its own start, and remembers every (key id, timestamp, random) it accepted until the
//! window has passed ([`ReplayGuard`]). A request captured before a restart of the receiver
//! is therefore refused after it, without any state on disk. A response echoes the request's
//! key id, timestamp and random value, so a client can tell that the answer is for its
//! request.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::wire::{self, option_code, AuthOption, AUTH_DATA_LEN};
use super::PcpError;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted (bytes).
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted (bytes): one SHA-256 block.
pub const MAX_KEY_LEN: usize = 64;
/// Bytes the option takes at the end of a message (header + data).
pub const AUTH_OPTION_LEN: usize = 4 + AUTH_DATA_LEN;

/// A pre-shared MAC key and its id. The bytes are zeroized on drop and never printed.
pub struct AuthKey {
    id: u32,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AuthKey {{ id: {}, key: <{} bytes> }}",
            self.id,
            self.key.len()
        )
    }
}

impl AuthKey {
    /// A key from its bytes (16 to 64).
    pub fn new(id: u32, key: &[u8]) -> Result<Self, PcpError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(PcpError::KeyLength(key.len()));
        }
        Ok(AuthKey {
            id,
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// Reads a key file: hex on one line (`sipsd-fw keygen` writes 32 random bytes). The file
    /// must not be readable by group or others (mode 0600 or stricter).
    pub fn from_file(id: u32, path: &Path) -> Result<Self, PcpError> {
        let (data, _) = crate::crypto::keys::read_secret_file(path, true)?;
        let bytes = crate::hex::decode_secret(&data).ok_or(PcpError::KeyNotHex)?;
        Self::new(id, &bytes)
    }

    /// The key id carried in messages.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; new() bounded it to 16..=64 bytes.
        <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }
}

/// Milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh random 64-bit value.
pub fn random_u64() -> Result<u64, PcpError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|_| PcpError::Rng)?;
    Ok(u64::from_le_bytes(b))
}

/// Appends the authentication option to an encoded message (which must not have one yet)
/// and fills in its MAC. Returns the option as written.
pub fn sign(msg: &mut Vec<u8>, key: &AuthKey, timestamp_ms: u64, random: u64) -> AuthOption {
    let mut opt = AuthOption {
        key_id: key.id,
        timestamp_ms,
        random,
        mac: [0; 32],
    };
    wire::put_auth(msg, &opt);
    let covered = msg.len() - 32;
    let mut mac = key.mac();
    mac.update(&msg[..covered]);
    opt.mac.copy_from_slice(&mac.finalize().into_bytes());
    msg[covered..].copy_from_slice(&opt.mac);
    opt
}

/// Checks the MAC of a decoded message whose raw bytes are `msg`, with the key its option
/// names. The option must be the message's last 56 bytes. Replay is checked apart
/// ([`ReplayGuard`]).
pub fn verify<'k>(
    msg: &[u8],
    auth: Option<&AuthOption>,
    keys: &'k [AuthKey],
) -> Result<&'k AuthKey, PcpError> {
    let auth = auth.ok_or(PcpError::AuthMissing)?;
    let start = msg
        .len()
        .checked_sub(AUTH_OPTION_LEN)
        .ok_or(PcpError::AuthMissing)?;
    // The decoder accepted the option only as the last one; check that it ends the message
    // (no padding or other bytes after it).
    if msg[start] != option_code::SIPSD_AUTH
        || usize::from(u16::from_be_bytes([msg[start + 2], msg[start + 3]])) != AUTH_DATA_LEN
    {
        return Err(PcpError::AuthMissing);
    }
    let key = keys
        .iter()
        .find(|k| k.id == auth.key_id)
        .ok_or(PcpError::UnknownKey(auth.key_id))?;
    let covered = msg.len() - 32;
    let mut mac = key.mac();
    mac.update(&msg[..covered]);
    mac.verify_slice(&msg[covered..])
        .map_err(|_| PcpError::BadMac)?;
    Ok(key)
}

/// Replay protection for one receiver: a time window and the messages seen inside it.
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    not_before_ms: u64,
    capacity: usize,
    seen: HashMap<(u32, u64, u64), u64>,
    order: VecDeque<((u32, u64, u64), u64)>,
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window_ms` of the clock, none from before
    /// `started_ms` (the receiver's start: what an earlier run saw is unknown), remembering
    /// at most `capacity` messages.
    pub fn new(window_ms: u64, started_ms: u64, capacity: usize) -> Self {
        ReplayGuard {
            window_ms,
            not_before_ms: started_ms,
            capacity,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Accepts a message once: `Ok` the first time a fresh (key, timestamp, random) is seen,
    /// an error when stale, from the future, from before the start, or seen before. Call
    /// only after the MAC has been verified.
    pub fn check(&mut self, auth: &AuthOption, now_ms: u64) -> Result<(), PcpError> {
        self.expire(now_ms);
        let ts = auth.timestamp_ms;
        if ts < self.not_before_ms {
            return Err(PcpError::BeforeStart);
        }
        if ts.saturating_add(self.window_ms) < now_ms || ts > now_ms.saturating_add(self.window_ms)
        {
            return Err(PcpError::OutsideWindow {
                skew_ms: ts as i64 - now_ms as i64,
                window_ms: self.window_ms,
            });
        }
        let id = (auth.key_id, ts, auth.random);
        if self.seen.contains_key(&id) {
            return Err(PcpError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(PcpError::ReplayCacheFull);
        }
        // Forget it once it could no longer pass the window check anyway.
        let forget_at = ts.saturating_add(self.window_ms);
        self.seen.insert(id, forget_at);
        self.order.push_back((id, forget_at));
        Ok(())
    }

    /// Messages currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now_ms: u64) {
        // `order` is by insertion; timestamps inside the window are close to insertion order,
        // so scanning from the front stops at the first entry still needed, and a late
        // straggler is dropped on a later call.
        while let Some(&(id, at)) = self.order.front() {
            if at >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcp::wire::{MapData, Nonce, Opcode, Options, Request, PROTO_UDP};

    fn request() -> Vec<u8> {
        Request {
            opcode: Opcode::Map,
            lifetime: 60,
            client_addr: "10.1.0.1".parse().unwrap(),
            map: Some(MapData {
                nonce: Nonce([1; 12]),
                protocol: PROTO_UDP,
                internal_port: 4000,
                external_port: 0,
                external_addr: "0.0.0.0".parse().unwrap(),
            }),
            options: Options {
                third_party: Some("10.2.0.2".parse().unwrap()),
                ..Options::default()
            },
        }
        .encode_unsigned()
    }

    #[test]
    fn sign_verify_tamper() {
        let k = AuthKey::new(7, &[0x42; 32]).unwrap();
        let other = AuthKey::new(7, &[0x43; 32]).unwrap();
        let mut m = request();
        sign(&mut m, &k, 1000, 5);
        let d = Request::decode(&m).unwrap();
        assert_eq!(d.options.auth.unwrap().key_id, 7);
        assert!(verify(&m, d.options.auth.as_ref(), std::slice::from_ref(&k)).is_ok());
        assert!(matches!(
            verify(&m, d.options.auth.as_ref(), &[other]),
            Err(PcpError::BadMac)
        ));
        assert!(matches!(
            verify(
                &m,
                d.options.auth.as_ref(),
                &[AuthKey::new(8, &[0x42; 32]).unwrap()]
            ),
            Err(PcpError::UnknownKey(7))
        ));
        for i in 0..m.len() {
            let mut t = m.clone();
            t[i] ^= 1;
            if let Ok(d) = Request::decode(&t) {
                assert!(
                    verify(&t, d.options.auth.as_ref(), std::slice::from_ref(&k)).is_err(),
                    "byte {i}"
                );
            }
        }
        let plain = request();
        assert!(matches!(
            verify(&plain, None, std::slice::from_ref(&k)),
            Err(PcpError::AuthMissing)
        ));
        assert!(AuthKey::new(1, &[0; 15]).is_err());
        assert!(!format!("{k:?}").contains("42"));
    }

    #[test]
    fn replay_window() {
        let a = |ts, r| AuthOption {
            key_id: 1,
            timestamp_ms: ts,
            random: r,
            mac: [0; 32],
        };
        let mut g = ReplayGuard::new(1000, 10_000, 3);
        assert!(matches!(
            g.check(&a(9_999, 1), 10_000),
            Err(PcpError::BeforeStart)
        ));
        assert!(g.check(&a(10_000, 1), 10_500).is_ok());
        assert!(matches!(
            g.check(&a(10_000, 1), 10_600),
            Err(PcpError::Replayed)
        ));
        assert!(g.check(&a(10_000, 2), 10_600).is_ok());
        assert!(matches!(
            g.check(&a(12_000, 3), 10_600),
            Err(PcpError::OutsideWindow { .. })
        ));
        assert!(matches!(
            g.check(&a(10_000, 3), 11_500),
            Err(PcpError::OutsideWindow { .. })
        ));
        assert!(g.check(&a(11_400, 4), 11_500).is_ok());
        // the first two were forgotten once out of the window
        assert_eq!(g.len(), 1);
        assert!(g.check(&a(11_400, 5), 11_500).is_ok());
        assert!(g.check(&a(11_400, 6), 11_500).is_ok());
        assert!(matches!(
            g.check(&a(11_400, 7), 11_500),
            Err(PcpError::ReplayCacheFull)
        ));
    }
}
