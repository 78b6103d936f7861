-- The `iat` of the token a user's stored groups came from (microseconds), so an older token
-- cannot roll them back and stale membership is not acted on without a fresh token. Existing
-- users get NULL: undated, replaced by the next token they present.
ALTER TABLE app_users ADD COLUMN groups_as_of BIGINT;
