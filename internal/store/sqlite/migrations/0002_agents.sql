-- Agents (issue 3): single-use join tokens and enrolled machines.

CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash BLOB,
    profile     TEXT NOT NULL,
    names       TEXT,
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER,
    expires_at  INTEGER,
    used_at     INTEGER,
    used_by     TEXT NOT NULL DEFAULT '',
    revoked_at  INTEGER
);

CREATE TABLE machines (
    name           TEXT PRIMARY KEY,
    profile        TEXT NOT NULL,
    names          TEXT,
    attestation    TEXT NOT NULL,
    join_token_id  TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL CHECK (state IN ('active', 'disabled')),
    current_serial TEXT NOT NULL DEFAULT '',
    first_seen     INTEGER,
    last_seen      INTEGER,
    disabled_at    INTEGER
);
