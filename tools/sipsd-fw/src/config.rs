//! The agent's configuration file (TOML), checked as a whole before anything starts.
//!
//! ```toml
//! listen = "192.0.2.1:5351"            # management address; PCP's port
//! allow = ["192.0.2.10", "192.0.2.11"] # the proxies (addresses or prefixes)
//! table = "sipsd"                      # the one nftables table it owns (family inet)
//! mode = "enforce"                     # or "mark" (the host's policy checks the mark)
//! interfaces = ["eth1", "eth2"]        # media arrives on these (empty: every interface)
//! media_ports = "1024-65535"           # UDP destination ports the media policy covers
//! media_networks = ["198.51.100.0/24"] # pinholes may only lead to these (empty: anywhere)
//! max_elements = 65536
//! min_lifetime = 2
//! max_lifetime = 3600
//! [[key]]
//! id = 1
//! file = "/etc/sipsd-fw/p1.key"        # hex, mode 0600 (sipsd-fw keygen)
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::FwError;

/// What the agent's chain does with media packets.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The agent's chain is the UDP media policy: packets in scope that match no pinhole are
    /// dropped there.
    #[default]
    Enforce,
    /// The agent's chain only sets `mark` on packets that match a pinhole; the host's own
    /// policy drops unmarked media.
    Mark,
}

/// An address prefix (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?}: not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, len })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An inclusive UDP port range, `"1024-65535"` or one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (a, b) = s.split_once('-').unwrap_or((&s, &s));
        let p = |x: &str| x.trim().parse::<u16>().ok().filter(|&p| p > 0);
        match (p(a), p(b)) {
            (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
            _ => Err(serde::de::Error::custom(format!(
                "{s:?}: want FIRST-LAST, 1..=65535"
            ))),
        }
    }
}

/// A MAC key of one proxy (or of a group of proxies sharing it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id the proxy puts in its messages.
    pub id: u32,
    /// The key file: hex, mode 0600.
    pub file: PathBuf,
}

fn default_table() -> String {
    "sipsd".into()
}
fn default_ports() -> PortRange {
    PortRange {
        first: 1024,
        last: 65535,
    }
}
fn default_true() -> bool {
    true
}
fn default_mark() -> u32 {
    0x0050_0000
}
fn default_priority() -> i32 {
    -10
}
fn default_max_elements() -> usize {
    65536
}
fn default_min_lifetime() -> u32 {
    2
}
fn default_max_lifetime() -> u32 {
    3600
}
fn default_window() -> u64 {
    30_000
}
fn default_replay_capacity() -> usize {
    200_000
}
fn default_max_filters() -> usize {
    8
}
fn default_nft() -> PathBuf {
    "nft".into()
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the PCP server listens (a management address; port 5351 by convention).
    pub listen: SocketAddr,
    /// Sources allowed to send requests: the proxies. Others are dropped and logged.
    pub allow: Vec<Cidr>,
    /// MAC keys, by id.
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyConfig>,
    /// Refuse requests without a valid MAC (default). `false` only for a management network
    /// where the source allow-list is enough.
    #[serde(default = "default_true")]
    pub require_auth: bool,
    /// The nftables table the agent owns (family inet).
    #[serde(default = "default_table")]
    pub table: String,
    /// `enforce` or `mark`.
    #[serde(default)]
    pub mode: Mode,
    /// In mark mode, the bits set on packets that match a pinhole (ORed into `meta mark`).
    #[serde(default = "default_mark")]
    pub mark: u32,
    /// Priority of the agent's forward chain (before the host's filter at 0 by default).
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Input interfaces the media policy covers; empty: all.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// UDP destination ports the media policy covers.
    #[serde(default = "default_ports")]
    pub media_ports: PortRange,
    /// Internal addresses a pinhole may lead to; empty: any.
    #[serde(default)]
    pub media_networks: Vec<Cidr>,
    /// Most set elements in the table.
    #[serde(default = "default_max_elements")]
    pub max_elements: usize,
    /// Shortest lifetime granted (seconds).
    #[serde(default = "default_min_lifetime")]
    pub min_lifetime: u32,
    /// Longest lifetime granted (seconds).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: u32,
    /// Accepted distance between a request's timestamp and the agent's clock (ms).
    #[serde(default = "default_window")]
    pub replay_window_ms: u64,
    /// Most requests remembered inside the replay window.
    #[serde(default = "default_replay_capacity")]
    pub replay_capacity: usize,
    /// Most FILTER options (remote peers) per mapping.
    #[serde(default = "default_max_filters")]
    pub max_filters: usize,
    /// The `nft` program.
    #[serde(default = "default_nft")]
    pub nft: PathBuf,
    /// The recorder (docs/RECORDING.md §3): media of the mappings whose request carries
    /// sipsd's MIRROR option is copied to this address (`dup to`), on `recorder_device`.
    /// Without it MIRROR is ignored.
    #[serde(default)]
    pub recorder: Option<std::net::IpAddr>,
    /// The interface towards the recorder (with `recorder`).
    #[serde(default)]
    pub recorder_device: Option<String>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, FwError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FwError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| FwError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        if self.allow.is_empty() {
            return Err("allow: name at least one proxy source".into());
        }
        if self.recorder.is_some() != self.recorder_device.is_some() {
            return Err("recorder and recorder_device go together".into());
        }
        if self.require_auth && self.keys.is_empty() {
            return Err("require_auth is on but no [[key]] is configured".into());
        }
        let ok_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !ok_name(&self.table) {
            return Err(format!(
                "table {:?}: letters, digits, _ and - only",
                self.table
            ));
        }
        if let Some(i) = self
            .interfaces
            .iter()
            .find(|i| i.is_empty() || i.len() > 15 || i.contains(['"', '\\', ' ']))
        {
            return Err(format!("interfaces: {i:?} is not an interface name"));
        }
        if self.min_lifetime == 0 || self.min_lifetime > self.max_lifetime {
            return Err("want 0 < min_lifetime <= max_lifetime".into());
        }
        if self.mode == Mode::Mark && self.mark == 0 {
            return Err("mark mode needs a non-zero mark".into());
        }
        let mut ids: Vec<u32> = self.keys.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("two [[key]] entries with the same id".into());
        }
        if self.max_filters == 0 || self.max_elements == 0 {
            return Err("max_filters and max_elements must be positive".into());
        }
        Ok(())
    }

    /// Whether `src` may send requests.
    pub fn allowed(&self, src: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(src))
    }

    /// Whether a pinhole may lead to `internal`.
    pub fn media_allowed(&self, internal: IpAddr) -> bool {
        self.media_networks.is_empty() || self.media_networks.iter().any(|c| c.contains(internal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("192.0.2.1".parse().unwrap()));
        assert!(!any.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let one: Cidr = "2001:db8::1".parse().unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
    }

    #[test]
    fn parse_and_check() {
        let c = Config::parse(
            "listen = \"127.0.0.1:5351\"\nallow = [\"127.0.0.1\"]\nrequire_auth = false\nmedia_ports = \"2000-3000\"\n",
        )
        .unwrap();
        assert_eq!(c.table, "sipsd");
        assert_eq!(
            c.media_ports,
            PortRange {
                first: 2000,
                last: 3000
            }
        );
        assert!(c.allowed("127.0.0.1".parse().unwrap()));
        assert!(!c.allowed("127.0.0.2".parse().unwrap()));
        assert!(
            Config::parse("listen = \"127.0.0.1:5351\"\nallow = [\"127.0.0.1\"]\n")
                .unwrap_err()
                .contains("no [[key]]")
        );
        assert!(
            Config::parse("listen = \"127.0.0.1:5351\"\nallow = []\nrequire_auth = false\n")
                .is_err()
        );
        assert!(Config::parse(
            "listen = \"127.0.0.1:5351\"\nallow = [\"127.0.0.1\"]\nrequire_auth = false\ntypo = 1\n"
        )
        .is_err());
        assert!(Config::parse(
            "listen = \"127.0.0.1:5351\"\nallow = [\"127.0.0.1\"]\nrequire_auth = false\ntable = \"a b\"\n"
        )
        .is_err());
    }
}
