-- Sign-in limits (issue #16, item 4): fixed-window counters of codes asked
-- for and wrong codes typed, per member, client address (hashed) and
-- challenge. They replace the per-member lockout, which let anyone lock a
-- member out by typing wrong codes for them.
DROP TABLE member_sign_in_guards;

CREATE TABLE sign_in_limits (
    program_id    UUID NOT NULL REFERENCES programs (program_id),
    limit_key     TEXT NOT NULL,             -- e.g. address-tries:<hash>
    window_end_ms BIGINT NOT NULL,
    hits          BIGINT NOT NULL,
    PRIMARY KEY (program_id, limit_key)
);

CREATE INDEX sign_in_limits_ended ON sign_in_limits (program_id, window_end_ms);

-- Member card numbers (item 22): a serial per member, unique per program,
-- from 1000000 up (the card number is the serial and a Luhn digit, made in
-- Rust). One sequence serves every program (no lock between concurrent
-- registrations); the default numbers existing members and every insert.
CREATE SEQUENCE member_card_serials START WITH 1000000;
ALTER TABLE members ADD COLUMN card_serial BIGINT NOT NULL DEFAULT nextval('member_card_serials');
ALTER SEQUENCE member_card_serials OWNED BY members.card_serial;
CREATE UNIQUE INDEX members_card ON members (program_id, card_serial);

-- Terms per language (item 20): {"ru": "…", "fa": "…"} beside the default.
ALTER TABLE programs ADD COLUMN terms_by_locale JSONB NOT NULL DEFAULT '{}';

-- The weekly share routine (item 21) reminds the member themself once a
-- week; each contact gets one invitation from the program ever, more only
-- after opting in with the link in it. Contacts who had a weekly link
-- already count as invited, so none of them hears again unasked.
CREATE TABLE share_reminders (
    program_id   UUID NOT NULL REFERENCES programs (program_id),
    member_id    UUID NOT NULL,
    last_sent_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, member_id)
);

CREATE TABLE share_invited (
    program_id UUID NOT NULL REFERENCES programs (program_id),
    email_hash BYTEA NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, email_hash)
);

INSERT INTO share_invited (program_id, email_hash, at)
SELECT program_id, email_hash, MIN(last_sent_at) FROM share_contacts
WHERE last_sent_at IS NOT NULL GROUP BY program_id, email_hash;

CREATE TABLE share_opt_ins (
    program_id UUID NOT NULL REFERENCES programs (program_id),
    email_hash BYTEA NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, email_hash)
);
