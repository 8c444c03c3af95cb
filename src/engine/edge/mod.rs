//! What sipsd does at the edge of user agents that know nothing of S/MIME (an enterprise
//! gateway, as for S/MIME mail): the bodies they send are sealed, the bodies they receive are
//! opened (docs/PROTOCOL.md §10).
//!
//! - **Sealing** ([`Edge::seal`]). An initial request's body gets a fresh key wrapped for the
//!   callee (its certificate from `callee_cert_dir`, by address of record) and the trusted
//!   proxies (`proxy_cert`, `proxy_psk`): AuthEnvelopedData. Every later body of the dialog is
//!   EncryptedData under the dialog key (answers included: claim 4), with a synthetic IV so
//!   that a body sealed twice (a re-sent reply) is byte for byte the same. The caller's edge
//!   rotates the key after `rotate_after` seconds or `rotate_max_uses` uses: its next request
//!   body carries a new key with the proof ([`UaSession::rotate`]). With a `sign_key` for the
//!   sender, the body is signed first (SignedData inside the envelope, RFC 8551).
//! - **Opening** ([`Edge::open`]): what the proxy does, for the local users' keys and whatever
//!   `Disclose-To` says: a new dialog's key is cached, EncryptedData opens with it, a rotation
//!   needs the proof, a signature is checked.
//!
//! The dialog key lives in the shared cache of the proxy part, under the same rules
//! (docs/PROTOCOL.md §6): it is stored only for a dialog that has none
//! ([`crate::engine::cache::SharedCache::insert`]); it is used, and replaced by the edge's
//! own rotation, only under one lock ([`crate::engine::cache::SharedCache::with_entry`]),
//! where only symmetric cryptography runs: signing and RSA key transport happen before the
//! lock is taken, and a rotation prepared outside it is applied only if the key is still the
//! one it was made from.
//!
//! Rotations are started by the caller's side only (the edge whose user sent the
//! dialog-creating request), and only in requests: two edges rotating at once would each
//! refuse the other's new key, and a reply is re-sent by its user agent and sealed again at
//! every pass, which a rotation (random key, RSA padding) could not repeat identically.

mod config;
mod peers;

use zeroize::Zeroizing;

pub use config::{EdgeConfig, Unsealable};

use crate::crypto::cms::{Cek, CmsKind, ContentAlg, Recipient};
use crate::engine::cache::{OnMiss, Stored, Verdict};
use crate::engine::proxy::{cek_of, dialog_ids, Counter, Mode, Proxy, Unwrapped};
use crate::engine::signature::sign_entity;
use crate::engine::ua::UaSession;
use crate::engine::{Error, Result};
use crate::sip::body::{BodyError, BodyOptions, ContentType, SipBody};
use crate::sip::disclose::DisclosureRequest;
use crate::sip::SipMessage;

/// The algorithm of every key an edge makes.
pub const EDGE_CONTENT_ALG: ContentAlg = ContentAlg::Aes256Gcm;

/// What `Content-Disposition` a sealed SDP gets (docs/PROTOCOL.md §2.1).
pub const SDP_DISPOSITION: &str = "session; handling=required";

/// Who a message is between, as the SIP server read it from the headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parties<'a> {
    /// The local user sending it (`user@domain`): the From of a request, the To of a reply.
    /// Chooses the signing key.
    pub local: &'a str,
    /// The other party (`user@domain`): the To of a request, the From of a reply. Chooses the
    /// certificate a new key is wrapped for.
    pub peer: &'a str,
    /// The CSeq number: with the dialog, method and status it tells two messages apart
    /// (and a retransmission from neither).
    pub cseq: &'a str,
}

/// How a body was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealing {
    /// A new dialog: a fresh key wrapped for the callee and the proxies.
    Offer,
    /// A dialog-creating request again (re-sent, forked): the dialog's key wrapped again.
    Reoffer,
    /// EncryptedData under the dialog key.
    InDialog,
    /// A new key for the dialog, wrapped for the callee and the proxies, with the proof.
    Rotation,
}

impl Sealing {
    /// `offer`, `reoffer`, `in-dialog` or `rotation`.
    pub fn name(self) -> &'static str {
        match self {
            Sealing::Offer => "offer",
            Sealing::Reoffer => "reoffer",
            Sealing::InDialog => "in-dialog",
            Sealing::Rotation => "rotation",
        }
    }
}

/// A sealed body and the headers that go with it.
#[derive(Debug)]
pub struct Sealed {
    /// The body, its Content-Type and Content-Transfer-Encoding.
    pub body: SipBody,
    /// The CMS structure.
    pub kind: CmsKind,
    /// See [`Sealing`].
    pub sealing: Sealing,
    /// The dialog key's generation the body is under.
    pub generation: u32,
    /// Who signed it ([`signed::SignerKey::name`]), if signed.
    pub signer: Option<String>,
    /// The `Content-Disposition` to send, if any (the old one described the plain body).
    pub disposition: Option<&'static str>,
    /// The `Disclose-To` header to send, if the edge names proxies.
    pub disclose_to: Option<String>,
}

/// What [`Edge::seal`] did.
#[derive(Debug)]
pub enum SealOutcome {
    /// The body is sealed: replace it.
    Sealed(Sealed),
    /// Nothing to seal: no body, or a body that is S/MIME already.
    Nothing,
    /// Not sealable (no certificate for the callee, no dialog key), and `unsealable=clear`
    /// lets it go in clear.
    Clear,
}

/// An edge: its options; keys, certificates and the dialog key cache are the proxy part's.
pub struct Edge {
    config: EdgeConfig,
    disclose: Option<DisclosureRequest>,
    opts: BodyOptions,
}

/// What the lock found about the dialog, for the work done outside it.
enum Step {
    /// Sealed under the dialog key (the generation).
    Done(SipBody, u32),
    /// A dialog-creating request for a dialog whose key is cached: wrap that key again.
    Reoffer(UaSession),
    /// The key is due for rotation (the caller's side): make the rotation outside the lock.
    Rotate(UaSession),
    /// No key for the dialog.
    Missing,
}

impl Edge {
    /// An edge with `config` (checked: the certificate directory exists, `disclose_to` parses).
    pub fn new(config: EdgeConfig) -> Result<Edge> {
        if let Some(dir) = &config.callee_cert_dir {
            if !dir.is_dir() {
                return Err(Error::Config(format!(
                    "callee_cert_dir: {} is not a directory",
                    dir.display()
                )));
            }
        }
        let disclose = match config.disclose_to.is_empty() {
            true => None,
            false => Some(DisclosureRequest::parse(&config.disclose_to.join(", "))?),
        };
        let opts = BodyOptions {
            inner_mime: true,
            base64: config.base64,
            content_id: None,
        };
        Ok(Edge {
            config,
            disclose,
            opts,
        })
    }

    /// Seals the body of `msg`, a request or reply a local user agent sends (module doc).
    /// The message is not changed here: the caller replaces body and headers with the result.
    pub fn seal(
        &self,
        proxy: &Proxy,
        msg: &SipMessage<'_>,
        parties: &Parties<'_>,
    ) -> Result<SealOutcome> {
        let result = self.seal_in(proxy, msg, parties);
        match &result {
            Ok(SealOutcome::Sealed(s)) => {
                proxy.count(match s.sealing {
                    Sealing::Offer | Sealing::Reoffer => Counter::EdgeOffersSealed,
                    Sealing::InDialog => Counter::EdgeInDialogSealed,
                    Sealing::Rotation => Counter::EdgeRotations,
                });
                if s.signer.is_some() {
                    proxy.count(Counter::EdgeSigned);
                }
            }
            Ok(SealOutcome::Clear) => proxy.count(Counter::EdgeSentClear),
            Ok(SealOutcome::Nothing) => {}
            Err(Error::NoPeerCertificate(_) | Error::NoDialogKey) => {
                proxy.count(Counter::EdgeUnsealableRefused)
            }
            Err(_) => {}
        }
        proxy.counted(result)
    }

    /// Opens the body of `msg` for a local user: [`Proxy::unwrap`] with the local users' keys,
    /// whatever `Disclose-To` names (it names proxies, not users).
    pub fn open(&self, proxy: &Proxy, msg: &SipMessage<'_>) -> Result<Unwrapped> {
        let result = proxy.unwrap_as(msg, Mode::Implicit);
        if let Ok(Unwrapped::Disclosed(_)) = &result {
            proxy.count(Counter::EdgeOpened);
        }
        result
    }

    fn seal_in(
        &self,
        proxy: &Proxy,
        msg: &SipMessage<'_>,
        parties: &Parties<'_>,
    ) -> Result<SealOutcome> {
        if msg.body.is_empty() {
            return Ok(SealOutcome::Nothing);
        }
        let content_type = std::str::from_utf8(msg.content_type)
            .map_err(|_| BodyError::HeaderNotUtf8("Content-Type"))?
            .trim();
        if content_type.is_empty() {
            return Err(Error::InvalidMessage("a body without Content-Type"));
        }
        let ct = ContentType::parse(content_type)?;
        if ct.is_pkcs7_mime() {
            return Ok(SealOutcome::Nothing);
        }
        let limit = proxy.limits().max_body;
        if msg.body.len() > limit {
            return Err(Error::Body(BodyError::TooLarge {
                size: msg.body.len(),
                limit,
            }));
        }
        let dialogs = dialog_ids(msg)?;
        let keys = proxy.keys();
        // Signing is an RSA private-key operation: before any lock.
        let signer = keys.signer_for(parties.local);
        let signed = signer
            .map(|k| sign_entity(content_type, msg.body, k))
            .transpose()?;
        let (inner_type, inner): (&str, &[u8]) = match &signed {
            Some((ct, body)) => (ct, body),
            None => (content_type, msg.body),
        };
        let sealed = |body: SipBody, sealing: Sealing, generation: u32| {
            let kind = match sealing {
                Sealing::InDialog => CmsKind::EncryptedData,
                _ => CmsKind::AuthEnvelopedData,
            };
            SealOutcome::Sealed(Sealed {
                body,
                kind,
                sealing,
                generation,
                signer: signer.map(|k| k.name().to_string()),
                disposition: (ct.media == "application/sdp").then_some(SDP_DISPOSITION),
                disclose_to: self
                    .disclose
                    .as_ref()
                    .map(DisclosureRequest::to_header_value),
            })
        };
        let context = synthetic_context(msg, parties.cseq);
        let initial = msg.status == 0 && msg.to_tag.is_empty();
        // Two rounds at most: a new dialog's key that another process stored first (a
        // retransmission handled in parallel) is found under the lock the second time.
        for _ in 0..2 {
            let step = proxy
                .cache()
                .with_entry(&dialogs, OnMiss::Ignore, |found| {
                    let e = found.entry;
                    let session = match cek_of(&e) {
                        Ok(cek) => UaSession::resume(
                            cek,
                            e.generation,
                            e.created_at,
                            e.uses,
                            self.config.rotation,
                        ),
                        Err(err) => return (Verdict::Keep, Err(err)),
                    };
                    if initial {
                        return (Verdict::Keep, Ok(Step::Reoffer(session)));
                    }
                    // found.which == 0: the sender's From tag is the dialog's caller tag.
                    if msg.status == 0 && found.which == 0 && session.rotation_due() {
                        return (Verdict::Keep, Ok(Step::Rotate(session)));
                    }
                    let mut session = session;
                    match session.encrypt_synthetic(inner_type, inner, &context, &self.opts) {
                        Ok(body) => (Verdict::Used, Ok(Step::Done(body, e.generation))),
                        Err(err) => (Verdict::Keep, Err(err)),
                    }
                })?
                .transpose()?
                .unwrap_or(Step::Missing);
            match step {
                Step::Done(body, generation) => {
                    return Ok(sealed(body, Sealing::InDialog, generation))
                }
                Step::Reoffer(session) => {
                    let Some(recipients) = self.recipients(&keys, parties.peer, true)? else {
                        return self.unsealable(Error::NoPeerCertificate(parties.peer.into()));
                    };
                    let body = session.reoffer(inner_type, inner, &recipients, None, &self.opts)?;
                    return Ok(sealed(body, Sealing::Reoffer, session.generation()));
                }
                Step::Rotate(session) => {
                    let rotated = self.rotate(
                        proxy, &keys, &dialogs, session, parties, inner_type, inner, &context,
                    )?;
                    return match rotated {
                        Some((body, sealing, generation)) => Ok(sealed(body, sealing, generation)),
                        None => self.unsealable(Error::NoDialogKey),
                    };
                }
                Step::Missing if !initial => return self.unsealable(Error::NoDialogKey),
                Step::Missing => {
                    let Some(recipients) = self.recipients(&keys, parties.peer, true)? else {
                        return self.unsealable(Error::NoPeerCertificate(parties.peer.into()));
                    };
                    let (session, body) = UaSession::offer(
                        inner_type,
                        inner,
                        &recipients,
                        EDGE_CONTENT_ALG,
                        None,
                        &self.opts,
                    )?;
                    let cek = session.cek();
                    match proxy
                        .cache()
                        .insert(&dialogs[0], cek.alg().code(), cek.as_bytes())?
                    {
                        Stored::New { generation } | Stored::Same { generation } => {
                            return Ok(sealed(body, Sealing::Offer, generation))
                        }
                        Stored::Refused { .. } => continue,
                    }
                }
            }
        }
        Err(Error::InitialCollision)
    }

    /// Makes a rotation of `session`'s key outside the lock, then applies it under the lock if
    /// the dialog's key is still the one it was made from; if another process changed the key
    /// meanwhile, the body is sealed under the key now cached instead. `None`: the dialog's
    /// key is gone (the dialog ended meanwhile).
    #[allow(clippy::too_many_arguments)]
    fn rotate(
        &self,
        proxy: &Proxy,
        keys: &crate::crypto::keys::KeyStore,
        dialogs: &[crate::engine::cache::DialogKey],
        mut session: UaSession,
        parties: &Parties<'_>,
        inner_type: &str,
        inner: &[u8],
        context: &[u8],
    ) -> Result<Option<(SipBody, Sealing, u32)>> {
        let recipients = self
            .recipients(keys, parties.peer, false)?
            .unwrap_or_default();
        let (old, old_generation) = (session.cek().clone(), session.generation());
        let body = session.rotate(inner_type, inner, &recipients, &self.opts)?;
        let new: Cek = session.cek().clone();
        let outcome = proxy
            .cache()
            .with_entry(dialogs, OnMiss::Ignore, |found| {
                let e = found.entry;
                if e.cek == old.as_bytes() && e.generation == old_generation {
                    let verdict = Verdict::Replace {
                        alg: new.alg().code(),
                        cek: Zeroizing::new(new.as_bytes().to_vec()),
                    };
                    return (verdict, Ok(None));
                }
                let mut current = match cek_of(&e) {
                    Ok(cek) => UaSession::with_key(cek, e.generation),
                    Err(err) => return (Verdict::Keep, Err(err)),
                };
                match current.encrypt_synthetic(inner_type, inner, context, &self.opts) {
                    Ok(b) => (Verdict::Used, Ok(Some((b, e.generation)))),
                    Err(err) => (Verdict::Keep, Err(err)),
                }
            })?
            .transpose()?;
        Ok(outcome.map(|o| match o {
            None => (body, Sealing::Rotation, session.generation()),
            Some((b, generation)) => (b, Sealing::InDialog, generation),
        }))
    }

    /// The peer's certificate (required for a new key: `None` when there is none) and the
    /// proxies every new key is wrapped for.
    fn recipients(
        &self,
        keys: &crate::crypto::keys::KeyStore,
        peer: &str,
        peer_required: bool,
    ) -> Result<Option<Vec<Recipient>>> {
        let mut out = Vec::with_capacity(keys.recipients().len() + 1);
        match peers::certificate(self.config.callee_cert_dir.as_deref(), peer)? {
            Some(cert) => out.push(cert),
            None if peer_required => return Ok(None),
            None => {}
        }
        out.extend(keys.recipients().iter().cloned());
        Ok(Some(out))
    }

    /// A body that cannot be sealed: refused (`err`), or in clear when the operator allows it.
    fn unsealable(&self, err: Error) -> Result<SealOutcome> {
        match self.config.unsealable {
            Unsealable::Reject => Err(err),
            Unsealable::Clear => Ok(SealOutcome::Clear),
        }
    }
}

/// What tells two messages of a dialog apart for the synthetic IV: every field
/// length-prefixed (Call-ID, From tag, To tag, CSeq number, method, status).
fn synthetic_context(msg: &SipMessage<'_>, cseq: &str) -> Vec<u8> {
    let status = msg.status.to_string();
    let fields: [&[u8]; 6] = [
        msg.call_id,
        msg.from_tag,
        msg.to_tag,
        cseq.trim().as_bytes(),
        msg.method,
        status.as_bytes(),
    ];
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
    for f in fields {
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}
