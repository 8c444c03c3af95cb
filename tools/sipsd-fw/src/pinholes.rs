//! Pinholes: what one PCP mapping becomes in the agent's sets, and the agent's view of them.
//!
//! A mapping is keyed by its internal address and port (UDP only) and owned by a mapping
//! nonce (derived from the dialog id by the proxy). It becomes set elements:
//!
//! | mapping | set | element | matches |
//! | --- | --- | --- | --- |
//! | no FILTER | `open4`/`open6` | internal addr . port | any source → internal:port |
//! | FILTER peer, port 0 | `peer4`/`peer6` | peer addr . internal addr . port | peer:any → internal:port |
//! | FILTER peer:port | `flow4`/`flow6` | peer addr . port . internal addr . port | peer:port ↔ internal:port |
//!
//! Only an exact flow (both ports known) also lets the internal side send: the answer's
//! mapping of the callee's media towards the caller's exact address:port opens the caller's
//! direction, nothing wider.
//!
//! Every element carries the mapping's lifetime as its nftables timeout and `n=<nonce>` as
//! its comment, so the table alone is the state: [`Pinholes::restore`] rebuilds this view
//! from it after a restart.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sipsd::pcp::Nonce;

/// One nftables set element of a pinhole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// Any source may send to `internal`.
    Open {
        /// The media address:port.
        internal: SocketAddr,
    },
    /// `remote` (any port) may send to `internal`.
    Peer {
        /// The remote peer's address.
        remote: IpAddr,
        /// The media address:port.
        internal: SocketAddr,
    },
    /// `remote` and `internal` may exchange packets, both ports fixed.
    Flow {
        /// The remote peer's address:port.
        remote: SocketAddr,
        /// The media address:port.
        internal: SocketAddr,
    },
    /// Media arriving at `internal` is copied to the recorder (sipsd's MIRROR option).
    Mirror {
        /// The media address:port.
        internal: SocketAddr,
    },
}

/// The kinds of sets, for both families.
pub const SETS: [&str; 8] = [
    "open4", "open6", "peer4", "peer6", "flow4", "flow6", "mirror4", "mirror6",
];

impl Key {
    /// The set this element lives in.
    pub fn set(&self) -> &'static str {
        let v4 = self.internal().is_ipv4();
        match (self, v4) {
            (Key::Open { .. }, true) => "open4",
            (Key::Open { .. }, false) => "open6",
            (Key::Peer { .. }, true) => "peer4",
            (Key::Peer { .. }, false) => "peer6",
            (Key::Flow { .. }, true) => "flow4",
            (Key::Flow { .. }, false) => "flow6",
            (Key::Mirror { .. }, true) => "mirror4",
            (Key::Mirror { .. }, false) => "mirror6",
        }
    }

    /// The media address:port the element leads to.
    pub fn internal(&self) -> SocketAddr {
        match *self {
            Key::Open { internal }
            | Key::Peer { internal, .. }
            | Key::Flow { internal, .. }
            | Key::Mirror { internal } => internal,
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Open { internal } => write!(f, "any -> {internal}"),
            Key::Peer { remote, internal } => write!(f, "{remote}:* <-> {internal}"),
            Key::Flow { remote, internal } => write!(f, "{remote} <-> {internal}"),
            Key::Mirror { internal } => write!(f, "mirror {internal} -> recorder"),
        }
    }
}

/// The comment of every element of a mapping.
pub fn comment(nonce: &Nonce) -> String {
    format!("n={}", nonce.to_hex())
}

/// The nonce in an element's comment, if it is one of ours.
pub fn nonce_of_comment(c: &str) -> Option<Nonce> {
    Nonce::from_hex(c.strip_prefix("n=")?)
}

/// One mapping: its owner and its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The mapping nonce (the dialog).
    pub nonce: Nonce,
    /// Its elements.
    pub keys: BTreeSet<Key>,
    /// When its elements expire (the kernel removes them then).
    pub expires: Instant,
}

/// The agent's view of its sets, keyed by internal address:port.
#[derive(Debug, Default)]
pub struct Pinholes {
    mappings: HashMap<SocketAddr, Mapping>,
    elements: usize,
}

impl Pinholes {
    /// The live mapping of `internal`, if any (an expired one counts as gone: the kernel has
    /// removed or is removing its elements).
    pub fn get(&self, internal: &SocketAddr, now: Instant) -> Option<&Mapping> {
        self.mappings.get(internal).filter(|m| m.expires > now)
    }

    /// Live mappings of an internal address with a given nonce (for a delete of "all ports").
    pub fn of_addr(&self, addr: IpAddr, nonce: &Nonce, now: Instant) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self
            .mappings
            .iter()
            .filter(|(k, m)| k.ip() == addr && m.nonce == *nonce && m.expires > now)
            .map(|(k, _)| *k)
            .collect();
        v.sort();
        v
    }

    /// Elements counted (live and not yet forgotten).
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Live mappings.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    /// Whether there is no mapping.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// Records a mapping as applied (replacing the previous one of the same internal port).
    pub fn set(&mut self, internal: SocketAddr, m: Mapping) {
        self.elements += m.keys.len();
        if let Some(old) = self.mappings.insert(internal, m) {
            self.elements -= old.keys.len();
        }
    }

    /// Records a mapping as deleted.
    pub fn remove(&mut self, internal: &SocketAddr) {
        if let Some(old) = self.mappings.remove(internal) {
            self.elements -= old.keys.len();
        }
    }

    /// Forgets mappings whose elements have expired.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.mappings.len();
        let mut gone = 0;
        self.mappings.retain(|_, m| {
            let live = m.expires > now;
            if !live {
                gone += m.keys.len();
            }
            live
        });
        self.elements -= gone;
        before - self.mappings.len()
    }

    /// Rebuilds the view from the table's elements: (key, comment, seconds left). Elements
    /// without one of our comments are reported and left alone (never deleted); elements of
    /// one internal port with two different nonces keep the first nonce seen and are all
    /// kept (none is widened: each stays exactly as the kernel has it until it expires).
    pub fn restore(
        elements: impl IntoIterator<Item = (Key, Option<String>, u32)>,
        now: Instant,
    ) -> (Self, Vec<String>) {
        let mut p = Pinholes::default();
        let mut notes = Vec::new();
        for (key, comment, left) in elements {
            let Some(nonce) = comment.as_deref().and_then(nonce_of_comment) else {
                notes.push(format!("element {key} has no sipsd comment; left as it is"));
                continue;
            };
            let expires = now + Duration::from_secs(u64::from(left));
            let m = p.mappings.entry(key.internal()).or_insert_with(|| Mapping {
                nonce,
                keys: BTreeSet::new(),
                expires,
            });
            if m.nonce != nonce {
                notes.push(format!(
                    "element {key} has nonce {} but its port belongs to {}",
                    nonce.to_hex(),
                    m.nonce.to_hex()
                ));
            }
            // The mapping lives as long as its longest-lived element.
            m.expires = m.expires.max(expires);
            if m.keys.insert(key) {
                p.elements += 1;
            }
        }
        (p, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_remove_expire_restore() {
        let now = Instant::now();
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let n = Nonce([1; 12]);
        let mut p = Pinholes::default();
        let keys: BTreeSet<Key> = [
            Key::Open { internal: a },
            Key::Peer {
                remote: "10.9.0.1".parse().unwrap(),
                internal: a,
            },
        ]
        .into();
        p.set(
            a,
            Mapping {
                nonce: n,
                keys: keys.clone(),
                expires: now + Duration::from_secs(5),
            },
        );
        assert_eq!(p.elements(), 2);
        assert!(p.get(&a, now).is_some());
        assert!(p.get(&a, now + Duration::from_secs(6)).is_none());
        assert_eq!(p.expire(now + Duration::from_secs(6)), 1);
        assert_eq!(p.elements(), 0);
        let c = comment(&n);
        assert_eq!(nonce_of_comment(&c), Some(n));
        let (r, notes) = Pinholes::restore(
            keys.iter().map(|k| (*k, Some(c.clone()), 30)).chain([(
                Key::Open {
                    internal: "10.0.0.2:5".parse().unwrap(),
                },
                None,
                9,
            )]),
            now,
        );
        assert_eq!(r.elements(), 2);
        assert_eq!(notes.len(), 1);
        assert_eq!(r.get(&a, now).unwrap().keys, keys);
    }
}
