-- Referral codes and link clicks.
--
-- A shopper's link carries only the code, so `/r/<code>` must find the
-- program from the code alone: codes are unique across the deployment.
-- `referral_code_routes` is the directory from code to program (a Citus
-- reference table); `referral_codes` is the tenant table, keyed by
-- program_id like every other. Both are written in one transaction.
-- Codes are stored canonical (upper case), so uniqueness is case-insensitive,
-- and never deleted or reassigned: a link once shared keeps its referrer.

CREATE TABLE referral_code_routes (
    code       TEXT PRIMARY KEY,
    program_id UUID NOT NULL
    -- No foreign key: a Citus reference table cannot point into a distributed one.
);

CREATE TABLE referral_codes (
    program_id UUID NOT NULL REFERENCES programs (program_id),
    code       TEXT NOT NULL,
    member_id  UUID NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('generated', 'vanity')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, code),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, member_id)
);
-- One generated code per member: get-or-create is idempotent under races.
CREATE UNIQUE INDEX referral_codes_generated ON referral_codes (program_id, member_id)
    WHERE kind = 'generated';
CREATE INDEX referral_codes_by_member ON referral_codes (program_id, member_id, created_at);

-- One row per click on a referral link, written in batches off the request
-- path. visitor_hash is SHA-256 of IP and user agent; the raw IP is never kept.
CREATE TABLE referral_clicks (
    program_id   UUID NOT NULL REFERENCES programs (program_id),
    click_id     UUID NOT NULL,
    code         TEXT NOT NULL,
    member_id    UUID NOT NULL,
    clicked_at   TIMESTAMPTZ NOT NULL,
    channel      TEXT NOT NULL,
    visitor_hash BYTEA NOT NULL,
    referer      TEXT,
    PRIMARY KEY (program_id, click_id)
);
CREATE INDEX referral_clicks_by_time ON referral_clicks (program_id, clicked_at);
CREATE INDEX referral_clicks_by_member ON referral_clicks (program_id, member_id, clicked_at);
