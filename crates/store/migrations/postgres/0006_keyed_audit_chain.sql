-- Keyed audit chains: each event records how its hash was computed. Events written before
-- this migration carry plain SHA-256 hashes (0); new events are HMAC-SHA256 under a key
-- derived from the master key (1). See docs/audit.md.
ALTER TABLE audit_events ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 0;

-- A chain head only moves forward: it is never deleted and its sequence number never drops.
CREATE FUNCTION audit_heads_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq OR NEW.app_id <> OLD.app_id THEN
        RAISE EXCEPTION 'audit_heads only moves forward';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_heads_forward_only
    BEFORE UPDATE OR DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION audit_heads_forward_only();

-- TRUNCATE skips row triggers: refuse it on both audit tables.
CREATE FUNCTION audit_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log cannot be truncated';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();
CREATE TRIGGER audit_heads_no_truncate
    BEFORE TRUNCATE ON audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();
