//! Saved responses for client idempotency keys: a retried request gets the
//! first response again instead of being executed twice.

use crate::{now, with_db, Result, Store};
use sarafan_core::ids::ProgramId;
use time::{Duration, OffsetDateTime};

/// A response to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What the caller should do with a request carrying an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time: run it, then [`Store::idempotency_finish`] or
    /// [`Store::idempotency_abandon`].
    Run,
    /// Done before with the same request: send this again.
    Replay(SavedResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// A claim older than this belongs to a request that died (crash, kill) and
/// may be taken over by a retry.
const STALE_CLAIM: Duration = Duration::seconds(60);

#[derive(sqlx::FromRow)]
struct Row {
    fingerprint: Vec<u8>,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
    created_at: OffsetDateTime,
}

impl Store {
    /// Claims `key` for a request with this fingerprint, or says why not.
    pub async fn idempotency_begin(
        &self,
        program: ProgramId,
        key: &str,
        fingerprint: &[u8],
    ) -> Result<IdempotencyBegin> {
        let at = now();
        let claimed = with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO idempotency_keys (program_id, idem_key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (program_id, idem_key) DO NOTHING",
            )
            .bind(program.0)
            .bind(key)
            .bind(fingerprint)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if claimed == 1 {
            return Ok(IdempotencyBegin::Run);
        }
        let row: Option<Row> = with_db!(self, write, |pool| {
            sqlx::query_as(
                "SELECT fingerprint, status, content_type, body, created_at FROM idempotency_keys \
                 WHERE program_id = $1 AND idem_key = $2",
            )
            .bind(program.0)
            .bind(key)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else {
            // Abandoned between our insert and select: claim it again.
            return Box::pin(self.idempotency_begin(program, key, fingerprint)).await;
        };
        if row.fingerprint != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        match (row.status, row.body) {
            (Some(status), Some(body)) => Ok(IdempotencyBegin::Replay(SavedResponse {
                status: u16::try_from(status).unwrap_or(500),
                content_type: row.content_type,
                body,
            })),
            _ if at - row.created_at > STALE_CLAIM => {
                let taken = with_db!(self, write, |pool| {
                    sqlx::query(
                        "UPDATE idempotency_keys SET created_at = $3 \
                         WHERE program_id = $1 AND idem_key = $2 AND status IS NULL AND created_at = $4",
                    )
                    .bind(program.0)
                    .bind(key)
                    .bind(at)
                    .bind(row.created_at)
                    .execute(pool)
                    .await?
                    .rows_affected()
                });
                Ok(if taken == 1 {
                    IdempotencyBegin::Run
                } else {
                    IdempotencyBegin::InProgress
                })
            }
            _ => Ok(IdempotencyBegin::InProgress),
        }
    }

    /// Saves the response of a claimed request for later replays.
    pub async fn idempotency_finish(
        &self,
        program: ProgramId,
        key: &str,
        resp: &SavedResponse,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 \
                 WHERE program_id = $1 AND idem_key = $2",
            )
            .bind(program.0)
            .bind(key)
            .bind(i32::from(resp.status))
            .bind(resp.content_type.as_deref())
            .bind(&resp.body)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Releases a claim whose request failed on our side, so a retry runs.
    pub async fn idempotency_abandon(&self, program: ProgramId, key: &str) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM idempotency_keys WHERE program_id = $1 AND idem_key = $2 AND status IS NULL")
                .bind(program.0)
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
