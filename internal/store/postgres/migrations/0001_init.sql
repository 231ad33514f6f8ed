-- Initial schema.
--
-- Times are timestamptz (microsecond precision, like Go's canonical store
-- time), NULL for the zero time. Every text column is COLLATE "C": filters and
-- orderings (serial order, the audit action prefix range, names, IDs) must be
-- byte-wise whatever the database's default collation is. A linguistic
-- collation (e.g. ICU en-US) compares case-insensitively first and would put
-- "CERT.issue" inside the "cert." prefix range ["cert.", "cert/").
-- Name lists are text[] and labels jsonb, NULL when empty. Byte fields are bytea.

CREATE TABLE certificates (
    serial            text COLLATE "C" PRIMARY KEY,
    issuer_id         text COLLATE "C" NOT NULL,
    profile           text COLLATE "C" NOT NULL,
    status            text COLLATE "C" NOT NULL CHECK (status IN ('planned', 'issued', 'revoked')),
    requester         text COLLATE "C" NOT NULL,
    owner             text COLLATE "C" NOT NULL DEFAULT '',
    labels            jsonb,
    common_name       text COLLATE "C" NOT NULL DEFAULT '',
    dns_names         text[] COLLATE "C",
    ip_addresses      text[] COLLATE "C",
    uris              text[] COLLATE "C",
    emails            text[] COLLATE "C",
    key_type          text COLLATE "C" NOT NULL,
    spki_sha256       text COLLATE "C" NOT NULL,
    sha256            text COLLATE "C" NOT NULL DEFAULT '',
    not_before        timestamptz,
    not_after         timestamptz,
    created_at        timestamptz,
    issued_at         timestamptz,
    revoked_at        timestamptz,
    revocation_reason integer NOT NULL DEFAULT 0,
    tbs               bytea,
    der               bytea
);

CREATE INDEX certificates_status_not_after ON certificates (status, not_after);
CREATE INDEX certificates_profile ON certificates (profile);
CREATE INDEX certificates_issuer_id ON certificates (issuer_id);
CREATE INDEX certificates_spki_sha256 ON certificates (spki_sha256);
CREATE INDEX certificates_created_at ON certificates (created_at);

CREATE TABLE profiles (
    name       text COLLATE "C" PRIMARY KEY,
    doc        bytea NOT NULL, -- bytea, not jsonb: the document is kept byte for byte
    updated_at timestamptz
);

CREATE TABLE tokens (
    id          text COLLATE "C" PRIMARY KEY,
    name        text COLLATE "C" NOT NULL DEFAULT '',
    role        text COLLATE "C" NOT NULL,
    profiles    text[] COLLATE "C",
    secret_hash bytea,
    created_by  text COLLATE "C" NOT NULL DEFAULT '',
    created_at  timestamptz,
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE issuers (
    id         text COLLATE "C" PRIMARY KEY,
    cert_der   bytea,
    key_ref    text COLLATE "C" NOT NULL DEFAULT '',
    parent_id  text COLLATE "C" NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz
);

-- At most one default issuer; PutIssuer demotes the previous one.
CREATE UNIQUE INDEX issuers_one_default ON issuers (is_default) WHERE is_default;

CREATE TABLE crls (
    issuer_id   text COLLATE "C" NOT NULL,
    number      bigint NOT NULL,
    this_update timestamptz,
    next_update timestamptz,
    der         bytea,
    PRIMARY KEY (issuer_id, number)
);

CREATE TABLE audit_events (
    seq       bigint PRIMARY KEY,
    "time"    timestamptz NOT NULL,
    actor     text COLLATE "C" NOT NULL,
    action    text COLLATE "C" NOT NULL,
    object    text COLLATE "C" NOT NULL DEFAULT '',
    result    text COLLATE "C" NOT NULL,
    detail    text COLLATE "C" NOT NULL DEFAULT '',
    prev_hash text COLLATE "C" NOT NULL,
    hash      text COLLATE "C" NOT NULL
);

CREATE INDEX audit_events_actor ON audit_events (actor);
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_time ON audit_events ("time");

-- The chain head, kept apart from the events so that deleting the newest
-- events is detectable (audit.Verifier.Finish). Its single row is also the
-- chain's write lock: AppendAudit takes it FOR UPDATE, which serialises
-- appenders across every process sharing the database.
CREATE TABLE audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text COLLATE "C" NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
