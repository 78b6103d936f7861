//! The approval services: hold a call, read its status (long-polling), decide it, execute it
//! once, and the sweep that expires undecided calls and recovers executions a node dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alter_crypto::{Binding, Zeroizing};
use serde_json::json;

use super::{
    Approval, ApprovalDecision, ApprovalError, ApprovalFinish, ApprovalStatus, CallerSnapshot,
    HeldPayload, HeldRequest, RuleSnapshot, StoredResult, ttl_of,
};
use crate::agents::AgentStatus;
use crate::audit::{Actor, AuditEvent, RequestSummary, Target, action, redact_url};
use crate::caller::{Caller, PendingNonce};
use crate::error::{Entity, Error, Result};
use crate::ids::{AppId, ApprovalId};
use crate::keys::KeyStatus;
use crate::ports::Parked;
use crate::proxy::{HeldCall, ProxyRequest, ProxyResult};
use crate::vault::Vault;

/// How long a held call waits for a person unless its rule says otherwise.
pub const DEFAULT_TTL_SECONDS: i64 = 15 * 60;
/// Most pending approvals one app may hold: a runaway agent cannot flood its approvers.
pub const MAX_PENDING_PER_APP: i64 = 1000;
/// Longest `wait` of a status read (protocol part 1 §6.3: above it is refused, not clamped).
pub const MAX_WAIT_SECONDS: u64 = 25;
/// An execution claimed this long ago and never finished belongs to a node that died: it is
/// failed rather than run again, since the call may have been made.
pub const STALE_EXECUTION_SECONDS: i64 = 10 * 60;
/// How often a long-poll reads the status again. Every node reads the database, so a decision
/// taken on another node is seen without any per-node state.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Most approvals one sweep moves.
const SWEEP_BATCH: i64 = 500;
/// The kind bound into a sealed held request.
pub(crate) const REQUEST_KIND: &str = "approval.request";
/// The kind bound into a sealed result.
pub(crate) const RESULT_KIND: &str = "approval.result";
/// Longest reason kept.
const MAX_REASON_LEN: usize = 1000;

impl Vault {
    /// Parks a call a rule held as a pending approval, its request and the caller's snapshot
    /// sealed to it. The reason is required (the approver reads it), and an app holds at most
    /// [`MAX_PENDING_PER_APP`] pending approvals.
    pub async fn hold_call(
        &self,
        caller: &Caller,
        request: ProxyRequest,
        held: HeldCall,
    ) -> Result<Approval> {
        // Parking the call writes: a replayed request must not park a second one.
        self.settle_nonce(&caller.pending_nonce).await?;
        let reason = request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or(ApprovalError::ReasonRequired)?
            .to_owned();
        if reason.len() > MAX_REASON_LEN {
            return Err(Error::Invalid(format!(
                "reason must be at most {MAX_REASON_LEN} characters"
            )));
        }
        let now = self.now();
        let id = ApprovalId::new();
        let ttl = ttl_of(&held.holds);
        let payload = HeldPayload {
            caller: CallerSnapshot {
                key_id: caller.key_id,
                agent_id: caller.agent_id(),
                impersonating: caller.impersonating,
                scopes: caller.scopes.clone(),
                caller: caller.caller.clone(),
                caller_type: caller.caller_type.clone(),
                context: caller.context.clone(),
                request_rule: caller.request_rule.as_ref().map(RuleSnapshot::of),
                peer: caller.peer,
                trace_id: caller.trace_id.clone(),
            },
            request,
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&payload).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        let approval = Approval {
            id,
            group_id: ApprovalId::new(),
            app_id: caller.app_id,
            status: ApprovalStatus::Pending,
            grant_id: held.grant_id,
            key_id: caller.key_id,
            agent_id: caller.agent_id(),
            sealed_request: self.seal_approval(caller.app_id, id, REQUEST_KIND, &plain)?,
            method: payload.request.method.clone(),
            url: redact_url(&payload.request.url),
            holds: held.holds,
            reason,
            created_at: now,
            expires_at: now.plus_seconds(ttl),
            decided_at: None,
            decided_by: None,
            decision_reason: None,
            claimed_at: None,
            executed_at: None,
            execution_error: None,
            sealed_result: None,
            version: 1,
        };
        let mut event = approval_event(&approval, action::APPROVAL_REQUESTED, caller.actor(), now)
            .with_details(json!({
                "grant_id": approval.grant_id,
                "holds": approval.holds,
                "approvers": approval.approvers(),
                "reason": approval.reason,
                "expires_at": approval.expires_at,
            }));
        event.context = caller.context.clone();
        event.trace_id = caller.trace_id.clone();
        event.request = Some(RequestSummary::new(
            &payload.request.method,
            &payload.request.url,
        ));
        let parked = self
            .store()
            .insert_approval(
                &approval,
                MAX_PENDING_PER_APP,
                &event,
                &held.recheck.condition,
            )
            .await?;
        match parked {
            Parked::Parked => {}
            Parked::TooMany => return Err(ApprovalError::TooManyPending.into()),
            Parked::Refused => return Err(self.refuse_raced_hold(caller, &held.recheck).await?),
        }
        self.counters().held();
        Ok(approval)
    }

    /// `get_approval_status`: an approval the caller may see (its app's; for an agent, its
    /// own). With `wait` > 0 the answer is held until the status changes or `wait` seconds
    /// pass; more than [`MAX_WAIT_SECONDS`] is refused.
    pub async fn approval_status(
        &self,
        caller: &Caller,
        id: ApprovalId,
        wait_seconds: u64,
    ) -> Result<Approval> {
        if wait_seconds > MAX_WAIT_SECONDS {
            return Err(ApprovalError::WaitTooLong.into());
        }
        let first = self.visible_approval(caller, id).await?;
        if wait_seconds == 0 || first.status.is_terminal() {
            return Ok(first);
        }
        let deadline = Instant::now() + Duration::from_secs(wait_seconds);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(first);
            }
            tokio::time::sleep(left.min(POLL_EVERY)).await;
            let now = self.visible_approval(caller, id).await?;
            if now.status != first.status {
                return Ok(now);
            }
        }
    }

    /// The provider's answer to an executed approval; a denied, expired or failed one answers
    /// why, one not yet executed that it is not ready.
    pub async fn approval_result(&self, caller: &Caller, id: ApprovalId) -> Result<ProxyResult> {
        let approval = self.visible_approval(caller, id).await?;
        match approval.status {
            ApprovalStatus::Executed => self.open_result(&approval),
            ApprovalStatus::Denied => {
                Err(ApprovalError::Denied(approval.decision_reason.clone()).into())
            }
            ApprovalStatus::Expired => Err(ApprovalError::Expired.into()),
            ApprovalStatus::Failed => {
                Err(ApprovalError::ExecutionFailed(approval.execution_error.clone()).into())
            }
            status => Err(ApprovalError::NotReady(status).into()),
        }
    }

    /// The operator's listing of an app's approvals, newest first.
    pub async fn list_approvals(
        &self,
        app: AppId,
        status: Option<ApprovalStatus>,
        limit: i64,
    ) -> Result<Vec<Approval>> {
        self.get_app(app).await?;
        self.expire_due().await?;
        Ok(self
            .store()
            .list_approvals(app, status, limit.clamp(1, 1000))
            .await?)
    }

    /// One approval, for the operator.
    pub async fn get_approval(&self, app: AppId, id: ApprovalId) -> Result<Approval> {
        self.current_approval(app, id).await
    }

    /// The exact request an approval would execute, unsealed for the operator who decides it
    /// (the end user's token left out), with the digest its decision event records.
    pub async fn approval_request(&self, app: AppId, id: ApprovalId) -> Result<HeldRequest> {
        let approval = self.current_approval(app, id).await?;
        let plain = self.open_approval(
            approval.app_id,
            approval.id,
            REQUEST_KIND,
            &approval.sealed_request,
        )?;
        let payload: HeldPayload = serde_json::from_slice(&plain).map_err(|_| {
            Error::Storage(crate::ports::StoreError::Corrupt(
                "an approval's request".into(),
            ))
        })?;
        Ok(HeldRequest::of(payload.request, &plain))
    }

    /// An approver's decision. Approving starts the execution at once (in a task of its own;
    /// the sweep picks it up if this node dies first). Repeating the decision already taken
    /// answers the approval as it is; the other decision, or any decision once it expired, is
    /// refused.
    pub async fn decide_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        approve: bool,
        reason: Option<String>,
        decided_by: Option<String>,
    ) -> Result<Approval> {
        self.decide_approval_by(app, id, approve, reason, decided_by, Actor::operator())
            .await
    }

    /// [`Vault::decide_approval`], recorded as `actor`'s decision (the operator's, or the end
    /// user's in the Wallet).
    pub(crate) async fn decide_approval_by(
        &self,
        app: AppId,
        id: ApprovalId,
        approve: bool,
        reason: Option<String>,
        decided_by: Option<String>,
        actor: Actor,
    ) -> Result<Approval> {
        let approval = self.current_approval(app, id).await?;
        let reason = reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_LEN) {
            return Err(Error::Invalid(format!(
                "reason must be at most {MAX_REASON_LEN} characters"
            )));
        }
        let decided_by = decided_by
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "operator".into());
        if decided_by.len() > 255 {
            return Err(Error::Invalid(
                "decided_by must be at most 255 characters".into(),
            ));
        }
        let decision = ApprovalDecision {
            approve,
            at: self.now(),
            decided_by,
            reason,
        };
        let verb = if approve {
            action::APPROVAL_APPROVED
        } else {
            action::APPROVAL_DENIED
        };
        // The decision names the exact request it was about.
        let request = self.approval_request(app, id).await?;
        let event = approval_event(&approval, verb, actor, decision.at)
            .with_details(json!({
                "decided_by": decision.decided_by,
                "request_sha256": request.sha256,
            }))
            .with_reason(decision.reason.clone());
        let decided = approval.status == ApprovalStatus::Pending
            && self
                .store()
                .decide_approval(app, id, &decision, &event)
                .await?;
        let now = self.current_approval(app, id).await?;
        if !decided {
            return match now.status {
                ApprovalStatus::Expired => Err(ApprovalError::Expired.into()),
                ApprovalStatus::Denied if !approve => Ok(now),
                ApprovalStatus::Denied | ApprovalStatus::Pending => {
                    Err(ApprovalError::AlreadyDecided(now.status).into())
                }
                _ if approve => Ok(now),
                status => Err(ApprovalError::AlreadyDecided(status).into()),
            };
        }
        if approve {
            let vault = self.clone();
            tokio::spawn(async move {
                if let Err(e) = vault.execute_approval(app, id).await {
                    tracing::warn!(approval_id = %id, error = %e, "approved call: execution failed");
                }
            });
        }
        Ok(now)
    }

    /// Makes an approved call, if this caller wins the claim (approved → executing; exactly
    /// one does, on any node). The call runs the whole pipeline again as the original caller
    /// — whose key must still be usable and agent still active — with the approval's holds
    /// discharged; the result or the reason it failed is stored. True if this call claimed it.
    pub async fn execute_approval(&self, app: AppId, id: ApprovalId) -> Result<bool> {
        if !self.store().claim_approval(app, id, self.now()).await? {
            return Ok(false);
        }
        let approval = self.current_approval(app, id).await?;
        let outcome = match self.rebuild(&approval).await {
            Ok((caller, request)) => self
                .proxy_approved(&caller, &pinned(request, &approval), &approval.holds)
                .await
                .map_err(|e| failure_text(&e)),
            Err(why) => Err(why),
        };
        let at = self.now();
        let (finish, verb, details) = match outcome {
            Ok(result) => {
                let stored = StoredResult::of(&result);
                let plain = Zeroizing::new(
                    serde_json::to_vec(&stored).map_err(|e| Error::Invalid(e.to_string()))?,
                );
                (
                    ApprovalFinish {
                        executed: true,
                        at,
                        error: None,
                        sealed_result: Some(self.seal_approval(app, id, RESULT_KIND, &plain)?),
                    },
                    action::APPROVAL_EXECUTED,
                    json!({ "status_code": result.status, "release_id": result.release_id }),
                )
            }
            Err(why) => (
                ApprovalFinish {
                    executed: false,
                    at,
                    error: Some(why.clone()),
                    sealed_result: None,
                },
                action::APPROVAL_FAILED,
                json!({ "execution_error": why }),
            ),
        };
        let event = approval_event(&approval, verb, Actor::system(), at).with_details(details);
        self.store()
            .finish_approval(app, id, &finish, &event)
            .await?;
        Ok(true)
    }

    /// The background sweep (safe on any number of nodes: every step is conditional):
    /// expires undecided approvals, fails executions whose node died, and executes approvals
    /// nobody picked up. Returns how many approvals it moved.
    pub async fn sweep_approvals(&self) -> Result<usize> {
        let mut moved = self.expire_due().await?;
        let now = self.now();
        let mut template = AuditEvent::allow(
            AppId::from_uuid(uuid::Uuid::nil()),
            now,
            action::APPROVAL_FAILED,
            Actor::system(),
            Target {
                kind: "approval".into(),
                id: String::new(),
            },
        );
        let interrupted =
            "the execution was interrupted; it was not retried, since the call may have been made";
        template = template.with_details(json!({ "execution_error": interrupted }));
        moved += self
            .store()
            .fail_stale_executions(
                now.plus_seconds(-STALE_EXECUTION_SECONDS),
                now,
                interrupted,
                &template,
            )
            .await?
            .len();
        for (app, id) in self.store().unclaimed_approvals(SWEEP_BATCH).await? {
            if self.execute_approval(app, id).await? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Expires the pending approvals past their expiry.
    async fn expire_due(&self) -> Result<usize> {
        let now = self.now();
        let template = AuditEvent::allow(
            AppId::from_uuid(uuid::Uuid::nil()),
            now,
            action::APPROVAL_EXPIRED,
            Actor::system(),
            Target {
                kind: "approval".into(),
                id: String::new(),
            },
        );
        Ok(self
            .store()
            .expire_approvals(now, SWEEP_BATCH, &template)
            .await?
            .len())
    }

    /// An approval as it stands now: one past its expiry reads as expired (and is stored so)
    /// even before the sweep runs.
    async fn current_approval(&self, app: AppId, id: ApprovalId) -> Result<Approval> {
        let approval = self
            .store()
            .get_approval(app, id)
            .await?
            .ok_or(Error::NotFound(Entity::Approval))?;
        if approval.status == ApprovalStatus::Pending && approval.expires_at <= self.now() {
            self.expire_due().await?;
            return self
                .store()
                .get_approval(app, id)
                .await?
                .ok_or(Error::NotFound(Entity::Approval));
        }
        Ok(approval)
    }

    /// An approval `caller` may see: its app's; for an agent only its own agent's (or, for an
    /// agent key bound to no agent, its own key's). Anything else is "not found".
    async fn visible_approval(&self, caller: &Caller, id: ApprovalId) -> Result<Approval> {
        let approval = self.current_approval(caller.app_id, id).await?;
        let visible = if !caller.is_agent() {
            true
        } else {
            match caller.agent_id() {
                Some(agent) => approval.agent_id == Some(agent),
                None => approval.agent_id.is_none() && approval.key_id == caller.key_id,
            }
        };
        if visible {
            Ok(approval)
        } else {
            Err(Error::NotFound(Entity::Approval))
        }
    }

    /// The held call's caller and request, if its key is still usable and its agent still
    /// active; otherwise why not, for `execution_error`.
    async fn rebuild(
        &self,
        approval: &Approval,
    ) -> std::result::Result<(Caller, ProxyRequest), String> {
        let plain = self
            .open_approval(
                approval.app_id,
                approval.id,
                REQUEST_KIND,
                &approval.sealed_request,
            )
            .map_err(|e| failure_text(&e))?;
        let payload: HeldPayload = serde_json::from_slice(&plain)
            .map_err(|_| "the held request could not be read".to_owned())?;
        let now = self.now();
        let key = self
            .store()
            .get_key(approval.app_id, payload.caller.key_id)
            .await
            .map_err(|e| failure_text(&e.into()))?
            .ok_or_else(|| "the key that made the request no longer exists".to_owned())?;
        key.check_usable(now)
            .map_err(|e| format!("the key that made the request is no longer usable: {e}"))?;
        let agent = match payload.caller.agent_id {
            Some(agent_id) => {
                let agent = self
                    .agent(approval.app_id, agent_id)
                    .await
                    .map_err(|_| "the agent that made the request no longer exists".to_owned())?;
                if agent.status != AgentStatus::Active {
                    return Err(format!(
                        "the agent that made the request is {}",
                        agent.status.as_str()
                    ));
                }
                Some(Arc::new(agent))
            }
            None => None,
        };
        let snapshot = payload.caller;
        // The request's (attenuated) scopes, provided the key still holds them all.
        if !key.scopes.missing_from(&snapshot.scopes).is_empty() {
            return Err("the key no longer holds the scopes the request was made with".into());
        }
        let caller = Caller {
            app_id: approval.app_id,
            key_id: key.id,
            root_key_id: key.parent_key_id.unwrap_or(key.id),
            key_prefix: key.prefix.clone(),
            key_type: key.key_type,
            agent_typed: key.agent_typed,
            agent,
            impersonating: snapshot.impersonating,
            scopes: snapshot.scopes,
            key_deprecated: key.status(now) == KeyStatus::Deprecated,
            caller: snapshot.caller,
            caller_type: snapshot.caller_type,
            context: snapshot.context,
            trace_id: snapshot.trace_id,
            request_rule: snapshot.request_rule.map(RuleSnapshot::rule),
            peer: snapshot.peer,
            // The execution of an approved call is not a request of its own.
            pending_nonce: PendingNonce::none(),
        };
        Ok((caller, payload.request))
    }

    fn open_result(&self, approval: &Approval) -> Result<ProxyResult> {
        let sealed = approval
            .sealed_result
            .as_deref()
            .ok_or(ApprovalError::NotReady(approval.status))?;
        let plain = self.open_approval(approval.app_id, approval.id, RESULT_KIND, sealed)?;
        let stored: StoredResult = serde_json::from_slice(&plain).map_err(|_| {
            Error::Storage(crate::ports::StoreError::Corrupt(
                "an approval's result".into(),
            ))
        })?;
        Ok(stored.into_result())
    }

    fn seal_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        kind: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let (app, record) = (app.to_string(), id.to_string());
        Ok(self.keyring().seal(
            Binding {
                kind,
                app_id: &app,
                record_id: &record,
            },
            plain,
        )?)
    }

    fn open_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        kind: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (app, record) = (app.to_string(), id.to_string());
        Ok(self.keyring().open(
            Binding {
                kind,
                app_id: &app,
                record_id: &record,
            },
            sealed,
        )?)
    }
}

/// The event of a transition of `approval`.
fn approval_event(
    approval: &Approval,
    verb: &str,
    actor: Actor,
    at: crate::time::Timestamp,
) -> AuditEvent {
    AuditEvent::allow(
        approval.app_id,
        at,
        verb,
        actor,
        Target {
            kind: "approval".into(),
            id: approval.id.to_string(),
        },
    )
}

/// Why an execution failed, in words safe to show the caller (domain errors name no secret;
/// storage and crypto failures are generic).
fn failure_text(error: &Error) -> String {
    match error {
        Error::Storage(_) | Error::Crypto(_) => {
            tracing::warn!(%error, "an approved call could not be made");
            "the vault could not make the call".into()
        }
        other => format!("the call was refused when it was made: {other}"),
    }
}

/// The approved request, bound to the grant its approver saw: a call asked by provider is not
/// resolved again (a grant created since could otherwise answer it).
fn pinned(request: ProxyRequest, approval: &Approval) -> ProxyRequest {
    ProxyRequest {
        grant_id: Some(approval.grant_id.to_string()),
        provider_id: None,
        account: None,
        label: None,
        app_user_id: None,
        ..request
    }
}
