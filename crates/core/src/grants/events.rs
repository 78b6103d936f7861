//! The audit events grants write.

use serde_json::{Value, json};

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::credentials::Credential;
use crate::ids::AppId;
use crate::time::Timestamp;

use super::model::{Grant, Principal};

/// The template of the events a revocation writes (one per revoked grant).
pub fn revocation_event(app_id: AppId, at: Timestamp, actor: Actor, reason: &str) -> AuditEvent {
    AuditEvent::allow(
        app_id,
        at,
        action::GRANT_REVOKED,
        actor,
        Target {
            kind: "grant".into(),
            id: String::new(),
        },
    )
    .with_reason(Some(reason.to_owned()))
}

/// A grant's principal as audit events record it (for a delegation, with the user who
/// consented).
pub(crate) fn principal_json(grant: &Grant) -> Value {
    match &grant.principal {
        Principal::User(user) => json!({ "type": "user", "app_user_id": user }),
        Principal::Group {
            idp_id,
            external_group_id,
        } => json!({ "type": "group", "idp_id": idp_id, "external_group_id": external_group_id }),
        Principal::System => json!({ "type": "system" }),
        Principal::Agent(agent) => json!({
            "type": "agent",
            "agent_id": agent,
            "app_user_id": grant.delegated_by,
        }),
    }
}

pub(crate) fn grant_event(
    grant: &Grant,
    action: &str,
    actor: Actor,
    credential: &Credential,
) -> AuditEvent {
    let mut details = credential.audit_details();
    details.extend(
        json!({
            "principal": principal_json(grant),
            "label": grant.label,
            "parent_grant_id": grant.parent_grant_id,
            "expires_at": grant.expires_at,
            "delegated_by": grant.delegated_by,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    AuditEvent::allow(
        grant.app_id,
        grant.created_at,
        action,
        actor,
        Target {
            kind: "grant".into(),
            id: grant.id.to_string(),
        },
    )
    .with_details(details.into())
}
