-- Request nonces keep the request's signed timestamp (PostgreSQL partitions them by it; see
-- its 0028). SQLite keeps its key (key_id, nonce): a nonce is refused whatever timestamp it
-- comes with. The rows of before hold their claim time instead; the prune horizon (2 × window
-- + 60 s) is the one they were kept on before, so they are kept as long as ever.
ALTER TABLE request_nonces RENAME COLUMN seen_at TO signed_at;

-- Retention anchors: per app, the last event retention removed (through_seq and its hash),
-- when, and a MAC under a key derived from the audit MAC root (purpose audit-anchor/v1), so
-- a database writer can neither forge one nor move one to hide removed or altered events.
-- Verification starts from it: the first kept event must follow through_hash.
CREATE TABLE audit_anchors (
    app_id        TEXT    PRIMARY KEY REFERENCES apps (id),
    through_seq   BIGINT  NOT NULL,
    through_hash  BLOB    NOT NULL,
    at            BIGINT  NOT NULL,
    mac           BLOB    NOT NULL
);
CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors
BEGIN SELECT RAISE(ABORT, 'audit_anchors only moves forward'); END;
CREATE TRIGGER audit_anchors_forward_only BEFORE UPDATE ON audit_anchors
WHEN NEW.through_seq < OLD.through_seq OR NEW.app_id <> OLD.app_id
BEGIN SELECT RAISE(ABORT, 'audit_anchors only moves forward'); END;

-- Still append-only, except that events at or before the app's anchor may be deleted (what
-- retention removes).
DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > COALESCE((SELECT through_seq FROM audit_anchors WHERE app_id = OLD.app_id), 0)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
