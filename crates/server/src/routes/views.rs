//! Domain → wire: how grants, agents, keys, secrets and identity providers are shown.

use alter_core::agents::Agent;
use alter_core::connections::ConnectionStatus;
use alter_core::credentials::{CredentialRef, CredentialSummary};
use alter_core::grants::{Grant, GrantView, Principal};
use alter_core::identity::{IdentityProvider, JwksSource};
use alter_core::keys::ApiKey;
use alter_core::secrets::ManagedSecret;
use alter_core::time::Timestamp;
use alter_proto::admin::{IdpInfo, SecretInfo};
use alter_proto::agents::{AgentInfo, AgentKeyInfo, AgentList};
use alter_proto::grants::{
    DelegationResult, GrantInfo, GrantItem, GrantItemCommon, GrantList, ManagedSecretGrantItem,
    OAuthGrantItem,
};
use serde_json::{Value, json};

fn time(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

/// `grant_policy` as the client reads it: the policy as set, who set it up and when.
fn policy(grant: &Grant) -> Value {
    let mut policy = serde_json::to_value(&grant.lifetime).unwrap_or_else(|_| json!({}));
    if let Some(map) = policy.as_object_mut() {
        map.insert("created_by".into(), json!(grant.created_by));
        map.insert("created_at".into(), json!(grant.created_at));
    }
    policy
}

/// One grant of a listing.
pub fn grant_item(view: &GrantView, now: Timestamp) -> GrantItem {
    let grant = &view.grant;
    let delegation = grant.parent_grant_id.is_some();
    let common = |delegated_via: &str| GrantItemCommon {
        grant_id: grant.id.to_string(),
        label: grant.label.clone(),
        status: grant.state(now).as_str().to_owned(),
        grant_expires_at: time(grant.expires_at),
        created_at: grant.created_at.to_rfc3339(),
        last_used_at: time(grant.last_used_at),
        principal_type: grant.principal.kind().as_str().to_owned(),
        access_via: if delegation {
            delegated_via
        } else {
            "ownership"
        }
        .into(),
        parent_grant_id: grant.parent_grant_id.map(|p| p.to_string()),
        depth: grant.depth,
        delegable: grant.delegable,
    };
    match grant.credential {
        CredentialRef::ManagedSecret(_) | CredentialRef::UserSecret { .. } => {
            // A user's own key is listed under its secret, as the user's credential.
            let (kind, own_key) = match grant.credential.user_secret_id() {
                Some(key) => ("end_user", Some(key.to_string())),
                None => ("developer", None),
            };
            let (slug, name, secret_id) = match &view.credential {
                Some(CredentialSummary::ManagedSecret(s)) => {
                    (s.slug.clone(), s.name.clone(), s.id.to_string())
                }
                _ => (String::new(), String::new(), String::new()),
            };
            let (app_user, group) = match &grant.principal {
                Principal::User(user) => (Some(user.to_string()), None),
                Principal::Group {
                    external_group_id, ..
                } => (None, Some(external_group_id.clone())),
                _ => (grant.delegated_by.map(|u| u.to_string()), None),
            };
            GrantItem::ManagedSecret(ManagedSecretGrantItem {
                common: common("ms_delegation"),
                managed_secret_id: secret_id.clone(),
                managed_secret_slug: slug,
                managed_secret_name: name,
                agent_id: grant.agent_id().map(|a| a.to_string()),
                grant_policy: Some(policy(grant)),
                delegated_at: delegation.then(|| grant.created_at.to_rfc3339()),
                credential_id: own_key.or((!secret_id.is_empty()).then_some(secret_id)),
                credential_kind: Some(kind.into()),
                app_user_id: app_user,
                external_group_id: group,
            })
        }
        CredentialRef::Connection(connection_id) => {
            let connection = match &view.credential {
                Some(CredentialSummary::Connection(c)) => Some(c),
                _ => None,
            };
            GrantItem::OAuth(OAuthGrantItem {
                common: common("oauth_delegation"),
                provider_id: connection
                    .map(|c| c.provider_id.clone())
                    .unwrap_or_default(),
                scopes: connection.map(|c| c.scopes.clone()).unwrap_or_default(),
                account_identifier: connection.and_then(|c| c.account_identifier.clone()),
                expires_at: time(connection.and_then(|c| c.access_expires_at)),
                delegated_agent_ids: view
                    .delegated_agents
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                scope_mismatch: grant.scope_mismatch,
                needs_reconnect: connection
                    .is_some_and(|c| c.status == ConnectionStatus::ReauthRequired),
                grant_policy: Some(policy(grant)),
                delegated_at: delegation.then(|| grant.created_at.to_rfc3339()),
                credential_id: Some(connection_id.to_string()),
            })
        }
    }
}

/// A page of grants.
pub fn grant_list(page: &alter_core::grants::GrantPage, now: Timestamp) -> GrantList {
    GrantList {
        grants: page.grants.iter().map(|v| grant_item(v, now)).collect(),
        total: page.total,
        limit: page.limit,
        offset: page.offset,
        has_more: page.has_more(),
    }
}

/// The legacy `GrantInfo` of a minted grant.
pub fn grant_info(view: &GrantView, now: Timestamp) -> GrantInfo {
    let grant = &view.grant;
    GrantInfo {
        grant_id: grant.id.to_string(),
        provider_id: view
            .credential
            .as_ref()
            .map(|c| c.provider_id().to_owned())
            .unwrap_or_default(),
        scopes: match &view.credential {
            Some(CredentialSummary::Connection(c)) => c.scopes.clone(),
            _ => Vec::new(),
        },
        status: grant.state(now).as_str().to_owned(),
        expires_at: time(grant.expires_at),
        created_at: grant.created_at.to_rfc3339(),
        principal_type: grant.principal.kind().as_str().to_owned(),
        label: grant.label.clone(),
        credential_id: Some(match grant.credential {
            CredentialRef::ManagedSecret(id) => id.to_string(),
            CredentialRef::Connection(id) => id.to_string(),
            CredentialRef::UserSecret { key, .. } => key.to_string(),
        }),
        grant_policy: Some(policy(grant)),
    }
}

/// A delegation as `DelegationResult`.
pub fn delegation(grant: &Grant, now: Timestamp) -> DelegationResult {
    DelegationResult {
        grant_id: grant.id.to_string(),
        grant_kind: grant.credential.kind().as_str().into(),
        parent_grant_id: grant
            .parent_grant_id
            .map(|p| p.to_string())
            .unwrap_or_default(),
        depth: grant.depth,
        delegable: grant.delegable,
        status: grant.state(now).as_str().to_owned(),
        expires_at: time(grant.expires_at),
    }
}

/// A page of agents.
pub fn agent_list(agents: &[Agent], total: i64, limit: i64, offset: i64) -> AgentList {
    AgentList {
        has_more: offset + (agents.len() as i64) < total,
        items: agents.iter().map(agent_info).collect(),
        total,
        limit,
        offset,
    }
}

/// A typed setting as the JSON object the wire carries.
fn object_of(value: &impl serde::Serialize) -> serde_json::Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// `AgentInfo`; approvers are redacted to a count.
pub fn agent_info(agent: &Agent) -> AgentInfo {
    let mut policy = object_of(&agent.approval);
    if let Some(Value::Array(approvers)) = policy.remove("approvers") {
        policy.insert("approvers_count".into(), json!(approvers.len()));
    }
    AgentInfo {
        id: agent.id.to_string(),
        name: agent.name.clone(),
        display_name: agent.display_name.clone(),
        agent_type: agent.agent_type.clone(),
        status: agent.status.as_str().to_owned(),
        scopes: object_of(&agent.allowlist),
        scopes_pending: agent.allowlist_pending.as_ref().map(object_of),
        scopes_applies_at: time(agent.allowlist_applies_at),
        policy,
        metadata: agent.metadata.clone(),
        rate_limit_per_minute: agent.rate_limit_per_minute,
        version: agent.version,
        created_at: agent.created_at.to_rfc3339(),
        last_used_at: time(agent.last_used_at),
        parent_agent_id: None,
        stored_legacy_managed_secret_names: Vec::new(),
    }
}

/// `AgentKey`.
pub fn agent_key(key: &ApiKey) -> AgentKeyInfo {
    AgentKeyInfo {
        key_id: key.id.to_string(),
        key_prefix: key.prefix.clone(),
        name: key.name.clone(),
        created_at: key.created_at.to_rfc3339(),
        deprecated_at: time(key.deprecated_at),
        revoked_at: time(key.revoked_at),
        last_used_at: time(key.last_used_at),
    }
}

/// A managed secret, without its value.
pub fn secret_info(secret: &ManagedSecret) -> SecretInfo {
    SecretInfo {
        id: secret.id.to_string(),
        name: secret.name.clone(),
        slug: secret.slug.clone(),
        secret_type: secret.secret_type.as_str().to_owned(),
        header: secret.injection.header.clone(),
        param: secret.injection.param.clone(),
        rules: secret
            .injection
            .rules
            .iter()
            .map(|r| alter_proto::admin::InjectionRuleBody {
                target: match r.target {
                    alter_core::secrets::InjectionTarget::Header => "header",
                    alter_core::secrets::InjectionTarget::Query => "query",
                }
                .into(),
                name: r.name.clone(),
                field: r.field.clone(),
            })
            .collect(),
        allowed_hosts: secret.allowed_hosts.clone(),
        max_grant_ttl_seconds: secret.limits.max_grant_ttl_seconds,
        principals: secret
            .limits
            .principals
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        delegation: secret.limits.delegation,
        max_delegation_ttl_seconds: secret.limits.max_delegation_ttl_seconds,
        value_version: secret.value_version,
        created_at: secret.created_at.to_rfc3339(),
        rotated_at: time(secret.rotated_at),
        deleted_at: time(secret.deleted_at),
    }
}

/// An identity provider.
pub fn idp_info(idp: &IdentityProvider) -> IdpInfo {
    IdpInfo {
        id: idp.id.to_string(),
        issuer: idp.issuer.clone(),
        audiences: idp.audiences.clone(),
        jwks_url: match &idp.jwks {
            JwksSource::Url(url) => Some(url.clone()),
            JwksSource::Inline(_) => None,
        },
        jwks_inline: matches!(idp.jwks, JwksSource::Inline(_)),
        algorithms: idp
            .algorithms
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        subject_claim: idp.claims.subject.clone(),
        groups_claim: idp.claims.groups.clone(),
        email_claim: idp.claims.email.clone(),
        name_claim: idp.claims.name.clone(),
        leeway_seconds: idp.leeway_seconds,
        created_at: idp.created_at.to_rfc3339(),
        updated_at: idp.updated_at.to_rfc3339(),
    }
}
