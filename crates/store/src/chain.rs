//! Appending audit events to an app's hash chain, inside the caller's transaction, and a
//! change's one statement with its event.

use std::collections::{BTreeMap, HashMap};

use alter_core::audit::{AuditEvent, ChainKey, HASH_KEYED_V1};
use alter_core::ids::AppId;
use alter_core::ports::{StoreError, StoreResult};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::rows::{AnyQuery, get, hash32};
use crate::script::{Script, Stmt};
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

/// Appends `event` to its app's chain. Reading the head locks the chain until the transaction
/// ends, so concurrent writers on PostgreSQL line up behind each other (SQLite has a single
/// writer anyway).
pub async fn append(
    conn: &mut AnyConnection,
    key: &ChainKey,
    event: &AuditEvent,
) -> StoreResult<()> {
    append_all(conn, key, &[event]).await
}

/// Columns of one `audit_events` row, in insert order.
const COLUMNS: usize = 16;
/// Rows per `INSERT` statement (well under every engine's bind-parameter limit).
const ROWS_PER_INSERT: usize = 64;

/// Appends `events` (in order) to their apps' chains: the heads read (and locked) in one
/// script, then the rows and the heads' moves in another (see [`append_statements`]).
pub async fn append_all(
    conn: &mut AnyConnection,
    key: &ChainKey,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    let mut read = Script::new();
    let heads = read_heads(&mut read, events.iter().copied());
    let rows = read.run(&mut *conn).await?;
    let heads = heads.found(&rows)?;
    let mut write = Script::new();
    append_statements(&mut write, key, &heads, events)?;
    write.run(conn).await.map(drop)
}

/// Where a script reads the chain heads of some apps.
pub(crate) struct HeadReads(Vec<(AppId, usize)>);

/// The chain heads read: per app, its last sequence number and hash.
pub(crate) struct Heads(HashMap<AppId, (i64, [u8; 32])>);

/// Adds to `script` the reads of the chain heads of `events`' apps — in one global order, so
/// two writers never wait on each other's chains — locked until the commit.
pub(crate) fn read_heads<'a>(
    script: &mut Script,
    events: impl Iterator<Item = &'a AuditEvent>,
) -> HeadReads {
    let apps: BTreeMap<String, AppId> = events.map(|e| (e.app_id.to_string(), e.app_id)).collect();
    HeadReads(
        apps.into_iter()
            .map(|(text, app)| {
                // An update that changes nothing: it takes SQLite's write lock (a transaction
                // whose first statement only read could not commit after another process
                // wrote) and PostgreSQL's row lock.
                let stmt = Stmt::new(
                    "UPDATE audit_heads SET seq = seq WHERE app_id = $1 RETURNING seq, hash",
                )
                .returning(&[("seq", "BIGINT"), ("hash", "BYTEA")])
                .bind(text);
                (app, script.push(stmt))
            })
            .collect(),
    )
}

impl HeadReads {
    /// The heads, from the script's results.
    pub(crate) fn found(&self, results: &[Vec<AnyRow>]) -> StoreResult<Heads> {
        let mut heads = HashMap::new();
        for (app, at) in &self.0 {
            let row = results
                .get(*at)
                .and_then(|rows| rows.first())
                .ok_or_else(|| StoreError::Corrupt(format!("no audit chain for app {app}")))?;
            heads.insert(*app, (get::<i64>(row, "seq")?, hash32(row, "hash")?));
        }
        Ok(Heads(heads))
    }
}

/// Adds to `script` the appends of `events` (in order) after `heads`, with a few statements
/// per app however many events there are: the hashes are chained in memory, the rows go in
/// multi-row `INSERT`s and one `UPDATE` moves the head. Hashes are keyed with `key` (version
/// [`HASH_KEYED_V1`]).
pub(crate) fn append_statements(
    script: &mut Script,
    key: &ChainKey,
    heads: &Heads,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    let mut apps: Vec<AppId> = Vec::new();
    for event in events {
        if !apps.contains(&event.app_id) {
            apps.push(event.app_id);
        }
    }
    apps.sort_by_key(ToString::to_string);
    for app in apps {
        let chain: Vec<&AuditEvent> = events.iter().copied().filter(|e| e.app_id == app).collect();
        let (last_seq, mut prev) = *heads
            .0
            .get(&app)
            .ok_or_else(|| StoreError::Corrupt(format!("no audit chain for app {app}")))?;
        let app = app.to_string();
        let mut rows = Vec::with_capacity(chain.len());
        for (seq, event) in (last_seq + 1..).zip(chain) {
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
            script.push(insert_rows(&app, chunk));
        }
        let seq = rows.last().map_or(last_seq, |r| r.seq);
        script.push(
            Stmt::new("UPDATE audit_heads SET seq = $1, hash = $2 WHERE app_id = $3")
                .returning(&[])
                .bind(seq)
                .bind(prev.to_vec())
                .bind(app),
        );
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

fn insert_rows(app: &str, rows: &[Row<'_>]) -> Stmt {
    let values: Vec<String> = (0..rows.len())
        .map(|r| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("${}", r * COLUMNS + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    // One prepared statement per row count would crowd the statement cache.
    let mut stmt = Stmt::new(format!(
        "INSERT INTO audit_events (app_id, seq, id, at, action, decision, actor_key_id, agent_id, \
         grant_id, app_user_id, target_id, body, prev_hash, hash, hash_version, trace_id) \
         VALUES {}",
        values.join(", ")
    ))
    .one_off_if(rows.len() > 1)
    .returning(&[]);
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
        stmt = stmt
            .bind(app)
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
            .bind(HASH_KEYED_V1)
            .bind(event.trace_id.clone());
    }
    stmt
}
