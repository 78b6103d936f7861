//! Request nonces, and the time partitions PostgreSQL keeps them (and audit events) in.

use alter_core::ids::KeyId;
use alter_core::ports::{NonceStore, StoreError, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;

use crate::group_commit::{Op, Outcome};
use crate::partitions::{self, Partitioned};
use crate::{Engine, SqlStore, db_error};

#[async_trait]
impl NonceStore for SqlStore {
    async fn claim_nonce(
        &self,
        key: KeyId,
        nonce: &str,
        signed_at: Timestamp,
    ) -> StoreResult<bool> {
        let op = Op::ClaimNonce {
            key,
            nonce: nonce.to_owned(),
            at: signed_at,
        };
        match self.group.run(vec![op]).await?.as_slice() {
            [Outcome::Claimed(fresh)] => Ok(*fresh),
            _ => Err(StoreError::Other("unexpected nonce outcome".into())),
        }
    }

    async fn prune_nonces(&self, before: Timestamp) -> StoreResult<u64> {
        let rows = match self.engine {
            Engine::Sqlite => "DELETE FROM request_nonces WHERE signed_at < $1",
            Engine::Postgres => {
                // Whole partitions, then what fell outside them.
                for name in
                    partitions::older_than(&self.write, Partitioned::Nonces, before.micros())
                        .await?
                {
                    partitions::drop_partition(&self.write, &name).await?;
                }
                "DELETE FROM request_nonces_default WHERE signed_at < $1"
            }
        };
        let mut pruned = sqlx::query(rows)
            .bind(before.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected();
        if self.engine == Engine::Postgres {
            pruned += partitions::prune_legacy_nonces(&self.write, before).await?;
        }
        Ok(pruned)
    }

    async fn maintain_time_partitions(&self, now: Timestamp) -> StoreResult<()> {
        if self.engine == Engine::Postgres {
            for table in [Partitioned::Nonces, Partitioned::AuditEvents] {
                partitions::create_ahead(&self.write, table, now.micros()).await?;
            }
        }
        Ok(())
    }
}
