//! What the store measures for the server's metrics endpoint: the group commit's batch sizes
//! and commit latency, and its connection pools.

use alter_core::metrics::Histogram;

/// Upper bounds of the batch-size histogram (jobs per transaction; at most 256).
pub const BATCH_SIZE_BOUNDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Upper bounds of the commit-latency histogram, in seconds.
pub const COMMIT_SECONDS_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The group commit's batches: how many jobs each took, and how long its commit took
/// (connection acquired, statements run, committed; a failed batch counts too).
#[derive(Debug)]
pub struct CommitStats {
    /// Jobs per batch.
    pub batch_sizes: Histogram,
    /// Seconds per batch commit.
    pub commit_seconds: Histogram,
}

impl Default for CommitStats {
    fn default() -> Self {
        CommitStats {
            batch_sizes: Histogram::new(&BATCH_SIZE_BOUNDS),
            commit_seconds: Histogram::new(&COMMIT_SECONDS_BOUNDS),
        }
    }
}

impl CommitStats {
    /// Records a batch of `jobs` whose commit took `took`.
    pub(crate) fn record(&self, jobs: usize, took: std::time::Duration) {
        self.batch_sizes.observe(jobs as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }
}

/// One connection pool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `read` or `write` on SQLite (one writer connection, many readers); `shared` on
    /// PostgreSQL (one pool for both).
    pub pool: &'static str,
    /// Connections open.
    pub size: u32,
    /// Of them, idle.
    pub idle: u32,
    /// The most it opens.
    pub max: u32,
}
