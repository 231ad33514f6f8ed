-- ACME (RFC 8555): per-profile settings, sealed server secrets, EAB keys,
-- accounts, orders (with their authorizations and challenges as one JSON
-- document) and spent nonces.

CREATE TABLE acme_profiles (
    profile      text COLLATE "C" PRIMARY KEY,
    enabled      boolean NOT NULL,
    eab_required boolean NOT NULL,
    updated_at   timestamptz
);

CREATE TABLE acme_secrets (
    name   text COLLATE "C" PRIMARY KEY,
    sealed bytea NOT NULL
);

CREATE TABLE acme_eab_keys (
    kid        text COLLATE "C" PRIMARY KEY,
    profile    text COLLATE "C" NOT NULL,
    owner      text COLLATE "C" NOT NULL DEFAULT '',
    sealed     bytea NOT NULL,
    created_at timestamptz,
    revoked_at timestamptz,
    account_id text COLLATE "C" NOT NULL DEFAULT ''
);

CREATE TABLE acme_accounts (
    id         text COLLATE "C" PRIMARY KEY,
    profile    text COLLATE "C" NOT NULL,
    thumbprint text COLLATE "C" NOT NULL,
    jwk        bytea NOT NULL,
    status     text COLLATE "C" NOT NULL,
    contact    text[] COLLATE "C",
    owner      text COLLATE "C" NOT NULL DEFAULT '',
    eab_kid    text COLLATE "C" NOT NULL DEFAULT '',
    created_at timestamptz,
    UNIQUE (profile, thumbprint)
);

CREATE TABLE acme_orders (
    id         text COLLATE "C" PRIMARY KEY,
    account_id text COLLATE "C" NOT NULL,
    profile    text COLLATE "C" NOT NULL,
    status     text COLLATE "C" NOT NULL,
    expires_at timestamptz,
    replaces   text COLLATE "C" NOT NULL DEFAULT '',
    serial     text COLLATE "C" NOT NULL DEFAULT '',
    doc        bytea NOT NULL,
    version    bigint NOT NULL,
    created_at timestamptz
);
CREATE INDEX acme_orders_account ON acme_orders (account_id);
CREATE UNIQUE INDEX acme_orders_replaces ON acme_orders (replaces) WHERE replaces <> '';

CREATE TABLE acme_nonces (
    nonce      text COLLATE "C" PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX acme_nonces_expires ON acme_nonces (expires_at);

-- Certificates an operator asked ACME clients to renew early (ARI, RFC 9773):
-- their renewal window opens at once.
CREATE TABLE acme_renew_early (
    serial     text COLLATE "C" PRIMARY KEY,
    marked_at  timestamptz NOT NULL
);

-- New orders per rate-limit key ("a:" account, "n:" name) in fixed windows,
-- so that every replica counts against the same limit.
CREATE TABLE acme_rate_counts (
    key          text COLLATE "C" NOT NULL,
    window_start timestamptz NOT NULL,
    n            integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX acme_rate_counts_window ON acme_rate_counts (window_start);
