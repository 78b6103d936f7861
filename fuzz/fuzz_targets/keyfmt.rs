//! API key parsing (`alter_proto::keyfmt`). Checked beyond "no panic": a key that parses as
//! scoped is exactly `format_scoped` of its parts; a legacy one has the legacy shape; a scoped
//! key formatted from any random segment in the alphabet parses back with its type.
#![no_main]

use alter_proto::keyfmt::{
    self, ALPHABET, KeyFormat, KeyType, LEGACY_BODY_LEN, LEGACY_PREFIX, SCOPED_RANDOM_LEN,
};
use libfuzzer_sys::fuzz_target;

const TYPES: [KeyType; 4] = [
    KeyType::Runtime,
    KeyType::Agent,
    KeyType::Derived,
    KeyType::Publishable,
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = keyfmt::display_prefix(&text);
    match keyfmt::parse(&text) {
        Ok(KeyFormat::Scoped(kind)) => {
            let random = text.split('_').nth(2).unwrap_or_default();
            assert_eq!(keyfmt::format_scoped(kind, random), text);
        }
        Ok(KeyFormat::Legacy) => {
            assert!(text.starts_with(LEGACY_PREFIX));
            assert_eq!(text.len(), LEGACY_PREFIX.len() + LEGACY_BODY_LEN);
        }
        Err(_) => {}
    }
    // Any 22 bytes mapped onto the alphabet make a key that parses back.
    if let Some((&first, rest)) = data.split_first()
        && rest.len() >= SCOPED_RANDOM_LEN
    {
        let kind = TYPES[usize::from(first) % TYPES.len()];
        let random: String = rest[..SCOPED_RANDOM_LEN]
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        let key = keyfmt::format_scoped(kind, &random);
        assert_eq!(keyfmt::parse(&key), Ok(KeyFormat::Scoped(kind)));
        assert!(key.starts_with(&keyfmt::display_prefix(&key)));
    }
});
