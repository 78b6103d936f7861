//! *Deliver* in retrieve mode: the release's audit event commits — conditionally on the grant,
//! its chain, the agents and the key still being active — before the credential is handed to
//! the signed caller. A release that loses the race to a revocation is refused as a request
//! made after it would have been.

use serde_json::json;

use crate::agents::AgentStatus;
use crate::audit::{AuditEvent, RequestSummary, Target, action};
use crate::caller::{Caller, last_use_is_stale};
use crate::error::{Entity, Error, Result};
use crate::grants::{Grant, principal_json};
use crate::ids::{EventId, GrantId};
use crate::vault::Vault;

use super::authorize::{Denial, OutgoingCall};
use super::materialise::CredentialInjection;
use super::resolve::Resolved;
use super::{HoldRecheck, Refusal, ReleaseCommit, ReleaseCondition, Stop};
use crate::credentials::Credential;
use crate::rules::CallMode;

/// A release that was recorded.
#[derive(Debug)]
pub struct Release {
    /// The grant used.
    pub grant: Grant,
    /// The name its credential goes by (`provider_id`).
    pub provider_id: String,
    /// The credential as the call carries it.
    pub injection: CredentialInjection,
    /// The release's audit event id (the client echoes it as `token_generation`).
    pub release_id: EventId,
    /// Seconds until the token expires (an OAuth access token), else until the grant ends.
    pub expires_in: Option<i64>,
    /// A provider reported the grant's scopes too narrow.
    pub scope_mismatch: bool,
}

impl Vault {
    /// Commits the release's event if the chain still holds, then hands the credential over.
    /// A refusal at commit is recorded (under the reason read back) and returned.
    #[allow(
        clippy::too_many_arguments,
        reason = "the stages' results, passed on once"
    )]
    pub(super) async fn deliver(
        &self,
        caller: &Caller,
        resolved: Resolved,
        chain: Vec<Grant>,
        injection: CredentialInjection,
        event: AuditEvent,
        call: OutgoingCall<'_>,
        mode: CallMode,
        rules_version: i64,
    ) -> std::result::Result<Release, Stop> {
        let Resolved { grant, credential } = resolved;
        let now = event.at;
        let condition = release_condition(caller, &chain, now, rules_version);
        let release_id = event.id;
        let touch = last_use_is_stale(grant.last_used_at, now).then_some((grant.id, now));
        let committed = self
            .store()
            .commit_release(event, touch, condition, caller.pending_nonce.take())
            .await?;
        match committed {
            ReleaseCommit::Committed => {}
            ReleaseCommit::Replayed => return Err(Stop::Failed(Error::Unauthenticated)),
            ReleaseCommit::Refused => {
                let (refusal, error) = self
                    .raced_refusal(caller, grant.id, &credential, call, mode, rules_version)
                    .await?;
                return Err(Stop::refused(refusal, Some(&grant), error));
            }
        }
        Ok(Release {
            expires_in: injection
                .expires_at
                .or(grant.expires_at)
                .map(|end| now.seconds_until(end).max(0)),
            scope_mismatch: grant.scope_mismatch || injection.scopes_short,
            provider_id: credential.provider_id().to_owned(),
            release_id,
            injection,
            grant,
        })
    }

    /// Records and returns why a held call whose checks passed was refused when it was to be
    /// parked: what changed in between, read back (see [`Self::raced_refusal`]).
    pub(crate) async fn refuse_raced_hold(
        &self,
        caller: &Caller,
        recheck: &HoldRecheck,
    ) -> Result<Error> {
        let call = OutgoingCall {
            method: &recheck.request.method,
            url: &recheck.request.url,
            host: &recheck.host,
        };
        let rules_version = recheck.condition.rules.map_or(0, |(_, v)| v);
        let (refusal, error) = self
            .raced_refusal(
                caller,
                recheck.resolved.grant.id,
                &recheck.resolved.credential,
                call,
                CallMode::Proxy,
                rules_version,
            )
            .await?;
        self.record_refusal(
            caller,
            &recheck.request,
            refusal,
            Some(&recheck.resolved.grant),
            None,
            CallMode::Proxy,
        )
        .await?;
        Ok(error)
    }

    /// Why a release whose checks passed was refused at commit: the revocation, pause or key
    /// revocation that committed in between, read back.
    async fn raced_refusal(
        &self,
        caller: &Caller,
        grant: GrantId,
        credential: &Credential,
        call: OutgoingCall<'_>,
        mode: CallMode,
        rules_version: i64,
    ) -> Result<(Refusal, Error)> {
        let now = self.now();
        let key = self.store().get_key(caller.app_id, caller.key_id).await?;
        match key.map(|key| key.check_usable(now)) {
            None | Some(Err(Error::KeyRevoked)) => {
                return Ok((Refusal::KeyRevoked, Error::KeyRevoked));
            }
            Some(Err(Error::KeyRotationExpired)) => {
                return Ok((Refusal::KeyRotationExpired, Error::KeyRotationExpired));
            }
            Some(Err(_)) => return Ok((Refusal::KeyExpired, Error::KeyExpired)),
            Some(Ok(())) => {}
        }
        let agent = match caller.agent_id() {
            Some(id) => Some(self.agent(caller.app_id, id).await?),
            None => None,
        };
        match agent.as_ref().map(|a| a.status) {
            Some(AgentStatus::Inactive) => {
                return Ok((Refusal::AgentInactive, Error::AgentInactive));
            }
            Some(AgentStatus::Revoked) => return Ok((Refusal::AgentRevoked, Error::AgentRevoked)),
            _ => {}
        }
        let grant = self
            .store()
            .get_grant(caller.app_id, grant)
            .await?
            .ok_or(Error::NotFound(Entity::Grant))?;
        let resolved = Resolved {
            grant,
            credential: credential.clone(),
        };
        if let Err(denial) = self.authorize(&resolved, agent.as_ref(), call, mode).await {
            return Ok((Refusal::Rule(denial), Error::ReleaseDenied(denial)));
        }
        // The rules changed while the call was decided: it is refused, and a retry is decided
        // under the new rules.
        if self.store().rules_version(caller.app_id).await? != Some(rules_version) {
            let denial = Denial::PolicyUnavailable;
            return Ok((Refusal::Rule(denial), Error::ReleaseDenied(denial)));
        }
        // Everything holds again: only an agent can come back, so one was paused and resumed.
        Ok(match caller.agent_id() {
            Some(_) => (Refusal::AgentInactive, Error::AgentInactive),
            None => {
                let denial = Denial::DelegationInvalid("the agent is not active");
                (Refusal::Rule(denial), Error::ReleaseDenied(denial))
            }
        })
    }
}

/// Everything a release (or a held call) was decided under, for its commit to check again:
/// the grant and its delegation chain, the agents, the key and the app's rules version.
pub(super) fn release_condition(
    caller: &Caller,
    chain: &[Grant],
    at: crate::time::Timestamp,
    rules_version: i64,
) -> ReleaseCondition {
    ReleaseCondition {
        grants: chain.iter().map(|link| link.id).collect(),
        agents: caller
            .agent_id()
            .into_iter()
            .chain(chain.iter().filter_map(Grant::agent_id))
            .collect(),
        key: caller.key_id,
        at,
        rules: Some((caller.app_id, rules_version)),
    }
}

/// The event a release commits.
pub(super) fn release_event(
    caller: &Caller,
    resolved: &Resolved,
    summary: RequestSummary,
    reason: Option<String>,
    at: crate::time::Timestamp,
    refreshed: bool,
    mode: CallMode,
) -> AuditEvent {
    let grant = &resolved.grant;
    let mut details = resolved.credential.audit_details();
    details.insert(
        "value_version".into(),
        resolved.credential.value_version().into(),
    );
    details.insert("parent_grant_id".into(), json!(grant.parent_grant_id));
    if refreshed {
        details.insert("refreshed".into(), true.into());
    }
    if mode == CallMode::Proxy {
        details.insert("mode".into(), "proxy".into());
    }
    AuditEvent {
        principal: Some(principal_json(grant)),
        request: Some(summary),
        reason,
        context: caller.context.clone(),
        trace_id: caller.trace_id.clone(),
        ..AuditEvent::allow(
            caller.app_id,
            at,
            action::CREDENTIAL_RELEASED,
            caller.actor(),
            Target {
                kind: "grant".into(),
                id: grant.id.to_string(),
            },
        )
    }
    .with_details(details.into())
}
