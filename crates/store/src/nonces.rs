//! Request nonces.

use alter_core::ids::KeyId;
use alter_core::ports::{NonceStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;

use crate::{SqlStore, db_error};

#[async_trait]
impl NonceStore for SqlStore {
    async fn claim_nonce(&self, key: KeyId, nonce: &str, at: Timestamp) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, nonce) DO NOTHING",
        )
        .bind(key.to_string())
        .bind(nonce)
        .bind(at.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn prune_nonces(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM request_nonces WHERE seen_at < $1")
            .bind(before.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected())
    }
}
