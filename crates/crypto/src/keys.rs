//! Minting API keys and tokens, and the hash under which a key is looked up.
//!
//! Only two things about a key are ever stored: its lookup hash and its HMAC signing key
//! (sealed). The plaintext exists once, in the answer that mints it.

pub use alter_proto::keyfmt::KeyType;

use alter_proto::keyfmt::{self, ALPHABET, LEGACY_BODY_LEN, SCOPED_RANDOM_LEN};
use alter_proto::signing::{self, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CryptoError, random_bytes};

/// The 64 characters of a legacy key body.
const LEGACY_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Domain separation of lookup hashes.
const LOOKUP_CONTEXT: &[u8] = b"alter/v1/key-lookup\0";

/// A freshly minted API key: the plaintext (shown once) and what the server stores.
pub struct MintedApiKey {
    /// The plaintext key for the one answer that shows it.
    pub plaintext: SecretString,
    /// SHA-256 under which the key is found again.
    pub lookup_hash: [u8; 32],
    /// HMAC key requests are signed with; sealed before it is stored.
    pub signing_key: Zeroizing<SigningKey>,
    /// Display prefix.
    pub prefix: String,
}

impl std::fmt::Debug for MintedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MintedApiKey({}…)", self.prefix)
    }
}

/// Which grammar to mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyShape {
    /// `alter_<type>_<22>_<6>`.
    Scoped(KeyType),
    /// `alter_key_<40>`: the shape of managed-agent keys.
    Legacy,
}

/// Mints a key of the given shape: 110 random bits for scoped keys, 240 for legacy keys.
pub fn mint(shape: KeyShape) -> Result<MintedApiKey, CryptoError> {
    let plaintext = match shape {
        KeyShape::Scoped(kind) => {
            let random = random_string::<SCOPED_RANDOM_LEN>(ALPHABET)?;
            keyfmt::format_scoped(kind, &random)
        }
        KeyShape::Legacy => format!(
            "{}{}",
            keyfmt::LEGACY_PREFIX,
            random_string::<LEGACY_BODY_LEN>(LEGACY_ALPHABET)?
        ),
    };
    Ok(MintedApiKey {
        lookup_hash: lookup_hash(&plaintext),
        signing_key: Zeroizing::new(signing::signing_key(&plaintext)),
        prefix: keyfmt::display_prefix(&plaintext),
        plaintext: SecretString::from(plaintext),
    })
}

/// The hash a key is stored and looked up under. Keys carry at least 110 random bits, so a
/// plain domain-separated SHA-256 cannot be reversed.
pub fn lookup_hash(key: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(LOOKUP_CONTEXT);
    hasher.update(key.as_bytes());
    hasher.finalize().into()
}

/// A bearer token such as the operator admin token: `<prefix>` + 256 random bits, base64url.
pub fn mint_token(prefix: &str) -> Result<SecretString, CryptoError> {
    let bytes = Zeroizing::new(random_bytes::<32>()?);
    Ok(SecretString::from(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_slice())
    )))
}

/// SHA-256 of a bearer token, for constant-time comparison without keeping the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `N` characters drawn uniformly from an alphabet of 32 or 64 characters (a power of two, so
/// masking the random byte is unbiased).
fn random_string<const N: usize>(alphabet: &[u8]) -> Result<String, CryptoError> {
    debug_assert!(alphabet.len().is_power_of_two() && alphabet.len() <= 256);
    let mask = (alphabet.len() - 1) as u8;
    let bytes = Zeroizing::new(random_bytes::<N>()?);
    Ok(bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(b & mask)]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn minted_keys_parse_and_sign_like_the_client() {
        for shape in [
            KeyShape::Scoped(KeyType::Runtime),
            KeyShape::Scoped(KeyType::Derived),
            KeyShape::Legacy,
        ] {
            let key = mint(shape).unwrap();
            let plain = key.plaintext.expose_secret();
            let format = keyfmt::parse(plain).unwrap();
            match shape {
                KeyShape::Scoped(kind) => assert_eq!(format, keyfmt::KeyFormat::Scoped(kind)),
                KeyShape::Legacy => assert_eq!(format, keyfmt::KeyFormat::Legacy),
            }
            assert_eq!(key.lookup_hash, lookup_hash(plain));
            assert_eq!(*key.signing_key, signing::signing_key(plain));
            assert!(plain.starts_with(&key.prefix));
            assert!(!format!("{key:?}").contains(plain));
        }
    }

    #[test]
    fn minted_keys_are_distinct() {
        let a = mint(KeyShape::Scoped(KeyType::Runtime)).unwrap();
        let b = mint(KeyShape::Scoped(KeyType::Runtime)).unwrap();
        assert_ne!(a.plaintext.expose_secret(), b.plaintext.expose_secret());
    }

    #[test]
    fn tokens_have_prefix_and_entropy() {
        let token = mint_token("alter_admin_").unwrap();
        assert!(token.expose_secret().starts_with("alter_admin_"));
        assert_eq!(token.expose_secret().len(), "alter_admin_".len() + 43);
    }
}
