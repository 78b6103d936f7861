//! Provider specs and their operations.

use alter_core::audit::AuditEvent;
use alter_core::ids::AppId;
use alter_core::ports::{SpecStore, StoreResult};
use alter_core::provider_specs::{
    Operation, OperationSummary, ProviderSpec, PutSpec, SpecKind, search_text,
};
use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::rows::{
    AnyQuery, execute, fetch_all, fetch_optional, get, id, opt_json, parsed, time, to_json,
};
use crate::{SqlStore, chain, db_error};

/// A spec's columns, in [`bind_spec`]'s order.
const SPEC_COLUMNS: &str = "version, provenance, source_url, content_hash, title, spec_version, \
    operation_count, fetched_at, changed_at, app_id, provider_kind, provider_id";
/// An operation's summary columns.
const SUMMARY_COLUMNS: &str = "operation_id, method, path_template, summary";
/// Operation rows per `INSERT` (12 parameters each: well under every engine's limit).
const OPERATIONS_PER_INSERT: usize = 200;

fn spec(row: &AnyRow) -> StoreResult<ProviderSpec> {
    Ok(ProviderSpec {
        app_id: id(row, "app_id")?,
        kind: parsed(row, "provider_kind", SpecKind::parse)?,
        provider_id: get(row, "provider_id")?,
        version: get(row, "version")?,
        provenance: get(row, "provenance")?,
        source_url: get(row, "source_url")?,
        content_hash: get(row, "content_hash")?,
        title: get(row, "title")?,
        spec_version: get(row, "spec_version")?,
        operation_count: get(row, "operation_count")?,
        fetched_at: time(row, "fetched_at")?,
        changed_at: time(row, "changed_at")?,
    })
}

fn summary(row: &AnyRow) -> StoreResult<OperationSummary> {
    Ok(OperationSummary {
        operation_id: get(row, "operation_id")?,
        method: get(row, "method")?,
        path_template: get(row, "path_template")?,
        summary: get(row, "summary")?,
    })
}

fn operation(row: &AnyRow) -> StoreResult<Operation> {
    let OperationSummary {
        operation_id,
        method,
        path_template,
        summary,
    } = summary(row)?;
    Ok(Operation {
        operation_id,
        method,
        path_template,
        summary,
        params_schema: opt_json(row, "params_schema")?,
        request_schema: opt_json(row, "request_schema")?,
        response_schema: opt_json(row, "response_schema")?,
    })
}

/// Binds a spec's metadata, in [`SPEC_COLUMNS`]' order.
fn bind_spec<'q>(query: AnyQuery<'q>, value: &'q ProviderSpec) -> AnyQuery<'q> {
    query
        .bind(value.version)
        .bind(&value.provenance)
        .bind(value.source_url.as_deref())
        .bind(&value.content_hash)
        .bind(value.title.as_deref())
        .bind(value.spec_version.as_deref())
        .bind(value.operation_count)
        .bind(value.fetched_at.micros())
        .bind(value.changed_at.micros())
        .bind(value.app_id.to_string())
        .bind(value.kind.as_str())
        .bind(value.provider_id.as_str())
}

/// `%text%` for `LIKE … ESCAPE '\'`, its own wildcards escaped.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Replaces a spec's operations inside the caller's transaction.
async fn replace_operations(
    conn: &mut AnyConnection,
    spec: &ProviderSpec,
    operations: &[Operation],
) -> StoreResult<()> {
    let key = (spec.app_id.to_string(), spec.kind.as_str());
    execute(
        &mut *conn,
        sqlx::query(
            "DELETE FROM provider_spec_operations WHERE app_id = $1 AND provider_kind = $2 \
             AND provider_id = $3",
        )
        .bind(key.0.clone())
        .bind(key.1)
        .bind(spec.provider_id.as_str()),
    )
    .await?;
    for (chunk_index, chunk) in operations.chunks(OPERATIONS_PER_INSERT).enumerate() {
        let mut sql = String::from(
            "INSERT INTO provider_spec_operations (app_id, provider_kind, provider_id, position, \
             operation_id, method, path_template, summary, search_text, params_schema, \
             request_schema, response_schema) VALUES ",
        );
        for row in 0..chunk.len() {
            let base = row * 12;
            let params: Vec<String> = (1..=12).map(|n| format!("${}", base + n)).collect();
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&params.join(", "));
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for (offset, op) in chunk.iter().enumerate() {
            let position =
                i64::try_from(chunk_index * OPERATIONS_PER_INSERT + offset).unwrap_or(i64::MAX);
            query = query
                .bind(key.0.clone())
                .bind(key.1)
                .bind(spec.provider_id.clone())
                .bind(position)
                .bind(op.operation_id.clone())
                .bind(op.method.clone())
                .bind(op.path_template.clone())
                .bind(op.summary.clone())
                .bind(search_text(&OperationSummary::from(op)))
                .bind(op.params_schema.as_ref().map(to_json).transpose()?)
                .bind(op.request_schema.as_ref().map(to_json).transpose()?)
                .bind(op.response_schema.as_ref().map(to_json).transpose()?);
        }
        execute(&mut *conn, query).await?;
    }
    Ok(())
}

#[async_trait]
impl SpecStore for SqlStore {
    async fn put_provider_spec(&self, put: &PutSpec<'_>, event: &AuditEvent) -> StoreResult<bool> {
        let value = put.spec;
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let stored = match (put.expected_version, put.document) {
            (None, document) => {
                let sql = format!(
                    "INSERT INTO provider_specs ({SPEC_COLUMNS}, document) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT DO NOTHING"
                );
                let query =
                    bind_spec(sqlx::query(&sql), value).bind(document.unwrap_or_default().to_vec());
                execute(&mut *tx, query).await?
            }
            (Some(expected), Some(document)) => {
                let query = sqlx::query(
                    "UPDATE provider_specs SET version = $1, provenance = $2, source_url = $3, \
                     content_hash = $4, title = $5, spec_version = $6, operation_count = $7, \
                     fetched_at = $8, changed_at = $9, document = $13 WHERE app_id = $10 \
                     AND provider_kind = $11 AND provider_id = $12 AND version = $14",
                );
                let query = bind_spec(query, value)
                    .bind(document.to_vec())
                    .bind(expected);
                execute(&mut *tx, query).await?
            }
            (Some(expected), None) => {
                // The same content again: only when and where it was fetched from move.
                let query = sqlx::query(
                    "UPDATE provider_specs SET fetched_at = $1, source_url = $2 \
                     WHERE app_id = $3 AND provider_kind = $4 AND provider_id = $5 \
                     AND version = $6",
                )
                .bind(value.fetched_at.micros())
                .bind(value.source_url.as_deref())
                .bind(value.app_id.to_string())
                .bind(value.kind.as_str())
                .bind(value.provider_id.as_str())
                .bind(expected);
                execute(&mut *tx, query).await?
            }
        };
        if stored != 1 {
            return Ok(false);
        }
        if let Some(operations) = put.operations {
            replace_operations(&mut tx, value, operations).await?;
        }
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn get_provider_spec(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
    ) -> StoreResult<Option<ProviderSpec>> {
        let sql = format!(
            "SELECT {SPEC_COLUMNS} FROM provider_specs WHERE app_id = $1 AND provider_kind = $2 \
             AND provider_id = $3"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(kind.as_str())
            .bind(provider_id);
        fetch_optional(&self.read, query, spec).await
    }

    async fn list_provider_specs(
        &self,
        app: AppId,
        kind: Option<SpecKind>,
    ) -> StoreResult<Vec<ProviderSpec>> {
        let of_kind = if kind.is_some() {
            "AND provider_kind = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {SPEC_COLUMNS} FROM provider_specs WHERE app_id = $1 {of_kind} \
             ORDER BY provider_kind, provider_id"
        );
        let mut query = sqlx::query(&sql).bind(app.to_string());
        if let Some(kind) = kind {
            query = query.bind(kind.as_str());
        }
        fetch_all(&self.read, query, spec).await
    }

    async fn list_spec_operations(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<OperationSummary>, i64)> {
        // Without a search, `%` matches every operation.
        const MATCHING: &str = "FROM provider_spec_operations WHERE app_id = $1 \
            AND provider_kind = $2 AND provider_id = $3 AND search_text LIKE $4 ESCAPE '\\'";
        let pattern = search.map_or_else(|| "%".to_owned(), contains_pattern);
        let app = app.to_string();
        let count = format!("SELECT COUNT(*) AS total {MATCHING}");
        let query = sqlx::query(&count)
            .bind(app.as_str())
            .bind(kind.as_str())
            .bind(provider_id)
            .bind(pattern.as_str());
        let total = fetch_optional(&self.read, query, |row| get::<i64>(row, "total"))
            .await?
            .unwrap_or(0);
        let sql =
            format!("SELECT {SUMMARY_COLUMNS} {MATCHING} ORDER BY position LIMIT $5 OFFSET $6");
        let page = sqlx::query(&sql)
            .bind(app.as_str())
            .bind(kind.as_str())
            .bind(provider_id)
            .bind(pattern.as_str())
            .bind(limit)
            .bind(offset);
        let items = fetch_all(&self.read, page, summary).await?;
        Ok((items, total))
    }

    async fn get_spec_operation(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
        operation_id: &str,
    ) -> StoreResult<Option<Operation>> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, params_schema, request_schema, response_schema \
             FROM provider_spec_operations WHERE app_id = $1 AND provider_kind = $2 \
             AND provider_id = $3 AND operation_id = $4"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(kind.as_str())
            .bind(provider_id)
            .bind(operation_id);
        fetch_optional(&self.read, query, operation).await
    }

    async fn delete_provider_spec(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        execute(
            &mut *tx,
            sqlx::query(
                "DELETE FROM provider_spec_operations WHERE app_id = $1 AND provider_kind = $2 \
                 AND provider_id = $3",
            )
            .bind(app.to_string())
            .bind(kind.as_str())
            .bind(provider_id),
        )
        .await?;
        let deleted = execute(
            &mut *tx,
            sqlx::query(
                "DELETE FROM provider_specs WHERE app_id = $1 AND provider_kind = $2 \
                 AND provider_id = $3",
            )
            .bind(app.to_string())
            .bind(kind.as_str())
            .bind(provider_id),
        )
        .await?;
        if deleted != 1 {
            return Ok(false);
        }
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
