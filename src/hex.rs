//! Hex for key identifiers and key files (lower case out, either case in).

/// Decodes hex, ignoring surrounding white space; `None` if not hex or odd length.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::decode(" 70736B\n"), Some(b"psk".to_vec()));
        assert_eq!(super::encode(b"psk"), "70736b");
        assert_eq!(super::decode("7"), None);
        assert_eq!(super::decode("zz"), None);
    }
}
