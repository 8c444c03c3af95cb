//! Opening: recover the content-encryption key with one of our keys, then decrypt.

use zeroize::Zeroizing;

use super::content::{self, ContentParams};
use super::error::CmsError;
use super::lookup::{KeyLookup, RecipientKey};
use super::message::{CmsMessage, InPlace, Message};
use super::profile;
use super::recipient::UnwrapKind;
use super::{Cek, CmsKind};

/// The RSA private-key operations one message may cost (docs/SECURITY.md, "RSA work").
///
/// Anyone can send a body with many KeyTransRecipientInfos naming the proxy's certificate;
/// each would cost an RSA-2048 decryption. The budget is shared by every part of a message:
/// each of our keys is tried at most once per message (further RecipientInfos naming the same
/// key, or repeating an encryptedKey already tried, are skipped), and at most `max_ops`
/// operations are spent in all.
#[derive(Debug)]
pub struct RsaBudget {
    max_ops: u32,
    spent: u32,
    /// Labels of the RSA keys already tried on this message.
    tried_keys: Vec<String>,
}

impl RsaBudget {
    /// A budget of `max_ops` RSA private-key operations.
    pub fn new(max_ops: u32) -> RsaBudget {
        RsaBudget {
            max_ops,
            spent: 0,
            tried_keys: Vec::new(),
        }
    }

    /// No limit (a user agent opening what it was sent; tools).
    pub fn unlimited() -> RsaBudget {
        RsaBudget::new(u32::MAX)
    }

    /// RSA private-key operations spent so far.
    pub fn spent(&self) -> u32 {
        self.spent
    }

    /// Takes one operation for the key `label`, unless the key was tried already (`Ok(false)`:
    /// skip it) or the budget is used up (`Err`).
    fn take(&mut self, label: &str) -> Result<bool, CmsError> {
        if self.tried_keys.iter().any(|l| l == label) {
            return Ok(false);
        }
        if self.spent >= self.max_ops {
            return Err(CmsError::RsaBudgetExhausted);
        }
        self.spent += 1;
        self.tried_keys.push(label.to_owned());
        Ok(true)
    }
}

/// A decrypted content in the buffer it was decrypted in: the plaintext is `buf[range]`; the
/// whole buffer is zeroized on drop. `Debug` shows the plaintext's length only.
pub struct Plaintext {
    /// The buffer (for a message read in place: its DER, the content decrypted in it).
    pub buf: Zeroizing<Vec<u8>>,
    /// Where the plaintext sits in `buf`.
    pub range: std::ops::Range<usize>,
}

impl Plaintext {
    /// A plaintext that is its whole buffer.
    pub fn whole(buf: Zeroizing<Vec<u8>>) -> Plaintext {
        let range = 0..buf.len();
        Plaintext { buf, range }
    }

    /// The plaintext.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.range.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plaintext")
            .field("len", &self.range.len())
            .finish_non_exhaustive()
    }
}

/// An opened message. `Debug` shows the plaintext's length only.
pub struct Opened {
    /// The structure it was.
    pub kind: CmsKind,
    /// Its content-encryption key (to cache for the dialog).
    pub cek: Cek,
    /// The decrypted content.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Label of our key that opened it.
    pub key_label: String,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("kind", &self.kind)
            .field("cek", &self.cek)
            .field("plaintext_len", &self.plaintext.len())
            .field("key_label", &self.key_label)
            .finish()
    }
}

/// Checks that the algorithm suits the structure: GCM only in AuthEnvelopedData (RFC 5084
/// §3), AuthEnvelopedData only with an authenticated algorithm (RFC 5083 §2).
fn check_kind(kind: CmsKind, params: &ContentParams) -> Result<(), CmsError> {
    let aead = params.alg().is_aead();
    match kind {
        CmsKind::EnvelopedData if aead => Err(CmsError::BadAlgParams(
            "AES-GCM needs AuthEnvelopedData, not EnvelopedData",
        )),
        CmsKind::AuthEnvelopedData if !aead => Err(CmsError::BadAlgParams(
            "AuthEnvelopedData needs an authenticated content-encryption algorithm",
        )),
        _ => Ok(()),
    }
}

/// Decrypts the message's content with `cek` (parameters already checked).
pub(crate) fn decrypt_content(
    msg: &Message,
    params: &ContentParams,
    cek: &Cek,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let ct = msg.ciphertext()?;
    match msg.kind() {
        CmsKind::EncryptedData => decrypt_encrypted_data(params, ct, cek),
        _ => content::decrypt(cek, params, ct, msg.mac(), &msg.aad()?),
    }
}

/// EncryptedData's content under `cek`: sipsd's GCM profile appends the tag to the ciphertext.
fn decrypt_encrypted_data(
    params: &ContentParams,
    content: &[u8],
    cek: &Cek,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    match params {
        ContentParams::Gcm { tag_len, .. } => {
            let (body, tag) = split_tag(content, *tag_len)?;
            content::decrypt(cek, params, body, Some(tag), &[])
        }
        ContentParams::Cbc { .. } => content::decrypt(cek, params, content, None, &[]),
    }
}

/// EncryptedData's GCM content: (ciphertext, tag).
fn split_tag(content: &[u8], tag_len: usize) -> Result<(&[u8], &[u8]), CmsError> {
    let body_len = content
        .len()
        .checked_sub(tag_len)
        .ok_or(CmsError::Decrypt)?;
    Ok(content.split_at(body_len))
}

/// Opens an EnvelopedData or AuthEnvelopedData with one of our keys (parse + [`CmsMessage::open`]
/// with no RSA limit: for user agents and tools).
pub fn open(der: &[u8], keys: &dyn KeyLookup) -> Result<Opened, CmsError> {
    CmsMessage::parse(der)?.open(keys, &mut RsaBudget::unlimited())
}

/// Decrypts with a given content-encryption key (parse + [`CmsMessage::open_with_cek`]).
/// sipsd's EncryptedData profile is decrypted straight from `der`: its content copied once,
/// into the buffer that becomes the plaintext.
pub fn open_with_cek(der: &[u8], cek: &Cek) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let Some(p) = profile::read(der) else {
        return CmsMessage::parse(der)?.open_with_cek(cek);
    };
    if p.auth.is_some() {
        return CmsMessage::profiled(der.to_vec(), p).open_with_cek(cek);
    }
    if p.params.alg() != cek.alg() {
        return Err(CmsError::CekAlgMismatch);
    }
    let content = der.get(p.content).ok_or(CmsError::Decrypt)?;
    decrypt_encrypted_data(&p.params, content, cek)
}

impl CmsMessage {
    /// Opens an EnvelopedData or AuthEnvelopedData with one of our keys: the RecipientInfos
    /// that name one of our keys are tried in DER order and the first that yields the
    /// plaintext wins; RSA key transport draws on `budget`. If none opens, the error of the
    /// first tried is returned.
    ///
    /// EncryptedData has no recipients: it gives [`CmsError::NotRecipient`] (it opens only
    /// with the dialog's key: [`open_with_cek`](Self::open_with_cek)).
    pub fn open(&self, keys: &dyn KeyLookup, budget: &mut RsaBudget) -> Result<Opened, CmsError> {
        let msg = &self.0;
        if msg.kind() == CmsKind::EncryptedData {
            return Err(CmsError::NotRecipient);
        }
        // every identifier is read (and a malformed one refused) before anything is tried;
        // the keys named are looked up again below rather than collected
        let mut named = 0usize;
        for ri in msg.recipients() {
            named += usize::from(ri.with_key_id(|id| keys.find_ref(id).is_some())?);
        }
        if named == 0 {
            return Err(CmsError::NotRecipient);
        }
        let params = self.content_params()?;
        let alg = params.alg();
        let mut first_err = None;
        for ri in msg.recipients() {
            let Some(key) = ri.with_key_id(|id| keys.find_ref(id))? else {
                continue;
            };
            let cek = match (ri.unwrap_kind(), &key) {
                (UnwrapKind::Ktri, RecipientKey::Rsa { key: rsa, label }) => {
                    if !budget.take(label)? {
                        continue;
                    }
                    ri.ktri_unwrap(rsa, alg)
                }
                (UnwrapKind::Kekri, RecipientKey::Psk { kek, .. }) => ri.kekri_unwrap(kek, alg),
                _ => continue,
            };
            let res = cek.and_then(|cek| decrypt_content(msg, params, &cek).map(|pt| (cek, pt)));
            match res {
                Ok((cek, plaintext)) => {
                    return Ok(Opened {
                        kind: msg.kind(),
                        cek,
                        plaintext,
                        key_label: key.label().to_owned(),
                    })
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(CmsError::NotRecipient))
    }

    /// Decrypts an EncryptedData — or the content of an EnvelopedData/AuthEnvelopedData,
    /// ignoring its recipients — with a given content-encryption key, e.g. the one cached for
    /// the dialog.
    ///
    /// A key for another algorithm than the message's is [`CmsError::CekAlgMismatch`].
    pub fn open_with_cek(&self, cek: &Cek) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        let msg = &self.0;
        let params = self.content_params()?;
        if params.alg() != cek.alg() {
            return Err(CmsError::CekAlgMismatch);
        }
        decrypt_content(msg, params, cek)
    }

    /// The GCM tag that authenticates the content (AuthEnvelopedData's `mac`, or the tag
    /// sipsd's EncryptedData profile appends to the ciphertext), zero-padded to 16 bytes;
    /// `None` for CBC or a malformed message. It tells one authenticated body from another
    /// without decrypting: the dialog cache counts a body it has opened just before (a
    /// retransmission, a replay) as one use.
    pub fn content_tag(&self) -> Option<[u8; 16]> {
        let tag = match self.content_params().ok()? {
            ContentParams::Cbc { .. } => return None,
            ContentParams::Gcm { tag_len, .. } if self.kind() == CmsKind::EncryptedData => {
                let ct = self.0.ciphertext().ok()?;
                ct.get(ct.len().checked_sub(*tag_len)?..)?
            }
            ContentParams::Gcm { .. } => self.0.mac()?,
        };
        let mut out = [0u8; 16];
        out.get_mut(..tag.len())?.copy_from_slice(tag);
        Some(out)
    }

    /// [`CmsMessage::open_with_cek`] consuming the message: a message read in place (sipsd's
    /// EncryptedData profile, the common AuthEnvelopedData) from [`CmsMessage::parse_owned`]'s
    /// buffer is decrypted where it lies, and that buffer
    /// is the result (zeroized on drop; `range` is where the plaintext sits in it). Other
    /// messages are decrypted as by `open_with_cek`.
    pub fn into_plaintext(self, cek: &Cek) -> Result<Plaintext, CmsError> {
        let params = self.content_params()?.clone();
        if params.alg() != cek.alg() {
            return Err(CmsError::CekAlgMismatch);
        }
        // AuthEnvelopedData read in place: its mac, and its authAttrs' DER (the AAD)
        let auth = match &*self.0 {
            Message::Profile(InPlace { auth: Some(a), .. }) => Some((a.mac.clone(), self.0.aad()?)),
            _ => None,
        };
        let p = match *self.0 {
            Message::Profile(p) => p,
            other => return decrypt_content(&other, &params, cek).map(Plaintext::whole),
        };
        let content = p.content;
        // from here on the buffer holds plaintext: zeroized on every way out
        let mut buf = Zeroizing::new(p.der);
        let len = match (&params, auth) {
            (ContentParams::Gcm { .. }, Some((mac, aad))) => {
                // the mac follows the content
                let (head, tail) = buf
                    .split_at_mut_checked(content.end)
                    .ok_or(CmsError::Decrypt)?;
                let body = head.get_mut(content.clone()).ok_or(CmsError::Decrypt)?;
                let tag = tail
                    .get(
                        mac.start
                            .checked_sub(content.end)
                            .ok_or(CmsError::Decrypt)?..,
                    )
                    .and_then(|t| t.get(..mac.len()))
                    .ok_or(CmsError::Decrypt)?;
                content::decrypt_in_place(cek, &params, body, Some(tag), &aad)?
            }
            (ContentParams::Gcm { tag_len, .. }, None) => {
                let whole = buf.get_mut(content.clone()).ok_or(CmsError::Decrypt)?;
                let body_len = whole.len().checked_sub(*tag_len).ok_or(CmsError::Decrypt)?;
                let (body, tag) = whole.split_at_mut(body_len);
                content::decrypt_in_place(cek, &params, body, Some(tag), &[])?
            }
            (ContentParams::Cbc { .. }, _) => {
                let whole = buf.get_mut(content.clone()).ok_or(CmsError::Decrypt)?;
                content::decrypt_in_place(cek, &params, whole, None, &[])?
            }
        };
        Ok(Plaintext {
            buf,
            range: content.start..content.start + len,
        })
    }

    /// Whether the content is authenticated (AES-GCM): a key that decrypts it is proven to
    /// be the sender's. CBC content is not: a receiver that answers differently to good and
    /// bad padding is a padding oracle (docs/SECURITY.md).
    pub fn is_authenticated(&self) -> Result<bool, CmsError> {
        Ok(self.content_params()?.alg().is_aead())
    }

    /// The content-encryption algorithm and its parameters, checked against the structure;
    /// decoded once per message (an error is worked out again if asked again).
    pub(crate) fn content_params(&self) -> Result<&ContentParams, CmsError> {
        if let Some(p) = self.1.get() {
            return Ok(p);
        }
        let msg = &self.0;
        let ci = msg
            .content_info()
            .ok_or_else(|| CmsError::Der("no EncryptedContentInfo".into()))?;
        let params = content::parse_params(&ci.content_enc_alg)?;
        check_kind(msg.kind(), &params)?;
        Ok(self.1.get_or_init(|| params))
    }
}
