//! Classic libpcap files (the format tcpdump and Wireshark read and write): a writer for
//! raw-IP packets (LINKTYPE_RAW) and a reader for raw IP, Ethernet and Linux cooked captures.
//! Microsecond timestamps, either byte order on reading.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW: each packet starts with its IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_LINUX_SLL (`tcpdump -i any`).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Largest packet kept.
pub const SNAPLEN: u32 = 65535;

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;

/// Writes raw-IP packets to a pcap file.
pub struct PcapWriter {
    out: BufWriter<File>,
    packets: u64,
}

impl PcapWriter {
    /// Creates `path` with a LINKTYPE_RAW header.
    pub fn create(path: &Path) -> io::Result<PcapWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, packets: 0 })
    }

    /// Appends one IP packet captured at `at`.
    pub fn write(&mut self, at: SystemTime, ip_packet: &[u8]) -> io::Result<()> {
        let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = ip_packet.len().min(SNAPLEN as usize);
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&(d.as_secs() as u32).to_le_bytes());
        rec.extend_from_slice(&d.subsec_micros().to_le_bytes());
        rec.extend_from_slice(&(len as u32).to_le_bytes());
        rec.extend_from_slice(&(ip_packet.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&ip_packet[..len])?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes and closes.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        Ok(self.packets)
    }
}

/// One packet of a capture file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Capture time.
    pub at: SystemTime,
    /// The bytes as captured (link layer included).
    pub data: Vec<u8>,
}

/// A pcap file being read.
pub struct PcapReader {
    input: BufReader<File>,
    swap: bool,
    nanos: bool,
    linktype: u32,
}

fn bad(m: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.to_string())
}

impl PcapReader {
    /// Opens a pcap file and reads its header.
    pub fn open(path: &Path) -> io::Result<PcapReader> {
        let mut input = BufReader::new(File::open(path)?);
        let mut h = [0u8; 24];
        input.read_exact(&mut h)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swap, nanos) = match magic {
            MAGIC_US => (false, false),
            MAGIC_NS => (false, true),
            m if m.swap_bytes() == MAGIC_US => (true, false),
            m if m.swap_bytes() == MAGIC_NS => (true, true),
            _ => {
                return Err(bad(
                    "not a pcap file (pcapng is not read: tcpdump -w writes pcap)",
                ))
            }
        };
        let lt = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
        let linktype = if swap { lt.swap_bytes() } else { lt } & 0x0fff_ffff;
        Ok(PcapReader {
            input,
            swap,
            nanos,
            linktype,
        })
    }

    /// The capture's link type.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if self.swap {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_packet(&mut self) -> io::Result<Option<Packet>> {
        let mut rec = [0u8; 16];
        match self.input.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let secs = self.u32_at(&rec[0..4]);
        let frac = self.u32_at(&rec[4..8]);
        let caplen = self.u32_at(&rec[8..12]);
        if caplen > 262_144 {
            return Err(bad("pcap record larger than 256 KiB"));
        }
        let mut data = vec![0u8; caplen as usize];
        self.input.read_exact(&mut data)?;
        let sub = if self.nanos {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        Ok(Some(Packet {
            at: UNIX_EPOCH + Duration::from_secs(u64::from(secs)) + sub,
            data,
        }))
    }

    /// Every packet.
    pub fn read_all(mut self) -> io::Result<Vec<Packet>> {
        let mut v = Vec::new();
        while let Some(p) = self.next_packet()? {
            v.push(p);
        }
        Ok(v)
    }
}

/// The IP packet inside a captured frame of `linktype`, if it carries IPv4 or IPv6.
pub fn ip_of(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    let (ethertype, at) = match linktype {
        LINKTYPE_RAW => return Some(frame),
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            let mut et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
            while et == 0x8100 || et == 0x88a8 {
                at += 4;
                et = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
            }
            (et, at + 2)
        }
        LINKTYPE_LINUX_SLL => (u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]), 16),
        _ => return None,
    };
    match ethertype {
        0x0800 | 0x86dd => frame.get(at..),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_link_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pcap");
        let mut w = PcapWriter::create(&p).unwrap();
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        w.write(t, &[0x45, 1, 2, 3]).unwrap();
        w.write(t + Duration::from_millis(20), &[0x60, 9]).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        let r = PcapReader::open(&p).unwrap();
        assert_eq!(r.linktype(), LINKTYPE_RAW);
        let all = r.read_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].at, t);
        assert_eq!(all[1].data, [0x60, 9]);
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00, 0x45, 7]);
        assert_eq!(ip_of(LINKTYPE_ETHERNET, &eth), Some(&[0x45, 7][..]));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(ip_of(LINKTYPE_LINUX_SLL, &sll), Some(&[0x60][..]));
        eth[12] = 0x08;
        eth[13] = 0x06; // ARP
        assert_eq!(ip_of(LINKTYPE_ETHERNET, &eth), None);
        std::fs::write(&p, b"not a capture at all....").unwrap();
        assert!(PcapReader::open(&p).is_err());
        println!("  ok   pcap: raw-IP written and read back with timestamps; Ethernet/SLL frames unwrapped; junk refused");
    }
}
