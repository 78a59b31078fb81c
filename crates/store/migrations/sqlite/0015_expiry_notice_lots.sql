-- `points.expiring` notices are kept per lot, not per day: a lot earned
-- after its expiry day was announced was never told about, as the day's
-- notice row covered the whole day. Now each lot is announced once; a day
-- with a lot not announced yet gets a (follow-up) notice with its total.
CREATE TABLE expiry_notice_lots (
    program_id  BLOB NOT NULL REFERENCES programs (program_id),
    lot_id      BLOB NOT NULL,
    notified_at TEXT NOT NULL,
    PRIMARY KEY (program_id, lot_id)
) STRICT, WITHOUT ROWID;

-- A day's notice told about the lots earned by then (earned_at is the
-- event's time, so a back-dated late lot counts as told: a rare miss).
-- julianday() compares instants written with different offsets.
INSERT INTO expiry_notice_lots (program_id, lot_id, notified_at)
SELECT l.program_id, l.lot_id, MIN(n.notified_at)
FROM expiry_notices n
JOIN lots l ON l.program_id = n.program_id AND l.member_id = n.member_id AND l.asset = n.asset
    AND julianday(l.expires_at) >= julianday(n.day_from)
    AND julianday(l.expires_at) < julianday(n.day_until)
    AND julianday(l.earned_at) <= julianday(n.notified_at)
GROUP BY l.program_id, l.lot_id;

DROP TABLE expiry_notices;
