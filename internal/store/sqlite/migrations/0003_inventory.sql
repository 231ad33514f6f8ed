-- Inventory (issue 4): discovered, imported and issued identities and the
-- places they were seen. Times are INTEGER unix microseconds like 0001.
-- Never holds private key material or secret values (see store/inventory.go).

CREATE TABLE inventory_identities (
    fingerprint   TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    source        TEXT NOT NULL,
    subject       TEXT NOT NULL DEFAULT '',
    issuer        TEXT NOT NULL DEFAULT '',
    sans          TEXT,
    serial        TEXT NOT NULL DEFAULT '',
    not_before    INTEGER,
    not_after     INTEGER,
    is_ca         INTEGER NOT NULL DEFAULT 0,
    signature_alg TEXT NOT NULL DEFAULT '',
    key_algorithm TEXT NOT NULL DEFAULT '',
    key_size      INTEGER NOT NULL DEFAULT 0,
    spki_sha256   TEXT NOT NULL DEFAULT '',
    rule_id       TEXT NOT NULL DEFAULT '',
    issued_serial TEXT NOT NULL DEFAULT '',
    owner         TEXT NOT NULL DEFAULT '',
    labels        TEXT,
    first_seen    INTEGER,
    last_seen     INTEGER,
    der           BLOB,
    -- zlint results computed at ingestion (store.InventoryLint), JSON arrays:
    -- NULL when not linted; lint_warnings is set whenever lint_errors is.
    lint_errors   TEXT,
    lint_warnings TEXT
);
-- A rowid table, not WITHOUT ROWID: a row holds ~1 KiB of DER, which an
-- index-organised row would push to an overflow page of its own.

-- Each filter index ends with fingerprint so a filtered page comes out in
-- cursor order without a sort.
CREATE INDEX inventory_identities_kind ON inventory_identities (kind, fingerprint);
CREATE INDEX inventory_identities_owner ON inventory_identities (owner, fingerprint);
CREATE INDEX inventory_identities_issuer ON inventory_identities (issuer, fingerprint);
CREATE INDEX inventory_identities_not_after ON inventory_identities (not_after);
CREATE INDEX inventory_identities_spki ON inventory_identities (spki_sha256) WHERE spki_sha256 <> '';
CREATE INDEX inventory_identities_last_seen ON inventory_identities (last_seen);
CREATE INDEX inventory_identities_ca_subject ON inventory_identities (subject) WHERE is_ca = 1;

CREATE TABLE inventory_locations (
    fingerprint  TEXT NOT NULL REFERENCES inventory_identities (fingerprint) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    host         TEXT NOT NULL DEFAULT '',
    port         INTEGER NOT NULL DEFAULT 0,
    path         TEXT NOT NULL DEFAULT '',
    sni          TEXT NOT NULL DEFAULT '',
    first_seen   INTEGER,
    last_seen    INTEGER,
    tls_version  TEXT NOT NULL DEFAULT '',
    cipher_suite TEXT NOT NULL DEFAULT '',
    chain_index  INTEGER NOT NULL DEFAULT 0,
    file_mode    INTEGER NOT NULL DEFAULT 0,
    file_owner   TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (fingerprint, kind, host, port, path, sni)
) WITHOUT ROWID;

CREATE INDEX inventory_locations_host ON inventory_locations (host, port);
CREATE INDEX inventory_locations_path ON inventory_locations (path) WHERE path <> '';

CREATE TABLE scan_schedules (
    name        TEXT PRIMARY KEY,
    targets     TEXT,
    ports       TEXT,
    sni         TEXT,
    every_us    INTEGER NOT NULL,
    timeout_us  INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER NOT NULL DEFAULT 0,
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER,
    next_run    INTEGER,
    last_run    INTEGER,
    last_result TEXT NOT NULL DEFAULT ''
);

-- Recognising certificates Sigil issued among discovered ones.
CREATE INDEX certificates_sha256 ON certificates (sha256) WHERE sha256 <> '';
