-- Keyed audit chains: each event records how its hash was computed. Events written before
-- this migration carry plain SHA-256 hashes (0); new events are HMAC-SHA256 under a key
-- derived from the master key (1). See docs/audit.md.
ALTER TABLE audit_events ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 0;

-- A chain head only moves forward: it is never deleted and its sequence number never drops.
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN SELECT RAISE(ABORT, 'audit_heads only moves forward'); END;
CREATE TRIGGER audit_heads_forward_only BEFORE UPDATE ON audit_heads
WHEN NEW.seq < OLD.seq OR NEW.app_id <> OLD.app_id
BEGIN SELECT RAISE(ABORT, 'audit_heads only moves forward'); END;
