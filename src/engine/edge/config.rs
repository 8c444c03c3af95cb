//! The options of an edge (`role=edge`): whom it seals for, when it rotates the dialog key,
//! and what it does with a body it cannot seal. Set option by option, like the proxy's.

use std::path::PathBuf;

use crate::engine::proxy::config::{bad, flag, number};
use crate::engine::proxy::RotationPolicy;
use crate::engine::{Error, Result};

/// What the edge does with a body it cannot seal: no certificate for the callee, or a body
/// inside a dialog whose key it does not hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unsealable {
    /// Refuse: the request is answered with an error and never leaves in clear.
    #[default]
    Reject,
    /// Send the body in clear (the operator allows unencrypted calls to such callees).
    Clear,
}

/// Everything an [`super::Edge`] is built from besides keys and certificates (`local_key`,
/// `sign_key`, `proxy_cert`, `proxy_psk` and `trusted_signer` go to the key store with the
/// proxy's, so that a reload re-reads them all).
#[derive(Clone, Debug, Default)]
pub struct EdgeConfig {
    /// Certificates of the parties sealed for, one file per address of record:
    /// `DIR/user@domain.crt` (or `.pem`), the domain lower-cased.
    pub callee_cert_dir: Option<PathBuf>,
    /// Identities written in a `Disclose-To` header on every sealed body (none: no header).
    pub disclose_to: Vec<String>,
    /// When the edge replaces the dialog key: `rotate_after` seconds, `rotate_max_uses` uses.
    pub rotation: RotationPolicy,
    /// See [`Unsealable`].
    pub unsealable: Unsealable,
    /// Send the CMS structure base64-encoded (`Content-Transfer-Encoding: base64`).
    pub base64: bool,
}

impl EdgeConfig {
    /// Sets an edge option; `Ok(false)` when `name` is not one.
    pub(crate) fn set(&mut self, name: &str, value: &str) -> Result<bool> {
        let nonempty = |what: &str| -> Result<()> {
            if value.is_empty() {
                return Err(Error::Config(format!("{what}: empty")));
            }
            Ok(())
        };
        match name {
            "callee_cert_dir" => {
                nonempty(name)?;
                self.callee_cert_dir = Some(PathBuf::from(value));
            }
            "disclose_to" => {
                nonempty(name)?;
                crate::sip::disclose::DisclosureRequest::parse(value)?;
                self.disclose_to.push(value.to_string());
            }
            "rotate_after" => self.rotation.max_age_secs = number(name, value)?,
            "unsealable" => {
                self.unsealable = match value.to_ascii_lowercase().as_str() {
                    "reject" => Unsealable::Reject,
                    "clear" => Unsealable::Clear,
                    _ => return Err(bad(name, value, "reject or clear")),
                }
            }
            "sealed_base64" => self.base64 = flag(name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_options_parse_and_reject() {
        let mut c = EdgeConfig::default();
        assert_eq!(
            c.unsealable,
            Unsealable::Reject,
            "never in clear by default"
        );
        for (n, v) in [
            ("callee_cert_dir", "/etc/sipsd/peers"),
            ("disclose_to", "proxy1.example.net"),
            ("rotate_after", "600"),
            ("unsealable", "Clear"),
            ("sealed_base64", "1"),
        ] {
            assert!(c.set(n, v).unwrap(), "{n}");
        }
        assert_eq!(c.rotation.max_age_secs, 600);
        assert_eq!(c.unsealable, Unsealable::Clear);
        assert!(!c.set("rsa_key", "x").unwrap(), "not an edge option");
        for (n, v) in [
            ("unsealable", "sometimes"),
            ("rotate_after", "-1"),
            ("disclose_to", "not a host!"),
            ("callee_cert_dir", ""),
        ] {
            let e = c.set(n, v).unwrap_err();
            println!("rejected {n}={v}: {e}");
            assert!(
                matches!(e, Error::Config(_) | Error::Request(_)),
                "{n}: {e}"
            );
        }
    }
}
