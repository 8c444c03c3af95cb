//! Where a proxy may send a body it decrypted (`plaintext_next_hop`): replacing an encrypted
//! body by its plaintext is allowed only toward next hops the operator names, never toward
//! whatever a message's Request-URI or Route header says (docs/SECURITY.md).

use crate::engine::{Error, Result};
use crate::sip::uri::host_port;

/// One allowed next hop: a host (name, IPv4, or `[IPv6]`) and optionally a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    host: String,
    port: Option<u16>,
}

impl NextHop {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port`, or a SIP URI naming them.
    pub fn parse(value: &str) -> Result<NextHop> {
        let bad = || Error::Config(format!("plaintext_next_hop: '{value}' is not host[:port]"));
        let (host, port) = host_port(value.trim()).ok_or_else(bad)?;
        Ok(NextHop { host, port })
    }

    /// Whether a message sent to `uri` goes to this next hop. A URI without a port goes to the
    /// scheme's default port (5060, `sips:` 5061); an entry without a port allows any port.
    fn matches(&self, host: &str, port: Option<u16>, default_port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port.unwrap_or(default_port))
    }
}

/// Whether `uri` (a SIP URI, or `host[:port]`) is one of `allowed`.
pub fn allowed(allowed: &[NextHop], uri: &str) -> bool {
    let uri = uri.trim();
    let default_port = if uri.len() >= 5 && uri[..5].eq_ignore_ascii_case("sips:") {
        5061
    } else {
        5060
    };
    match host_port(uri) {
        Some((host, port)) => allowed.iter().any(|h| h.matches(&host, port, default_port)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_match_host_and_port() {
        let list = [
            NextHop::parse("10.0.0.2:5072").unwrap(),
            NextHop::parse("Trusted.Example.NET").unwrap(),
            NextHop::parse("[2001:DB8::1]").unwrap(),
        ];
        for (uri, want) in [
            ("sip:10.0.0.2:5072", true),
            ("sip:bob@10.0.0.2:5072;transport=udp", true),
            ("<sip:10.0.0.2:5072;lr>", true),
            ("sip:10.0.0.2", false),
            ("sip:10.0.0.2:5073", false),
            ("sip:trusted.example.net:7000", true),
            ("sips:bob@trusted.example.net", true),
            ("sip:evil.example.net", false),
            ("sip:trusted.example.net.evil.example:5060", false),
            ("sip:[2001:db8::1]:5060", true),
            ("sip:[2001:db8::2]", false),
            ("sip:user@", false),
            ("", false),
        ] {
            assert_eq!(allowed(&list, uri), want, "{uri}");
        }
        assert!(NextHop::parse("bad host").is_err());
        assert!(NextHop::parse("h:99999").is_err());
        println!("plaintext next hops: 13 URIs matched by host and port as expected");
    }
}
