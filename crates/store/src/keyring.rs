//! Stored key-encryption keys.

use alter_core::ports::{KeyringStore, StoreError, StoreResult, StoredMacRoot, WrappedKek};
use alter_core::time::Timestamp;

use async_trait::async_trait;

use crate::rows::get;
use crate::{SqlStore, db_error};

#[async_trait]
impl KeyringStore for SqlStore {
    async fn load_keks(&self) -> StoreResult<Vec<WrappedKek>> {
        let rows = sqlx::query("SELECT version, wrapped FROM keks ORDER BY version")
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let version: i64 = get(row, "version")?;
                Ok(WrappedKek {
                    version: u32::try_from(version)
                        .map_err(|_| StoreError::Corrupt("kek version".into()))?,
                    wrapped: get(row, "wrapped")?,
                })
            })
            .collect()
    }

    async fn insert_kek(&self, kek: &WrappedKek, at: Timestamp) -> StoreResult<()> {
        sqlx::query("INSERT INTO keks (version, wrapped, created_at) VALUES ($1, $2, $3)")
            .bind(i64::from(kek.version))
            .bind(kek.wrapped.clone())
            .bind(at.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
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
