//! Group commit for the hot writes: request nonces, and the audit events of credential
//! releases. Concurrent requests hand their writes to a few writer tasks, which commit whatever
//! has queued up in one transaction — one fsync for many requests — and answer each request
//! only after that commit. A request waits for at most one commit in progress plus its own; a
//! lone request is committed at once.
//!
//! If a batch fails, its jobs are retried one transaction each, so one bad job fails alone —
//! unless the database is unreachable, when all fail at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alter_core::audit::{AuditEvent, ChainKey};
use alter_core::ids::{GrantId, KeyId};
use alter_core::ports::{StoreError, StoreResult};
use alter_core::time::Timestamp;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::rows::get;
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
    wait_timeout: Duration,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} ops)", self.ops.len())
    }
}

impl GroupCommit {
    /// Starts `writers` writer tasks on `pool`, chaining events with `chain`; a request waits
    /// at most `wait_timeout` for its commit.
    pub(crate) fn start(
        pool: AnyPool,
        chain: ChainKey,
        writers: usize,
        wait_timeout: Duration,
    ) -> GroupCommit {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_loop(pool.clone(), chain.clone(), jobs.clone()));
        }
        GroupCommit {
            queue,
            wait_timeout,
        }
    }

    /// Commits `ops` (in order, in one transaction with whatever else is queued) and returns
    /// their outcomes once they are durable.
    ///
    /// Past the wait timeout the caller gets "unavailable" and so answers an error, never a
    /// credential. The job itself is not withdrawn: if it was queued it may still commit later
    /// — its nonce then stays claimed (the client retries with a fresh one anyway) and a
    /// release's audit event records a release whose answer was an error, which errs on the
    /// side of over-reporting.
    pub(crate) async fn run(&self, ops: Vec<Op>) -> StoreResult<Vec<Outcome>> {
        let commit = async {
            let (reply, answer) = oneshot::channel();
            self.queue
                .send(Job { ops, reply })
                .await
                .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?;
            answer
                .await
                .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?
        };
        tokio::time::timeout(self.wait_timeout, commit)
            .await
            .map_err(|_| StoreError::Unavailable("timed out waiting for the group commit".into()))?
    }
}

async fn write_loop(pool: AnyPool, chain: ChainKey, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
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
        match commit(&pool, &chain, batch.iter().map(|j| j.ops.as_slice())).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            // One job may have failed the batch: retry each alone. Not when the database is
            // unreachable — each retry would wait out the pool's acquire timeout in turn.
            Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                for job in batch {
                    let outcome = commit(&pool, &chain, std::iter::once(job.ops.as_slice()))
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

/// Runs every job's ops in one transaction, with a few statements for the whole batch rather
/// than a few per op: the nonces in one `INSERT`, the grant touches in one `UPDATE`, the events
/// appended per app (see [`audit::append_all`]). The appends go last, so an app's chain head —
/// locked from its update to the commit — is held as briefly as possible.
async fn commit<'a>(
    pool: &AnyPool,
    chain: &ChainKey,
    jobs: impl Iterator<Item = &'a [Op]>,
) -> StoreResult<Vec<Vec<Outcome>>> {
    let jobs: Vec<&[Op]> = jobs.collect();
    let ops = || jobs.iter().flat_map(|ops| ops.iter());
    let mut tx = pool.begin().await.map_err(db_error)?;

    let claims: Vec<(KeyId, &str, Timestamp)> = ops()
        .filter_map(|op| match op {
            Op::ClaimNonce { key, nonce, at } => Some((*key, nonce.as_str(), *at)),
            _ => None,
        })
        .collect();
    let mut fresh = claim_nonces(&mut tx, &claims).await?.into_iter();

    let touched: Vec<(GrantId, Timestamp)> = ops()
        .filter_map(|op| match op {
            Op::TouchGrant { id, at } => Some((*id, *at)),
            _ => None,
        })
        .collect();
    touch_grants(&mut tx, &touched).await?;

    let events: Vec<&AuditEvent> = ops()
        .filter_map(|op| match op {
            Op::Append(event) => Some(event.as_ref()),
            _ => None,
        })
        .collect();
    audit::append_all(&mut tx, chain, &events).await?;
    tx.commit().await.map_err(db_error)?;

    Ok(jobs
        .iter()
        .map(|ops| {
            ops.iter()
                .map(|op| match op {
                    Op::ClaimNonce { .. } => Outcome::Claimed(fresh.next().unwrap_or(false)),
                    _ => Outcome::Done,
                })
                .collect()
        })
        .collect())
}

/// Inserts the nonces in one statement; for each, whether it was new. A nonce sent twice in
/// one batch is new only the first time.
async fn claim_nonces(
    conn: &mut AnyConnection,
    claims: &[(KeyId, &str, Timestamp)],
) -> StoreResult<Vec<bool>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<String> = (0..claims.len())
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    let sql = format!(
        "INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES {} \
         ON CONFLICT (key_id, nonce) DO NOTHING RETURNING key_id, nonce",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(claims.len() == 1);
    for (key, nonce, at) in claims {
        query = query
            .bind(key.to_string())
            .bind((*nonce).to_owned())
            .bind(at.micros());
    }
    let inserted = query.fetch_all(&mut *conn).await.map_err(db_error)?;
    let mut new: HashSet<(String, String)> = inserted
        .iter()
        .map(|row| Ok((get(row, "key_id")?, get(row, "nonce")?)))
        .collect::<StoreResult<_>>()?;
    Ok(claims
        .iter()
        .map(|(key, nonce, _)| new.remove(&(key.to_string(), (*nonce).to_owned())))
        .collect())
}

/// Refreshes the grants' last use, to the batch's latest time (well within the resolution
/// `last_used_at` is kept at).
async fn touch_grants(
    conn: &mut AnyConnection,
    touched: &[(GrantId, Timestamp)],
) -> StoreResult<()> {
    let Some(at) = touched.iter().map(|(_, at)| *at).max() else {
        return Ok(());
    };
    let mut ids: Vec<String> = touched.iter().map(|(id, _)| id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let params: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "UPDATE grants SET last_used_at = $1 WHERE id IN ({})",
        params.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .persistent(ids.len() == 1)
        .bind(at.micros());
    for id in ids {
        query = query.bind(id);
    }
    query.execute(&mut *conn).await.map_err(db_error)?;
    Ok(())
}
