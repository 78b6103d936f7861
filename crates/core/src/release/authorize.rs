//! *Authorize*: whether a resolved grant may be used for this call. First the default-deny
//! base — the grant and every link of its delegation chain valid, the credential live, the
//! grant's principal type admitted by the credential's limits — then the [`Authorizer`] port,
//! whose rules only restrict. Every refusal is a [`Denial`].

use async_trait::async_trait;

use crate::agents::Agent;
use crate::credentials::{Credential, CredentialKind};
use crate::error::Error;
use crate::grants::{Grant, GrantState};
use crate::ids::{AppId, RuleId};
use crate::ports::Authorizer;
use crate::rules::{ApprovalTerms, CallMode, Effect, MatchedRule, RuleMode};
use crate::secrets::host_allowed;
use crate::time::Timestamp;
use crate::vault::Vault;

use super::policy::PolicyCode;
use super::resolve::Resolved;

/// Why a credential use was refused by a rule (each has one stable name, [`Denial::as_str`],
/// under which the audit log records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The grant was revoked.
    Revoked,
    /// The grant's lifetime ended.
    Expired,
    /// The credential was deleted.
    Deleted,
    /// A link of the delegation chain is broken (parent gone, user left the group…); the
    /// text says which.
    DelegationInvalid(&'static str),
    /// The URL's host is not among the credential's allowed hosts.
    BlockedDestination,
    /// The agent's allowlist does not name this credential.
    AgentNotAllowlisted,
    /// The credential's limits do not admit the principal type of the grant at the root of
    /// the chain (an agent's own grant from before the `agent` type was opt-in).
    PrincipalNotAllowed,
    /// The credential may only be used through the proxy.
    RequiresProxy(ProxyReason),
    /// An operator's rule refused (or could not be evaluated).
    Policy {
        /// Why, as the caller's error names it.
        code: PolicyCode,
        /// The first enforced rule that refused (none when evaluation failed).
        rule_id: Option<RuleId>,
    },
    /// A rate-limit rule's bucket is empty.
    RateLimited {
        /// When the next call may pass.
        retry_after_seconds: u64,
        /// The rule's calls per minute.
        per_minute: u32,
        /// The rule.
        rule_id: RuleId,
    },
    /// The rules or the rate limiter could not be read: refused, try again shortly.
    PolicyUnavailable,
}

/// Why a credential may only be used through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyReason {
    /// The agent's calls wait for a human approval, which only a proxied call can carry.
    ApprovalRequired,
    /// The caller's request rule looks at the call's content.
    ContentRule,
}

impl Denial {
    /// The name the audit log records.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::Revoked => "grant_revoked",
            Denial::Expired => "grant_expired",
            Denial::Deleted => "grant_deleted",
            Denial::DelegationInvalid(_) => "delegation_invalid",
            Denial::BlockedDestination => "blocked_destination",
            Denial::AgentNotAllowlisted => "agent_not_allowlisted",
            Denial::PrincipalNotAllowed => "principal_not_allowed",
            Denial::RequiresProxy(ProxyReason::ApprovalRequired) => "hitl_grant_requires_proxy",
            Denial::RequiresProxy(ProxyReason::ContentRule) => "restricted_grant_requires_proxy",
            Denial::Policy { code, .. } => code.as_str(),
            Denial::RateLimited { .. } => "rate_limit_exceeded",
            Denial::PolicyUnavailable => "policy_unavailable",
        }
    }
}

/// What the credential a grant points at lets the rules see: never its value.
#[derive(Debug, Clone, Copy)]
pub struct CredentialFacts<'a> {
    /// Its kind.
    pub kind: CredentialKind,
    /// The name callers use for it (a managed secret's slug, an OAuth provider's id).
    pub provider_id: &'a str,
    /// Hosts it may be sent to; empty means any.
    pub allowed_hosts: &'a [String],
    /// The scopes it carries (an OAuth connection's).
    pub scopes: &'a [String],
}

/// The call a credential is wanted for.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingCall<'a> {
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// The URL as given.
    pub url: &'a str,
    /// The host the call goes to, as the client's URL parser reads it.
    pub host: &'a str,
}

/// What the [`Authorizer`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing refuses.
    Allow,
    /// Rules hold the call for a human's approval (only a proxied call can wait; in retrieve
    /// mode a hold refuses with `hitl_grant_requires_proxy`).
    Hold(Vec<MatchedRule>),
    /// Refused.
    Deny(Denial),
}

/// Everything the [`Authorizer`] decides on.
#[derive(Debug, Clone, Copy)]
pub struct Authorization<'a> {
    /// Retrieve or proxy.
    pub mode: CallMode,
    /// The app.
    pub app_id: AppId,
    /// The grant to use.
    pub grant: &'a Grant,
    /// Its delegation chain, from the grant up to its root (the grant alone for a root).
    pub chain: &'a [Grant],
    /// The credential.
    pub credential: CredentialFacts<'a>,
    /// The agent the request acts as.
    pub agent: Option<&'a Agent>,
    /// The call.
    pub call: OutgoingCall<'a>,
    /// When.
    pub now: Timestamp,
}

/// Today's built-in rules: the agent's allowlist and approval setting, the credential's
/// allowed hosts and the caller's request rule. Each only refuses.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuiltinRules;

#[async_trait]
impl Authorizer for BuiltinRules {
    async fn authorize(&self, request: &Authorization<'_>) -> Verdict {
        match builtin_checks(request) {
            Err(denial) => Verdict::Deny(denial),
            Ok(()) => match request.agent {
                Some(agent) if agent.approval.requires_approval() => {
                    Verdict::Hold(vec![agent_approval_hold(agent)])
                }
                _ => Verdict::Allow,
            },
        }
    }
}

/// An agent's "requires approval" setting as the hold rule it amounts to.
pub fn agent_approval_hold(agent: &Agent) -> MatchedRule {
    MatchedRule {
        rule_id: crate::ids::RuleId::from_uuid(agent.id.uuid()),
        version: agent.version,
        kind: "agent_requires_approval".into(),
        effect: Effect::Hold,
        mode: RuleMode::Enforce,
        code: "approval_required".into(),
        detail: "the agent's calls wait for a human's approval".into(),
        // The agent's approvers are never shown back, so only its ttl is carried.
        approval: agent
            .approval
            .approval_ttl_seconds
            .and_then(|t| u64::try_from(t).ok())
            .map(|ttl| ApprovalTerms {
                ttl_seconds: Some(ttl),
                approvers: Vec::new(),
            }),
    }
}

/// The built-in refusals: the agent's allowlist, the credential's hosts, the caller's rule.
fn builtin_checks(request: &Authorization<'_>) -> Result<(), Denial> {
    if let Some(agent) = request.agent {
        let allowlist = agent.allowlist(request.now);
        let named = match request.credential.kind {
            CredentialKind::ManagedSecret => allowlist.names_secret(request.credential.provider_id),
            CredentialKind::OAuth => {
                allowlist.allows_scopes(request.credential.provider_id, request.credential.scopes)
            }
        };
        if !named {
            return Err(Denial::AgentNotAllowlisted);
        }
        if request.mode == CallMode::Retrieve && agent.approval.requires_approval() {
            return Err(Denial::RequiresProxy(ProxyReason::ApprovalRequired));
        }
    }
    // A credential the vault sends itself goes only where it is meant to: "any host" (no
    // list) is for tokens handed to a caller, and would let a proxied call carry it anywhere.
    let unbounded = request.mode == CallMode::Proxy && request.credential.allowed_hosts.is_empty();
    if unbounded || !host_allowed(request.credential.allowed_hosts, request.call.host) {
        return Err(Denial::BlockedDestination);
    }
    // The caller's request rule is the policy engine's (the rules step).
    Ok(())
}

impl Vault {
    /// The hosts of an OAuth provider's API (its `api_base_url`), to which proxied calls may
    /// carry its tokens; none when it names no API (or cannot be read: fail closed).
    async fn api_hosts(&self, app: AppId, provider: &str) -> Vec<String> {
        let configured = self.store().get_provider(app, provider).await;
        let base = configured
            .ok()
            .flatten()
            .and_then(|p| p.endpoints.api_base_url);
        base.as_deref()
            .and_then(super::host_of)
            .into_iter()
            .collect()
    }
}

impl Vault {
    /// Checks the default-deny base, then the authorizer's rules; returns the delegation chain
    /// it checked, from the grant up to its root, and the rules that hold the call (never any
    /// in retrieve mode, where a hold refuses: only a proxied call can wait).
    pub(super) async fn authorize(
        &self,
        resolved: &Resolved,
        agent: Option<&Agent>,
        call: OutgoingCall<'_>,
        mode: CallMode,
    ) -> Result<(Vec<Grant>, Vec<MatchedRule>), Denial> {
        let grant = &resolved.grant;
        let credential = &resolved.credential;
        if credential.is_deleted() {
            return Err(Denial::Deleted);
        }
        let now = self.now();
        match grant.state(now) {
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
        if !credential.admits(root.principal.kind()) {
            return Err(Denial::PrincipalNotAllowed);
        }
        // Where the vault itself may send an OAuth token: its provider's API.
        let oauth_hosts = match (credential, mode) {
            (Credential::Connection(connection), CallMode::Proxy) => {
                Some(self.api_hosts(grant.app_id, &connection.provider_id).await)
            }
            _ => None,
        };
        match self
            .authorizer()
            .authorize(&Authorization {
                mode,
                app_id: grant.app_id,
                grant,
                chain: &chain,
                credential: CredentialFacts {
                    allowed_hosts: match &oauth_hosts {
                        Some(hosts) => hosts,
                        None => credential.facts().allowed_hosts,
                    },
                    ..credential.facts()
                },
                agent,
                call,
                now,
            })
            .await
        {
            Verdict::Allow => Ok((chain, Vec::new())),
            Verdict::Hold(holds) if mode == CallMode::Proxy => Ok((chain, holds)),
            Verdict::Hold(_) => Err(Denial::RequiresProxy(ProxyReason::ApprovalRequired)),
            Verdict::Deny(denial) => Err(denial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{Agent, AgentAllowlist, AgentStatus, ApprovalSettings};
    use crate::credentials::CredentialRef;
    use crate::grants::{CreatedBy, GrantLifetime, GrantStatus, Principal};
    use crate::ids::{AgentId, GrantId, SecretId};

    fn at() -> Timestamp {
        Timestamp::from_unix_seconds(1_700_000_000)
    }

    fn grant() -> Grant {
        Grant {
            id: GrantId::new(),
            app_id: AppId::new(),
            seq: 1,
            credential: CredentialRef::ManagedSecret(SecretId::new()),
            principal: Principal::System,
            label: None,
            status: GrantStatus::Active,
            lifetime: GrantLifetime::default(),
            expires_at: None,
            parent_grant_id: None,
            depth: 0,
            delegable: false,
            delegated_by: None,
            created_by: CreatedBy::Developer,
            created_at: at(),
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            scope_mismatch: false,
        }
    }

    fn agent(slugs: &[&str], requires_approval: bool) -> Agent {
        Agent {
            id: AgentId::new(),
            app_id: AppId::new(),
            name: "bot".into(),
            display_name: None,
            agent_type: "agent".into(),
            status: AgentStatus::Active,
            allowlist: AgentAllowlist {
                managed_secret_slugs: slugs.iter().map(|s| s.to_string()).collect(),
                ..AgentAllowlist::default()
            },
            allowlist_pending: None,
            allowlist_applies_at: None,
            approval: ApprovalSettings {
                requires_approval: Some(requires_approval),
                ..ApprovalSettings::default()
            },
            metadata: Default::default(),
            rate_limit_per_minute: None,
            version: 1,
            created_at: at(),
            updated_at: at(),
            revoked_at: None,
            last_used_at: None,
        }
    }

    async fn decide(hosts: &[&str], agent: Option<&Agent>, url_host: &str) -> Result<(), Denial> {
        let grant = grant();
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let verdict = BuiltinRules
            .authorize(&Authorization {
                mode: CallMode::Retrieve,
                app_id: grant.app_id,
                grant: &grant,
                chain: std::slice::from_ref(&grant),
                credential: CredentialFacts {
                    kind: CredentialKind::ManagedSecret,
                    provider_id: "stripe",
                    allowed_hosts: &hosts,
                    scopes: &[],
                },
                agent,
                call: OutgoingCall {
                    method: "GET",
                    url: "https://x/",
                    host: url_host,
                },
                now: at(),
            })
            .await;
        match verdict {
            Verdict::Allow => Ok(()),
            Verdict::Hold(_) => Err(Denial::RequiresProxy(ProxyReason::ApprovalRequired)),
            Verdict::Deny(denial) => Err(denial),
        }
    }

    #[tokio::test]
    async fn builtin_rules_only_refuse() {
        let stripe = ["api.stripe.com"];
        assert_eq!(decide(&stripe, None, "api.stripe.com").await, Ok(()));
        assert_eq!(decide(&[], None, "anywhere.example").await, Ok(()));
        assert_eq!(
            decide(&stripe, None, "evil.example").await,
            Err(Denial::BlockedDestination)
        );
        let listed = agent(&["stripe"], false);
        assert_eq!(
            decide(&stripe, Some(&listed), "api.stripe.com").await,
            Ok(())
        );
        assert_eq!(
            decide(&stripe, Some(&agent(&["github"], false)), "api.stripe.com").await,
            Err(Denial::AgentNotAllowlisted)
        );
        assert_eq!(
            decide(&stripe, Some(&agent(&["stripe"], true)), "api.stripe.com").await,
            Err(Denial::RequiresProxy(ProxyReason::ApprovalRequired))
        );
    }

    #[test]
    fn denials_have_stable_names() {
        assert_eq!(
            Denial::RequiresProxy(ProxyReason::ApprovalRequired).as_str(),
            "hitl_grant_requires_proxy"
        );
        assert_eq!(
            Denial::DelegationInvalid("x").as_str(),
            "delegation_invalid"
        );
    }
}
