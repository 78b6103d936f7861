//! Background jobs on one node at a time: a node runs a job while it holds the job's lease in
//! the database ([`LeaseStore`](crate::ports::LeaseStore)), renewing it each run. Every job's
//! steps are conditional writes anyway, so two nodes running one at once (clocks far apart, a
//! lease run out mid-run) do the work twice at worst, never wrongly; the lease saves the work.

use std::time::Duration;

use crate::error::Result;
use crate::vault::Vault;

impl Vault {
    /// Takes or renews `job`'s lease for the node `holder` until `ttl` from now: whether this
    /// node is to run the job now.
    pub async fn hold_job_lease(&self, job: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        Ok(self
            .store()
            .take_lease(job, holder, now, now.plus_seconds(ttl))
            .await?)
    }

    /// Gives up `job`'s lease if `holder` has it (a node stopping), so another node takes the
    /// job at its next run rather than when the lease runs out.
    pub async fn release_job_lease(&self, job: &str, holder: &str) -> Result<()> {
        Ok(self.store().release_lease(job, holder).await?)
    }
}
