-- KEK re-versioning: `alter keys rotate-kek` adds a KEK version, a background job re-wraps
-- every data key under it, and `alter keys retire-kek` deletes the older versions once no
-- sealed value names them.
--
-- Every KEK after the first carries an endorsement: a MAC of its version and bytes under a key
-- derived from the audit MAC root. A node refuses a KEK without a valid one, so whoever can
-- write the database (and encrypt with a shared key holder) cannot plant a KEK they know.
ALTER TABLE keks ADD COLUMN endorsement BYTEA;

-- Where the re-wrapping under the newest KEK stands (one row at most), so the walk resumes
-- on whichever node holds the job's lease next.
CREATE TABLE kek_rewrap (
    id          BIGINT  PRIMARY KEY CHECK (id = 1),
    version     BIGINT  NOT NULL,
    column_name TEXT,
    after_key   TEXT    NOT NULL,
    failed      BIGINT  NOT NULL,
    finished_at BIGINT,
    updated_at  BIGINT  NOT NULL
);

-- The KEK version each node seals under, reported every few seconds: re-wrapping and
-- retirement wait until every node seen lately has loaded the newest.
CREATE TABLE node_keyrings (
    node        TEXT    PRIMARY KEY,
    kek_version BIGINT  NOT NULL,
    seen_at     BIGINT  NOT NULL
);
