-- Foundation: retailers, programs (tenants), API keys, members, idempotency.
-- Every tenant table leads its primary key with program_id so the schema can
-- be distributed by tenant (Citus: retailers is a reference table, every
-- other table is distributed on program_id and colocated); see docs/storage.md.

CREATE TABLE retailers (
    retailer_id UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE programs (
    program_id  UUID PRIMARY KEY,
    retailer_id UUID NOT NULL REFERENCES retailers (retailer_id),
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    locale      TEXT NOT NULL,
    terms       TEXT NOT NULL DEFAULT '',
    settings    JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    program_id  UUID NOT NULL REFERENCES programs (program_id),
    key_id      UUID NOT NULL,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('admin', 'server', 'publishable')),
    token_hash  BYTEA NOT NULL,
    token_hint  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    PRIMARY KEY (program_id, key_id),
    UNIQUE (program_id, token_hash)
);

CREATE TABLE members (
    program_id        UUID NOT NULL REFERENCES programs (program_id),
    member_id         UUID NOT NULL,
    external_id       TEXT,
    email             TEXT,
    phone             TEXT,
    name              TEXT,
    locale            TEXT,
    status            TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'erased')),
    consent_email     BOOLEAN NOT NULL DEFAULT FALSE,
    consent_sms       BOOLEAN NOT NULL DEFAULT FALSE,
    consent_messengers BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    erased_at         TIMESTAMPTZ,
    PRIMARY KEY (program_id, member_id),
    UNIQUE (program_id, external_id),
    UNIQUE (program_id, email),
    UNIQUE (program_id, phone),
    -- A member is always findable by something, until erased.
    CONSTRAINT members_identified CHECK (
        status = 'erased' OR external_id IS NOT NULL OR email IS NOT NULL OR phone IS NOT NULL)
);

CREATE TABLE idempotency_keys (
    program_id     UUID NOT NULL REFERENCES programs (program_id),
    idem_key       TEXT NOT NULL,
    fingerprint    BYTEA NOT NULL,
    status         INTEGER,
    content_type   TEXT,
    body           BYTEA,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, idem_key)
);
