-- `points.expiring` notices are kept per lot, not per day: a lot earned
-- after its expiry day was announced was never told about, as the day's
-- notice row covered the whole day. Now each lot is announced once; a day
-- with a lot not announced yet gets a (follow-up) notice with its total.
CREATE TABLE expiry_notice_lots (
    program_id  UUID NOT NULL REFERENCES programs (program_id),
    lot_id      UUID NOT NULL,
    notified_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, lot_id)
);

-- A day's notice told about the lots earned by then (earned_at is the
-- event's time, so a back-dated late lot counts as told: a rare miss).
INSERT INTO expiry_notice_lots (program_id, lot_id, notified_at)
SELECT l.program_id, l.lot_id, MIN(n.notified_at)
FROM expiry_notices n
JOIN lots l ON l.program_id = n.program_id AND l.member_id = n.member_id AND l.asset = n.asset
    AND l.expires_at >= n.day_from AND l.expires_at < n.day_until
    AND l.earned_at <= n.notified_at
GROUP BY l.program_id, l.lot_id;

DROP TABLE expiry_notices;
