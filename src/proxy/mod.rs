//! What a trusted proxy does with a SIP message: decide whether the body is meant for it, open
//! it with its own key or the dialog's cached key, keep the dialog key current, and forget it
//! when the dialog ends. The forwarded message is never changed here.
//!
//! A [`Proxy`] is made once in the process that later forks the workers (Kamailio's
//! `mod_init`): the dialog key cache and the counters it creates are shared by every fork.

mod config;
mod counters;
mod message;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use zeroize::Zeroizing;

pub use config::{Mode, ProxyConfig, RotationPolicy};
pub use counters::Counter;
pub use message::SipMessage;

use crate::body::{self, EncryptedPart, SmimeType};
use crate::cache::{CacheStats, DialogKey, SharedCache, Stored};
use crate::cms::{self, Cek, CmsError, CmsKind, ContentAlg};
use crate::error::{Error, Result};
use crate::keys::KeyStore;
use crate::request::{DisclosureRequest, Selection};
use crate::sdp::SdpInfo;
use counters::SharedCounters;

/// Where the key that opened a part came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Unwrapped from a RecipientInfo of the message with one of the proxy's keys.
    Wrapped,
    /// The dialog's cached key (EncryptedData).
    Cache,
}

impl KeySource {
    /// `wrapped` or `cache`.
    pub fn name(self) -> &'static str {
        match self {
            KeySource::Wrapped => "wrapped",
            KeySource::Cache => "cache",
        }
    }
}

/// One decrypted body part.
pub struct DisclosedPart {
    /// Content-ID of the encrypted part, without angle brackets.
    pub content_id: Option<String>,
    /// The kind of CMS structure the part was.
    pub smime_type: SmimeType,
    /// Content type of the plaintext.
    pub content_type: String,
    /// The plaintext body (without inner MIME headers); zeroized on drop.
    pub body: Zeroizing<Vec<u8>>,
    /// See [`KeySource`].
    pub key_source: KeySource,
    /// Label of the proxy key that unwrapped the CEK, or `dialog` for the cache.
    pub key_label: String,
    /// Generation of the dialog key after this message.
    pub generation: u32,
}

impl DisclosedPart {
    /// Media facts when the plaintext is SDP (parsed on demand: the hot path does not pay
    /// for it unless a script asks for a media field).
    pub fn sdp(&self) -> Option<SdpInfo> {
        // parse_inner gives the canonical, lower-case media type first.
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        (media == "application/sdp")
            .then(|| SdpInfo::parse(&self.body).ok())
            .flatten()
    }
}

impl std::fmt::Debug for DisclosedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisclosedPart")
            .field("content_id", &self.content_id)
            .field("smime_type", &self.smime_type)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .field("key_source", &self.key_source)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// What a proxy decided about one message.
#[derive(Debug)]
pub enum Decision {
    /// No encrypted body.
    NotEncrypted,
    /// Encrypted, but not for this proxy (not named, not a recipient, unknown dialog).
    NotForMe,
    /// These parts are for this proxy.
    Decrypt(Vec<Selected>),
}

/// A part the proxy will open, with its CMS kind.
#[derive(Debug)]
pub struct Selected {
    part: EncryptedPart,
    kind: CmsKind,
}

/// The result of [`Proxy::unwrap`].
#[derive(Debug)]
pub enum Unwrapped {
    /// No encrypted body.
    NotEncrypted,
    /// Not for this proxy.
    NotForMe,
    /// The decrypted parts, in body order.
    Disclosed(Vec<DisclosedPart>),
}

/// Counters of a proxy, summed over every process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyStats {
    /// Messages decrypted.
    pub decrypted: u64,
    /// Encrypted messages not meant for this proxy.
    pub not_for_me: u64,
    /// Messages with no encrypted body.
    pub not_encrypted: u64,
    /// Messages that failed.
    pub errors: u64,
    /// Dialogs removed at dialog end.
    pub dialogs_ended: u64,
    /// Key reloads.
    pub reloads: u64,
    /// The dialog key cache's own figures.
    pub cache: CacheStats,
}

/// A trusted proxy: keys, policy, and the shared dialog key cache. See the module doc.
pub struct Proxy {
    config: ProxyConfig,
    keys: RwLock<Arc<KeyStore>>,
    seen_epoch: AtomicU64,
    cache: SharedCache,
    counters: SharedCounters,
}

impl Proxy {
    /// Loads the keys and creates the shared cache. Call before forking workers.
    pub fn new(config: ProxyConfig) -> Result<Proxy> {
        let keys = KeyStore::load(&config.keys)?;
        let cache = SharedCache::create(config.cache)?;
        let counters = SharedCounters::create()
            .map_err(|e| Error::Config(format!("cannot map shared counters: {e}")))?;
        Ok(Proxy {
            seen_epoch: AtomicU64::new(cache.epoch()),
            keys: RwLock::new(Arc::new(keys)),
            config,
            cache,
            counters,
        })
    }

    /// The configuration the proxy was made with.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Re-reads every key file. On success the new keys serve this process at once and every
    /// other process at its next message; on failure the old keys stay. The cache is kept.
    pub fn reload(&self) -> Result<()> {
        let fresh = KeyStore::load(&self.config.keys)?;
        *self.keys.write() = Arc::new(fresh);
        let epoch = self.cache.bump_epoch();
        self.seen_epoch.store(epoch, Ordering::Relaxed);
        self.counters.bump(Counter::Reloads);
        Ok(())
    }

    /// The keys of this process, reloaded first if another process asked for a reload.
    fn keys(&self) -> Arc<KeyStore> {
        let epoch = self.cache.epoch();
        if epoch != self.seen_epoch.swap(epoch, Ordering::Relaxed) {
            // A reload that worked in the process that asked for it failing here means the
            // files changed again in between: keep serving with the keys we have.
            if let Ok(fresh) = KeyStore::load(&self.config.keys) {
                *self.keys.write() = Arc::new(fresh);
            }
        }
        self.keys.read().clone()
    }

    /// What loading the keys warned about (e.g. a key file others may read), for the log.
    pub fn key_warnings(&self) -> Vec<String> {
        self.keys().warnings().to_vec()
    }

    /// Decides whether `msg` carries a body part meant for this proxy (docs/PROTOCOL.md).
    pub fn should_decrypt(&self, msg: &SipMessage<'_>) -> Result<Decision> {
        // Only `unwrap` counts: a script asks first and then decrypts the same message.
        self.decide(msg, &self.keys(), &Cell::new(None))
    }

    /// Decrypts the parts meant for this proxy, storing or rotating the dialog key when the
    /// message wraps one, or using the cached key for EncryptedData.
    pub fn unwrap(&self, msg: &SipMessage<'_>) -> Result<Unwrapped> {
        let keys = self.keys();
        let dialog = Cell::new(None);
        let result = self
            .decide(msg, &keys, &dialog)
            .and_then(|decision| match decision {
                Decision::NotEncrypted => Ok(Unwrapped::NotEncrypted),
                Decision::NotForMe => Ok(Unwrapped::NotForMe),
                Decision::Decrypt(selected) => selected
                    .into_iter()
                    .map(|s| self.open_part(msg, &keys, s, &dialog))
                    .collect::<Result<Vec<_>>>()
                    .map(Unwrapped::Disclosed),
            });
        let result = self.counted(result);
        if let Ok(u) = &result {
            self.counters.bump(match u {
                Unwrapped::NotEncrypted => Counter::NotEncrypted,
                Unwrapped::NotForMe => Counter::NotForMe,
                Unwrapped::Disclosed(_) => Counter::Decrypted,
            });
        }
        result
    }

    /// Applies a key rotation carried by `msg`: the message must be inside a dialog whose key
    /// is cached and wrap a new key for this proxy. Returns the new generation.
    pub fn rotate(&self, msg: &SipMessage<'_>) -> Result<u32> {
        let result = self.rotate_inner(msg);
        self.counted(result)
    }

    fn rotate_inner(&self, msg: &SipMessage<'_>) -> Result<u32> {
        let dialog = self.dialog_of(msg)?;
        if !msg.in_dialog() {
            return Err(Error::RotationRejected(
                "the message is not inside the dialog",
            ));
        }
        if self.cache.peek(&dialog)?.is_none() {
            return Err(Error::RotationRejected("the dialog has no cached key"));
        }
        let keys = self.keys();
        let selected = match self.decide(msg, &keys, &Cell::new(Some(dialog)))? {
            Decision::Decrypt(selected) => selected,
            Decision::NotEncrypted | Decision::NotForMe => {
                return Err(Error::Cms(CmsError::NotRecipient))
            }
        };
        let wrapped = selected
            .iter()
            .find(|s| s.kind != CmsKind::EncryptedData)
            .ok_or(Error::RotationRejected("the message wraps no new key"))?;
        let opened = cms::open(&wrapped.part.der, &keys)?;
        match self.store_key(msg, &dialog, &opened.cek)? {
            Stored::Rotated { generation } | Stored::Same { generation } => Ok(generation),
            Stored::New { generation } => Ok(generation),
        }
    }

    /// Forgets the dialog's key (BYE, CANCEL, failed INVITE). True if it was cached.
    pub fn dialog_end(&self, call_id: &[u8], from_tag: &[u8]) -> Result<bool> {
        let removed = self.cache.remove(&DialogKey::new(call_id, from_tag))?;
        if removed {
            self.counters.bump(Counter::DialogsEnded);
        }
        Ok(removed)
    }

    /// Forgets the key of the dialog `msg` belongs to (a BYE or CANCEL from either side, or a
    /// failed INVITE's reply). True if it was cached.
    pub fn dialog_end_of(&self, msg: &SipMessage<'_>) -> Result<bool> {
        let removed = self.cache.remove(&self.dialog_of(msg)?)?;
        if removed {
            self.counters.bump(Counter::DialogsEnded);
        }
        Ok(removed)
    }

    /// Counters summed over every process.
    pub fn stats(&self) -> Result<ProxyStats> {
        Ok(ProxyStats {
            decrypted: self.counters.get(Counter::Decrypted),
            not_for_me: self.counters.get(Counter::NotForMe),
            not_encrypted: self.counters.get(Counter::NotEncrypted),
            errors: self.counters.get(Counter::Errors),
            dialogs_ended: self.counters.get(Counter::DialogsEnded),
            reloads: self.counters.get(Counter::Reloads),
            cache: self.cache.stats()?,
        })
    }

    /// Zeroizes every cached key (shutdown).
    pub fn wipe(&self) -> Result<()> {
        Ok(self.cache.wipe()?)
    }

    fn counted<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.counters.bump(Counter::Errors);
        }
        r
    }

    fn decide(
        &self,
        msg: &SipMessage<'_>,
        keys: &KeyStore,
        dialog: &Cell<Option<DialogKey>>,
    ) -> Result<Decision> {
        let content_type = SipMessage::text(msg.content_type, "Content-Type is not UTF-8")?;
        if content_type.trim().is_empty() || msg.body.is_empty() {
            return Ok(Decision::NotEncrypted);
        }
        let te = SipMessage::text(msg.transfer_encoding, "Content-Transfer-Encoding")?.trim();
        let te = (!te.is_empty()).then_some(te);
        let parts = body::encrypted_parts(content_type, te, msg.body, &self.config.limits)?;
        if parts.is_empty() {
            return Ok(Decision::NotEncrypted);
        }
        let mut inspected = Vec::with_capacity(parts.len());
        for part in parts {
            let insp = cms::inspect(&part.der)?;
            if insp.recipients.len() > self.config.max_recipients {
                return Err(Error::TooManyRecipients {
                    count: insp.recipients.len(),
                    limit: self.config.max_recipients,
                });
            }
            inspected.push((part, insp));
        }
        let header = SipMessage::text(msg.disclose_to, "Disclose-To is not UTF-8")?.trim();
        let request = match (self.config.mode, header.is_empty()) {
            (Mode::Implicit, _) | (_, true) => None,
            (_, false) => Some(DisclosureRequest::parse(header)?),
        };
        let explicit = match (&request, self.config.mode) {
            (Some(req), _) => Some(req.selection_for(keys.identities())),
            (None, Mode::Explicit) => Some(Selection::NotNamed),
            (None, _) => None,
        };
        let mut selected = Vec::new();
        match explicit {
            Some(Selection::NotNamed) => return Ok(Decision::NotForMe),
            Some(Selection::AllParts) => {
                for (part, insp) in inspected {
                    self.require_openable(msg, keys, &insp, dialog)?;
                    selected.push(Selected {
                        part,
                        kind: insp.kind,
                    });
                }
            }
            Some(Selection::Parts(cids)) => {
                for cid in cids {
                    let pos = inspected
                        .iter()
                        .position(|(p, _)| p.has_content_id(&cid))
                        .ok_or_else(|| Error::ContentIdNotFound(cid.clone()))?;
                    let (part, insp) = inspected.swap_remove(pos);
                    self.require_openable(msg, keys, &insp, dialog)?;
                    selected.push(Selected {
                        part,
                        kind: insp.kind,
                    });
                }
                selected.sort_by_key(|s| s.part.range.start);
            }
            None => {
                for (part, insp) in inspected {
                    if self.openable(msg, keys, &insp, dialog)? {
                        selected.push(Selected {
                            part,
                            kind: insp.kind,
                        });
                    }
                }
            }
        }
        Ok(if selected.is_empty() {
            Decision::NotForMe
        } else {
            Decision::Decrypt(selected)
        })
    }

    /// Implicit test: a RecipientInfo names one of our keys, or the dialog key is cached.
    fn openable(
        &self,
        msg: &SipMessage<'_>,
        keys: &KeyStore,
        insp: &cms::Inspection,
        dialog: &Cell<Option<DialogKey>>,
    ) -> Result<bool> {
        Ok(match insp.kind {
            CmsKind::EncryptedData => self.cache.peek(&self.dialog_memo(msg, dialog)?)?.is_some(),
            _ => cms::matching_recipient(insp, keys).is_some(),
        })
    }

    /// Explicit request: the part must be openable, else the specific reason.
    fn require_openable(
        &self,
        msg: &SipMessage<'_>,
        keys: &KeyStore,
        insp: &cms::Inspection,
        dialog: &Cell<Option<DialogKey>>,
    ) -> Result<()> {
        if self.openable(msg, keys, insp, dialog)? {
            return Ok(());
        }
        Err(match insp.kind {
            CmsKind::EncryptedData => Error::NoDialogKey,
            _ => Error::Cms(CmsError::NotRecipient),
        })
    }

    fn open_part(
        &self,
        msg: &SipMessage<'_>,
        keys: &KeyStore,
        selected: Selected,
        dialog: &Cell<Option<DialogKey>>,
    ) -> Result<DisclosedPart> {
        let dialog = self.dialog_memo(msg, dialog)?;
        let (plaintext, key_source, key_label, generation) = match selected.kind {
            CmsKind::EncryptedData => {
                let cached = self.cache.get(&dialog)?.ok_or(Error::NoDialogKey)?;
                self.check_rotation_policy(cached.created_at, cached.uses)?;
                let alg = ContentAlg::from_code(cached.alg).ok_or(Error::NoDialogKey)?;
                let cek = Cek::from_bytes(alg, &cached.cek)?;
                let plain = cms::open_with_cek(&selected.part.der, &cek)?;
                (
                    plain,
                    KeySource::Cache,
                    "dialog".to_string(),
                    cached.generation,
                )
            }
            _ => {
                let opened = cms::open(&selected.part.der, keys)?;
                let generation = match self.store_key(msg, &dialog, &opened.cek)? {
                    Stored::New { generation }
                    | Stored::Same { generation }
                    | Stored::Rotated { generation } => generation,
                };
                (
                    opened.plaintext,
                    KeySource::Wrapped,
                    opened.key_label,
                    generation,
                )
            }
        };
        let (content_type, inner) = body::parse_inner(&plaintext)?;
        Ok(DisclosedPart {
            content_id: selected.part.content_id,
            smime_type: smime_type_of(selected.kind),
            content_type,
            body: Zeroizing::new(inner.to_vec()),
            key_source,
            key_label,
            generation,
        })
    }

    /// [`Proxy::dialog_of`], worked out once per message.
    fn dialog_memo(
        &self,
        msg: &SipMessage<'_>,
        memo: &Cell<Option<DialogKey>>,
    ) -> Result<DialogKey> {
        if let Some(d) = memo.get() {
            return Ok(d);
        }
        let d = self.dialog_of(msg)?;
        memo.set(Some(d));
        Ok(d)
    }

    /// The dialog key entry `msg` belongs to. The key is Call-ID + the caller's tag: the From
    /// tag of the caller's requests and their replies, but the To tag of requests the callee
    /// sends inside the dialog (and their replies). So: From tag if cached, else To tag if
    /// cached, else From tag (a new dialog).
    fn dialog_of(&self, msg: &SipMessage<'_>) -> Result<DialogKey> {
        let by_from = msg.dialog()?;
        if msg.to_tag.is_empty() || self.cache.peek(&by_from)?.is_some() {
            return Ok(by_from);
        }
        let by_to = DialogKey::new(msg.call_id, msg.to_tag);
        Ok(if self.cache.peek(&by_to)?.is_some() {
            by_to
        } else {
            by_from
        })
    }

    /// Stores a freshly unwrapped key. A different key for a cached dialog is a rotation and
    /// is taken only from a message inside that dialog (docs/PROTOCOL.md, "Rotation").
    fn store_key(&self, msg: &SipMessage<'_>, dialog: &DialogKey, cek: &Cek) -> Result<Stored> {
        if let Some(existing) = self.cache.peek(dialog)? {
            let same =
                existing.alg == cek.alg().code() && existing.cek.as_slice() == cek.as_bytes();
            if !same && !msg.in_dialog() {
                return Err(Error::RotationRejected(
                    "a new key for a known dialog came from outside the dialog",
                ));
            }
        }
        Ok(self.cache.store(dialog, cek.alg().code(), cek.as_bytes())?)
    }

    fn check_rotation_policy(&self, created_at: u64, uses: u32) -> Result<()> {
        let policy = self.config.rotation;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let too_old =
            policy.max_age_secs > 0 && now.saturating_sub(created_at) > policy.max_age_secs;
        let too_used = policy.max_uses > 0 && uses > policy.max_uses;
        if too_old || too_used {
            return Err(Error::KeyExpired);
        }
        Ok(())
    }
}

fn smime_type_of(kind: CmsKind) -> SmimeType {
    match kind {
        CmsKind::EnvelopedData => SmimeType::EnvelopedData,
        CmsKind::AuthEnvelopedData => SmimeType::AuthEnvelopedData,
        CmsKind::EncryptedData => SmimeType::EncryptedData,
    }
}
