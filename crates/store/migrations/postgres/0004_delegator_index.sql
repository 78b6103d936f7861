-- The end-user API lists a user's grants and the delegations they consented to
-- (app_user_id = $u OR delegated_by = $u): both sides need an index.
CREATE INDEX grants_by_delegator ON grants (app_id, delegated_by, seq);
