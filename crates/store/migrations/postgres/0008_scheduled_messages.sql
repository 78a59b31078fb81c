-- Scheduled member messages.

-- One `points.expiring` notice per member, asset and local expiry date,
-- so a notice is sent once however often (and however many) the job runs.
-- day_from/day_until are the local day's bounds: lots expiring inside them
-- are covered by the notice.
CREATE TABLE expiry_notices (
    program_id  UUID NOT NULL REFERENCES programs (program_id),
    member_id   UUID NOT NULL,
    asset       TEXT NOT NULL,
    expires_on  TEXT NOT NULL,              -- YYYY-MM-DD in the program's time zone
    day_from    TIMESTAMPTZ NOT NULL,
    day_until   TIMESTAMPTZ NOT NULL,
    points      BIGINT NOT NULL,
    notified_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, member_id, asset, expires_on)
);

-- The weekly share routine: a member's contacts (at most 20), each sent
-- the member's referral link at most once a week.
CREATE TABLE share_contacts (
    program_id   UUID NOT NULL REFERENCES programs (program_id),
    member_id    UUID NOT NULL,
    email        TEXT NOT NULL,
    email_hash   BYTEA NOT NULL,            -- SHA-256 of email, matches share_opt_outs
    added_at     TIMESTAMPTZ NOT NULL,
    last_sent_at TIMESTAMPTZ,
    PRIMARY KEY (program_id, member_id, email)
);
CREATE INDEX share_contacts_due ON share_contacts (program_id, last_sent_at);

-- Contacts who unsubscribed from every routine of the program, by address
-- hash (they are not members; their address is not kept for this).
CREATE TABLE share_opt_outs (
    program_id UUID NOT NULL REFERENCES programs (program_id),
    email_hash BYTEA NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, email_hash)
);
