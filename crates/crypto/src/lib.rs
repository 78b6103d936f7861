//! Alter's cryptography: the keyring and envelope encryption (design §5), API key minting and
//! lookup hashing, and constant-time comparison. Everything here uses aws-lc-rs.

mod envelope;
pub mod keys;
mod mac;
mod signing;

pub use envelope::{Binding, Kek, Keyring, MacRoot, MasterKey, WrappedKek};
pub use mac::MacKey;
pub use secrecy::{ExposeSecret, SecretString};
pub use signing::{PublicJwk, SigningKey};
pub use zeroize::Zeroizing;

/// Why a cryptographic operation failed. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key cannot unwrap the stored key-encryption keys.
    #[error("the master key does not match the one this database was created with")]
    WrongMasterKey,
    /// The master key text is not base64 of 32 bytes.
    #[error("the master key must be 32 bytes, base64-encoded")]
    MalformedMasterKey,
    /// A sealed value was altered, truncated or moved to another record.
    #[error("sealed value cannot be opened (altered, or bound to another record)")]
    CannotOpen,
    /// A sealed value names a KEK version this keyring does not have.
    #[error("sealed value uses unknown key-encryption key version {0}")]
    UnknownKekVersion(u32),
    /// The keyring holds no KEK.
    #[error("the keyring holds no key-encryption key")]
    NoKek,
    /// The database holds a KEK version without a valid endorsement.
    #[error(
        "the database holds key-encryption key version {0} without a valid endorsement (Alter \
         endorses every KEK it adds under the audit MAC root): refusing to seal secrets under a \
         key someone else may have planted"
    )]
    UnexpectedKekVersion(u32),
    /// The system random source or the cipher failed.
    #[error("cryptographic backend failure")]
    Internal,
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Internal)?;
    Ok(out)
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
    }
}
