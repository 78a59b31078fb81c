-- Foundation: retailers, programs (tenants), API keys, members, idempotency.
-- Every tenant table leads its primary key with program_id; ids are UUIDv7
-- stored as 16-byte BLOBs; timestamps are RFC 3339 text in UTC.

CREATE TABLE retailers (
    retailer_id BLOB NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE programs (
    program_id  BLOB NOT NULL PRIMARY KEY,
    retailer_id BLOB NOT NULL REFERENCES retailers (retailer_id),
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    locale      TEXT NOT NULL,
    terms       TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    program_id  BLOB NOT NULL REFERENCES programs (program_id),
    key_id      BLOB NOT NULL,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('admin', 'server', 'publishable')),
    token_hash  BLOB NOT NULL,
    token_hint  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    PRIMARY KEY (program_id, key_id),
    UNIQUE (program_id, token_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE members (
    program_id        BLOB NOT NULL REFERENCES programs (program_id),
    member_id         BLOB NOT NULL,
    external_id       TEXT,
    email             TEXT,
    phone             TEXT,
    name              TEXT,
    locale            TEXT,
    status            TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'erased')),
    consent_email     INTEGER NOT NULL DEFAULT 0,
    consent_sms       INTEGER NOT NULL DEFAULT 0,
    consent_messengers INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    erased_at         TEXT,
    PRIMARY KEY (program_id, member_id),
    UNIQUE (program_id, external_id),
    UNIQUE (program_id, email),
    UNIQUE (program_id, phone),
    -- A member is always findable by something, until erased.
    CONSTRAINT members_identified CHECK (
        status = 'erased' OR external_id IS NOT NULL OR email IS NOT NULL OR phone IS NOT NULL)
) STRICT, WITHOUT ROWID;

-- One row per client Idempotency-Key: the request's fingerprint and, once the
-- request finished, the response to replay.
CREATE TABLE idempotency_keys (
    program_id     BLOB NOT NULL REFERENCES programs (program_id),
    idem_key       TEXT NOT NULL,
    fingerprint    BLOB NOT NULL,
    status         INTEGER,
    content_type   TEXT,
    body           BLOB,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (program_id, idem_key)
) STRICT, WITHOUT ROWID;
