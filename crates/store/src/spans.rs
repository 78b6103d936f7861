//! Caller-defined trace spans.

use alter_core::ids::AppId;
use alter_core::ports::{SpanStore, StoreResult};
use alter_core::spans::Span;
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_all, get, id, json, opt_id, opt_time, time, to_json};
use crate::script::{Script, Stmt};
use crate::{SqlStore, db_error};

const COLUMNS: &str = "app_id, trace_id, span_id, parent_span_id, name, start_time, end_time, \
    attributes, key_id, agent_id, received_at, expires_at";

fn span(row: &AnyRow) -> StoreResult<Span> {
    Ok(Span {
        app_id: id(row, "app_id")?,
        trace_id: get(row, "trace_id")?,
        span_id: get(row, "span_id")?,
        parent_span_id: get(row, "parent_span_id")?,
        name: get(row, "name")?,
        start_time: time(row, "start_time")?,
        end_time: opt_time(row, "end_time")?,
        attributes: json(row, "attributes")?,
        key_id: id(row, "key_id")?,
        agent_id: opt_id(row, "agent_id")?,
        received_at: time(row, "received_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

#[async_trait]
impl SpanStore for SqlStore {
    async fn insert_spans(&self, spans: &[Span]) -> StoreResult<u64> {
        if spans.is_empty() {
            return Ok(0);
        }
        // One statement for the batch; a span already stored (or sent twice in the batch)
        // is skipped, and only new rows come back.
        let values: Vec<String> = (0..spans.len())
            .map(|i| {
                let params: Vec<String> = (1..=12).map(|c| format!("${}", 12 * i + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let mut stmt = Stmt::new(format!(
            "INSERT INTO user_spans ({COLUMNS}) VALUES {} \
             ON CONFLICT (app_id, trace_id, span_id) DO NOTHING RETURNING span_id",
            values.join(", ")
        ))
        .one_off_if(spans.len() > 1);
        for s in spans {
            stmt = stmt
                .bind(s.app_id.to_string())
                .bind(s.trace_id.as_str())
                .bind(s.span_id.as_str())
                .bind(s.parent_span_id.clone())
                .bind(s.name.as_str())
                .bind(s.start_time.micros())
                .bind(s.end_time.map(Timestamp::micros))
                .bind(to_json(&s.attributes)?)
                .bind(s.key_id.to_string())
                .bind(s.agent_id.map(|a| a.to_string()))
                .bind(s.received_at.micros())
                .bind(s.expires_at.micros());
        }
        let mut script = Script::new();
        let at = script.push(stmt);
        let mut conn = self.write.acquire().await.map_err(db_error)?;
        let results = script.run(&mut conn).await?;
        Ok(results.get(at).map_or(0, |rows| rows.len() as u64))
    }

    async fn trace_spans(&self, app: AppId, trace_id: &str, limit: i64) -> StoreResult<Vec<Span>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM user_spans WHERE app_id = $1 AND trace_id = $2 \
             ORDER BY start_time, span_id LIMIT $3"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(trace_id)
            .bind(limit);
        fetch_all(&self.listing, query, span).await
    }

    async fn prune_spans(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM user_spans WHERE expires_at < $1")
            .bind(now.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected())
    }
}
