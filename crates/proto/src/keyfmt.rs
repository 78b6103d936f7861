//! API key grammar and checksum (protocol part 1 §2).
//!
//! Two shapes exist: the legacy `alter_key_<40>` form (app keys from before scoping and the
//! keys of managed agents) and the scoped `alter_<type>_<22>_<6>` form whose last segment is a
//! CRC-32 typo guard. The checksum is not a security check: the server still authenticates the
//! whole key.

use std::fmt;

/// The base-32 alphabet of the random and checksum segments of a scoped key.
pub const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Length of the random segment of a scoped key.
pub const SCOPED_RANDOM_LEN: usize = 22;
/// Length of the checksum segment of a scoped key.
pub const CHECKSUM_LEN: usize = 6;
/// Length of the body of a legacy key (after `alter_key_`).
pub const LEGACY_BODY_LEN: usize = 40;
/// Prefix of legacy keys.
pub const LEGACY_PREFIX: &str = "alter_key_";

/// The `<type>` segment of a scoped key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `rk`: runtime key of an app (operator).
    Runtime,
    /// `ak`: agent-typed key bound to no managed agent.
    Agent,
    /// `dk`: short-lived key derived from another key.
    Derived,
    /// `pk`: publishable key.
    Publishable,
}

impl KeyType {
    /// The two-letter wire form (`rk`, `ak`, `dk`, `pk`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Runtime => "rk",
            KeyType::Agent => "ak",
            KeyType::Derived => "dk",
            KeyType::Publishable => "pk",
        }
    }

    /// Parses the two-letter wire form.
    pub fn parse(s: &str) -> Option<KeyType> {
        match s {
            "rk" => Some(KeyType::Runtime),
            "ak" => Some(KeyType::Agent),
            "dk" => Some(KeyType::Derived),
            "pk" => Some(KeyType::Publishable),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which grammar a well-formed key follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `alter_key_<40 chars of A–Z a–z 0–9 - _>`, no checksum.
    Legacy,
    /// `alter_<type>_<22>_<6>` with a valid checksum.
    Scoped(KeyType),
}

/// Why a string is not a well-formed API key. Deliberately coarse: the server answers every
/// malformed key with the same `invalid_key` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedKey;

impl fmt::Display for MalformedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed API key")
    }
}

impl std::error::Error for MalformedKey {}

/// Checks a key against both grammars, including the scoped checksum.
pub fn parse(key: &str) -> Result<KeyFormat, MalformedKey> {
    if let Some(body) = key.strip_prefix(LEGACY_PREFIX) {
        let legacy_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if body.len() == LEGACY_BODY_LEN && body.bytes().all(legacy_char) {
            return Ok(KeyFormat::Legacy);
        }
        return Err(MalformedKey);
    }
    let mut parts = key.split('_');
    let (Some("alter"), Some(kind), Some(random), Some(check), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(MalformedKey);
    };
    let kind = KeyType::parse(kind).ok_or(MalformedKey)?;
    let in_alphabet = |s: &str| s.bytes().all(|b| ALPHABET.contains(&b));
    if random.len() != SCOPED_RANDOM_LEN || !in_alphabet(random) || check.len() != CHECKSUM_LEN {
        return Err(MalformedKey);
    }
    if checksum(kind, random) != check {
        return Err(MalformedKey);
    }
    Ok(KeyFormat::Scoped(kind))
}

/// The six-character checksum of a scoped key: CRC-32 of `<type>:<random>`, five bits per
/// character, lowest bits first.
pub fn checksum(kind: KeyType, random: &str) -> String {
    let crc = crc32(format!("{}:{random}", kind.as_str()).as_bytes());
    (0..CHECKSUM_LEN)
        .map(|i| char::from(ALPHABET[((crc >> (5 * i)) & 0x1f) as usize]))
        .collect()
}

/// Builds a scoped key from its type and random segment (which must use [`ALPHABET`]).
pub fn format_scoped(kind: KeyType, random: &str) -> String {
    format!(
        "alter_{}_{random}_{}",
        kind.as_str(),
        checksum(kind, random)
    )
}

/// The part of a key that may be shown after minting (`alter_rk_abcdefgh…`): the type and
/// the first eight random characters, never enough to use the key.
pub fn display_prefix(key: &str) -> String {
    let visible = if key.starts_with(LEGACY_PREFIX) {
        LEGACY_PREFIX.len() + 8
    } else {
        "alter_rk_".len() + 8
    };
    key.chars().take(visible).collect()
}

/// CRC-32 (IEEE, reflected polynomial 0xEDB88320), as zlib computes it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protocol part 1 §2.2 vectors.
    const VECTORS: &[(&str, u32, &str, &str)] = &[
        (
            "rk:abcdefghijklmnopqrstuv",
            0x1aac3ec8,
            "iwpykn",
            "alter_rk_abcdefghijklmnopqrstuv_iwpykn",
        ),
        (
            "ak:aaaaaaaaaaaaaaaaaaaaaa",
            0x7b56eed6,
            "ww3nv5",
            "alter_ak_aaaaaaaaaaaaaaaaaaaaaa_ww3nv5",
        ),
        (
            "dk:234567234567234567abcd",
            0xa231f9ff,
            "7p6ddr",
            "alter_dk_234567234567234567abcd_7p6ddr",
        ),
        (
            "pk:zzzzzzzzzzzzzzzzzzzzzz",
            0x731982fb,
            "3xatrz",
            "alter_pk_zzzzzzzzzzzzzzzzzzzzzz_3xatrz",
        ),
    ];

    #[test]
    fn checksum_vectors() {
        for (body, crc, check, key) in VECTORS {
            assert_eq!(crc32(body.as_bytes()), *crc, "{body}");
            let (kind, random) = body.split_once(':').unwrap();
            let kind = KeyType::parse(kind).unwrap();
            assert_eq!(checksum(kind, random), *check);
            assert_eq!(format_scoped(kind, random), *key);
            assert_eq!(parse(key), Ok(KeyFormat::Scoped(kind)));
        }
    }

    #[test]
    fn rejects_malformed_keys() {
        for key in [
            "",
            "alter_rk_abcdefghijklmnopqrstuv_iwpyka", // bad checksum
            "alter_xk_abcdefghijklmnopqrstuv_iwpykn", // unknown type
            "alter_rk_abcdefghijklmnopqrstu_iwpykn",  // short random
            "alter_rk_ABCDEFGHIJKLMNOPQRSTUV_iwpykn", // case-sensitive
            "alter_rk_abcdefghijklmnopqrstuv_iwpykn_", // extra segment
            " alter_rk_abcdefghijklmnopqrstuv_iwpykn",
            "alter_key_short",
            "alter_key_0123456789012345678901234567890123456789x",
            "alter_key_012345678901234567890123456789012345678!",
        ] {
            assert_eq!(parse(key), Err(MalformedKey), "{key:?}");
        }
    }

    #[test]
    fn accepts_legacy_keys() {
        let key = format!("alter_key_{}", "aZ09-_".repeat(7).get(..40).unwrap());
        assert_eq!(parse(&key), Ok(KeyFormat::Legacy));
        assert_eq!(display_prefix(&key), "alter_key_aZ09-_aZ");
    }

    #[test]
    fn display_prefix_hides_the_secret_part() {
        assert_eq!(
            display_prefix("alter_rk_abcdefghijklmnopqrstuv_iwpykn"),
            "alter_rk_abcdefgh"
        );
    }
}
