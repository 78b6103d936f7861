-- A webhook endpoint's signing secret is sealed bound to its URL too (the version string of
-- its AAD is "{secret_version} {url}"), so an endpoint pointed elsewhere in the database has a
-- secret that no longer opens, and nothing is sent there. url_bound_from is the first secret
-- version sealed that way: 1 for endpoints added from now on; NULL for those added before,
-- whose secrets keep binding only their version (and keep opening) until the next rotation
-- sets it to the new version.
ALTER TABLE webhook_endpoints ADD COLUMN url_bound_from BIGINT;

-- The prune job deletes receipts by age.
CREATE INDEX idp_event_receipts_received ON idp_event_receipts (received_at);
