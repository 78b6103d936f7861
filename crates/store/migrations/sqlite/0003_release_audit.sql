-- Credential release: grants remember a reported scope mismatch; the audit log is queried by
-- grant, agent, user and action.

ALTER TABLE grants ADD COLUMN scope_mismatch BIGINT NOT NULL DEFAULT 0;

CREATE INDEX audit_events_by_grant ON audit_events (app_id, grant_id, seq);
CREATE INDEX audit_events_by_agent ON audit_events (app_id, agent_id, seq);
CREATE INDEX audit_events_by_user ON audit_events (app_id, app_user_id, seq);
CREATE INDEX audit_events_by_action ON audit_events (app_id, action, seq);
