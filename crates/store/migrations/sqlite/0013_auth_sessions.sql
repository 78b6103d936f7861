-- End-user sign-in (protocol part 2 §7.3–7.7).
--
-- idp_sign_in_clients: the OAuth client the vault signs users in with at an app's identity
-- provider; its secret sealed to the app and the configuration's version.
CREATE TABLE idp_sign_in_clients (
    app_id                TEXT    PRIMARY KEY REFERENCES apps (id),
    client_id             TEXT    NOT NULL,
    sealed_client_secret  BLOB,
    scopes                TEXT    NOT NULL,
    authorize_url         TEXT,
    token_url             TEXT,
    version               BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);

-- auth_sessions: one link-based sign-in. Only hashes of the session token and of the OIDC
-- state are kept; the PKCE verifier and, once signed in, the user's ID token are sealed to the
-- session. status: pending → exchanging (the callback claimed it, once) → completed →
-- collected (the token was handed out and erased), or error.
CREATE TABLE auth_sessions (
    id                  TEXT    PRIMARY KEY,
    app_id              TEXT    NOT NULL REFERENCES apps (id),
    token_hash          BLOB    NOT NULL UNIQUE,
    state_hash          BLOB    NOT NULL UNIQUE,
    nonce               TEXT    NOT NULL,
    sealed_verifier     BLOB    NOT NULL,
    status              TEXT    NOT NULL,
    sealed_user_token   BLOB,
    user_id             TEXT,
    error_code          TEXT,
    error_message       TEXT,
    expires_at          BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
CREATE INDEX auth_sessions_by_expiry ON auth_sessions (expires_at);

-- identity_signing_keys: the ES256 key identity assertions are signed with, one for the whole
-- vault (every node signs with the same key); the private key sealed, kid = its RFC 7638
-- thumbprint.
CREATE TABLE identity_signing_keys (
    kid                 TEXT    PRIMARY KEY,
    sealed_private_key  BLOB    NOT NULL,
    public_x            TEXT    NOT NULL,
    public_y            TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL
);
