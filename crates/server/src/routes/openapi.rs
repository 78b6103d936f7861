//! The OpenAPI 3.1 document of the JSON API, served at `GET /openapi.json`.
//!
//! Every operation is one line of [`operations`]; its bodies, answers and query parameters are
//! JSON Schemas (2020-12) generated from the very types the handlers read and write, so the
//! document cannot drift from the wire shapes. Request bodies follow serde's deserialising
//! rules and answers its serialising ones (a field left out when empty is optional in an
//! answer). Browser pages are left out on purpose ([`EXCLUDED`]). A test in the testkit suite
//! checks the document against the router both ways. The document holds no secret and is
//! served without authentication.

use std::collections::BTreeMap;

use alter_proto::admin as a;
use alter_proto::{
    ErrorBody, agents, approvals as ap, connect, grants, keys, operators as op, policies,
    provider_specs as specs, providers, proxy, scopes, signin, token,
};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::{SDK_ROUTES, SdkRoute};
use alter_proto::signing::headers;

/// Path prefixes of the browser UI (HTML pages and form posts, not a JSON API): deliberately
/// not in the document. Every other route is.
pub const EXCLUDED: &[&str] = &[
    "/wallet/",
    "/portal",
    "/connect/",
    "/oauth/callback",
    "/auth/callback",
    "/assets/",
];

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// A signed request of an API key (`/sdk/*`).
    Signed,
    /// The operator admin token.
    Admin,
    /// An end user's IdP JWT.
    User,
    /// Anyone.
    Public,
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// What a success answer carries.
#[derive(Clone, Copy)]
enum Answer {
    Json(SchemaFn),
    Text,
    Empty,
}

/// One documented operation.
struct Operation {
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
    query: Option<SchemaFn>,
    body: Option<SchemaFn>,
    body_note: Option<&'static str>,
    /// Takes an `Idempotency-Key` header.
    idempotent: bool,
    answers: Vec<(u16, Answer)>,
}

fn json<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A query struct's schema, inline (its fields become parameters).
fn inline<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

fn operation(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
) -> Operation {
    Operation {
        method,
        path,
        auth,
        summary,
        query: None,
        body: None,
        body_note: None,
        idempotent: false,
        answers: Vec::new(),
    }
}

impl Operation {
    fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(inline::<T>);
        self
    }

    fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(json::<T>);
        self
    }

    fn ok<T: JsonSchema>(mut self, status: u16) -> Self {
        self.answers.push((status, Answer::Json(json::<T>)));
        self
    }

    fn empty(mut self, status: u16) -> Self {
        self.answers.push((status, Answer::Empty));
        self
    }
}

/// Every JSON route the router serves, with the types its handler reads and writes.
fn operations() -> Vec<Operation> {
    use Auth::{Admin, Public, Signed, User};
    let sdk = |m, p, s| operation(m, p, Signed, s);
    let admin = |m, p, s| operation(m, p, Admin, s);
    let user = |m, p, s| operation(m, p, User, s);
    vec![
        // The wire protocol of the official client.
        sdk("GET", "/sdk/scopes", "The scope catalogue").ok::<scopes::ScopeCatalog>(200),
        sdk("POST", "/sdk/keys/derive", "Derive a narrower key")
            .body::<keys::DeriveKeyRequest>()
            .ok::<keys::MintedKey>(201),
        sdk("POST", "/sdk/keys/{id}/rotate", "Rotate a key")
            .body::<keys::RotateKeyRequest>()
            .ok::<keys::MintedKey>(201),
        sdk("DELETE", "/sdk/keys/{id}", "Revoke a key")
            .query::<super::agents::ForceQuery>()
            .ok::<keys::ApiKeyInfo>(200),
        sdk("POST", "/sdk/grants/list", "List grants")
            .body::<grants::ListGrantsRequest>()
            .ok::<grants::GrantList>(200),
        sdk(
            "POST",
            "/sdk/managed-secrets/{id}/grants",
            "Grant a managed secret",
        )
        .body::<grants::CreateGrantRequest>()
        .ok::<grants::CreateGrantResult>(201),
        sdk(
            "POST",
            "/sdk/agents/me/managed-secrets/{id}/grants",
            "An agent grants a managed secret to itself",
        )
        .body::<grants::AgentSelfGrantRequest>()
        .ok::<grants::CreateGrantResult>(201),
        sdk("POST", "/sdk/grants/{id}/mint", "Mint a sibling grant")
            .body::<grants::MintGrantRequest>()
            .ok::<grants::GrantInfo>(201),
        sdk("POST", "/sdk/oauth/grants/{id}/revoke", "Revoke a grant")
            .body::<grants::RevokeGrantRequest>()
            .ok::<grants::RevokeGrantResult>(200),
        sdk(
            "POST",
            "/sdk/grants/{id}/delegate",
            "Delegate a grant to an agent",
        )
        .body::<grants::DelegateRequest>()
        .ok::<grants::DelegationResult>(201),
        sdk(
            "DELETE",
            "/sdk/grants/{id}/delegations/me",
            "An agent gives up its delegation",
        )
        .empty(204),
        sdk(
            "DELETE",
            "/sdk/grants/{id}/delegations/{agent}",
            "Revoke an agent's delegation",
        )
        .empty(204),
        Operation {
            idempotent: true,
            ..sdk("POST", "/sdk/agents", "Create an agent")
        }
        .body::<agents::CreateAgentRequest>()
        .ok::<agents::AgentCreateResult>(201),
        sdk("GET", "/sdk/agents", "List agents")
            .query::<super::agents::ListQuery>()
            .ok::<agents::AgentList>(200),
        sdk("GET", "/sdk/agents/me", "The calling agent").ok::<agents::AgentInfo>(200),
        sdk("GET", "/sdk/agents/{id}", "An agent").ok::<agents::AgentInfo>(200),
        sdk("PATCH", "/sdk/agents/{id}", "Update an agent")
            .query::<super::agents::UpdateQuery>()
            .body::<agents::UpdateAgentRequest>()
            .ok::<agents::AgentInfo>(200),
        sdk("DELETE", "/sdk/agents/{id}", "Delete an agent").ok::<agents::AgentInfo>(200),
        sdk("POST", "/sdk/agents/{id}/keys", "Mint an agent key")
            .ok::<agents::AgentKeyMintResult>(201),
        sdk("GET", "/sdk/agents/{id}/keys", "List an agent's keys").ok::<agents::AgentKeyList>(200),
        sdk(
            "PATCH",
            "/sdk/agents/{id}/keys/{key}/deprecate",
            "Mark an agent key deprecated",
        )
        .ok::<agents::AgentKeyInfo>(200),
        sdk(
            "PATCH",
            "/sdk/agents/{id}/keys/{key}/undeprecate",
            "Clear an agent key's deprecation",
        )
        .ok::<agents::AgentKeyInfo>(200),
        sdk(
            "DELETE",
            "/sdk/agents/{id}/keys/{key}",
            "Revoke an agent key",
        )
        .query::<super::agents::ForceQuery>()
        .ok::<agents::AgentKeyInfo>(200),
        sdk(
            "GET",
            "/sdk/oauth/provider-catalog",
            "The providers users can connect",
        )
        .ok::<providers::ProviderCatalog>(200),
        sdk(
            "POST",
            "/sdk/oauth/connect/session",
            "Start an OAuth connect session",
        )
        .body::<connect::ConnectSessionRequest>()
        .ok::<connect::ConnectSessionResponse>(201),
        sdk(
            "POST",
            "/sdk/oauth/connect/session/poll",
            "Poll a connect session",
        )
        .body::<connect::PollRequest>()
        .ok::<Value>(200),
        sdk(
            "POST",
            "/sdk/managed-secrets/connect/session",
            "Start a managed-secret connect session",
        )
        .body::<connect::ManagedConnectSessionRequest>()
        .ok::<connect::ManagedConnectSessionResponse>(201),
        sdk("GET", "/sdk/provider-specs", "List provider API specs")
            .query::<specs::SpecListQuery>()
            .ok::<specs::ProviderSpecList>(200),
        sdk(
            "GET",
            "/sdk/provider-specs/{kind}/{provider_id}",
            "A provider API spec",
        )
        .ok::<specs::ProviderSpec>(200),
        sdk(
            "GET",
            "/sdk/provider-specs/{kind}/{provider_id}/operations",
            "A spec's operations",
        )
        .query::<specs::OperationsQuery>()
        .ok::<specs::SpecOperationsPage>(200),
        sdk(
            "GET",
            "/sdk/provider-specs/{kind}/{provider_id}/operation",
            "One operation of a spec",
        )
        .query::<specs::OperationQuery>()
        .ok::<specs::SpecOperationDetail>(200),
        sdk("POST", "/sdk/token", "Retrieve a credential")
            .body::<token::TokenRequest>()
            .ok::<token::TokenResponse>(200),
        sdk("POST", "/sdk/proxy", "Make a call with a credential")
            .body::<proxy::ProxyCall>()
            .ok::<proxy::ProxyAnswer>(200)
            .ok::<ap::PendingApproval>(202),
        sdk(
            "POST",
            "/sdk/oauth/audit/api-call",
            "Report a provider call",
        )
        .body::<token::ApiCallAudit>()
        .empty(204),
        sdk("POST", "/sdk/spans", "Report the caller's trace spans")
            .body::<alter_proto::spans::EmitSpansRequest>()
            .ok::<alter_proto::spans::EmitSpansResponse>(200),
        sdk(
            "POST",
            "/sdk/grants/{id}/report-scope-mismatch",
            "Report a scope mismatch",
        )
        .body::<token::ScopeMismatchReport>()
        .empty(204),
        sdk("POST", "/sdk/auth/session", "Start a sign-in session")
            .body::<signin::CreateAuthSessionRequest>()
            .ok::<signin::AuthSession>(201),
        sdk("POST", "/sdk/auth/poll", "Poll a sign-in session")
            .body::<signin::PollAuthSessionRequest>()
            .ok::<signin::AuthPollResult>(200),
        sdk(
            "POST",
            "/sdk/auth/verify-token",
            "Verify an end user's token",
        )
        .body::<signin::VerifyTokenRequest>()
        .ok::<signin::VerifiedSubject>(200),
        sdk(
            "POST",
            "/sdk/identity/resolve",
            "Resolve the caller's identity",
        )
        .body::<signin::IdentityRequest>()
        .ok::<signin::IdentityContext>(200),
        sdk("POST", "/sdk/identity/assert", "Sign an identity assertion")
            .body::<signin::IdentityRequest>()
            .ok::<signin::IdentityAssertion>(200),
        sdk("GET", "/sdk/approvals/{id}", "An approval's status")
            .query::<super::approvals::WaitQuery>()
            .ok::<ap::ApprovalStatus>(200),
        sdk(
            "GET",
            "/sdk/approvals/{id}/result",
            "An approved call's result",
        )
        .ok::<proxy::ProxyAnswer>(200),
        // The operator API.
        admin("POST", "/admin/v1/apps", "Create an app")
            .body::<a::CreateAppRequest>()
            .ok::<a::AppInfo>(201),
        admin("GET", "/admin/v1/apps", "List apps").ok::<a::ItemList<a::AppInfo>>(200),
        admin("GET", "/admin/v1/apps/{app}", "An app").ok::<a::AppInfo>(200),
        admin("POST", "/admin/v1/apps/{app}/keys", "Mint an app key")
            .body::<a::MintKeyRequest>()
            .ok::<keys::MintedKey>(201),
        admin("GET", "/admin/v1/apps/{app}/keys", "List an app's keys")
            .ok::<a::ItemList<keys::ApiKeyInfo>>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/keys/{key}",
            "Revoke an app key",
        )
        .ok::<keys::ApiKeyInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/keys/{key}/rotate",
            "Rotate an app key",
        )
        .body::<a::RotateAppKeyRequest>()
        .ok::<keys::MintedKey>(201),
        admin(
            "PUT",
            "/admin/v1/apps/{app}/idp",
            "Set the app's identity provider",
        )
        .body::<a::IdpRequest>()
        .ok::<a::IdpInfo>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/idp",
            "The app's identity provider",
        )
        .ok::<a::IdpInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/idp/events-secret",
            "Generate or rotate the secret inbound IdP events are signed with (shown once)",
        )
        .body::<alter_proto::idp_events::RotateIdpEventSecretRequest>()
        .ok::<alter_proto::idp_events::IdpEventSecretInfo>(201),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/idp/events-secret/previous",
            "End the previous IdP event secret now (only the current one verifies)",
        )
        .ok::<alter_proto::idp_events::IdpEventSecretState>(200),
        Operation {
            body_note: Some(
                "JSON, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); see docs/idp-events.md.",
            ),
            ..operation(
                "POST",
                "/idp/v1/apps/{app}/events",
                Public,
                "Receive an identity-provider lifecycle event (authenticated by its signature)",
            )
            .body::<alter_proto::idp_events::IdpEvent>()
            .ok::<alter_proto::idp_events::IdpEventReceipt>(200)
        },
        admin(
            "PUT",
            "/admin/v1/apps/{app}/idp/sign-in",
            "Configure hosted sign-in",
        )
        .body::<signin::SignInRequest>()
        .ok::<signin::SignInInfo>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/idp/sign-in",
            "The hosted sign-in settings",
        )
        .ok::<signin::SignInInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/secrets",
            "Create a managed secret",
        )
        .body::<a::CreateSecretRequest>()
        .ok::<a::SecretInfo>(201),
        admin(
            "GET",
            "/admin/v1/apps/{app}/secrets",
            "List managed secrets",
        )
        .ok::<a::ItemList<a::SecretInfo>>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/secrets/{secret}",
            "A managed secret",
        )
        .ok::<a::SecretInfo>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/secrets/{secret}",
            "Delete a managed secret",
        )
        .query::<super::admin::Confirm>()
        .ok::<a::SecretInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/secrets/{secret}/rotate",
            "Replace a managed secret's value",
        )
        .body::<a::RotateSecretRequest>()
        .ok::<a::SecretInfo>(200),
        admin(
            "PUT",
            "/admin/v1/apps/{app}/secrets/{secret}/hosts",
            "Set a managed secret's allowed hosts",
        )
        .body::<a::SecretHostsRequest>()
        .ok::<a::SecretInfo>(200),
        admin(
            "GET",
            "/admin/v1/catalog/providers",
            "The built-in provider catalogue",
        )
        .ok::<providers::BuiltinProviderList>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/providers",
            "The app's OAuth providers",
        )
        .ok::<providers::ProviderList>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/providers/{provider}",
            "An OAuth provider",
        )
        .ok::<providers::ProviderInfo>(200),
        admin(
            "PUT",
            "/admin/v1/apps/{app}/providers/{provider}",
            "Configure an OAuth provider",
        )
        .body::<providers::ConfigureProviderRequest>()
        .ok::<providers::ProviderInfo>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/providers/{provider}",
            "Remove an OAuth provider",
        )
        .ok::<providers::ProviderInfo>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/provider-specs",
            "List provider API specs",
        )
        .query::<specs::SpecListQuery>()
        .ok::<specs::ProviderSpecList>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/provider-specs/{kind}/{provider}",
            "A provider API spec",
        )
        .ok::<specs::ProviderSpec>(200),
        Operation {
            body_note: Some(
                "The provider's OpenAPI document, as JSON (`application/json`) or YAML \
                 (`application/yaml`).",
            ),
            ..admin(
                "PUT",
                "/admin/v1/apps/{app}/provider-specs/{kind}/{provider}",
                "Import a provider API spec",
            )
            .query::<specs::ImportQuery>()
            .body::<Map<String, Value>>()
            .ok::<specs::ImportedSpec>(200)
        },
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/provider-specs/{kind}/{provider}",
            "Remove a provider API spec",
        )
        .ok::<specs::ProviderSpec>(200),
        admin("GET", "/admin/v1/apps/{app}/agents", "List agents")
            .query::<super::admin::AgentPage>()
            .ok::<agents::AgentList>(200),
        admin("GET", "/admin/v1/apps/{app}/agents/{agent}", "An agent")
            .ok::<agents::AgentInfo>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/agents/{agent}",
            "Delete an agent",
        )
        .ok::<agents::AgentInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/agents/{agent}/pause",
            "Pause an agent",
        )
        .ok::<agents::AgentInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/agents/{agent}/resume",
            "Resume an agent",
        )
        .ok::<agents::AgentInfo>(200),
        admin("GET", "/admin/v1/apps/{app}/grants", "List grants")
            .query::<super::admin::GrantQuery>()
            .ok::<grants::GrantList>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/grants/{grant}/revoke",
            "Revoke a grant",
        )
        .body::<a::RevokeRequest>()
        .ok::<grants::GrantList>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/grants/{grant}/scope-mismatch",
            "Clear a grant's scope-mismatch flag",
        )
        .ok::<grants::GrantList>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/grants/{grant}/delegations",
            "Delegate a grant to an agent",
        )
        .body::<a::CreateDelegationRequest>()
        .ok::<grants::DelegationResult>(201),
        admin("GET", "/admin/v1/apps/{app}/audit", "Read the audit log")
            .query::<a::AuditQuery>()
            .ok::<a::AuditPage>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/audit/checkpoint",
            "The audit chain's head",
        )
        .ok::<a::AuditCheckpointView>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/audit/verify",
            "Verify the audit chain",
        )
        .body::<a::VerifyAuditRequest>()
        .ok::<a::ChainReportView>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/traces/{trace_id}",
            "A trace's audit events and spans",
        )
        .ok::<alter_proto::spans::TraceView>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/policies/rules",
            "Add a policy rule",
        )
        .body::<policies::CreateRuleRequest>()
        .ok::<policies::RuleInfo>(201),
        admin(
            "GET",
            "/admin/v1/apps/{app}/policies/rules",
            "List policy rules",
        )
        .ok::<a::ItemList<policies::RuleInfo>>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/policies/rules/{rule}",
            "A policy rule",
        )
        .ok::<policies::RuleInfo>(200),
        admin(
            "PATCH",
            "/admin/v1/apps/{app}/policies/rules/{rule}",
            "Change a policy rule",
        )
        .body::<policies::UpdateRuleRequest>()
        .ok::<policies::RuleInfo>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/policies/rules/{rule}",
            "Remove a policy rule",
        )
        .ok::<policies::RuleInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/policies/what-if",
            "Replay the audit log under rules",
        )
        .body::<policies::WhatIfRequest>()
        .ok::<policies::WhatIfView>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/webhooks",
            "Add a webhook endpoint (its secret shown once)",
        )
        .body::<alter_proto::webhooks::CreateWebhookRequest>()
        .ok::<alter_proto::webhooks::WebhookWithSecretInfo>(201),
        admin(
            "GET",
            "/admin/v1/apps/{app}/webhooks",
            "List webhook endpoints",
        )
        .ok::<a::ItemList<alter_proto::webhooks::WebhookInfo>>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/webhooks/{webhook}",
            "A webhook endpoint",
        )
        .ok::<alter_proto::webhooks::WebhookInfo>(200),
        admin(
            "DELETE",
            "/admin/v1/apps/{app}/webhooks/{webhook}",
            "Remove a webhook endpoint",
        )
        .ok::<alter_proto::webhooks::WebhookInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/webhooks/{webhook}/rotate-secret",
            "Rotate a webhook endpoint's signing secret (the new one shown once)",
        )
        .body::<alter_proto::webhooks::RotateWebhookSecretRequest>()
        .ok::<alter_proto::webhooks::WebhookWithSecretInfo>(200),
        admin(
            "GET",
            "/admin/v1/apps/{app}/webhooks/{webhook}/deliveries",
            "A webhook endpoint's delivery log",
        )
        .query::<alter_proto::webhooks::DeliveryListQuery>()
        .ok::<a::ItemList<alter_proto::webhooks::WebhookDeliveryInfo>>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/webhooks/{webhook}/deliveries/{event}/replay",
            "Send a delivery again (same webhook-id)",
        )
        .ok::<alter_proto::webhooks::WebhookDeliveryInfo>(200),
        admin("GET", "/admin/v1/apps/{app}/approvals", "List approvals")
            .query::<super::approvals::ListQuery>()
            .ok::<a::ItemList<ap::ApprovalInfo>>(200),
        admin("GET", "/admin/v1/apps/{app}/approvals/{id}", "An approval")
            .ok::<ap::ApprovalInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/approvals/{id}/approve",
            "Approve a held call",
        )
        .body::<ap::DecideApprovalRequest>()
        .ok::<ap::ApprovalInfo>(200),
        admin(
            "POST",
            "/admin/v1/apps/{app}/approvals/{id}/deny",
            "Deny a held call",
        )
        .body::<ap::DecideApprovalRequest>()
        .ok::<ap::ApprovalInfo>(200),
        admin("GET", "/admin/v1/operators", "List portal operators")
            .ok::<a::ItemList<op::OperatorInfo>>(200),
        admin("POST", "/admin/v1/operators", "Add a portal operator")
            .body::<op::AddOperatorRequest>()
            .ok::<op::OperatorInfo>(201),
        admin(
            "DELETE",
            "/admin/v1/operators/{username}",
            "Remove a portal operator",
        )
        .ok::<Value>(200),
        admin(
            "PUT",
            "/admin/v1/operators/{username}/password",
            "Set a portal operator's password",
        )
        .body::<op::SetOperatorPasswordRequest>()
        .ok::<Value>(200),
        // The end-user API.
        user("GET", "/user/v1/apps/{app}/me", "The signed-in user").ok::<a::UserInfo>(200),
        user("GET", "/user/v1/apps/{app}/grants", "The user's grants")
            .query::<super::user::Page>()
            .ok::<grants::GrantList>(200),
        user(
            "POST",
            "/user/v1/apps/{app}/grants/{grant}/delegations",
            "Delegate one of the user's grants",
        )
        .body::<a::CreateDelegationRequest>()
        .ok::<grants::DelegationResult>(201),
        user(
            "GET",
            "/user/v1/apps/{app}/delegations",
            "The user's delegations",
        )
        .query::<super::user::Page>()
        .ok::<grants::GrantList>(200),
        user(
            "DELETE",
            "/user/v1/apps/{app}/delegations/{delegation}",
            "Revoke one of the user's delegations",
        )
        .ok::<grants::DelegationResult>(200),
        user(
            "GET",
            "/user/v1/apps/{app}/agents",
            "The app's agents, for delegating",
        )
        .query::<super::user::Page>()
        .ok::<Vec<a::AgentSummary>>(200),
        // Operations and discovery.
        operation("GET", "/healthz", Public, "Liveness").ok::<Value>(200),
        operation("GET", "/readyz", Public, "Readiness: the database answers").ok::<Value>(200),
        Operation {
            answers: vec![(200, Answer::Text)],
            ..admin("GET", "/metrics", "Prometheus metrics")
        },
        operation(
            "GET",
            "/.well-known/alter-identity-jwks.json",
            Public,
            "The keys identity assertions are signed with",
        )
        .ok::<signin::Jwks>(200),
        operation("GET", "/openapi.json", Public, "This document").ok::<Map<String, Value>>(200),
    ]
}

/// The document, for a server mounted at `base_path` (empty for the root).
pub fn document(base_path: &str) -> Value {
    // Request bodies are read by serde's deserialising rules, answers written by its
    // serialising ones; request-side schemas are parked under a temporary path and merged in
    // at the end.
    let settings = |path: &'static str| {
        SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = path.into();
            s.meta_schema = None;
        })
    };
    let mut input = settings(INPUT_DEFS).for_deserialize().into_generator();
    let mut output = settings("/components/schemas")
        .for_serialize()
        .into_generator();
    let error = output.subschema_for::<ErrorBody>();

    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in operations() {
        let entry = describe(&op, &mut input, &mut output);
        paths
            .entry(op.path)
            .or_default()
            .insert(op.method.to_ascii_lowercase(), entry);
    }

    let mut schemas = output.take_definitions(true);
    let mut renames = Map::new();
    for (name, schema) in input.take_definitions(true) {
        let target = match schemas.get(&name) {
            Some(existing) if *existing == schema => name.clone(),
            Some(_) => format!("{name}Input"),
            None => name.clone(),
        };
        renames.insert(name, Value::String(target.clone()));
        schemas.insert(target, schema);
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Alter",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": if base_path.is_empty() { "/" } else { base_path } }],
        "tags": [
            { "name": "sdk", "description": "The wire protocol of the official client: every call signed (HMAC-SHA256) with an API key." },
            { "name": "admin", "description": "The operator API: the admin token as a bearer token." },
            { "name": "user", "description": "The end-user API: the user's IdP JWT as a bearer token." },
            { "name": "meta", "description": "Health, metrics and discovery." },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "An error: a stable code in `error`, a message, maybe a hint and details.",
                    "content": { "application/json": { "schema": error } },
                },
            },
            "securitySchemes": {
                "signedRequest": {
                    "type": "apiKey",
                    "in": "header",
                    "name": headers::API_KEY,
                    "description": SIGNING,
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator admin token (`alter_admin_…`).",
                },
                "userToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT of the app's identity provider.",
                },
            },
            "parameters": signing_parameters(),
        },
    });
    rename_refs(&mut document, &renames);
    document["components"]["schemas"]["ErrorBody"]["properties"]["error"]["description"] =
        json!(ERROR_CODE);
    document
}

/// The `GET /openapi.json` handler: the document is rendered once, when the router is built.
pub(crate) fn serve(
    base_path: &str,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    use axum::response::IntoResponse;
    let body = axum::body::Bytes::from(document(base_path).to_string());
    move || {
        std::future::ready(
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.clone(),
            )
                .into_response(),
        )
    }
}

const ERROR_CODE: &str = "A stable machine-readable code (`invalid_request`, `invalid_key`, \
    `insufficient_scope`, `grant_not_found`, …); the table of codes, statuses and the official \
    client's exceptions is `tests/compat/fixtures/error_table.json`.";

/// Where request-side schemas are parked until they are merged into `components/schemas`.
const INPUT_DEFS: &str = "/components/x-input";

const DESCRIPTION: &str = "Alter's JSON API: `/sdk/*` (the wire protocol of the official \
    client), `/admin/v1/*` (operators), `/user/v1/*` (end users), health and metrics. Browser \
    pages (Connect, Wallet, portal) are not described. Every error answer is \
    `{\"error\": code, \"message\": text, …}` with a stable code.";

const SIGNING: &str = "An API key (`alter_rk_…`, `alter_ak_…`, `alter_dk_…`) in `x-api-key`, \
    and a signature of the request with the key's signing key: `x-alter-timestamp` (Unix \
    seconds), `x-alter-nonce` (32 hex), `x-alter-content-sha256` (hex SHA-256 of the body) and \
    `x-alter-signature` (hex HMAC-SHA256 of the canonical request; `x-alter-signature-v2` too \
    when identity headers are bound); see `components/parameters`. An unsigned or wrongly signed request is refused with \
    401 `invalid_key`.";

/// The headers of a signed request: the signature (the `signedRequest` scheme's) and the
/// optional inputs it binds.
fn signing_parameters() -> Value {
    let header = |name: &str, required: bool, pattern: Option<&str>, description: &str| {
        let mut schema = json!({ "type": "string" });
        if let Some(pattern) = pattern {
            schema["pattern"] = json!(pattern);
        }
        json!({
            "name": name,
            "in": "header",
            "required": required,
            "description": description,
            "schema": schema,
        })
    };
    json!({
        "timestamp": header(headers::TIMESTAMP, true, Some("^[0-9]{1,12}$"), "Unix seconds of the signature."),
        "nonce": header(headers::NONCE, true, Some("^[0-9a-f]{32}$"), "A fresh random nonce."),
        "contentSha256": header(headers::CONTENT_SHA256, true, Some("^[0-9a-f]{64}$"), "Hex SHA-256 of the body bytes."),
        "signature": header(headers::SIGNATURE, true, Some("^[0-9a-f]{64}$"), "Hex HMAC-SHA256 of the canonical request."),
        "signatureV2": header(headers::SIGNATURE_V2, false, Some("^[0-9a-f]{64}$"), "The signature over the identity headers too."),
        "scopeConstraints": header(headers::SCOPE_CONSTRAINTS, false, None, "Scopes the call is narrowed to, comma-separated."),
        "requestRule": header(headers::REQUEST_RULE, false, None, "A request rule (base64url JSON) the call must satisfy."),
        "caller": header(
            headers::CALLER,
            false,
            Some("^[ -~]{0,255}$"),
            "Who is calling, for audit and agent binding: printable ASCII (empty reads as absent).",
        ),
        "callerType": {
            "name": headers::CALLER_TYPE,
            "in": "header",
            "required": false,
            "description": "What the caller is (empty reads as absent).",
            "schema": { "type": "string", "enum": ["agent", "service", ""] },
        },
        "actorId": header(headers::ACTOR_ID, false, None, "The actor id an earlier answer gave."),
        "context": header(headers::CONTEXT, false, None, "Audit context, compact JSON."),
    })
}

/// One operation object.
fn describe(op: &Operation, input: &mut SchemaGenerator, output: &mut SchemaGenerator) -> Value {
    let sdk_route = SDK_ROUTES
        .iter()
        .find(|r| r.method == op.method && r.path == op.path);
    let mut parameters: Vec<Value> = path_parameters(op.path)
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": { "type": "string" },
            })
        })
        .collect();
    if op.auth == Auth::Signed {
        // The signature headers themselves are the security scheme's (a generated value
        // could never be a valid signature); these are the optional signed inputs.
        for name in [
            "scopeConstraints",
            "requestRule",
            "caller",
            "callerType",
            "actorId",
            "context",
        ] {
            parameters.push(json!({ "$ref": format!("#/components/parameters/{name}") }));
        }
    }
    if op.idempotent {
        parameters.push(json!({
            "name": headers::IDEMPOTENCY_KEY,
            "in": "header",
            "required": false,
            "description": "A retry with the same key and body answers what the first call did.",
            "schema": { "type": "string", "pattern": "^[\\t -~]*$" },
        }));
    }
    if let Some(query) = op.query {
        parameters.extend(query_parameters(query(input)));
    }

    let mut responses = Map::new();
    for (status, answer) in &op.answers {
        let content = match answer {
            Answer::Json(schema) => {
                Some(json!({ "application/json": { "schema": schema(output) } }))
            }
            Answer::Text => Some(json!({ "text/plain": { "schema": { "type": "string" } } })),
            Answer::Empty => None,
        };
        let mut response = json!({ "description": reason(*status) });
        if let Some(content) = content {
            response["content"] = content;
        }
        responses.insert(status.to_string(), response);
    }
    let error = json!({ "$ref": "#/components/responses/Error" });
    if op.auth != Auth::Public {
        responses.insert("401".into(), error.clone());
    }
    responses.insert("4XX".into(), error.clone());
    responses.insert("5XX".into(), error);

    let (tag, security) = match op.auth {
        Auth::Signed => ("sdk", json!([{ "signedRequest": [] }])),
        Auth::Admin => ("admin", json!([{ "adminToken": [] }])),
        Auth::User => ("user", json!([{ "userToken": [] }])),
        Auth::Public => ("meta", json!([])),
    };
    let mut entry = json!({
        "operationId": operation_id(op),
        "summary": op.summary,
        "tags": [tag],
        "security": security,
        "responses": responses,
    });
    if !parameters.is_empty() {
        entry["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = op.body {
        // An empty body reads as `{}` (see `crate::json`), so no body is ever required.
        let request = json!({
            "required": false,
            "description": op.body_note.unwrap_or("JSON; an empty body reads as `{}`."),
            "content": { "application/json": { "schema": body(input) } },
        });
        entry["requestBody"] = request;
    }
    if let Some(route) = sdk_route {
        entry["description"] = json!(scope_note(route));
        entry["x-alter-scope"] = json!(route.scope);
    }
    entry
}

/// The scope an `/sdk/*` route needs, in words.
fn scope_note(route: &SdkRoute) -> String {
    match (route.scope, route.alternatives) {
        (None, _) => "Any valid signed request.".to_owned(),
        (Some(scope), []) => format!("Needs the scope `{scope}`."),
        (Some(scope), others) => format!(
            "Needs the scope `{scope}` (or any of: {}).",
            others
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The `{name}` segments of a path template.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// A query struct's fields as query parameters. A query string cannot say `null`, so an
/// optional field is just not required.
fn query_parameters(schema: Schema) -> Vec<Value> {
    let value = schema.to_value();
    let required: Vec<&str> = value["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = value["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    schema["type"] = types[0].clone();
                }
            }
            if schema.get("default") == Some(&Value::Null) {
                schema.as_object_mut().map(|s| s.remove("default"));
            }
            json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": schema,
            })
        })
        .collect()
}

fn operation_id(op: &Operation) -> String {
    let path: String = op
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut id = format!("{}{}", op.method.to_ascii_lowercase(), path);
    while id.contains("__") {
        id = id.replace("__", "_");
    }
    id.trim_end_matches('_').to_owned()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: the call is held for a human approval",
        204 => "Done; no body",
        _ => "Answer",
    }
}

/// Points request-side `$ref`s at the names their schemas got in `components/schemas`.
fn rename_refs(value: &mut Value, renames: &Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference
                    .strip_prefix('#')
                    .and_then(|r| r.strip_prefix(INPUT_DEFS))
                    .and_then(|r| r.strip_prefix('/'))
                && let Some(Value::String(target)) = renames.get(name)
            {
                *reference = format!("#/components/schemas/{target}");
            }
            for child in map.values_mut() {
                rename_refs(child, renames);
            }
        }
        Value::Array(items) => {
            for child in items {
                rename_refs(child, renames);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let document = document("");
        let mut refs = Vec::new();
        collect_refs(&document, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            let pointer = reference.strip_prefix('#').unwrap();
            assert!(
                document.pointer(pointer).is_some(),
                "dangling reference {reference}"
            );
        }
        assert_eq!(document["openapi"], "3.1.0");
    }

    #[test]
    fn every_sdk_route_is_documented_and_nothing_else_under_sdk() {
        let document = document("");
        let mut documented = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            if path.starts_with("/sdk/") {
                for method in item.as_object().unwrap().keys() {
                    documented.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        let mut routes: Vec<(String, String)> = SDK_ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
