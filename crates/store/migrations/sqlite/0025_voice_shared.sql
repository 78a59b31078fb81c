-- A deployment-wide voice assistant: one Alexa or Alice skill, or one
-- Dialogflow agent, that the operator set up (`sarafan voice shared set`)
-- to serve every program that configures its skill id, the spoken store
-- name choosing the program. Its OAuth client and Dialogflow secret are
-- the operator's, shared by those programs; the codes and tokens it
-- issues are still each program's (voice_grants). Not a tenant's row: at
-- most one per assistant for the whole deployment (a Citus reference
-- table, like voice_routes).

CREATE TABLE voice_shared_assistants (
    assistant          TEXT NOT NULL PRIMARY KEY CHECK (assistant IN ('dialogflow', 'alexa', 'alice')),
    skill_id           TEXT NOT NULL,
    secret_hash        BLOB,
    client_secret_hash BLOB NOT NULL,
    redirect_uris      TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
) STRICT, WITHOUT ROWID;
