//! Hex for key identifiers and key files (lower case out, either case in).
//!
//! The `_secret` / `_into` forms are for key material: they write into one buffer of the final
//! size (no reallocation, no per-byte temporaries left behind unzeroized).

use zeroize::Zeroizing;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex into `out`, which must have room for `t.len() / 2` bytes without growing.
fn decode_into(t: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if t.len() % 2 != 0 {
        return None;
    }
    for pair in t.chunks(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(())
}

/// Decodes hex, ignoring surrounding white space; `None` if not hex or odd length.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let t = s.trim().as_bytes();
    let mut out = Vec::with_capacity(t.len() / 2);
    decode_into(t, &mut out)?;
    Some(out)
}

/// Decodes a hex secret (surrounding white space ignored) into a zeroizing buffer; `None` if
/// empty, not hex or of odd length.
pub fn decode_secret(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let t = text.trim_ascii();
    if t.is_empty() {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(t.len() / 2));
    decode_into(t, &mut out)?;
    Some(out)
}

/// Appends the lower-case hex of `bytes` to `out` (reserving first, so a zeroizing `out` of
/// enough capacity never reallocates).
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    encode_into(bytes, &mut out);
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::decode(" 70736B\n"), Some(b"psk".to_vec()));
        assert_eq!(super::encode(b"psk"), "70736b");
        assert_eq!(super::encode(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
        assert_eq!(super::decode("7"), None);
        assert_eq!(super::decode("zz"), None);
        assert_eq!(super::decode(""), Some(vec![]));
    }

    #[test]
    fn secrets() {
        let k = super::decode_secret(b"00ff10\n").unwrap();
        assert_eq!(k.as_slice(), &[0, 255, 16]);
        assert_eq!(k.capacity(), 3);
        assert_eq!(
            super::decode_secret(b"  AbCd ").unwrap().as_slice(),
            &[0xab, 0xcd]
        );
        assert!(super::decode_secret(b"abc").is_none());
        assert!(super::decode_secret(b"zz").is_none());
        assert!(super::decode_secret(b"").is_none());
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(8));
        super::encode_into(&[0xde, 0xad], &mut out);
        assert_eq!(&out[..], b"dead");
    }
}
