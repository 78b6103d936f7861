//! Typed identifiers. Every id is a UUID written in canonical lower-case hyphenated form;
//! parsing accepts only that form, so an id has exactly one spelling.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An identifier of the entity kind `K`.
pub struct Id<K> {
    uuid: Uuid,
    kind: PhantomData<fn() -> K>,
}

/// Names the kind of an [`Id`] in messages.
pub trait IdKind {
    /// e.g. `app`, `key`.
    const NAME: &'static str;
}

macro_rules! id_kinds {
    ($($(#[$doc:meta])* $alias:ident => $marker:ident, $name:literal;)*) => {
        $(
            #[doc = concat!("Marker of ", $name, " ids.")]
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum $marker {}
            impl IdKind for $marker {
                const NAME: &'static str = $name;
            }
            $(#[$doc])*
            pub type $alias = Id<$marker>;
        )*
    };
}

id_kinds! {
    /// An app (tenant).
    AppId => AppKind, "app";
    /// An API key.
    KeyId => KeyKind, "key";
    /// A managed agent.
    AgentId => AgentKind, "agent";
    /// A grant or delegation.
    GrantId => GrantKind, "grant";
    /// A managed secret.
    SecretId => SecretKind, "managed secret";
    /// An app user (end user known through the app's identity provider).
    UserId => UserKind, "user";
    /// An identity provider configuration.
    IdpId => IdpKind, "identity provider";
    /// An audit event.
    EventId => EventKind, "event";
    /// An OAuth connection (a token pair for one account at one provider).
    ConnectionId => ConnectionKind, "connection";
    /// An end user's own key for a managed secret.
    UserSecretId => UserSecretKind, "user secret";
    /// A Connect session (a request for a user's consent at providers).
    ConnectSessionId => ConnectSessionKind, "connect session";
    /// A policy rule.
    RuleId => RuleKind, "rule";
    /// An approval (one gate of a held proxy call).
    ApprovalId => ApprovalKind, "approval";
    /// An end-user sign-in session.
    AuthSessionId => AuthSessionKind, "sign-in session";
    /// An outbound webhook endpoint.
    WebhookId => WebhookKind, "webhook";
}

impl<K> Id<K> {
    /// A new time-ordered (v7) id.
    pub fn new() -> Self {
        Self::from_uuid(Uuid::now_v7())
    }

    /// Wraps a UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Id {
            uuid,
            kind: PhantomData,
        }
    }

    /// The UUID.
    pub const fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Parses the canonical lower-case hyphenated form only.
    pub fn parse(text: &str) -> Option<Self> {
        let uuid = Uuid::try_parse(text).ok()?;
        (uuid.hyphenated().to_string() == text).then(|| Self::from_uuid(uuid))
    }

    /// Parses any UUID spelling the official client accepts (any case, hyphenated), returning
    /// the canonical id.
    pub fn parse_lenient(text: &str) -> Option<Self> {
        Uuid::try_parse(text).ok().map(Self::from_uuid)
    }
}

impl<K> Default for Id<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Id<K> {}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.uuid.cmp(&other.uuid)
    }
}

impl<K> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uuid.hyphenated(), f)
    }
}

impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", K::NAME, self.uuid.hyphenated())
    }
}

impl<K> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.uuid.hyphenated())
    }
}

impl<'de, K> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Id::parse(&text).ok_or_else(|| serde::de::Error::custom("expected a canonical UUID"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_only() {
        let id = AppId::new();
        let text = id.to_string();
        assert_eq!(AppId::parse(&text), Some(id));
        assert_eq!(AppId::parse(&text.to_uppercase()), None);
        assert_eq!(AppId::parse_lenient(&text.to_uppercase()), Some(id));
        assert_eq!(AppId::parse(&text.replace('-', "")), None);
        assert_eq!(AppId::parse("nope"), None);
        assert!(format!("{id:?}").starts_with("app:"));
    }
}
