//! Connection data: the value of a `c=` line (RFC 8866 §5.7) and the address part of an
//! `a=rtcp` attribute (RFC 3605), `<nettype> <addrtype> <connection-address>`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address family of a connection address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrType {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl AddrType {
    /// `IP4` or `IP6`, as SDP writes it.
    pub fn name(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }
}

/// A connection address with its type. Multicast forms are kept and flagged: an IPv4
/// multicast address carries its TTL (`224.2.1.1/127`), either family may carry a number of
/// consecutive addresses (`/3`); a unicast address or a host name carries neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The address family.
    pub addr_type: AddrType,
    /// The address as written, without TTL and count: an IP literal or a host name.
    pub address: String,
    /// The address when it is an IP literal (`None` for a host name).
    pub ip: Option<IpAddr>,
    /// The multicast TTL (IPv4 multicast only).
    pub ttl: Option<u8>,
    /// How many consecutive addresses (1 unless a multicast address says `/N`).
    pub count: u16,
}

impl Connection {
    /// Parses `IN <IP4|IP6> <address>[/ttl][/count]`; `None` when malformed: another network
    /// or address type, an IPv4 literal given as IP6 or the reverse, a suffix on a unicast
    /// address or host name, IPv4 multicast without TTL, IPv6 with a TTL, a count of 0, a
    /// host name with characters a DNS name cannot have.
    pub fn parse(value: &str) -> Option<Connection> {
        let mut f = value.split_ascii_whitespace();
        let (net, ty, addr) = (f.next()?, f.next()?, f.next()?);
        if f.next().is_some() || net != "IN" {
            return None;
        }
        let addr_type = match ty {
            "IP4" => AddrType::Ip4,
            "IP6" => AddrType::Ip6,
            _ => return None,
        };
        let mut parts = super::split_byte(addr, b'/');
        let address = parts.next()?;
        let suffixes: Vec<&str> = parts.collect();
        let ip = literal(addr_type, address)?;
        let number = |s: &str| u16::try_from(super::decimal(s, 5)?).ok();
        let multicast = ip.is_some_and(|ip| ip.is_multicast());
        let (ttl, count) = match (addr_type, multicast, suffixes.as_slice()) {
            (_, _, []) if !(multicast && addr_type == AddrType::Ip4) => (None, 1),
            (AddrType::Ip4, true, [ttl]) => (Some(u8::try_from(number(ttl)?).ok()?), 1),
            (AddrType::Ip4, true, [ttl, count]) => {
                (Some(u8::try_from(number(ttl)?).ok()?), number(count)?)
            }
            (AddrType::Ip6, true, [count]) => (None, number(count)?),
            _ => return None,
        };
        if count == 0 {
            return None;
        }
        Some(Connection {
            addr_type,
            address: address.to_owned(),
            ip,
            ttl,
            count,
        })
    }

    /// True for a multicast IP address.
    pub fn is_multicast(&self) -> bool {
        self.ip.is_some_and(|ip| ip.is_multicast())
    }
}

/// The IP address of `text` in family `ty`: `Some(Some(ip))` for a literal of that family,
/// `Some(None)` for a host name, `None` when neither (or a literal of the other family).
fn literal(ty: AddrType, text: &str) -> Option<Option<IpAddr>> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return (ty == AddrType::Ip4).then_some(Some(IpAddr::V4(v4)));
    }
    if let Ok(v6) = text.parse::<Ipv6Addr>() {
        return (ty == AddrType::Ip6).then_some(Some(IpAddr::V6(v6)));
    }
    host_name(text).then_some(None)
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens, at most 253
/// characters, not all digits and dots (that would be a malformed IPv4 literal).
fn host_name(s: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(label)
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let c = Connection::parse("IN IP4 192.0.2.10").unwrap();
        assert_eq!(
            (c.addr_type, c.address.as_str(), c.ttl, c.count),
            (AddrType::Ip4, "192.0.2.10", None, 1)
        );
        assert!(!c.is_multicast());
        let c = Connection::parse("IN IP6 2001:db8::2").unwrap();
        assert_eq!(c.ip, Some("2001:db8::2".parse().unwrap()));
        let c = Connection::parse("IN IP4 224.2.1.1/127/3").unwrap();
        assert!(c.is_multicast());
        assert_eq!((c.ttl, c.count), (Some(127), 3));
        let c = Connection::parse("IN IP6 ff15::101/3").unwrap();
        assert_eq!((c.ttl, c.count), (None, 3));
        let c = Connection::parse("IN IP4 media.example.net").unwrap();
        assert_eq!((c.ip, c.address.as_str()), (None, "media.example.net"));
        println!(
            "  ok   c=: IPv4, IPv6, IPv4 multicast TTL/count, IPv6 multicast count, host name"
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "IN IP4",
            "IN IP4 192.0.2.1 extra",
            "ATM NSAP 47.0091",
            "IN IP5 192.0.2.1",
            "IN IP4 2001:db8::1",
            "IN IP6 192.0.2.1",
            "IN IP4 192.0.2.1/127",
            "IN IP4 224.2.1.1",
            "IN IP4 224.2.1.1/256",
            "IN IP4 224.2.1.1/127/0",
            "IN IP4 224.2.1.1/127/3/4",
            "IN IP6 ff15::101/3/2",
            "IN IP6 2001:db8::1/3",
            "IN IP4 host.example/1",
            "IN IP4 999.1.1.1",
            "IN IP4 bad_host",
            "IN IP4 -bad.example",
            "IN IP4 224.2.1.1/+1",
        ] {
            assert_eq!(Connection::parse(bad), None, "{bad:?}");
        }
        println!("  ok   c=: 19 malformed forms refused (types, suffixes, TTL range, names)");
    }
}
