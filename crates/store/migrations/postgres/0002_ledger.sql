-- The ledger (PostgreSQL): events in, transfers of balanced postings out, per-lot expiry.

-- Earn rule versions; an event is scored by the version in force at its time.
CREATE TABLE earn_rules (
    program_id     UUID NOT NULL REFERENCES programs (program_id),
    version        INTEGER NOT NULL,
    effective_from TIMESTAMPTZ NOT NULL,
    rules          JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, version)
);

-- Every accepted event once, under its client key (the order id for a
-- purchase). A purchase row is also the order later refunds refer to.
CREATE TABLE events (
    program_id   UUID NOT NULL REFERENCES programs (program_id),
    event_key    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    member_id    UUID NOT NULL,
    fingerprint  BYTEA NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL,
    asset        TEXT NOT NULL DEFAULT 'points',
    amount       BIGINT,
    points       BIGINT NOT NULL DEFAULT 0,
    refunded     BIGINT NOT NULL DEFAULT 0,
    reversed     BIGINT NOT NULL DEFAULT 0,
    order_key    TEXT,
    request      JSONB NOT NULL,
    result       JSONB NOT NULL,
    PRIMARY KEY (program_id, event_key)
);
CREATE INDEX events_by_member ON events (program_id, member_id, occurred_at);

CREATE TABLE transfers (
    program_id  UUID NOT NULL REFERENCES programs (program_id),
    transfer_id UUID NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('posted', 'pending', 'voided')),
    event_key   TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, transfer_id)
);

CREATE TABLE postings (
    program_id  UUID NOT NULL,
    transfer_id UUID NOT NULL,
    seq         INTEGER NOT NULL,
    account     TEXT NOT NULL,
    member_id UUID,
    asset       TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount <> 0),
    reason      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, transfer_id, seq)
);
CREATE INDEX postings_by_member ON postings (program_id, member_id, transfer_id) WHERE member_id IS NOT NULL;

-- Balances materialised from postings (tests check they equal the sums).
CREATE TABLE balances (
    program_id UUID NOT NULL,
    account    TEXT NOT NULL,
    member_id UUID,
    asset      TEXT NOT NULL,
    posted     BIGINT NOT NULL DEFAULT 0,
    held       BIGINT NOT NULL DEFAULT 0,
    debt       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, account)
);

-- What a member can spend, lot by lot, so points expire per lot.
CREATE TABLE lots (
    program_id UUID NOT NULL,
    lot_id     UUID NOT NULL,
    member_id  UUID NOT NULL,
    asset      TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    remaining  BIGINT NOT NULL CHECK (remaining >= 0),
    earned_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    event_key  TEXT NOT NULL,
    PRIMARY KEY (program_id, lot_id)
);
CREATE INDEX lots_open ON lots (program_id, member_id) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (program_id, expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
