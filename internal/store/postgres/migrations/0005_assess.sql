-- Assessment and monitoring (issue 7): risk findings, webhook subscriptions
-- and their deliveries, and the position of each live audit sink.

CREATE TABLE findings (
    id          text COLLATE "C" PRIMARY KEY,
    rule        text COLLATE "C" NOT NULL,
    severity    text COLLATE "C" NOT NULL,
    rank        integer NOT NULL,
    subject     text COLLATE "C" NOT NULL,
    serial      text COLLATE "C" NOT NULL DEFAULT '',
    location    text COLLATE "C" NOT NULL DEFAULT '',
    message     text COLLATE "C" NOT NULL DEFAULT '',
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    resolved_at timestamptz
);

CREATE INDEX findings_subject ON findings (subject);
CREATE INDEX findings_open_rank ON findings (resolved_at, rank);

CREATE TABLE webhooks (
    id            text COLLATE "C" PRIMARY KEY,
    url           text COLLATE "C" NOT NULL,
    events        text[] COLLATE "C" NOT NULL,
    secret_sealed bytea NOT NULL,
    created_by    text COLLATE "C" NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    webhook_id      text COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           text COLLATE "C" NOT NULL,
    dedup_key       text COLLATE "C" NOT NULL,
    payload         bytea NOT NULL,
    status          text COLLATE "C" NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text COLLATE "C" NOT NULL DEFAULT '',
    last_status     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    UNIQUE (webhook_id, dedup_key)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE audit_sink_state (
    sink       text COLLATE "C" PRIMARY KEY,
    seq        bigint NOT NULL,
    last_error text COLLATE "C" NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL
);
