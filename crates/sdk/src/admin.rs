//! A client of the operator admin API (`/admin/v1/*`, Bearer admin token), used by the `alter`
//! CLI and by tests.

use alter_proto::admin::{
    CreateAppRequest, ItemList, RevokeRequest, RotateAppKeyRequest, RotateSecretRequest,
    SecretHostsRequest, VerifyAuditRequest,
};
use alter_proto::signing::{encode_path_segment, encode_query};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::transport::{DEFAULT_TIMEOUT, Mapper, decode, execute, http_client, validate_base_url};

// What `AdminClient` takes and returns, so that its users need no other crate.
pub use alter_proto::admin::{
    AgentListQuery, AppInfo, AuditCheckpointView, AuditEventView, AuditPage, AuditQuery,
    ChainProblemView, ChainReportView, CreateDelegationRequest, CreateSecretRequest,
    GrantListQuery, IdpInfo, IdpRequest, InjectionRuleBody, MintKeyRequest, SecretInfo,
};
pub use alter_proto::agents::{AgentInfo, AgentList};
pub use alter_proto::approvals::{ApprovalInfo, DecideApprovalRequest};
pub use alter_proto::grants::{DelegationResult, GrantItem, GrantList};
pub use alter_proto::idp_events::{
    IdpEventSecretInfo, IdpEventSecretState, RotateIdpEventSecretRequest,
};
pub use alter_proto::keys::{ApiKeyInfo, MintedKey};
pub use alter_proto::operators::{AddOperatorRequest, OperatorInfo, SetOperatorPasswordRequest};
pub use alter_proto::policies::{
    CreateRuleRequest, DraftRuleBody, RuleInfo, RuleTargetBody, UpdateRuleRequest, WhatIfRequest,
    WhatIfRuleView, WhatIfView,
};
pub use alter_proto::provider_specs::{
    ImportQuery, ImportedSpec, ProviderSpec, ProviderSpecList, SpecListQuery,
};
pub use alter_proto::providers::{
    AccountSourceBody, BuiltinProvider, ConfigureProviderRequest, EndpointsBody, ProviderInfo,
};
pub use alter_proto::signin::{SignInInfo, SignInRequest};

/// The operator's client.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client of the server at `base_url` with the operator admin token.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<AdminClient, Error> {
        Ok(AdminClient {
            http: http_client(DEFAULT_TIMEOUT)?,
            base_url: validate_base_url(base_url)?,
            token: token.into(),
        })
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut request = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        decode(&execute(request, Mapper::Main).await?)
    }

    /// The `items` of the listing at `path`.
    async fn items<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, Error> {
        let list: ItemList<T> = self.call::<_, ()>(Method::GET, path, None).await?;
        Ok(list.items)
    }

    /// Creates an app.
    pub async fn create_app(&self, name: &str) -> Result<AppInfo, Error> {
        let body = CreateAppRequest {
            name: name.to_owned(),
        };
        self.call(Method::POST, "/apps", Some(&body)).await
    }

    /// Lists apps.
    pub async fn list_apps(&self) -> Result<Vec<AppInfo>, Error> {
        self.items("/apps").await
    }

    /// One app.
    pub async fn get_app(&self, app_id: &str) -> Result<AppInfo, Error> {
        let path = app_path(app_id, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Mints an app key; the answer holds the plaintext once.
    pub async fn mint_key(
        &self,
        app_id: &str,
        request: &MintKeyRequest,
    ) -> Result<MintedKey, Error> {
        let path = app_path(app_id, "/keys");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// Lists an app's keys.
    pub async fn list_keys(&self, app_id: &str) -> Result<Vec<ApiKeyInfo>, Error> {
        self.items(&app_path(app_id, "/keys")).await
    }

    /// Revokes a key and its derived keys.
    pub async fn revoke_key(&self, app_id: &str, key_id: &str) -> Result<ApiKeyInfo, Error> {
        let path = member_path(app_id, "keys", key_id, "");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Rotates a key; the old one keeps working for `grace_seconds`.
    pub async fn rotate_key(
        &self,
        app_id: &str,
        key_id: &str,
        grace_seconds: Option<i64>,
    ) -> Result<MintedKey, Error> {
        let path = member_path(app_id, "keys", key_id, "/rotate");
        self.call(
            Method::POST,
            &path,
            Some(&RotateAppKeyRequest { grace_seconds }),
        )
        .await
    }

    /// Sets (or replaces) the app's identity provider.
    pub async fn set_idp(&self, app_id: &str, request: &IdpRequest) -> Result<IdpInfo, Error> {
        let path = app_path(app_id, "/idp");
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// Generates, or rotates, the secret inbound IdP events are signed with: shown once (the
    /// previous one keeps verifying deliveries for a day).
    pub async fn rotate_idp_event_secret(&self, app_id: &str) -> Result<IdpEventSecretInfo, Error> {
        self.rotate_idp_event_secret_with(app_id, &RotateIdpEventSecretRequest::default())
            .await
    }

    /// Rotates the IdP event secret with a chosen grace for the previous one (0 ends it at
    /// once) and, optionally, only from the version last seen (else 409
    /// `secret_version_conflict`).
    pub async fn rotate_idp_event_secret_with(
        &self,
        app_id: &str,
        request: &RotateIdpEventSecretRequest,
    ) -> Result<IdpEventSecretInfo, Error> {
        let path = app_path(app_id, "/idp/events-secret");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// Ends the previous IdP event secret now: only the current one verifies deliveries.
    pub async fn end_previous_idp_event_secret(
        &self,
        app_id: &str,
    ) -> Result<IdpEventSecretState, Error> {
        let path = app_path(app_id, "/idp/events-secret/previous");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// The app's identity provider.
    pub async fn get_idp(&self, app_id: &str) -> Result<IdpInfo, Error> {
        let path = app_path(app_id, "/idp");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Configures the OAuth client the vault signs the app's users in with at its IdP.
    pub async fn set_sign_in(
        &self,
        app_id: &str,
        request: &SignInRequest,
    ) -> Result<SignInInfo, Error> {
        let path = app_path(app_id, "/idp/sign-in");
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// The app's sign-in client.
    pub async fn get_sign_in(&self, app_id: &str) -> Result<SignInInfo, Error> {
        let path = app_path(app_id, "/idp/sign-in");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Creates a managed secret; the answer never holds its value.
    pub async fn create_secret(
        &self,
        app_id: &str,
        request: &CreateSecretRequest,
    ) -> Result<SecretInfo, Error> {
        let path = app_path(app_id, "/secrets");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// Lists the app's live managed secrets.
    pub async fn list_secrets(&self, app_id: &str) -> Result<Vec<SecretInfo>, Error> {
        self.items(&app_path(app_id, "/secrets")).await
    }

    /// One managed secret, by id or slug.
    pub async fn get_secret(&self, app_id: &str, secret: &str) -> Result<SecretInfo, Error> {
        let path = member_path(app_id, "secrets", secret, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Replaces a managed secret's value; its id and every grant id stay.
    pub async fn rotate_secret(
        &self,
        app_id: &str,
        secret: &str,
        value: String,
    ) -> Result<SecretInfo, Error> {
        let path = member_path(app_id, "secrets", secret, "/rotate");
        self.call(Method::POST, &path, Some(&RotateSecretRequest { value }))
            .await
    }

    /// Replaces a managed secret's allowed hosts (empty: any host); its value and grants stay.
    pub async fn set_secret_hosts(
        &self,
        app_id: &str,
        secret: &str,
        allowed_hosts: Vec<String>,
    ) -> Result<SecretInfo, Error> {
        let path = member_path(app_id, "secrets", secret, "/hosts");
        self.call(
            Method::PUT,
            &path,
            Some(&SecretHostsRequest { allowed_hosts }),
        )
        .await
    }

    /// Deletes a managed secret and revokes its grants; `confirm` must repeat its slug.
    pub async fn delete_secret(
        &self,
        app_id: &str,
        secret: &str,
        confirm: &str,
    ) -> Result<SecretInfo, Error> {
        let confirm = format!("?{}", encode_query(&[("confirm", confirm)]));
        let path = member_path(app_id, "secrets", secret, &confirm);
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Configures (or reconfigures) an OAuth provider of the app.
    pub async fn configure_provider(
        &self,
        app_id: &str,
        provider: &str,
        request: &ConfigureProviderRequest,
    ) -> Result<ProviderInfo, Error> {
        let path = member_path(app_id, "providers", provider, "");
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// The built-in catalogue of OAuth providers.
    pub async fn builtin_providers(&self) -> Result<Vec<BuiltinProvider>, Error> {
        self.items("/catalog/providers").await
    }

    /// The app's OAuth providers, by id.
    pub async fn list_providers(&self, app_id: &str) -> Result<Vec<ProviderInfo>, Error> {
        self.items(&app_path(app_id, "/providers")).await
    }

    /// One OAuth provider of the app.
    pub async fn get_provider(&self, app_id: &str, provider: &str) -> Result<ProviderInfo, Error> {
        let path = member_path(app_id, "providers", provider, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Removes an OAuth provider from the app; returns what was removed.
    pub async fn delete_provider(
        &self,
        app_id: &str,
        provider: &str,
    ) -> Result<ProviderInfo, Error> {
        let path = member_path(app_id, "providers", provider, "");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Imports a provider's OpenAPI document (`content_type` says JSON or YAML); the same
    /// document again keeps the version.
    pub async fn import_provider_spec(
        &self,
        app_id: &str,
        kind: &str,
        provider: &str,
        document: Vec<u8>,
        content_type: &str,
        query: &ImportQuery,
    ) -> Result<ImportedSpec, Error> {
        let path = spec_path(app_id, kind, provider) + &query_string(query)?;
        let request = self
            .http
            .put(format!("{}/admin/v1{path}", self.base_url))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(document);
        decode(&execute(request, Mapper::Main).await?)
    }

    /// The app's provider specs (of one kind, or both).
    pub async fn list_provider_specs(
        &self,
        app_id: &str,
        query: &SpecListQuery,
    ) -> Result<Vec<ProviderSpec>, Error> {
        let path = app_path(app_id, "/provider-specs") + &query_string(query)?;
        self.items(&path).await
    }

    /// One provider's spec.
    pub async fn get_provider_spec(
        &self,
        app_id: &str,
        kind: &str,
        provider: &str,
    ) -> Result<ProviderSpec, Error> {
        let path = spec_path(app_id, kind, provider);
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Removes a provider's spec; returns what was removed.
    pub async fn delete_provider_spec(
        &self,
        app_id: &str,
        kind: &str,
        provider: &str,
    ) -> Result<ProviderSpec, Error> {
        let path = spec_path(app_id, kind, provider);
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// A page of the app's agents.
    pub async fn list_agents(
        &self,
        app_id: &str,
        query: &AgentListQuery,
    ) -> Result<AgentList, Error> {
        let path = app_path(app_id, &format!("/agents{}", query_string(query)?));
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// One agent.
    pub async fn get_agent(&self, app_id: &str, agent_id: &str) -> Result<AgentInfo, Error> {
        let path = member_path(app_id, "agents", agent_id, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Pauses an agent: its keys stop working until it is resumed.
    pub async fn pause_agent(&self, app_id: &str, agent_id: &str) -> Result<AgentInfo, Error> {
        let path = member_path(app_id, "agents", agent_id, "/pause");
        self.call::<_, ()>(Method::POST, &path, None).await
    }

    /// Resumes a paused agent.
    pub async fn resume_agent(&self, app_id: &str, agent_id: &str) -> Result<AgentInfo, Error> {
        let path = member_path(app_id, "agents", agent_id, "/resume");
        self.call::<_, ()>(Method::POST, &path, None).await
    }

    /// Deletes an agent: its keys and delegations are revoked.
    pub async fn delete_agent(&self, app_id: &str, agent_id: &str) -> Result<AgentInfo, Error> {
        let path = member_path(app_id, "agents", agent_id, "");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// A page of the app's grants.
    pub async fn list_grants(
        &self,
        app_id: &str,
        query: &GrantListQuery,
    ) -> Result<GrantList, Error> {
        let path = app_path(app_id, &format!("/grants{}", query_string(query)?));
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Revokes a grant and its delegations; the answer lists the revoked grant.
    pub async fn revoke_grant(
        &self,
        app_id: &str,
        grant_id: &str,
        reason: Option<String>,
    ) -> Result<GrantList, Error> {
        let path = member_path(app_id, "grants", grant_id, "/revoke");
        self.call(Method::POST, &path, Some(&RevokeRequest { reason }))
            .await
    }

    /// Clears a grant's scope-mismatch flag (set when a client reported the provider refused
    /// the grant's scopes); the answer lists the grant.
    pub async fn clear_scope_mismatch(
        &self,
        app_id: &str,
        grant_id: &str,
    ) -> Result<GrantList, Error> {
        let path = member_path(app_id, "grants", grant_id, "/scope-mismatch");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Delegates a grant to an agent.
    pub async fn delegate_grant(
        &self,
        app_id: &str,
        grant_id: &str,
        request: &CreateDelegationRequest,
    ) -> Result<DelegationResult, Error> {
        let path = member_path(app_id, "grants", grant_id, "/delegations");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// A page of the app's audit events, oldest first.
    pub async fn audit_events(&self, app_id: &str, query: &AuditQuery) -> Result<AuditPage, Error> {
        let path = app_path(app_id, &format!("/audit{}", query_string(query)?));
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// The audit events of calls that carried a W3C trace, beside the spans the caller reported
    /// for it.
    pub async fn trace(
        &self,
        app_id: &str,
        trace_id: &str,
    ) -> Result<alter_proto::spans::TraceView, Error> {
        let path = app_path(
            app_id,
            &format!("/traces/{}", encode_path_segment(trace_id)),
        );
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Walks the app's audit chain and names the first event altered, removed or reordered.
    pub async fn verify_audit(&self, app_id: &str) -> Result<ChainReportView, Error> {
        let path = app_path(app_id, "/audit/verify");
        self.call::<_, ()>(Method::POST, &path, None).await
    }

    /// [`Self::verify_audit`], and the chain must also still reach `checkpoint` (from
    /// [`Self::audit_checkpoint`]): its event must be there with the hash it had.
    pub async fn verify_audit_against(
        &self,
        app_id: &str,
        checkpoint: AuditCheckpointView,
    ) -> Result<ChainReportView, Error> {
        let path = app_path(app_id, "/audit/verify");
        let request = VerifyAuditRequest {
            checkpoint: Some(checkpoint),
        };
        self.call(Method::POST, &path, Some(&request)).await
    }

    /// A signed checkpoint of the app's audit chain head, to keep outside the database.
    pub async fn audit_checkpoint(&self, app_id: &str) -> Result<AuditCheckpointView, Error> {
        let path = app_path(app_id, "/audit/checkpoint");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// An app's approvals (held proxy calls), newest first, narrowed to `status` if given.
    pub async fn list_approvals(
        &self,
        app_id: &str,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalInfo>, Error> {
        let query = status
            .map(|s| format!("?status={}", encode_path_segment(s)))
            .unwrap_or_default();
        self.items(&app_path(app_id, &format!("/approvals{query}")))
            .await
    }

    /// One approval.
    pub async fn get_approval(
        &self,
        app_id: &str,
        approval_id: &str,
    ) -> Result<ApprovalInfo, Error> {
        let path = member_path(app_id, "approvals", approval_id, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Approves a held call: the vault then makes it, once.
    pub async fn approve(
        &self,
        app_id: &str,
        approval_id: &str,
        decision: &DecideApprovalRequest,
    ) -> Result<ApprovalInfo, Error> {
        let path = member_path(app_id, "approvals", approval_id, "/approve");
        self.call(Method::POST, &path, Some(decision)).await
    }

    /// Denies a held call.
    pub async fn deny(
        &self,
        app_id: &str,
        approval_id: &str,
        decision: &DecideApprovalRequest,
    ) -> Result<ApprovalInfo, Error> {
        let path = member_path(app_id, "approvals", approval_id, "/deny");
        self.call(Method::POST, &path, Some(decision)).await
    }
}

/// `/apps/{app_id}{rest}`, the id percent-encoded.
fn app_path(app_id: &str, rest: &str) -> String {
    format!("/apps/{}{rest}", encode_path_segment(app_id))
}

/// `/apps/{app_id}/{collection}/{id}{rest}`, both ids percent-encoded.
fn member_path(app_id: &str, collection: &str, id: &str, rest: &str) -> String {
    app_path(
        app_id,
        &format!("/{collection}/{}{rest}", encode_path_segment(id)),
    )
}

/// `/apps/{app_id}/provider-specs/{kind}/{provider}`, each part percent-encoded.
fn spec_path(app_id: &str, kind: &str, provider: &str) -> String {
    member_path(
        app_id,
        "provider-specs",
        kind,
        &format!("/{}", encode_path_segment(provider)),
    )
}

/// `?name=value&…` of a query DTO's present fields (empty when none is).
fn query_string<Q: Serialize>(query: &Q) -> Result<String, Error> {
    let value = serde_json::to_value(query)
        .map_err(|e| Error::value(format!("cannot encode the query: {e}")))?;
    let pairs: Vec<(String, String)> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect();
    if pairs.is_empty() {
        return Ok(String::new());
    }
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    Ok(format!("?{}", encode_query(&pairs)))
}

/// Policy rules and the what-if replay (`/apps/{app}/policies/*`).
impl AdminClient {
    /// Adds a rule to an app.
    pub async fn add_rule(
        &self,
        app_id: &str,
        request: &CreateRuleRequest,
    ) -> Result<RuleInfo, Error> {
        let path = app_path(app_id, "/policies/rules");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// An app's rules, oldest first.
    pub async fn list_rules(&self, app_id: &str) -> Result<Vec<RuleInfo>, Error> {
        self.items(&app_path(app_id, "/policies/rules")).await
    }

    /// One rule.
    pub async fn get_rule(&self, app_id: &str, rule_id: &str) -> Result<RuleInfo, Error> {
        let path = member_path(app_id, "policies/rules", rule_id, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Changes a rule (a new version).
    pub async fn update_rule(
        &self,
        app_id: &str,
        rule_id: &str,
        request: &UpdateRuleRequest,
    ) -> Result<RuleInfo, Error> {
        let path = member_path(app_id, "policies/rules", rule_id, "");
        self.call(Method::PATCH, &path, Some(request)).await
    }

    /// Removes a rule; returns what was removed.
    pub async fn remove_rule(&self, app_id: &str, rule_id: &str) -> Result<RuleInfo, Error> {
        let path = member_path(app_id, "policies/rules", rule_id, "");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// What a draft rule set would have done to the app's past credential decisions.
    pub async fn what_if(
        &self,
        app_id: &str,
        request: &WhatIfRequest,
    ) -> Result<WhatIfView, Error> {
        let path = app_path(app_id, "/policies/what-if");
        self.call(Method::POST, &path, Some(request)).await
    }
}

/// Operator accounts of the portal.
impl AdminClient {
    /// Creates an operator account.
    pub async fn add_operator(
        &self,
        username: &str,
        password: &str,
    ) -> Result<OperatorInfo, Error> {
        let body = AddOperatorRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.call(Method::POST, "/operators", Some(&body)).await
    }

    /// Every operator account.
    pub async fn list_operators(&self) -> Result<Vec<OperatorInfo>, Error> {
        self.items("/operators").await
    }

    /// Removes an operator account.
    pub async fn remove_operator(&self, username: &str) -> Result<serde_json::Value, Error> {
        let path = format!("/operators/{}", encode_path_segment(username));
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Sets an operator's password.
    pub async fn set_operator_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<serde_json::Value, Error> {
        let path = format!("/operators/{}/password", encode_path_segment(username));
        let body = SetOperatorPasswordRequest {
            password: password.to_owned(),
        };
        self.call(Method::PUT, &path, Some(&body)).await
    }
}

pub use alter_proto::webhooks::{
    CreateWebhookRequest, DeliveryListQuery, RotateWebhookSecretRequest, WebhookDeliveryInfo,
    WebhookInfo, WebhookWithSecretInfo,
};

/// Outbound webhook endpoints and their deliveries (`/apps/{app}/webhooks/*`).
impl AdminClient {
    /// Adds an endpoint; the answer holds its signing secret, once.
    pub async fn add_webhook(
        &self,
        app_id: &str,
        request: &CreateWebhookRequest,
    ) -> Result<WebhookWithSecretInfo, Error> {
        let path = app_path(app_id, "/webhooks");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// An app's endpoints (never their secrets).
    pub async fn list_webhooks(&self, app_id: &str) -> Result<Vec<WebhookInfo>, Error> {
        self.items(&app_path(app_id, "/webhooks")).await
    }

    /// One endpoint.
    pub async fn get_webhook(&self, app_id: &str, webhook: &str) -> Result<WebhookInfo, Error> {
        let path = member_path(app_id, "webhooks", webhook, "");
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Removes an endpoint and its delivery log.
    pub async fn remove_webhook(&self, app_id: &str, webhook: &str) -> Result<WebhookInfo, Error> {
        let path = member_path(app_id, "webhooks", webhook, "");
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Gives an endpoint a new secret (in the answer, once); the old one also signs for
    /// `grace_seconds` (default a day).
    pub async fn rotate_webhook_secret(
        &self,
        app_id: &str,
        webhook: &str,
        grace_seconds: Option<i64>,
    ) -> Result<WebhookWithSecretInfo, Error> {
        let body = RotateWebhookSecretRequest {
            grace_seconds,
            expected_version: None,
        };
        self.rotate_webhook_secret_with(app_id, webhook, &body)
            .await
    }

    /// Rotates an endpoint's secret as `request` says; with `expected_version`, only from
    /// that version (else 409 `secret_version_conflict`).
    pub async fn rotate_webhook_secret_with(
        &self,
        app_id: &str,
        webhook: &str,
        request: &RotateWebhookSecretRequest,
    ) -> Result<WebhookWithSecretInfo, Error> {
        let path = member_path(app_id, "webhooks", webhook, "/rotate-secret");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// An endpoint's deliveries, newest event first.
    pub async fn webhook_deliveries(
        &self,
        app_id: &str,
        webhook: &str,
        query: &DeliveryListQuery,
    ) -> Result<Vec<WebhookDeliveryInfo>, Error> {
        let path = member_path(
            app_id,
            "webhooks",
            webhook,
            &format!("/deliveries{}", query_string(query)?),
        );
        self.items(&path).await
    }

    /// Sends a delivery again from its first attempt, with the same `webhook-id`.
    pub async fn replay_webhook_delivery(
        &self,
        app_id: &str,
        webhook: &str,
        event_id: &str,
    ) -> Result<WebhookDeliveryInfo, Error> {
        let path = member_path(
            app_id,
            "webhooks",
            webhook,
            &format!("/deliveries/{}/replay", encode_path_segment(event_id)),
        );
        self.call::<_, ()>(Method::POST, &path, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_hold_only_the_given_fields_in_canonical_order() {
        assert_eq!(
            query_string(&GrantListQuery::default()).ok(),
            Some(String::new())
        );
        let query = GrantListQuery {
            status: Some("active".into()),
            label: Some("a b&c".into()),
            limit: Some(5),
            ..GrantListQuery::default()
        };
        assert_eq!(
            query_string(&query).ok().as_deref(),
            Some("?label=a+b%26c&limit=5&status=active")
        );
        let agents = AgentListQuery {
            include_revoked: Some(true),
            ..AgentListQuery::default()
        };
        assert_eq!(
            query_string(&agents).ok().as_deref(),
            Some("?include_revoked=true")
        );
    }
}
