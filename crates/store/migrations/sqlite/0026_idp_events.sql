-- Inbound identity-provider lifecycle events (docs/idp-events.md).
--
-- membership_floor: the time (microseconds) of the newest membership change an IdP event made;
-- a token issued at or before it cannot replace the stored groups (a replayed older ID token
-- does not roll a removal back). status_as_of: the time of the event that last set the user's
-- status, so an older reactivation delivered late does not undo a newer deactivation.
ALTER TABLE app_users ADD COLUMN membership_floor BIGINT;
ALTER TABLE app_users ADD COLUMN status_as_of BIGINT;

-- The app's signing secret for inbound IdP events, sealed to the app and its version. The
-- previous secret stays valid until previous_until, so a rotation does not drop events in
-- flight.
CREATE TABLE idp_event_secrets (
    app_id           TEXT    PRIMARY KEY REFERENCES apps (id),
    version          BIGINT  NOT NULL,
    sealed_secret    BLOB    NOT NULL,
    previous_sealed  BLOB,
    previous_until   BIGINT,
    created_at       BIGINT  NOT NULL,
    rotated_at       BIGINT  NOT NULL
);

-- Deliveries applied, by webhook-id: a replay is answered as a duplicate and changes nothing.
CREATE TABLE idp_event_receipts (
    app_id       TEXT    NOT NULL REFERENCES apps (id),
    webhook_id   TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    PRIMARY KEY (app_id, webhook_id)
);
