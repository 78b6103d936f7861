-- One active delegation per (grant, agent). Concurrent delegations could leave several; all
-- but the newest are revoked, with everything passed on from them, before the index goes in.
-- (The migration writes no audit events: the revocations are recorded on the rows, with
-- their reason.)
WITH RECURSIVE extra (id) AS (
    SELECT g.id FROM grants g
    WHERE g.parent_grant_id IS NOT NULL AND g.status = 'active'
      AND EXISTS (
          SELECT 1 FROM grants newer
          WHERE newer.parent_grant_id = g.parent_grant_id AND newer.agent_id = g.agent_id
            AND newer.status = 'active' AND newer.seq > g.seq
      )
    UNION ALL
    SELECT c.id FROM grants c JOIN extra e ON c.parent_grant_id = e.id
)
UPDATE grants
SET status = 'revoked', revoked_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT,
    revoke_reason = 'duplicate delegation'
WHERE id IN (SELECT id FROM extra) AND status = 'active';

CREATE UNIQUE INDEX grants_active_delegation ON grants (parent_grant_id, agent_id)
    WHERE status = 'active' AND parent_grant_id IS NOT NULL;
