//! Host and port of a SIP URI (RFC 3261 §19.1), as far as routing decisions need them.

/// The lower-case host and the port of `sip:user@host:port;params?headers`, `<...>`, or a bare
/// `host[:port]`. `None` when there is no well-formed host.
pub fn host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(s);
    let rest = match s.split_once(':') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") =>
        {
            rest
        }
        _ => s,
    };
    // Drop user info, then parameters and headers.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = rest.split([';', '?']).next()?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (hostport, None),
        };
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn hosts_and_ports_of_uris() {
        for (uri, want) in [
            (
                "sip:bob@Example.NET:5070;transport=udp",
                Some(("example.net", Some(5070))),
            ),
            ("<sips:[2001:DB8::1]>", Some(("[2001:db8::1]", None))),
            ("10.0.0.1", Some(("10.0.0.1", None))),
            ("sip:a@b@host.example", Some(("host.example", None))),
            ("sip:[zz::1]", None),
            ("sip:host:notaport", None),
            ("sip:ho st", None),
        ] {
            let got = host_port(uri);
            let got = got.as_ref().map(|(h, p)| (h.as_str(), *p));
            assert_eq!(got, want, "{uri}");
        }
        println!("host_port: 7 URIs (user info, params, IPv6, bare host, malformed)");
    }
}
