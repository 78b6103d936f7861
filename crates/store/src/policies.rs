//! Policy rules (current versions and every version ever saved) and GCRA rate-limit buckets.

use alter_core::audit::AuditEvent;
use alter_core::ids::{AppId, RuleId};
use alter_core::ports::{
    RateLimitStore, RateTaken, RuleStore, RuleVersion, StoreError, StoreResult,
};
use alter_core::rules::{Effect, Rule, RuleMode, RuleTarget};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Transaction};

use crate::rows::{AnyQuery, fetch_all, fetch_optional, get, id, time, to_json};
use crate::{Engine, SqlStore, db_error};

/// The columns of a rule's content, in [`bind_content`]'s order.
const CONTENT: &str = "target_type, target_id, kind, effect, mode, body, description";

fn target_parts(target: &RuleTarget) -> (&'static str, Option<String>) {
    match target {
        RuleTarget::App => ("app", None),
        RuleTarget::Provider(id) => ("provider", Some(id.clone())),
        RuleTarget::Agent(id) => ("agent", Some(id.to_string())),
        RuleTarget::Grant(id) => ("grant", Some(id.to_string())),
    }
}

fn effect_str(effect: Effect) -> &'static str {
    match effect {
        Effect::Deny => "deny",
        Effect::Hold => "hold",
    }
}

fn mode_str(mode: RuleMode) -> &'static str {
    match mode {
        RuleMode::Enforce => "enforce",
        RuleMode::Shadow => "shadow",
    }
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Corrupt(format!("column {column} holds an unexpected value"))
}

/// Reads a rule from a row of either table (`id_column` names the rule id, `at_column` the
/// instant the version was saved).
fn rule_from(row: &AnyRow, id_column: &str, at_column: &str) -> StoreResult<Rule> {
    let target_id: Option<String> = get(row, "target_id")?;
    let target_type: String = get(row, "target_type")?;
    let target = match (target_type.as_str(), target_id) {
        ("app", None) => RuleTarget::App,
        ("provider", Some(id)) => RuleTarget::Provider(id),
        ("agent", Some(id)) => {
            RuleTarget::Agent(alter_core::ids::Id::parse(&id).ok_or_else(|| corrupt("target_id"))?)
        }
        ("grant", Some(id)) => {
            RuleTarget::Grant(alter_core::ids::Id::parse(&id).ok_or_else(|| corrupt("target_id"))?)
        }
        _ => return Err(corrupt("target_type")),
    };
    let effect = match get::<String>(row, "effect")?.as_str() {
        "deny" => Effect::Deny,
        "hold" => Effect::Hold,
        _ => return Err(corrupt("effect")),
    };
    let mode = match get::<String>(row, "mode")?.as_str() {
        "enforce" => RuleMode::Enforce,
        "shadow" => RuleMode::Shadow,
        _ => return Err(corrupt("mode")),
    };
    let body: String = get(row, "body")?;
    Ok(Rule {
        id: id(row, id_column)?,
        app_id: id(row, "app_id")?,
        version: get(row, "version")?,
        target,
        kind: get(row, "kind")?,
        effect,
        mode,
        body: serde_json::from_str(&body).map_err(|_| corrupt("body"))?,
        description: get(row, "description")?,
        created_at: time(row, at_column)?,
    })
}

fn current(row: &AnyRow) -> StoreResult<Rule> {
    rule_from(row, "id", "updated_at")
}

fn version(row: &AnyRow) -> StoreResult<RuleVersion> {
    Ok(RuleVersion {
        rule: rule_from(row, "rule_id", "created_at")?,
        removed: get::<i64>(row, "removed")? == 1,
    })
}

/// Binds a rule's content, in [`CONTENT`]'s order.
fn bind_content<'q>(query: AnyQuery<'q>, rule: &'q Rule) -> StoreResult<AnyQuery<'q>> {
    let (target_type, target_id) = target_parts(&rule.target);
    Ok(query
        .bind(target_type)
        .bind(target_id)
        .bind(rule.kind.as_str())
        .bind(effect_str(rule.effect))
        .bind(mode_str(rule.mode))
        .bind(to_json(&rule.body)?)
        .bind(rule.description.as_deref()))
}

/// Records one version of a rule (a removal when `removed`), bumps the app's rules version and
/// appends `event`, in `tx`; then commits.
async fn record_and_commit(
    store: &SqlStore,
    mut tx: Transaction<'_, Any>,
    rule: &Rule,
    removed: bool,
    at: Timestamp,
    event: &AuditEvent,
) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO policy_rule_versions (app_id, rule_id, version, removed, created_at, {CONTENT}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    let query = sqlx::query(&sql)
        .bind(rule.app_id.to_string())
        .bind(rule.id.to_string())
        .bind(rule.version)
        .bind(i64::from(removed))
        .bind(at.micros());
    bind_content(query, rule)?
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    bump_rules_version(&mut tx, rule.app_id).await?;
    crate::chain::append(&mut tx, &store.chain, event).await?;
    tx.commit().await.map_err(db_error)
}

#[async_trait]
impl RuleStore for SqlStore {
    async fn insert_rule(&self, rule: &Rule, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let sql = format!(
            "INSERT INTO policy_rules (app_id, id, version, created_at, updated_at, {CONTENT}) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let query = sqlx::query(&sql)
            .bind(rule.app_id.to_string())
            .bind(rule.id.to_string())
            .bind(rule.version)
            .bind(rule.created_at.micros());
        bind_content(query, rule)?
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        record_and_commit(self, tx, rule, false, rule.created_at, event).await
    }

    async fn update_rule(
        &self,
        rule: &Rule,
        expected_version: i64,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let query = sqlx::query(
            "UPDATE policy_rules SET target_type = $1, target_id = $2, kind = $3, effect = $4, \
             mode = $5, body = $6, description = $7, version = $8, updated_at = $9 \
             WHERE app_id = $10 AND id = $11 AND version = $12",
        );
        let changed = bind_content(query, rule)?
            .bind(rule.version)
            .bind(rule.created_at.micros())
            .bind(rule.app_id.to_string())
            .bind(rule.id.to_string())
            .bind(expected_version)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        record_and_commit(self, tx, rule, false, rule.created_at, event).await?;
        Ok(true)
    }

    async fn delete_rule(&self, app: AppId, id: RuleId, event: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        // The row deleted is the one the tombstone repeats: a concurrent update either
        // committed before (and is what is removed) or finds no row.
        let sql = format!(
            "DELETE FROM policy_rules WHERE app_id = $1 AND id = $2 \
             RETURNING app_id, id, version, updated_at, {CONTENT}"
        );
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        let Some(mut rule) = fetch_optional(&mut *tx, query, current).await? else {
            return Ok(false);
        };
        rule.version += 1;
        record_and_commit(self, tx, &rule, true, event.at, event).await?;
        Ok(true)
    }

    async fn get_rule(&self, app: AppId, id: RuleId) -> StoreResult<Option<Rule>> {
        let sql = format!(
            "SELECT app_id, id, version, updated_at, {CONTENT} FROM policy_rules \
             WHERE app_id = $1 AND id = $2"
        );
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, current).await
    }

    async fn list_rules(&self, app: AppId) -> StoreResult<Vec<Rule>> {
        let sql = format!(
            "SELECT app_id, id, version, updated_at, {CONTENT} FROM policy_rules \
             WHERE app_id = $1 ORDER BY created_at, id"
        );
        fetch_all(&self.read, sqlx::query(&sql).bind(app.to_string()), current).await
    }

    async fn rule_versions(&self, app: AppId, id: RuleId) -> StoreResult<Vec<RuleVersion>> {
        let sql = format!(
            "SELECT app_id, rule_id, version, removed, created_at, {CONTENT} \
             FROM policy_rule_versions WHERE app_id = $1 AND rule_id = $2 ORDER BY version"
        );
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_all(&self.read, query, version).await
    }

    async fn rules_version(&self, app: AppId) -> StoreResult<Option<i64>> {
        let query =
            sqlx::query("SELECT rules_version FROM apps WHERE id = $1").bind(app.to_string());
        fetch_optional(&self.read, query, |row| get(row, "rules_version")).await
    }
}

#[async_trait]
impl RateLimitStore for SqlStore {
    async fn take_rate_token(
        &self,
        bucket: &str,
        now_ms: i64,
        emission_interval_ms: i64,
        tolerance_ms: i64,
    ) -> StoreResult<RateTaken> {
        // One atomic statement (policy-design §5): PostgreSQL re-checks the WHERE against the
        // committed row after waiting for a concurrent upsert's lock; SQLite's single writer
        // serialises it. A refused take updates nothing, so it consumes nothing.
        let sql = match self.engine {
            Engine::Postgres => {
                "INSERT INTO rate_buckets AS b (bucket_key, tat_ms) VALUES ($1, $2 + $3) \
                 ON CONFLICT (bucket_key) DO UPDATE SET tat_ms = GREATEST(b.tat_ms, $2) + $3 \
                 WHERE GREATEST(b.tat_ms, $2) - $2 <= $4 RETURNING tat_ms"
            }
            Engine::Sqlite => {
                "INSERT INTO rate_buckets (bucket_key, tat_ms) VALUES ($1, $2 + $3) \
                 ON CONFLICT (bucket_key) DO UPDATE SET tat_ms = max(tat_ms, $2) + $3 \
                 WHERE max(tat_ms, $2) - $2 <= $4 RETURNING tat_ms"
            }
        };
        let query = sqlx::query(sql)
            .bind(bucket)
            .bind(now_ms)
            .bind(emission_interval_ms)
            .bind(tolerance_ms);
        let taken: Option<i64> =
            fetch_optional(&self.write, query, |row| get(row, "tat_ms")).await?;
        if let Some(tat) = taken {
            let interval = emission_interval_ms.max(1);
            let remaining = (now_ms + tolerance_ms + emission_interval_ms - tat) / interval;
            return Ok(RateTaken {
                allowed: true,
                retry_after_ms: 0,
                remaining: remaining.max(0),
            });
        }
        let query =
            sqlx::query("SELECT tat_ms FROM rate_buckets WHERE bucket_key = $1").bind(bucket);
        let tat: Option<i64> = fetch_optional(&self.write, query, |row| get(row, "tat_ms")).await?;
        // The row may have been pruned meanwhile: then a token is free now.
        let retry_after_ms = tat.map_or(0, |tat| (tat - now_ms - tolerance_ms).max(1));
        Ok(RateTaken {
            allowed: false,
            retry_after_ms,
            remaining: 0,
        })
    }

    async fn prune_rate_buckets(&self, before_ms: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM rate_buckets WHERE tat_ms < $1")
            .bind(before_ms)
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected())
    }
}

/// Moves an app's rules version on, in the caller's transaction: every release decided under
/// the old one is refused at its commit, on every node (see `group_commit`).
pub(crate) async fn bump_rules_version(conn: &mut AnyConnection, app: AppId) -> StoreResult<()> {
    sqlx::query("UPDATE apps SET rules_version = rules_version + 1 WHERE id = $1")
        .bind(app.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}
