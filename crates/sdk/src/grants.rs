//! Grants: `list_grants`, `create_managed_secret_grant`, `revoke_grant`, `mint_grant`,
//! `revoke_delegation` and `delegate`, as on the reference page (`sdk-grants-reference`).

use alter_proto::connect::SessionGrantPolicy;
use alter_proto::grants::{
    AgentSelfGrantRequest, CreateGrantRequest, DelegateRequest, GrantPolicyBody, ListGrantsRequest,
    MintGrantRequest, RevokeGrantRequest,
};
use alter_proto::signing::encode_path_segment;
use reqwest::Method;

use crate::error::Error;
use crate::transport::{Mapper, Transport};

pub use alter_proto::grants::{
    CreateGrantResult, DelegationResult, GrantInfo, GrantItem, GrantItemCommon, GrantList,
    ManagedSecretGrantItem, OAuthGrantItem, RevokeGrantResult,
};

/// The official client's name for a page of grants.
pub type UnifiedGrantListResult = GrantList;

/// Who a managed-secret grant is for: the wire's principal, built with
/// [`Principal::user`], [`Principal::group`], [`Principal::system`] or [`Principal::agent`].
///
/// ```
/// use alter_sdk::Principal;
/// let alice = Principal::user("eyJhbGciOi…", "alice-prod-stripe");
/// let system = Principal::system().with_label("nightly-sync");
/// ```
pub use alter_proto::grants::PrincipalBody as Principal;

/// The principal as the official client checks it before sending.
fn checked_principal(principal: Principal) -> Result<Principal, Error> {
    Ok(match principal {
        Principal::User { user_token, label } => {
            if user_token.is_empty() || user_token.len() > 8192 {
                return Err(Error::value("user_token must be 1 to 8192 characters"));
            }
            Principal::User {
                user_token,
                label: checked_label(Some(label))?.unwrap_or_default(),
            }
        }
        Principal::Group {
            external_group_id,
            idp_id,
            label,
        } => {
            if !label_ok(&external_group_id) || !label_ok(&idp_id) {
                return Err(Error::value(
                    "external_group_id and idp_id must be 1 to 255 characters",
                ));
            }
            Principal::Group {
                external_group_id,
                idp_id,
                label: checked_label(Some(label))?.unwrap_or_default(),
            }
        }
        Principal::System { label } => Principal::System {
            label: checked_label(label)?,
        },
        Principal::Agent { label } => Principal::Agent {
            label: checked_label(label)?,
        },
    })
}

/// 1–255 characters, like the client checks a label.
pub(crate) fn label_ok(label: &str) -> bool {
    !label.is_empty() && label.chars().count() <= 255
}

fn checked_label(label: Option<String>) -> Result<Option<String>, Error> {
    match label {
        Some(l) if !label_ok(&l) => Err(Error::value("label must be 1 to 255 characters")),
        other => Ok(other),
    }
}

/// `GrantPolicyInput`: when a grant ends.
///
/// ```
/// use alter_sdk::GrantPolicy;
/// let policy = GrantPolicy::new().max_ttl_seconds(86_400).default_ttl_seconds(3_600);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantPolicy {
    body: GrantPolicyBody,
}

impl GrantPolicy {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An absolute end (ISO-8601 with an offset, e.g. `2027-01-01T00:00:00Z`).
    pub fn expires_at(mut self, at: impl Into<String>) -> Self {
        self.body.expires_at = Some(at.into());
        self
    }

    /// The longest lifetime.
    pub fn max_ttl_seconds(mut self, seconds: i64) -> Self {
        self.body.max_ttl_seconds = Some(seconds);
        self
    }

    /// The lifetime given at creation (at most `max_ttl_seconds`).
    pub fn default_ttl_seconds(mut self, seconds: i64) -> Self {
        self.body.default_ttl_seconds = Some(seconds);
        self
    }

    pub(crate) fn body(self) -> Result<GrantPolicyBody, Error> {
        let body = self.body;
        if body
            .expires_at
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(Error::value("expires_at must be an ISO-8601 date-time"));
        }
        for (field, value) in [
            ("max_ttl_seconds", body.max_ttl_seconds),
            ("default_ttl_seconds", body.default_ttl_seconds),
        ] {
            if value.is_some_and(|v| v <= 0) {
                return Err(Error::value(format!("{field} must be a positive integer")));
            }
        }
        Ok(body)
    }

    /// The policy of a Connect session, which takes lengths only.
    pub(crate) fn session_policy(self) -> Result<SessionGrantPolicy, Error> {
        let body = self.body()?;
        if body.expires_at.is_some() {
            return Err(Error::value(
                "a Connect session's grant_policy takes max_ttl_seconds and default_ttl_seconds only",
            ));
        }
        Ok(SessionGrantPolicy {
            max_ttl_seconds: body.max_ttl_seconds,
            default_ttl_seconds: body.default_ttl_seconds,
        })
    }

    fn object(self) -> Result<serde_json::Value, Error> {
        serde_json::to_value(self.body()?).map_err(|e| Error::value(e.to_string()))
    }
}

/// Filters and paging of `list_grants`; all filters narrow.
///
/// ```
/// use alter_sdk::ListGrants;
/// let query = ListGrants::new().provider_id("google").limit(50);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListGrants {
    request: ListGrantsRequest,
}

impl ListGrants {
    /// The first 100 grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this OAuth provider, or this managed secret (by slug).
    pub fn provider_id(mut self, provider: impl Into<String>) -> Self {
        self.request.provider_id = Some(provider.into());
        self
    }

    /// Only grants in this state: `active`, `expired` or `revoked`.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.request.status = Some(status.into());
        self
    }

    /// Only this account identifier.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.request.account = Some(account.into());
        self
    }

    /// Only this sibling label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.request.label = Some(label.into());
        self
    }

    /// Only the grants of the end user this JWT identifies.
    pub fn end_user_token(mut self, token: impl Into<String>) -> Self {
        self.request.user_token = Some(token.into());
        self
    }

    /// Page size, 1–1000 (default 100).
    pub fn limit(mut self, limit: i64) -> Self {
        self.request.limit = limit;
        self
    }

    /// Grants to skip (default 0).
    pub fn offset(mut self, offset: i64) -> Self {
        self.request.offset = offset;
        self
    }

    fn checked(self) -> Result<ListGrantsRequest, Error> {
        let r = self.request;
        if !(1..=1000).contains(&r.limit) {
            return Err(Error::value("limit must be between 1 and 1000"));
        }
        if r.offset < 0 {
            return Err(Error::value("offset must not be negative"));
        }
        for (field, value) in [
            ("provider_id", &r.provider_id),
            ("status", &r.status),
            ("account", &r.account),
            ("label", &r.label),
            ("end_user_token", &r.user_token),
        ] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(Error::value(format!("{field} must not be empty")));
            }
        }
        Ok(r)
    }
}

/// Options of `Agent::delegate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DelegateOptions {
    /// Whether the receiving agent may delegate onward (`None` keeps an existing delegation's
    /// setting; a new one is a leaf).
    pub delegable: Option<bool>,
    /// Lifetime in seconds (capped by the holder's own).
    pub ttl_seconds: Option<i64>,
}

/// A canonical lower-case hyphenated UUID, as the official client sends grant and agent ids
/// (the revoke paths, the agent identity of `App::get_agent`) and expects them back (the
/// `grant_id` of a token answer).
pub(crate) fn canonical_uuid(field: &str, value: &str) -> Result<String, Error> {
    uuid::Uuid::try_parse(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::value(format!("{field} must be a UUID")))
}

fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(Error::value(format!("{field} must not be empty")))
    } else {
        Ok(value)
    }
}

pub(crate) async fn list_grants(
    transport: &Transport,
    query: ListGrants,
) -> Result<GrantList, Error> {
    let body = query.checked()?;
    transport
        .json(Method::POST, "/sdk/grants/list", Some(&body), Mapper::Main)
        .await
}

pub(crate) async fn create_managed_secret_grant(
    transport: &Transport,
    managed_secret_id: &str,
    principal: Principal,
    grant_policy: Option<GrantPolicy>,
) -> Result<CreateGrantResult, Error> {
    let id = non_empty("managed_secret_id", managed_secret_id)?;
    let body = CreateGrantRequest {
        principal: checked_principal(principal)?,
        grant_policy: grant_policy.unwrap_or_default().body()?,
        credential_id: None,
    };
    let path = format!("/sdk/managed-secrets/{}/grants", encode_path_segment(id));
    transport
        .json(Method::POST, &path, Some(&body), Mapper::Main)
        .await
}

pub(crate) async fn create_agent_self_grant(
    transport: &Transport,
    managed_secret_id: &str,
    label: Option<&str>,
    grant_policy: Option<GrantPolicy>,
) -> Result<CreateGrantResult, Error> {
    let id = non_empty("managed_secret_id", managed_secret_id)?;
    let body = AgentSelfGrantRequest {
        label: checked_label(label.map(str::to_owned))?,
        grant_policy: grant_policy.unwrap_or_default().body()?,
    };
    let path = format!(
        "/sdk/agents/me/managed-secrets/{}/grants",
        encode_path_segment(id)
    );
    transport
        .json(Method::POST, &path, Some(&body), Mapper::Main)
        .await
}

pub(crate) async fn revoke_grant(
    transport: &Transport,
    grant_id: &str,
    reason: Option<&str>,
) -> Result<RevokeGrantResult, Error> {
    let id = canonical_uuid("grant_id", grant_id)?;
    let body = RevokeGrantRequest {
        reason: reason.map(str::to_owned),
        user_token: None,
    };
    let path = format!("/sdk/oauth/grants/{id}/revoke");
    transport
        .json(Method::POST, &path, Some(&body), Mapper::Main)
        .await
}

pub(crate) async fn mint_grant(
    transport: &Transport,
    source_grant_id: &str,
    label: &str,
    grant_policy: Option<GrantPolicy>,
) -> Result<GrantInfo, Error> {
    let source = non_empty("source_grant_id", source_grant_id)?;
    let body = MintGrantRequest {
        label: non_empty("label", label)?.to_owned(),
        grant_policy: grant_policy.map(GrantPolicy::object).transpose()?,
        grant_tags: None,
    };
    let path = format!("/sdk/grants/{}/mint", encode_path_segment(source));
    transport
        .json(Method::POST, &path, Some(&body), Mapper::Main)
        .await
}

pub(crate) async fn revoke_delegation(
    transport: &Transport,
    grant_id: &str,
    agent_id: Option<&str>,
) -> Result<(), Error> {
    let grant = canonical_uuid("grant_id", grant_id)?;
    let agent = match agent_id {
        Some(agent) => canonical_uuid("agent_id", agent)?,
        None => "me".to_owned(),
    };
    let path = format!("/sdk/grants/{grant}/delegations/{agent}");
    transport
        .send::<()>(Method::DELETE, &path, None, Mapper::Main)
        .await
        .map(drop)
}

pub(crate) async fn delegate(
    transport: &Transport,
    grant_id: &str,
    to_agent_id: &str,
    options: DelegateOptions,
) -> Result<DelegationResult, Error> {
    let grant = non_empty("grant_id", grant_id)?;
    if options.ttl_seconds.is_some_and(|t| t <= 0) {
        return Err(Error::value("ttl_seconds must be a positive integer"));
    }
    let body = DelegateRequest {
        to_agent_id: non_empty("to_agent_id", to_agent_id)?.to_owned(),
        delegable: options.delegable,
        scope_constraint: None,
        ttl_seconds: options.ttl_seconds,
    };
    let path = format!("/sdk/grants/{}/delegate", encode_path_segment(grant));
    transport
        .json(Method::POST, &path, Some(&body), Mapper::Main)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_user_token() {
        let principal = Principal::user("eyJhbGciOiJFUzI1NiJ9.secret-jwt", "alice");
        let shown = format!("{principal:?}");
        assert!(!shown.contains("secret-jwt"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn local_validation() {
        assert!(checked_principal(Principal::user("", "l")).is_err());
        assert!(checked_principal(Principal::user("t", "")).is_err());
        assert!(checked_principal(Principal::system().with_label("x".repeat(256))).is_err());
        assert!(checked_principal(Principal::system()).is_ok());
        assert!(GrantPolicy::new().max_ttl_seconds(0).body().is_err());
        assert_eq!(ListGrants::new().checked().unwrap().limit, 100);
        assert!(ListGrants::new().limit(1001).checked().is_err());
        assert!(ListGrants::new().offset(-1).checked().is_err());
        assert!(ListGrants::new().provider_id("").checked().is_err());
        assert!(canonical_uuid("grant_id", "grant_xyz").is_err());
        assert_eq!(
            canonical_uuid("g", "6F9619FF-8B86-D011-B42D-00CF4FC964FF").unwrap(),
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
        );
    }

    #[test]
    fn principals_serialize_like_the_client() {
        let body =
            serde_json::to_string(&checked_principal(Principal::user("jwt", "alice")).unwrap())
                .unwrap();
        assert_eq!(
            body,
            r#"{"type":"user","user_token":"jwt","label":"alice"}"#
        );
        let body = serde_json::to_string(&checked_principal(Principal::system()).unwrap()).unwrap();
        assert_eq!(body, r#"{"type":"system","label":null}"#);
    }
}
