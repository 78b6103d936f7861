-- An agent-typed key (an `ak`, a managed agent's key, or a key derived from either) never acts
-- as an agent it is not bound to. A derived key's own type says `dk`, so the confinement it
-- inherits from its parent is kept here, set once when the key is made.
ALTER TABLE api_keys ADD COLUMN agent_typed BIGINT NOT NULL DEFAULT 0;

-- Existing keys: `ak` rows (managed agents' keys are stored as `ak` too) and any key bound to an
-- agent, then the derived keys of those (keys derive only from non-derived keys).
UPDATE api_keys SET agent_typed = 1 WHERE key_type = 'ak' OR agent_id IS NOT NULL;
UPDATE api_keys SET agent_typed = 1
WHERE key_type = 'dk'
  AND parent_key_id IN (SELECT id FROM api_keys WHERE agent_typed = 1);
