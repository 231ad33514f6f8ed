-- Assessment and monitoring (issue 7): risk findings, webhook subscriptions
-- and their deliveries, and the position of each live audit sink.
-- Times are INTEGER unix microseconds UTC, NULL for the zero time.

CREATE TABLE findings (
    id          TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    serial      TEXT NOT NULL DEFAULT '',
    location    TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT '',
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    resolved_at INTEGER
);

CREATE INDEX findings_subject ON findings (subject);
CREATE INDEX findings_open_rank ON findings (resolved_at, rank);

CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    payload         BLOB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    last_status     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (webhook_id, dedup_key)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE audit_sink_state (
    sink       TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
