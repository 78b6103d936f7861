//! The vault's ES256 (ECDSA P-256, SHA-256) signing key for identity assertions: generated once,
//! kept as PKCS#8 (the caller seals it), published as a JWK whose `kid` is its RFC 7638
//! thumbprint.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::CryptoError;

/// An ES256 key pair.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public().kid())
            .finish_non_exhaustive()
    }
}

/// The public half of a [`SigningKey`]: the JWK coordinates, base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// The x coordinate.
    pub x: String,
    /// The y coordinate.
    pub y: String,
}

impl PublicJwk {
    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexical order, base64url.
    pub fn kid(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.x, self.y
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

impl SigningKey {
    /// A new key pair and its PKCS#8 document (to seal and store).
    pub fn generate() -> Result<(SigningKey, Zeroizing<Vec<u8>>), CryptoError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| CryptoError::Internal)?;
        let document = Zeroizing::new(pkcs8.as_ref().to_vec());
        Ok((SigningKey::from_pkcs8(&document)?, document))
    }

    /// The key pair of a stored PKCS#8 document.
    pub fn from_pkcs8(document: &[u8]) -> Result<SigningKey, CryptoError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document)
            .map_err(|_| CryptoError::CannotOpen)?;
        Ok(SigningKey { pair })
    }

    /// The public key as JWK coordinates.
    pub fn public(&self) -> PublicJwk {
        // Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = self.pair.public_key().as_ref();
        let coordinates = point.get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        PublicJwk {
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        }
    }

    /// The JWS signature (`R || S`, 64 bytes) of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| CryptoError::Internal)?;
        Ok(signature.as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn a_stored_key_signs_verifiably_under_the_same_kid() {
        let (key, document) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&document).unwrap();
        assert_eq!(key.public(), again.public());
        assert_eq!(key.public().kid().len(), 43);
        let signature = again.sign(b"header.payload").unwrap();
        assert_eq!(signature.len(), 64);
        let public = key.pair.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public)
            .verify(b"header.payload", &signature)
            .unwrap();
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(&*document)));
    }
}
