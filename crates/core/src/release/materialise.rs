//! *Materialise*: opens the credential a grant points at and builds what the outgoing call
//! carries — the header, the query parameters, the values a SigV4 signature needs. The value
//! lives for one request: it is opened here, handed to *deliver*, and never stored or logged.

use std::collections::BTreeMap;

use alter_crypto::{ExposeSecret, SecretString};
use base64::Engine as _;

use crate::connections::Connection;
use crate::error::{Error, Result};
use crate::grants::Grant;
use crate::secrets::{AwsCredential, InjectionTarget, ManagedSecret, SecretType, multi_fields};
use crate::time::Timestamp;
use crate::user_secrets::UserSecret;
use crate::vault::Vault;

/// The header a credential that travels only in the query still sets: the official client
/// always applies the main header, so it carries a harmless marker instead of the secret.
const QUERY_MARKER_HEADER: &str = "X-Alter-Credential";
/// The marker's value for a `query` secret.
const QUERY_MARKER_VALUE: &str = "query-parameter";
/// The marker's value for a `multi` secret.
const MULTI_MARKER_VALUE: &str = "multi";

/// How the outgoing call is authenticated, as the client names the token's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `Authorization: Bearer …`.
    Bearer,
    /// `Authorization: Basic …`.
    Basic,
    /// An AWS Signature Version 4.
    AwsSigv4,
    /// A key in a header or the query.
    ApiKey,
}

/// Where an extra value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraTarget {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
}

/// One more value the call carries besides the main header (`additional_injections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInjection {
    /// Header or query parameter.
    pub target: ExtraTarget,
    /// Its name.
    pub key: String,
    /// The field of [`CredentialInjection::extra_values`] it takes its value from.
    pub field: String,
}

/// The credential as the outgoing call carries it.
#[derive(Debug)]
pub struct CredentialInjection {
    /// The token type.
    pub kind: TokenKind,
    /// The main value (`access_token`).
    pub token: SecretString,
    /// The main header's name.
    pub header: String,
    /// The main header's value, `{token}` standing for the token.
    pub format: String,
    /// Named values the extra injections or a SigV4 signature use.
    pub extra_values: Option<BTreeMap<String, SecretString>>,
    /// Extra headers and query parameters.
    pub extra_injections: Vec<ExtraInjection>,
    /// When the token expires (an OAuth access token), if known.
    pub expires_at: Option<Timestamp>,
    /// Scopes the token carries (OAuth).
    pub scopes: Vec<String>,
    /// The token was refreshed for this release.
    pub refreshed: bool,
    /// The token lacks scopes the credential's configuration now requires.
    pub scopes_short: bool,
}

impl CredentialInjection {
    fn header(kind: TokenKind, header: &str, format: &str, token: SecretString) -> Self {
        CredentialInjection {
            kind,
            token,
            header: header.to_owned(),
            format: format.to_owned(),
            extra_values: None,
            extra_injections: Vec::new(),
            expires_at: None,
            scopes: Vec::new(),
            refreshed: false,
            scopes_short: false,
        }
    }

    /// A credential that travels in extra injections only: the main header carries a marker.
    fn extras_only(
        marker: &str,
        values: BTreeMap<String, SecretString>,
        injections: Vec<ExtraInjection>,
    ) -> Self {
        CredentialInjection {
            extra_values: Some(values),
            extra_injections: injections,
            ..Self::header(
                TokenKind::ApiKey,
                QUERY_MARKER_HEADER,
                "{token}",
                SecretString::from(marker),
            )
        }
    }
}

impl Vault {
    /// The access token of the connection `grant` points at, refreshed first when it is about
    /// to expire, as a bearer token.
    pub(crate) async fn materialise_connection(
        &self,
        grant: &Grant,
        connection: &Connection,
    ) -> Result<CredentialInjection> {
        let fresh = self.fresh_tokens(grant, connection.clone()).await?;
        // Headers every call to the provider's API needs (`Notion-Version`…), as extra
        // injections: the caller does not have to know them.
        let provider = self
            .store()
            .get_provider(connection.app_id, &connection.provider_id)
            .await?;
        // An operator who since requires more scopes than the grant holds: the client is told
        // (`scope_mismatch`), and a provider 403 then asks the user to reconnect.
        let scopes_short = provider.as_ref().is_some_and(|p| {
            p.scopes
                .iter()
                .any(|required| !fresh.connection.scopes.contains(required))
        });
        let api_headers = provider
            .map(|provider| provider.endpoints.api_headers)
            .unwrap_or_default();
        let (extra_values, extra_injections) = header_injections(api_headers);
        Ok(CredentialInjection {
            scopes_short,
            expires_at: fresh.connection.access_expires_at,
            scopes: fresh.connection.scopes,
            refreshed: fresh.refreshed,
            extra_values,
            extra_injections,
            ..CredentialInjection::header(
                TokenKind::Bearer,
                "Authorization",
                "Bearer {token}",
                fresh.tokens.access_token,
            )
        })
    }

    /// Opens a user's own key and builds its injection the way its template says.
    pub(crate) fn materialise_user_secret(
        &self,
        template: &ManagedSecret,
        key: &UserSecret,
    ) -> Result<CredentialInjection> {
        inject_secret(template, self.open_user_value(key)?)
    }

    /// Opens a managed secret's value and builds its injection, per injection type.
    pub(crate) fn materialise_secret(&self, secret: &ManagedSecret) -> Result<CredentialInjection> {
        let opened = self.open_secret_value(secret)?;
        let text = std::str::from_utf8(&opened).map_err(|_| unreadable())?;
        inject_secret(secret, SecretString::from(text.to_owned()))
    }
}

/// Fixed headers as extra injections, each from its own value (`header_0`, `header_1`…).
fn header_injections(
    headers: BTreeMap<String, String>,
) -> (Option<BTreeMap<String, SecretString>>, Vec<ExtraInjection>) {
    if headers.is_empty() {
        return (None, Vec::new());
    }
    let mut values = BTreeMap::new();
    let mut injections = Vec::new();
    for (n, (name, value)) in headers.into_iter().enumerate() {
        let field = format!("header_{n}");
        values.insert(field.clone(), SecretString::from(value));
        injections.push(ExtraInjection {
            target: ExtraTarget::Header,
            key: name,
            field,
        });
    }
    (Some(values), injections)
}

fn unreadable() -> Error {
    Error::Crypto(alter_crypto::CryptoError::CannotOpen)
}

/// The injection of `secret` whose opened value is `value`.
fn inject_secret(secret: &ManagedSecret, value: SecretString) -> Result<CredentialInjection> {
    Ok(match secret.secret_type {
        SecretType::Bearer => {
            CredentialInjection::header(TokenKind::Bearer, "Authorization", "Bearer {token}", value)
        }
        SecretType::Header => {
            let header = secret.injection.header.clone().unwrap_or_default();
            CredentialInjection::header(TokenKind::ApiKey, &header, "{token}", value)
        }
        SecretType::Basic => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value.expose_secret());
            CredentialInjection::header(
                TokenKind::Basic,
                "Authorization",
                "Basic {token}",
                SecretString::from(encoded),
            )
        }
        SecretType::Query => CredentialInjection::extras_only(
            QUERY_MARKER_VALUE,
            BTreeMap::from([("value".to_owned(), value)]),
            vec![ExtraInjection {
                target: ExtraTarget::Query,
                key: secret.injection.param.clone().unwrap_or_default(),
                field: "value".into(),
            }],
        ),
        SecretType::Multi => {
            let rules = &secret.injection.rules;
            let fields = multi_fields(value.expose_secret()).ok_or_else(unreadable)?;
            // Only the fields a rule injects leave the vault.
            let values = fields
                .into_iter()
                .filter(|(field, _)| rules.iter().any(|r| &r.field == field))
                .map(|(field, v)| (field, SecretString::from(v)))
                .collect();
            let injections = rules
                .iter()
                .map(|rule| ExtraInjection {
                    target: match rule.target {
                        InjectionTarget::Header => ExtraTarget::Header,
                        InjectionTarget::Query => ExtraTarget::Query,
                    },
                    key: rule.name.clone(),
                    field: rule.field.clone(),
                })
                .collect();
            CredentialInjection::extras_only(MULTI_MARKER_VALUE, values, injections)
        }
        SecretType::AwsSigv4 => {
            let aws: AwsCredential =
                serde_json::from_str(value.expose_secret()).map_err(|_| unreadable())?;
            let mut values = BTreeMap::from([(
                "secret_key".to_owned(),
                SecretString::from(aws.secret_access_key),
            )]);
            for (name, field) in [
                ("session_token", aws.session_token),
                ("region", aws.region),
                ("service", aws.service),
            ] {
                if let Some(v) = field {
                    values.insert(name.to_owned(), SecretString::from(v));
                }
            }
            CredentialInjection {
                extra_values: Some(values),
                ..CredentialInjection::header(
                    TokenKind::AwsSigv4,
                    "Authorization",
                    "AWS4-HMAC-SHA256",
                    SecretString::from(aws.access_key_id),
                )
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, SecretId};
    use crate::secrets::{Injection, InjectionRule, SecretLimits};

    fn secret(secret_type: SecretType, injection: Injection) -> ManagedSecret {
        ManagedSecret {
            id: SecretId::new(),
            app_id: AppId::new(),
            slug: "s".into(),
            name: "S".into(),
            secret_type,
            injection,
            allowed_hosts: vec!["api.example.com".into()],
            limits: SecretLimits::default(),
            sealed_value: Vec::new(),
            value_version: 1,
            created_at: Timestamp::from_micros(0),
            rotated_at: None,
            deleted_at: None,
        }
    }

    fn inject(secret: &ManagedSecret, value: &str) -> CredentialInjection {
        inject_secret(secret, SecretString::from(value)).unwrap()
    }

    fn values(injection: &CredentialInjection) -> BTreeMap<String, String> {
        injection
            .extra_values
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect()
    }

    #[test]
    fn header_secrets_go_in_the_main_header() {
        let bearer = inject(&secret(SecretType::Bearer, Injection::default()), "tok");
        assert_eq!(
            (bearer.kind, bearer.header.as_str(), bearer.format.as_str()),
            (TokenKind::Bearer, "Authorization", "Bearer {token}")
        );
        assert_eq!(bearer.token.expose_secret(), "tok");
        let basic = inject(&secret(SecretType::Basic, Injection::default()), "u:p");
        assert_eq!(basic.token.expose_secret(), "dTpw");
        let header = Injection {
            header: Some("X-Api-Key".into()),
            ..Injection::default()
        };
        let keyed = inject(&secret(SecretType::Header, header), "k");
        assert_eq!(
            (keyed.kind, keyed.header.as_str()),
            (TokenKind::ApiKey, "X-Api-Key")
        );
        assert!(keyed.extra_values.is_none() && keyed.extra_injections.is_empty());
    }

    #[test]
    fn query_and_multi_secrets_leave_only_a_marker_in_the_header() {
        let query = Injection {
            param: Some("api_key".into()),
            ..Injection::default()
        };
        let q = inject(&secret(SecretType::Query, query), "k");
        assert_eq!(q.token.expose_secret(), QUERY_MARKER_VALUE);
        assert_eq!(values(&q), BTreeMap::from([("value".into(), "k".into())]));
        assert_eq!(q.extra_injections[0].target, ExtraTarget::Query);
        let multi = Injection {
            rules: vec![InjectionRule {
                target: InjectionTarget::Header,
                name: "X-Id".into(),
                field: "id".into(),
            }],
            ..Injection::default()
        };
        let m = inject(
            &secret(SecretType::Multi, multi),
            r#"{"id":"1","unused":"never leaves"}"#,
        );
        assert_eq!(values(&m), BTreeMap::from([("id".into(), "1".into())]));
        assert_eq!(m.token.expose_secret(), MULTI_MARKER_VALUE);
    }

    #[test]
    fn aws_keys_carry_what_a_signature_needs() {
        let aws = inject(
            &secret(SecretType::AwsSigv4, Injection::default()),
            r#"{"access_key_id":"AKIA","secret_access_key":"shh","region":"eu-west-1"}"#,
        );
        assert_eq!(aws.token.expose_secret(), "AKIA");
        assert_eq!(
            values(&aws),
            BTreeMap::from([
                ("region".into(), "eu-west-1".into()),
                ("secret_key".into(), "shh".into()),
            ])
        );
        let broken = inject_secret(
            &secret(SecretType::AwsSigv4, Injection::default()),
            SecretString::from("not json"),
        );
        assert!(matches!(broken, Err(Error::Crypto(_))));
    }
}
