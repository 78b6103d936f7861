//! Leases that keep a background job on one node at a time.

use alter_core::ports::{LeaseStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;

use crate::{SqlStore, db_error};

/// How far apart nodes' clocks may be (as for nonces: `docs/deploy.md`).
const MAX_CLOCK_SKEW_SECONDS: i64 = 60;

#[async_trait]
impl LeaseStore for SqlStore {
    async fn take_lease(
        &self,
        job: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        // One statement: taking a free or run-out lease, or renewing one's own, is atomic on
        // both engines, so two nodes asking at once never both hold it. A lease running
        // further ahead than any node sets one (its term plus the clock skew nodes may have)
        // was not set by a node: it is taken too, so a row planted to run forever cannot stop
        // a job.
        let taken = sqlx::query(
            "INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4 \
                 OR job_leases.expires_at > $5 \
             RETURNING holder",
        )
        .bind(job)
        .bind(holder)
        .bind(until.micros())
        .bind(now.micros())
        .bind(until.plus_seconds(MAX_CLOCK_SKEW_SECONDS).micros())
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?;
        Ok(taken.is_some())
    }

    async fn release_lease(&self, job: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM job_leases WHERE job = $1 AND holder = $2")
            .bind(job)
            .bind(holder)
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
