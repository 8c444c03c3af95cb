//! The IP and UDP layers of captured packets: IPv4 (RFC 791) and IPv6 (RFC 8200) with UDP
//! (RFC 768), read from a capture and written again around decrypted RTP for the pcap output.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A UDP datagram found in a captured IP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn udp<'a>(src: IpAddr, dst: IpAddr, seg: &'a [u8]) -> Option<Datagram<'a>> {
    let sport = be16(seg, 0)?;
    let dport = be16(seg, 2)?;
    let len = usize::from(be16(seg, 4)?);
    if len < 8 || len > seg.len() {
        return None;
    }
    Some(Datagram {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        payload: &seg[8..len],
    })
}

/// The UDP datagram in an IP packet (starting at the IP header), if it is one: not a
/// fragment, IPv4 without a bad header length, IPv6 with UDP as next header or behind
/// hop-by-hop/routing/destination options.
pub fn parse_ip(pkt: &[u8]) -> Option<Datagram<'_>> {
    match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let total = usize::from(be16(pkt, 2)?);
            if ihl < 20 || total < ihl || total > pkt.len() {
                return None;
            }
            let frag = be16(pkt, 6)?;
            if frag & 0x3fff != 0 || pkt[9] != 17 {
                return None;
            }
            let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
            let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
            udp(src.into(), dst.into(), &pkt[ihl..total])
        }
        6 => {
            if pkt.len() < 40 {
                return None;
            }
            let plen = usize::from(be16(pkt, 4)?);
            let end = (40 + plen).min(pkt.len());
            let src: [u8; 16] = pkt[8..24].try_into().ok()?;
            let dst: [u8; 16] = pkt[24..40].try_into().ok()?;
            let (mut next, mut at) = (pkt[6], 40usize);
            // Skip extension headers that may precede UDP (0 hop-by-hop, 43 routing, 60 dest).
            while matches!(next, 0 | 43 | 60) {
                next = *pkt.get(at)?;
                at += (usize::from(*pkt.get(at + 1)?) + 1) * 8;
            }
            if next != 17 || at > end {
                return None;
            }
            udp(
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                &pkt[at..end],
            )
        }
        _ => None,
    }
}

fn checksum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IP packet carrying `payload` in UDP from `src` to `dst` (both IPv4 or both IPv6; a
/// mixed pair is written as IPv6 with IPv4-mapped addresses), checksums filled in.
pub fn build_ip(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut seg = Vec::with_capacity(udp_len);
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&(udp_len as u16).to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(payload);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = checksum_add(0, &s.octets());
            pseudo = checksum_add(pseudo, &d.octets());
            pseudo += 17 + udp_len as u32;
            let c = fold(checksum_add(pseudo, &seg));
            seg[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            let total = (20 + udp_len) as u16;
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let hc = fold(checksum_add(0, &ip));
            ip[10..12].copy_from_slice(&hc.to_be_bytes());
            ip.extend_from_slice(&seg);
            ip
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(x) => x.to_ipv6_mapped(),
                IpAddr::V6(x) => x,
            };
            let (s, d) = (v6(s), v6(d));
            let mut pseudo = checksum_add(0, &s.octets());
            pseudo = checksum_add(pseudo, &d.octets());
            pseudo += 17 + udp_len as u32;
            let c = fold(checksum_add(pseudo, &seg));
            seg[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
            ip.extend_from_slice(&[17, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&seg);
            ip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse_v4_v6() {
        for (s, d) in [
            ("10.1.2.3:4000", "10.9.8.7:5000"),
            ("[2001:db8::1]:4000", "[2001:db8::2]:5000"),
        ] {
            let (s, d): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let pkt = build_ip(s, d, b"hello rtp");
            let g = parse_ip(&pkt).unwrap();
            assert_eq!((g.src, g.dst, g.payload), (s, d, &b"hello rtp"[..]));
        }
        let pkt = build_ip(
            "10.1.2.3:4000".parse().unwrap(),
            "10.9.8.7:5000".parse().unwrap(),
            b"x",
        );
        // IPv4 header checksum over a correct header folds to zero.
        assert_eq!(fold(checksum_add(0, &pkt[..20])), 0);
        let mut frag = pkt.clone();
        frag[7] = 1;
        assert!(parse_ip(&frag).is_none());
        assert!(parse_ip(&pkt[..25]).is_none());
        assert!(parse_ip(&[]).is_none());
        println!(
            "  ok   IPv4/IPv6 UDP built and parsed back; fragments and truncated packets refused"
        );
    }
}
