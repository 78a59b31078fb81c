-- Scheduled member messages.

-- One `points.expiring` notice per member, asset and local expiry date,
-- so a notice is sent once however often (and however many) the job runs.
-- day_from/day_until are the local day's bounds: lots expiring inside them
-- are covered by the notice.
CREATE TABLE expiry_notices (
    program_id  BLOB NOT NULL REFERENCES programs (program_id),
    member_id   BLOB NOT NULL,
    asset       TEXT NOT NULL,
    expires_on  TEXT NOT NULL,              -- YYYY-MM-DD in the program's time zone
    day_from    TEXT NOT NULL,
    day_until   TEXT NOT NULL,
    points      INTEGER NOT NULL,
    notified_at TEXT NOT NULL,
    PRIMARY KEY (program_id, member_id, asset, expires_on)
) STRICT, WITHOUT ROWID;
