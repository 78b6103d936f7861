//! Apps and what they own: keys (a minted or rotated key's plaintext is shown once, on the
//! answer to the form), managed secrets (never their value; rotate, allowed hosts, delete),
//! agents (pause and resume, delete) and their keys (mint, revoke), the identity provider and the
//! OAuth providers (configure, delete). Each form calls the same `Vault` function as its
//! `/admin/v1` twin, with the admin API's conversions (`routes::providers::configure_request`).

use std::collections::BTreeMap;

use alter_core::Error;
use alter_core::agents::{AgentStatus, AgentUpdate};
use alter_core::identity::IdpSettings;
use alter_core::ids::AppId;
use alter_core::keys::{MintKey, NewKey, Overlap};
use alter_core::secrets::{NewSecret, SecretLimits};
use alter_core::subject::Subject;
use alter_crypto::{ExposeSecret, SecretString};
use alter_proto::providers::{ConfigureProviderRequest, EndpointsBody};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::super::session::Fields;
use super::{
    AppScope, AppSection, Done, Form, Place, PortalUi, Session, actor, app_base, app_change,
    app_form, app_page, base, done, failure, portal_page, viewer, words,
};
use crate::routes::keys::key_info;
use crate::routes::views;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/apps", get(apps).post(create_app))
        .route("/portal/apps/{app}", get(keys))
        .route("/portal/apps/{app}/keys", post(mint_key))
        .route("/portal/apps/{app}/keys/{key}/revoke", post(revoke_key))
        .route("/portal/apps/{app}/keys/{key}/rotate", post(rotate_key))
        .route(
            "/portal/apps/{app}/secrets",
            get(secrets).post(create_secret),
        )
        .route(
            "/portal/apps/{app}/secrets/{secret}/rotate",
            post(rotate_secret),
        )
        .route(
            "/portal/apps/{app}/secrets/{secret}/hosts",
            post(set_secret_hosts),
        )
        .route(
            "/portal/apps/{app}/secrets/{secret}/delete",
            post(delete_secret),
        )
        .route("/portal/apps/{app}/agents", get(agents))
        .route(
            "/portal/apps/{app}/agents/{agent}/status",
            post(set_agent_status),
        )
        .route(
            "/portal/apps/{app}/agents/{agent}/delete",
            post(delete_agent),
        )
        .route(
            "/portal/apps/{app}/agents/{agent}/keys",
            post(mint_agent_key),
        )
        .route(
            "/portal/apps/{app}/agents/{agent}/keys/{key}/revoke",
            post(revoke_agent_key),
        )
        .route("/portal/apps/{app}/identity", get(identity).post(set_idp))
        .route("/portal/apps/{app}/providers", post(configure_provider))
        .route(
            "/portal/apps/{app}/providers/{provider}/delete",
            post(delete_provider),
        )
}

// ---- apps ------------------------------------------------------------------------------

/// `GET /portal/apps`.
async fn apps(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Query(done): Query<Done>,
) -> Response {
    let op = match viewer(&state, &session).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let apps = match state.vault.list_apps().await {
        Ok(apps) => apps,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct Row {
        id: String,
        name: String,
        created_at: String,
        href: String,
    }
    #[derive(Serialize)]
    struct Context {
        apps: Vec<Row>,
        action: String,
    }
    let rows = apps
        .iter()
        .map(|app| Row {
            id: app.id.to_string(),
            name: app.name.clone(),
            created_at: app.created_at.to_rfc3339(),
            href: app_base(&state, app.id),
        })
        .collect();
    portal_page(
        &state,
        &op,
        Place::Portal("/apps"),
        "portal/apps.html",
        "Apps",
        done.notice(),
        Context {
            apps: rows,
            action: format!("{}/apps", base(&state)),
        },
    )
    .into_response()
}

/// `POST /portal/apps`: `name`.
async fn create_app(State(state): State<AppState>, form: Form<PortalUi>) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let name = form.fields.text("name").unwrap_or_default();
    match op.act(state.vault.create_app(name)).await {
        Ok(app) => done(app_base(&state, app.id), "app_created"),
        Err(e) => failure(&state, e),
    }
}

// ---- keys ------------------------------------------------------------------------------

const KEYS: AppSection = AppSection {
    path: "",
    template: "portal/keys.html",
    title: "Keys",
};

/// A key just minted (or the successor of a rotated one): its plaintext, shown on this one
/// answer and never again.
#[derive(Serialize)]
struct MintedView {
    id: String,
    name: String,
    key_type: String,
    api_key: String,
    /// For a rotation: what happens to the key it replaces.
    replaces: Option<String>,
}

impl MintedView {
    fn of(new: &NewKey, replaces: Option<String>) -> MintedView {
        MintedView {
            id: new.key.id.to_string(),
            name: new.key.name.clone(),
            key_type: new.key.key_type.as_str().to_owned(),
            api_key: new.plaintext.expose_secret().to_owned(),
            replaces,
        }
    }
}

#[derive(Serialize)]
struct KeysPage {
    keys: Vec<alter_proto::keys::ApiKeyInfo>,
    minted: Option<MintedView>,
}

async fn keys_page(
    state: &AppState,
    app: AppId,
    minted: Option<MintedView>,
) -> Result<KeysPage, Error> {
    let keys = state.vault.list_app_keys(app).await?;
    Ok(KeysPage {
        keys: keys.iter().map(key_info).collect(),
        minted,
    })
}

/// `GET /portal/apps/{app}`: the app's keys, and the form that mints one.
async fn keys(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    app_page(
        &state,
        &session,
        &app,
        &KEYS,
        done.notice(),
        |state, app| keys_page(state, app, None),
    )
    .await
}

/// Answers a form that made a key with the keys page showing its plaintext (no redirect: a
/// reload cannot show it again).
async fn made_key(
    state: &AppState,
    form: &Form<PortalUi>,
    app: &str,
    make: impl AsyncFnOnce(&AppScope, &Fields) -> Result<MintedView, Error>,
) -> Response {
    let scope = match app_form(state, form, app).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    let made = async {
        let minted = scope.op.act(make(&scope, &form.fields)).await?;
        keys_page(state, scope.app, Some(minted)).await
    };
    match made.await {
        Ok(page) => scope.render(state, &KEYS, None, page),
        Err(e) => failure(state, e),
    }
}

/// An optional whole number of seconds from a field.
fn seconds(fields: &Fields, name: &str) -> Result<Option<i64>, Error> {
    fields
        .text(name)
        .map(|text| {
            text.parse::<i64>()
                .map_err(|_| Error::Invalid(format!("{name} must be a number of seconds")))
        })
        .transpose()
}

/// `POST /portal/apps/{app}/keys`: `name`, `key_type` (rk, ak, pk), `scopes` (space or comma
/// separated; empty: every scope), `expires_in` (seconds, optional).
async fn mint_key(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    made_key(&state, &form, &app, async |scope, fields| {
        let scopes = words(fields.text("scopes"));
        let request = MintKey {
            name: fields.text("name").map(str::to_owned),
            key_type: fields.text("key_type").map(str::to_owned),
            scopes: (!scopes.is_empty()).then_some(scopes),
            cidr_allowlist: None,
            expires_in: seconds(fields, "expires_in")?,
        };
        let new = state.vault.mint_app_key(scope.app, request).await?;
        Ok(MintedView::of(&new, None))
    })
    .await
}

/// `POST /portal/apps/{app}/keys/{key}/rotate`: `grace_seconds` (optional, 0 by default): a
/// new key with the same name, type and scopes; the old one keeps working for the grace
/// period, then stops.
async fn rotate_key(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    made_key(&state, &form, &app, async |scope, fields| {
        let key = crate::routes::id(&key)?;
        let grace = seconds(fields, "grace_seconds")?;
        let subject = Subject::Operator { app: scope.app };
        let new = state
            .vault
            .rotate_key(&subject, key, Overlap::Seconds(grace))
            .await?;
        let replaces = match grace.unwrap_or(0) {
            0 => "The key it replaces stopped working now.".to_owned(),
            grace => format!(
                "The key it replaces keeps working until {} (a grace of {grace} seconds), then stops.",
                state.vault.now().plus_seconds(grace).to_rfc3339()
            ),
        };
        Ok(MintedView::of(&new, Some(replaces)))
    })
    .await
}

/// `POST /portal/apps/{app}/keys/{key}/revoke`: the operator's revoke, which (as on the
/// admin API) always forces.
async fn revoke_key(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        KEYS.path,
        "key_revoked",
        |c| async move {
            let subject = Subject::Operator { app: c.app };
            let key = crate::routes::id(&key)?;
            c.state.vault.revoke_key(&subject, key, true).await
        },
    )
    .await
}

// ---- managed secrets -------------------------------------------------------------------

const SECRETS: AppSection = AppSection {
    path: "/secrets",
    template: "portal/secrets.html",
    title: "Managed secrets",
};

/// `GET /portal/apps/{app}/secrets`.
async fn secrets(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    #[derive(Serialize)]
    struct SecretsPage {
        secrets: Vec<alter_proto::admin::SecretInfo>,
    }
    app_page(
        &state,
        &session,
        &app,
        &SECRETS,
        done.notice(),
        |state, app| async move {
            let secrets = state.vault.list_secrets(app).await?;
            Ok(SecretsPage {
                secrets: secrets.iter().map(views::secret_info).collect(),
            })
        },
    )
    .await
}

/// `POST /portal/apps/{app}/secrets`: `name`, `secret_type` (bearer, header, basic, query),
/// `header` / `param` (for header and query), `allowed_hosts` (space, comma or line
/// separated), `value`.
async fn create_secret(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        SECRETS.path,
        "secret_created",
        |c| async move {
            let fields = c.fields;
            let new = NewSecret {
                name: fields.text("name").unwrap_or_default().to_owned(),
                secret_type: fields.text("secret_type").unwrap_or("bearer").to_owned(),
                header: fields.text("header").map(str::to_owned),
                param: fields.text("param").map(str::to_owned),
                rules: Vec::new(),
                allowed_hosts: words(fields.text("allowed_hosts")),
                limits: SecretLimits::default(),
                value: SecretString::from(fields.get("value").unwrap_or_default().to_owned()),
            };
            c.state.vault.create_secret(c.app, new).await
        },
    )
    .await
}

/// `POST /portal/apps/{app}/secrets/{secret}/rotate`: `value`. Grants keep their ids.
async fn rotate_secret(
    State(state): State<AppState>,
    Path((app, secret)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        SECRETS.path,
        "secret_rotated",
        |c| async move {
            let value = SecretString::from(c.fields.get("value").unwrap_or_default().to_owned());
            c.state.vault.rotate_secret(c.app, &secret, value).await
        },
    )
    .await
}

/// `POST /portal/apps/{app}/secrets/{secret}/hosts`: `allowed_hosts` (space, comma or line
/// separated; empty: any host) replace the secret's.
async fn set_secret_hosts(
    State(state): State<AppState>,
    Path((app, secret)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        SECRETS.path,
        "secret_hosts_saved",
        |c| async move {
            let hosts = words(c.fields.text("allowed_hosts"));
            c.state.vault.set_secret_hosts(c.app, &secret, hosts).await
        },
    )
    .await
}

/// `POST /portal/apps/{app}/secrets/{secret}/delete`: `confirm` repeats the secret's slug;
/// every grant of it is revoked.
async fn delete_secret(
    State(state): State<AppState>,
    Path((app, secret)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        SECRETS.path,
        "secret_deleted",
        |c| async move {
            let confirm = c.fields.text("confirm").unwrap_or_default();
            c.state.vault.delete_secret(c.app, &secret, confirm).await
        },
    )
    .await
}

// ---- agents ----------------------------------------------------------------------------

const AGENTS: AppSection = AppSection {
    path: "/agents",
    template: "portal/agents.html",
    title: "Agents",
};

#[derive(Serialize)]
struct AgentRow {
    agent: alter_proto::agents::AgentInfo,
    keys: Vec<alter_proto::keys::ApiKeyInfo>,
}

#[derive(Serialize)]
struct AgentsPage {
    agents: Vec<AgentRow>,
    /// A key just minted for an agent, shown once.
    minted: Option<MintedView>,
}

async fn agents_page(
    state: &AppState,
    app: AppId,
    minted: Option<MintedView>,
) -> Result<AgentsPage, Error> {
    let subject = Subject::Operator { app };
    let (agents, _) = state.vault.list_agents(&subject, true, 200, 0).await?;
    let keys = state.vault.list_app_keys(app).await?;
    Ok(AgentsPage {
        agents: agents
            .iter()
            .map(|agent| AgentRow {
                agent: views::agent_info(agent),
                keys: keys
                    .iter()
                    .filter(|k| k.agent_id == Some(agent.id))
                    .map(key_info)
                    .collect(),
            })
            .collect(),
        minted,
    })
}

/// `GET /portal/apps/{app}/agents`: the app's agents and each one's keys.
async fn agents(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    app_page(
        &state,
        &session,
        &app,
        &AGENTS,
        done.notice(),
        |state, app| agents_page(state, app, None),
    )
    .await
}

/// `POST /portal/apps/{app}/agents/{agent}/status`: `status` is `inactive` (pause: its keys
/// are refused until it is resumed) or `active` (resume), as the admin API's pause and resume
/// set it.
async fn set_agent_status(
    State(state): State<AppState>,
    Path((app, agent)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let status = form.fields.get("status");
    let notice = if status == Some("active") {
        "agent_resumed"
    } else {
        "agent_paused"
    };
    app_change(&state, &form, &app, AGENTS.path, notice, |c| async move {
        let status = match status {
            Some("active") => AgentStatus::Active,
            Some("inactive") => AgentStatus::Inactive,
            _ => return Err(Error::Invalid("status must be active or inactive".into())),
        };
        let update = AgentUpdate {
            status: Some(status.as_str().to_owned()),
            ..AgentUpdate::default()
        };
        let subject = Subject::Operator { app: c.app };
        let agent = crate::routes::id(&agent)?;
        c.state.vault.update_agent(&subject, agent, update).await
    })
    .await
}

/// `POST /portal/apps/{app}/agents/{agent}/delete`: terminal; its keys and delegations are
/// revoked.
async fn delete_agent(
    State(state): State<AppState>,
    Path((app, agent)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        AGENTS.path,
        "agent_deleted",
        |c| async move {
            let subject = Subject::Operator { app: c.app };
            let agent = crate::routes::id(&agent)?;
            c.state.vault.delete_agent(&subject, agent).await
        },
    )
    .await
}

/// `POST /portal/apps/{app}/agents/{agent}/keys`: another key for the agent, answered with
/// the agents page showing it once.
async fn mint_agent_key(
    State(state): State<AppState>,
    Path((app, agent)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let scope = match app_form(&state, &form, &app).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    let made = async {
        let subject = Subject::Operator { app: scope.app };
        let agent = crate::routes::id(&agent)?;
        let new = scope
            .op
            .act(state.vault.mint_agent_key(&subject, agent))
            .await?;
        agents_page(&state, scope.app, Some(MintedView::of(&new, None))).await
    };
    match made.await {
        Ok(page) => scope.render(&state, &AGENTS, None, page),
        Err(e) => failure(&state, e),
    }
}

/// `POST /portal/apps/{app}/agents/{agent}/keys/{key}/revoke`: `force` (a checkbox) allows
/// revoking the agent's last working key.
async fn revoke_agent_key(
    State(state): State<AppState>,
    Path((app, agent, key)): Path<(String, String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        AGENTS.path,
        "agent_key_revoked",
        |c| async move {
            let subject = Subject::Operator { app: c.app };
            let (agent, key) = (crate::routes::id(&agent)?, crate::routes::id(&key)?);
            let force = c.fields.get("force") == Some("yes");
            c.state
                .vault
                .revoke_agent_key(&subject, agent, key, force)
                .await
        },
    )
    .await
}

// ---- identity and providers -------------------------------------------------------------

const IDENTITY: AppSection = AppSection {
    path: "/identity",
    template: "portal/identity.html",
    title: "Identity & providers",
};

/// `GET /portal/apps/{app}/identity`: the identity provider and the OAuth providers.
async fn identity(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    #[derive(Serialize)]
    struct ProviderRow {
        id: String,
        display_name: String,
        client_id: String,
        scopes: Vec<String>,
        updated_at: String,
    }
    #[derive(Serialize)]
    struct CatalogueEntry {
        id: String,
        display_name: String,
    }
    #[derive(Serialize)]
    struct IdentityPage {
        idp: Option<alter_proto::admin::IdpInfo>,
        providers: Vec<ProviderRow>,
        catalogue: Vec<CatalogueEntry>,
    }
    app_page(
        &state,
        &session,
        &app,
        &IDENTITY,
        done.notice(),
        |state, app| async move {
            let idp = match state.vault.get_idp(app).await {
                Ok(idp) => Some(views::idp_info(&idp)),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let providers = state.vault.list_providers(app).await?;
            Ok(IdentityPage {
                idp,
                providers: providers
                    .iter()
                    .map(|p| ProviderRow {
                        id: p.id.clone(),
                        display_name: p.display_name.clone(),
                        client_id: p.client_id.clone(),
                        scopes: p.scopes.clone(),
                        updated_at: p.updated_at.to_rfc3339(),
                    })
                    .collect(),
                catalogue: alter_upstream::catalog::catalog()
                    .iter()
                    .map(|p| CatalogueEntry {
                        id: p.id.clone(),
                        display_name: p.display_name.clone(),
                    })
                    .collect(),
            })
        },
    )
    .await
}

/// `POST /portal/apps/{app}/identity`: sets (or replaces) the identity provider: `issuer`,
/// `audiences`, `jwks_url`, `algorithms` (empty: the service's default), `subject_claim`,
/// `groups_claim`, `email_claim`, `name_claim`.
async fn set_idp(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        IDENTITY.path,
        "idp_saved",
        |c| async move {
            let fields = c.fields;
            let text = |name: &str| fields.text(name).map(str::to_owned);
            let settings = IdpSettings {
                issuer: text("issuer").unwrap_or_default(),
                audiences: words(fields.text("audiences")),
                jwks_url: text("jwks_url"),
                jwks_inline: None,
                algorithms: words(fields.text("algorithms")),
                subject_claim: text("subject_claim"),
                groups_claim: text("groups_claim"),
                email_claim: text("email_claim"),
                name_claim: text("name_claim"),
                leeway_seconds: None,
            };
            c.state.vault.set_idp(c.app, settings).await
        },
    )
    .await
}

/// The admin API's configure body from the provider form: `display_name`, `client_id`,
/// `client_secret` (empty: keep the stored one), `scopes` (empty: the catalogue's defaults),
/// `params` (a catalogue provider's placeholders, `name=value` words), and for a custom
/// provider `issuer` (to discover the rest) or `authorize_url` and `token_url`, with
/// `revoke_url`, `refresh` (none, rotating, non_rotating) and `no_pkce`.
fn provider_request(fields: &Fields) -> Result<ConfigureProviderRequest, Error> {
    let text = |name: &str| fields.text(name).map(str::to_owned);
    let scopes = words(fields.text("scopes"));
    let mut params = BTreeMap::new();
    for pair in words(fields.text("params")) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("params: {pair:?} is not name=value")))?;
        params.insert(name.to_owned(), value.to_owned());
    }
    let custom = ["issuer", "authorize_url", "token_url"]
        .iter()
        .any(|name| fields.text(name).is_some());
    let endpoints = custom.then(|| EndpointsBody {
        issuer: text("issuer"),
        authorize_url: text("authorize_url"),
        token_url: text("token_url"),
        revoke_url: text("revoke_url"),
        refresh: text("refresh"),
        pkce: fields.get("no_pkce").map(|_| false),
        ..EndpointsBody::default()
    });
    Ok(ConfigureProviderRequest {
        display_name: text("display_name"),
        client_id: text("client_id").unwrap_or_default(),
        client_secret: fields
            .get("client_secret")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        scopes: (!scopes.is_empty()).then_some(scopes),
        endpoints,
        params: (!params.is_empty()).then_some(params),
        expected_version: None,
    })
}

/// `POST /portal/apps/{app}/providers`: configures (or replaces) the OAuth provider
/// `provider_id` (a catalogue id, or any id with a custom provider's endpoints).
async fn configure_provider(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        IDENTITY.path,
        "provider_saved",
        |c| async move {
            let id = c.fields.text("provider_id").unwrap_or_default().to_owned();
            let body = provider_request(c.fields)?;
            let request = crate::routes::providers::configure_request(c.state, id, body).await?;
            c.state.vault.configure_provider(c.app, request).await
        },
    )
    .await
}

/// `POST /portal/apps/{app}/providers/{provider}/delete`: refused while connections made
/// with it are live.
async fn delete_provider(
    State(state): State<AppState>,
    Path((app, provider)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        IDENTITY.path,
        "provider_deleted",
        |c| async move { c.state.vault.delete_provider(c.app, &provider).await },
    )
    .await
}
