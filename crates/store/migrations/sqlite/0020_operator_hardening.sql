-- Refused portal sign-ins are recorded at most once a minute per operator (or per "unknown
-- user", or the admin token), with a count of those in between, so a flood of guesses cannot
-- grow operator_events without bound. One row per name events may carry: a bounded table.

CREATE TABLE operator_sign_in_failure_digest (
    operator     TEXT    PRIMARY KEY,
    recorded_at  BIGINT  NOT NULL,
    pending      BIGINT  NOT NULL,
    reported     BIGINT  NOT NULL
);
