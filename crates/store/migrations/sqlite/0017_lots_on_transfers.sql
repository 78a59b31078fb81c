-- A lot lives on the transfer that brought its points: `remaining` (what is
-- left to spend, NULL for a transfer that is not a lot) and `expires_at`.
-- The `lots` table repeated the transfer's member, asset, time and event in
-- a row and two indexes of its own; every earning paid for three more
-- b-tree inserts. A lot's id is now its transfer's id.
--
-- Transfers become a rowid table (the primary key stays, as its unique
-- index): a secondary index entry then holds the rowid, not the 32-byte
-- key. The member indexes of events and transfers are keyed by the member
-- id's last 8 bytes (random in a UUID) instead of (program_id, member_id):
-- a hash of the member: 8 bytes of key where there were 32 (program and
-- member ids), so a smaller index to rewrite; queries name the same
-- expression and still filter by the full member_id and program_id. These
-- indexes take random inserts, so a batch rewrites most of their pages:
-- their size is what each commit writes. (PostgreSQL keeps program_id
-- first, for distribution by tenant.)

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

-- Looked up by transfer and by lot below (a correlated lookup in an
-- unindexed temporary table would scan it once per row).
CREATE INDEX lot_transfer_by_transfer ON lot_transfer (program_id, transfer_id);
CREATE INDEX lot_transfer_by_lot ON lot_transfer (program_id, lot_id);

-- Every lot must find its transfer, or points would vanish: stop here.
CREATE TEMP TABLE lots_unpaired (n INTEGER CHECK (n = 0));
INSERT INTO lots_unpaired SELECT COUNT(*) FROM lot_transfer WHERE transfer_id IS NULL;

CREATE TABLE transfers_with_lots (
    program_id      BLOB NOT NULL REFERENCES programs (program_id),
    transfer_id     BLOB NOT NULL,
    kind            TEXT NOT NULL,
    -- ORs, not IN (…): SQLite builds a temporary b-tree for an IN list on
    -- every insert.
    state           TEXT NOT NULL CHECK (state = 'posted' OR state = 'pending' OR state = 'voided'),
    event_key       TEXT,
    member_id       BLOB NOT NULL,
    asset           TEXT NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount <> 0),
    program_account TEXT NOT NULL,
    reason          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    remaining       INTEGER CHECK (remaining >= 0),
    expires_at      TEXT,
    PRIMARY KEY (program_id, transfer_id)
) STRICT;
INSERT INTO transfers_with_lots
SELECT t.program_id, t.transfer_id, t.kind, t.state, t.event_key, t.member_id, t.asset, t.amount,
       t.program_account, t.reason, t.created_at, l.remaining, l.expires_at
FROM transfers t
LEFT JOIN lot_transfer l ON l.program_id = t.program_id AND l.transfer_id = t.transfer_id
ORDER BY t.program_id, t.transfer_id;
DROP TABLE transfers;
ALTER TABLE transfers_with_lots RENAME TO transfers;
-- A member's statement, in transfer order, and their open lots.
CREATE INDEX transfers_by_member ON transfers (substr(member_id, 9, 8), transfer_id);
-- Lots the expiry job visits, soonest first (inserted in near time order).
CREATE INDEX transfers_expiring ON transfers (program_id, expires_at)
    WHERE remaining > 0 AND expires_at IS NOT NULL;

-- Announced lots keep their announcement under their new id.
UPDATE expiry_notice_lots SET lot_id = l.transfer_id
FROM lot_transfer l
WHERE l.program_id = expiry_notice_lots.program_id AND l.lot_id = expiry_notice_lots.lot_id;

DROP TABLE lots;
DROP TABLE lot_transfer;
DROP TABLE lots_unpaired;

DROP INDEX events_by_member;
CREATE INDEX events_by_member ON events (substr(member_id, 9, 8), occurred_at);
