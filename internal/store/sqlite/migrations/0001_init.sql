-- Initial schema. Times are INTEGER unix microseconds UTC (NULL for the zero
-- time) so they compare numerically and round-trip exactly. Collections are
-- JSON text, NULL when empty.

CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,
    issuer_id         TEXT NOT NULL,
    profile           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('planned', 'issued', 'revoked')),
    requester         TEXT NOT NULL,
    owner             TEXT NOT NULL DEFAULT '',
    labels            TEXT,
    common_name       TEXT NOT NULL DEFAULT '',
    dns_names         TEXT,
    ip_addresses      TEXT,
    uris              TEXT,
    emails            TEXT,
    key_type          TEXT NOT NULL,
    spki_sha256       TEXT NOT NULL,
    sha256            TEXT NOT NULL DEFAULT '',
    not_before        INTEGER,
    not_after         INTEGER,
    created_at        INTEGER,
    issued_at         INTEGER,
    revoked_at        INTEGER,
    revocation_reason INTEGER NOT NULL DEFAULT 0,
    tbs               BLOB,
    der               BLOB
);

CREATE INDEX certificates_status_not_after ON certificates (status, not_after);
CREATE INDEX certificates_profile ON certificates (profile);
CREATE INDEX certificates_issuer_id ON certificates (issuer_id);
CREATE INDEX certificates_spki_sha256 ON certificates (spki_sha256);
CREATE INDEX certificates_created_at ON certificates (created_at);

CREATE TABLE profiles (
    name       TEXT PRIMARY KEY,
    doc        BLOB NOT NULL,
    updated_at INTEGER
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL,
    profiles    TEXT,
    secret_hash BLOB,
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER,
    expires_at  INTEGER,
    revoked_at  INTEGER
);

CREATE TABLE issuers (
    id         TEXT PRIMARY KEY,
    cert_der   BLOB,
    key_ref    TEXT NOT NULL DEFAULT '',
    parent_id  TEXT NOT NULL DEFAULT '',
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at INTEGER
);

-- At most one default issuer; PutIssuer demotes the previous one.
CREATE UNIQUE INDEX issuers_one_default ON issuers (is_default) WHERE is_default = 1;

CREATE TABLE crls (
    issuer_id   TEXT NOT NULL,
    number      INTEGER NOT NULL,
    this_update INTEGER,
    next_update INTEGER,
    der         BLOB,
    UNIQUE (issuer_id, number)
);

CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL DEFAULT '',
    result    TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

CREATE INDEX audit_events_actor ON audit_events (actor);
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_time ON audit_events (time);

-- The chain head, kept apart from the events so that deleting the newest
-- events is detectable (audit.Verifier.Finish).
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
