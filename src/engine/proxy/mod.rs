//! What a trusted proxy does with a SIP message: decide whether the body is meant for it, open
//! it with its own key or the dialog's cached key, keep the dialog key current, and forget it
//! when the dialog ends. The forwarded message is never changed here.
//!
//! A [`Proxy`] is made once in the process that later forks the workers (the SIP server's
//! module initialisation): the dialog key cache and the counters it creates are shared by every fork.
//!
//! The dialog key is trusted only as far as it is proven (docs/PROTOCOL.md §6, SECURITY.md):
//! a key enters the cache for a dialog that has none; once there, it changes only by a
//! rotation that proves knowledge of it (a KEKRecipientInfo under the current key), and it is
//! used, refreshed or protected only by a body it authenticated. Each check and the change it
//! allows happen under one lock of the shared cache ([`SharedCache::with_entry`]).

pub(crate) mod config;
mod counters;
mod next_hop;
mod replication;
mod stats;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use zeroize::Zeroizing;

pub use crate::sip::SipMessage;
pub use config::{Mode, ProxyConfig, RotationPolicy};
pub use counters::Counter;
pub use next_hop::NextHop;
pub use stats::{stat, stat_count, stats, ProxyStats, Stat};

use crate::crypto::cms::signed::SignatureCheck;
use crate::crypto::cms::{self, Cek, CmsError, CmsKind, CmsMessage, RsaBudget};
use crate::crypto::keys::KeyStore;
use crate::engine::cache::{
    now_secs, DialogIds, DialogKey, Entry, OnMiss, SharedCache, Stored, Verdict,
};
use crate::engine::cluster::{key_of_tag, key_tag, Change, Cluster};
use crate::engine::signature::{self, Signature};
use crate::engine::{Error, Result};
use crate::sip::body::{self, BodyError, EncryptedPart, Parts};
use crate::sip::disclose::{DiscloseError, DisclosureRequest, Selection};
use crate::sip::sdp::{SdpError, SdpInfo};
use counters::SharedCounters;

/// Where the key that opened a part came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Unwrapped from a RecipientInfo of the message: one of the proxy's keys, or the
    /// rotation proof under the dialog's previous key.
    Wrapped,
    /// The dialog's cached key (EncryptedData, or a body re-sent under the same key).
    Cache,
    /// The dialog's cached key as another node of the cluster replicated it (the dialog was
    /// set up, or its key last rotated, through that node).
    Replica,
}

impl KeySource {
    /// `wrapped` or `cache`.
    pub fn name(self) -> &'static str {
        match self {
            KeySource::Wrapped => "wrapped",
            KeySource::Cache => "cache",
            KeySource::Replica => "replica",
        }
    }
}

/// One decrypted body part.
pub struct DisclosedPart {
    /// Content-ID of the encrypted part, without angle brackets.
    pub content_id: Option<String>,
    /// The kind of CMS structure the part was.
    pub kind: CmsKind,
    /// Content type of the plaintext.
    pub content_type: String,
    /// The plaintext body (without inner MIME headers); zeroized on drop.
    pub body: Zeroizing<Vec<u8>>,
    /// See [`KeySource`].
    pub key_source: KeySource,
    /// Label of the proxy key that unwrapped the CEK, or `dialog` for the dialog key (static:
    /// no allocation for an in-dialog body).
    pub key_label: Cow<'static, str>,
    /// Generation of the dialog key after this message.
    pub generation: u32,
    /// What the signature inside the plaintext said (docs/PROTOCOL.md §9); `None`: unsigned.
    pub signature: Signature,
}

impl DisclosedPart {
    /// The session description when the plaintext is SDP (`None` for another type), or why
    /// it could not be read. Parsed on demand: the hot path does not pay for it unless a
    /// script asks for a media field.
    pub fn sdp(&self) -> Option<std::result::Result<SdpInfo, SdpError>> {
        // parse_inner gives the canonical, lower-case media type first.
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        (media == "application/sdp").then(|| SdpInfo::parse(&self.body))
    }
}

impl Drop for DisclosedPart {
    fn drop(&mut self) {
        // `Zeroizing<Vec<u8>>` wipes a Vec's bytes one volatile write at a time (zeroize's Vec
        // impl goes through an iterator); a slice is wiped with one fill and a barrier. So the
        // body is wiped here as a slice and emptied, and Zeroizing's own drop then wipes the
        // allocation, which is all spare capacity by then, in bulk too.
        use zeroize::Zeroize;
        self.body.as_mut_slice().zeroize();
        self.body.clear();
    }
}

impl std::fmt::Debug for DisclosedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisclosedPart")
            .field("content_id", &self.content_id)
            .field("kind", &self.kind)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .field("key_source", &self.key_source)
            .field("generation", &self.generation)
            .field("signature", &signature::status(&self.signature))
            .finish_non_exhaustive()
    }
}

/// What a proxy decided about one message.
// `Decrypt` holds the first part inline (`Parts`): a one-part body's decision is moved once
// or twice by value, where a boxed or heap list would be an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// No encrypted body.
    NotEncrypted,
    /// Encrypted, but not for this proxy (not named, not a recipient, unknown dialog).
    NotForMe,
    /// These parts are for this proxy.
    Decrypt(Parts<Selected>),
}

/// A part the proxy will open, decoded once.
#[derive(Debug)]
pub struct Selected {
    part: EncryptedPart,
    cms: CmsMessage,
    /// Asked for by `Disclose-To`: failing to open it is an error, not "not for me".
    required: bool,
    /// A RecipientInfo names one of our keys (else it opens only with the dialog's key).
    ours: bool,
    /// A KEKRecipientInfo carries the rotation proof's identifier.
    rotation_proof: bool,
}

impl Selected {
    fn kind(&self) -> CmsKind {
        self.cms.kind()
    }
}

/// The result of [`Proxy::unwrap`].
#[derive(Debug)]
pub enum Unwrapped {
    /// No encrypted body.
    NotEncrypted,
    /// Not for this proxy.
    NotForMe,
    /// The decrypted parts, in body order.
    Disclosed(Parts<DisclosedPart>),
}

/// A trusted proxy: keys, policy, and the shared dialog key cache. See the module doc.
pub struct Proxy {
    config: ProxyConfig,
    keys: RwLock<Arc<KeyStore>>,
    seen_epoch: AtomicU64,
    cache: SharedCache,
    counters: SharedCounters,
    /// Replication to the other nodes (`cluster_key` configured).
    cluster: Option<Cluster>,
    /// The changes this process made that are not sent yet (`replication.rs`).
    pending: parking_lot::Mutex<Vec<Change>>,
    /// The pinhole/recording states this process changed, not sent yet.
    pending_media: parking_lot::Mutex<Vec<crate::engine::cluster::MediaState>>,
}

/// One message being handled: what is worked out once and shared by its parts.
struct MessageCtx<'m> {
    msg: &'m SipMessage<'m>,
    /// The keys, taken the first time a part needs them ([`Proxy::keys_for`]): a message
    /// without an encrypted body never touches the key store or its reload epoch.
    keys: OnceCell<Arc<KeyStore>>,
    /// How this message is decided ([`Mode`]: the proxy's own, or implicit for an edge).
    mode: Mode,
    /// The dialog ids to look the key up under, the caller's tag first (From, then To);
    /// worked out when first needed (a message without a body needs none).
    dialogs: Option<MessageDialogs<'m>>,
    budget: RsaBudget,
    /// The last key that opened a part of this message: tried on the next part before any
    /// RSA work.
    last_cek: Option<Cek>,
}

impl<'m> MessageCtx<'m> {
    fn dialogs(&mut self) -> Result<&MessageDialogs<'m>> {
        if self.dialogs.is_none() {
            self.dialogs = Some(MessageDialogs::of(self.msg)?);
        }
        self.dialogs
            .as_ref()
            .ok_or(Error::InvalidMessage("no dialog ids"))
    }
}

/// The dialog ids of one message, caller's tag candidates in order: From (the caller's
/// requests and every reply), then To (requests the callee sends inside the dialog). Each is
/// a SHA-256 ([`DialogKey::new`]): the From-tag id at once (every lookup needs it, and it is
/// not worked out under the cache's lock), the To-tag id the first time it is asked for, so a
/// lookup that finds the From-tag id's entry never hashes the To tag.
#[derive(Clone)]
pub(crate) struct MessageDialogs<'m> {
    call_id: &'m [u8],
    from: DialogKey,
    to_tag: &'m [u8],
    to: OnceCell<DialogKey>,
}

impl<'m> MessageDialogs<'m> {
    /// The ids of `msg`, which must have a Call-ID and a From tag.
    pub(crate) fn of(msg: &SipMessage<'m>) -> Result<MessageDialogs<'m>> {
        if msg.call_id.is_empty() {
            return Err(Error::InvalidMessage("no Call-ID"));
        }
        if msg.from_tag.is_empty() {
            return Err(Error::InvalidMessage("no From tag"));
        }
        Ok(MessageDialogs {
            call_id: msg.call_id,
            from: DialogKey::new(msg.call_id, msg.from_tag),
            to_tag: msg.to_tag,
            to: OnceCell::new(),
        })
    }

    /// Every id (the To-tag one only with a To tag).
    fn all(&self) -> Vec<DialogKey> {
        (0..2).map_while(|i| self.id(i)).collect()
    }
}

impl DialogIds for MessageDialogs<'_> {
    fn id(&self, i: usize) -> Option<DialogKey> {
        match i {
            0 => Some(self.from),
            1 if !self.to_tag.is_empty() => Some(
                *self
                    .to
                    .get_or_init(|| DialogKey::new(self.call_id, self.to_tag)),
            ),
            _ => None,
        }
    }
}

/// When [`Proxy::decide`] finds out whether the dialog's key is cached, for the parts that
/// only it can open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Now (`should_decrypt`: nothing is opened).
    Now,
    /// When the part is opened, under the same lock (`unwrap`: one lock per message).
    AtOpen,
}

/// A part opened: its plaintext (with inner MIME headers), and where its key came from.
struct Opening {
    plaintext: cms::Plaintext,
    key_source: KeySource,
    key_label: Cow<'static, str>,
    generation: u32,
}

impl Opening {
    /// Opened with the cached entry `e` (a key replicated from another node says so).
    fn from_dialog(plaintext: cms::Plaintext, e: &Entry<'_>) -> Opening {
        let replica = key_of_tag(e.alg).is_some_and(|(_, replica)| replica);
        Opening {
            plaintext,
            key_source: if replica {
                KeySource::Replica
            } else {
                KeySource::Cache
            },
            key_label: "dialog".into(),
            generation: e.generation,
        }
    }

    fn unwrapped(opened: cms::Opened, generation: u32) -> Opening {
        Opening {
            plaintext: cms::Plaintext::whole(opened.plaintext),
            key_source: KeySource::Wrapped,
            key_label: Cow::Owned(opened.key_label),
            generation,
        }
    }
}

/// What a known dialog's entry said about an (Auth)EnvelopedData part.
enum Known {
    /// The body is under the cached key (a retransmission or a re-sent offer).
    Same(Opening),
    /// A proven rotation: the new key is now cached (for the dialog id at this position).
    Rotated(cms::Opened, u32, usize),
    /// The old-peer CBC path (`allow_cbc_in_dialog`): the key must be unwrapped to compare.
    NeedUnwrap,
}

impl Proxy {
    /// Loads the keys and creates the shared cache. Call before forking workers.
    pub fn new(config: ProxyConfig) -> Result<Proxy> {
        let keys = KeyStore::load(&config.keys)?;
        let cache = SharedCache::create(config.cache)?;
        let counters = SharedCounters::create()
            .map_err(|e| Error::Config(format!("cannot map shared counters: {e}")))?;
        let cluster = Cluster::new(
            &config.cluster,
            config.keys.strict_permissions,
            &config.keys.psk,
            &keys,
        )?;
        Ok(Proxy {
            seen_epoch: AtomicU64::new(cache.epoch()),
            keys: RwLock::new(Arc::new(keys)),
            config,
            cache,
            counters,
            cluster,
            pending: parking_lot::Mutex::new(Vec::new()),
            pending_media: parking_lot::Mutex::new(Vec::new()),
        })
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
    pub(crate) fn keys(&self) -> Arc<KeyStore> {
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
        let mut w = self.keys().warnings().to_vec();
        if let Some(c) = &self.cluster {
            w.extend(c.warnings().iter().cloned());
        }
        w
    }

    /// Decides whether `msg` carries a body part meant for this proxy (docs/PROTOCOL.md).
    /// Changes and counts nothing.
    pub fn should_decrypt(&self, msg: &SipMessage<'_>) -> Result<Decision> {
        let mut ctx = self.context(msg, self.config.mode)?;
        self.decide(&mut ctx, Look::Now)
    }

    /// Decrypts the parts meant for this proxy: a new dialog's key is cached, a proven
    /// rotation replaces it, the cached key opens EncryptedData (docs/PROTOCOL.md §6).
    pub fn unwrap(&self, msg: &SipMessage<'_>) -> Result<Unwrapped> {
        self.unwrap_as(msg, self.config.mode)
    }

    /// [`Proxy::unwrap`] deciding by `mode` instead of the configured one (an edge opens
    /// whatever its keys open: [`Mode::Implicit`]).
    pub(crate) fn unwrap_as(&self, msg: &SipMessage<'_>, mode: Mode) -> Result<Unwrapped> {
        let result = self.context(msg, mode).and_then(|mut ctx| {
            let result = self.unwrap_in(&mut ctx);
            self.counters
                .add(Counter::RsaOps, u64::from(ctx.budget.spent()));
            result
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

    fn unwrap_in(&self, ctx: &mut MessageCtx<'_>) -> Result<Unwrapped> {
        let selected = match self.decide(ctx, Look::AtOpen)? {
            Decision::NotEncrypted => return Ok(Unwrapped::NotEncrypted),
            Decision::NotForMe => return Ok(Unwrapped::NotForMe),
            Decision::Decrypt(selected) => selected,
        };
        let mut parts = Parts::with_capacity(selected.len());
        for s in selected {
            if let Some(p) = self.open_part(ctx, s)? {
                parts.push(p);
            }
        }
        Ok(if parts.is_empty() {
            Unwrapped::NotForMe
        } else {
            Unwrapped::Disclosed(parts)
        })
    }

    /// Applies a key rotation carried by `msg`: a message inside a dialog whose key is cached,
    /// with a new key proven by the current one (or the current key again). Returns the
    /// dialog key's generation after the message.
    pub fn rotate(&self, msg: &SipMessage<'_>) -> Result<u32> {
        let result = self.rotate_inner(msg);
        self.counted(result)
    }

    fn rotate_inner(&self, msg: &SipMessage<'_>) -> Result<u32> {
        if !msg.in_dialog() {
            return Err(Error::RotationRejected(
                "the message is not inside the dialog",
            ));
        }
        if self.cache.contains(&MessageDialogs::of(msg)?)?.is_none() {
            return Err(Error::RotationRejected("the dialog has no cached key"));
        }
        let mut ctx = self.context(msg, self.config.mode)?;
        let result = self.unwrap_in(&mut ctx);
        self.counters
            .add(Counter::RsaOps, u64::from(ctx.budget.spent()));
        let parts = match result? {
            Unwrapped::Disclosed(parts) => parts,
            Unwrapped::NotEncrypted | Unwrapped::NotForMe => {
                return Err(Error::Cms(CmsError::NotRecipient))
            }
        };
        parts
            .iter()
            .filter(|p| p.kind != CmsKind::EncryptedData)
            .map(|p| p.generation)
            .max()
            .ok_or(Error::RotationRejected("the message wraps no new key"))
    }

    /// Forgets the dialog's key (BYE answered, failed INVITE). True if it was cached.
    pub fn dialog_end(&self, call_id: &[u8], from_tag: &[u8]) -> Result<bool> {
        let dialog = DialogKey::new(call_id, from_tag);
        let removed = self.cache.remove(&dialog)?;
        if removed {
            self.counters.bump(Counter::DialogsEnded);
            self.note(Change::End(dialog));
        }
        Ok(removed)
    }

    /// Forgets the key of the dialog `msg` belongs to (the reply to a BYE from either side, or
    /// a failed INVITE's reply). True if it was cached.
    pub fn dialog_end_of(&self, msg: &SipMessage<'_>) -> Result<bool> {
        let dialogs = MessageDialogs::of(msg)?;
        // one lock: find the caller's tag (From or To) and remove its entry
        let Some(which) = self.cache.remove_any(&dialogs)? else {
            return Ok(false);
        };
        self.counters.bump(Counter::DialogsEnded);
        if let Some(dialog) = dialogs.id(which) {
            self.note(Change::End(dialog));
        }
        Ok(true)
    }

    /// Whether a body decrypted here may be forwarded in clear to `next_hop` (a SIP URI):
    /// only to the configured `plaintext_next_hop`s. A refusal is counted.
    pub fn plaintext_allowed(&self, next_hop: &str) -> bool {
        let ok = next_hop::allowed(&self.config.plaintext_next_hops, next_hop);
        if !ok {
            self.counters.bump(Counter::PlaintextRefused);
        }
        ok
    }

    /// Counters summed over every process.
    pub fn stats(&self) -> Result<ProxyStats> {
        let mut counters = [0u64; Counter::ALL.len()];
        for (slot, &c) in counters.iter_mut().zip(Counter::ALL) {
            *slot = self.counters.get(c);
        }
        let cluster = match &self.cluster {
            Some(c) => c.stats()?,
            None => Default::default(),
        };
        Ok(ProxyStats::new(counters, self.cache.stats()?, cluster))
    }

    /// The shared dialog key cache (the edge keeps its dialogs' keys in the same one).
    pub(crate) fn cache(&self) -> &SharedCache {
        &self.cache
    }

    /// Adds one to counter `c`.
    pub(crate) fn count(&self, c: Counter) {
        self.counters.bump(c);
    }

    /// Adds `n` to counter `c`.
    pub(crate) fn count_n(&self, c: Counter, n: u64) {
        self.counters.add(c, n);
    }

    /// Raises counter `c` to `n` if it is lower.
    pub(crate) fn count_max(&self, c: Counter, n: u64) {
        self.counters.max(c, n);
    }

    /// Limits applied to bodies.
    pub(crate) fn limits(&self) -> &body::BodyLimits {
        &self.config.limits
    }

    pub(crate) fn counted<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.counters.bump(Counter::Errors);
            if let Some(c) = refusal_counter(e) {
                self.counters.bump(c);
            }
        }
        r
    }

    fn context<'m>(&self, msg: &'m SipMessage<'m>, mode: Mode) -> Result<MessageCtx<'m>> {
        Ok(MessageCtx {
            msg,
            keys: OnceCell::new(),
            mode,
            dialogs: None,
            budget: RsaBudget::new(self.config.max_rsa_ops),
            last_cek: None,
        })
    }

    /// The message's keys (`MessageCtx::keys`), [`Proxy::keys`] the first time.
    fn keys_for<'c>(&self, keys: &'c OnceCell<Arc<KeyStore>>) -> &'c KeyStore {
        keys.get_or_init(|| self.keys())
    }

    fn decide(&self, ctx: &mut MessageCtx<'_>, look: Look) -> Result<Decision> {
        let msg = ctx.msg;
        let content_type = std::str::from_utf8(msg.content_type)
            .map_err(|_| BodyError::HeaderNotUtf8("Content-Type"))?;
        if content_type.trim().is_empty() || msg.body.is_empty() {
            return Ok(Decision::NotEncrypted);
        }
        let te = std::str::from_utf8(msg.transfer_encoding)
            .map_err(|_| BodyError::HeaderNotUtf8("Content-Transfer-Encoding"))?
            .trim();
        let te = (!te.is_empty()).then_some(te);
        let parts = body::encrypted_parts(content_type, te, msg.body, &self.config.limits)?;
        if parts.is_empty() {
            return Ok(Decision::NotEncrypted);
        }
        let mut parsed = Parts::with_capacity(parts.len());
        for mut part in parts {
            // the part's own copy of the DER: an in-dialog body is decrypted in it
            let cms = CmsMessage::parse_owned(std::mem::take(&mut part.der))?;
            // counted and matched where they lie: nothing is described or copied out
            let seen = cms.recipients_seen(self.keys_for(&ctx.keys))?;
            if seen.count > self.config.max_recipients {
                return Err(Error::TooManyRecipients {
                    count: seen.count,
                    limit: self.config.max_recipients,
                });
            }
            let ours = cms.kind() != CmsKind::EncryptedData && seen.ours;
            parsed.push(Selected {
                part,
                cms,
                required: false,
                ours,
                rotation_proof: seen.rotation_proof,
            });
        }
        let header = std::str::from_utf8(msg.disclose_to)
            .map_err(|_| DiscloseError::NotUtf8)?
            .trim();
        let request = match (ctx.mode, header.is_empty()) {
            (Mode::Implicit, _) | (_, true) => None,
            (_, false) => Some(DisclosureRequest::parse(header)?),
        };
        let explicit = match (&request, ctx.mode) {
            (Some(req), _) => Some(req.selection_for(self.keys_for(&ctx.keys).identities())),
            (None, Mode::Explicit) => Some(Selection::NotNamed),
            (None, _) => None,
        };
        let selected = match explicit {
            Some(Selection::NotNamed) => return Ok(Decision::NotForMe),
            Some(Selection::AllParts) => {
                for s in &mut parsed {
                    s.required = true;
                    self.admit(ctx, s, look)?;
                }
                parsed
            }
            Some(Selection::Parts(cids)) => {
                let mut selected = Parts::with_capacity(cids.len());
                for cid in cids {
                    let pos = parsed
                        .iter()
                        .position(|s| s.part.has_content_id(&cid))
                        .ok_or_else(|| Error::ContentIdNotFound(cid.clone()))?;
                    let mut s = parsed.swap_remove(pos);
                    s.required = true;
                    self.admit(ctx, &s, look)?;
                    selected.push(s);
                }
                selected.sort_by_key(|s| s.part.range.start);
                selected
            }
            None => {
                // the parts admitted, in body order, in the same vector; the first error wins
                let mut failed = None;
                parsed.retain(|s| {
                    failed.is_none()
                        && self.admit(ctx, s, look).unwrap_or_else(|e| {
                            failed = Some(e);
                            false
                        })
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                parsed
            }
        };
        Ok(if selected.is_empty() {
            Decision::NotForMe
        } else {
            Decision::Decrypt(selected)
        })
    }

    /// Whether the proxy can open the part: a RecipientInfo names one of its keys, or the part
    /// opens only with the dialog's key (EncryptedData, or a rotation proof) and the key is
    /// cached — looked up now, or left to the opening under its lock (`Look::AtOpen`). A
    /// required part that cannot be opened is an error naming why.
    fn admit(&self, ctx: &mut MessageCtx<'_>, s: &Selected, look: Look) -> Result<bool> {
        let encrypted = s.kind() == CmsKind::EncryptedData;
        let by_dialog = encrypted || (!s.ours && s.rotation_proof);
        let refuse = |required: bool| -> Result<bool> {
            match (required, encrypted) {
                (false, _) => Ok(false),
                (true, true) => Err(Error::NoDialogKey),
                (true, false) => Err(Error::Cms(CmsError::NotRecipient)),
            }
        };
        if s.ours {
            return Ok(true);
        }
        if !by_dialog {
            return refuse(s.required);
        }
        if look == Look::Now && self.cache.contains(ctx.dialogs()?)?.is_none() {
            return refuse(s.required);
        }
        Ok(true)
    }

    /// Opens one selected part; `None` when it turns out not to be for this proxy (a part
    /// only the dialog's key opens, for a dialog with no cached key, not asked for).
    fn open_part(
        &self,
        ctx: &mut MessageCtx<'_>,
        selected: Selected,
    ) -> Result<Option<DisclosedPart>> {
        let kind = selected.kind();
        let opened = match kind {
            CmsKind::EncryptedData => self.open_in_dialog(ctx, selected.cms)?,
            _ => self.open_enveloped(ctx, &selected)?,
        };
        let Some(opening) = opened else {
            return match (selected.required, kind) {
                (false, _) => Ok(None),
                (true, CmsKind::EncryptedData) => Err(Error::NoDialogKey),
                (true, _) => Err(Error::Cms(CmsError::NotRecipient)),
            };
        };
        let inner = signature::read_inner_owned(
            opening.plaintext,
            self.keys_for(&ctx.keys).trusted_signers(),
            self.config.signatures,
        );
        if let Some(c) = signature_counter(&inner) {
            self.counters.bump(c);
        }
        let inner = inner?;
        Ok(Some(DisclosedPart {
            kind,
            content_id: selected.part.content_id,
            content_type: inner.content_type,
            body: inner.body,
            key_source: opening.key_source,
            key_label: opening.key_label,
            generation: opening.generation,
            signature: inner.signature,
        }))
    }

    /// EncryptedData: only the cached key opens it, and only a body it authenticated counts
    /// as a use of it. Unauthenticated (CBC) content is refused before any decryption unless
    /// the operator allows it (`allow_cbc_in_dialog`): good and bad padding must not answer
    /// differently.
    fn open_in_dialog(&self, ctx: &mut MessageCtx<'_>, cms: CmsMessage) -> Result<Option<Opening>> {
        let refuse_cbc = !cms.is_authenticated()? && !self.config.allow_cbc_in_dialog;
        // the body last counted for the dialog, seen again, is not another use
        let used = cms.content_tag().map_or(Verdict::Used, Verdict::Opened);
        let dialogs = ctx.dialogs()?;
        let outcome = self.cache.with_entry(dialogs, OnMiss::Count, |found| {
            let e = found.entry;
            if refuse_cbc {
                return (Verdict::Keep, Err(Error::UnauthenticatedInDialog));
            }
            let opened = self
                .check_rotation_policy(&e)
                .and_then(|()| cek_of(&e))
                .and_then(|cek| Ok(cms.into_plaintext(&cek)?));
            // a key used again after a while is sent again: the other nodes keep its TTL
            let refresh = self
                .cluster
                .as_ref()
                .is_some_and(|c| c.refresh_due(e.last_used, now_secs()));
            match opened {
                Ok(plain) => (
                    used,
                    Ok((
                        Opening::from_dialog(plain, &e),
                        refresh.then(|| dialogs.id(found.which)).flatten(),
                    )),
                ),
                Err(err) => (Verdict::Keep, Err(err)),
            }
        })?;
        let Some((opening, refresh)) = outcome.transpose()? else {
            return Ok(None);
        };
        if let Some(dialog) = refresh {
            self.note(Change::Key(dialog));
        }
        Ok(Some(opening))
    }

    /// (Auth)EnvelopedData. For a dialog with a cached key: the same key again (proven by
    /// authenticated decryption), or a rotation proven by the current key; anything else
    /// changes nothing and is refused. For a dialog with none: our own RecipientInfo, within
    /// the message's RSA budget, and the key is inserted (never over another).
    fn open_enveloped(
        &self,
        ctx: &mut MessageCtx<'_>,
        selected: &Selected,
    ) -> Result<Option<Opening>> {
        let cms = &selected.cms;
        let authenticated = cms.is_authenticated()?;
        let in_dialog = ctx.msg.in_dialog();
        let allow_cbc = self.config.allow_cbc_in_dialog;
        let dialogs = ctx.dialogs()?.clone();
        let known = self
            .cache
            .with_entry(&dialogs, OnMiss::Ignore, |found| {
                let e = found.entry;
                let current = match cek_of(&e) {
                    Ok(c) => c,
                    Err(err) => return (Verdict::Keep, Err(err)),
                };
                if !authenticated && !allow_cbc {
                    return (Verdict::Keep, Err(Error::UnauthenticatedInDialog));
                }
                if authenticated {
                    // A body under the cached key proves its sender holds it. Not counted as a
                    // use: a replayed offer must not wear the key out.
                    if let Ok(plain) = cms.open_with_cek(&current) {
                        let plain = cms::Plaintext::whole(plain);
                        return (
                            Verdict::Keep,
                            Ok(Known::Same(Opening::from_dialog(plain, &e))),
                        );
                    }
                }
                if !cms.has_rotation_proof() {
                    return match (authenticated, in_dialog) {
                        (false, _) => (Verdict::Keep, Ok(Known::NeedUnwrap)),
                        (true, true) => (Verdict::Keep, Err(Error::RotationUnproven)),
                        (true, false) => (Verdict::Keep, Err(Error::InitialCollision)),
                    };
                }
                if !in_dialog {
                    return (Verdict::Keep, Err(Error::InitialCollision));
                }
                match cms.open_rotation(&current) {
                    Ok(opened) => {
                        let verdict = Verdict::Replace {
                            alg: key_tag(opened.cek.alg(), false),
                            cek: Zeroizing::new(opened.cek.as_bytes().to_vec()),
                        };
                        let generation = e.generation.saturating_add(1);
                        (verdict, Ok(Known::Rotated(opened, generation, found.which)))
                    }
                    Err(_) => (Verdict::Keep, Err(Error::RotationUnproven)),
                }
            })?
            .transpose()?;
        match known {
            Some(Known::Same(opening)) => Ok(Some(opening)),
            Some(Known::Rotated(opened, generation, which)) => {
                if let Some(dialog) = dialogs.id(which) {
                    self.note(Change::Key(dialog));
                }
                ctx.last_cek = Some(opened.cek.clone());
                Ok(Some(Opening::unwrapped(opened, generation)))
            }
            // Only the dialog's key could open it, and the dialog has none here.
            None if !selected.ours => Ok(None),
            Some(Known::NeedUnwrap) | None => {
                let opened = self.open_with_own_key(ctx, cms)?;
                let dialog = dialogs.from;
                let alg = opened.cek.alg();
                let mut stored =
                    self.cache
                        .insert(&dialog, key_tag(alg, false), opened.cek.as_bytes())?;
                if matches!(stored, Stored::Refused { .. }) && self.cluster.is_some() {
                    // the same key may be cached as another node replicated it
                    stored =
                        self.cache
                            .insert(&dialog, key_tag(alg, true), opened.cek.as_bytes())?;
                }
                let generation = match stored {
                    Stored::New { generation } => {
                        self.note(Change::Key(dialog));
                        generation
                    }
                    Stored::Same { generation } => generation,
                    Stored::Refused { .. } if in_dialog => return Err(Error::RotationUnproven),
                    Stored::Refused { .. } => return Err(Error::InitialCollision),
                };
                ctx.last_cek = Some(opened.cek.clone());
                Ok(Some(Opening::unwrapped(opened, generation)))
            }
        }
    }

    /// Opens with one of our keys; the key that opened an earlier part of the same message is
    /// tried first (authenticated content only), so a multipart body costs one unwrap.
    fn open_with_own_key(&self, ctx: &mut MessageCtx<'_>, cms: &CmsMessage) -> Result<cms::Opened> {
        if let Some(cek) = &ctx.last_cek {
            if cms.is_authenticated()? {
                if let Ok(plaintext) = cms.open_with_cek(cek) {
                    return Ok(cms::Opened {
                        kind: cms.kind(),
                        cek: cek.clone(),
                        plaintext,
                        key_label: "dialog".into(),
                    });
                }
            }
        }
        Ok(cms.open(self.keys_for(&ctx.keys), &mut ctx.budget)?)
    }

    fn check_rotation_policy(&self, e: &Entry<'_>) -> Result<()> {
        let policy = self.config.rotation;
        let too_old = policy.max_age_secs > 0
            && now_secs().saturating_sub(e.created_at) > policy.max_age_secs;
        let too_used = policy.max_uses > 0 && e.uses >= policy.max_uses;
        if too_old || too_used {
            return Err(Error::KeyExpired);
        }
        Ok(())
    }
}

/// Every dialog id of `msg` ([`MessageDialogs`]), worked out at once.
pub(crate) fn dialog_ids(msg: &SipMessage<'_>) -> Result<Vec<DialogKey>> {
    Ok(MessageDialogs::of(msg)?.all())
}

/// The cached key as a [`Cek`] (stored locally or replicated: `cluster::key_tag`).
pub(crate) fn cek_of(e: &Entry<'_>) -> Result<Cek> {
    let (alg, _) = key_of_tag(e.alg).ok_or(Error::NoDialogKey)?;
    Ok(Cek::from_bytes(alg, e.cek)?)
}

/// The counter a part's signature check adds to: valid, or failed (also when refused).
fn signature_counter(inner: &Result<signature::Inner>) -> Option<Counter> {
    match inner {
        Ok(i) => match &i.signature {
            None => None,
            Some(SignatureCheck::Valid { .. }) => Some(Counter::SignaturesValid),
            Some(_) => Some(Counter::SignaturesFailed),
        },
        Err(Error::SignatureInvalid(_) | Error::SignerUnknown | Error::Unsigned) => {
            Some(Counter::SignaturesFailed)
        }
        Err(_) => None,
    }
}

/// The counter that says why a message was refused, beyond `errors`.
fn refusal_counter(e: &Error) -> Option<Counter> {
    Some(match e {
        Error::RotationUnproven => Counter::RotationsRefused,
        Error::InitialCollision => Counter::InitialCollisions,
        Error::UnauthenticatedInDialog => Counter::CbcRefused,
        Error::Cms(CmsError::RsaBudgetExhausted) => Counter::RsaBudgetExhausted,
        _ => return None,
    })
}
