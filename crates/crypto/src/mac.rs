//! Keys for HMAC-SHA256 tags, derived from the master key for one purpose (the audit chain,
//! audit checkpoints). They are never stored: whoever holds only the database can neither
//! produce nor check a tag.

use std::fmt;

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::ct_eq;

/// An HMAC-SHA256 key for one purpose.
#[derive(Clone)]
pub struct MacKey(hmac::Key);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

impl MacKey {
    /// `HMAC-SHA256(root, "alter/v1/derive/" ‖ purpose)` as a key: distinct purposes give
    /// unrelated keys, and the root cannot be recovered from one.
    pub(crate) fn derive(root: &[u8], purpose: &str) -> MacKey {
        let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, root));
        context.update(b"alter/v1/derive/");
        context.update(purpose.as_bytes());
        let material = Zeroizing::new(context.sign().as_ref().to_vec());
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, &material))
    }

    /// A key that is exactly `secret` (a secret shared with a peer, such as a Standard
    /// Webhooks signing secret), not derived from the master key.
    pub fn from_secret(secret: &[u8]) -> MacKey {
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The tag of the concatenation of `parts`. Callers make the encoding unambiguous (fixed
    /// lengths, or length prefixes) before handing the parts over.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        ct_eq(&self.tag(parts), tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_the_root_the_purpose_and_the_message() {
        let key = MacKey::derive(&[7; 32], "audit-chain/v1");
        let tag = key.tag(&[b"a", b"bc"]);
        assert_eq!(tag, key.tag(&[b"ab", b"c"]));
        assert!(key.verify(&[b"abc"], &tag));
        assert!(!key.verify(&[b"abd"], &tag));
        assert_ne!(
            tag,
            MacKey::derive(&[8; 32], "audit-chain/v1").tag(&[b"abc"])
        );
        assert_ne!(
            tag,
            MacKey::derive(&[7; 32], "audit-checkpoint/v1").tag(&[b"abc"])
        );
        assert!(!format!("{key:?}").contains('7'));
    }
}
