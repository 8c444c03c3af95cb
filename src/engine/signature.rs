//! The optional signature inside a decrypted body (RFC 8551 sign-then-encrypt,
//! docs/PROTOCOL.md §9): when the plaintext is a `multipart/signed` entity, its detached
//! SignedData is checked against the trusted signer certificates, and the signed entity is
//! what the proxy or the edge reads. The [`SignaturePolicy`] says what a signature that fails,
//! or its absence, does. [`sign_entity`] makes such an entity.

use zeroize::Zeroizing;

use crate::crypto::cms::signed::{self, SignatureCheck, SignerKey, TrustedSigner};
use crate::crypto::cms::Plaintext;
use crate::engine::{Error, Result};
use crate::sip::body::signed::{multipart_signed, signed_parts};
use crate::sip::body::{self, mime_entity};

/// What a decrypted part's signature said: `None` when the part was not signed.
pub type Signature = Option<SignatureCheck>;

/// `none`, `valid`, `invalid` or `unknown` (`$sd(signature)`).
pub fn status(sig: &Signature) -> &'static str {
    sig.as_ref().map_or("none", SignatureCheck::status)
}

/// What a signature that fails, or a missing one, does (`signature_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignaturePolicy {
    /// A trusted signer's signature that does not verify is refused
    /// (`SD_ERR_SIGNATURE_INVALID`: the body was changed after signing); an unsigned body, or
    /// one signed by no trusted signer (which proves no more than unsigned), is read.
    #[default]
    Optional,
    /// Only a valid signature by a trusted signer is read: also an unsigned body
    /// (`SD_ERR_UNSIGNED`) and one by no trusted signer (`SD_ERR_SIGNER_UNKNOWN`) are refused.
    Required,
    /// Nothing is refused; the result only reports what the signature said.
    Report,
}

impl SignaturePolicy {
    /// The policy named `optional`, `required` or `report`.
    pub fn parse(value: &str) -> Option<SignaturePolicy> {
        match value.to_ascii_lowercase().as_str() {
            "optional" => Some(SignaturePolicy::Optional),
            "required" => Some(SignaturePolicy::Required),
            "report" => Some(SignaturePolicy::Report),
            _ => None,
        }
    }

    /// `Err` when this policy refuses a body whose signature says `sig`.
    fn apply(self, sig: &Signature) -> Result<()> {
        if self == SignaturePolicy::Report {
            return Ok(());
        }
        let required = self == SignaturePolicy::Required;
        match sig {
            Some(SignatureCheck::Valid { .. }) => Ok(()),
            Some(SignatureCheck::Invalid { reason, .. }) => Err(Error::SignatureInvalid(reason)),
            None if required => Err(Error::Unsigned),
            Some(SignatureCheck::UnknownSigner) if required => Err(Error::SignerUnknown),
            None | Some(SignatureCheck::UnknownSigner) => Ok(()),
        }
    }
}

/// A decrypted plaintext read through its optional signature.
pub struct Inner {
    /// Content type of the (signed) entity.
    pub content_type: String,
    /// Its body, inner MIME headers removed.
    pub body: Zeroizing<Vec<u8>>,
    /// What the signature said.
    pub signature: Signature,
}

/// Reads a decrypted plaintext (`body::parse_inner`); a `multipart/signed` entity is verified
/// against `trusted` and replaced by the entity it signed, once (a signature inside a
/// signature is refused). `policy` decides what a failed or missing signature does.
pub fn read_inner(
    plaintext: &[u8],
    trusted: &[TrustedSigner],
    policy: SignaturePolicy,
) -> Result<Inner> {
    let (content_type, range, signature) = locate_inner(plaintext, trusted, policy)?;
    Ok(Inner {
        content_type,
        body: Zeroizing::new(plaintext.get(range).unwrap_or_default().to_vec()),
        signature,
    })
}

/// [`read_inner`] on a plaintext it may keep: the body is the plaintext's own buffer (for a
/// message decrypted in place, the buffer its DER came in) cut once to the body, in place: no
/// second copy of the plaintext; the buffer, spare capacity included, is zeroized on drop.
pub fn read_inner_owned(
    plaintext: Plaintext,
    trusted: &[TrustedSigner],
    policy: SignaturePolicy,
) -> Result<Inner> {
    let (content_type, range, signature) = locate_inner(plaintext.as_bytes(), trusted, policy)?;
    let Plaintext {
        buf: mut body,
        range: within,
    } = plaintext;
    body.truncate(within.start + range.end);
    body.drain(..within.start + range.start);
    Ok(Inner {
        content_type,
        body,
        signature,
    })
}

/// Where `part`, a slice of `whole`, sits in it.
fn range_in(whole: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// (content type, where the body sits in `plaintext`, signature) of a decrypted plaintext.
fn locate_inner(
    plaintext: &[u8],
    trusted: &[TrustedSigner],
    policy: SignaturePolicy,
) -> Result<(String, std::ops::Range<usize>, Signature)> {
    let (ct, inner) = body::parse_inner_type(plaintext)?;
    if !ct.is_multipart_signed() {
        policy.apply(&None)?;
        return Ok((ct.into_canonical(), range_in(plaintext, inner), None));
    }
    let parts = signed_parts(&ct, inner)?;
    let signature = Some(signed::verify_detached(
        &parts.signature,
        parts.entity,
        trusted,
    )?);
    policy.apply(&signature)?;
    let (ct, signed_body) = body::parse_inner_type(parts.entity)?;
    if ct.is_multipart_signed() {
        return Err(Error::SignatureInvalid("a signature inside a signature"));
    }
    Ok((
        ct.into_canonical(),
        range_in(plaintext, signed_body),
        signature,
    ))
}

/// The `multipart/signed` entity of `body` (of `content_type`) signed by `signer`:
/// (its Content-Type value, its body), to be sealed in place of the body.
pub fn sign_entity(
    content_type: &str,
    body: &[u8],
    signer: &SignerKey,
) -> Result<(String, Zeroizing<Vec<u8>>)> {
    let entity = Zeroizing::new(mime_entity(content_type, body));
    let signature = signed::sign_detached(&entity, signer)?;
    Ok(multipart_signed(&entity, &signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_refuse_what_they_say() {
        let valid = Some(SignatureCheck::Valid {
            signer: "alice".into(),
        });
        let invalid = Some(SignatureCheck::Invalid {
            signer: "alice".into(),
            reason: "the signature does not verify",
        });
        let unknown = Some(SignatureCheck::UnknownSigner);
        for (policy, sig, refused) in [
            (SignaturePolicy::Optional, &None, false),
            (SignaturePolicy::Optional, &valid, false),
            (SignaturePolicy::Optional, &invalid, true),
            (SignaturePolicy::Optional, &unknown, false),
            (SignaturePolicy::Required, &None, true),
            (SignaturePolicy::Required, &unknown, true),
            (SignaturePolicy::Required, &invalid, true),
            (SignaturePolicy::Required, &valid, false),
            (SignaturePolicy::Report, &invalid, false),
            (SignaturePolicy::Report, &unknown, false),
            (SignaturePolicy::Report, &None, false),
        ] {
            assert_eq!(
                policy.apply(sig).is_err(),
                refused,
                "{policy:?} {}",
                status(sig)
            );
        }
        assert_eq!(invalid.as_ref().and_then(|s| s.signer()), Some("alice"));
        assert_eq!(status(&unknown), "unknown");
        assert_eq!(status(&None), "none");
        assert_eq!(
            SignaturePolicy::parse("Required"),
            Some(SignaturePolicy::Required)
        );
        assert_eq!(SignaturePolicy::parse("sometimes"), None);
        println!("signature policies: optional refuses invalid, required also unsigned and unknown signers, report nothing");
    }
}
