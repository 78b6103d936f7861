//! Releasing a credential to a signed caller: one pipeline whatever the credential kind —
//! *resolve* the grant ([`resolve`]), *authorize* its use ([`authorize`]), *materialise* the
//! credential ([`materialise`]), *deliver* it ([`deliver`]; retrieve mode today). Every
//! decision is written to the audit log: a release commits there before the credential
//! leaves, and a refusal is recorded before it is answered. If the event cannot be written,
//! nothing is released.

pub mod authorize;
pub mod deliver;
pub mod materialise;
pub mod policy;
pub mod proxy;
pub mod reports;
pub mod resolve;

use serde_json::json;

use crate::audit::{AuditEvent, RequestSummary, Target, action};
use crate::caller::Caller;
use crate::credentials::Credential;
use crate::error::{Error, Result, ensure};
use crate::grants::{Grant, principal_json};
use crate::ids::{AgentId, AppId, GrantId, KeyId};
use crate::rules::{CallMode, DecisionFacts, MatchedRule};

use crate::scope::Scope;
use crate::time::Timestamp;
use crate::vault::Vault;
use policy::PolicyRecord;

pub use authorize::{
    Authorization, BuiltinRules, CredentialFacts, Denial, OutgoingCall, ProxyReason, Verdict,
    agent_approval_hold,
};
pub use deliver::Release;
pub use materialise::{CredentialInjection, ExtraInjection, ExtraTarget, TokenKind};
pub use reports::ApiCallReport;
pub use resolve::Resolved;

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
    /// The app's rules as they were evaluated, by the app's rules version: a rule added,
    /// changed or removed since refuses the release (it is evaluated again on a retry).
    pub rules: Option<(AppId, i64)>,
    /// The release's time, at which expiries are judged.
    pub at: Timestamp,
}

/// What a conditional commit of a release came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCommit {
    /// The release's event is durable: the credential may leave.
    Committed,
    /// The condition no longer held: nothing but the request's nonce was written.
    Refused,
    /// The request's nonce was seen before: nothing was written.
    Replayed,
}

/// Why a credential use was refused, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key lacks `tokens:retrieve` (`proxy:execute` for a proxied call).
    InsufficientScope,
    /// The end user's token is not valid.
    InvalidUserToken,
    /// No grant the caller may reach matches.
    GrantNotFound,
    /// The agent holds no grant for the provider.
    NoDelegatedGrant,
    /// Several grants match.
    AmbiguousGrant,
    /// The key was revoked before the release committed.
    KeyRevoked,
    /// The key expired before the release committed.
    KeyExpired,
    /// The key's rotation overlap ended before the release committed.
    KeyRotationExpired,
    /// The agent was paused before the release committed.
    AgentInactive,
    /// The agent was deleted before the release committed.
    AgentRevoked,
    /// The provider refused the connection's refresh token (or it has none left).
    CredentialRevoked,
    /// Another caller was refreshing the token and did not finish in time.
    TokenRefreshInProgress,
    /// The provider could not refresh an expired token.
    ProviderUnavailable,
    /// A rule refused.
    Rule(Denial),
    /// An approved call is held by a rule its approval did not cover.
    HoldNotDischarged,
}

impl Refusal {
    /// The reason the audit log records.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InsufficientScope => "insufficient_scope",
            Refusal::InvalidUserToken => "jwt_validation_error",
            Refusal::GrantNotFound => "grant_not_found",
            Refusal::NoDelegatedGrant => "no_delegated_grant",
            Refusal::AmbiguousGrant => "ambiguous_grant",
            Refusal::KeyRevoked => "key_revoked",
            Refusal::KeyExpired => "key_expired",
            Refusal::KeyRotationExpired => "key_rotation_expired",
            Refusal::AgentInactive => "agent_inactive",
            Refusal::AgentRevoked => "agent_revoked",
            Refusal::CredentialRevoked => "credential_revoked",
            Refusal::TokenRefreshInProgress => "token_refresh_in_progress",
            Refusal::ProviderUnavailable => "provider_unavailable",
            Refusal::Rule(denial) => denial.as_str(),
            Refusal::HoldNotDischarged => "approval_required",
        }
    }

    /// The refusal a failure to materialise is recorded as; `None` for a failure of the vault
    /// itself (storage, crypto), answered as it is.
    fn of_materialise(error: &Error) -> Option<Refusal> {
        match error {
            Error::CredentialRevoked { .. } => Some(Refusal::CredentialRevoked),
            Error::TokenRefreshInProgress(_) => Some(Refusal::TokenRefreshInProgress),
            Error::ProviderUnavailable(_) => Some(Refusal::ProviderUnavailable),
            _ => None,
        }
    }

    /// The refusal a failed lookup is recorded as.
    fn of_lookup(error: &Error) -> Refusal {
        match error {
            Error::AmbiguousGrant { .. } => Refusal::AmbiguousGrant,
            Error::NoDelegatedGrant { .. } => Refusal::NoDelegatedGrant,
            _ => Refusal::GrantNotFound,
        }
    }
}

/// Why the pipeline stopped: a refusal, recorded before it is answered, or a failure (storage,
/// crypto) that is answered as it is.
#[derive(Debug)]
enum Stop {
    Refused {
        refusal: Refusal,
        grant: Option<Box<Grant>>,
        error: Error,
        /// The facts and matched rules of a refusal by rules.
        record: Option<Box<PolicyRecord>>,
    },
    Failed(Error),
}

impl Stop {
    fn refused(refusal: Refusal, grant: Option<&Grant>, error: Error) -> Stop {
        Stop::Refused {
            refusal,
            grant: grant.cloned().map(Box::new),
            error,
            record: None,
        }
    }

    /// A refusal by the rules step, recorded with what the rules saw.
    fn denied_by_rules(denial: Denial, grant: &Grant, record: PolicyRecord) -> Stop {
        Stop::Refused {
            refusal: Refusal::Rule(denial),
            grant: Some(Box::new(grant.clone())),
            error: Error::ReleaseDenied(denial),
            record: Some(Box::new(record)),
        }
    }
}

impl From<Error> for Stop {
    fn from(error: Error) -> Stop {
        Stop::Failed(error)
    }
}

impl From<crate::ports::StoreError> for Stop {
    fn from(error: crate::ports::StoreError) -> Stop {
        Stop::Failed(error.into())
    }
}

/// What the pipeline is run for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// `/sdk/token`: the credential is handed to the caller; a hold refuses.
    Retrieve,
    /// `/sdk/proxy`: the vault makes the call. Without `discharged`, holds park it; with it
    /// (an approved call), a hold whose rules are all discharged counts as allowed and any
    /// other refuses.
    Proxy {
        discharged: Option<&'a [MatchedRule]>,
        /// The exact body that will be sent, which rules may read.
        body: &'a [u8],
    },
}

impl<'a> Delivery<'a> {
    fn mode(self) -> CallMode {
        match self {
            Delivery::Retrieve => CallMode::Retrieve,
            Delivery::Proxy { .. } => CallMode::Proxy,
        }
    }

    fn body(self) -> Option<&'a [u8]> {
        match self {
            Delivery::Retrieve => None,
            Delivery::Proxy { body, .. } => Some(body),
        }
    }

    fn scope(self) -> Scope {
        match self {
            Delivery::Retrieve => Scope::Action("tokens:retrieve"),
            Delivery::Proxy { .. } => Scope::Action("proxy:execute"),
        }
    }
}

/// What a run of the pipeline came to.
#[derive(Debug)]
pub(crate) enum Ran {
    /// The release committed: the credential may leave.
    Released(Box<Release>),
    /// Rules hold the (proxied) call.
    Held {
        holds: Vec<MatchedRule>,
        facts: Box<DecisionFacts>,
        recheck: Box<HoldRecheck>,
    },
}

/// What parking a held call checks again in the transaction that parks it (everything the
/// hold was decided under: see [`ReleaseCondition`]), and what explains a refusal there.
#[derive(Debug, Clone)]
pub struct HoldRecheck {
    pub(crate) condition: ReleaseCondition,
    pub(crate) resolved: Resolved,
    pub(crate) request: ReleaseRequest,
    pub(crate) host: String,
}

impl Vault {
    /// `POST /sdk/token`: resolves the grant for the caller, authorizes its use, materialises
    /// the credential and records the release, then returns the credential. Every refusal
    /// after the request parsed is recorded as a denial before it is answered.
    pub async fn release(&self, caller: &Caller, request: ReleaseRequest) -> Result<Release> {
        let host = validate(&request)?;
        match self
            .run_pipeline(caller, &request, &host, Delivery::Retrieve)
            .await?
        {
            Ran::Released(release) => Ok(*release),
            // Retrieve mode never holds: `authorize` refuses instead.
            Ran::Held { .. } => Err(Error::ReleaseDenied(Denial::RequiresProxy(
                ProxyReason::ApprovalRequired,
            ))),
        }
    }

    /// The stages every credential use shares (*resolve*, *authorize*, *materialise*, and the
    /// conditional commit of the release's event); a refusal is recorded before it is
    /// answered.
    pub(crate) async fn run_pipeline(
        &self,
        caller: &Caller,
        request: &ReleaseRequest,
        host: &str,
        delivery: Delivery<'_>,
    ) -> Result<Ran> {
        let summary = RequestSummary::new(&request.method, &request.url);
        match self
            .run_stages(caller, request, host, &summary, delivery)
            .await
        {
            Ok(ran) => {
                // A hold is counted once the call is parked (`hold_call`).
                if let Ran::Released(_) = ran {
                    self.counters().released(delivery.mode());
                }
                Ok(ran)
            }
            Err(Stop::Failed(error)) => Err(error),
            Err(Stop::Refused {
                refusal,
                grant,
                error,
                record,
            }) => {
                self.record_refusal(
                    caller,
                    request,
                    refusal,
                    grant.as_deref(),
                    record,
                    delivery.mode(),
                )
                .await?;
                Err(error)
            }
        }
    }

    /// Records a refused credential use before it is answered, with the request's nonce if
    /// it was not claimed yet. A nonce seen before fails it as a replay.
    pub(crate) async fn record_refusal(
        &self,
        caller: &Caller,
        request: &ReleaseRequest,
        refusal: Refusal,
        grant: Option<&Grant>,
        record: Option<Box<PolicyRecord>>,
        mode: CallMode,
    ) -> Result<()> {
        let summary = RequestSummary::new(&request.method, &request.url);
        let mut event = denial_event(self, caller, request, summary, refusal, grant);
        if let Some(record) = record {
            record.annotate(&mut event);
        }
        if let (CallMode::Proxy, Some(serde_json::Value::Object(details))) =
            (mode, event.details.as_mut())
        {
            details.insert("mode".into(), "proxy".into());
        }
        if !self
            .store()
            .record_release(event, caller.pending_nonce.take())
            .await?
        {
            return Err(Error::Unauthenticated);
        }
        self.counters().denied(mode);
        Ok(())
    }

    async fn run_stages(
        &self,
        caller: &Caller,
        request: &ReleaseRequest,
        host: &str,
        summary: &RequestSummary,
        delivery: Delivery<'_>,
    ) -> std::result::Result<Ran, Stop> {
        caller
            .require(&delivery.scope())
            .map_err(|e| Stop::refused(Refusal::InsufficientScope, None, e))?;
        let user = match &request.user_token {
            Some(token) => {
                // Signing in records the user: the nonce is claimed first.
                self.settle_nonce(&caller.pending_nonce).await?;
                Some(
                    self.sign_in(caller.app_id, token)
                        .await
                        .map_err(|e| Stop::refused(Refusal::InvalidUserToken, None, e))?,
                )
            }
            None => None,
        };
        // The app's rules version is read beside the grant, not after it: the rules stage
        // needs it, and the commit checks it again.
        let (resolved, rules_version) = tokio::join!(
            self.resolve(caller, request, user.as_ref()),
            self.store().rules_version(caller.app_id),
        );
        let resolved = resolved.map_err(|e| Stop::refused(Refusal::of_lookup(&e), None, e))?;
        let call = OutgoingCall {
            method: &request.method,
            url: &request.url,
            host,
        };
        let (chain, mut holds) = self
            .authorize(&resolved, caller.agent.as_deref(), call, delivery.mode())
            .await
            .map_err(|denial| {
                Stop::refused(
                    Refusal::Rule(denial),
                    Some(&resolved.grant),
                    Error::ReleaseDenied(denial),
                )
            })?;
        let facts = policy::decision_facts(
            caller,
            user.as_ref(),
            &resolved,
            &chain,
            policy::CallFacts {
                mode: delivery.mode(),
                method: &request.method,
                url: &request.url,
                body: delivery.body(),
                reason: request.reason.as_deref(),
            },
            self.now(),
        );
        let Some(facts) = facts else {
            let denial = Denial::Policy {
                code: policy::PolicyCode::EvaluationFailed,
                rule_id: None,
            };
            return Err(Stop::refused(
                Refusal::Rule(denial),
                Some(&resolved.grant),
                Error::ReleaseDenied(denial),
            ));
        };
        // A held call took its rate-limit tokens when it was held: its execution takes none.
        let take_tokens = !matches!(
            delivery,
            Delivery::Proxy {
                discharged: Some(_),
                ..
            }
        );
        let checked = self
            .check_rules(&facts, caller, take_tokens, rules_version)
            .await?;
        let rules_version = checked.version;
        let record = PolicyRecord {
            facts,
            matched: checked.matched,
        };
        match checked.verdict {
            Verdict::Allow => {}
            Verdict::Hold(rule_holds) if delivery.mode() == CallMode::Proxy => {
                holds.extend(rule_holds);
            }
            Verdict::Hold(_) => {
                let denial = Denial::RequiresProxy(ProxyReason::ApprovalRequired);
                return Err(Stop::denied_by_rules(denial, &resolved.grant, record));
            }
            Verdict::Deny(denial) => {
                return Err(Stop::denied_by_rules(denial, &resolved.grant, record));
            }
        }
        if let Delivery::Proxy {
            discharged: Some(discharged),
            ..
        } = delivery
        {
            holds.retain(|hold| {
                !discharged
                    .iter()
                    .any(|d| d.rule_id == hold.rule_id && d.version == hold.version)
            });
            if !holds.is_empty() {
                return Err(Stop::refused(
                    Refusal::HoldNotDischarged,
                    Some(&resolved.grant),
                    Error::HoldNotDischarged,
                ));
            }
        }
        if !holds.is_empty() {
            let condition = deliver::release_condition(caller, &chain, self.now(), rules_version);
            return Ok(Ran::Held {
                holds,
                facts: Box::new(record.facts),
                recheck: Box::new(HoldRecheck {
                    condition,
                    resolved,
                    request: request.clone(),
                    host: host.to_owned(),
                }),
            });
        }
        let injection = self.materialise(caller, &resolved).await?;
        let mut event = deliver::release_event(
            caller,
            &resolved,
            summary.clone(),
            request.reason.clone(),
            self.now(),
            injection.refreshed,
            delivery.mode(),
        );
        record.annotate(&mut event);
        self.deliver(
            caller,
            resolved,
            chain,
            injection,
            event,
            call,
            delivery.mode(),
            rules_version,
        )
        .await
        .map(|release| Ran::Released(Box::new(release)))
    }

    /// The injection of a credential of any kind. An OAuth connection's may be refreshed at
    /// the provider: the caller's nonce is claimed first.
    async fn materialise(
        &self,
        caller: &Caller,
        resolved: &Resolved,
    ) -> std::result::Result<CredentialInjection, Stop> {
        if matches!(resolved.credential, Credential::Connection(_)) {
            self.settle_nonce(&caller.pending_nonce).await?;
        }
        match &resolved.credential {
            Credential::ManagedSecret(secret) => self.materialise_secret(secret),
            Credential::UserSecret { template, key } => self.materialise_user_secret(template, key),
            Credential::Connection(connection) => {
                self.materialise_connection(&resolved.grant, connection)
                    .await
            }
        }
        .map_err(|error| match Refusal::of_materialise(&error) {
            Some(refusal) => Stop::refused(refusal, Some(&resolved.grant), error),
            None => Stop::Failed(error),
        })
    }
}

/// The event a refusal records.
fn denial_event(
    vault: &Vault,
    caller: &Caller,
    request: &ReleaseRequest,
    summary: RequestSummary,
    refusal: Refusal,
    grant: Option<&Grant>,
) -> AuditEvent {
    AuditEvent {
        target: grant.map(|g| Target {
            kind: "grant".into(),
            id: g.id.to_string(),
        }),
        principal: grant.map(principal_json),
        request: Some(summary),
        context: caller.context.clone(),
        trace_id: caller.trace_id.clone(),
        details: Some(json!({
            "grant_id": request.grant_id,
            "provider_id": request.provider_id,
            "label": request.label,
        })),
        ..AuditEvent::deny(
            caller.app_id,
            vault.now(),
            action::CREDENTIAL_DENIED,
            caller.actor(),
            refusal.as_str(),
        )
    }
}

/// The host a request to `url` goes to, as the WHATWG URL standard (the `url` crate, which the
/// Rust SDK's and the server's HTTP clients use) reads it: lower-case, IDNA-mapped, IP addresses
/// normalised. `None` unless `url` is an `http(s)` URL with a host. Userinfo, backslashes,
/// whitespace and control characters are refused: parsers disagree on them (`https://evil.com\@api.stripe.com/`
/// goes to `evil.com`), and a host check must see the host the client will connect to.
pub(crate) fn host_of(url: &str) -> Option<String> {
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

/// Checks the request; returns the host its URL goes to (read once, checked by the rules).
pub(crate) fn validate(request: &ReleaseRequest) -> Result<String> {
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
    let host = match host_of(&request.url) {
        Some(host) if request.url.len() <= 65_536 => host,
        _ => {
            return invalid(
                "request.url must be an http(s) URL with a host, without userinfo, backslashes or whitespace",
            );
        }
    };
    for (field, value) in [
        ("reason", &request.reason),
        ("label", &request.label),
        ("account", &request.account),
    ] {
        optional_text(field, value.as_deref(), 1000)?;
    }
    Ok(host)
}

/// An optional text field of 1 to `max` characters when given: what a caller writes into an
/// audit event stays bounded.
pub(crate) fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    ensure(
        value.is_none_or(|v| !v.is_empty() && v.chars().count() <= max),
        || format!("{field} must be 1 to {max} characters"),
    )
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
