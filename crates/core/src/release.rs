//! Releasing a credential to a signed caller (retrieve mode, `POST /sdk/token`): resolve the
//! grant, check every release rule, and write the decision to the audit log — a release is
//! committed there before the credential leaves; a refusal is recorded too. If the event
//! cannot be written, nothing is released.

use std::collections::BTreeMap;

use alter_crypto::{ExposeSecret, SecretString};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::agents::{Agent, AgentStatus};
use crate::audit::{Actor, AuditEvent, RequestSummary, Target, action};
use crate::caller::Caller;
use crate::error::{Entity, Error, Result};
use crate::grants::{
    Grant, GrantState, GrantView, Principal, SecretSummary, Viewer, principal_json,
};
use crate::identity::SignedInUser;
use crate::ids::{AgentId, AppId, EventId, GrantId, KeyId, UserId};
use crate::scope::Scope;
use crate::secrets::{
    AwsCredential, InjectionTarget, ManagedSecret, SecretType, host_allowed, multi_fields,
};
use crate::time::Timestamp;
use crate::vault::Vault;

/// Most candidates an ambiguity answer lists.
const MAX_CANDIDATES: usize = 20;
/// The header a credential that travels only in the query still sets: the official client
/// always applies the main header, so it carries a harmless marker instead of the secret.
const QUERY_MARKER_HEADER: &str = "X-Alter-Credential";
/// The marker's value.
const QUERY_MARKER_VALUE: &str = "query-parameter";

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct ReleaseRequest {
    /// Direct mode: this grant.
    pub grant_id: Option<String>,
    /// Provider mode: this managed secret (slug) or OAuth provider.
    pub provider_id: Option<String>,
    /// Why (kept in the audit log).
    pub reason: Option<String>,
    /// The outgoing call's method.
    pub method: String,
    /// The outgoing call's URL.
    pub url: String,
    /// An end user's JWT: the grant must be theirs (or, for agents, delegated by them).
    pub user_token: Option<String>,
    /// Provider mode: the user whose delegation an agent uses.
    pub app_user_id: Option<String>,
    /// Provider mode: the account.
    pub account: Option<String>,
    /// Provider mode: the sibling label.
    pub label: Option<String>,
}

/// A value of `additional_injections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInjection {
    /// `header` or `query_param`.
    pub target: &'static str,
    /// Header or parameter name.
    pub key: String,
    /// `token` or `additional_credentials.<field>`.
    pub value_source: String,
}

/// The credential as the client injects it.
#[derive(Debug)]
pub struct ReleasedCredential {
    /// `access_token`.
    pub access_token: SecretString,
    /// `injection_header`.
    pub injection_header: String,
    /// `injection_format`.
    pub injection_format: String,
    /// `additional_credentials`.
    pub additional_credentials: Option<BTreeMap<String, SecretString>>,
    /// `additional_injections`.
    pub additional_injections: Vec<ExtraInjection>,
}

/// A release that was recorded.
#[derive(Debug)]
pub struct Release {
    /// The grant used.
    pub grant: Grant,
    /// Its managed secret.
    pub secret: ManagedSecret,
    /// The credential.
    pub credential: ReleasedCredential,
    /// The release's audit event id (the client echoes it as `token_generation`).
    pub release_id: EventId,
    /// Seconds until the grant ends, if it ends.
    pub expires_in: Option<i64>,
    /// A provider reported the grant's scopes too narrow.
    pub scope_mismatch: bool,
}

/// What must still hold when a release commits. The store checks it in the transaction that
/// commits the release's event, so a revocation, agent pause or key revocation that answered
/// first always wins over a release still in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseCondition {
    /// The released grant and every link of its delegation chain: active and not expired.
    pub grants: Vec<GrantId>,
    /// The calling agent and every agent of the chain: active (neither paused nor deleted).
    pub agents: Vec<AgentId>,
    /// The key that signed: neither revoked, expired nor past its rotation overlap.
    pub key: KeyId,
    /// The release's time, at which expiries are judged.
    pub at: Timestamp,
}

/// Why a release was refused (each a stable code; see `server/src/error.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The grant was revoked.
    Revoked,
    /// The grant's lifetime ended.
    Expired,
    /// The managed secret was deleted.
    Deleted,
    /// A link of the delegation chain is broken (parent gone, user left the group…).
    DelegationInvalid(&'static str),
    /// The URL's host is not among the secret's allowed hosts.
    BlockedDestination,
    /// The agent's allowlist does not name this secret.
    AgentNotAllowlisted,
    /// The secret's limits do not admit the principal type of the grant at the root of the
    /// chain (an agent's own grant from before the `agent` type was opt-in).
    PrincipalNotAllowed,
    /// The grant may only be used through the proxy (approval required, or a request rule
    /// that needs to see the call).
    RequiresProxy(&'static str),
    /// The caller's request rule forbids the call.
    RuleDenied,
}

impl Denial {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::Revoked => "grant_revoked",
            Denial::Expired => "grant_expired",
            Denial::Deleted => "grant_deleted",
            Denial::DelegationInvalid(_) => "delegation_invalid",
            Denial::BlockedDestination => "blocked_destination",
            Denial::AgentNotAllowlisted => "agent_not_allowlisted",
            Denial::PrincipalNotAllowed => "principal_not_allowed",
            Denial::RequiresProxy(code) => code,
            Denial::RuleDenied => "request_rule_denied",
        }
    }
}

impl Vault {
    /// `POST /sdk/token`: resolves the grant for the caller, checks the release rules and
    /// records the decision, then returns the credential. Every refusal after the request
    /// parsed is recorded as a denial before it is answered.
    pub async fn release(&self, caller: &Caller, request: ReleaseRequest) -> Result<Release> {
        validate(&request)?;
        let summary = RequestSummary::new(&request.method, &request.url);
        let deny = |reason: &str, grant: Option<&Grant>| {
            self.deny_event(caller, &request, &summary, reason, grant)
        };
        if let Err(e) = caller.require(&Scope::Action("tokens:retrieve")) {
            self.record(deny("insufficient_scope", None)).await?;
            return Err(e);
        }
        let user = match &request.user_token {
            Some(token) => match self.sign_in(caller.app_id, token).await {
                Ok(user) => Some(user),
                Err(e) => {
                    self.record(deny("jwt_validation_error", None)).await?;
                    return Err(e);
                }
            },
            None => None,
        };
        let (grant, secret) = match self.resolve(caller, &request, user.as_ref()).await {
            Ok(found) => found,
            Err(e) => {
                self.record(deny(refusal_code(&e), None)).await?;
                return Err(e);
            }
        };
        let secret = match secret {
            Some(secret) => secret,
            None => self
                .secret_of(&grant)
                .await?
                .ok_or(Error::NotFound(Entity::Grant))?,
        };
        let chain = match self
            .check_release(caller, &grant, &secret, caller.agent.as_deref(), &request)
            .await
        {
            Ok(chain) => chain,
            Err(denial) => {
                self.record(deny(denial.code(), Some(&grant))).await?;
                return Err(Error::ReleaseDenied(denial));
            }
        };
        let credential = self.credential(&secret)?;
        let now = self.now();
        let condition = ReleaseCondition {
            grants: chain.iter().map(|link| link.id).collect(),
            agents: caller
                .agent_id()
                .into_iter()
                .chain(chain.iter().filter_map(Grant::agent_id))
                .collect(),
            key: caller.key_id,
            at: now,
        };
        let event = AuditEvent {
            principal: Some(principal_json(&grant)),
            request: Some(summary.clone()),
            reason: request.reason.clone(),
            context: caller.context.clone(),
            ..AuditEvent::allow(
                caller.app_id,
                now,
                action::CREDENTIAL_RELEASED,
                caller.actor(),
                Target {
                    kind: "grant".into(),
                    id: grant.id.to_string(),
                },
            )
        }
        .with_details(json!({
            "secret_id": secret.id,
            "secret_slug": secret.slug,
            "value_version": secret.value_version,
            "parent_grant_id": grant.parent_grant_id,
        }));
        let release_id = event.id;
        let touch =
            crate::caller::last_use_is_stale(grant.last_used_at, now).then_some((grant.id, now));
        if !self.store().commit_release(event, touch, condition).await? {
            let (code, refusal) = self
                .raced_refusal(caller, &grant, &secret, &request)
                .await?;
            self.record(deny(code, Some(&grant))).await?;
            return Err(refusal);
        }
        Ok(Release {
            expires_in: grant.expires_at.map(|end| now.seconds_until(end).max(0)),
            scope_mismatch: grant.scope_mismatch,
            release_id,
            credential,
            secret,
            grant,
        })
    }

    async fn record(&self, event: AuditEvent) -> Result<()> {
        Ok(self.store().record_release(event).await?)
    }

    /// Why a release whose checks passed was refused at commit: the revocation, pause or key
    /// revocation that committed in between, read back, with the code its denial is recorded
    /// under. The release answers as a request made after it would have.
    async fn raced_refusal(
        &self,
        caller: &Caller,
        grant: &Grant,
        secret: &ManagedSecret,
        request: &ReleaseRequest,
    ) -> Result<(&'static str, Error)> {
        let now = self.now();
        let key = self.store().get_key(caller.app_id, caller.key_id).await?;
        match key.map(|key| key.check_usable(now)) {
            None | Some(Err(Error::KeyRevoked)) => return Ok(("key_revoked", Error::KeyRevoked)),
            Some(Err(Error::KeyRotationExpired)) => {
                return Ok(("key_rotation_expired", Error::KeyRotationExpired));
            }
            Some(Err(_)) => return Ok(("key_expired", Error::KeyExpired)),
            Some(Ok(())) => {}
        }
        let agent = match caller.agent_id() {
            Some(id) => Some(self.agent(caller.app_id, id).await?),
            None => None,
        };
        match agent.as_ref().map(|a| a.status) {
            Some(AgentStatus::Inactive) => return Ok(("agent_inactive", Error::AgentInactive)),
            Some(AgentStatus::Revoked) => return Ok(("agent_revoked", Error::AgentRevoked)),
            _ => {}
        }
        let grant = self
            .store()
            .get_grant(caller.app_id, grant.id)
            .await?
            .ok_or(Error::NotFound(Entity::Grant))?;
        if let Err(denial) = self
            .check_release(caller, &grant, secret, agent.as_ref(), request)
            .await
        {
            return Ok((denial.code(), Error::ReleaseDenied(denial)));
        }
        // Everything holds again: only an agent can come back, so one was paused and resumed.
        Ok(match caller.agent_id() {
            Some(_) => ("agent_inactive", Error::AgentInactive),
            None => {
                let denial = Denial::DelegationInvalid("the agent is not active");
                (denial.code(), Error::ReleaseDenied(denial))
            }
        })
    }

    fn deny_event(
        &self,
        caller: &Caller,
        request: &ReleaseRequest,
        summary: &RequestSummary,
        reason: &str,
        grant: Option<&Grant>,
    ) -> AuditEvent {
        AuditEvent {
            target: grant.map(|g| Target {
                kind: "grant".into(),
                id: g.id.to_string(),
            }),
            principal: grant.map(principal_json),
            request: Some(summary.clone()),
            context: caller.context.clone(),
            details: Some(json!({
                "grant_id": request.grant_id,
                "provider_id": request.provider_id,
                "label": request.label,
            })),
            ..AuditEvent::deny(
                caller.app_id,
                self.now(),
                action::CREDENTIAL_DENIED,
                caller.actor(),
                reason,
            )
        }
    }

    /// The one grant the request names, as the caller may reach it, and its secret when the
    /// lookup already read it (by provider).
    async fn resolve(
        &self,
        caller: &Caller,
        request: &ReleaseRequest,
        user: Option<&SignedInUser>,
    ) -> Result<(Grant, Option<ManagedSecret>)> {
        let consenting = match &request.app_user_id {
            Some(text) => {
                Some(UserId::parse_lenient(text).ok_or_else(|| not_found(caller, request))?)
            }
            None => None,
        };
        if let Some(grant_id) = &request.grant_id {
            let grant = self
                .reachable_grant(caller, grant_id)
                .await
                .map_err(|e| match e {
                    Error::NotFound(_) => not_found(caller, request),
                    other => other,
                })?;
            return if user.is_none_or(|u| belongs_to(&grant, u)) {
                Ok((grant, None))
            } else {
                Err(not_found(caller, request))
            };
        }
        let provider = request.provider_id.as_deref().unwrap_or_default();
        let secret = self
            .store()
            .get_secret_by_slug(caller.app_id, provider)
            .await?
            .filter(|s| s.deleted_at.is_none())
            .ok_or_else(|| not_found(caller, request))?;
        let viewer = match (caller.agent_id(), user) {
            (Some(agent), user) => Viewer::Agent {
                agent,
                delegated_by: user.map(|u| u.user.id).or(consenting),
            },
            (None, Some(user)) => Viewer::User {
                user: user.user.id,
                idp: user.user.idp_id,
                groups: user.groups.clone(),
            },
            (None, None) => Viewer::App,
        };
        let now = self.now();
        let candidates = self
            .store()
            .release_candidates(
                caller.app_id,
                secret.id,
                &viewer,
                request.label.as_deref(),
                now,
                MAX_CANDIDATES as i64 + 1,
            )
            .await?;
        match candidates.as_slice() {
            [] => Err(not_found(caller, request)),
            [one] => Ok((one.clone(), Some(secret))),
            many => Err(Error::AmbiguousGrant {
                provider_id: provider.to_owned(),
                candidates: many
                    .iter()
                    .take(MAX_CANDIDATES)
                    .map(|g| (g.id, g.label.clone()))
                    .collect(),
                truncated: many.len() > MAX_CANDIDATES,
            }),
        }
    }

    /// Checks every release rule; returns the delegation chain it checked, from `grant` up to
    /// its root.
    async fn check_release(
        &self,
        caller: &Caller,
        grant: &Grant,
        secret: &ManagedSecret,
        agent: Option<&Agent>,
        request: &ReleaseRequest,
    ) -> std::result::Result<Vec<Grant>, Denial> {
        if secret.deleted_at.is_some() {
            return Err(Denial::Deleted);
        }
        match grant.state(self.now()) {
            GrantState::Revoked => return Err(Denial::Revoked),
            GrantState::Expired => return Err(Denial::Expired),
            GrantState::Active => {}
        }
        let chain = if grant.parent_grant_id.is_some() {
            match self.check_delegation_chain(grant, agent).await {
                Ok(chain) => chain,
                Err(Error::DelegationInvalid(why)) => return Err(Denial::DelegationInvalid(why)),
                Err(_) => {
                    return Err(Denial::DelegationInvalid(
                        "the delegation chain cannot be checked",
                    ));
                }
            }
        } else {
            vec![grant.clone()]
        };
        // Limits are checked when a grant is made and again at every use: grants made before
        // a limit existed (agents binding secrets to themselves) do not outlive it.
        let root = chain.last().unwrap_or(grant);
        if !secret.limits.allows(root.principal.kind()) {
            return Err(Denial::PrincipalNotAllowed);
        }
        if let Some(agent) = agent {
            if !agent.allowlists_secret(&secret.slug, self.now()) {
                return Err(Denial::AgentNotAllowlisted);
            }
            if agent.policy.get("requires_approval") == Some(&Value::Bool(true)) {
                return Err(Denial::RequiresProxy("hitl_grant_requires_proxy"));
            }
        }
        if !host_of(&request.url).is_some_and(|host| host_allowed(&secret.allowed_hosts, &host)) {
            return Err(Denial::BlockedDestination);
        }
        if let Some(rule) = &caller.request_rule {
            let denies = rule.rule_body.get("effect").and_then(Value::as_str) == Some("deny");
            match rule.rule_type.as_str() {
                // On a token request, conditions on the method count as met: the rule denies.
                "json_match" if denies => return Err(Denial::RuleDenied),
                "json_match" => {}
                // Rules on the request's content can only be enforced where the content is seen.
                _ => return Err(Denial::RequiresProxy("restricted_grant_requires_proxy")),
            }
        }
        Ok(chain)
    }

    /// The credential as the client injects it, per injection type.
    fn credential(&self, secret: &ManagedSecret) -> Result<ReleasedCredential> {
        let opened = self.open_secret_value(secret)?;
        let unreadable = || Error::Crypto(alter_crypto::CryptoError::CannotOpen);
        let text = std::str::from_utf8(&opened).map_err(|_| unreadable())?;
        let value = SecretString::from(text.to_owned());
        let plain = |header: &str, format: &str, token: SecretString| ReleasedCredential {
            access_token: token,
            injection_header: header.to_owned(),
            injection_format: format.to_owned(),
            additional_credentials: None,
            additional_injections: Vec::new(),
        };
        Ok(match secret.secret_type {
            SecretType::Bearer => plain("Authorization", "Bearer {token}", value),
            SecretType::Header => {
                let header = secret.injection.header.clone().unwrap_or_default();
                plain(&header, "{token}", value)
            }
            SecretType::Basic => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(value.expose_secret());
                plain(
                    "Authorization",
                    "Basic {token}",
                    SecretString::from(encoded),
                )
            }
            SecretType::Query => ReleasedCredential {
                additional_credentials: Some(BTreeMap::from([("value".to_owned(), value)])),
                additional_injections: vec![ExtraInjection {
                    target: "query_param",
                    key: secret.injection.param.clone().unwrap_or_default(),
                    value_source: "additional_credentials.value".into(),
                }],
                ..plain(
                    QUERY_MARKER_HEADER,
                    "{token}",
                    SecretString::from(QUERY_MARKER_VALUE),
                )
            },
            SecretType::Multi => {
                let fields = multi_fields(value.expose_secret()).ok_or_else(unreadable)?;
                let injections = secret
                    .injection
                    .rules
                    .iter()
                    .map(|rule| ExtraInjection {
                        target: match rule.target {
                            InjectionTarget::Header => "header",
                            InjectionTarget::Query => "query_param",
                        },
                        key: rule.name.clone(),
                        value_source: format!("additional_credentials.{}", rule.field),
                    })
                    .collect();
                // Only the fields a rule injects leave the vault.
                let used =
                    |field: &String| secret.injection.rules.iter().any(|r| &r.field == field);
                ReleasedCredential {
                    additional_credentials: Some(
                        fields
                            .into_iter()
                            .filter(|(k, _)| used(k))
                            .map(|(k, v)| (k, SecretString::from(v)))
                            .collect(),
                    ),
                    additional_injections: injections,
                    ..plain(QUERY_MARKER_HEADER, "{token}", SecretString::from("multi"))
                }
            }
            SecretType::AwsSigv4 => {
                let aws: AwsCredential =
                    serde_json::from_str(value.expose_secret()).map_err(|_| unreadable())?;
                let mut extra = BTreeMap::from([(
                    "secret_key".to_owned(),
                    SecretString::from(aws.secret_access_key),
                )]);
                for (wire, field) in [
                    ("session_token", aws.session_token),
                    ("region", aws.region),
                    ("service", aws.service),
                ] {
                    if let Some(v) = field {
                        extra.insert(wire.to_owned(), SecretString::from(v));
                    }
                }
                ReleasedCredential {
                    additional_credentials: Some(extra),
                    ..plain(
                        "Authorization",
                        "AWS4-HMAC-SHA256",
                        SecretString::from(aws.access_key_id),
                    )
                }
            }
        })
    }

    /// `POST /sdk/oauth/audit/api-call`: the client's report of the provider call it made
    /// with a released credential, recorded beside the release (`token_generation` is the
    /// release's event id). Only a grant the caller can reach may be reported on — revoked or
    /// paused since the release is fine, someone else's is "not found" — so no key can write
    /// use history onto grants it was never given.
    pub async fn report_api_call(&self, caller: &Caller, report: ApiCallReport) -> Result<()> {
        caller.require(&Scope::Action("audit:emit"))?;
        let grant = self.reachable_grant(caller, &report.grant_id).await?.id;
        let event = AuditEvent {
            request: Some(RequestSummary::new(&report.method, &report.url)),
            reason: report.reason.clone(),
            context: caller.context.clone(),
            outcome: Some(json!({
                "response_status": report.response_status,
                "latency_ms": report.latency_ms,
            })),
            ..AuditEvent::allow(
                caller.app_id,
                self.now(),
                action::CREDENTIAL_USED,
                caller.actor(),
                Target {
                    kind: "grant".into(),
                    id: grant.to_string(),
                },
            )
        }
        .with_details(json!({ "release_id": report.token_generation }));
        self.record(event).await
    }

    /// `POST /sdk/grants/{id}/report-scope-mismatch`: marks the grant; later releases say so.
    /// The flag sticks until an operator clears it, so only a caller that uses credentials
    /// (`tokens:retrieve`) or reports their use (`audit:emit`) may set it.
    pub async fn report_scope_mismatch(
        &self,
        caller: &Caller,
        grant_id: &str,
        missing_scopes: Vec<String>,
    ) -> Result<()> {
        caller.require_any(&REPORT_SCOPE_MISMATCH_SCOPES)?;
        let grant = self.reachable_grant(caller, grant_id).await?;
        let event = AuditEvent::allow(
            caller.app_id,
            self.now(),
            action::GRANT_SCOPE_MISMATCH,
            caller.actor(),
            Target {
                kind: "grant".into(),
                id: grant.id.to_string(),
            },
        )
        .with_details(json!({ "missing_scopes": missing_scopes }));
        Ok(self
            .store()
            .set_scope_mismatch(caller.app_id, grant.id, true, &event)
            .await?)
    }

    /// Clears a grant's scope-mismatch flag (operator), e.g. once the provider grant was
    /// widened: later releases stop reporting it.
    pub async fn clear_scope_mismatch(&self, app_id: AppId, grant_id: &str) -> Result<GrantView> {
        let grant = self.app_grant(app_id, grant_id).await?;
        let event = AuditEvent::allow(
            app_id,
            self.now(),
            action::GRANT_SCOPE_MISMATCH_CLEARED,
            Actor::operator(),
            Target {
                kind: "grant".into(),
                id: grant.id.to_string(),
            },
        );
        self.store()
            .set_scope_mismatch(app_id, grant.id, false, &event)
            .await?;
        let grant = self.grant(app_id, grant.id).await?;
        let secret = self.secret_of(&grant).await?;
        Ok(GrantView {
            secret: secret.as_ref().map(SecretSummary::of),
            grant,
        })
    }
}

/// Scopes that may report a grant's scopes too narrow (any one of them).
const REPORT_SCOPE_MISMATCH_SCOPES: [Scope; 2] = [
    Scope::Action("tokens:retrieve"),
    Scope::Action("audit:emit"),
];

/// The client's report of a provider call.
#[derive(Debug, Clone, Default)]
pub struct ApiCallReport {
    /// The grant used.
    pub grant_id: String,
    /// The release it belongs to.
    pub token_generation: Option<String>,
    /// Method.
    pub method: String,
    /// URL (query values are dropped before storing).
    pub url: String,
    /// Provider status (0 on a transport error).
    pub response_status: i64,
    /// Latency.
    pub latency_ms: i64,
    /// Reason.
    pub reason: Option<String>,
}

/// "Not found" as the caller should see it: agents learn they hold no delegation.
fn not_found(caller: &Caller, request: &ReleaseRequest) -> Error {
    match (caller.agent_id(), &request.provider_id) {
        (Some(agent), Some(provider)) => Error::NoDelegatedGrant {
            provider_id: provider.clone(),
            agent_id: agent.to_string(),
            app_user_id: request.app_user_id.clone(),
        },
        _ => Error::GrantNotFoundFor {
            provider_id: request.provider_id.clone(),
            agent_id: caller.agent_id().map(|a| a.to_string()),
            app_user_id: request.app_user_id.clone(),
        },
    }
}

/// The code a refusal before a grant was identified is recorded with.
fn refusal_code(error: &Error) -> &'static str {
    match error {
        Error::AmbiguousGrant { .. } => "ambiguous_grant",
        Error::NoDelegatedGrant { .. } => "no_delegated_grant",
        _ => "grant_not_found",
    }
}

/// True if the signed-in user holds `grant` (theirs, their group's, or delegated by them).
fn belongs_to(grant: &Grant, user: &SignedInUser) -> bool {
    match &grant.principal {
        Principal::Agent(_) => grant.delegated_by == Some(user.user.id),
        _ => crate::delegations::holds(user, grant),
    }
}

/// The host a request to `url` goes to, as the WHATWG URL standard (the `url` crate, which the
/// Rust SDK's and the server's HTTP clients use) reads it: lower-case, IDNA-mapped, IP addresses
/// normalised. `None` unless `url` is an `http(s)` URL with a host. Userinfo, backslashes,
/// whitespace and control characters are refused: parsers disagree on them (`https://evil.com\@api.stripe.com/`
/// goes to `evil.com`), and a host check must see the host the client will connect to.
fn host_of(url: &str) -> Option<String> {
    if url
        .chars()
        .any(|c| c == '\\' || c.is_ascii_whitespace() || c.is_control())
    {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return None;
    }
    Some(match parsed.host()? {
        url::Host::Domain(domain) => domain.to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    })
}

fn validate(request: &ReleaseRequest) -> Result<()> {
    let invalid = |m: &str| Err(Error::Invalid(m.to_owned()));
    if request.grant_id.is_some() == request.provider_id.is_some() {
        return invalid("give exactly one of grant_id and provider_id");
    }
    if request.grant_id.is_some()
        && (request.label.is_some() || request.account.is_some() || request.app_user_id.is_some())
    {
        return invalid("label, account and app_user_id go with provider_id");
    }
    if request.method.is_empty()
        || request.method.len() > 16
        || !request.method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return invalid("request.method must be an upper-case HTTP method");
    }
    if request.url.len() > 65_536 || host_of(&request.url).is_none() {
        return invalid(
            "request.url must be an http(s) URL with a host, without userinfo, backslashes or whitespace",
        );
    }
    for (field, value) in [
        ("reason", &request.reason),
        ("label", &request.label),
        ("account", &request.account),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.chars().count() > 1000)
        {
            return invalid(&format!("{field} must be 1 to 1000 characters"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            host_of("https://API.stripe.com/v1?x=1").as_deref(),
            Some("api.stripe.com")
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080/p").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("http://[::1]:9/").as_deref(), Some("::1"));
        assert_eq!(host_of("http://0x7f.1/").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("ftp://x"), None);
        assert_eq!(host_of("https://"), None);
        for ambiguous in [
            "https://evil.com\\@api.stripe.com/",
            "https://evil.com\\api.stripe.com/",
            "http://u:p@127.0.0.1:8080/p",
            "https://api.stripe.com@evil.com/",
            "https://api.stripe.com\t.evil.com/",
            "https://api.stripe.com /",
        ] {
            assert_eq!(host_of(ambiguous), None, "{ambiguous}");
        }
    }

    #[test]
    fn requests_are_validated() {
        let ok = ReleaseRequest {
            grant_id: Some("g".into()),
            method: "GET".into(),
            url: "https://api.stripe.com/v1".into(),
            ..Default::default()
        };
        assert!(validate(&ok).is_ok());
        for bad in [
            ReleaseRequest {
                provider_id: Some("p".into()),
                ..ok.clone()
            },
            ReleaseRequest {
                grant_id: None,
                ..ok.clone()
            },
            ReleaseRequest {
                method: "get".into(),
                ..ok.clone()
            },
            ReleaseRequest {
                url: "stripe.com".into(),
                ..ok.clone()
            },
            ReleaseRequest {
                label: Some("l".into()),
                ..ok.clone()
            },
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
    }
}
