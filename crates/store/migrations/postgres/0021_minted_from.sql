-- A minted grant (`mint_grant`) names the grant it was minted from, in the row that creates
-- it: its lifetime only ever tightens its source's, and the Wallet bounds its extension by the
-- source's end. Before this, the one record was the text of its `grant.minted` event's reason
-- ("minted from <id>"); existing minted grants are filled from it, keeping only a reference to
-- a grant of the same app. Anything else stays NULL and reads as not minted (the text the server
-- wrote always names its source; a row whose source cannot be found is left unbounded by it).

ALTER TABLE grants ADD COLUMN minted_from TEXT REFERENCES grants (id);

UPDATE grants SET minted_from = (
    SELECT s.id FROM audit_events e
    JOIN grants s ON s.app_id = e.app_id
        AND s.id = substr((e.body::json) ->> 'reason', length('minted from ') + 1)
    WHERE e.app_id = grants.app_id AND e.grant_id = grants.id AND e.action = 'grant.minted'
        AND (e.body::json) ->> 'reason' LIKE 'minted from %'
    ORDER BY e.seq LIMIT 1
);
