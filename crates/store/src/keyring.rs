//! Stored key-encryption keys.

use alter_core::ports::{
    KekRecord, KeyringStore, RewrapProgress, SEALED_HEAD_BYTES, SealedColumn, SealedRow,
    StoreError, StoreResult, StoredMacRoot, WrappedKek,
};
use alter_core::time::Timestamp;

use async_trait::async_trait;

use crate::rows::{get, micros, opt_time, time};
use crate::{SqlStore, db_error};

/// Where a sealed column lives and what its values are bound to, as SQL expressions (the same
/// text on both engines). The revision expressions build the version string the domain seals
/// the value with (`{version}@{micros}` and the like); a mismatch only makes the re-wrap of
/// that value fail, never changes it.
struct Spec {
    table: &'static str,
    /// A unique, sortable key of the row.
    key: &'static str,
    app: &'static str,
    record: &'static str,
    revision: &'static str,
    blob: &'static str,
}

const NO_REVISION: &str = "CAST(NULL AS TEXT)";

/// A token pair's revision, `{token_version}@{tokens_at}`, in connections and their pending
/// upstream revocations alike.
const TOKENS_REVISION: &str = "CAST(token_version AS TEXT) || '@' || CAST(tokens_at AS TEXT)";

fn spec(column: SealedColumn) -> Spec {
    let plain = |table, blob| Spec {
        table,
        key: "id",
        app: "app_id",
        record: "id",
        revision: NO_REVISION,
        blob,
    };
    match column {
        SealedColumn::ApiKeySigningKey => plain("api_keys", "sealed_signing_key"),
        SealedColumn::ManagedSecretValue => Spec {
            revision: "CAST(value_version AS TEXT) || '@' || \
                       CAST(COALESCE(rotated_at, created_at) AS TEXT)",
            ..plain("managed_secrets", "sealed_value")
        },
        SealedColumn::UserSecretValue => Spec {
            revision: "CAST(value_version AS TEXT) || '@' || CAST(set_at AS TEXT)",
            ..plain("user_secrets", "sealed_value")
        },
        SealedColumn::ProviderClientSecret => Spec {
            table: "oauth_providers",
            key: "app_id || '/' || provider_id",
            app: "app_id",
            record: "provider_id",
            revision: "CAST(version AS TEXT) || '@' || CAST(updated_at AS TEXT)",
            blob: "sealed_client_secret",
        },
        SealedColumn::ConnectionTokens => Spec {
            revision: TOKENS_REVISION,
            ..plain("oauth_connections", "sealed_tokens")
        },
        SealedColumn::RevocationTokens => Spec {
            key: "connection_id",
            record: "connection_id",
            revision: TOKENS_REVISION,
            ..plain("oauth_revocations", "sealed_tokens")
        },
        SealedColumn::SignInClientSecret => Spec {
            key: "app_id",
            record: "'sign_in'",
            revision: "CAST(version AS TEXT)",
            ..plain("idp_sign_in_clients", "sealed_client_secret")
        },
        SealedColumn::IdentitySigningKey => Spec {
            key: "kid",
            app: "''",
            record: "kid",
            ..plain("identity_signing_keys", "sealed_private_key")
        },
        SealedColumn::AuthSessionVerifier => plain("auth_sessions", "sealed_verifier"),
        SealedColumn::AuthSessionUserToken => plain("auth_sessions", "sealed_user_token"),
        SealedColumn::ConnectVerifier => Spec {
            revision: "CAST(attempt_started_at AS TEXT)",
            ..plain("connect_sessions", "attempt_verifier")
        },
        SealedColumn::ApprovalRequest => plain("approvals", "sealed_request"),
        SealedColumn::ApprovalResult => plain("approvals", "sealed_result"),
        SealedColumn::IdpEventSecret => Spec {
            key: "app_id",
            record: "'idp_events'",
            revision: "CAST(version AS TEXT)",
            ..plain("idp_event_secrets", "sealed_secret")
        },
        SealedColumn::IdpEventPreviousSecret => Spec {
            key: "app_id",
            record: "'idp_events'",
            revision: "CAST(version - 1 AS TEXT)",
            ..plain("idp_event_secrets", "previous_sealed")
        },
        // Sealed to the secret's version, and the URL from `url_bound_from` on
        // (`alter_core::webhooks::secret_revision`).
        SealedColumn::WebhookSecret => Spec {
            revision: "CASE WHEN url_bound_from IS NOT NULL AND secret_version >= url_bound_from \
                       THEN CAST(secret_version AS TEXT) || ' ' || url \
                       ELSE CAST(secret_version AS TEXT) END",
            ..plain("webhook_endpoints", "sealed_secret")
        },
        SealedColumn::WebhookPreviousSecret => Spec {
            revision: "CASE WHEN url_bound_from IS NOT NULL \
                       AND previous_secret_version >= url_bound_from \
                       THEN CAST(previous_secret_version AS TEXT) || ' ' || url \
                       ELSE CAST(previous_secret_version AS TEXT) END",
            ..plain("webhook_endpoints", "previous_sealed_secret")
        },
    }
}

fn version_of(row: &sqlx::any::AnyRow) -> StoreResult<u32> {
    let version: i64 = get(row, "version")?;
    u32::try_from(version).map_err(|_| StoreError::Corrupt("kek version".into()))
}

#[async_trait]
impl KeyringStore for SqlStore {
    async fn load_keks(&self) -> StoreResult<Vec<WrappedKek>> {
        let rows = sqlx::query("SELECT version, wrapped FROM keks ORDER BY version")
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(WrappedKek {
                    version: version_of(row)?,
                    wrapped: get(row, "wrapped")?,
                })
            })
            .collect()
    }

    async fn insert_kek(
        &self,
        kek: &WrappedKek,
        endorsement: Option<&[u8]>,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO keks (version, wrapped, endorsement, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(i64::from(kek.version))
        .bind(kek.wrapped.clone())
        .bind(endorsement.map(<[u8]>::to_vec))
        .bind(at.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn kek_records(&self) -> StoreResult<Vec<KekRecord>> {
        let rows =
            sqlx::query("SELECT version, endorsement, created_at FROM keks ORDER BY version")
                .fetch_all(&self.read)
                .await
                .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(KekRecord {
                    version: version_of(row)?,
                    endorsement: get(row, "endorsement")?,
                    created_at: time(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn retire_keks_below(&self, version: u32) -> StoreResult<u64> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        // A blob's bytes 2–5 are its KEK version, big-endian, so they sort as the version does.
        let below = version.to_be_bytes().to_vec();
        for column in SealedColumn::ALL {
            let Spec { table, blob, .. } = spec(column);
            let sql = format!(
                "SELECT COUNT(*) FROM {table} WHERE {blob} IS NOT NULL AND length({blob}) > 0 \
                 AND substr({blob}, 2, 4) < $1"
            );
            let left: i64 = sqlx::query_scalar(&sql)
                .bind(below.clone())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            if left > 0 {
                return Err(StoreError::Conflict(format!(
                    "{left} value(s) in {} are still sealed under an older KEK",
                    column.name()
                )));
            }
        }
        let deleted = sqlx::query("DELETE FROM keks WHERE version < $1")
            .bind(i64::from(version))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }

    async fn rewrap_progress(&self) -> StoreResult<Option<RewrapProgress>> {
        let row = sqlx::query(
            "SELECT version, column_name, after_key, failed, finished_at FROM kek_rewrap \
             WHERE id = 1",
        )
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            let column: Option<String> = get(&row, "column_name")?;
            let failed: i64 = get(&row, "failed")?;
            Ok(RewrapProgress {
                version: version_of(&row)?,
                column: column
                    .map(|name| {
                        SealedColumn::parse(&name)
                            .ok_or_else(|| StoreError::Corrupt(format!("sealed column {name}")))
                    })
                    .transpose()?,
                after: get(&row, "after_key")?,
                finished_at: opt_time(&row, "finished_at")?,
                failed: u64::try_from(failed).unwrap_or(0),
            })
        })
        .transpose()
    }

    async fn save_rewrap_progress(
        &self,
        progress: &RewrapProgress,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO kek_rewrap \
                 (id, version, column_name, after_key, failed, finished_at, updated_at) \
             VALUES (1, $1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, \
                 column_name = excluded.column_name, after_key = excluded.after_key, \
                 failed = excluded.failed, finished_at = excluded.finished_at, \
                 updated_at = excluded.updated_at",
        )
        .bind(i64::from(progress.version))
        .bind(progress.column.map(SealedColumn::name))
        .bind(progress.after.clone())
        .bind(i64::try_from(progress.failed).unwrap_or(i64::MAX))
        .bind(micros(progress.finished_at))
        .bind(at.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn sealed_page(
        &self,
        column: SealedColumn,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>> {
        let Spec {
            table,
            key,
            app,
            record,
            revision,
            blob,
        } = spec(column);
        let sql = format!(
            "SELECT {key} AS row_key, {app} AS app, {record} AS record, {revision} AS revision, \
                 substr({blob}, 1, {SEALED_HEAD_BYTES}) AS blob FROM {table} \
             WHERE {blob} IS NOT NULL AND length({blob}) > 0 AND {key} > $1 \
             ORDER BY {key} LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after.to_owned())
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(SealedRow {
                    key: get(row, "row_key")?,
                    app_id: get(row, "app")?,
                    record_id: get(row, "record")?,
                    revision: get(row, "revision")?,
                    blob: get(row, "blob")?,
                })
            })
            .collect()
    }

    async fn sealed_value(&self, column: SealedColumn, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let Spec {
            table,
            key: key_expr,
            blob,
            ..
        } = spec(column);
        let sql = format!("SELECT {blob} AS blob FROM {table} WHERE {key_expr} = $1");
        let row = sqlx::query(&sql)
            .bind(key.to_owned())
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?;
        Ok(row
            .map(|row| get::<Option<Vec<u8>>>(&row, "blob"))
            .transpose()?
            .flatten())
    }

    async fn endorse_kek(&self, version: u32, endorsement: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE keks SET endorsement = $1 WHERE version = $2 AND endorsement IS NULL")
            .bind(endorsement.to_vec())
            .bind(i64::from(version))
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn report_node_keyring(
        &self,
        node: &str,
        version: u32,
        at: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO node_keyrings (node, kek_version, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (node) DO UPDATE SET kek_version = excluded.kek_version, \
                 seen_at = excluded.seen_at",
        )
        .bind(node.to_owned())
        .bind(i64::from(version))
        .bind(at.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM node_keyrings WHERE seen_at < $1")
            .bind(forget_before.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn node_keyrings_since(&self, since: Timestamp) -> StoreResult<Vec<(String, u32)>> {
        let rows = sqlx::query(
            "SELECT node, kek_version FROM node_keyrings WHERE seen_at >= $1 ORDER BY node",
        )
        .bind(since.micros())
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let version: i64 = get(row, "kek_version")?;
                Ok((
                    get(row, "node")?,
                    u32::try_from(version)
                        .map_err(|_| StoreError::Corrupt("kek version".into()))?,
                ))
            })
            .collect()
    }

    async fn replace_sealed(
        &self,
        column: SealedColumn,
        key: &str,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool> {
        let Spec {
            table,
            key: key_expr,
            blob,
            ..
        } = spec(column);
        let sql = format!("UPDATE {table} SET {blob} = $1 WHERE {key_expr} = $2 AND {blob} = $3");
        let updated = sqlx::query(&sql)
            .bind(new.to_vec())
            .bind(key.to_owned())
            .bind(old.to_vec())
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn load_mac_root(&self) -> StoreResult<Option<StoredMacRoot>> {
        let row = sqlx::query("SELECT wrapped, key_holder FROM mac_root WHERE id = 1")
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?;
        row.map(|row| {
            Ok(StoredMacRoot {
                wrapped: get(&row, "wrapped")?,
                key_holder: get(&row, "key_holder")?,
            })
        })
        .transpose()
    }

    async fn insert_mac_root(&self, root: &StoredMacRoot, at: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO mac_root (id, wrapped, key_holder, updated_at) VALUES (1, $1, $2, $3)",
        )
        .bind(root.wrapped.clone())
        .bind(root.key_holder.clone())
        .bind(at.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn rewrap_keys(
        &self,
        expected: &[WrappedKek],
        expected_root: Option<&[u8]>,
        keks: &[WrappedKek],
        root: &StoredMacRoot,
        at: Timestamp,
    ) -> StoreResult<()> {
        let changed = || StoreError::Conflict("the keys changed during the rotation".into());
        let mut tx = self.write.begin().await.map_err(db_error)?;
        // Each update matches the bytes read before: a concurrent rotation (which, on
        // PostgreSQL, this waits for on the row lock) makes it match nothing.
        for new in keks {
            let old = expected
                .iter()
                .find(|k| k.version == new.version)
                .ok_or_else(changed)?;
            let updated =
                sqlx::query("UPDATE keks SET wrapped = $1 WHERE version = $2 AND wrapped = $3")
                    .bind(new.wrapped.clone())
                    .bind(i64::from(new.version))
                    .bind(old.wrapped.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
            if updated != 1 {
                return Err(changed());
            }
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keks")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if usize::try_from(count).ok() != Some(keks.len()) || keks.len() != expected.len() {
            return Err(changed());
        }
        let root_written = match expected_root {
            Some(old) => sqlx::query(
                "UPDATE mac_root SET wrapped = $1, key_holder = $2, updated_at = $3 \
                 WHERE id = 1 AND wrapped = $4",
            )
            .bind(root.wrapped.clone())
            .bind(root.key_holder.clone())
            .bind(at.micros())
            .bind(old.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected(),
            None => sqlx::query(
                "INSERT INTO mac_root (id, wrapped, key_holder, updated_at) VALUES (1, $1, $2, $3)",
            )
            .bind(root.wrapped.clone())
            .bind(root.key_holder.clone())
            .bind(at.micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| match db_error(e) {
                StoreError::Conflict(_) => changed(),
                other => other,
            })?
            .rows_affected(),
        };
        if root_written != 1 {
            return Err(changed());
        }
        tx.commit().await.map_err(db_error)
    }
}
