-- Points a purchase earned that stay pending through the return window.
-- A refund inside the window cancels them; after it, they are posted.
CREATE TABLE holds (
    program_id BLOB NOT NULL REFERENCES programs (program_id),
    event_key  TEXT NOT NULL,
    member_id  BLOB NOT NULL,
    asset      TEXT NOT NULL,
    points     INTEGER NOT NULL CHECK (points > 0),
    remaining  INTEGER NOT NULL CHECK (remaining >= 0),
    release_at TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (program_id, event_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX holds_due ON holds (program_id, release_at) WHERE state = 'pending';
CREATE INDEX holds_by_member ON holds (program_id, member_id) WHERE state = 'pending';
