//! Group commit for the hot writes: request nonces, and the audit events of credential
//! releases. Concurrent requests hand their writes to a few writer tasks, which commit whatever
//! has queued up in one transaction — one fsync for many requests — and answer each request
//! only after that commit. A request waits for at most one commit in progress plus its own; a
//! lone request is committed at once.
//!
//! If a batch fails, its jobs are retried one transaction each, so one bad job fails alone.

use std::sync::Arc;

use alter_core::audit::AuditEvent;
use alter_core::ids::{GrantId, KeyId};
use alter_core::ports::{StoreError, StoreResult};
use alter_core::time::Timestamp;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{audit, db_error};

/// Most jobs one transaction takes.
const MAX_BATCH: usize = 256;
/// Jobs waiting beyond this make callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

/// One write.
#[derive(Debug)]
pub(crate) enum Op {
    /// Records a nonce; answers whether it was new.
    ClaimNonce {
        key: KeyId,
        nonce: String,
        at: Timestamp,
    },
    /// Appends an event to its app's chain.
    Append(Box<AuditEvent>),
    /// Refreshes a grant's last use.
    TouchGrant { id: GrantId, at: Timestamp },
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A nonce claim: true if the nonce was new.
    Claimed(bool),
    /// Any other write.
    Done,
}

struct Job {
    ops: Vec<Op>,
    reply: oneshot::Sender<StoreResult<Vec<Outcome>>>,
}

/// The handle requests enqueue their writes through.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} ops)", self.ops.len())
    }
}

impl GroupCommit {
    /// Starts `writers` writer tasks on `pool`.
    pub(crate) fn start(pool: AnyPool, writers: usize) -> GroupCommit {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_loop(pool.clone(), jobs.clone()));
        }
        GroupCommit { queue }
    }

    /// Commits `ops` (in order, in one transaction with whatever else is queued) and returns
    /// their outcomes once they are durable.
    pub(crate) async fn run(&self, ops: Vec<Op>) -> StoreResult<Vec<Outcome>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { ops, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?
    }
}

async fn write_loop(pool: AnyPool, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let batch = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        match commit(&pool, batch.iter().map(|j| j.ops.as_slice())).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let outcome = commit(&pool, std::iter::once(job.ops.as_slice()))
                        .await
                        .map(|mut o| o.pop().unwrap_or_default());
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs every job's ops in one transaction.
async fn commit<'a>(
    pool: &AnyPool,
    jobs: impl Iterator<Item = &'a [Op]>,
) -> StoreResult<Vec<Vec<Outcome>>> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let mut outcomes = Vec::new();
    for ops in jobs {
        let mut job = Vec::with_capacity(ops.len());
        for op in ops {
            job.push(apply(&mut tx, op).await?);
        }
        outcomes.push(job);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(outcomes)
}

async fn apply(conn: &mut AnyConnection, op: &Op) -> StoreResult<Outcome> {
    match op {
        Op::ClaimNonce { key, nonce, at } => {
            let inserted = sqlx::query(
                "INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key_id, nonce) DO NOTHING",
            )
            .bind(key.to_string())
            .bind(nonce)
            .bind(at.micros())
            .execute(&mut *conn)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(Outcome::Claimed(inserted == 1))
        }
        Op::Append(event) => {
            audit::append(conn, event).await?;
            Ok(Outcome::Done)
        }
        Op::TouchGrant { id, at } => {
            sqlx::query("UPDATE grants SET last_used_at = $1 WHERE id = $2")
                .bind(at.micros())
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            Ok(Outcome::Done)
        }
    }
}
