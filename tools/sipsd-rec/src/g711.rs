//! G.711 (ITU-T G.711) mu-law and A-law to 16-bit linear PCM, through two 256-entry tables
//! built once from the standard's segment/quantisation rules.

use std::sync::OnceLock;

/// Which G.711 law.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// mu-law (PCMU, RTP payload type 0).
    Mu,
    /// A-law (PCMA, RTP payload type 8).
    A,
}

fn ulaw(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    // Biased magnitude: ((mantissa << 3) + 0x84) << exponent, minus the bias 0x84.
    let mag = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -mag } else { mag }) as i16
}

fn alaw(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let mag = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { mag } else { -mag }) as i16
}

type Table = OnceLock<[i16; 256]>;

fn table(law: Law) -> &'static [i16; 256] {
    static MU: Table = OnceLock::new();
    static A: Table = OnceLock::new();
    let (cell, f): (&Table, fn(u8) -> i16) = match law {
        Law::Mu => (&MU, ulaw),
        Law::A => (&A, alaw),
    };
    cell.get_or_init(|| std::array::from_fn(|i| f(i as u8)))
}

/// Decodes G.711 bytes, one sample each, appending to `out`.
pub fn decode(law: Law, bytes: &[u8], out: &mut Vec<i16>) {
    let t = table(law);
    out.extend(bytes.iter().map(|&b| t[usize::from(b)]));
}

/// One sample.
pub fn decode_one(law: Law, byte: u8) -> i16 {
    table(law)[usize::from(byte)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // Values of the G.711 reference decoder (and ffmpeg's pcm_mulaw/pcm_alaw decoders).
        assert_eq!(decode_one(Law::Mu, 0xff), 0);
        assert_eq!(decode_one(Law::Mu, 0x7f), 0);
        assert_eq!(decode_one(Law::Mu, 0x00), -32124);
        assert_eq!(decode_one(Law::Mu, 0x80), 32124);
        assert_eq!(decode_one(Law::Mu, 0xfe), 8);
        assert_eq!(decode_one(Law::A, 0xd5), 8);
        assert_eq!(decode_one(Law::A, 0x55), -8);
        assert_eq!(decode_one(Law::A, 0xaa), 32256);
        assert_eq!(decode_one(Law::A, 0x2a), -32256);
        let mut v = Vec::new();
        decode(Law::Mu, &[0xff, 0x80], &mut v);
        assert_eq!(v, [0, 32124]);
        // Monotonic within each sign half.
        let pos: Vec<i16> = (0x80..=0xffu8)
            .rev()
            .map(|b| decode_one(Law::Mu, b))
            .collect();
        assert!(pos.windows(2).all(|w| w[0] <= w[1]));
        println!("  ok   G.711 mu-law/A-law tables: reference values, monotonic");
    }
}
