-- Sign-in limits (issue #16, item 4): fixed-window counters of codes asked
-- for and wrong codes typed, per member, client address (hashed) and
-- challenge. They replace the per-member lockout, which let anyone lock a
-- member out by typing wrong codes for them.
DROP TABLE member_sign_in_guards;

CREATE TABLE sign_in_limits (
    program_id    BLOB NOT NULL REFERENCES programs (program_id),
    limit_key     TEXT NOT NULL,             -- e.g. address-tries:<hash>
    window_end_ms INTEGER NOT NULL,
    hits          INTEGER NOT NULL,
    PRIMARY KEY (program_id, limit_key)
) STRICT, WITHOUT ROWID;

CREATE INDEX sign_in_limits_ended ON sign_in_limits (program_id, window_end_ms);

-- Member card numbers (item 22): a serial per member, unique per program,
-- from 1000000 up (the card number is the serial and a Luhn digit, made in
-- Rust). Existing members are numbered in the order they joined; new ones
-- by the trigger, whichever statement inserts them.
ALTER TABLE members ADD COLUMN card_serial INTEGER;

UPDATE members SET card_serial = numbered.serial
FROM (
    SELECT program_id AS p, member_id AS m,
           999999 + ROW_NUMBER() OVER (PARTITION BY program_id ORDER BY created_at, member_id) AS serial
    FROM members
) AS numbered
WHERE members.program_id = numbered.p AND members.member_id = numbered.m;

CREATE UNIQUE INDEX members_card ON members (program_id, card_serial);

CREATE TRIGGER members_card_serial AFTER INSERT ON members
WHEN NEW.card_serial IS NULL
BEGIN
    UPDATE members SET card_serial = (
        SELECT COALESCE(MAX(card_serial), 999999) + 1 FROM members WHERE program_id = NEW.program_id)
    WHERE program_id = NEW.program_id AND member_id = NEW.member_id;
END;

-- Terms per language (item 20): {"ru": "…", "fa": "…"} beside the default.
ALTER TABLE programs ADD COLUMN terms_by_locale TEXT NOT NULL DEFAULT '{}';

-- The weekly share routine (item 21) reminds the member themself once a
-- week; each contact gets one invitation from the program ever, more only
-- after opting in with the link in it. Contacts who had a weekly link
-- already count as invited, so none of them hears again unasked.
CREATE TABLE share_reminders (
    program_id   BLOB NOT NULL REFERENCES programs (program_id),
    member_id    BLOB NOT NULL,
    last_sent_at TEXT NOT NULL,
    PRIMARY KEY (program_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE share_invited (
    program_id BLOB NOT NULL REFERENCES programs (program_id),
    email_hash BLOB NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (program_id, email_hash)
) STRICT, WITHOUT ROWID;

INSERT INTO share_invited (program_id, email_hash, at)
SELECT program_id, email_hash, MIN(last_sent_at) FROM share_contacts
WHERE last_sent_at IS NOT NULL GROUP BY program_id, email_hash;

CREATE TABLE share_opt_ins (
    program_id BLOB NOT NULL REFERENCES programs (program_id),
    email_hash BLOB NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (program_id, email_hash)
) STRICT, WITHOUT ROWID;
