-- ACME (RFC 8555): per-profile settings, sealed server secrets, EAB keys,
-- accounts, orders (with their authorizations and challenges as one JSON
-- document) and spent nonces. Times are unix microseconds, NULL for zero.

CREATE TABLE acme_profiles (
    profile      TEXT PRIMARY KEY,
    enabled      INTEGER NOT NULL,
    eab_required INTEGER NOT NULL,
    updated_at   INTEGER
);

CREATE TABLE acme_secrets (
    name   TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE acme_eab_keys (
    kid        TEXT PRIMARY KEY,
    profile    TEXT NOT NULL,
    owner      TEXT NOT NULL DEFAULT '',
    sealed     BLOB NOT NULL,
    created_at INTEGER,
    revoked_at INTEGER,
    account_id TEXT NOT NULL DEFAULT ''
);

CREATE TABLE acme_accounts (
    id         TEXT PRIMARY KEY,
    profile    TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    jwk        BLOB NOT NULL,
    status     TEXT NOT NULL,
    contact    TEXT,
    owner      TEXT NOT NULL DEFAULT '',
    eab_kid    TEXT NOT NULL DEFAULT '',
    created_at INTEGER,
    UNIQUE (profile, thumbprint)
);

CREATE TABLE acme_orders (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    profile    TEXT NOT NULL,
    status     TEXT NOT NULL,
    expires_at INTEGER,
    replaces   TEXT NOT NULL DEFAULT '',
    serial     TEXT NOT NULL DEFAULT '',
    doc        BLOB NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER
);
CREATE INDEX acme_orders_account ON acme_orders (account_id);
CREATE UNIQUE INDEX acme_orders_replaces ON acme_orders (replaces) WHERE replaces <> '';

CREATE TABLE acme_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX acme_nonces_expires ON acme_nonces (expires_at);

-- Certificates an operator asked ACME clients to renew early (ARI, RFC 9773):
-- their renewal window opens at once.
CREATE TABLE acme_renew_early (
    serial     TEXT PRIMARY KEY,
    marked_at  INTEGER NOT NULL
);

-- New orders per rate-limit key ("a:" account, "n:" name) in fixed windows,
-- so that every replica counts against the same limit.
CREATE TABLE acme_rate_counts (
    key          TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX acme_rate_counts_window ON acme_rate_counts (window_start);
