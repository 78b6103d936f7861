//! Group commit for the hot writes: request nonces, and the audit events of credential
//! releases. Concurrent requests hand their writes to a few writer tasks, which commit whatever
//! has queued up in one transaction — one fsync for many requests — and answer each request
//! only after that commit. A request waits for at most one commit in progress plus its own; a
//! lone request is committed at once.
//!
//! If a batch fails, its jobs are retried one transaction each, so one bad job fails alone —
//! unless the database is unreachable, when all fail at once. A job may carry a condition (a
//! release's grant, chain, agents and key still active): checked inside the transaction, it
//! leaves that job's writes out of the batch when it fails, and only that job's.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alter_core::audit::{AuditEvent, ChainKey};
use alter_core::caller::NonceClaim;
use alter_core::ids::{AppId, GrantId, KeyId};
use alter_core::ports::{StoreError, StoreResult};
use alter_core::release::ReleaseCondition;
use alter_core::time::Timestamp;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::rows::get;
use crate::{chain, db_error};

/// Most jobs one transaction takes.
const MAX_BATCH: usize = 256;
/// How long a batch of lazy jobs alone waits for a job someone waits on, to share its commit:
/// the record of a proxied call's outcome then costs no fsync of its own, and the next
/// release does not queue behind one.
const LAZY_WAIT: Duration = Duration::from_millis(20);
/// Jobs waiting beyond this make callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;
/// The `Any` driver's name for PostgreSQL connections.
const POSTGRES: &str = "PostgreSQL";

/// One write.
#[derive(Debug)]
pub(crate) enum Op {
    /// Records a nonce; answers whether it was new. A job whose nonce was seen before (a
    /// replay) makes none of its other writes.
    ClaimNonce {
        key: KeyId,
        nonce: String,
        at: Timestamp,
    },
    /// Appends an event to its app's chain.
    Append(Box<AuditEvent>),
    /// Refreshes a grant's last use.
    TouchGrant { id: GrantId, at: Timestamp },
    /// Makes the job's other writes only if the condition holds in the committing transaction.
    Require(Box<ReleaseCondition>),
}

impl Op {
    /// The claim of a request's nonce.
    pub(crate) fn claim(claim: NonceClaim) -> Op {
        Op::ClaimNonce {
            key: claim.key,
            nonce: claim.nonce,
            at: claim.at,
        }
    }
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A nonce claim: true if the nonce was new.
    Claimed(bool),
    /// Any other write.
    Done,
    /// The job's condition failed, or it is a replay: none of its other writes were made.
    Refused,
}

struct Job {
    ops: Vec<Op>,
    reply: oneshot::Sender<StoreResult<Vec<Outcome>>>,
    /// Nobody waits on it: it may wait for company (see [`LAZY_WAIT`]).
    lazy: bool,
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
                .send(Job {
                    ops,
                    reply,
                    lazy: false,
                })
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

impl GroupCommit {
    /// Queues `ops` for a commit shortly without waiting for it: for writes whose caller has
    /// nothing to decide on their outcome (the record of what a proxied call came to). They
    /// join the next batch someone waits on, or commit alone after [`LAZY_WAIT`]. Waits only
    /// if the queue is full; a failure is logged, never answered.
    pub(crate) async fn submit(&self, ops: Vec<Op>, what: &'static str) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                ops,
                reply,
                lazy: true,
            })
            .await
            .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?;
        tokio::spawn(async move {
            match answer.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(%error, "{what} could not be written"),
                Err(_) => tracing::error!("{what} was dropped: the database writer stopped"),
            }
        });
        Ok(())
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
            if batch.iter().all(|job| job.lazy)
                && let Ok(Some(job)) = tokio::time::timeout(LAZY_WAIT, jobs.recv()).await
            {
                batch.push(job);
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
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
/// than a few per op: the conditions checked per table, the nonces in one `INSERT`, the grant
/// touches in one `UPDATE`, the events appended per app (see [`chain::append_all`]). The
/// appends go last, so an app's chain head — locked from its update to the commit — is held as
/// briefly as possible.
async fn commit<'a>(
    pool: &AnyPool,
    chain: &ChainKey,
    jobs: impl Iterator<Item = &'a [Op]>,
) -> StoreResult<Vec<Vec<Outcome>>> {
    let jobs: Vec<&[Op]> = jobs.collect();
    let mut tx = pool.begin().await.map_err(db_error)?;

    // Every job's nonce is claimed, its condition holding or not (a refused release still
    // used it); a job whose nonce was seen before is a replay and writes nothing else.
    let claims: Vec<(KeyId, &str, Timestamp)> = jobs
        .iter()
        .flat_map(|ops| ops.iter())
        .filter_map(|op| match op {
            Op::ClaimNonce { key, nonce, at } => Some((*key, nonce.as_str(), *at)),
            _ => None,
        })
        .collect();
    let mut fresh = claim_nonces(&mut tx, &claims).await?.into_iter();
    let claimed: Vec<Vec<bool>> = jobs
        .iter()
        .map(|ops| {
            ops.iter()
                .filter(|op| matches!(op, Op::ClaimNonce { .. }))
                .map(|_| fresh.next().unwrap_or(false))
                .collect()
        })
        .collect();
    let replayed: Vec<bool> = claimed.iter().map(|fresh| fresh.contains(&false)).collect();

    let refused = refused_jobs(&mut tx, &jobs, &replayed).await?;
    let ops = || {
        jobs.iter()
            .zip(&refused)
            .filter(|(_, refused)| !**refused)
            .flat_map(|(ops, _)| ops.iter())
    };

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
    chain::append_all(&mut tx, chain, &events).await?;
    tx.commit().await.map_err(db_error)?;

    Ok(jobs
        .iter()
        .zip(refused)
        .zip(claimed)
        .map(|((ops, refused), claimed)| {
            let mut claimed = claimed.into_iter();
            ops.iter()
                .map(|op| match op {
                    Op::ClaimNonce { .. } => Outcome::Claimed(claimed.next().unwrap_or(false)),
                    _ if refused => Outcome::Refused,
                    _ => Outcome::Done,
                })
                .collect()
        })
        .collect())
}

/// For each job, whether it writes nothing: a replay (`replayed`), or its condition fails —
/// checked with one statement per table for the whole batch; expiries are judged at the batch's latest release time. On PostgreSQL the rows found
/// active stay locked until the commit — the grants as for an update, since the batch may touch
/// them — so a revocation, pause or key revocation still in flight waits for this commit, and
/// one that committed first is seen. (SQLite has one writer connection: nothing commits in
/// between.)
async fn refused_jobs(
    conn: &mut AnyConnection,
    jobs: &[&[Op]],
    replayed: &[bool],
) -> StoreResult<Vec<bool>> {
    let conditions: Vec<Option<&ReleaseCondition>> = jobs
        .iter()
        .zip(replayed)
        .map(|(ops, replayed)| {
            ops.iter().find_map(|op| match op {
                Op::Require(condition) if !replayed => Some(condition.as_ref()),
                _ => None,
            })
        })
        .collect();
    let Some(at) = conditions.iter().flatten().map(|c| c.at).max() else {
        return Ok(replayed.to_vec());
    };
    let all = |ids: fn(&ReleaseCondition) -> Vec<String>| -> BTreeSet<String> {
        conditions.iter().flatten().flat_map(|c| ids(c)).collect()
    };
    let grants = ids_where(
        conn,
        "grants",
        "status = 'active' AND (expires_at IS NULL OR expires_at > $1)",
        &[at],
        all(|c| c.grants.iter().map(ToString::to_string).collect()),
        "FOR NO KEY UPDATE",
    )
    .await?;
    let agents = ids_where(
        conn,
        "agents",
        "status = 'active'",
        &[],
        all(|c| c.agents.iter().map(ToString::to_string).collect()),
        "FOR SHARE",
    )
    .await?;
    let keys = ids_where(
        conn,
        "api_keys",
        "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
         AND (grace_expires_at IS NULL OR grace_expires_at > $2)",
        &[at, at],
        all(|c| vec![c.key.to_string()]),
        "FOR SHARE",
    )
    .await?;
    let rules = current_rules(conn, conditions.iter().flatten().filter_map(|c| c.rules)).await?;
    Ok(conditions
        .iter()
        .zip(replayed)
        .map(|(condition, replayed)| {
            *replayed
                || condition.is_some_and(|c| {
                    !(c.grants.iter().all(|g| grants.contains(&g.to_string()))
                        && c.agents.iter().all(|a| agents.contains(&a.to_string()))
                        && keys.contains(&c.key.to_string())
                        && c.rules.is_none_or(|read| rules.contains(&read)))
                })
        })
        .collect())
}

/// Which of the (app, rules version) pairs the releases were decided under are still current,
/// locked on PostgreSQL so a rule written meanwhile waits for this commit (rule writes bump
/// `apps.rules_version`).
async fn current_rules(
    conn: &mut AnyConnection,
    read: impl Iterator<Item = (AppId, i64)>,
) -> StoreResult<HashSet<(AppId, i64)>> {
    let read: BTreeSet<(AppId, i64)> = read.collect();
    let lock = if conn.backend_name() == POSTGRES {
        " FOR SHARE"
    } else {
        ""
    };
    let sql = format!("SELECT rules_version FROM apps WHERE id = $1{lock}");
    let mut current = HashSet::new();
    for (app, version) in read {
        let row = sqlx::query(&sql)
            .bind(app.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
        if let Some(row) = row
            && get::<i64>(&row, "rules_version")? == version
        {
            current.insert((app, version));
        }
    }
    Ok(current)
}

/// Which of `ids` name rows of `table` meeting `condition` (whose `$1`, `$2`… are `times`),
/// locked on PostgreSQL with `lock`, in id order so two writers never wait on each other.
async fn ids_where(
    conn: &mut AnyConnection,
    table: &str,
    condition: &str,
    times: &[Timestamp],
    ids: BTreeSet<String>,
    lock: &str,
) -> StoreResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let params: Vec<String> = (0..ids.len())
        .map(|i| format!("${}", times.len() + i + 1))
        .collect();
    let lock = if conn.backend_name() == POSTGRES {
        lock
    } else {
        ""
    };
    let sql = format!(
        "SELECT id FROM {table} WHERE {condition} AND id IN ({}) ORDER BY id {lock}",
        params.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(ids.len() == 1);
    for at in times {
        query = query.bind(at.micros());
    }
    for id in ids {
        query = query.bind(id);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(db_error)?;
    rows.iter().map(|row| get(row, "id")).collect()
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
