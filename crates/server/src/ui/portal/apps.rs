//! Apps and what they own: keys (a minted key's plaintext is shown once, on the answer to the
//! mint), managed secrets (never their value), agents and their keys, the identity provider and
//! the OAuth providers.

use alter_core::identity::IdpSettings;
use alter_core::ids::AppId;
use alter_core::keys::MintKey;
use alter_core::secrets::{NewSecret, SecretLimits};
use alter_core::subject::Subject;
use alter_crypto::{ExposeSecret, SecretString};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::{
    Done, Form, Op, Place, PortalUi, Session, actor, app_base, app_id, base, done, failure,
    portal_page, viewer,
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
        .route(
            "/portal/apps/{app}/secrets",
            get(secrets).post(create_secret),
        )
        .route(
            "/portal/apps/{app}/secrets/{secret}/rotate",
            post(rotate_secret),
        )
        .route("/portal/apps/{app}/agents", get(agents))
        .route("/portal/apps/{app}/identity", get(identity).post(set_idp))
}

/// An app's page header: its id and name.
#[derive(Debug, Serialize)]
pub(crate) struct AppHeader {
    id: String,
    name: String,
    base: String,
}

/// The app of an app page, or the page saying it does not exist.
pub(crate) async fn app_header(
    state: &AppState,
    app: &str,
) -> Result<(AppId, AppHeader), Response> {
    let app = app_id(state, app)?;
    match state.vault.get_app(app).await {
        Ok(found) => Ok((
            app,
            AppHeader {
                id: found.id.to_string(),
                name: found.name,
                base: app_base(state, app),
            },
        )),
        Err(e) => Err(failure(state, e)),
    }
}

/// The signed-in operator and the app of an app page view.
pub(crate) async fn app_view(
    state: &AppState,
    session: &Session<PortalUi>,
    app: &str,
) -> Result<(Op, AppId, AppHeader), Response> {
    let op = viewer(state, session).await?;
    let (app, header) = app_header(state, app).await?;
    Ok((op, app, header))
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

/// `GET /portal/apps/{app}`: the app's keys, and the form that mints one.
async fn keys(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let (op, app, header) = match app_view(&state, &session, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let keys = match state.vault.list_app_keys(app).await {
        Ok(keys) => keys,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct Context {
        app: AppHeader,
        keys: Vec<alter_proto::keys::ApiKeyInfo>,
        minted: Option<MintedView>,
    }
    portal_page(
        &state,
        &op,
        Place::App(app, ""),
        "portal/keys.html",
        "Keys",
        done.notice(),
        Context {
            app: header,
            keys: keys.iter().map(key_info).collect(),
            minted: None,
        },
    )
    .into_response()
}

/// A key just minted: its plaintext, shown on this one answer and never again.
#[derive(Serialize)]
struct MintedView {
    id: String,
    name: String,
    key_type: String,
    api_key: String,
}

/// `POST /portal/apps/{app}/keys`: `name`, `key_type` (rk, ak, pk), `scopes` (space or comma
/// separated; empty: every scope), `expires_in` (seconds, optional). Answers the keys page with
/// the new key's plaintext (no redirect: a reload cannot show it again).
async fn mint_key(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (app, header) = match super::apps::app_header(&state, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let fields = &form.fields;
    let scopes: Vec<String> = fields
        .text("scopes")
        .unwrap_or_default()
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let expires_in = match fields.text("expires_in").map(str::parse::<i64>) {
        None => None,
        Some(Ok(seconds)) => Some(seconds),
        Some(Err(_)) => {
            return failure(
                &state,
                alter_core::Error::Invalid("expires_in must be a number of seconds".into()),
            );
        }
    };
    let request = MintKey {
        name: fields.text("name").map(str::to_owned),
        key_type: fields.text("key_type").map(str::to_owned),
        scopes: (!scopes.is_empty()).then_some(scopes),
        cidr_allowlist: None,
        expires_in,
    };
    let new = match op.act(state.vault.mint_app_key(app, request)).await {
        Ok(new) => new,
        Err(e) => return failure(&state, e),
    };
    let keys = match state.vault.list_app_keys(app).await {
        Ok(keys) => keys,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct Context {
        app: AppHeader,
        keys: Vec<alter_proto::keys::ApiKeyInfo>,
        minted: Option<MintedView>,
    }
    portal_page(
        &state,
        &op,
        Place::App(app, ""),
        "portal/keys.html",
        "Keys",
        None,
        Context {
            app: header,
            keys: keys.iter().map(key_info).collect(),
            minted: Some(MintedView {
                id: new.key.id.to_string(),
                name: new.key.name.clone(),
                key_type: new.key.key_type.as_str().to_owned(),
                api_key: new.plaintext.expose_secret().to_owned(),
            }),
        },
    )
    .into_response()
}

/// `POST /portal/apps/{app}/keys/{key}/revoke`: the operator's revoke, which (as on the
/// admin API) always forces.
async fn revoke_key(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let key = match crate::routes::id(&key) {
        Ok(key) => key,
        Err(e) => return failure(&state, e),
    };
    let subject = Subject::Operator { app };
    match op.act(state.vault.revoke_key(&subject, key, true)).await {
        Ok(_) => done(app_base(&state, app), "key_revoked"),
        Err(e) => failure(&state, e),
    }
}

// ---- managed secrets -------------------------------------------------------------------

/// `GET /portal/apps/{app}/secrets`.
async fn secrets(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let (op, app, header) = match app_view(&state, &session, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let secrets = match state.vault.list_secrets(app).await {
        Ok(secrets) => secrets,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct Context {
        app: AppHeader,
        secrets: Vec<alter_proto::admin::SecretInfo>,
    }
    portal_page(
        &state,
        &op,
        Place::App(app, "/secrets"),
        "portal/secrets.html",
        "Managed secrets",
        done.notice(),
        Context {
            app: header,
            secrets: secrets.iter().map(views::secret_info).collect(),
        },
    )
    .into_response()
}

/// `POST /portal/apps/{app}/secrets`: `name`, `secret_type` (bearer, header, basic, query),
/// `header` / `param` (for header and query), `allowed_hosts` (space, comma or line
/// separated), `value`.
async fn create_secret(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let fields = &form.fields;
    let new = NewSecret {
        name: fields.text("name").unwrap_or_default().to_owned(),
        secret_type: fields.text("secret_type").unwrap_or("bearer").to_owned(),
        header: fields.text("header").map(str::to_owned),
        param: fields.text("param").map(str::to_owned),
        rules: Vec::new(),
        allowed_hosts: fields
            .text("allowed_hosts")
            .unwrap_or_default()
            .split([' ', ',', '\n', '\r'])
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        limits: SecretLimits::default(),
        value: SecretString::from(fields.get("value").unwrap_or_default().to_owned()),
    };
    match op.act(state.vault.create_secret(app, new)).await {
        Ok(_) => done(
            format!("{}/secrets", app_base(&state, app)),
            "secret_created",
        ),
        Err(e) => failure(&state, e),
    }
}

/// `POST /portal/apps/{app}/secrets/{secret}/rotate`: `value`. Grants keep their ids.
async fn rotate_secret(
    State(state): State<AppState>,
    Path((app, secret)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let value = SecretString::from(form.fields.get("value").unwrap_or_default().to_owned());
    match op.act(state.vault.rotate_secret(app, &secret, value)).await {
        Ok(_) => done(
            format!("{}/secrets", app_base(&state, app)),
            "secret_rotated",
        ),
        Err(e) => failure(&state, e),
    }
}

// ---- agents ----------------------------------------------------------------------------

/// `GET /portal/apps/{app}/agents`: the app's agents and each one's keys.
async fn agents(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
) -> Response {
    let (op, app, header) = match app_view(&state, &session, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let subject = Subject::Operator { app };
    let (agents, _) = match state.vault.list_agents(&subject, true, 200, 0).await {
        Ok(page) => page,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct Row {
        agent: alter_proto::agents::AgentInfo,
        keys: Vec<alter_proto::keys::ApiKeyInfo>,
    }
    let keys = match state.vault.list_app_keys(app).await {
        Ok(keys) => keys,
        Err(e) => return failure(&state, e),
    };
    let rows = agents
        .iter()
        .map(|agent| Row {
            agent: views::agent_info(agent),
            keys: keys
                .iter()
                .filter(|k| k.agent_id == Some(agent.id))
                .map(key_info)
                .collect(),
        })
        .collect();
    #[derive(Serialize)]
    struct Context {
        app: AppHeader,
        agents: Vec<Row>,
    }
    portal_page(
        &state,
        &op,
        Place::App(app, "/agents"),
        "portal/agents.html",
        "Agents",
        None,
        Context {
            app: header,
            agents: rows,
        },
    )
    .into_response()
}

// ---- identity and providers -------------------------------------------------------------

/// `GET /portal/apps/{app}/identity`: the identity provider and the OAuth providers.
async fn identity(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let (op, app, header) = match app_view(&state, &session, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let idp = match state.vault.get_idp(app).await {
        Ok(idp) => Some(views::idp_info(&idp)),
        Err(alter_core::Error::NotFound(_)) => None,
        Err(e) => return failure(&state, e),
    };
    let providers = match state.vault.list_providers(app).await {
        Ok(providers) => providers,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct ProviderRow {
        id: String,
        display_name: String,
        client_id: String,
        scopes: Vec<String>,
        updated_at: String,
    }
    #[derive(Serialize)]
    struct Context {
        app: AppHeader,
        idp: Option<alter_proto::admin::IdpInfo>,
        providers: Vec<ProviderRow>,
    }
    portal_page(
        &state,
        &op,
        Place::App(app, "/identity"),
        "portal/identity.html",
        "Identity & providers",
        done.notice(),
        Context {
            app: header,
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
        },
    )
    .into_response()
}

/// Space-, comma- or line-separated words of a field.
fn words(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split([' ', ',', '\n', '\r'])
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /portal/apps/{app}/identity`: sets (or replaces) the identity provider: `issuer`,
/// `audiences`, `jwks_url`, `algorithms` (empty: the service's default), `subject_claim`,
/// `groups_claim`, `email_claim`, `name_claim`.
async fn set_idp(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let fields = &form.fields;
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
    match op.act(state.vault.set_idp(app, settings)).await {
        Ok(_) => done(format!("{}/identity", app_base(&state, app)), "idp_saved"),
        Err(e) => failure(&state, e),
    }
}
