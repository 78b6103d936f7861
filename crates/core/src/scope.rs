//! Key scopes: `resource:verb[:instance]` on the verb ladder `read` < `write` < `admin`, plus
//! action scopes outside the ladder (`tokens:retrieve`, `proxy:execute`, …). Protocol part 2
//! §9.1–9.2, product notes §8.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bumped whenever the catalogue below changes.
pub const SCOPE_VERSION: i64 = 1;

/// Resources on the verb ladder.
pub const RESOURCES: &[&str] = &[
    "agents",
    "approvals",
    "audit_logs",
    "grants",
    "idp_users",
    "keys",
    "providers",
    "secrets",
    "usage",
];

/// The verb ladder, in increasing power.
pub const VERBS: &[&str] = &["read", "write", "admin"];

/// Scopes outside the ladder: each grants exactly one action.
pub const ACTIONS: &[&str] = &[
    "tokens:retrieve",
    "proxy:execute",
    "connect:initiate",
    "keys:derive",
    "audit:emit",
    "spans:emit",
];

/// A power on the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// See.
    Read,
    /// Create and change.
    Write,
    /// Lifecycle and cross-principal operations.
    Admin,
}

impl Verb {
    fn parse(text: &str) -> Option<Verb> {
        match text {
            "read" => Some(Verb::Read),
            "write" => Some(Verb::Write),
            "admin" => Some(Verb::Admin),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Write => "write",
            Verb::Admin => "admin",
        }
    }
}

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `resource:verb[:instance]`.
    Resource {
        /// One of [`RESOURCES`].
        resource: &'static str,
        /// Power on the ladder.
        verb: Verb,
        /// Restricts the scope to one instance (e.g. one grant id).
        instance: Option<String>,
    },
    /// One of [`ACTIONS`].
    Action(&'static str),
}

/// A string that is not a scope of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

impl Scope {
    /// Parses a scope of the catalogue.
    pub fn parse(text: &str) -> Result<Scope, UnknownScope> {
        let unknown = || UnknownScope(text.to_owned());
        if let Some(action) = ACTIONS.iter().find(|a| **a == text) {
            return Ok(Scope::Action(action));
        }
        let mut parts = text.splitn(3, ':');
        let resource = parts.next().ok_or_else(unknown)?;
        let resource = RESOURCES
            .iter()
            .find(|r| **r == resource)
            .ok_or_else(unknown)?;
        let verb = parts.next().and_then(Verb::parse).ok_or_else(unknown)?;
        let instance = match parts.next() {
            None => None,
            Some(i) if valid_instance(i) => Some(i.to_owned()),
            Some(_) => return Err(unknown()),
        };
        Ok(Scope::Resource {
            resource,
            verb,
            instance,
        })
    }

    /// A ladder scope with no instance; `resource` must be one of [`RESOURCES`].
    pub fn resource(resource: &'static str, verb: Verb) -> Scope {
        Scope::Resource {
            resource,
            verb,
            instance: None,
        }
    }

    /// True if holding `self` allows what `wanted` allows.
    pub fn implies(&self, wanted: &Scope) -> bool {
        match (self, wanted) {
            (Scope::Action(a), Scope::Action(b)) => a == b,
            (
                Scope::Resource {
                    resource: r1,
                    verb: v1,
                    instance: i1,
                },
                Scope::Resource {
                    resource: r2,
                    verb: v2,
                    instance: i2,
                },
            ) => {
                r1 == r2
                    && v1 >= v2
                    && match (i1, i2) {
                        (None, _) => true,
                        (Some(a), Some(b)) => a == b,
                        (Some(_), None) => false,
                    }
            }
            _ => false,
        }
    }

    /// Every scope of the catalogue at full power: what an operator key holds by default.
    pub fn all() -> Vec<Scope> {
        RESOURCES
            .iter()
            .map(|r| Scope::resource(r, Verb::Admin))
            .chain(ACTIONS.iter().map(|a| Scope::Action(a)))
            .collect()
    }
}

fn valid_instance(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Action(a) => f.write_str(a),
            Scope::Resource {
                resource,
                verb,
                instance: None,
            } => write!(f, "{resource}:{}", verb.as_str()),
            Scope::Resource {
                resource,
                verb,
                instance: Some(i),
            } => write!(f, "{resource}:{}:{i}", verb.as_str()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The scopes a key holds (or a request may use after attenuation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Builds a set, dropping duplicates and keeping the first-seen order.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut out: Vec<Scope> = Vec::new();
        for scope in scopes {
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        ScopeSet(out)
    }

    /// Parses every string; the first unknown one is the error.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, UnknownScope> {
        texts
            .iter()
            .map(|t| Scope::parse(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(ScopeSet::new)
    }

    /// True if some held scope implies `wanted`.
    pub fn allows(&self, wanted: &Scope) -> bool {
        self.0.iter().any(|s| s.implies(wanted))
    }

    /// True if every scope of `other` is implied by this set.
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other.0.iter().all(|s| self.allows(s))
    }

    /// The scopes of `other` this set does not imply.
    pub fn missing_from(&self, other: &ScopeSet) -> Vec<Scope> {
        other
            .0
            .iter()
            .filter(|s| !self.allows(s))
            .cloned()
            .collect()
    }

    /// For a ladder scope wanted at `verb` on `resource`: `Some(None)` when every instance is
    /// allowed, `Some(Some(ids))` when only those instances are, `None` when none is.
    pub fn instances(&self, resource: &str, verb: Verb) -> Option<Option<Vec<String>>> {
        let mut ids = Vec::new();
        for scope in &self.0 {
            if let Scope::Resource {
                resource: r,
                verb: v,
                instance,
            } = scope
                && *r == resource
                && *v >= verb
            {
                match instance {
                    None => return Some(None),
                    Some(id) => ids.push(id.clone()),
                }
            }
        }
        (!ids.is_empty()).then_some(Some(ids))
    }

    /// True if the set holds this exact scope.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// The scopes.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// The scopes as strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// True if the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(texts: &[&str]) -> ScopeSet {
        ScopeSet::parse(texts).unwrap()
    }

    #[test]
    fn parses_the_catalogue_and_rejects_the_rest() {
        for ok in [
            "tokens:retrieve",
            "grants:read",
            "grants:read:4f1c2b9e-0000-4000-8000-000000000000",
            "keys:admin",
            "keys:derive",
            "agents:write:agt_abc123",
        ] {
            assert_eq!(Scope::parse(ok).unwrap().to_string(), ok);
        }
        for bad in [
            "",
            "*",
            "grants",
            "grants:delete",
            "tokens:read",
            "grants:read:",
            "grants:read:a b",
            "nope:read",
            "Grants:read",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_ladder_implies_lower_verbs_and_instances() {
        let keys = set(&["keys:admin", "grants:read:g1"]);
        assert!(keys.allows(&Scope::parse("keys:read").unwrap()));
        assert!(keys.allows(&Scope::parse("keys:write:k1").unwrap()));
        assert!(!keys.allows(&Scope::parse("keys:derive").unwrap()));
        assert!(keys.allows(&Scope::parse("grants:read:g1").unwrap()));
        assert!(!keys.allows(&Scope::parse("grants:read:g2").unwrap()));
        assert!(!keys.allows(&Scope::parse("grants:read").unwrap()));
        assert!(!keys.allows(&Scope::parse("grants:write:g1").unwrap()));
    }

    #[test]
    fn instances_report_what_a_set_reaches() {
        assert_eq!(
            set(&["grants:admin"]).instances("grants", Verb::Read),
            Some(None)
        );
        assert_eq!(
            set(&["grants:read:a", "grants:write:b"]).instances("grants", Verb::Read),
            Some(Some(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            set(&["grants:read:a"]).instances("grants", Verb::Write),
            None
        );
    }

    #[test]
    fn coverage_and_missing() {
        let held = set(&["keys:admin", "tokens:retrieve"]);
        let wanted = set(&["keys:read", "proxy:execute"]);
        assert!(!held.covers(&wanted));
        assert_eq!(
            held.missing_from(&wanted),
            vec![Scope::parse("proxy:execute").unwrap()]
        );
        assert!(ScopeSet::new(Scope::all()).covers(&wanted));
    }
}
