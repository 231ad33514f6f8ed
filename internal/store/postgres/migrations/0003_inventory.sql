-- Inventory (issue 4): discovered, imported and issued identities and the
-- places they were seen. Never holds private key material or secret values
-- (see store/inventory.go). Conventions as in 0001.

CREATE TABLE inventory_identities (
    fingerprint   text COLLATE "C" PRIMARY KEY,
    kind          text COLLATE "C" NOT NULL,
    source        text COLLATE "C" NOT NULL,
    subject       text COLLATE "C" NOT NULL DEFAULT '',
    issuer        text COLLATE "C" NOT NULL DEFAULT '',
    sans          text[] COLLATE "C",
    serial        text COLLATE "C" NOT NULL DEFAULT '',
    not_before    timestamptz,
    not_after     timestamptz,
    is_ca         boolean NOT NULL DEFAULT false,
    signature_alg text COLLATE "C" NOT NULL DEFAULT '',
    key_algorithm text COLLATE "C" NOT NULL DEFAULT '',
    key_size      integer NOT NULL DEFAULT 0,
    spki_sha256   text COLLATE "C" NOT NULL DEFAULT '',
    rule_id       text COLLATE "C" NOT NULL DEFAULT '',
    issued_serial text COLLATE "C" NOT NULL DEFAULT '',
    owner         text COLLATE "C" NOT NULL DEFAULT '',
    labels        jsonb,
    first_seen    timestamptz,
    last_seen     timestamptz,
    der           bytea,
    -- zlint results computed at ingestion (store.InventoryLint): NULL when not
    -- linted; lint_warnings is set whenever lint_errors is.
    lint_errors   text[] COLLATE "C",
    lint_warnings text[] COLLATE "C"
);

CREATE INDEX inventory_identities_kind ON inventory_identities (kind, fingerprint);
CREATE INDEX inventory_identities_owner ON inventory_identities (owner, fingerprint);
CREATE INDEX inventory_identities_issuer ON inventory_identities (issuer, fingerprint);
CREATE INDEX inventory_identities_not_after ON inventory_identities (not_after);
CREATE INDEX inventory_identities_spki ON inventory_identities (spki_sha256) WHERE spki_sha256 <> '';
CREATE INDEX inventory_identities_last_seen ON inventory_identities (last_seen);
CREATE INDEX inventory_identities_ca_subject ON inventory_identities (subject) WHERE is_ca;

CREATE TABLE inventory_locations (
    fingerprint  text COLLATE "C" NOT NULL REFERENCES inventory_identities (fingerprint) ON DELETE CASCADE,
    kind         text COLLATE "C" NOT NULL,
    host         text COLLATE "C" NOT NULL DEFAULT '',
    port         integer NOT NULL DEFAULT 0,
    path         text COLLATE "C" NOT NULL DEFAULT '',
    sni          text COLLATE "C" NOT NULL DEFAULT '',
    first_seen   timestamptz,
    last_seen    timestamptz,
    tls_version  text COLLATE "C" NOT NULL DEFAULT '',
    cipher_suite text COLLATE "C" NOT NULL DEFAULT '',
    chain_index  integer NOT NULL DEFAULT 0,
    file_mode    bigint NOT NULL DEFAULT 0,
    file_owner   text COLLATE "C" NOT NULL DEFAULT '',
    detail       text COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (fingerprint, kind, host, port, path, sni)
);

CREATE INDEX inventory_locations_host ON inventory_locations (host, port);
CREATE INDEX inventory_locations_path ON inventory_locations (path) WHERE path <> '';

CREATE TABLE scan_schedules (
    name        text COLLATE "C" PRIMARY KEY,
    targets     text[] COLLATE "C",
    ports       integer[],
    sni         text[] COLLATE "C",
    every_us    bigint NOT NULL,
    timeout_us  bigint NOT NULL DEFAULT 0,
    concurrency integer NOT NULL DEFAULT 0,
    created_by  text COLLATE "C" NOT NULL DEFAULT '',
    created_at  timestamptz,
    next_run    timestamptz,
    last_run    timestamptz,
    last_result text COLLATE "C" NOT NULL DEFAULT ''
);

-- Recognising certificates Sigil issued among discovered ones.
CREATE INDEX certificates_sha256 ON certificates (sha256) WHERE sha256 <> '';
