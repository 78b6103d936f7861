-- Background jobs (pruning, sweeps, upstream revocations, audit checkpoints) run on one node at
-- a time: the node holding a job's lease runs it and renews the lease as it goes; when the
-- lease runs out (its node died), the next node to ask takes it.
CREATE TABLE job_leases (
    job TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
