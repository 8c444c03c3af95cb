//! The proxy's configuration, set option by option the way a SIP server's
//! module passes its parameters.

use std::path::PathBuf;

use crate::crypto::keys::{KeySpec, PskSpec, RsaKeySpec};
use crate::engine::cache::CacheConfig;
use crate::engine::cluster::{self, ClusterConfig, MAX_NODE_LEN};
use crate::engine::signature::SignaturePolicy;
use crate::engine::{Error, Result};
use crate::sip::body::BodyLimits;

use super::next_hop::NextHop;

/// How a proxy decides whether a message is meant for it (docs/PROTOCOL.md, "Deciding").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only when the `Disclose-To` header names one of the proxy's identities.
    Explicit,
    /// Whenever a RecipientInfo names one of the proxy's keys; the header is ignored.
    Implicit,
    /// The header decides when present; without it, as `Implicit`.
    Both,
}

/// When a dialog key counts as worn out (0 = no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Seconds since the key was stored.
    pub max_age_secs: u64,
    /// Messages decrypted with the cached key.
    pub max_uses: u32,
}

/// Everything a [`crate::engine::proxy::Proxy`] is built from.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Key and certificate files, pre-shared keys, identity names.
    pub keys: KeySpec,
    /// See [`Mode`].
    pub mode: Mode,
    /// Size and expiry of the shared dialog key cache.
    pub cache: CacheConfig,
    /// When a cached key is refused until the sender rotates it.
    pub rotation: RotationPolicy,
    /// Limits applied to bodies before any parsing.
    pub limits: BodyLimits,
    /// Most RecipientInfos a message may carry.
    pub max_recipients: usize,
    /// Most RSA private-key operations one message may cost (docs/SECURITY.md).
    pub max_rsa_ops: u32,
    /// Accept AES-CBC (unauthenticated) bodies inside a dialog with a cached key. Unsafe: a
    /// receiver that decrypts attacker-chosen CBC under the dialog key is a padding oracle.
    pub allow_cbc_in_dialog: bool,
    /// Next hops a decrypted body may be forwarded to in clear.
    pub plaintext_next_hops: Vec<NextHop>,
    /// Replication of the dialog keys to the other nodes of a cluster (off without a key).
    pub cluster: ClusterConfig,
    /// What a signature inside a body that fails, or a missing one, does.
    pub signatures: SignaturePolicy,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            keys: KeySpec::default(),
            mode: Mode::Both,
            cache: CacheConfig {
                capacity: 4096,
                ttl_secs: 3600,
            },
            rotation: RotationPolicy::default(),
            limits: BodyLimits::default(),
            max_recipients: 16,
            max_rsa_ops: 2,
            allow_cbc_in_dialog: false,
            plaintext_next_hops: Vec::new(),
            cluster: ClusterConfig::default(),
            signatures: SignaturePolicy::default(),
        }
    }
}

impl ProxyConfig {
    /// Sets one option by name, as a module parameter would (README, "Configuration reference").
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let value = value.trim();
        match name {
            "rsa_key" => self.keys.rsa.push(parse_rsa_key(value)?),
            "psk" => {
                let psk = parse_psk(value)?;
                if psk.id == crate::crypto::cms::ROTATION_KEK_ID {
                    return Err(Error::Config(
                        "psk: that KEK identifier is reserved for the rotation proof".into(),
                    ));
                }
                self.keys.psk.push(psk)
            }
            "identity" => {
                if value.is_empty() {
                    return Err(Error::Config("identity: empty".into()));
                }
                self.keys.identities.push(value.to_ascii_lowercase())
            }
            "mode" => {
                self.mode = match value.to_ascii_lowercase().as_str() {
                    "explicit" => Mode::Explicit,
                    "implicit" => Mode::Implicit,
                    "both" => Mode::Both,
                    _ => return Err(bad(name, value, "explicit, implicit or both")),
                }
            }
            "cache_capacity" => self.cache.capacity = number(name, value)?,
            "cache_ttl" => self.cache.ttl_secs = number(name, value)?,
            "rotate_max_age" => self.rotation.max_age_secs = number(name, value)?,
            "rotate_max_uses" => self.rotation.max_uses = number(name, value)?,
            "max_body_size" => self.limits.max_body = number(name, value)?,
            "max_parts" => self.limits.max_parts = number(name, value)?,
            "max_depth" => self.limits.max_depth = number(name, value)?,
            "max_recipients" => self.max_recipients = number(name, value)?,
            "max_rsa_ops" => self.max_rsa_ops = number(name, value)?,
            "strict_key_permissions" => self.keys.strict_permissions = flag(name, value)?,
            "allow_cbc_in_dialog" => self.allow_cbc_in_dialog = flag(name, value)?,
            "plaintext_next_hop" => self.plaintext_next_hops.push(NextHop::parse(value)?),
            "cluster_key" => {
                let key = parse_psk(value).map_err(|e| match e {
                    Error::Config(m) => Error::Config(m.replacen("psk", "cluster_key", 1)),
                    other => other,
                })?;
                cluster::check_key_id(&key.id)?;
                self.cluster.keys.push(key)
            }
            "cluster_node" => {
                if value.is_empty() || value.len() > MAX_NODE_LEN {
                    return Err(bad(name, value, "a name of 1 to 64 bytes"));
                }
                self.cluster.node = Some(value.to_string())
            }
            "cluster_max_skew" => self.cluster.max_skew_secs = number(name, value)?,
            "cluster_refresh" => self.cluster.refresh_secs = number(name, value)?,
            "trusted_signer" => {
                if value.is_empty() {
                    return Err(Error::Config("trusted_signer: empty path".into()));
                }
                self.keys.trusted_signers.push(PathBuf::from(value))
            }
            "signature_policy" => {
                self.signatures = SignaturePolicy::parse(value)
                    .ok_or_else(|| bad(name, value, "optional, required or report"))?
            }
            _ => return Err(Error::Config(format!("unknown option '{name}'"))),
        }
        Ok(())
    }
}

pub(crate) fn bad(name: &str, value: &str, expected: &str) -> Error {
    Error::Config(format!("{name}: '{value}' is not {expected}"))
}

pub(crate) fn flag(name: &str, value: &str) -> Result<bool> {
    match value {
        "1" | "yes" | "true" => Ok(true),
        "0" | "no" | "false" => Ok(false),
        _ => Err(bad(name, value, "0 or 1")),
    }
}

pub(crate) fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| bad(name, value, "a number in range"))
}

/// Splits `a=1;b=2` into pairs; every item must have a value.
pub(crate) fn pairs<'a>(option: &str, value: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    value
        .split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| Error::Config(format!("{option}: '{item}' is not name=value")))
        })
        .collect()
}

pub(crate) fn parse_rsa_key(value: &str) -> Result<RsaKeySpec> {
    let (mut key, mut cert, mut label) = (None, None, None);
    for (k, v) in pairs("rsa_key", value)? {
        match k {
            "key" => key = Some(PathBuf::from(v)),
            "cert" => cert = Some(PathBuf::from(v)),
            "label" => label = Some(v.to_string()),
            _ => return Err(Error::Config(format!("rsa_key: unknown field '{k}'"))),
        }
    }
    match (key, cert) {
        (Some(key_path), Some(cert_path)) => Ok(RsaKeySpec {
            key_path,
            cert_path,
            label,
        }),
        _ => Err(Error::Config(
            "rsa_key: needs key=PATH;cert=PATH (the certificate identifies the recipient)".into(),
        )),
    }
}

pub(crate) fn parse_psk(value: &str) -> Result<PskSpec> {
    let (mut id, mut key, mut label) = (None, None, None);
    for (k, v) in pairs("psk", value)? {
        match k {
            "id" => id = Some(decode_id(v)?),
            "key" => key = Some(PathBuf::from(v)),
            "label" => label = Some(v.to_string()),
            _ => return Err(Error::Config(format!("psk: unknown field '{k}'"))),
        }
    }
    match (id, key) {
        (Some(id), Some(key_path)) => Ok(PskSpec {
            id,
            key_path,
            label,
        }),
        _ => Err(Error::Config("psk: needs id=HEX;key=PATH".into())),
    }
}

/// A KEK identifier: hex, or `text:` followed by the identifier as text.
fn decode_id(v: &str) -> Result<Vec<u8>> {
    if let Some(text) = v.strip_prefix("text:") {
        return Ok(text.as_bytes().to_vec());
    }
    crate::hex::decode(v).ok_or_else(|| Error::Config(format!("psk: id '{v}' is not hex")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let mut c = ProxyConfig::default();
        c.set("rsa_key", "key=/k.pem; cert=/c.pem;label=p1")
            .unwrap();
        c.set("psk", "id=70736b;key=/psk.hex").unwrap();
        c.set("psk", "id=text:psk-proxy1;key=/psk.hex").unwrap();
        c.set("mode", "Explicit").unwrap();
        c.set("cache_capacity", "10").unwrap();
        assert_eq!(c.keys.rsa[0].label.as_deref(), Some("p1"));
        assert_eq!(c.keys.psk[0].id, b"psk");
        assert_eq!(c.keys.psk[1].id, b"psk-proxy1");
        assert_eq!(c.mode, Mode::Explicit);
        assert_eq!(c.cache.capacity, 10);
        for (n, v) in [
            ("mode", "sometimes"),
            ("cache_capacity", "-1"),
            ("rsa_key", "key=/k.pem"),
            ("psk", "id=zz;key=/x"),
            ("nonsense", "1"),
            ("rsa_key", "key"),
        ] {
            let e = c.set(n, v).unwrap_err();
            println!("rejected {n}={v}: {e}");
            assert!(matches!(e, Error::Config(_)));
        }
    }
}
