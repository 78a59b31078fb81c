//! Members signing in to the portal: challenges (a one-time code and a magic
//! link, mailed through the outbox in the same transaction), the counters
//! that limit asking for and guessing codes, and sessions. The store sees
//! only hashes of codes and tokens; making and hashing them is the caller's.

use crate::outbox::{unix_ms, Enqueue};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The fields of a sign-in mail's data that sign in: erased from the
/// outbox once the mail is sent.
pub const MAIL_SECRETS: &[&str] = &["code", "link"];

/// A sign-in to start.
#[derive(Debug, Clone)]
pub struct NewSignIn<'a> {
    /// The challenge's id, made by the caller (the code's hash may bind it).
    pub challenge: Uuid,
    pub member: MemberId,
    pub code_hash: &'a str,
    pub link_hash: &'a str,
    /// The local path to return to.
    pub next: &'a str,
    pub expires: OffsetDateTime,
    /// The outbox topic of the mail that carries the code and link.
    pub mail_topic: &'static str,
    /// The mail's template data. Its `code` and `link` are in clear: the
    /// outbox holds them apart and erases them once the mail is sent.
    pub mail: serde_json::Value,
}

/// What a code or a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Signed in: the session is stored; go to `next`.
    SignedIn { member: MemberId, next: String },
    /// The code is not this challenge's, or no challenge has this id (the
    /// same answer: a made-up challenge is indistinguishable from a real one).
    Wrong,
    /// The right code of a challenge that is used up or expired; a link that
    /// is used, expired or unknown.
    Expired,
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

macro_rules! open_session {
    ($tx:expr, $program:expr, $member:expr, $session_hash:expr, $session_expires:expr, $at:expr) => {{
        sqlx::query(
            "INSERT INTO member_sessions (program_id, token_hash, member_id, expires_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($program.0)
        .bind($session_hash)
        .bind($member)
        .bind(unix_ms($session_expires))
        .bind($at)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// Starts a sign-in for an active member: earlier open challenges of the
    /// member stop counting, the new one is stored and its mail queued,
    /// all at once. The caller checks the limits first
    /// ([`Store::hit_sign_in_limit`]).
    pub async fn start_sign_in(&self, program: ProgramId, s: &NewSignIn<'_>) -> Result<()> {
        let at = now();
        let now_ms = unix_ms(at);
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE member_sign_ins SET used_ms = $3 \
                 WHERE program_id = $1 AND member_id = $2 AND used_ms IS NULL",
            )
            .bind(program.0)
            .bind(s.member.0)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO member_sign_ins (program_id, challenge_id, member_id, code_hash, link_hash, \
                   next_path, expires_ms, used_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)",
            )
            .bind(program.0)
            .bind(s.challenge)
            .bind(s.member.0)
            .bind(s.code_hash)
            .bind(s.link_hash)
            .bind(s.next)
            .bind(unix_ms(s.expires))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.enqueue_mail(program, s.member, s.mail_topic, &s.mail, MAIL_SECRETS)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Checks a code typed for `challenge`. A right code of an open,
    /// unexpired challenge opens a session under `session_hash` and uses the
    /// challenge up. Counting wrong codes is the caller's
    /// ([`Store::hit_sign_in_limit`]).
    pub async fn verify_sign_in_code(
        &self,
        program: ProgramId,
        challenge: Uuid,
        code_hash: &str,
        session_hash: &str,
        session_expires: OffsetDateTime,
    ) -> Result<Verified> {
        let at = now();
        let now_ms = unix_ms(at);
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(Uuid, String, String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT member_id, code_hash, next_path, expires_ms, used_ms FROM member_sign_ins \
                 WHERE program_id = $1 AND challenge_id = $2",
            )
            .bind(program.0)
            .bind(challenge)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((member, expected, next, expires_ms, used_ms)) = row else {
                return Ok(Verified::Wrong);
            };
            if expected != code_hash {
                return Ok(Verified::Wrong);
            }
            if used_ms.is_some() || expires_ms <= now_ms {
                return Ok(Verified::Expired);
            }
            sqlx::query(
                "UPDATE member_sign_ins SET used_ms = $3 WHERE program_id = $1 AND challenge_id = $2",
            )
            .bind(program.0)
            .bind(challenge)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            open_session!(tx, program, member, session_hash, session_expires, at);
            tx.commit().await?;
            Ok(Verified::SignedIn {
                member: MemberId(member),
                next,
            })
        })
    }

    /// Counts one hit on the sign-in limit `key` (a
    /// [`sarafan_core::signin::Guard`]'s) in the current window, or starts a
    /// window of `window` with it; returns the hits in the window so far and
    /// when it ends. Ended windows of the program are cleared on the way.
    pub async fn hit_sign_in_limit(
        &self,
        program: ProgramId,
        key: &str,
        window: Duration,
    ) -> Result<(i64, OffsetDateTime)> {
        let now_ms = unix_ms(now());
        let end_ms = unix_ms(now() + window);
        let (hits, end): (i64, i64) = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sign_in_limits WHERE program_id = $1 AND window_end_ms <= $2")
                .bind(program.0)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query_as(
                "INSERT INTO sign_in_limits (program_id, limit_key, window_end_ms, hits) \
                 VALUES ($1, $2, $3, 1) ON CONFLICT (program_id, limit_key) DO UPDATE SET \
                   hits = sign_in_limits.hits + 1 RETURNING hits, window_end_ms",
            )
            .bind(program.0)
            .bind(key)
            .bind(end_ms)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        });
        Ok((hits, at_ms(end)))
    }

    /// The hits on the sign-in limit `key` in its current window, and when
    /// the window ends (0 and now when none is open).
    pub async fn sign_in_hits(
        &self,
        program: ProgramId,
        key: &str,
    ) -> Result<(i64, OffsetDateTime)> {
        let at = now();
        let row: Option<(i64, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT hits, window_end_ms FROM sign_in_limits \
                 WHERE program_id = $1 AND limit_key = $2 AND window_end_ms > $3",
            )
            .bind(program.0)
            .bind(key)
            .bind(unix_ms(at))
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map_or((0, at), |(hits, end)| (hits, at_ms(end))))
    }

    /// Follows a magic link: an open, unexpired challenge with this link
    /// opens a session under `session_hash` and is used up.
    pub async fn follow_sign_in_link(
        &self,
        program: ProgramId,
        link_hash: &str,
        session_hash: &str,
        session_expires: OffsetDateTime,
    ) -> Result<Verified> {
        let at = now();
        let now_ms = unix_ms(at);
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(Uuid, String)> = sqlx::query_as(
                "UPDATE member_sign_ins SET used_ms = $3 \
                 WHERE program_id = $1 AND link_hash = $2 AND used_ms IS NULL AND expires_ms > $3 \
                 RETURNING member_id, next_path",
            )
            .bind(program.0)
            .bind(link_hash)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((member, next)) = row else {
                return Ok(Verified::Expired);
            };
            open_session!(tx, program, member, session_hash, session_expires, at);
            tx.commit().await?;
            Ok(Verified::SignedIn {
                member: MemberId(member),
                next,
            })
        })
    }

    /// The active member a session token (by hash) belongs to, while the
    /// session lasts.
    pub async fn session_member(
        &self,
        program: ProgramId,
        token_hash: &str,
    ) -> Result<Option<MemberId>> {
        let member: Option<Uuid> = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT s.member_id FROM member_sessions s JOIN members m \
                   ON m.program_id = s.program_id AND m.member_id = s.member_id \
                 WHERE s.program_id = $1 AND s.token_hash = $2 AND s.expires_ms > $3 \
                   AND m.status = 'active'",
            )
            .bind(program.0)
            .bind(token_hash)
            .bind(unix_ms(now()))
            .fetch_optional(pool)
            .await?
        });
        Ok(member.map(MemberId))
    }

    /// Ends a session (signing out); nothing happens for an unknown one.
    pub async fn end_session(&self, program: ProgramId, token_hash: &str) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM member_sessions WHERE program_id = $1 AND token_hash = $2")
                .bind(program.0)
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
