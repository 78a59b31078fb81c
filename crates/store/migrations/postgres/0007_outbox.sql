-- The way out: a transactional outbox. A message (a webhook delivery or an
-- e-mail) is written in the same transaction as the change that caused it
-- and delivered later by a worker, so nothing acknowledged is lost on a
-- crash and nothing is sent for a change that rolled back.
-- Scheduling times are integer Unix milliseconds: they compare as numbers
-- on both backends.

CREATE TABLE webhook_endpoints (
    program_id      UUID NOT NULL REFERENCES programs (program_id),
    endpoint_id     UUID NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    topics          TEXT NOT NULL,          -- JSON array of event types
    secret          TEXT NOT NULL,
    previous_secret TEXT,                   -- still signed with during a rotation
    previous_until  BIGINT,                -- ... until this time (ms)
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, endpoint_id)
);

CREATE TABLE outbox (
    program_id   UUID NOT NULL REFERENCES programs (program_id),
    message_id   UUID NOT NULL,             -- UUIDv7; receivers de-duplicate on it
    channel      TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    topic        TEXT NOT NULL,
    endpoint_id  UUID,                      -- webhook: where to
    member_id    UUID,                      -- e-mail: to whom (address read when sending)
    payload      TEXT NOT NULL,             -- webhook: the exact body; e-mail: template data
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0, -- tries ever made (numbers the attempts rows)
    tries        INTEGER NOT NULL DEFAULT 0, -- tries since enqueued or manually retried (drives backoff)
    due_ms       BIGINT NOT NULL,
    lease_ms     BIGINT,                   -- a worker holds the message until then
    lease_token  UUID,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    PRIMARY KEY (program_id, message_id)
);

CREATE INDEX outbox_due ON outbox (program_id, status, due_ms);

CREATE TABLE outbox_attempts (
    program_id  UUID NOT NULL,
    message_id  UUID NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'cancelled')),
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (program_id, message_id, attempt),
    FOREIGN KEY (program_id, message_id) REFERENCES outbox (program_id, message_id)
);

-- Per-program key that signs unsubscribe links (they work without sign-in).
CREATE TABLE messaging_keys (
    program_id      UUID NOT NULL PRIMARY KEY REFERENCES programs (program_id),
    unsubscribe_key BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
