//! A pcap capture's UDP datagrams (Linux cooked v1/v2, Ethernet or raw IP; IPv4 fragments
//! reassembled), and the plaintext detector that searches them.

use std::collections::BTreeMap;

use super::sip::find;

#[derive(Debug)]
pub struct Datagram {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub payload: Vec<u8>,
}

/// IPv4 fragments are reassembled per (source, destination, identification).
type FragKey = ([u8; 4], [u8; 4], u16);
/// (offset, more fragments follow, data)
type Fragment = (usize, bool, Vec<u8>);

/// The UDP datagrams of a pcap file. A truncated last record (the capture is still running)
/// is ignored.
pub fn pcap_datagrams(data: &[u8]) -> Vec<Datagram> {
    if data.len() < 24 {
        return Vec::new();
    }
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => panic!("not a pcap file (magic {magic:#x})"),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(data, 20);
    let l2 = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked v1
        276 => 20, // Linux cooked v2
        101 => 0,  // raw IP
        _ => panic!("unsupported link type {link}"),
    };
    let mut frags: BTreeMap<FragKey, Vec<Fragment>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32_at(data, at + 8) as usize;
        let start = at + 16;
        if start + incl > data.len() {
            break;
        }
        let pkt = &data[start..start + incl];
        at = start + incl;
        if pkt.len() < l2 + 20 {
            continue;
        }
        let ip = &pkt[l2..];
        if ip[0] >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        if ip[9] != 17 || total < ihl {
            continue;
        }
        let id = u16::from_be_bytes([ip[4], ip[5]]);
        let flags_off = u16::from_be_bytes([ip[6], ip[7]]);
        let more = flags_off & 0x2000 != 0;
        let off = usize::from(flags_off & 0x1fff) * 8;
        let src = [ip[12], ip[13], ip[14], ip[15]];
        let dst = [ip[16], ip[17], ip[18], ip[19]];
        let body = ip[ihl..total].to_vec();
        let whole = if !more && off == 0 {
            Some(body)
        } else {
            let list = frags.entry((src, dst, id)).or_default();
            if !list.iter().any(|f| f.0 == off) {
                list.push((off, more, body));
            }
            list.sort_by_key(|f| f.0);
            // complete: contiguous from 0 and the last has no "more fragments"
            let mut next = 0;
            let mut done = false;
            for f in list.iter() {
                if f.0 != next {
                    break;
                }
                next += f.2.len();
                if !f.1 {
                    done = true;
                }
            }
            if done {
                let list = frags.remove(&(src, dst, id)).unwrap_or_default();
                Some(list.into_iter().flat_map(|f| f.2).collect())
            } else {
                None
            }
        };
        if let Some(udp) = whole {
            if udp.len() >= 8 {
                out.push(Datagram {
                    src,
                    dst,
                    payload: udp[8..].to_vec(),
                });
            }
        }
    }
    out
}

/// How a needle is shown: SRTP keys (the 40-character `inline:` values) are never printed.
pub fn label(n: &str) -> String {
    if n.len() == 40 && !n.contains(' ') && !n.contains('=') {
        "an a=crypto inline key".to_string()
    } else {
        format!("{n:?}")
    }
}

/// The plaintext detector: where a needle occurs in a UDP payload of the capture (datagram
/// index), or anywhere in the raw file (across packets).
pub fn find_plaintext(raw: &[u8], grams: &[Datagram], needles: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    for n in needles {
        for (i, g) in grams.iter().enumerate() {
            if find(&g.payload, n.as_bytes()).is_some() {
                hits.push(format!("{} in datagram #{i}", label(n)));
            }
        }
        if find(raw, n.as_bytes()).is_some() {
            hits.push(format!("{} in the raw capture", label(n)));
        }
    }
    hits
}

/// `a.b.c.d` as bytes.
pub fn ip4(s: &str) -> [u8; 4] {
    let v: Vec<u8> = s.split('.').map(|p| p.parse().expect("IPv4")).collect();
    [v[0], v[1], v[2], v[3]]
}

/// `tcpdump` on the loopback interface for the UDP datagrams to or from `ports`, written
/// packet by packet (`-U`) to `DIR/NAME.pcap`; stopped (and the group killed) on drop.
pub struct LoopbackCapture {
    proc: super::procs::Proc,
    file: std::path::PathBuf,
}

impl LoopbackCapture {
    /// Starts the capture and waits (10 s at most) until tcpdump says it is listening.
    pub fn start(
        tcpdump: &std::path::Path,
        dir: &std::path::Path,
        name: &str,
        ports: &[u16],
    ) -> LoopbackCapture {
        let file = dir.join(format!("{name}.pcap"));
        let filter = format!(
            "udp and ({})",
            ports
                .iter()
                .map(|p| format!("port {p}"))
                .collect::<Vec<_>>()
                .join(" or ")
        );
        let mut cmd = std::process::Command::new(tcpdump);
        cmd.args(["-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0", "-w"])
            .arg(&file)
            .arg(&filter);
        let mut proc = super::procs::Proc::spawn(name, dir, &mut cmd);
        let listening = super::procs::wait_for(std::time::Duration::from_secs(10), || {
            proc.log_text().contains("listening on")
        });
        assert!(
            listening && proc.alive(),
            "tcpdump did not start: {}",
            proc.log_text()
        );
        LoopbackCapture { proc, file }
    }

    /// Stops tcpdump and returns the capture file's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.proc.stop();
        std::fs::read(&self.file).unwrap_or_default()
    }
}
