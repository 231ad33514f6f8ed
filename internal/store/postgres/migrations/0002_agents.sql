-- Agents (issue 3): single-use join tokens and enrolled machines.

CREATE TABLE join_tokens (
    id          text COLLATE "C" PRIMARY KEY,
    secret_hash bytea,
    profile     text COLLATE "C" NOT NULL,
    names       text[] COLLATE "C",
    created_by  text COLLATE "C" NOT NULL DEFAULT '',
    created_at  timestamptz,
    expires_at  timestamptz,
    used_at     timestamptz,
    used_by     text COLLATE "C" NOT NULL DEFAULT '',
    revoked_at  timestamptz
);

CREATE TABLE machines (
    name           text COLLATE "C" PRIMARY KEY,
    profile        text COLLATE "C" NOT NULL,
    names          text[] COLLATE "C",
    attestation    text COLLATE "C" NOT NULL,
    join_token_id  text COLLATE "C" NOT NULL DEFAULT '',
    state          text COLLATE "C" NOT NULL CHECK (state IN ('active', 'disabled')),
    current_serial text COLLATE "C" NOT NULL DEFAULT '',
    first_seen     timestamptz,
    last_seen      timestamptz,
    disabled_at    timestamptz
);
