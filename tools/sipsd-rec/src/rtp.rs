//! RTP and RTCP headers (RFC 3550) and the per-SSRC reception statistics a recording reports:
//! extended sequence numbers across wrap-around, loss, reordering and duplicates.

/// The fixed part of an RTP header and where the payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload start offset.
    pub payload_start: usize,
    /// Payload end offset (padding excluded).
    pub payload_end: usize,
}

/// True if the datagram looks like RTCP rather than RTP (RFC 5761 §4: packet types 192-223
/// in the second byte).
pub fn is_rtcp(pkt: &[u8]) -> bool {
    pkt.len() >= 8 && pkt[0] >> 6 == 2 && (192..=223).contains(&pkt[1])
}

/// The SSRC of an (S)RTP or (S)RTCP packet (bytes 8..12 for RTP, 4..8 for RTCP).
pub fn ssrc_of(pkt: &[u8], rtcp: bool) -> Option<u32> {
    let at = if rtcp { 4 } else { 8 };
    Some(u32::from_be_bytes(pkt.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the RTP header of a (decrypted) packet.
pub fn parse(pkt: &[u8]) -> Option<RtpHeader> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(pkt[0] & 0x0f);
    let mut start = 12 + 4 * cc;
    if pkt[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*pkt.get(start + 2)?, *pkt.get(start + 3)?]);
        start += 4 + 4 * usize::from(words);
    }
    let mut end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*pkt.last()?))?;
    }
    if start > end {
        return None;
    }
    Some(RtpHeader {
        marker: pkt[1] & 0x80 != 0,
        payload_type: pkt[1] & 0x7f,
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        payload_start: start,
        payload_end: end,
    })
}

/// Reception statistics of one SSRC, over extended (ROC << 16 | seq) sequence numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqStats {
    first: Option<u64>,
    highest: u64,
    /// Distinct packets received.
    pub received: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets seen twice (libsrtp's replay check refuses them).
    pub duplicates: u64,
}

impl SeqStats {
    /// The extended sequence number of `seq` next to the highest seen (RFC 3711 §3.3.1), or
    /// `roc << 16 | seq` for the first packet.
    pub fn extend(&self, seq: u16, first_roc: u32) -> u64 {
        let Some(_) = self.first else {
            return (u64::from(first_roc) << 16) | u64::from(seq);
        };
        let roc = self.highest >> 16;
        let s_l = (self.highest & 0xffff) as i64;
        let s = i64::from(seq);
        let v = if s_l < 32768 {
            if s - s_l > 32768 {
                roc.wrapping_sub(1)
            } else {
                roc
            }
        } else if s_l - 32768 > s {
            roc + 1
        } else {
            roc
        };
        (v << 16) | u64::from(seq)
    }

    /// Counts a packet with extended sequence number `ext` (already authenticated, not a
    /// duplicate).
    pub fn record(&mut self, ext: u64) {
        match self.first {
            None => {
                self.first = Some(ext);
                self.highest = ext;
            }
            Some(first) => {
                if ext > self.highest {
                    self.highest = ext;
                } else {
                    self.reordered += 1;
                }
                if ext < first {
                    self.first = Some(ext);
                }
            }
        }
        self.received += 1;
    }

    /// First and highest extended sequence numbers.
    pub fn range(&self) -> Option<(u64, u64)> {
        self.first.map(|f| (f, self.highest))
    }

    /// Packets expected between the first and the highest.
    pub fn expected(&self) -> u64 {
        self.range().map_or(0, |(f, h)| h - f + 1)
    }

    /// Packets never received between the first and the highest.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_stats() {
        let mut p = vec![0x90, 0x80, 0xff, 0xfe, 0, 0, 1, 0, 0, 0, 0, 9];
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
        p.extend_from_slice(&[7u8; 160]);
        let h = parse(&p).unwrap();
        assert_eq!(
            (h.marker, h.payload_type, h.seq, h.ssrc),
            (true, 0, 0xfffe, 9)
        );
        assert_eq!((h.payload_start, h.payload_end), (20, 180));
        assert!(!is_rtcp(&p));
        assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 9]));
        assert_eq!(ssrc_of(&[0x80, 200, 0, 6, 0, 0, 0, 9], true), Some(9));
        let mut s = SeqStats::default();
        // Around a wrap: 65534, 65535, 1 (0 lost), 2, then 0 arrives late.
        let mut exts = Vec::new();
        for seq in [65534u16, 65535, 1, 2, 0] {
            let e = s.extend(seq, 0);
            exts.push(e);
            s.record(e);
        }
        assert_eq!(exts, [65534, 65535, 65537, 65538, 65536]);
        assert_eq!(
            (s.expected(), s.received, s.lost(), s.reordered),
            (5, 5, 0, 1)
        );
        let mut t = SeqStats::default();
        for seq in [10u16, 11, 14] {
            let e = t.extend(seq, 2);
            t.record(e);
        }
        assert_eq!(t.range(), Some(((2 << 16) + 10, (2 << 16) + 14)));
        assert_eq!(t.lost(), 2);
        assert!(parse(&[0x80, 0]).is_none());
        println!("  ok   RTP header (CSRC/extension/padding), RTCP detection, extended seq across wrap, loss/reorder counts");
    }
}
