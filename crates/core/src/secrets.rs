//! Managed secrets: credentials an operator provisions (API keys, service tokens, AWS keys),
//! stored sealed, never readable back, and bound to principals by grants. Rotation replaces the
//! value and keeps every grant id; deletion revokes every grant of the secret.

use alter_crypto::{Binding, SecretString, Zeroizing};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result, ensure};
use crate::grants::PrincipalType;
use crate::ids::{AppId, SecretId};
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// The kind bound into a sealed secret value.
pub(crate) const VALUE_KIND: &str = "secret.value";
/// Longest slug (the official client's slug pattern is `[a-z0-9-]{1,50}`).
const MAX_SLUG_LEN: usize = 50;
/// Largest secret value.
const MAX_VALUE_BYTES: usize = 8192;

/// How a secret is injected into the outgoing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretType {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// `<header>: <value>`.
    Header,
    /// `Authorization: Basic base64(<user:password>)`.
    Basic,
    /// `?<param>=<value>`.
    Query,
    /// AWS Signature Version 4 with an access key pair.
    AwsSigv4,
    /// Several named values, each injected by its own rule (headers and query parameters).
    Multi,
}

impl SecretType {
    /// Parses `bearer`, `header`, `basic`, `query` or `aws_sigv4`.
    pub fn parse(text: &str) -> Option<SecretType> {
        match text {
            "bearer" => Some(SecretType::Bearer),
            "header" => Some(SecretType::Header),
            "basic" => Some(SecretType::Basic),
            "query" => Some(SecretType::Query),
            "aws_sigv4" => Some(SecretType::AwsSigv4),
            "multi" => Some(SecretType::Multi),
            _ => None,
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretType::Bearer => "bearer",
            SecretType::Header => "header",
            SecretType::Basic => "basic",
            SecretType::Query => "query",
            SecretType::AwsSigv4 => "aws_sigv4",
            SecretType::Multi => "multi",
        }
    }
}

/// Where the value goes: the header or query parameter name, or the rules of a `multi`
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Injection {
    /// Header name (`header` secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter name (`query` secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Rules (`multi` secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<InjectionRule>,
}

/// Where one value of a `multi` secret goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionTarget {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
}

/// One injection rule of a `multi` secret: the value of `field` goes into the header or
/// query parameter `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectionRule {
    /// Header or query parameter.
    pub target: InjectionTarget,
    /// Its name.
    pub name: String,
    /// The value's field in the secret.
    pub field: String,
}

/// Most rules a `multi` secret may have (the official client takes at most ten injections).
const MAX_RULES: usize = 10;

/// What the operator allows grants of this secret to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretLimits {
    /// Longest grant lifetime; grants asking for more are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grant_ttl_seconds: Option<i64>,
    /// Principal types grants may name; empty = all but `agent`, which is opt-in: an agent
    /// may bind the secret to itself only when the operator listed `agent` here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<PrincipalType>,
    /// Whether grants of this secret may be delegated to agents.
    pub delegation: bool,
    /// Longest delegation lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delegation_ttl_seconds: Option<i64>,
}

impl Default for SecretLimits {
    fn default() -> Self {
        SecretLimits {
            max_grant_ttl_seconds: None,
            principals: Vec::new(),
            delegation: true,
            max_delegation_ttl_seconds: None,
        }
    }
}

impl SecretLimits {
    /// True if grants may name this principal type (`agent` only when listed explicitly).
    pub fn allows(&self, principal: PrincipalType) -> bool {
        self.principals.contains(&principal)
            || (self.principals.is_empty() && principal != PrincipalType::Agent)
    }
}

/// A managed secret as stored (its value sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedSecret {
    /// Id (the `managed_secret_id` of the protocol).
    pub id: SecretId,
    /// The app.
    pub app_id: AppId,
    /// Display name (not unique).
    pub name: String,
    /// Unique, URL-safe name derived from `name`: what `provider_id` filters and
    /// `request(provider=…)` take.
    pub slug: String,
    /// Injection type.
    pub secret_type: SecretType,
    /// Header or parameter name.
    pub injection: Injection,
    /// Hosts the secret may be sent to (`api.stripe.com`, `*.amazonaws.com`); empty = any.
    pub allowed_hosts: Vec<String>,
    /// Limits on grants.
    pub limits: SecretLimits,
    /// The value, sealed to this secret.
    pub sealed_value: Vec<u8>,
    /// Bumped by every rotation.
    pub value_version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last rotation.
    pub rotated_at: Option<Timestamp>,
    /// Deletion time; deleted secrets keep their row (and slug) for the audit trail.
    pub deleted_at: Option<Timestamp>,
}

/// What an operator gives to create a secret.
#[derive(Debug)]
pub struct NewSecret {
    /// Display name.
    pub name: String,
    /// Injection type (`bearer`, `header`, `basic`, `query`, `aws_sigv4`).
    pub secret_type: String,
    /// Header name for `header` secrets.
    pub header: Option<String>,
    /// Parameter name for `query` secrets.
    pub param: Option<String>,
    /// Rules of `multi` secrets.
    pub rules: Vec<InjectionRule>,
    /// Allowed hosts.
    pub allowed_hosts: Vec<String>,
    /// Limits on grants.
    pub limits: SecretLimits,
    /// The value (for `aws_sigv4`, a JSON object with `access_key_id`, `secret_access_key`
    /// and optionally `session_token`, `region`, `service`).
    pub value: SecretString,
}

/// The parts of an AWS credential, as its stored value holds them (a JSON object).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
}

impl Vault {
    /// Creates a managed secret (operator).
    pub async fn create_secret(&self, app_id: AppId, new: NewSecret) -> Result<ManagedSecret> {
        use alter_crypto::ExposeSecret;
        self.get_app(app_id).await?;
        let name = validate::display_name("name", &new.name)?.to_owned();
        let secret_type = SecretType::parse(&new.secret_type).ok_or_else(|| {
            Error::Invalid(format!(
                "type {:?}: use bearer, header, basic, query or aws_sigv4",
                new.secret_type
            ))
        })?;
        let injection = validate_injection(secret_type, new.header, new.param, new.rules)?;
        validate_value(secret_type, &injection, new.value.expose_secret())?;
        let allowed_hosts = validate_hosts(&new.allowed_hosts)?;
        validate_limits(&new.limits)?;
        let now = self.now();
        let base = slugify(&name);
        let taken = self.store().slugs_with_prefix(app_id, &base).await?;
        let slug = free_slug(&base, &taken);
        let id = SecretId::new();
        let secret = ManagedSecret {
            id,
            app_id,
            name,
            slug,
            secret_type,
            injection,
            allowed_hosts,
            limits: new.limits,
            sealed_value: self.seal_value(app_id, id, 1, now, new.value.expose_secret())?,
            value_version: 1,
            created_at: now,
            rotated_at: None,
            deleted_at: None,
        };
        let event = secret_event(&secret, action::SECRET_CREATED, now);
        self.store().insert_secret(&secret, &event).await?;
        Ok(secret)
    }

    /// Every secret of the app that is not deleted (operator).
    pub async fn list_secrets(&self, app_id: AppId) -> Result<Vec<ManagedSecret>> {
        self.get_app(app_id).await?;
        Ok(self.store().list_secrets(app_id).await?)
    }

    /// One live secret, by id or slug (operator).
    pub async fn get_secret(&self, app_id: AppId, id_or_slug: &str) -> Result<ManagedSecret> {
        let secret = match SecretId::parse_lenient(id_or_slug) {
            Some(id) => self.store().get_secret(app_id, id).await?,
            None => self.store().get_secret_by_slug(app_id, id_or_slug).await?,
        };
        secret
            .filter(|s| s.deleted_at.is_none())
            .ok_or(Error::NotFound(Entity::Secret))
    }

    /// Replaces a secret's value; every grant keeps its id and uses the new value.
    pub async fn rotate_secret(
        &self,
        app_id: AppId,
        id_or_slug: &str,
        value: SecretString,
    ) -> Result<ManagedSecret> {
        use alter_crypto::ExposeSecret;
        let secret = self.get_secret(app_id, id_or_slug).await?;
        validate_value(secret.secret_type, &secret.injection, value.expose_secret())?;
        let now = self.now();
        let rotated = ManagedSecret {
            sealed_value: self.seal_value(
                app_id,
                secret.id,
                secret.value_version + 1,
                now,
                value.expose_secret(),
            )?,
            value_version: secret.value_version + 1,
            rotated_at: Some(now),
            ..secret
        };
        let event = secret_event(&rotated, action::SECRET_ROTATED, now);
        if !self.store().rotate_secret(&rotated, &event).await? {
            return Err(Error::NotFound(Entity::Secret));
        }
        Ok(rotated)
    }

    /// Replaces a secret's allowed hosts (operator), validated as at creation (empty: any
    /// host). The value, its version and every grant stay as they are; the next release checks
    /// the new list.
    pub async fn set_secret_hosts(
        &self,
        app_id: AppId,
        id_or_slug: &str,
        allowed_hosts: Vec<String>,
    ) -> Result<ManagedSecret> {
        let secret = self.get_secret(app_id, id_or_slug).await?;
        let allowed_hosts = validate_hosts(&allowed_hosts)?;
        let changed = ManagedSecret {
            allowed_hosts,
            ..secret
        };
        let event = secret_event(&changed, action::SECRET_HOSTS_CHANGED, self.now());
        if !self.store().set_secret_hosts(&changed, &event).await? {
            return Err(Error::NotFound(Entity::Secret));
        }
        Ok(changed)
    }

    /// Deletes a secret (operator) after `confirm` repeats its slug; every grant of it is
    /// revoked in the same transaction.
    pub async fn delete_secret(
        &self,
        app_id: AppId,
        id_or_slug: &str,
        confirm: &str,
    ) -> Result<ManagedSecret> {
        let secret = self.get_secret(app_id, id_or_slug).await?;
        ensure(confirm == secret.slug, || {
            format!("confirm with the secret's slug ({})", secret.slug)
        })?;
        let now = self.now();
        let event = secret_event(&secret, action::SECRET_DELETED, now);
        let template =
            crate::grants::revocation_event(app_id, now, Actor::operator(), "secret_deleted");
        self.store()
            .delete_secret(app_id, secret.id, now, &event, &template)
            .await?;
        Ok(ManagedSecret {
            deleted_at: Some(now),
            ..secret
        })
    }

    /// Opens a secret's value, for the one request that injects it.
    pub(crate) fn open_secret_value(&self, secret: &ManagedSecret) -> Result<Zeroizing<Vec<u8>>> {
        let (app, record) = (secret.app_id.to_string(), secret.id.to_string());
        let set_at = secret.rotated_at.unwrap_or(secret.created_at);
        Ok(self.keyring().open_versioned(
            Binding {
                kind: VALUE_KIND,
                app_id: &app,
                record_id: &record,
            },
            &value_revision(secret.value_version, set_at),
            &secret.sealed_value,
        )?)
    }

    fn seal_value(
        &self,
        app_id: AppId,
        id: SecretId,
        value_version: i64,
        set_at: Timestamp,
        value: &str,
    ) -> Result<Vec<u8>> {
        let (app, record) = (app_id.to_string(), id.to_string());
        Ok(self.keyring().seal_versioned(
            Binding {
                kind: VALUE_KIND,
                app_id: &app,
                record_id: &record,
            },
            &value_revision(value_version, set_at),
            value.as_bytes(),
        )?)
    }
}

/// What a sealed value's AAD binds besides its record: its version and the instant it was set
/// (creation or last rotation). An earlier ciphertext copied back into the row fails to open,
/// even with the version column rewritten back to match it.
fn value_revision(value_version: i64, set_at: Timestamp) -> String {
    format!("{value_version}@{}", set_at.micros())
}

fn secret_event(secret: &ManagedSecret, action: &str, at: Timestamp) -> AuditEvent {
    AuditEvent::allow(
        secret.app_id,
        at,
        action,
        Actor::operator(),
        Target {
            kind: "secret".into(),
            id: secret.id.to_string(),
        },
    )
    .with_details(serde_json::json!({
        "name": secret.name,
        "slug": secret.slug,
        "type": secret.secret_type,
        "value_version": secret.value_version,
        "allowed_hosts": secret.allowed_hosts,
    }))
}

/// `Stripe Production` → `stripe-production`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut slug: String = slug
        .trim_end_matches('-')
        .chars()
        .take(MAX_SLUG_LEN - 4)
        .collect();
    slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        slug.push_str("secret");
    }
    slug
}

/// `base`, or `base-2`, `base-3`, … whichever is not taken.
fn free_slug(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_owned())
}

fn validate_injection(
    secret_type: SecretType,
    header: Option<String>,
    param: Option<String>,
    rules: Vec<InjectionRule>,
) -> Result<Injection> {
    if secret_type != SecretType::Multi {
        ensure(rules.is_empty(), || {
            "only multi secrets take injection rules".into()
        })?;
    }
    match secret_type {
        SecretType::Multi => {
            ensure(header.is_none() && param.is_none(), || {
                "multi secrets name their headers and parameters in their rules".into()
            })?;
            ensure(!rules.is_empty() && rules.len() <= MAX_RULES, || {
                format!("multi secrets need 1 to {MAX_RULES} injection rules")
            })?;
            for rule in &rules {
                let name_ok = match rule.target {
                    InjectionTarget::Header => validate::header_name(&rule.name),
                    InjectionTarget::Query => query_param_name(&rule.name),
                };
                ensure(name_ok, || {
                    format!("{:?} is not a usable header or parameter name", rule.name)
                })?;
                ensure(field_name(&rule.field), || {
                    format!(
                        "field {:?} must be 1-50 of a-z 0-9 _, starting with a letter",
                        rule.field
                    )
                })?;
            }
            Ok(Injection {
                rules,
                ..Injection::default()
            })
        }
        SecretType::Header => {
            let header = header.ok_or_else(|| {
                Error::Invalid("header secrets need a header name (--header)".into())
            })?;
            ensure(validate::header_name(&header), || {
                format!("header {header:?} is not a usable header name")
            })?;
            ensure(param.is_none(), || {
                "only query secrets take a parameter".into()
            })?;
            Ok(Injection {
                header: Some(header),
                ..Injection::default()
            })
        }
        SecretType::Query => {
            let param = param.ok_or_else(|| {
                Error::Invalid("query secrets need a parameter name (--param)".into())
            })?;
            ensure(query_param_name(&param), || {
                format!(
                    "parameter {param:?} must be 1-100 of A-Z a-z 0-9 _ -, starting with a letter"
                )
            })?;
            ensure(header.is_none(), || {
                "only header secrets take a header".into()
            })?;
            Ok(Injection {
                param: Some(param),
                ..Injection::default()
            })
        }
        _ => {
            ensure(header.is_none() && param.is_none(), || {
                format!(
                    "{} secrets take no header or parameter",
                    secret_type.as_str()
                )
            })?;
            Ok(Injection::default())
        }
    }
}

/// `[A-Za-z][A-Za-z0-9_-]*`, at most 100: what the official client injects as a parameter.
fn query_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.len() <= 100
}

/// `[a-z][a-z0-9_]*`, at most 50: what the client accepts after `additional_credentials.`.
fn field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 50
}

/// The named values of a `multi` secret: a JSON object of strings.
pub(crate) fn multi_fields(value: &str) -> Option<std::collections::BTreeMap<String, String>> {
    serde_json::from_str(value).ok()
}

/// Checks a value's shape for its type. Messages never include the value.
fn validate_value(secret_type: SecretType, injection: &Injection, value: &str) -> Result<()> {
    ensure(!value.is_empty() && value.len() <= MAX_VALUE_BYTES, || {
        format!("the value must be 1 to {MAX_VALUE_BYTES} bytes")
    })?;
    let printable = |v: &str| !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    match secret_type {
        SecretType::AwsSigv4 => {
            let aws: AwsCredential = serde_json::from_str(value).map_err(|_| {
                Error::Invalid(
                    "aws_sigv4 values are a JSON object with access_key_id and secret_access_key (and optionally session_token, region, service)".into(),
                )
            })?;
            ensure(
                (16..=128).contains(&aws.access_key_id.len())
                    && aws.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()),
                || "access_key_id must be 16-128 letters and digits".into(),
            )?;
            ensure(!aws.secret_access_key.trim().is_empty(), || {
                "secret_access_key must not be empty".into()
            })?;
            for (field, v) in [
                ("session_token", &aws.session_token),
                ("region", &aws.region),
                ("service", &aws.service),
            ] {
                ensure(
                    v.as_deref().is_none_or(|v| !v.is_empty() && printable(v)),
                    || format!("{field} must not be empty"),
                )?;
            }
            Ok(())
        }
        SecretType::Basic => {
            ensure(printable(value), || "the value must be one line".into())?;
            ensure(
                value
                    .split_once(':')
                    .is_some_and(|(user, _)| !user.is_empty()),
                || "basic secrets are user:password".into(),
            )
        }
        SecretType::Multi => {
            let fields = multi_fields(value).ok_or_else(|| {
                Error::Invalid("multi values are a JSON object of field → string".into())
            })?;
            ensure(fields.len() <= MAX_RULES, || {
                format!("at most {MAX_RULES} fields")
            })?;
            for rule in &injection.rules {
                let v = fields.get(&rule.field).ok_or_else(|| {
                    Error::Invalid(format!("the value has no field {:?}", rule.field))
                })?;
                ensure(!v.trim().is_empty() && printable(v), || {
                    format!("field {:?} must be one non-blank line", rule.field)
                })?;
            }
            Ok(())
        }
        _ => ensure(printable(value), || {
            "the value must be one line (no CR, LF or NUL)".into()
        }),
    }
}

fn validate_hosts(hosts: &[String]) -> Result<Vec<String>> {
    ensure(hosts.len() <= 50, || "at most 50 allowed hosts".into())?;
    hosts
        .iter()
        .map(|host| {
            let host = host.trim().to_ascii_lowercase();
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            ensure(
                !bare.is_empty()
                    && bare.len() <= 253
                    && bare.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }),
                || format!("allowed host {host:?} must be a host name, optionally *.domain"),
            )?;
            Ok(host)
        })
        .collect()
}

fn validate_limits(limits: &SecretLimits) -> Result<()> {
    for (field, value) in [
        ("max_grant_ttl_seconds", limits.max_grant_ttl_seconds),
        (
            "max_delegation_ttl_seconds",
            limits.max_delegation_ttl_seconds,
        ),
    ] {
        if let Some(v) = value {
            validate::int_in_range(field, v, 1, 10 * 365 * 24 * 3600)?;
        }
    }
    Ok(())
}

/// True if `host` is allowed by the list (`*.example.com` matches subdomains only).
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    allowed.is_empty()
        || allowed
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(domain) => {
                    host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}"))
                }
                None => *pattern == host,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Stripe Production"), "stripe-production");
        assert_eq!(slugify("  OpenAI -- key!! "), "openai-key");
        assert_eq!(slugify("日本"), "secret");
        assert!(slugify(&"x".repeat(80)).len() <= MAX_SLUG_LEN - 4);
        let taken = vec!["a".to_string(), "a-2".to_string()];
        assert_eq!(free_slug("a", &taken), "a-3");
        assert_eq!(free_slug("b", &taken), "b");
    }

    #[test]
    fn the_agent_principal_is_opt_in() {
        let default = SecretLimits::default();
        for kind in [
            PrincipalType::User,
            PrincipalType::Group,
            PrincipalType::System,
        ] {
            assert!(default.allows(kind), "{kind:?}");
        }
        assert!(!default.allows(PrincipalType::Agent));
        let opted_in = SecretLimits {
            principals: vec![PrincipalType::System, PrincipalType::Agent],
            ..SecretLimits::default()
        };
        assert!(opted_in.allows(PrincipalType::Agent));
        assert!(opted_in.allows(PrincipalType::System));
        assert!(!opted_in.allows(PrincipalType::User));
    }

    #[test]
    fn values_are_checked_per_type() {
        assert!(validate_value(SecretType::Basic, &Injection::default(), "user:pass").is_ok());
        assert!(validate_value(SecretType::Basic, &Injection::default(), "nopass").is_err());
        assert!(validate_value(SecretType::Basic, &Injection::default(), ":pass").is_err());
        assert!(validate_value(SecretType::Bearer, &Injection::default(), "a\nb").is_err());
        assert!(validate_value(SecretType::Bearer, &Injection::default(), "").is_err());
        let aws = r#"{"access_key_id":"AKIAIOSFODNN7EXAMPLE","secret_access_key":"wJalr","region":"us-east-1"}"#;
        assert!(validate_value(SecretType::AwsSigv4, &Injection::default(), aws).is_ok());
        assert!(
            validate_value(
                SecretType::AwsSigv4,
                &Injection::default(),
                r#"{"access_key_id":"AKIA"}"#
            )
            .is_err()
        );
        let e =
            validate_value(SecretType::Basic, &Injection::default(), "sk_live_secret").unwrap_err();
        assert!(
            !e.to_string().contains("sk_live"),
            "messages never echo values"
        );
    }

    #[test]
    fn multi_secrets_name_their_rules_and_fields() {
        let rule = |target, name: &str, field: &str| InjectionRule {
            target,
            name: name.into(),
            field: field.into(),
        };
        let rules = vec![
            rule(InjectionTarget::Header, "DD-API-KEY", "api_key"),
            rule(InjectionTarget::Query, "app_key", "app_key"),
        ];
        let injection = validate_injection(SecretType::Multi, None, None, rules.clone()).unwrap();
        let both = r#"{"api_key":"a","app_key":"b"}"#;
        assert!(validate_value(SecretType::Multi, &injection, both).is_ok());
        assert!(validate_value(SecretType::Multi, &injection, r#"{"api_key":"a"}"#).is_err());
        assert!(validate_value(SecretType::Multi, &injection, "a:b").is_err());
        assert!(validate_injection(SecretType::Multi, None, None, vec![]).is_err());
        assert!(validate_injection(SecretType::Bearer, None, None, rules).is_err());
        let bad_field = vec![rule(InjectionTarget::Header, "X-A", "Api")];
        assert!(validate_injection(SecretType::Multi, None, None, bad_field).is_err());
        let bad_header = vec![rule(InjectionTarget::Header, "Host", "a")];
        assert!(validate_injection(SecretType::Multi, None, None, bad_header).is_err());
    }

    #[test]
    fn hosts() {
        let allowed = validate_hosts(&["API.stripe.com".into(), "*.amazonaws.com".into()]).unwrap();
        assert!(host_allowed(&allowed, "api.stripe.com"));
        assert!(host_allowed(&allowed, "s3.us-east-1.amazonaws.com"));
        assert!(!host_allowed(&allowed, "amazonaws.com"));
        assert!(!host_allowed(&allowed, "evil-amazonaws.com"));
        assert!(!host_allowed(&allowed, "stripe.com"));
        assert!(host_allowed(&[], "anything.example"));
        assert!(validate_hosts(&["https://x.com".into()]).is_err());
        assert!(validate_hosts(&["*.".into()]).is_err());
    }
}
