-- Members signing in to the portal: a one-time code and a magic link sent
-- by e-mail, a lockout after repeated wrong codes, and sessions. Codes,
-- link tokens and session tokens are kept only as SHA-256 hashes.
-- Times that are compared are integer Unix milliseconds on both backends.

CREATE TABLE member_sign_ins (
    program_id   BLOB NOT NULL REFERENCES programs (program_id),
    challenge_id BLOB NOT NULL,
    member_id    BLOB NOT NULL,
    code_hash    TEXT NOT NULL,
    link_hash    TEXT NOT NULL,
    next_path    TEXT NOT NULL,              -- where to go once signed in
    expires_ms   INTEGER NOT NULL,
    used_ms      INTEGER,                     -- signed in with (or superseded)
    created_at   TEXT NOT NULL,
    PRIMARY KEY (program_id, challenge_id),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX member_sign_ins_link ON member_sign_ins (program_id, link_hash);

-- Wrong codes per member, across challenges: a new code does not reset them.
CREATE TABLE member_sign_in_guards (
    program_id      BLOB NOT NULL REFERENCES programs (program_id),
    member_id       BLOB NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, member_id),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE member_sessions (
    program_id  BLOB NOT NULL REFERENCES programs (program_id),
    token_hash  TEXT NOT NULL,
    member_id   BLOB NOT NULL,
    expires_ms  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (program_id, token_hash),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, member_id)
) STRICT, WITHOUT ROWID;
