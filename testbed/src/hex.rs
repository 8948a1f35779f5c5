//! Lower-case hex for digests.
//!
//! digest 0.11 returns `hybrid_array::Array`, which does not implement `LowerHex`, so
//! `{:x}` cannot be used on a hash output.

/// Lower-case hex of `bytes`, two characters per byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Random upper-case hex of `len` characters: Box session and part ids look like this.
pub(crate) fn random_upper(len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789ABCDEF"[fastrand::usize(..16)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn random_upper_has_the_asked_length() {
        let id = random_upper(8);
        assert_eq!(id.len(), 8);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }
}
