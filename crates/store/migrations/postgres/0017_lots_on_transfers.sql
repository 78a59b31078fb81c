-- A lot lives on the transfer that brought its points: `remaining` (what is
-- left to spend, NULL for a transfer that is not a lot) and `expires_at`.
-- The `lots` table repeated the transfer's member, asset, time and event in
-- a row and two indexes of its own. A lot's id is now its transfer's id.
ALTER TABLE transfers
    ADD COLUMN remaining BIGINT CHECK (remaining >= 0),
    ADD COLUMN expires_at TIMESTAMPTZ;

-- Which transfer brought each lot: the n-th lot of an event, member and
-- asset is the n-th crediting transfer of the same (both ids are UUIDv7,
-- made in booking order). A credit that only paid a debt made no lot, so a
-- later lot of the same event could pair with that earlier credit of the
-- same member and asset: same sums, same expiry, no point moves.
CREATE TEMP TABLE lot_transfer AS
WITH credits AS (
    SELECT program_id, transfer_id, event_key, member_id, asset,
           ROW_NUMBER() OVER (PARTITION BY program_id, event_key, member_id, asset ORDER BY transfer_id) AS n
    FROM transfers WHERE amount > 0 AND event_key IS NOT NULL
), numbered AS (
    SELECT program_id, lot_id, event_key, member_id, asset, remaining, expires_at,
           ROW_NUMBER() OVER (PARTITION BY program_id, event_key, member_id, asset ORDER BY lot_id) AS n
    FROM lots
)
SELECT l.program_id, l.lot_id, c.transfer_id, l.remaining, l.expires_at
FROM numbered l
LEFT JOIN credits c ON c.program_id = l.program_id AND c.event_key = l.event_key
    AND c.member_id = l.member_id AND c.asset = l.asset AND c.n = l.n;

-- Every lot must find its transfer, or points would vanish.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM lot_transfer WHERE transfer_id IS NULL) THEN
        RAISE EXCEPTION 'a lot has no crediting transfer to move to';
    END IF;
END $$;

UPDATE transfers t SET remaining = l.remaining, expires_at = l.expires_at
FROM lot_transfer l
WHERE t.program_id = l.program_id AND t.transfer_id = l.transfer_id;

-- Announced lots keep their announcement under their new id.
UPDATE expiry_notice_lots k SET lot_id = l.transfer_id
FROM lot_transfer l
WHERE l.program_id = k.program_id AND l.lot_id = k.lot_id;

DROP TABLE lots;
DROP TABLE lot_transfer;

-- A member's open lots, and the lots the expiry job visits, soonest first.
CREATE INDEX transfers_open ON transfers (program_id, member_id, transfer_id) WHERE remaining > 0;
CREATE INDEX transfers_expiring ON transfers (program_id, expires_at)
    WHERE remaining > 0 AND expires_at IS NOT NULL;
