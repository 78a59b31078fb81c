-- Staff: the people of a program who use the console, with a role
-- (owner, manager, analyst, cashier), an e-mail and an argon2id password
-- hash (PHC string). Failed sign-ins in a row lock the account for a
-- while. Sessions are kept as SHA-256 hashes of their tokens.
-- Times that are compared are integer Unix milliseconds on both backends.

CREATE TABLE staff_users (
    program_id       UUID NOT NULL REFERENCES programs (program_id),
    staff_id         UUID NOT NULL,
    email            TEXT NOT NULL,
    name             TEXT,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'analyst', 'cashier')),
    password_hash    TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    failed_sign_ins  BIGINT NOT NULL DEFAULT 0,
    locked_until_ms  BIGINT NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, staff_id),
    UNIQUE (program_id, email)
);

-- The directory from a staff e-mail to the programs it works for: the
-- console's sign-in form has no program (a Citus reference table, like
-- referral_code_routes). Written in the same transaction as staff_users.
CREATE TABLE staff_email_routes (
    email      TEXT NOT NULL,
    program_id UUID NOT NULL,
    -- No foreign key: a Citus reference table cannot point into a distributed one.
    PRIMARY KEY (email, program_id)
);

CREATE TABLE staff_sessions (
    program_id  UUID NOT NULL REFERENCES programs (program_id),
    token_hash  TEXT NOT NULL,
    staff_id    UUID NOT NULL,
    expires_ms  BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, token_hash),
    FOREIGN KEY (program_id, staff_id) REFERENCES staff_users (program_id, staff_id)
);

-- Failed console sign-ins per client address (a hash of it), before any
-- program is known: deployment-wide counters, not a tenant's rows.
CREATE TABLE console_sign_in_limits (
    limit_key     TEXT NOT NULL PRIMARY KEY,
    window_end_ms BIGINT NOT NULL,
    hits          BIGINT NOT NULL
);
CREATE INDEX console_sign_in_limits_ended ON console_sign_in_limits (window_end_ms);
