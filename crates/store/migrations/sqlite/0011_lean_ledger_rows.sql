-- A transfer becomes one row (as in TigerBeetle): every transfer the ledger
-- books has two legs, the member's and the program account's, for the same
-- amount with opposite signs. `amount` is what the member's account gets
-- (negative: what it gives); `program_account` (issued, redeemed, expired,
-- reversed, adjustment) gets `-amount` in the same asset. Balanced by
-- construction, and two rows fewer per transfer than transfer + postings.
CREATE TABLE transfers_one_row (
    program_id      BLOB NOT NULL REFERENCES programs (program_id),
    transfer_id     BLOB NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('posted', 'pending', 'voided')),
    event_key       TEXT,
    member_id       BLOB NOT NULL,
    asset           TEXT NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount <> 0),
    program_account TEXT NOT NULL,
    reason          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (program_id, transfer_id)
) STRICT, WITHOUT ROWID;
INSERT INTO transfers_one_row
SELECT t.program_id, t.transfer_id, t.kind, t.state, t.event_key, m.member_id, m.asset, m.amount,
       substr(p.account, 9, length(p.account) - 9 - length(p.asset)), m.reason, t.created_at
FROM transfers t
JOIN postings m ON m.program_id = t.program_id AND m.transfer_id = t.transfer_id AND m.member_id IS NOT NULL
JOIN postings p ON p.program_id = t.program_id AND p.transfer_id = t.transfer_id AND p.member_id IS NULL;
DROP TABLE postings;
DROP TABLE transfers;
ALTER TABLE transfers_one_row RENAME TO transfers;
-- A member's statement, in transfer order.
CREATE INDEX transfers_by_member ON transfers (program_id, member_id, transfer_id);
