//! What a client reports after a release: the provider call it made with the credential, and
//! a grant whose scopes the provider found too narrow (which an operator clears).

use serde_json::json;

use crate::audit::{Actor, AuditEvent, RequestSummary, Target, action};
use crate::caller::Caller;
use crate::credentials::CredentialSummary;
use crate::error::{Result, ensure};
use crate::grants::GrantView;
use crate::ids::AppId;
use crate::scope::Scope;
use crate::vault::Vault;

impl Vault {
    /// `POST /sdk/oauth/audit/api-call`: the client's report of the provider call it made
    /// with a released credential, recorded beside the release (`token_generation` is the
    /// release's event id). Only a grant the caller can reach may be reported on — revoked or
    /// paused since the release is fine, someone else's is "not found" — so no key can write
    /// use history onto grants it was never given.
    pub async fn report_api_call(&self, caller: &Caller, report: ApiCallReport) -> Result<()> {
        caller.require(&Scope::Action("audit:emit"))?;
        validate_method(&report.method)?;
        // Bounded as a release's own fields are: the report goes into the audit log.
        super::optional_text("reason", report.reason.as_deref(), 1000)?;
        super::optional_text("token_generation", report.token_generation.as_deref(), 100)?;
        let grant = self.reachable_grant(caller, &report.grant_id).await?.id;
        let event = AuditEvent {
            request: Some(RequestSummary::new(&report.method, &report.url)),
            reason: report.reason.clone(),
            context: caller.context.clone(),
            trace_id: caller.trace_id.clone(),
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
        self.store().record_release(event, None).await?;
        Ok(())
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
        let credential = self.credential_of(&grant).await?;
        Ok(GrantView {
            delegated_agents: Vec::new(),
            credential: Some(CredentialSummary::of(&credential)),
            grant,
        })
    }
}

/// The longest method a report may name.
const METHOD_MAX: usize = 20;

/// A reported method: an upper-case HTTP token (the protocol sends it upper-cased), so the
/// audit log and its exports only ever show a plain method.
fn validate_method(method: &str) -> Result<()> {
    ensure(
        !method.is_empty()
            && method.len() <= METHOD_MAX
            && method
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_".contains(&b))
            && method.as_bytes()[0].is_ascii_uppercase(),
        || format!("method must be an upper-case HTTP method of at most {METHOD_MAX} characters"),
    )
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
