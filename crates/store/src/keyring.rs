//! Stored key-encryption keys.

use alter_core::ports::{KeyringStore, StoreError, StoreResult, WrappedKek};
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
}
