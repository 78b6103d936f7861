-- The root the audit chain's and checkpoints' MAC keys derive from, wrapped by the key holder
-- (local master key or OpenBao/Vault Transit), so that a holder that never reveals its key can
-- still key the chain. One row at most. A database without it is one whose root is the local
-- master key's own bytes (every database before this); `alter keys rotate` stores it.
CREATE TABLE mac_root (
    id          BIGINT  PRIMARY KEY CHECK (id = 1),
    wrapped     BLOB    NOT NULL,
    key_holder  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
