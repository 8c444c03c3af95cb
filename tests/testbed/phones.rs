//! Helpers of tests/docker_phones.rs (the softphones of docker/compose.phones.yml): driving
//! baresip through sipsd-phonectl, what a phone heard (its recordings), the SIP and SRTP in a
//! capture, waiting on logs.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{text, Testbed};
use crate::support::pcap::Datagram;
use crate::support::procs::wait_for;
use crate::support::sip::SipMsg;

pub fn set_env(tb: &mut Testbed, k: &str, v: &str) {
    tb.env.retain(|(name, _)| name != k);
    tb.env.push((k.to_string(), v.to_string()));
}

/// `sipsd-phonectl ARGS` in a phone's container: baresip's answer.
pub fn phone(tb: &Testbed, who: &str, args: &str) -> String {
    let o = tb.exec(who, &format!("sipsd-phonectl {args}"));
    check!(
        o.status.success(),
        "{who}: ctrl_tcp `{args}` accepted ({})",
        text(&o).trim()
    );
    text(&o)
}

/// The dominant frequency of a 16-bit PCM WAV file (its first channel, the middle two seconds
/// at most), by a Goertzel scan from 100 Hz to 3900 Hz in 5 Hz steps; with the share of the
/// scanned power at that frequency (±10 Hz) and the seconds of audio in the file.
pub fn dominant_hz(wav: &[u8]) -> (u32, f64, f64) {
    dominant_hz_in(wav, None)
}

/// [`dominant_hz`] of the part of the file from `from` to `to` seconds (`None`: the middle two
/// seconds at most); the seconds are those of the whole file.
pub fn dominant_hz_in(wav: &[u8], part: Option<(f64, f64)>) -> (u32, f64, f64) {
    assert!(
        wav.len() > 12 && &wav[..4] == b"RIFF" && &wav[8..12] == b"WAVE",
        "not a WAV file"
    );
    let (mut rate, mut channels, mut bits, mut data) = (0u32, 0usize, 0u16, &wav[..0]);
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes(wav[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &wav[at + 8..(at + 8 + len).min(wav.len())];
        if id == b"fmt " && body.len() >= 16 {
            channels = u16::from_le_bytes([body[2], body[3]]) as usize;
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            data = body;
        }
        at += 8 + len + (len & 1);
    }
    assert!(
        bits == 16 && channels >= 1 && rate > 0,
        "16-bit PCM expected: {bits} bits, {channels} channels, {rate} Hz"
    );
    let samples: Vec<f64> = data
        .chunks_exact(2 * channels)
        .map(|f| f64::from(i16::from_le_bytes([f[0], f[1]])))
        .collect();
    let seconds = samples.len() as f64 / f64::from(rate);
    let block = match part {
        Some((from, to)) => {
            let at = |s: f64| ((s.max(0.0) * f64::from(rate)) as usize).min(samples.len());
            &samples[at(from)..at(to).max(at(from))]
        }
        None => {
            let n = samples.len().min(2 * rate as usize);
            let start = (samples.len() - n) / 2;
            &samples[start..start + n]
        }
    };
    let power = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for x in block {
            let s = x + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - c * s1 * s2
    };
    let scan: Vec<(u32, f64)> = (20..=780)
        .map(|i| (i * 5, power(f64::from(i * 5))))
        .collect();
    let total: f64 = scan.iter().map(|(_, p)| p).sum();
    let (best, _) = scan
        .iter()
        .copied()
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let near: f64 = scan
        .iter()
        .filter(|(f, _)| f.abs_diff(best) <= 10)
        .map(|(_, p)| p)
        .sum();
    (best, if total > 0.0 { near / total } else { 0.0 }, seconds)
}

/// The largest `*-dec.wav` (what the phone decoded: what its user heard) in a phone's
/// recording directory.
pub fn heard(tb: &Testbed, who: &str) -> Option<PathBuf> {
    fs::read_dir(tb.work.join("rec").join(who))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
}

/// Shannon entropy of a byte string, in bits per byte.
pub fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The SIP messages among the datagrams (by `is_sip` on the addresses), parsed.
pub fn sip_of(grams: &[Datagram], is_sip: impl Fn(&Datagram) -> bool) -> Vec<(usize, SipMsg)> {
    grams
        .iter()
        .enumerate()
        .filter(|(_, g)| is_sip(g))
        .map(|(i, g)| (i, SipMsg::parse(false, &g.payload)))
        .filter(|(_, m)| !m.start.is_empty())
        .collect()
}

/// The plain SDP bodies of `call` that alice exchanged with edge A (her capture's SIP: the
/// datagrams not to or from her media address `a_media`).
pub fn plain_sdp(at_alice: &[Datagram], a_media: [u8; 4], call: &str) -> Vec<SipMsg> {
    sip_of(at_alice, |g| g.src != a_media && g.dst != a_media)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.call_id() == call && m.header("content-type") == Some("application/sdp"))
        .collect()
}

/// The `inline:` keys of the SDP bodies in `msgs`.
pub fn srtp_keys(msgs: &[&SipMsg]) -> Vec<String> {
    let mut keys: Vec<String> = msgs
        .iter()
        .flat_map(|m| {
            String::from_utf8_lossy(&m.body)
                .lines()
                .filter_map(|l| l.split("inline:").nth(1))
                .map(|k| k.split(['|', ' ']).next().unwrap_or("").trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|k| !k.is_empty())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Waits until `who`'s log holds `needle` at least `n` times.
pub fn wait_log(tb: &Testbed, who: &str, needle: &str, n: usize, limit: Duration) -> bool {
    wait_for(limit, || tb.logs(who).matches(needle).count() >= n)
}

/// Sleeps until `secs` after `since`.
pub fn until(since: Instant, secs: f64) {
    let at = since + Duration::from_secs_f64(secs);
    if let Some(d) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}
