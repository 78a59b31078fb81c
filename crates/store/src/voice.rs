//! Voice assistants: each program's configuration of its skills and agents,
//! the directory from a skill id to its programs, the deployment-wide
//! (shared) skills the operator set up, and the OAuth codes and tokens that
//! link an assistant's user to a member.

use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::apikey::TokenHash;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::voice::{Assistant, TokenKind};
use time::OffsetDateTime;
use uuid::Uuid;

/// A program's configuration of one assistant.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceAssistant {
    pub program: ProgramId,
    pub assistant: Assistant,
    /// The id requests carry: the Alexa skill's application id, the Alice
    /// skill id, the Dialogflow project (ES) or agent (CX) id.
    pub skill_id: String,
    /// Hash of the secret Dialogflow sends (Dialogflow only).
    pub secret_hash: Option<TokenHash>,
    pub client_secret_hash: TokenHash,
    /// Where the authorize endpoint may send the user back to.
    pub redirect_uris: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct AssistantRow {
    program_id: Uuid,
    assistant: String,
    skill_id: String,
    secret_hash: Option<Vec<u8>>,
    client_secret_hash: Vec<u8>,
    redirect_uris: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const COLUMNS: &str = "program_id, assistant, skill_id, secret_hash, client_secret_hash, \
    redirect_uris, created_at, updated_at";

fn hash_of(raw: Vec<u8>) -> Result<TokenHash> {
    raw.try_into()
        .map_err(|_| StoreError::Corrupt("voice secret hash is not 32 bytes".into()))
}

impl TryFrom<AssistantRow> for VoiceAssistant {
    type Error = StoreError;
    fn try_from(r: AssistantRow) -> Result<Self> {
        Ok(Self {
            program: ProgramId(r.program_id),
            assistant: assistant_of(&r.assistant)?,
            skill_id: r.skill_id,
            secret_hash: r.secret_hash.map(hash_of).transpose()?,
            client_secret_hash: hash_of(r.client_secret_hash)?,
            redirect_uris: uris_of(&r.redirect_uris)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The operator's deployment-wide configuration of one assistant: a skill
/// or agent serving every program that configured its skill id, with one
/// OAuth client and (Dialogflow) one secret for all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedVoiceAssistant {
    pub assistant: Assistant,
    pub skill_id: String,
    /// Hash of the secret Dialogflow sends (Dialogflow only).
    pub secret_hash: Option<TokenHash>,
    pub client_secret_hash: TokenHash,
    pub redirect_uris: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct SharedRow {
    assistant: String,
    skill_id: String,
    secret_hash: Option<Vec<u8>>,
    client_secret_hash: Vec<u8>,
    redirect_uris: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const SHARED_COLUMNS: &str = "assistant, skill_id, secret_hash, client_secret_hash, \
    redirect_uris, created_at, updated_at";

impl TryFrom<SharedRow> for SharedVoiceAssistant {
    type Error = StoreError;
    fn try_from(r: SharedRow) -> Result<Self> {
        Ok(Self {
            assistant: assistant_of(&r.assistant)?,
            skill_id: r.skill_id,
            secret_hash: r.secret_hash.map(hash_of).transpose()?,
            client_secret_hash: hash_of(r.client_secret_hash)?,
            redirect_uris: uris_of(&r.redirect_uris)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn assistant_of(raw: &str) -> Result<Assistant> {
    Assistant::parse("assistant", raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn uris_of(raw: &str) -> Result<Vec<String>> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("voice redirect URIs: {e}")))
}

fn uris_json(uris: &[String]) -> Result<String> {
    serde_json::to_string(uris)
        .map_err(|e| StoreError::Corrupt(format!("voice redirect URIs: {e}")))
}

/// A code or token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceGrant {
    pub assistant: Assistant,
    pub member: MemberId,
    pub redirect_uri: Option<String>,
    pub expires_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    assistant: String,
    member_id: Uuid,
    redirect_uri: Option<String>,
    expires_at: OffsetDateTime,
}

impl TryFrom<GrantRow> for VoiceGrant {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<Self> {
        Ok(Self {
            assistant: assistant_of(&r.assistant)?,
            member: MemberId(r.member_id),
            redirect_uri: r.redirect_uri,
            expires_at: r.expires_at,
        })
    }
}

impl Store {
    /// Creates or replaces the program's configuration of `c.assistant`,
    /// and routes its skill id to the program. Keeps `created_at`.
    pub async fn put_voice_assistant(&self, c: &VoiceAssistant) -> Result<VoiceAssistant> {
        let uris = uris_json(&c.redirect_uris)?;
        let at = now();
        let sql = format!(
            "INSERT INTO voice_assistants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (program_id, assistant) DO UPDATE SET skill_id = excluded.skill_id, \
             secret_hash = excluded.secret_hash, client_secret_hash = excluded.client_secret_hash, \
             redirect_uris = excluded.redirect_uris, updated_at = excluded.updated_at \
             RETURNING {COLUMNS}"
        );
        let row: AssistantRow = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM voice_routes WHERE program_id = $1 AND assistant = $2")
                .bind(c.program.0)
                .bind(c.assistant.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO voice_routes (assistant, skill_id, program_id) VALUES ($1, $2, $3)",
            )
            .bind(c.assistant.as_str())
            .bind(&c.skill_id)
            .bind(c.program.0)
            .execute(&mut *tx)
            .await?;
            let row: AssistantRow = sqlx::query_as(&sql)
                .bind(c.program.0)
                .bind(c.assistant.as_str())
                .bind(&c.skill_id)
                .bind(c.secret_hash.map(|h| h.to_vec()))
                .bind(&c.client_secret_hash[..])
                .bind(&uris)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        });
        row.try_into()
    }

    pub async fn voice_assistant(
        &self,
        program: ProgramId,
        assistant: Assistant,
    ) -> Result<Option<VoiceAssistant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM voice_assistants WHERE program_id = $1 AND assistant = $2"
        );
        let row: Option<AssistantRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(assistant.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(VoiceAssistant::try_from).transpose()
    }

    pub async fn voice_assistants(&self, program: ProgramId) -> Result<Vec<VoiceAssistant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM voice_assistants WHERE program_id = $1 ORDER BY assistant"
        );
        let rows: Vec<AssistantRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(program.0).fetch_all(pool).await?
        });
        rows.into_iter().map(VoiceAssistant::try_from).collect()
    }

    /// Removes the configuration and its route; linked tokens stop working
    /// with it. `false` when there was none.
    pub async fn delete_voice_assistant(
        &self,
        program: ProgramId,
        assistant: Assistant,
    ) -> Result<bool> {
        let deleted = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM voice_routes WHERE program_id = $1 AND assistant = $2")
                .bind(program.0)
                .bind(assistant.as_str())
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(
                "DELETE FROM voice_assistants WHERE program_id = $1 AND assistant = $2",
            )
            .bind(program.0)
            .bind(assistant.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(deleted > 0)
    }

    /// The configurations of `assistant` whose skill id is `skill_id`, in
    /// every program that set it up.
    pub async fn voice_assistants_for_skill(
        &self,
        assistant: Assistant,
        skill_id: &str,
    ) -> Result<Vec<VoiceAssistant>> {
        let programs: Vec<Uuid> = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT program_id FROM voice_routes WHERE assistant = $1 AND skill_id = $2 \
                 ORDER BY program_id",
            )
            .bind(assistant.as_str())
            .bind(skill_id)
            .fetch_all(pool)
            .await?
        });
        let mut found = Vec::with_capacity(programs.len());
        for p in programs {
            found.extend(self.voice_assistant(ProgramId(p), assistant).await?);
        }
        Ok(found)
    }

    /// Creates or replaces the deployment-wide configuration of
    /// `c.assistant`. Keeps `created_at`.
    pub async fn put_shared_voice_assistant(
        &self,
        c: &SharedVoiceAssistant,
    ) -> Result<SharedVoiceAssistant> {
        let uris = uris_json(&c.redirect_uris)?;
        let sql = format!(
            "INSERT INTO voice_shared_assistants ({SHARED_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (assistant) DO UPDATE SET skill_id = excluded.skill_id, \
             secret_hash = excluded.secret_hash, client_secret_hash = excluded.client_secret_hash, \
             redirect_uris = excluded.redirect_uris, updated_at = excluded.updated_at \
             RETURNING {SHARED_COLUMNS}"
        );
        let at = now();
        let row: SharedRow = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(c.assistant.as_str())
                .bind(&c.skill_id)
                .bind(c.secret_hash.map(|h| h.to_vec()))
                .bind(&c.client_secret_hash[..])
                .bind(&uris)
                .bind(at)
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    /// The deployment-wide configurations, by assistant.
    pub async fn shared_voice_assistants(&self) -> Result<Vec<SharedVoiceAssistant>> {
        let sql =
            format!("SELECT {SHARED_COLUMNS} FROM voice_shared_assistants ORDER BY assistant");
        let rows: Vec<SharedRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(SharedVoiceAssistant::try_from)
            .collect()
    }

    pub async fn shared_voice_assistant(
        &self,
        assistant: Assistant,
    ) -> Result<Option<SharedVoiceAssistant>> {
        let sql =
            format!("SELECT {SHARED_COLUMNS} FROM voice_shared_assistants WHERE assistant = $1");
        let row: Option<SharedRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(assistant.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(SharedVoiceAssistant::try_from).transpose()
    }

    /// Removes the deployment-wide configuration; `false` when there was
    /// none. The programs keep their own configurations.
    pub async fn delete_shared_voice_assistant(&self, assistant: Assistant) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM voice_shared_assistants WHERE assistant = $1")
                .bind(assistant.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Stores a code or token (by its hash) for `member`.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_voice_grant(
        &self,
        program: ProgramId,
        kind: TokenKind,
        hash: &TokenHash,
        assistant: Assistant,
        member: MemberId,
        redirect_uri: Option<&str>,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO voice_grants (program_id, token_hash, kind, assistant, member_id, \
                 redirect_uri, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(program.0)
            .bind(&hash[..])
            .bind(kind.as_str())
            .bind(assistant.as_str())
            .bind(member.0)
            .bind(redirect_uri)
            .bind(expires_at)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The unexpired, unused code or token with this hash. Codes and refresh
    /// tokens are used up by this call (refresh tokens rotate): a second
    /// call finds nothing, even concurrently.
    pub async fn take_voice_grant(
        &self,
        program: ProgramId,
        kind: TokenKind,
        hash: &TokenHash,
    ) -> Result<Option<VoiceGrant>> {
        let at = now();
        let row: Option<GrantRow> = if kind != TokenKind::Access {
            with_db!(self, write, |pool| {
                sqlx::query_as(
                    "UPDATE voice_grants SET used_at = $4 WHERE program_id = $1 AND token_hash = $2 \
                     AND kind = $3 AND used_at IS NULL AND expires_at > $4 \
                     RETURNING assistant, member_id, redirect_uri, expires_at",
                )
                .bind(program.0)
                .bind(&hash[..])
                .bind(kind.as_str())
                .bind(at)
                .fetch_optional(pool)
                .await?
            })
        } else {
            with_db!(self, read, |pool| {
                sqlx::query_as(
                    "SELECT assistant, member_id, redirect_uri, expires_at FROM voice_grants \
                     WHERE program_id = $1 AND token_hash = $2 AND kind = $3 AND used_at IS NULL \
                     AND expires_at > $4",
                )
                .bind(program.0)
                .bind(&hash[..])
                .bind(kind.as_str())
                .bind(at)
                .fetch_optional(pool)
                .await?
            })
        };
        row.map(VoiceGrant::try_from).transpose()
    }
}
