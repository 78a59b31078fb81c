//! Saved responses for client idempotency keys: a retried request gets the
//! first response again instead of being executed twice.
//!
//! A saved response is found only by the caller that made it (the API key),
//! for the same method and path: another key (of another scope) reusing
//! the `Idempotency-Key` never sees it.
//!
//! A request in progress holds a claim, marked with the [`Instance`] (the
//! process) running it. A retry takes a claim over at once when its owner is
//! gone: on SQLite, which one server process serves, any other instance is
//! a predecessor that died; on PostgreSQL, where several processes may serve
//! one database, each holds a session advisory lock on its instance id while
//! it lives, and a claim is taken over only when that lock is free.

use crate::{now, with_db, Db, Result, Store};
use sarafan_core::ids::ProgramId;
use time::OffsetDateTime;
use uuid::Uuid;

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
    /// The first request with this key is still running in a live process.
    InProgress,
}

/// Whose key, for what: saved responses are keyed by all of it.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyScope<'a> {
    pub program: ProgramId,
    /// Who asks: the API key's id; for a voice turn, the member's.
    pub caller: Uuid,
    pub method: &'a str,
    pub path: &'a str,
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
}

/// This process as the owner of claims: a random id, and on PostgreSQL the
/// session that holds the advisory lock on it while the process lives
/// (taken at the first claim; released by the server when the process, and
/// so the connection, dies).
pub(crate) struct Instance {
    id: i64,
    /// False for a stand-in of a dead process in tests: never locks.
    live: bool,
    lock: tokio::sync::OnceCell<std::sync::Mutex<sqlx::PgConnection>>,
}

impl Instance {
    pub(crate) fn new() -> Self {
        Self {
            id: rand::random(),
            live: true,
            lock: tokio::sync::OnceCell::new(),
        }
    }

    /// An instance that never holds its lock: a process that died.
    pub(crate) fn dead() -> Self {
        Self {
            live: false,
            ..Self::new()
        }
    }
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").field("id", &self.id).finish()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    fingerprint: Vec<u8>,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

impl Store {
    /// On PostgreSQL, takes this instance's liveness lock if not held yet:
    /// before its first claim, so no sibling ever sees a claim of a live
    /// process as orphaned.
    async fn hold_instance_lock(&self) -> Result<()> {
        let (Db::Postgres(pool), true) = (&self.db, self.instance.live) else {
            return Ok(());
        };
        self.instance
            .lock
            .get_or_try_init(|| async {
                let mut conn = pool.acquire().await?.detach();
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(self.instance.id)
                    .execute(&mut conn)
                    .await?;
                Ok::<_, crate::StoreError>(std::sync::Mutex::new(conn))
            })
            .await?;
        Ok(())
    }

    /// Claims the request for this fingerprint, or says why not. A saved
    /// response made before `expired_before` counts as absent.
    pub async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope<'_>,
        fingerprint: &[u8],
        expired_before: OffsetDateTime,
    ) -> Result<IdempotencyBegin> {
        self.hold_instance_lock().await?;
        // Whether the claim's owner is gone: on PostgreSQL, its lock is
        // free (a shared try-lock for this statement only); on SQLite, any
        // other instance is a predecessor.
        let owner_gone = match self.db {
            Db::Sqlite { .. } => "TRUE",
            Db::Postgres(_) => "pg_try_advisory_xact_lock_shared(idempotency_keys.instance_id)",
        };
        let claim = format!(
            "INSERT INTO idempotency_keys (program_id, caller_id, method, path, idem_key, \
               fingerprint, instance_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (program_id, caller_id, method, path, idem_key) DO UPDATE \
             SET fingerprint = excluded.fingerprint, instance_id = excluded.instance_id, \
                 created_at = excluded.created_at, status = NULL, content_type = NULL, body = NULL \
             WHERE idempotency_keys.created_at < $9 \
                OR (idempotency_keys.status IS NULL \
                    AND idempotency_keys.fingerprint = excluded.fingerprint \
                    AND idempotency_keys.instance_id <> excluded.instance_id AND {owner_gone})"
        );
        loop {
            let claimed = with_db!(self, write, |pool| {
                sqlx::query(&claim)
                    .bind(scope.program.0)
                    .bind(scope.caller)
                    .bind(scope.method)
                    .bind(scope.path)
                    .bind(scope.key)
                    .bind(fingerprint)
                    .bind(self.instance.id)
                    .bind(now())
                    .bind(expired_before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if claimed == 1 {
                return Ok(IdempotencyBegin::Run);
            }
            let row: Option<Row> = with_db!(self, write, |pool| {
                sqlx::query_as(
                    "SELECT fingerprint, status, content_type, body FROM idempotency_keys \
                     WHERE program_id = $1 AND caller_id = $2 AND method = $3 AND path = $4 \
                       AND idem_key = $5",
                )
                .bind(scope.program.0)
                .bind(scope.caller)
                .bind(scope.method)
                .bind(scope.path)
                .bind(scope.key)
                .fetch_optional(pool)
                .await?
            });
            // None: abandoned between the two statements; claim it again.
            if let Some(row) = row {
                return Ok(if row.fingerprint != fingerprint {
                    IdempotencyBegin::Mismatch
                } else {
                    match (row.status, row.body) {
                        (Some(status), Some(body)) => IdempotencyBegin::Replay(SavedResponse {
                            status: u16::try_from(status).unwrap_or(500),
                            content_type: row.content_type,
                            body,
                        }),
                        _ => IdempotencyBegin::InProgress,
                    }
                });
            }
        }
    }

    /// Saves the response of a request this instance claimed. Changes
    /// nothing when the claim was taken over meanwhile.
    pub async fn idempotency_finish(
        &self,
        scope: &IdempotencyScope<'_>,
        resp: &SavedResponse,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $7, content_type = $8, body = $9 \
                 WHERE program_id = $1 AND caller_id = $2 AND method = $3 AND path = $4 \
                   AND idem_key = $5 AND instance_id = $6 AND status IS NULL",
            )
            .bind(scope.program.0)
            .bind(scope.caller)
            .bind(scope.method)
            .bind(scope.path)
            .bind(scope.key)
            .bind(self.instance.id)
            .bind(i32::from(resp.status))
            .bind(resp.content_type.as_deref())
            .bind(&resp.body)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Releases a claim of this instance whose request failed or was
    /// dropped, so a retry runs.
    pub async fn idempotency_abandon(&self, scope: &IdempotencyScope<'_>) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "DELETE FROM idempotency_keys \
                 WHERE program_id = $1 AND caller_id = $2 AND method = $3 AND path = $4 \
                   AND idem_key = $5 AND instance_id = $6 AND status IS NULL",
            )
            .bind(scope.program.0)
            .bind(scope.caller)
            .bind(scope.method)
            .bind(scope.path)
            .bind(scope.key)
            .bind(self.instance.id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Deletes `program`'s saved responses and claims made before `before`;
    /// returns how many.
    pub async fn purge_idempotency(
        &self,
        program: ProgramId,
        before: OffsetDateTime,
    ) -> Result<u64> {
        Ok(with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM idempotency_keys WHERE program_id = $1 AND created_at < $2")
                .bind(program.0)
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
