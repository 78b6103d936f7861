//! Grants and delegations.
//!
//! An app's grants are numbered 1, 2, 3… (`seq`) in creation order and never deleted, so the
//! unfiltered app listing reads a page as the range `seq ∈ (offset, offset + limit]` and its
//! total from the counter: constant time at any depth of a million grants.

use alter_core::audit::{AuditEvent, ChainKey};
use alter_core::connections::ConnectionStatus;
use alter_core::credentials::{
    ConnectionSummary, CredentialKind, CredentialRef, CredentialSummary, SecretSummary,
};
use alter_core::grants::{
    CreatedBy, Grant, GrantFilter, GrantStateFilter, GrantStatus, GrantView, Principal,
    PrincipalType, Viewer,
};
use alter_core::ids::{AgentId, AppId, EventId, GrantId, IdpId, UserId};
use alter_core::ports::{GrantStore, ReadFrom, StoreError, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

use crate::rows::{
    AnyQuery, fetch_all, fetch_optional, flag, get, id, json, micros, opt_id, opt_time, parsed,
    time, to_json,
};
use crate::{SqlStore, chain, db_error};

pub(crate) const COLUMNS: &str = "g.id, g.app_id, g.seq, g.grant_kind, g.secret_id, g.connection_id, g.user_secret_id, g.principal_type, \
    g.app_user_id, g.idp_id, g.external_group_id, g.agent_id, g.label, g.account_identifier, \
    g.status, g.policy, g.expires_at, g.parent_grant_id, g.depth, g.delegable, g.delegated_by, \
    g.created_by, g.created_at, g.revoked_at, g.revoke_reason, g.last_used_at, g.scope_mismatch";
const FROM: &str = "FROM grants g LEFT JOIN managed_secrets s ON s.id = g.secret_id \
    LEFT JOIN oauth_connections c ON c.id = g.connection_id";

pub(crate) fn grant(row: &AnyRow) -> StoreResult<Grant> {
    let principal = match parsed(row, "principal_type", PrincipalType::parse)? {
        PrincipalType::User => Principal::User(id(row, "app_user_id")?),
        PrincipalType::Group => Principal::Group {
            idp_id: id(row, "idp_id")?,
            external_group_id: get(row, "external_group_id")?,
        },
        PrincipalType::System => Principal::System,
        PrincipalType::Agent => Principal::Agent(id(row, "agent_id")?),
    };
    Ok(Grant {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        seq: get(row, "seq")?,
        credential: match parsed(row, "grant_kind", CredentialKind::parse)? {
            CredentialKind::ManagedSecret => match opt_id(row, "user_secret_id")? {
                Some(key) => CredentialRef::UserSecret {
                    secret: id(row, "secret_id")?,
                    key,
                },
                None => CredentialRef::ManagedSecret(id(row, "secret_id")?),
            },
            CredentialKind::OAuth => CredentialRef::Connection(id(row, "connection_id")?),
        },
        principal,
        label: get(row, "label")?,
        status: parsed(row, "status", GrantStatus::parse)?,
        lifetime: json(row, "policy")?,
        expires_at: opt_time(row, "expires_at")?,
        parent_grant_id: opt_id(row, "parent_grant_id")?,
        depth: get(row, "depth")?,
        delegable: flag(row, "delegable")?,
        delegated_by: opt_id(row, "delegated_by")?,
        created_by: parsed(row, "created_by", CreatedBy::parse)?,
        created_at: time(row, "created_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        revoke_reason: get(row, "revoke_reason")?,
        last_used_at: opt_time(row, "last_used_at")?,
        scope_mismatch: flag(row, "scope_mismatch")?,
    })
}

fn view(row: &AnyRow) -> StoreResult<GrantView> {
    let grant = grant(row)?;
    let credential = match grant.credential {
        CredentialRef::ManagedSecret(id) | CredentialRef::UserSecret { secret: id, .. } => {
            let slug: Option<String> = get(row, "secret_slug")?;
            let name: Option<String> = get(row, "secret_name")?;
            slug.zip(name).map(|(slug, name)| {
                CredentialSummary::ManagedSecret(SecretSummary { id, slug, name })
            })
        }
        CredentialRef::Connection(id) => {
            let provider: Option<String> = get(row, "connection_provider")?;
            match provider {
                Some(provider_id) => Some(CredentialSummary::Connection(ConnectionSummary {
                    id,
                    provider_id,
                    account_identifier: get(row, "connection_account")?,
                    scopes: json(row, "connection_scopes")?,
                    access_expires_at: opt_time(row, "connection_expires_at")?,
                    status: parsed(row, "connection_status", ConnectionStatus::parse)?,
                })),
                None => None,
            }
        }
    };
    Ok(GrantView {
        grant,
        credential,
        delegated_agents: Vec::new(),
    })
}

/// The principal's columns: (type, app_user_id, idp_id, external_group_id, agent_id).
fn principal_columns(
    principal: &Principal,
) -> (
    PrincipalType,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let kind = principal.kind();
    match principal {
        Principal::User(user) => (kind, Some(user.to_string()), None, None, None),
        Principal::Group {
            idp_id,
            external_group_id,
        } => (
            kind,
            None,
            Some(idp_id.to_string()),
            Some(external_group_id.clone()),
            None,
        ),
        Principal::System => (kind, None, None, None, None),
        Principal::Agent(agent) => (kind, None, None, None, Some(agent.to_string())),
    }
}

/// Takes the next number of the app's grants. The counter row stays locked until the
/// transaction ends, which also serializes the sibling-label check below.
pub(crate) async fn next_seq(conn: &mut AnyConnection, app: AppId) -> StoreResult<i64> {
    let row = sqlx::query(
        "UPDATE app_counters SET grants = grants + 1 WHERE app_id = $1 RETURNING grants",
    )
    .bind(app.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)?;
    get(&row, "grants")
}

/// True if an active, unexpired root sibling (same credential and principal) holds the label.
pub(crate) async fn label_taken(conn: &mut AnyConnection, grant: &Grant) -> StoreResult<bool> {
    let Some(label) = &grant.label else {
        return Ok(false);
    };
    let (kind, user, idp, group, agent) = principal_columns(&grant.principal);
    let identity = match kind {
        PrincipalType::User => "g.app_user_id = $5",
        PrincipalType::Group => "g.idp_id = $5 AND g.external_group_id = $6",
        PrincipalType::Agent => "g.agent_id = $5",
        PrincipalType::System => "1 = 1",
    };
    // Siblings share a managed secret, or a provider (each connection is one account).
    let credential = match grant.credential {
        CredentialRef::ManagedSecret(_) | CredentialRef::UserSecret { .. } => "g.secret_id = $2",
        CredentialRef::Connection(_) => {
            "g.connection_id IN (SELECT o.id FROM oauth_connections o WHERE o.provider_id = \
             (SELECT p.provider_id FROM oauth_connections p WHERE p.id = $2))"
        }
    };
    let sql = format!(
        "SELECT COUNT(*) AS n FROM grants g WHERE g.app_id = $1 AND {credential} \
         AND g.label = $3 AND g.status = 'active' AND g.parent_grant_id IS NULL \
         AND (g.expires_at IS NULL OR g.expires_at > $4) AND g.principal_type = '{}' AND {identity}",
        kind.as_str()
    );
    let mut query = sqlx::query(&sql)
        .bind(grant.app_id.to_string())
        .bind(credential_column(grant.credential))
        .bind(label)
        .bind(grant.created_at.micros());
    for value in [user, idp, group, agent].into_iter().flatten() {
        query = query.bind(value);
    }
    let row = query.fetch_one(&mut *conn).await.map_err(db_error)?;
    Ok(get::<i64>(&row, "n")? > 0)
}

pub(crate) async fn insert(conn: &mut AnyConnection, grant: &Grant, seq: i64) -> StoreResult<()> {
    insert_row(conn, grant, seq, None).await
}

/// Inserts the grant's row; `minted_from` names the grant it was minted from, in the same
/// statement.
async fn insert_row(
    conn: &mut AnyConnection,
    grant: &Grant,
    seq: i64,
    minted_from: Option<GrantId>,
) -> StoreResult<()> {
    let (kind, user, idp, group, agent) = principal_columns(&grant.principal);
    sqlx::query(
        "INSERT INTO grants (id, app_id, seq, grant_kind, secret_id, connection_id, user_secret_id, \
         principal_type, app_user_id, idp_id, external_group_id, agent_id, label, \
         account_identifier, status, policy, expires_at, parent_grant_id, depth, delegable, \
         delegated_by, created_by, created_at, revoked_at, revoke_reason, last_used_at, \
         minted_from) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         $20, $21, $22, $23, $24, $25, $26, $27)",
    )
    .bind(grant.id.to_string())
    .bind(grant.app_id.to_string())
    .bind(seq)
    .bind(grant.credential.kind().as_str())
    .bind(grant.credential.secret_id().map(|s| s.to_string()))
    .bind(grant.credential.connection_id().map(|c| c.to_string()))
    .bind(grant.credential.user_secret_id().map(|k| k.to_string()))
    .bind(kind.as_str())
    .bind(user)
    .bind(idp)
    .bind(group)
    .bind(agent)
    .bind(grant.label.clone())
    .bind(None::<String>)
    .bind(grant.status.as_str())
    .bind(to_json(&grant.lifetime)?)
    .bind(micros(grant.expires_at))
    .bind(grant.parent_grant_id.map(|p| p.to_string()))
    .bind(grant.depth)
    .bind(i64::from(grant.delegable))
    .bind(grant.delegated_by.map(|u| u.to_string()))
    .bind(grant.created_by.as_str())
    .bind(grant.created_at.micros())
    .bind(micros(grant.revoked_at))
    .bind(grant.revoke_reason.clone())
    .bind(micros(grant.last_used_at))
    .bind(minted_from.map(|m| m.to_string()))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Stores a new root grant in `conn`'s transaction, numbered after the app's last one, with
/// its events. [`StoreError::Conflict`]`("sibling_label")` when an active sibling holds the
/// label.
pub(crate) async fn insert_numbered(
    conn: &mut AnyConnection,
    chain_key: &ChainKey,
    grant: &Grant,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    insert_numbered_from(conn, chain_key, grant, None, events).await
}

/// [`insert_numbered`], naming the grant `grant` was minted from (if any) in its row.
async fn insert_numbered_from(
    conn: &mut AnyConnection,
    chain_key: &ChainKey,
    grant: &Grant,
    minted_from: Option<GrantId>,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    let seq = next_seq(&mut *conn, grant.app_id).await?;
    if label_taken(&mut *conn, grant).await? {
        return Err(StoreError::Conflict("sibling_label".into()));
    }
    insert_row(&mut *conn, grant, seq, minted_from).await?;
    for event in events {
        chain::append(&mut *conn, chain_key, event).await?;
    }
    Ok(())
}

/// The id of the credential a grant points at, as its column holds it.
fn credential_column(credential: CredentialRef) -> String {
    match credential {
        CredentialRef::ManagedSecret(id) | CredentialRef::UserSecret { secret: id, .. } => {
            id.to_string()
        }
        CredentialRef::Connection(id) => id.to_string(),
    }
}

/// Runs an `UPDATE … RETURNING id` that revokes grants and writes one event per revoked grant.
pub(crate) async fn record_revocations(
    conn: &mut AnyConnection,
    chain: &ChainKey,
    query: AnyQuery<'_>,
    template: &AuditEvent,
) -> StoreResult<Vec<GrantId>> {
    let rows = query.fetch_all(&mut *conn).await.map_err(db_error)?;
    let revoked = rows
        .iter()
        .map(|row| id(row, "id"))
        .collect::<StoreResult<Vec<GrantId>>>()?;
    for grant in &revoked {
        let mut event = template.clone();
        event.id = EventId::new();
        if let Some(target) = &mut event.target {
            target.id = grant.to_string();
        }
        chain::append(&mut *conn, chain, &event).await?;
    }
    Ok(revoked)
}

/// Revokes the active grants of a subtree (the root, named by a column and its value, and
/// every delegation below it).
/// The grants a subtree holds (see [`revoke_subtree`]) whose root meets `root_condition`.
fn subtree(root_condition: &str) -> String {
    format!(
        "WITH RECURSIVE tree (id) AS ( \
             SELECT id FROM grants WHERE app_id = $1 AND {root_condition} = $2 \
             UNION ALL \
             SELECT g.id FROM grants g JOIN tree t ON g.parent_grant_id = t.id \
         )"
    )
}

/// On PostgreSQL, locks the grants of a subtree (as [`revoke_subtree`] would name them) in id
/// order, before the caller locks anything else: the release's commit locks grants first, then
/// agents, keys and the chain head, and a writer that took those first could deadlock with it.
pub(crate) async fn lock_subtree(
    conn: &mut AnyConnection,
    app: AppId,
    (root_condition, root_value): (&str, &str),
) -> StoreResult<()> {
    if conn.backend_name() != crate::POSTGRES {
        return Ok(());
    }
    let sql = format!(
        "{} SELECT id FROM grants WHERE id IN (SELECT id FROM tree) ORDER BY id FOR NO KEY UPDATE",
        subtree(root_condition)
    );
    sqlx::query(&sql)
        .bind(app.to_string())
        .bind(root_value.to_owned())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(crate) async fn revoke_subtree(
    conn: &mut AnyConnection,
    chain: &ChainKey,
    app: AppId,
    (root_condition, root_value): (&str, &str),
    at: Timestamp,
    reason: Option<&str>,
    template: &AuditEvent,
) -> StoreResult<Vec<GrantId>> {
    let sql = format!(
        "{} UPDATE grants SET status = 'revoked', revoked_at = $3, revoke_reason = $4 \
         WHERE id IN (SELECT id FROM tree) AND status = 'active' RETURNING id",
        subtree(root_condition)
    );
    let query = sqlx::query(&sql)
        .bind(app.to_string())
        .bind(root_value.to_owned())
        .bind(at.micros())
        .bind(reason.map(str::to_owned));
    record_revocations(conn, chain, query, template).await
}

/// The WHERE clause of a listing, with its parameters (all text or integers).
#[derive(Default)]
pub(crate) struct Clause {
    /// The conditions, joined with `AND`.
    pub(crate) sql: Vec<String>,
    params: Vec<Param>,
}

/// One parameter of a [`Clause`].
pub(crate) enum Param {
    /// A text value.
    Text(String),
    /// An integer.
    Int(i64),
}

impl Clause {
    /// Adds a parameter; returns its placeholder.
    pub(crate) fn param(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Adds a text parameter; returns its placeholder.
    pub(crate) fn text(&mut self, value: impl Into<String>) -> String {
        self.param(Param::Text(value.into()))
    }

    fn list(&mut self, values: &[String]) -> String {
        values
            .iter()
            .map(|v| self.text(v.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A user's grants: `own` (their own, as the caller words it) or their groups' grants.
    pub(crate) fn user_clause(&mut self, mut own: String, idp: IdpId, groups: &[String]) {
        if !groups.is_empty() {
            let idp = self.text(idp.to_string());
            let groups = self.list(groups);
            own.push_str(&format!(
                " OR (g.principal_type = 'group' AND g.idp_id = {idp} AND g.external_group_id IN ({groups}))"
            ));
        }
        self.sql.push(format!("({own})"));
    }

    /// An agent's grants: its own and those delegated to it (by one user, when given).
    pub(crate) fn agent_clause(&mut self, agent: AgentId, delegated_by: Option<UserId>) {
        let agent = self.text(agent.to_string());
        self.sql.push(format!("g.agent_id = {agent}"));
        if let Some(user) = delegated_by {
            let user = self.text(user.to_string());
            self.sql.push(format!("g.delegated_by = {user}"));
        }
    }

    /// Binds the parameters, in order.
    pub(crate) fn bind<'q>(&self, mut query: AnyQuery<'q>) -> AnyQuery<'q> {
        for param in &self.params {
            query = match param {
                Param::Text(t) => query.bind(t.clone()),
                Param::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

fn listing_clause(app: AppId, viewer: &Viewer, filter: &GrantFilter, now: Timestamp) -> Clause {
    let mut c = Clause::default();
    let app = c.text(app.to_string());
    c.sql.push(format!("g.app_id = {app}"));
    match viewer {
        Viewer::App => {}
        Viewer::User { user, idp, groups } => {
            let user = c.text(user.to_string());
            c.user_clause(
                format!("g.app_user_id = {user} OR g.delegated_by = {user}"),
                *idp,
                groups,
            );
        }
        Viewer::Agent {
            agent,
            delegated_by,
        } => c.agent_clause(*agent, *delegated_by),
    }
    if let Some(provider) = &filter.provider {
        let p = c.text(provider.clone());
        c.sql.push(format!("(s.slug = {p} OR c.provider_id = {p})"));
    }
    if let Some(label) = &filter.label {
        let l = c.text(label.clone());
        c.sql.push(format!("g.label = {l}"));
    }
    if let Some(account) = &filter.account {
        let a = c.text(account.clone());
        c.sql.push(format!(
            "COALESCE(c.account_identifier, g.account_identifier) = {a}"
        ));
    }
    if let Some(ids) = &filter.ids {
        let ids = c.list(ids);
        c.sql.push(format!("g.id IN ({ids})"));
    }
    if filter.hide_agent_grants {
        c.sql.push("g.agent_id IS NULL".into());
    }
    match filter.delegations {
        Some(true) => c.sql.push("g.parent_grant_id IS NOT NULL".into()),
        Some(false) => c.sql.push("g.parent_grant_id IS NULL".into()),
        None => {}
    }
    match filter.state {
        None => {}
        Some(GrantStateFilter::Revoked) => c.sql.push("g.status = 'revoked'".into()),
        Some(GrantStateFilter::Active) => {
            let now = c.param(Param::Int(now.micros()));
            c.sql.push(format!(
                "g.status = 'active' AND (g.expires_at IS NULL OR g.expires_at > {now})"
            ));
        }
        Some(GrantStateFilter::Expired) => {
            let now = c.param(Param::Int(now.micros()));
            c.sql
                .push(format!("g.status = 'active' AND g.expires_at <= {now}"));
        }
    }
    c
}

fn select_views() -> String {
    format!(
        "SELECT {COLUMNS}, s.slug AS secret_slug, s.name AS secret_name, \
         c.provider_id AS connection_provider, c.account_identifier AS connection_account, \
         c.scopes AS connection_scopes, c.access_expires_at AS connection_expires_at, \
         c.status AS connection_status {FROM}"
    )
}

impl SqlStore {
    /// `views` with the agents holding an active delegation of each root grant among them.
    async fn with_delegated_agents(
        &self,
        pool: &AnyPool,
        app: AppId,
        mut views: Vec<GrantView>,
    ) -> StoreResult<Vec<GrantView>> {
        let roots: Vec<String> = views
            .iter()
            .filter(|v| v.grant.parent_grant_id.is_none())
            .map(|v| v.grant.id.to_string())
            .collect();
        if roots.is_empty() {
            return Ok(views);
        }
        let mut c = Clause::default();
        let app = c.text(app.to_string());
        let list = c.list(&roots);
        let sql = format!(
            "SELECT parent_grant_id, agent_id FROM grants WHERE app_id = {app} \
             AND parent_grant_id IN ({list}) AND status = 'active' AND agent_id IS NOT NULL \
             ORDER BY seq"
        );
        let rows = c
            .bind(sqlx::query(&sql))
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
        for row in rows {
            let parent: GrantId = id(&row, "parent_grant_id")?;
            let agent: AgentId = id(&row, "agent_id")?;
            if let Some(view) = views.iter_mut().find(|v| v.grant.id == parent) {
                view.delegated_agents.push(agent);
            }
        }
        Ok(views)
    }
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_grant(&self, grant: &Grant, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        insert_numbered(&mut tx, &self.chain, grant, &[event]).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn insert_minted_grant(
        &self,
        grant: &Grant,
        source: GrantId,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        insert_numbered_from(&mut tx, &self.chain, grant, Some(source), &[event]).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn minted_from(&self, app: AppId, id: GrantId) -> StoreResult<Option<GrantId>> {
        let query = sqlx::query("SELECT minted_from FROM grants WHERE app_id = $1 AND id = $2")
            .bind(app.to_string())
            .bind(id.to_string());
        Ok(
            fetch_optional(&self.read, query, |row| opt_id(row, "minted_from"))
                .await?
                .flatten(),
        )
    }

    async fn get_grant(&self, app: AppId, id: GrantId) -> StoreResult<Option<Grant>> {
        let sql = format!("SELECT {COLUMNS} FROM grants g WHERE g.app_id = $1 AND g.id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, grant).await
    }

    async fn list_grants(
        &self,
        app: AppId,
        viewer: &Viewer,
        filter: &GrantFilter,
        limit: i64,
        offset: i64,
        now: Timestamp,
        read: ReadFrom,
    ) -> StoreResult<(Vec<GrantView>, i64)> {
        let pool = self.pool_for(read);
        if *viewer == Viewer::App && *filter == GrantFilter::default() {
            let total: i64 =
                sqlx::query_scalar("SELECT grants FROM app_counters WHERE app_id = $1")
                    .bind(app.to_string())
                    .fetch_optional(pool)
                    .await
                    .map_err(db_error)?
                    .unwrap_or(0);
            let sql = format!(
                "{} WHERE g.app_id = $1 AND g.seq > $2 AND g.seq <= $3 ORDER BY g.seq",
                select_views()
            );
            let query = sqlx::query(&sql)
                .bind(app.to_string())
                .bind(offset)
                .bind(offset.saturating_add(limit));
            let views = fetch_all(pool, query, view).await?;
            return Ok((self.with_delegated_agents(pool, app, views).await?, total));
        }
        let clause = listing_clause(app, viewer, filter, now);
        let condition = clause.sql.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n {FROM} WHERE {condition}");
        let total: i64 = get(
            &clause
                .bind(sqlx::query(&count_sql))
                .fetch_one(pool)
                .await
                .map_err(db_error)?,
            "n",
        )?;
        let n = clause.params.len();
        let page_sql = format!(
            "{} WHERE {condition} ORDER BY g.seq LIMIT ${} OFFSET ${}",
            select_views(),
            n + 1,
            n + 2
        );
        let query = clause.bind(sqlx::query(&page_sql)).bind(limit).bind(offset);
        let views = fetch_all(pool, query, view).await?;
        // Agents see their own delegations, never which other agents hold one.
        if matches!(viewer, Viewer::Agent { .. }) {
            return Ok((views, total));
        }
        Ok((self.with_delegated_agents(pool, app, views).await?, total))
    }

    async fn revoke_grants(
        &self,
        app: AppId,
        root: GrantId,
        at: Timestamp,
        reason: Option<&str>,
        template: &AuditEvent,
    ) -> StoreResult<Vec<GrantId>> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let revoked = revoke_subtree(
            &mut tx,
            &self.chain,
            app,
            ("id", &root.to_string()),
            at,
            reason,
            template,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(revoked)
    }

    async fn revoke_delegations(
        &self,
        app: AppId,
        parent: GrantId,
        agent: AgentId,
        at: Timestamp,
        reason: Option<&str>,
        template: &AuditEvent,
    ) -> StoreResult<Vec<GrantId>> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let children: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE app_id = $1 AND parent_grant_id = $2 AND agent_id = $3 \
             AND status = 'active' ORDER BY seq",
        )
        .bind(app.to_string())
        .bind(parent.to_string())
        .bind(agent.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut revoked = Vec::new();
        for child in children {
            revoked.extend(
                revoke_subtree(
                    &mut tx,
                    &self.chain,
                    app,
                    ("id", &child),
                    at,
                    reason,
                    template,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_error)?;
        Ok(revoked)
    }

    async fn active_child(
        &self,
        app: AppId,
        parent: GrantId,
        agent: AgentId,
    ) -> StoreResult<Option<Grant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM grants g WHERE g.app_id = $1 AND g.parent_grant_id = $2 \
             AND g.agent_id = $3 AND g.status = 'active' ORDER BY g.seq DESC LIMIT 1"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(parent.to_string())
            .bind(agent.to_string());
        fetch_optional(&self.read, query, grant).await
    }

    async fn put_delegation(&self, child: &Grant, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let updated = sqlx::query(
            "UPDATE grants SET expires_at = $1, delegable = $2, policy = $3 \
             WHERE app_id = $4 AND id = $5 AND status = 'active'",
        )
        .bind(micros(child.expires_at))
        .bind(i64::from(child.delegable))
        .bind(to_json(&child.lifetime)?)
        .bind(child.app_id.to_string())
        .bind(child.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if updated == 0 {
            let seq = next_seq(&mut tx, child.app_id).await?;
            // The unique index `grants_active_delegation` (or the id of a delegation revoked
            // since it was read) refuses a second active delegation of the parent to the agent.
            insert(&mut tx, child, seq).await.map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict("active_delegation".into()),
                other => other,
            })?;
        }
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }
}
