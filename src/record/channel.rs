//! The authenticated key channel from a trusted proxy to a recorder: each [`KeyMessage`] is
//! sealed as CMS AuthEnvelopedData (AES-256-GCM) whose only RecipientInfo is a
//! KEKRecipientInfo for a key-encryption key the proxy and the recorder share.
//!
//! Why a pre-shared KEK and not the recorder's certificate: anyone holding the recorder's
//! public certificate can seal a KTRI message to it, so KTRI says nothing about who sent it.
//! AES key wrap (RFC 3394) under the shared KEK and the GCM tag authenticate the content as
//! coming from a holder of that KEK; the recorder keeps one KEK per proxy and requires the
//! message's `sender` to be that KEK's label, so one proxy cannot speak for another.
//!
//! Replay: `sequence`, `sentAt` and `dialogId` are inside the authenticated content. The
//! recorder refuses a message whose `sentAt` is further than `max_skew` from its clock, and a
//! `sequence` it has seen from that sender or one older than its window
//! ([`ReplayWindow`], 1024 values: messages from several proxy worker processes may arrive
//! out of order).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::message::{KeyMessage, VERSION};
use super::RecordError;
use crate::crypto::cms::{self, Cek, CmsKind, ContentAlg, Recipient};
use crate::crypto::keys::{KeySpec, KeyStore, PskSpec};

/// Sequence numbers a receiver remembers behind the highest one seen.
pub const REPLAY_WINDOW: u64 = 1024;
/// Default largest difference between a message's `sentAt` and the receiver's clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(30);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A first sequence number for a sender that keeps no state across restarts: the current
/// time in microseconds, so a restarted sender still counts upwards.
pub fn initial_sequence() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The proxy's end: seals messages under the shared KEK.
pub struct ChannelSender {
    kek_id: Vec<u8>,
    kek: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for ChannelSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelSender")
            .field("kek_id", &crate::hex::encode(&self.kek_id))
            .field("kek_len", &self.kek.len())
            .finish()
    }
}

impl ChannelSender {
    /// A sender with the KEK (16, 24 or 32 bytes) and its KEK identifier.
    pub fn new(kek_id: &[u8], kek: Zeroizing<Vec<u8>>) -> Result<ChannelSender, RecordError> {
        if ![16, 24, 32].contains(&kek.len()) || kek_id.is_empty() {
            return Err(RecordError::Cms(cms::CmsError::BadKeyLength));
        }
        Ok(ChannelSender {
            kek_id: kek_id.to_vec(),
            kek,
        })
    }

    /// The message sealed: DER of a ContentInfo with AuthEnvelopedData.
    pub fn seal(&self, msg: &KeyMessage) -> Result<Vec<u8>, RecordError> {
        let der = msg.to_der_zeroizing().map_err(RecordError::der)?;
        let cek = Cek::generate(ContentAlg::Aes256Gcm)?;
        let recipient = Recipient::Psk {
            id: self.kek_id.clone(),
            kek: self.kek.clone(),
        };
        Ok(cms::seal(&der, &[recipient], &cek)?)
    }
}

/// Which sequence numbers of one sender have been seen: the highest and a bitmap of the
/// [`REPLAY_WINDOW`] below it (the scheme of RFC 4303 §3.4.3).
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    highest: Option<u64>,
    seen: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    fn bit(&mut self, offset: u64) -> (&mut u64, u64) {
        (
            &mut self.seen[(offset / 64) as usize],
            1u64 << (offset % 64),
        )
    }

    /// Records `seq`; false if it was seen already or is older than the window.
    pub fn check_and_insert(&mut self, seq: u64) -> bool {
        let Some(high) = self.highest else {
            self.highest = Some(seq);
            self.seen = Default::default();
            *self.bit(0).0 |= 1;
            return true;
        };
        if seq > high {
            let shift = seq - high;
            if shift >= REPLAY_WINDOW {
                self.seen = Default::default();
            } else {
                // Move every bit `shift` places up (offset = high - seq, bit 0 = highest).
                let mut next = [0u64; (REPLAY_WINDOW / 64) as usize];
                for off in 0..REPLAY_WINDOW - shift {
                    let (w, m) = self.bit(off);
                    if *w & m != 0 {
                        let n = off + shift;
                        next[(n / 64) as usize] |= 1u64 << (n % 64);
                    }
                }
                self.seen = next;
            }
            self.highest = Some(seq);
            *self.bit(0).0 |= 1;
            return true;
        }
        let off = high - seq;
        if off >= REPLAY_WINDOW {
            return false;
        }
        let (w, m) = self.bit(off);
        if *w & m != 0 {
            return false;
        }
        *w |= m;
        true
    }
}

/// The recorder's end: opens messages from known proxies and refuses replays.
#[derive(Debug)]
pub struct ChannelReceiver {
    keys: KeyStore,
    max_skew: Duration,
    windows: HashMap<String, ReplayWindow>,
}

impl ChannelReceiver {
    /// A receiver with one pre-shared KEK per proxy. Each [`PskSpec`]'s label is the proxy's
    /// name (what its messages must carry as `sender`).
    pub fn new(
        psks: Vec<PskSpec>,
        strict_permissions: bool,
        max_skew: Duration,
    ) -> Result<ChannelReceiver, RecordError> {
        let keys = KeyStore::load(&KeySpec {
            psk: psks,
            strict_permissions,
            ..Default::default()
        })?;
        Ok(ChannelReceiver {
            keys,
            max_skew,
            windows: HashMap::new(),
        })
    }

    /// What loading the KEK files warned about (group/other-readable files).
    pub fn warnings(&self) -> &[String] {
        self.keys.warnings()
    }

    /// Opens and checks a sealed message at the receiver's current time.
    pub fn open(&mut self, sealed: &[u8]) -> Result<KeyMessage, RecordError> {
        self.open_at(sealed, now_ms())
    }

    /// Opens and checks a sealed message as if the clock said `now_ms`.
    pub fn open_at(&mut self, sealed: &[u8], now_ms: u64) -> Result<KeyMessage, RecordError> {
        let opened = cms::open(sealed, &self.keys)?;
        if opened.kind != CmsKind::AuthEnvelopedData {
            return Err(RecordError::NotAuthenticated);
        }
        let msg = KeyMessage::from_der_bytes(&opened.plaintext).map_err(RecordError::der)?;
        if msg.version != VERSION {
            return Err(RecordError::Version(msg.version));
        }
        if msg.sender != opened.key_label {
            return Err(RecordError::SenderMismatch {
                claimed: msg.sender.chars().take(64).collect(),
                key: opened.key_label,
            });
        }
        if msg.dialog_id.as_bytes().len() != 32 {
            return Err(RecordError::BadDialogId);
        }
        let skew = now_ms.abs_diff(msg.sent_at_ms);
        if skew > self.max_skew.as_millis() as u64 {
            return Err(RecordError::Stale { skew_ms: skew });
        }
        let window = self.windows.entry(msg.sender.clone()).or_default();
        if !window.check_and_insert(msg.sequence) {
            return Err(RecordError::Replay(msg.sequence));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::tests::{start, KEY_A, KEY_B};
    use super::*;

    const KEK: [u8; 32] = [0x5a; 32];

    fn receiver(dir: &std::path::Path, label: &str) -> ChannelReceiver {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("{label}.kek"));
        std::fs::write(&path, crate::hex::encode(&KEK)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        ChannelReceiver::new(
            vec![PskSpec {
                id: b"rec-kek-1".to_vec(),
                key_path: path,
                label: Some(label.into()),
            }],
            true,
            DEFAULT_MAX_SKEW,
        )
        .unwrap()
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        assert!(w.check_and_insert(100));
        assert!(!w.check_and_insert(100));
        assert!(w.check_and_insert(98));
        assert!(w.check_and_insert(101));
        assert!(!w.check_and_insert(98));
        assert!(w.check_and_insert(99));
        assert!(w.check_and_insert(101 + REPLAY_WINDOW - 1));
        assert!(!w.check_and_insert(101), "old ones fall out of the window");
        assert!(!w.check_and_insert(1));
        assert!(w.check_and_insert(u64::MAX));
        assert!(!w.check_and_insert(u64::MAX));
        println!("  ok   replay window: duplicates and too-old sequence numbers refused, late ones inside the window accepted");
    }

    #[test]
    fn seal_open_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let sender = ChannelSender::new(b"rec-kek-1", Zeroizing::new(KEK.to_vec())).unwrap();
        let mut msg = start();
        let now = msg.sent_at_ms + 1500;
        let sealed = sender.seal(&msg).unwrap();
        for k in [KEY_A, KEY_B] {
            assert!(!sealed.windows(k.len()).any(|w| w == k.as_bytes()));
        }
        let mut rx = receiver(dir.path(), "proxy1");
        assert_eq!(rx.open_at(&sealed, now).unwrap(), msg);
        assert!(matches!(
            rx.open_at(&sealed, now),
            Err(RecordError::Replay(7))
        ));
        // A later message passes; the same sequence again is a replay even if resealed.
        msg.sequence = 8;
        let s8 = sender.seal(&msg).unwrap();
        assert!(rx.open_at(&s8, now).is_ok());
        assert!(matches!(
            rx.open_at(&sender.seal(&msg).unwrap(), now),
            Err(RecordError::Replay(8))
        ));
        // Too old or from the future.
        msg.sequence = 9;
        let s9 = sender.seal(&msg).unwrap();
        assert!(matches!(
            rx.open_at(&s9, now + 60_000),
            Err(RecordError::Stale { .. })
        ));
        assert!(matches!(
            rx.open_at(&s9, msg.sent_at_ms - 31_000),
            Err(RecordError::Stale { .. })
        ));
        // Another proxy's name under proxy1's key.
        let mut rx2 = receiver(dir.path(), "proxy2");
        assert!(matches!(
            rx2.open_at(&s9, now),
            Err(RecordError::SenderMismatch { .. })
        ));
        // Tampered ciphertext: GCM tag.
        let mut bad = s9.clone();
        let n = bad.len() - 20;
        bad[n] ^= 1;
        assert!(matches!(rx.open_at(&bad, now), Err(RecordError::Cms(_))));
        // A wrong KEK cannot open it.
        let other = ChannelSender::new(b"rec-kek-1", Zeroizing::new(vec![0x11; 32])).unwrap();
        assert!(matches!(
            rx.open_at(&other.seal(&msg).unwrap(), now),
            Err(RecordError::Cms(_))
        ));
        // Not AuthEnvelopedData: EncryptedData under some CEK is refused before parsing.
        let cek = Cek::generate(ContentAlg::Aes256Gcm).unwrap();
        let enc = cms::seal_encrypted(&msg.to_der_zeroizing().unwrap(), &cek).unwrap();
        assert!(rx.open_at(&enc, now).is_err());
        println!("  ok   key channel: sealed (no key text in {} bytes), opened, replay/stale/impersonation/tamper/wrong KEK refused", sealed.len());
    }
}
