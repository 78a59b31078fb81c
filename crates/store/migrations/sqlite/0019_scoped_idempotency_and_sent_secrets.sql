-- Idempotency keys: a saved response is keyed by the caller (the API key,
-- or a voice turn's member), method and path besides the client's key, so
-- another key reusing an Idempotency-Key never gets it; a claim names the
-- process (instance) running it, so a retry takes over the claim of a
-- process that died. The old rows are dropped: they are a cache of at most
-- a day, and some held API tokens in clear.
DROP TABLE idempotency_keys;
CREATE TABLE idempotency_keys (
    program_id     BLOB NOT NULL REFERENCES programs (program_id),
    caller_id      BLOB NOT NULL,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    fingerprint    BLOB NOT NULL,
    instance_id    INTEGER NOT NULL,
    status         INTEGER,
    content_type   TEXT,
    body           BLOB,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (program_id, caller_id, method, path, idem_key)
) STRICT, WITHOUT ROWID;
-- The purge of expired rows, program by program.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (program_id, created_at);

-- Outbox: the secret fields of a message (a sign-in code and magic link)
-- apart from its payload, erased once the message is sent or given up.
ALTER TABLE outbox ADD COLUMN secrets TEXT;
-- Sign-in mails already sent lose their code and link.
UPDATE outbox SET payload = json_remove(payload, '$.code', '$.link')
WHERE channel = 'email' AND topic = 'sign_in' AND status <> 'pending';
