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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alter_core::audit::{AuditEvent, ChainKey};
use alter_core::caller::NonceClaim;
use alter_core::ids::{AppId, GrantId, KeyId};
use alter_core::ports::{StoreError, StoreResult};
use alter_core::release::ReleaseCondition;
use alter_core::time::Timestamp;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::metrics::CommitStats;
use crate::rows::get;
use crate::script::{Column, Script, Stmt};
use crate::{IDLE_PING, POSTGRES, chain, db_error};

/// Most jobs one transaction takes.
const MAX_BATCH: usize = 256;
/// How long a batch of lazy jobs alone waits for a job someone waits on, to share its commit:
/// the record of a proxied call's outcome then costs no fsync of its own, and the next
/// release does not queue behind one.
const LAZY_WAIT: Duration = Duration::from_millis(20);
/// Jobs waiting beyond this make callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

/// One write.
#[derive(Debug)]
pub(crate) enum Op {
    /// Records a nonce; answers whether it was new. A job whose nonce was seen before (a
    /// replay) makes none of its other writes.
    ClaimNonce {
        key: KeyId,
        nonce: String,
        /// The request's signed timestamp ([`NonceClaim::at`]).
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
        stats: Arc<CommitStats>,
    ) -> GroupCommit {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        // Each writer keeps a connection only while the pool keeps more than as many again
        // for everything else.
        let writers = writers.max(1);
        let keep = pool.options().get_max_connections() as usize > 2 * writers;
        for _ in 0..writers {
            tokio::spawn(write_loop(
                pool.clone(),
                keep,
                chain.clone(),
                jobs.clone(),
                stats.clone(),
            ));
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

/// The queue, locked, and its next job (none once every sender is gone). Cancelling it loses
/// no job: the job is taken in its last step.
async fn next_job(
    jobs: &Mutex<mpsc::Receiver<Job>>,
) -> (
    tokio::sync::MutexGuard<'_, mpsc::Receiver<Job>>,
    Option<Job>,
) {
    let mut jobs = jobs.lock().await;
    let first = jobs.recv().await;
    (jobs, first)
}

/// A writer task's connection, kept from one batch to the next (when the pool has room to
/// spare): handing a connection back to the pool costs a round trip (sqlx pings each one
/// returned) and taking one out may cost another. A writer waiting [`IDLE_PING`] for work
/// hands its connection back, so the pool's liveness check sees it again before the next
/// batch runs on it, and closing the pool waits at most that long for it.
struct Held {
    pool: AnyPool,
    conn: Option<PoolConnection<Any>>,
}

impl Held {
    fn new(pool: AnyPool) -> Held {
        Held { pool, conn: None }
    }

    fn holds(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection held, or one taken from the pool. Once the pool is closing, the one
    /// held is let go (closed) rather than used again.
    async fn get(&mut self) -> StoreResult<&mut PoolConnection<Any>> {
        if self.pool.is_closed() {
            self.conn = None;
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(db_error)?,
        };
        Ok(self.conn.insert(conn))
    }

    /// Hands the connection held back to the pool.
    fn release(&mut self) {
        self.conn = None;
    }

    /// Closes the connection held rather than handing it back.
    fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

async fn write_loop(
    pool: AnyPool,
    keep: bool,
    chain: ChainKey,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    stats: Arc<CommitStats>,
) {
    let mut conn = Held::new(pool);
    loop {
        let batch = {
            let waited = if conn.holds() {
                match tokio::time::timeout(IDLE_PING, next_job(&jobs)).await {
                    Ok(waited) => waited,
                    Err(_) => {
                        conn.release();
                        next_job(&jobs).await
                    }
                }
            } else {
                next_job(&jobs).await
            };
            let (mut jobs, Some(first)) = waited else {
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
        let started = Instant::now();
        let committed = commit(&mut conn, &chain, batch.iter().map(|j| j.ops.as_slice())).await;
        stats.record(batch.len(), started.elapsed());
        match committed {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            // One job may have failed the batch: retry each alone. Not when the database is
            // unreachable — each retry would wait out the pool's acquire timeout in turn.
            Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                for job in batch {
                    let outcome = commit(&mut conn, &chain, std::iter::once(job.ops.as_slice()))
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
        if !keep {
            conn.release();
        }
    }
}

/// Runs every job's ops in one transaction, with a few statements for the whole batch rather
/// than a few per op, in two scripts (one hand-off each on SQLite; on PostgreSQL one joined
/// statement each, with `BEGIN` and `COMMIT` their own round trips — see [`Script`]):
///
/// 1. begin; claim the nonces in one `INSERT`; read which of the conditions' grants, agents,
///    keys and rules versions still hold, one statement per table; read the chain heads;
/// 2. refresh the grants' last use in one `UPDATE`; append the events per app (see
///    [`chain::append_statements`]); commit.
///
/// Every job's nonce is claimed, its condition holding or not (a refused release still used
/// it); a job whose nonce was seen before is a replay and writes nothing else. On PostgreSQL
/// the rows read stay locked until the commit, in one order (grants, agents, keys, apps, chain
/// heads) that every other writer follows too, so two writers never wait on each other.
async fn commit<'a>(
    held: &mut Held,
    chain: &ChainKey,
    jobs: impl Iterator<Item = &'a [Op]>,
) -> StoreResult<Vec<Vec<Outcome>>> {
    let jobs: Vec<&[Op]> = jobs.collect();
    let conn = held.get().await?;
    let committed = commit_on(conn, chain, &jobs).await;
    if committed.is_err() {
        // A connection left inside a transaction it cannot end is not used again.
        if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_err() {
            held.discard();
        }
    }
    committed
}

async fn commit_on(
    conn: &mut AnyConnection,
    chain: &ChainKey,
    jobs: &[&[Op]],
) -> StoreResult<Vec<Vec<Outcome>>> {
    let postgres = conn.backend_name() == POSTGRES;
    // A batch of nonce claims alone is one statement, which PostgreSQL commits by itself: no
    // transaction around it, two round trips fewer for a signed request that only claims its
    // nonce.
    let alone = postgres
        && jobs
            .iter()
            .flat_map(|ops| ops.iter())
            .all(|op| matches!(op, Op::ClaimNonce { .. }));
    let mut read = Script::new();
    if !alone {
        read.push(begin(postgres));
    }
    let claims: Vec<(KeyId, &str, Timestamp)> = jobs
        .iter()
        .flat_map(|ops| ops.iter())
        .filter_map(|op| match op {
            Op::ClaimNonce { key, nonce, at } => Some((*key, nonce.as_str(), *at)),
            _ => None,
        })
        .collect();
    let nonces = claim_nonces(&mut read, &claims);
    let conditions: Vec<Option<&ReleaseCondition>> = jobs
        .iter()
        .map(|ops| {
            ops.iter().find_map(|op| match op {
                Op::Require(condition) => Some(condition.as_ref()),
                _ => None,
            })
        })
        .collect();
    let checks = Checks::read(&mut read, &conditions, postgres);
    let all_events = jobs
        .iter()
        .flat_map(|ops| ops.iter())
        .filter_map(|op| match op {
            Op::Append(event) => Some(event.as_ref()),
            _ => None,
        });
    let heads = chain::read_heads(&mut read, all_events);
    let results = read.run(&mut *conn).await?;

    let mut fresh = nonces.fresh(&results, &claims)?.into_iter();
    let claimed: Vec<Vec<bool>> = jobs
        .iter()
        .map(|ops| {
            ops.iter()
                .filter(|op| matches!(op, Op::ClaimNonce { .. }))
                .map(|_| fresh.next().unwrap_or(false))
                .collect()
        })
        .collect();
    let holding = checks.holding(&results)?;
    let refused: Vec<bool> = conditions
        .iter()
        .zip(&claimed)
        .map(|(condition, claimed)| {
            claimed.contains(&false) || condition.is_some_and(|c| !holding.hold(c))
        })
        .collect();
    let ops = || {
        jobs.iter()
            .zip(&refused)
            .filter(|(_, refused)| !**refused)
            .flat_map(|(ops, _)| ops.iter())
    };

    let mut write = Script::new();
    let touched: Vec<(GrantId, Timestamp)> = ops()
        .filter_map(|op| match op {
            Op::TouchGrant { id, at } => Some((*id, *at)),
            _ => None,
        })
        .collect();
    touch_grants(&mut write, &touched);
    let events: Vec<&AuditEvent> = ops()
        .filter_map(|op| match op {
            Op::Append(event) => Some(event.as_ref()),
            _ => None,
        })
        .collect();
    let heads = heads.found(&results)?;
    chain::append_statements(&mut write, chain, &heads, &events)?;
    if !alone {
        write.push(Stmt::new("COMMIT"));
    }
    write.run(conn).await?;

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

/// Begins a writing transaction. On SQLite it takes the write lock at once, so what is read
/// next (the chain heads, a condition's rows) cannot move before the commit.
fn begin(postgres: bool) -> Stmt {
    Stmt::new(if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" })
}

/// Begins a transaction on `conn` and reads whether `condition` still holds, as a release's
/// commit reads it: on PostgreSQL its rows stay locked until the transaction ends, taken in the
/// order every writer follows (so the chain head is locked after them). The caller commits or
/// rolls back.
pub(crate) async fn begin_holding(
    conn: &mut AnyConnection,
    condition: &ReleaseCondition,
) -> StoreResult<bool> {
    let postgres = conn.backend_name() == POSTGRES;
    let mut read = Script::new();
    read.push(begin(postgres));
    let checks = Checks::read(&mut read, &[Some(condition)], postgres);
    let results = read.run(conn).await?;
    Ok(checks.holding(&results)?.hold(condition))
}

/// Where a script reads which of the batch's conditions' rows still hold: one statement per
/// table for the whole batch, expiries judged at the batch's latest release time. On
/// PostgreSQL the rows found stay locked until the commit — the grants as for an update, since
/// the batch may touch them — so a revocation, pause, key revocation or rule change still in
/// flight waits for this commit, and one that committed first is seen. (SQLite has one writer
/// connection, and the transaction began immediate: nothing commits in between.)
struct Checks {
    grants: Option<usize>,
    agents: Option<usize>,
    keys: Option<usize>,
    rules: Option<(usize, BTreeSet<(AppId, i64)>)>,
}

/// The rows found holding.
struct Holding {
    grants: HashSet<String>,
    agents: HashSet<String>,
    keys: HashSet<String>,
    rules: HashSet<(AppId, i64)>,
}

impl Checks {
    fn read(
        script: &mut Script,
        conditions: &[Option<&ReleaseCondition>],
        postgres: bool,
    ) -> Checks {
        let conditions = || conditions.iter().flatten();
        let Some(at) = conditions().map(|c| c.at).max() else {
            return Checks {
                grants: None,
                agents: None,
                keys: None,
                rules: None,
            };
        };
        let lock = |lock: &'static str| if postgres { lock } else { "" };
        let grants = RowCheck {
            table: "grants",
            columns: ID,
            condition: Some("status = 'active' AND (expires_at IS NULL OR expires_at > $1)"),
            times: &[at],
            lock: lock(" FOR NO KEY UPDATE"),
        }
        .read(
            script,
            conditions()
                .flat_map(|c| c.grants.iter().map(ToString::to_string))
                .collect(),
        );
        let agents = RowCheck {
            table: "agents",
            columns: ID,
            condition: Some("status = 'active'"),
            times: &[],
            lock: lock(" FOR SHARE"),
        }
        .read(
            script,
            conditions()
                .flat_map(|c| c.agents.iter().map(ToString::to_string))
                .collect(),
        );
        let keys = RowCheck {
            table: "api_keys",
            columns: ID,
            condition: Some(
                "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
                 AND (grace_expires_at IS NULL OR grace_expires_at > $2)",
            ),
            times: &[at, at],
            lock: lock(" FOR SHARE"),
        }
        .read(script, conditions().map(|c| c.key.to_string()).collect());
        // Rule writes bump `apps.rules_version`: the releases decided under a version still
        // current stand.
        let read: BTreeSet<(AppId, i64)> = conditions().filter_map(|c| c.rules).collect();
        let rules = RowCheck {
            table: "apps",
            columns: &[("id", "TEXT"), ("rules_version", "BIGINT")],
            condition: None,
            times: &[],
            lock: lock(" FOR SHARE"),
        }
        .read(
            script,
            read.iter().map(|(app, _)| app.to_string()).collect(),
        )
        .map(|at| (at, read));
        Checks {
            grants,
            agents,
            keys,
            rules,
        }
    }

    fn holding(&self, results: &[Vec<AnyRow>]) -> StoreResult<Holding> {
        let ids = |at: Option<usize>| -> StoreResult<HashSet<String>> {
            at.and_then(|at| results.get(at))
                .into_iter()
                .flatten()
                .map(|row| get(row, "id"))
                .collect()
        };
        let mut rules = HashSet::new();
        if let Some((at, read)) = &self.rules {
            let current: HashMap<String, i64> = results
                .get(*at)
                .into_iter()
                .flatten()
                .map(|row| Ok((get(row, "id")?, get(row, "rules_version")?)))
                .collect::<StoreResult<_>>()?;
            rules.extend(
                read.iter()
                    .filter(|(app, version)| current.get(&app.to_string()) == Some(version))
                    .copied(),
            );
        }
        Ok(Holding {
            grants: ids(self.grants)?,
            agents: ids(self.agents)?,
            keys: ids(self.keys)?,
            rules,
        })
    }
}

impl Holding {
    /// Whether everything `c` was decided under still holds.
    fn hold(&self, c: &ReleaseCondition) -> bool {
        c.grants
            .iter()
            .all(|g| self.grants.contains(&g.to_string()))
            && c.agents
                .iter()
                .all(|a| self.agents.contains(&a.to_string()))
            && self.keys.contains(&c.key.to_string())
            && c.rules.is_none_or(|read| self.rules.contains(&read))
    }
}

/// The columns of a check that reads only ids.
const ID: &[Column] = &[("id", "TEXT")];

/// A read of the rows of one table, among the ids a batch's conditions name.
struct RowCheck<'a> {
    table: &'a str,
    /// The columns read, `id` first.
    columns: &'static [Column],
    /// What the rows must meet, its `$1`, `$2`… being `times`; none: every row.
    condition: Option<&'a str>,
    times: &'a [Timestamp],
    /// The lock taken on the rows found (PostgreSQL), in id order so two writers never wait
    /// on each other.
    lock: &'a str,
}

impl RowCheck<'_> {
    /// Adds the read of which of `ids` name rows meeting the condition to `script`. Returns
    /// where its rows will be, or nothing when there are no ids to check.
    fn read(&self, script: &mut Script, ids: BTreeSet<String>) -> Option<usize> {
        if ids.is_empty() {
            return None;
        }
        let params: Vec<String> = (0..ids.len())
            .map(|i| format!("${}", self.times.len() + i + 1))
            .collect();
        let condition = self
            .condition
            .map(|c| format!("{c} AND "))
            .unwrap_or_default();
        let columns: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        let mut stmt = Stmt::new(format!(
            "SELECT {} FROM {} WHERE {condition}id IN ({}) ORDER BY id{}",
            columns.join(", "),
            self.table,
            params.join(", "),
            self.lock
        ))
        .one_off_if(ids.len() > 1)
        .returning(self.columns);
        for at in self.times {
            stmt = stmt.bind(at.micros());
        }
        for id in ids {
            stmt = stmt.bind(id);
        }
        Some(script.push(stmt))
    }
}

/// Where a script claims the batch's nonces.
struct NonceClaims(Option<usize>);

/// Adds to `script` the claim of the nonces in one statement.
fn claim_nonces(script: &mut Script, claims: &[(KeyId, &str, Timestamp)]) -> NonceClaims {
    if claims.is_empty() {
        return NonceClaims(None);
    }
    // In one order, so two writers claiming the same nonces never wait on each other.
    let mut sorted: Vec<&(KeyId, &str, Timestamp)> = claims.iter().collect();
    sorted.sort_by(|a, b| (a.0.to_string(), a.1).cmp(&(b.0.to_string(), b.1)));
    let values: Vec<String> = (0..claims.len())
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    let mut stmt = Stmt::new(format!(
        // No conflict target: the key is (key_id, nonce) on SQLite, and on PostgreSQL holds
        // the partition key too, (key_id, nonce, signed_at) (migration 0028).
        "INSERT INTO request_nonces (key_id, nonce, signed_at) VALUES {} \
         ON CONFLICT DO NOTHING RETURNING key_id, nonce",
        values.join(", ")
    ))
    .one_off_if(claims.len() > 1)
    .returning(&[("key_id", "TEXT"), ("nonce", "TEXT")]);
    for (key, nonce, at) in sorted {
        stmt = stmt.bind(key.to_string()).bind(*nonce).bind(at.micros());
    }
    NonceClaims(Some(script.push(stmt)))
}

impl NonceClaims {
    /// For each claim, whether its nonce was new. A nonce sent twice in one batch is new only
    /// the first time.
    fn fresh(
        &self,
        results: &[Vec<AnyRow>],
        claims: &[(KeyId, &str, Timestamp)],
    ) -> StoreResult<Vec<bool>> {
        let mut new: HashSet<(String, String)> = self
            .0
            .and_then(|at| results.get(at))
            .into_iter()
            .flatten()
            .map(|row| Ok((get(row, "key_id")?, get(row, "nonce")?)))
            .collect::<StoreResult<_>>()?;
        Ok(claims
            .iter()
            .map(|(key, nonce, _)| new.remove(&(key.to_string(), (*nonce).to_owned())))
            .collect())
    }
}

/// Adds to `script` the refresh of the grants' last use, to the batch's latest time (well
/// within the resolution `last_used_at` is kept at).
fn touch_grants(script: &mut Script, touched: &[(GrantId, Timestamp)]) {
    let Some(at) = touched.iter().map(|(_, at)| *at).max() else {
        return;
    };
    let mut ids: Vec<String> = touched.iter().map(|(id, _)| id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let params: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let mut stmt = Stmt::new(format!(
        "UPDATE grants SET last_used_at = $1 WHERE id IN ({})",
        params.join(", ")
    ))
    .one_off_if(ids.len() > 1)
    .returning(&[])
    .bind(at.micros());
    for id in ids {
        stmt = stmt.bind(id);
    }
    script.push(stmt);
}
