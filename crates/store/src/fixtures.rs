//! Bulk fixtures for benchmarks and load tests: rows written straight into the tables, many per
//! transaction, without audit events. The server never calls this.

use alter_core::grants::{Grant, GrantStatus};
use alter_core::ids::{AppId, GrantId, SecretId};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;

use crate::{SqlStore, db_error};

/// Rows per transaction.
const BATCH: usize = 5_000;

impl SqlStore {
    /// Appends `count` active system-principal grants of `secret` to the app, numbered after
    /// its last grant, labelled `bench-N`.
    pub async fn seed_system_grants(
        &self,
        app: AppId,
        secret: SecretId,
        count: usize,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut done = 0;
        while done < count {
            let n = BATCH.min(count - done);
            let mut tx = self.write.begin().await.map_err(db_error)?;
            let row = sqlx::query(
                "UPDATE app_counters SET grants = grants + $1 WHERE app_id = $2 RETURNING grants",
            )
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(app.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            let last: i64 = crate::rows::get(&row, "grants")?;
            let first = last - i64::try_from(n).unwrap_or(0) + 1;
            for seq in first..=last {
                let grant = Grant {
                    id: GrantId::new(),
                    app_id: app,
                    seq,
                    credential: alter_core::credentials::CredentialRef::ManagedSecret(secret),
                    principal: alter_core::grants::Principal::System,
                    label: Some(format!("bench-{seq}")),
                    status: GrantStatus::Active,
                    lifetime: Default::default(),
                    expires_at: None,
                    parent_grant_id: None,
                    depth: 0,
                    delegable: false,
                    delegated_by: None,
                    created_by: alter_core::grants::CreatedBy::Developer,
                    created_at: at,
                    revoked_at: None,
                    revoke_reason: None,
                    last_used_at: None,
                    scope_mismatch: false,
                };
                crate::grants::insert(&mut tx, &grant, seq).await?;
            }
            tx.commit().await.map_err(db_error)?;
            done += n;
        }
        Ok(())
    }
}
