-- Points a purchase earned that stay pending through the return window.
-- A refund inside the window cancels them; after it, they are posted.
CREATE TABLE holds (
    program_id UUID NOT NULL REFERENCES programs (program_id),
    event_key  TEXT NOT NULL,
    member_id  UUID NOT NULL,
    asset      TEXT NOT NULL,
    points     BIGINT NOT NULL CHECK (points > 0),
    remaining  BIGINT NOT NULL CHECK (remaining >= 0),
    release_at TIMESTAMPTZ NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, event_key)
);
CREATE INDEX holds_due ON holds (program_id, release_at) WHERE state = 'pending';
CREATE INDEX holds_by_member ON holds (program_id, member_id) WHERE state = 'pending';
