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

/// A random version-4 UUID in its usual 8-4-4-4-12 lower-case form (Insights Hub error
/// ids, Edgio tokens).
pub(crate) fn uuid_v4() -> String {
    let h = hex(&uuid_v4_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The 16 bytes of a random version-4 UUID (Edgio writes some ids as their 32 hex
/// digits, without dashes).
pub(crate) fn uuid_v4_bytes() -> [u8; 16] {
    let mut b: [u8; 16] = fastrand::u128(..).to_le_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    b
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

    #[test]
    fn ids_look_like_uuids() {
        let id = uuid_v4();
        let groups: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(uuid_v4(), id);
    }
}
