//! Envelope encryption (design §5): a master key wraps versioned key-encryption keys (KEKs);
//! every sealed record has its own data key (DEK), wrapped by the current KEK; AES-256-GCM
//! everywhere, with associated data binding the app, the record and the kind of material, so a
//! ciphertext copied to another row fails to open.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

use crate::{CryptoError, MacKey, random_bytes};

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Format byte of blobs whose AAD is the binding alone.
const BLOB_FORMAT_V1: u8 = 1;
/// Format byte of blobs whose AAD also binds the value's version ([`Keyring::seal_versioned`]).
const BLOB_FORMAT_VERSIONED: u8 = 2;
/// Header of a blob: format, KEK version, DEK nonce, wrapped DEK, data nonce.
const BLOB_HEADER_LEN: usize = 1 + 4 + NONCE_LEN + KEY_LEN + TAG_LEN + NONCE_LEN;

/// What a sealed value is bound to. Opening with any other binding fails.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The kind of material, e.g. `api_key.signing` or `secret.value`.
    pub kind: &'a str,
    /// The owning app.
    pub app_id: &'a str,
    /// The record the ciphertext belongs to.
    pub record_id: &'a str,
}

impl Binding<'_> {
    /// Length-prefixed encoding, so no two bindings share an encoding. `version` is `None` for
    /// format-1 blobs (written before versions were bound), which keeps them opening.
    fn encode(&self, purpose: &str, version: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let parts = ["alter/v1", purpose, self.kind, self.app_id, self.record_id];
        for part in parts.into_iter().chain(version) {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// The root secret. It never touches the database; it only wraps KEKs.
pub struct MasterKey(SecretBox<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(MasterKey(SecretBox::new(Box::new(
            random_bytes::<KEY_LEN>()?,
        ))))
    }

    /// Parses the text form: base64 of 32 bytes, surrounding whitespace ignored.
    pub fn from_encoded(text: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::MalformedMasterKey)?,
        );
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MalformedMasterKey)?;
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// The text form written to a master key file.
    pub fn encode(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.expose_secret()))
    }

    fn aead(&self) -> Result<LessSafeKey, CryptoError> {
        aead_key(self.0.expose_secret())
    }

    /// A MAC key for `purpose` (such as `audit-chain/v1`), derived from the master key and
    /// never stored.
    pub fn derive_mac_key(&self, purpose: &str) -> MacKey {
        MacKey::derive(self.0.expose_secret(), purpose)
    }

    /// A short non-secret name of this key (8 hex digits of a MAC under it), so messages can
    /// tell two master key files apart without revealing either.
    pub fn fingerprint(&self) -> String {
        let tag = self
            .derive_mac_key("fingerprint/v1")
            .tag(&[b"alter master key"]);
        tag[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The MAC root of a database that stores none (created before MAC roots were stored
    /// wrapped): this master key's own bytes, so its audit chains keep verifying.
    pub fn legacy_mac_root(&self) -> MacRoot {
        MacRoot(SecretBox::new(Box::new(*self.0.expose_secret())))
    }

    /// Wraps `plaintext` (a KEK's or the MAC root's bytes) under the master key, bound to
    /// `context` (its associated data).
    pub fn wrap(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_raw(&self.aead()?, context.as_bytes(), plaintext)
    }

    /// Opens what [`Self::wrap`] wrapped for `context`; any other master key, context or
    /// altered bytes fail with [`CryptoError::WrongMasterKey`].
    pub fn unwrap(&self, context: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open_raw(&self.aead()?, context.as_bytes(), wrapped)
            .map_err(|_| CryptoError::WrongMasterKey)
    }

    /// Seals a small local file (such as `alter dev`'s saved credentials) directly under the
    /// master key; `purpose` must be given again to open it.
    pub fn seal_file(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_raw(
            &self.aead()?,
            format!("alter/v1/file/{purpose}").as_bytes(),
            plaintext,
        )
    }

    /// Opens what [`Self::seal_file`] sealed.
    pub fn open_file(
        &self,
        purpose: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open_raw(
            &self.aead()?,
            format!("alter/v1/file/{purpose}").as_bytes(),
            sealed,
        )
    }

    /// Generates a new KEK of the given version and returns it with its wrapped form, which is
    /// what the database stores.
    pub fn new_kek(&self, version: u32) -> Result<(Kek, WrappedKek), CryptoError> {
        let material = Kek::new_material()?;
        let wrapped = self.wrap(&Kek::context(version), material.as_slice())?;
        Ok((
            Kek::from_material(version, material.as_slice())?,
            WrappedKek { version, wrapped },
        ))
    }

    /// Unwraps a stored KEK. Fails with [`CryptoError::WrongMasterKey`] when this is not the
    /// master key the KEK was wrapped with.
    pub fn unwrap_kek(&self, stored: &WrappedKek) -> Result<Kek, CryptoError> {
        let material = self.unwrap(&Kek::context(stored.version), &stored.wrapped)?;
        Kek::from_material(stored.version, &material).map_err(|_| CryptoError::WrongMasterKey)
    }
}

/// The root the audit chain's and checkpoints' MAC keys are derived from. It never leaves the
/// process unwrapped: the database stores it wrapped by the key holder (or, in databases from
/// before, it is the local master key itself: [`MasterKey::legacy_mac_root`]).
pub struct MacRoot(SecretBox<[u8; KEY_LEN]>);

impl fmt::Debug for MacRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacRoot(<redacted>)")
    }
}

impl MacRoot {
    /// The context (associated data) the root is wrapped with.
    pub const CONTEXT: &'static str = "alter/v1/mac-root";

    /// A new random root.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(MacRoot(SecretBox::new(
            Box::new(random_bytes::<KEY_LEN>()?),
        )))
    }

    /// The root from its unwrapped bytes (32 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::CannotOpen)?;
        Ok(MacRoot(SecretBox::new(Box::new(key))))
    }

    /// The bytes, to be wrapped by a key holder.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// A MAC key for `purpose` (such as `audit-chain/v1`), derived from the root and never
    /// stored.
    pub fn derive_mac_key(&self, purpose: &str) -> MacKey {
        MacKey::derive(self.0.expose_secret(), purpose)
    }
}

/// A KEK as stored: its version and its bytes wrapped by the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKek {
    /// Version, increasing with every rotation.
    pub version: u32,
    /// Nonce + ciphertext + tag.
    pub wrapped: Vec<u8>,
}

/// An unwrapped key-encryption key.
pub struct Kek {
    version: u32,
    key: LessSafeKey,
}

impl Kek {
    /// The context (associated data) a KEK of `version` is wrapped with.
    pub fn context(version: u32) -> String {
        format!("alter/v1/kek/{version}")
    }

    /// Fresh random bytes for a new KEK.
    pub fn new_material() -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        Ok(Zeroizing::new(random_bytes::<KEY_LEN>()?))
    }

    /// The KEK of `version` from its unwrapped bytes (32 of them).
    pub fn from_material(version: u32, material: &[u8]) -> Result<Kek, CryptoError> {
        if material.len() != KEY_LEN {
            return Err(CryptoError::CannotOpen);
        }
        Ok(Kek {
            version,
            key: aead_key(material)?,
        })
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek(v{}, <redacted>)", self.version)
    }
}

/// Every KEK the process can use: the newest seals, all of them open.
#[derive(Debug)]
pub struct Keyring {
    current: u32,
    keks: BTreeMap<u32, Arc<Kek>>,
    /// The highest KEK version a blob named that this keyring lacks (0: none), so the owner
    /// can load the keys again: another node may already seal under a newer version.
    missing: AtomicU32,
}

impl Keyring {
    /// Builds the keyring from unwrapped KEKs; the highest version seals new values.
    pub fn new(keks: Vec<Kek>) -> Result<Self, CryptoError> {
        let keks: BTreeMap<u32, Arc<Kek>> =
            keks.into_iter().map(|k| (k.version, Arc::new(k))).collect();
        let current = *keks.keys().next_back().ok_or(CryptoError::NoKek)?;
        Ok(Keyring {
            current,
            keks,
            missing: AtomicU32::new(0),
        })
    }

    /// This keyring with the KEKs of `newer` added: only versions above the current one are
    /// taken, so a keyring never loses a version nor goes back to an older one.
    pub fn extended(&self, newer: Vec<Kek>) -> Keyring {
        let mut keks = self.keks.clone();
        for kek in newer.into_iter().filter(|k| k.version > self.current) {
            keks.insert(kek.version, Arc::new(kek));
        }
        let current = keks.keys().next_back().copied().unwrap_or(self.current);
        Keyring {
            current,
            keks,
            missing: AtomicU32::new(0),
        }
    }

    /// The KEK version new seals use.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// The versions this keyring holds, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.keks.keys().copied().collect()
    }

    /// The highest KEK version a blob asked for that this keyring does not hold, if any.
    pub fn missing_version(&self) -> Option<u32> {
        match self.missing.load(Ordering::Relaxed) {
            0 => None,
            version => Some(version),
        }
    }

    /// The KEK version a sealed blob's data key is wrapped under (`None` if it is no blob).
    pub fn kek_version_of(blob: &[u8]) -> Option<u32> {
        (blob.len() >= BLOB_HEADER_LEN + TAG_LEN
            && matches!(blob[0], BLOB_FORMAT_V1 | BLOB_FORMAT_VERSIONED))
        .then(|| u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
    }

    /// Re-wraps a blob's data key under the current KEK, keeping the sealed data as it is;
    /// `None` when it already is. `version` is the value's version for blobs sealed with
    /// [`Self::seal_versioned`] (ignored for the others), exactly as given to open it.
    pub fn rewrap(
        &self,
        binding: Binding<'_>,
        version: Option<&str>,
        blob: &[u8],
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        let (format, version, kek, wrapped_dek, data) = self.parts(version, blob)?;
        if kek.version == self.current {
            return Ok(None);
        }
        let aad = binding.encode("dek", version);
        let dek = open_raw(&kek.key, &aad, wrapped_dek)?;
        let current = self.keks.get(&self.current).ok_or(CryptoError::NoKek)?;
        let rewrapped = seal_raw(&current.key, &aad, &dek)?;
        let mut out = Vec::with_capacity(blob.len());
        out.push(format);
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&rewrapped);
        out.extend_from_slice(data);
        Ok(Some(out))
    }

    /// Seals `plaintext` under a fresh data key bound to `binding`.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_blob(BLOB_FORMAT_V1, binding, None, plaintext)
    }

    /// Seals `plaintext` bound to `binding` and to `version`, the value's version within its
    /// record: a ciphertext of an earlier version copied back into the record fails to open.
    pub fn seal_versioned(
        &self,
        binding: Binding<'_>,
        version: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal_blob(BLOB_FORMAT_VERSIONED, binding, Some(version), plaintext)
    }

    fn seal_blob(
        &self,
        format: u8,
        binding: Binding<'_>,
        version: Option<&str>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let kek = self.keks.get(&self.current).ok_or(CryptoError::NoKek)?;
        let dek = Zeroizing::new(random_bytes::<KEY_LEN>()?);
        let wrapped_dek = seal_raw(&kek.key, &binding.encode("dek", version), dek.as_slice())?;
        let data = seal_raw(
            &aead_key(dek.as_slice())?,
            &binding.encode("data", version),
            plaintext,
        )?;
        let mut blob = Vec::with_capacity(1 + 4 + wrapped_dek.len() + data.len());
        blob.push(format);
        blob.extend_from_slice(&self.current.to_be_bytes());
        blob.extend_from_slice(&wrapped_dek);
        blob.extend_from_slice(&data);
        Ok(blob)
    }

    /// Opens a sealed blob. Any change to the blob or to the binding fails with
    /// [`CryptoError::CannotOpen`].
    pub fn open(
        &self,
        binding: Binding<'_>,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.open_blob(binding, None, blob)
    }

    /// Opens what [`Self::seal_versioned`] sealed for `version`, or a blob sealed by
    /// [`Self::seal`] before the record's versions were bound (such blobs bind no version).
    pub fn open_versioned(
        &self,
        binding: Binding<'_>,
        version: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.open_blob(binding, Some(version), blob)
    }

    fn open_blob(
        &self,
        binding: Binding<'_>,
        version: Option<&str>,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (_, version, kek, wrapped_dek, data) = self.parts(version, blob)?;
        let dek = open_raw(&kek.key, &binding.encode("dek", version), wrapped_dek)?;
        open_raw(&aead_key(&dek)?, &binding.encode("data", version), data)
    }

    /// A blob's format, bound version, KEK, wrapped data key and sealed data.
    #[allow(clippy::type_complexity)]
    fn parts<'b, 'v>(
        &self,
        version: Option<&'v str>,
        blob: &'b [u8],
    ) -> Result<(u8, Option<&'v str>, &Kek, &'b [u8], &'b [u8]), CryptoError> {
        let kek_version = Self::kek_version_of(blob).ok_or(CryptoError::CannotOpen)?;
        let version = match (blob[0], version) {
            (BLOB_FORMAT_V1, _) => None,
            (BLOB_FORMAT_VERSIONED, Some(version)) => Some(version),
            _ => return Err(CryptoError::CannotOpen),
        };
        let Some(kek) = self.keks.get(&kek_version) else {
            // A newer version than this keyring's: another node added it, load it. An older
            // one it lacks was retired (or the header altered): that value cannot open.
            if kek_version < self.current {
                return Err(CryptoError::CannotOpen);
            }
            self.missing.fetch_max(kek_version, Ordering::Relaxed);
            return Err(CryptoError::UnknownKekVersion(kek_version));
        };
        let (wrapped_dek, data) = blob[5..].split_at(NONCE_LEN + KEY_LEN + TAG_LEN);
        Ok((blob[0], version, kek, wrapped_dek, data))
    }
}

fn aead_key(material: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let unbound = UnboundKey::new(&AES_256_GCM, material).map_err(|_| CryptoError::Internal)?;
    Ok(LessSafeKey::new(unbound))
}

/// `nonce || ciphertext || tag`, with a random 96-bit nonce (each key seals few values: one
/// per DEK, and KEKs wrap far fewer than 2^32 DEKs between rotations).
fn seal_raw(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(aad),
        &mut in_out,
    )
    .map_err(|_| CryptoError::Internal)?;
    let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&in_out);
    Ok(out)
}

fn open_raw(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::CannotOpen);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::CannotOpen)?;
    let mut in_out = Zeroizing::new(ciphertext.to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::CannotOpen)?
        .len();
    in_out.truncate(len);
    Ok(in_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(record: &'a str) -> Binding<'a> {
        Binding {
            kind: "secret.value",
            app_id: "app-1",
            record_id: record,
        }
    }

    fn keyring() -> (MasterKey, Keyring, WrappedKek) {
        let master = MasterKey::generate().unwrap();
        let (kek, wrapped) = master.new_kek(1).unwrap();
        (master, Keyring::new(vec![kek]).unwrap(), wrapped)
    }

    #[test]
    fn seal_then_open_round_trips() {
        let (_, ring, _) = keyring();
        let blob = ring.seal(binding("r1"), b"sk_live_123").unwrap();
        assert_eq!(
            ring.open(binding("r1"), &blob).unwrap().as_slice(),
            b"sk_live_123"
        );
        assert!(!blob.windows(11).any(|w| w == b"sk_live_123"));
    }

    #[test]
    fn a_ciphertext_bound_to_another_record_fails_to_open() {
        let (_, ring, _) = keyring();
        let blob = ring.seal(binding("r1"), b"secret").unwrap();
        assert!(matches!(
            ring.open(binding("r2"), &blob),
            Err(CryptoError::CannotOpen)
        ));
        let other_app = Binding {
            app_id: "app-2",
            ..binding("r1")
        };
        assert!(ring.open(other_app, &blob).is_err());
        let other_kind = Binding {
            kind: "api_key.signing",
            ..binding("r1")
        };
        assert!(ring.open(other_kind, &blob).is_err());
    }

    #[test]
    fn any_flipped_byte_fails_to_open() {
        let (_, ring, _) = keyring();
        let blob = ring.seal(binding("r1"), b"secret").unwrap();
        for i in 0..blob.len() {
            let mut tampered = blob.clone();
            tampered[i] ^= 0x01;
            assert!(ring.open(binding("r1"), &tampered).is_err(), "byte {i}");
        }
        assert!(ring.open(binding("r1"), &blob[..blob.len() - 1]).is_err());
    }

    #[test]
    fn a_wrong_master_key_cannot_unwrap_the_kek() {
        let (master, _, wrapped) = keyring();
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.unwrap_kek(&wrapped),
            Err(CryptoError::WrongMasterKey)
        ));
        let again = MasterKey::from_encoded(master.encode().expose_secret()).unwrap();
        assert!(again.unwrap_kek(&wrapped).is_ok());
        let renumbered = WrappedKek {
            version: 2,
            ..wrapped
        };
        assert!(master.unwrap_kek(&renumbered).is_err());
    }

    #[test]
    fn sealed_files_need_their_purpose() {
        let master = MasterKey::generate().unwrap();
        let sealed = master.seal_file("dev", b"{}").unwrap();
        assert_eq!(master.open_file("dev", &sealed).unwrap().as_slice(), b"{}");
        assert!(master.open_file("other", &sealed).is_err());
        assert!(
            MasterKey::generate()
                .unwrap()
                .open_file("dev", &sealed)
                .is_err()
        );
    }

    #[test]
    fn old_kek_versions_stay_readable() {
        let master = MasterKey::generate().unwrap();
        let (kek1, wrapped1) = master.new_kek(1).unwrap();
        let old = Keyring::new(vec![kek1]).unwrap();
        let blob = old.seal(binding("r1"), b"v1 value").unwrap();
        let (kek2, _) = master.new_kek(2).unwrap();
        let ring = Keyring::new(vec![master.unwrap_kek(&wrapped1).unwrap(), kek2]).unwrap();
        assert_eq!(ring.current_version(), 2);
        assert_eq!(
            ring.open(binding("r1"), &blob).unwrap().as_slice(),
            b"v1 value"
        );
        let fresh = ring.seal(binding("r1"), b"v2 value").unwrap();
        assert_eq!(u32::from_be_bytes(fresh[1..5].try_into().unwrap()), 2);
    }

    #[test]
    fn a_rewrapped_blob_opens_without_the_old_kek() {
        let master = MasterKey::generate().unwrap();
        let (kek1, wrapped1) = master.new_kek(1).unwrap();
        let old = Keyring::new(vec![kek1]).unwrap();
        let plain = old.seal(binding("r1"), b"plain value").unwrap();
        let versioned = old
            .seal_versioned(binding("r2"), "3@7", b"versioned value")
            .unwrap();
        let (kek2, wrapped2) = master.new_kek(2).unwrap();
        let both = Keyring::new(vec![master.unwrap_kek(&wrapped1).unwrap(), kek2]).unwrap();

        let plain2 = both.rewrap(binding("r1"), None, &plain).unwrap().unwrap();
        let versioned2 = both
            .rewrap(binding("r2"), Some("3@7"), &versioned)
            .unwrap()
            .unwrap();
        assert_eq!(Keyring::kek_version_of(&plain2), Some(2));
        // The sealed data is kept; only the data key's wrapping changed.
        let data = NONCE_LEN + b"plain value".len() + TAG_LEN;
        assert_eq!(plain2[plain2.len() - data..], plain[plain.len() - data..]);
        assert_ne!(plain2[..plain2.len() - data], plain[..plain.len() - data]);
        assert!(both.rewrap(binding("r1"), None, &plain2).unwrap().is_none());
        // Another binding or version cannot be re-wrapped (nor opened).
        assert!(both.rewrap(binding("r9"), None, &plain).is_err());
        assert!(both.rewrap(binding("r2"), Some("4@7"), &versioned).is_err());

        let only2 = Keyring::new(vec![master.unwrap_kek(&wrapped2).unwrap()]).unwrap();
        assert_eq!(
            only2.open(binding("r1"), &plain2).unwrap().as_slice(),
            b"plain value"
        );
        assert_eq!(
            only2
                .open_versioned(binding("r2"), "3@7", &versioned2)
                .unwrap()
                .as_slice(),
            b"versioned value"
        );
        // A retired version is no reason to reload; a newer one is.
        assert!(matches!(
            only2.open(binding("r1"), &plain),
            Err(CryptoError::CannotOpen)
        ));
        assert_eq!(only2.missing_version(), None);
        assert!(matches!(
            old.open(binding("r1"), &plain2),
            Err(CryptoError::UnknownKekVersion(2))
        ));
        assert_eq!(old.missing_version(), Some(2));
        // Extending adds newer versions only, and never drops one.
        let (kek3, _) = master.new_kek(3).unwrap();
        let (stale, _) = master.new_kek(1).unwrap();
        let three = only2.extended(vec![kek3, stale]);
        assert_eq!((three.versions(), three.current_version()), (vec![2, 3], 3));
        assert!(three.open(binding("r1"), &plain2).is_ok());
    }

    #[test]
    fn a_versioned_ciphertext_opens_only_at_its_version() {
        let (_, ring, _) = keyring();
        let v1 = ring.seal_versioned(binding("r1"), "1", b"old").unwrap();
        let v2 = ring.seal_versioned(binding("r1"), "2", b"new").unwrap();
        assert_eq!(
            ring.open_versioned(binding("r1"), "2", &v2)
                .unwrap()
                .as_slice(),
            b"new"
        );
        // The old ciphertext copied over the current (version 2) value does not open.
        assert!(matches!(
            ring.open_versioned(binding("r1"), "2", &v1),
            Err(CryptoError::CannotOpen)
        ));
        assert!(ring.open_versioned(binding("r2"), "1", &v1).is_err());
        // A versioned blob never opens as an unversioned one, nor with its format byte
        // turned back to the unversioned format.
        assert!(ring.open(binding("r1"), &v1).is_err());
        let mut downgraded = v1.clone();
        downgraded[0] = BLOB_FORMAT_V1;
        assert!(
            ring.open_versioned(binding("r1"), "1", &downgraded)
                .is_err()
        );
    }

    #[test]
    fn values_sealed_before_versions_were_bound_still_open() {
        let (_, ring, _) = keyring();
        let legacy = ring.seal(binding("r1"), b"legacy").unwrap();
        assert_eq!(
            ring.open_versioned(binding("r1"), "7", &legacy)
                .unwrap()
                .as_slice(),
            b"legacy"
        );
    }

    #[test]
    fn derived_mac_keys_depend_on_the_master_key() {
        let master = MasterKey::generate().unwrap();
        let again = MasterKey::from_encoded(master.encode().expose_secret()).unwrap();
        let tag = master.derive_mac_key("audit-chain/v1").tag(&[b"x"]);
        assert_eq!(tag, again.derive_mac_key("audit-chain/v1").tag(&[b"x"]));
        let other = MasterKey::generate().unwrap();
        assert_ne!(tag, other.derive_mac_key("audit-chain/v1").tag(&[b"x"]));
        assert_eq!(master.fingerprint(), again.fingerprint());
        assert_eq!(master.fingerprint().len(), 8);
        assert_ne!(master.fingerprint(), other.fingerprint());
    }

    #[test]
    fn the_legacy_mac_root_derives_what_the_master_key_derived() {
        let master = MasterKey::generate().unwrap();
        let root = master.legacy_mac_root();
        assert_eq!(
            root.derive_mac_key("audit-chain/v1").tag(&[b"x"]),
            master.derive_mac_key("audit-chain/v1").tag(&[b"x"])
        );
        let wrapped = master.wrap(MacRoot::CONTEXT, root.expose_bytes()).unwrap();
        let again =
            MacRoot::from_bytes(&master.unwrap(MacRoot::CONTEXT, &wrapped).unwrap()).unwrap();
        assert_eq!(again.expose_bytes(), root.expose_bytes());
        assert!(matches!(
            master.unwrap(&Kek::context(1), &wrapped),
            Err(CryptoError::WrongMasterKey)
        ));
        assert!(MacRoot::from_bytes(&[0u8; 31]).is_err());
    }

    #[test]
    fn malformed_master_keys_are_rejected() {
        for text in ["", "not base64!", "AAAA", &STANDARD.encode([0u8; 31])] {
            assert!(matches!(
                MasterKey::from_encoded(text),
                Err(CryptoError::MalformedMasterKey)
            ));
        }
    }
}
