//! Appending audit events to an app's hash chain, inside the caller's transaction, and a
//! change's one statement with its event.

use alter_core::audit::{AuditEvent, ChainKey, HASH_KEYED_V1};
use alter_core::ids::AppId;
use alter_core::ports::{StoreError, StoreResult};
use sqlx::AnyConnection;

use crate::rows::{AnyQuery, get, hash32};
use crate::{SqlStore, db_error};

impl SqlStore {
    /// Runs one write statement and appends `event` in the same transaction.
    pub(crate) async fn execute_with_event(
        &self,
        query: AnyQuery<'_>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        self.execute_logged(query, event, false).await.map(drop)
    }

    /// Runs one write statement and, if it changed exactly one row, appends `event` in the
    /// same transaction; otherwise changes nothing. True if it committed.
    pub(crate) async fn execute_one_with_event(
        &self,
        query: AnyQuery<'_>,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        self.execute_logged(query, event, true).await
    }

    async fn execute_logged(
        &self,
        query: AnyQuery<'_>,
        event: &AuditEvent,
        only_one: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let changed = query
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if only_one && changed != 1 {
            return Ok(false);
        }
        append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

/// Appends `event` to its app's chain. The head row's `UPDATE` both allocates the sequence
/// number and locks the chain until the transaction ends, so concurrent writers on PostgreSQL
/// line up behind each other; SQLite has a single writer anyway.
pub async fn append(
    conn: &mut AnyConnection,
    key: &ChainKey,
    event: &AuditEvent,
) -> StoreResult<()> {
    append_all(conn, key, &[event]).await
}

/// Columns of one `audit_events` row, in insert order.
const COLUMNS: usize = 15;
/// Rows per `INSERT` statement (well under every engine's bind-parameter limit).
const ROWS_PER_INSERT: usize = 64;

/// Appends `events` (in order) to their apps' chains with a few statements per app, however
/// many events there are: one head `UPDATE` reserves all of an app's sequence numbers (and
/// locks its chain), the hashes are chained in memory, the rows go in multi-row `INSERT`s and
/// one more `UPDATE` moves the head. The group-commit writer appends a whole batch this way.
/// Hashes are keyed with `key` (version [`HASH_KEYED_V1`]).
pub async fn append_all(
    conn: &mut AnyConnection,
    key: &ChainKey,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    let mut apps: Vec<AppId> = Vec::new();
    for event in events {
        if !apps.contains(&event.app_id) {
            apps.push(event.app_id);
        }
    }
    // Chains are locked in one global order, so two writers never wait on each other's.
    apps.sort_by_key(ToString::to_string);
    for app in apps {
        let chain: Vec<&AuditEvent> = events.iter().copied().filter(|e| e.app_id == app).collect();
        let app = app.to_string();
        let count = i64::try_from(chain.len()).map_err(|e| StoreError::Other(e.to_string()))?;
        let head = sqlx::query(
            "UPDATE audit_heads SET seq = seq + $1 WHERE app_id = $2 RETURNING seq, hash",
        )
        .bind(count)
        .bind(&app)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::Corrupt(format!("no audit chain for app {app}")))?;
        let last_seq: i64 = get(&head, "seq")?;
        let mut prev = hash32(&head, "hash")?;
        let mut rows = Vec::with_capacity(chain.len());
        for (seq, event) in (last_seq - count + 1..).zip(chain) {
            let body = event
                .canonical_body()
                .map_err(|e| StoreError::Other(e.to_string()))?;
            let hash = key.hash(&prev, seq, &body);
            rows.push(Row {
                event,
                seq,
                body,
                prev,
                hash,
            });
            prev = hash;
        }
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert_rows(conn, &app, chunk).await?;
        }
        sqlx::query("UPDATE audit_heads SET hash = $1 WHERE app_id = $2")
            .bind(prev.to_vec())
            .bind(&app)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// An event with its place in the chain.
struct Row<'a> {
    event: &'a AuditEvent,
    seq: i64,
    body: String,
    prev: [u8; 32],
    hash: [u8; 32],
}

async fn insert_rows(conn: &mut AnyConnection, app: &str, rows: &[Row<'_>]) -> StoreResult<()> {
    let values: Vec<String> = (0..rows.len())
        .map(|r| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("${}", r * COLUMNS + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_events (app_id, seq, id, at, action, decision, actor_key_id, agent_id, \
         grant_id, app_user_id, target_id, body, prev_hash, hash, hash_version) VALUES {}",
        values.join(", ")
    );
    // One prepared statement per row count would crowd the statement cache.
    let mut query = sqlx::query(&sql).persistent(rows.len() == 1);
    for row in rows {
        let event = row.event;
        let target = event
            .target
            .as_ref()
            .filter(|t| !t.id.is_empty())
            .map(|t| t.id.clone());
        let grant = event
            .grant_id()
            .filter(|g| !g.is_empty())
            .map(str::to_owned);
        query = query
            .bind(app.to_owned())
            .bind(row.seq)
            .bind(event.id.to_string())
            .bind(event.at.micros())
            .bind(event.action.clone())
            .bind(event.decision.as_str())
            .bind(event.actor.key_id.map(|k| k.to_string()))
            .bind(event.actor.agent_id.map(|a| a.to_string()))
            .bind(grant)
            .bind(event.subject_user())
            .bind(target)
            .bind(row.body.clone())
            .bind(row.prev.to_vec())
            .bind(row.hash.to_vec())
            .bind(HASH_KEYED_V1);
    }
    query.execute(&mut *conn).await.map_err(db_error)?;
    Ok(())
}
