-- Voice assistants (Dialogflow, Alexa, Yandex Alice) and OAuth 2.0 account
-- linking.
--
-- `voice_assistants` holds a program's configuration of one assistant: the
-- skill or agent id requests carry, the hash of the Dialogflow secret, and
-- the OAuth client (its secret hashed, its redirect URIs a JSON array).
-- `voice_routes` is the directory from a skill id to the programs that
-- configured it (a Citus reference table, like referral_code_routes): a
-- request names its skill, not its program. Both are written in one
-- transaction.
--
-- `voice_grants` are the OAuth codes, access and refresh tokens, stored as
-- SHA-256 hashes with their expiry; the clear token carries its program id,
-- so it is looked up inside its tenant.

CREATE TABLE voice_routes (
    assistant  TEXT NOT NULL,
    skill_id   TEXT NOT NULL,
    program_id UUID NOT NULL,
    PRIMARY KEY (assistant, skill_id, program_id)
);

CREATE TABLE voice_assistants (
    program_id         UUID NOT NULL REFERENCES programs (program_id),
    assistant          TEXT NOT NULL CHECK (assistant IN ('dialogflow', 'alexa', 'alice')),
    skill_id           TEXT NOT NULL,
    secret_hash        BYTEA,
    client_secret_hash BYTEA NOT NULL,
    redirect_uris      TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, assistant)
);

CREATE TABLE voice_grants (
    program_id   UUID NOT NULL REFERENCES programs (program_id),
    token_hash   BYTEA NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('code', 'access', 'refresh')),
    assistant    TEXT NOT NULL,
    member_id    UUID NOT NULL,
    redirect_uri TEXT,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, token_hash),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, member_id)
);
