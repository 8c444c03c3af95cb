//! The configuration of a sipsd context, option by option as a SIP server's module parameters
//! arrive (README, "Configuration reference"): the proxy's options ([`ProxyConfig`]), and with
//! `role=edge` the edge's ([`EdgeConfig`]) on top of them.

use crate::crypto::keys::SignKeySpec;
use crate::engine::edge::EdgeConfig;
use crate::engine::pinhole::PinholeConfig;
use crate::engine::proxy::config::{bad, number, pairs, parse_psk, parse_rsa_key};
use crate::engine::proxy::{ProxyConfig, RotationPolicy};
use crate::engine::{Error, Result};

/// What a context is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// A trusted proxy: reads what is meant for it, forwards unchanged.
    #[default]
    Proxy,
    /// The edge of some user agents: seals what they send, opens what they receive.
    Edge,
}

/// Every option of a context.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// See [`Role`].
    pub role: Role,
    /// The proxy's options (an edge opens with the same machinery).
    pub proxy: ProxyConfig,
    /// The edge's options (used with `role=edge`).
    pub edge: EdgeConfig,
    /// The firewall pinholes (`pinhole_*`; off without `pinhole_agent`).
    pub pinhole: PinholeConfig,
    /// Edge options that were set, to refuse them without `role=edge`.
    edge_options: Vec<String>,
}

impl Config {
    /// Sets one option by name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let value = value.trim();
        if self.pinhole.set(name, value)? {
            return Ok(());
        }
        match name {
            "role" => {
                self.role = match value.to_ascii_lowercase().as_str() {
                    "proxy" => Role::Proxy,
                    "edge" => Role::Edge,
                    _ => return Err(bad(name, value, "proxy or edge")),
                };
                return Ok(());
            }
            // Both roles read it: a proxy refuses a key past it, an edge rotates at it.
            "rotate_max_uses" => {
                let n = number(name, value)?;
                self.proxy.rotation.max_uses = n;
                self.edge.rotation.max_uses = n;
                return Ok(());
            }
            "local_key" => self.proxy.keys.rsa.push(
                parse_rsa_key(value)
                    .map_err(|e| Error::Config(e.to_string().replace("rsa_key", "local_key")))?,
            ),
            "sign_key" => self.proxy.keys.sign.push(parse_sign_key(value)?),
            "proxy_cert" => {
                if value.is_empty() {
                    return Err(Error::Config("proxy_cert: empty path".into()));
                }
                self.proxy.keys.recipient_certs.push(value.into())
            }
            "proxy_psk" => {
                let psk = parse_psk(value)?;
                if psk.id == crate::crypto::cms::ROTATION_KEK_ID {
                    return Err(Error::Config(
                        "proxy_psk: that KEK identifier is reserved for the rotation proof".into(),
                    ));
                }
                self.proxy.keys.recipient_psks.push(psk)
            }
            _ => {
                if !self.edge.set(name, value)? {
                    return self.proxy.set(name, value);
                }
            }
        }
        self.edge_options.push(name.to_string());
        Ok(())
    }

    /// The proxy part for this role. An edge is a user agent's side: it refuses no worn-out
    /// key (it rotates them, [`EdgeConfig::rotation`]), so `rotate_max_*` refuse nothing there.
    pub fn proxy_config(&self) -> ProxyConfig {
        let mut p = self.proxy.clone();
        if self.role == Role::Edge {
            p.rotation = RotationPolicy::default();
        }
        p
    }

    /// The edge part: `Some` with `role=edge`; an edge option without it is an error.
    pub fn edge_config(&self) -> Result<Option<EdgeConfig>> {
        match (self.role, self.edge_options.first()) {
            (Role::Edge, _) => Ok(Some(self.edge.clone())),
            (Role::Proxy, Some(name)) => Err(Error::Config(format!(
                "{name} is an edge option: set role=edge"
            ))),
            (Role::Proxy, None) => Ok(None),
        }
    }
}

/// `key=PATH;cert=PATH[;aor=user@domain]`.
fn parse_sign_key(value: &str) -> Result<SignKeySpec> {
    let (mut key, mut cert, mut aor) = (None, None, None);
    for (k, v) in pairs("sign_key", value)? {
        match k {
            "key" => key = Some(v.into()),
            "cert" => cert = Some(v.into()),
            "aor" if v.contains('@') => aor = Some(v.to_ascii_lowercase()),
            "aor" => return Err(bad("sign_key", v, "an address of record user@domain")),
            _ => return Err(Error::Config(format!("sign_key: unknown field '{k}'"))),
        }
    }
    match (key, cert) {
        (Some(key_path), Some(cert_path)) => Ok(SignKeySpec {
            key_path,
            cert_path,
            aor,
        }),
        _ => Err(Error::Config("sign_key: needs key=PATH;cert=PATH".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_share_options_and_edge_options_need_the_edge_role() {
        let mut c = Config::default();
        c.set("rsa_key", "key=/k;cert=/c").unwrap();
        c.set("rotate_max_uses", "5").unwrap();
        assert!(c.edge_config().unwrap().is_none());
        assert_eq!(
            c.proxy_config().rotation.max_uses,
            5,
            "a proxy refuses past it"
        );
        c.set("callee_cert_dir", "/etc/peers").unwrap();
        let e = c.edge_config().unwrap_err();
        assert!(e.to_string().contains("role=edge"), "{e}");
        c.set("role", "edge").unwrap();
        c.set("local_key", "key=/bob.key;cert=/bob.crt").unwrap();
        c.set("sign_key", "key=/a.key;cert=/a.crt;aor=Alice@Example.NET")
            .unwrap();
        let edge = c.edge_config().unwrap().expect("edge");
        assert_eq!(edge.rotation.max_uses, 5, "an edge rotates at it");
        assert_eq!(c.proxy_config().rotation.max_uses, 0, "and refuses nothing");
        assert_eq!(
            c.proxy.keys.rsa.len(),
            2,
            "local_key is a key the edge opens with"
        );
        assert_eq!(
            c.proxy.keys.sign[0].aor.as_deref(),
            Some("alice@example.net")
        );
        c.set("proxy_cert", "/p1.crt").unwrap();
        c.set("proxy_psk", "id=text:psk-proxy1;key=/psk.hex")
            .unwrap();
        assert_eq!(c.proxy.keys.recipient_psks[0].id, b"psk-proxy1");
        for (n, v) in [
            ("role", "gateway"),
            ("sign_key", "key=/a.key"),
            ("sign_key", "key=/a;cert=/c;aor=alice"),
            ("local_key", "cert=/c"),
            ("proxy_psk", "id=text:sipsd-dialog-key;key=/k"),
            ("proxy_cert", ""),
        ] {
            let e = c.set(n, v).unwrap_err();
            println!("rejected {n}={v}: {e}");
            assert!(matches!(e, Error::Config(_)));
        }
    }
}
