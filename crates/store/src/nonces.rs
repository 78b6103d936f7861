//! Request nonces.

use alter_core::ids::KeyId;
use alter_core::ports::{NonceStore, StoreError, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;

use crate::group_commit::{Op, Outcome};
use crate::{SqlStore, db_error};

#[async_trait]
impl NonceStore for SqlStore {
    async fn claim_nonce(&self, key: KeyId, nonce: &str, at: Timestamp) -> StoreResult<bool> {
        let op = Op::ClaimNonce {
            key,
            nonce: nonce.to_owned(),
            at,
        };
        match self.group.run(vec![op]).await?.as_slice() {
            [Outcome::Claimed(fresh)] => Ok(*fresh),
            _ => Err(StoreError::Other("unexpected nonce outcome".into())),
        }
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
