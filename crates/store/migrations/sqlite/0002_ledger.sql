-- The ledger: events in, transfers of balanced postings out, per-lot expiry.

-- Earn rule versions; an event is scored by the version in force at its time.
CREATE TABLE earn_rules (
    program_id     BLOB NOT NULL REFERENCES programs (program_id),
    version        INTEGER NOT NULL,
    effective_from TEXT NOT NULL,
    rules          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (program_id, version)
) STRICT, WITHOUT ROWID;

-- Every accepted event once, under its client key (the order id for a
-- purchase). A purchase row is also the order later refunds refer to.
CREATE TABLE events (
    program_id   BLOB NOT NULL REFERENCES programs (program_id),
    event_key    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    member_id    BLOB NOT NULL,
    fingerprint  BLOB NOT NULL,
    occurred_at  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    asset        TEXT NOT NULL DEFAULT 'points',
    amount       INTEGER,
    points       INTEGER NOT NULL DEFAULT 0,
    refunded     INTEGER NOT NULL DEFAULT 0,
    reversed     INTEGER NOT NULL DEFAULT 0,
    order_key    TEXT,
    request      TEXT NOT NULL,
    result       TEXT NOT NULL,
    PRIMARY KEY (program_id, event_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX events_by_member ON events (program_id, member_id, occurred_at);

CREATE TABLE transfers (
    program_id  BLOB NOT NULL REFERENCES programs (program_id),
    transfer_id BLOB NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('posted', 'pending', 'voided')),
    event_key   TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (program_id, transfer_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE postings (
    program_id  BLOB NOT NULL,
    transfer_id BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    account     TEXT NOT NULL,
    member_id   BLOB,
    asset       TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount <> 0),
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (program_id, transfer_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX postings_by_member ON postings (program_id, member_id, transfer_id) WHERE member_id IS NOT NULL;

-- Balances materialised from postings (tests check they equal the sums).
CREATE TABLE balances (
    program_id BLOB NOT NULL,
    account    TEXT NOT NULL,
    member_id  BLOB,
    asset      TEXT NOT NULL,
    posted     INTEGER NOT NULL DEFAULT 0,
    held       INTEGER NOT NULL DEFAULT 0,
    debt       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, account)
) STRICT, WITHOUT ROWID;

-- What a member can spend, lot by lot, so points expire per lot.
CREATE TABLE lots (
    program_id BLOB NOT NULL,
    lot_id     BLOB NOT NULL,
    member_id  BLOB NOT NULL,
    asset      TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    remaining  INTEGER NOT NULL CHECK (remaining >= 0),
    earned_at  TEXT NOT NULL,
    expires_at TEXT,
    event_key  TEXT NOT NULL,
    PRIMARY KEY (program_id, lot_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX lots_open ON lots (program_id, member_id) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (program_id, expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
