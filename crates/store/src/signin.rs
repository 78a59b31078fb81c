//! Members signing in to the portal: challenges (a one-time code and a magic
//! link, mailed through the outbox in the same transaction), the lockout
//! after repeated wrong codes, and sessions. The store sees only hashes of
//! codes and tokens; making and hashing them is the caller's.

use crate::outbox::{unix_ms, Enqueue};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Wrong codes in a row before a member is locked out.
pub const MAX_FAILURES: i32 = 5;
/// How long a lockout lasts.
pub const LOCKOUT: Duration = Duration::minutes(15);

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

/// What starting a sign-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The challenge is stored and its mail queued.
    Sent,
    /// Locked out until then: no mail sent.
    Locked(OffsetDateTime),
}

/// What a code or a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Signed in: the session is stored; go to `next`.
    SignedIn { member: MemberId, next: String },
    /// A wrong code; `left` more tries before the lockout.
    Wrong { left: i32 },
    /// Too many wrong codes: no code counts until then.
    Locked(OffsetDateTime),
    /// The challenge or link is used, expired or unknown.
    Expired,
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

macro_rules! locked_until {
    ($conn:expr, $program:expr, $member:expr, $now_ms:expr) => {{
        let until: Option<i64> = sqlx::query_scalar(
            "SELECT locked_until_ms FROM member_sign_in_guards \
             WHERE program_id = $1 AND member_id = $2 AND locked_until_ms > $3",
        )
        .bind($program.0)
        .bind($member)
        .bind($now_ms)
        .fetch_optional(&mut *$conn)
        .await?;
        until.map(at_ms)
    }};
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
        sqlx::query(
            "UPDATE member_sign_in_guards SET failures = 0 WHERE program_id = $1 AND member_id = $2",
        )
        .bind($program.0)
        .bind($member)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// Starts a sign-in for an active member: earlier open challenges of the
    /// member stop counting, the new one is stored and its mail queued,
    /// all at once. Refused while the member is locked out.
    pub async fn start_sign_in(&self, program: ProgramId, s: &NewSignIn<'_>) -> Result<Started> {
        let at = now();
        let now_ms = unix_ms(at);
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(until) = locked_until!(tx, program, s.member.0, now_ms) {
                return Ok(Started::Locked(until));
            }
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
            Ok(Started::Sent)
        })
    }

    /// Checks a code typed for `challenge`. A right code opens a session
    /// under `session_hash` and uses the challenge up; a wrong one counts
    /// towards the member's lockout.
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
                return Ok(Verified::Expired);
            };
            if let Some(until) = locked_until!(tx, program, member, now_ms) {
                return Ok(Verified::Locked(until));
            }
            if used_ms.is_some() || expires_ms <= now_ms {
                return Ok(Verified::Expired);
            }
            if expected != code_hash {
                let failures: i32 = sqlx::query_scalar(
                    "INSERT INTO member_sign_in_guards (program_id, member_id, failures, locked_until_ms) \
                     VALUES ($1, $2, 1, 0) ON CONFLICT (program_id, member_id) \
                     DO UPDATE SET failures = member_sign_in_guards.failures + 1 RETURNING failures",
                )
                .bind(program.0)
                .bind(member)
                .fetch_one(&mut *tx)
                .await?;
                if failures < MAX_FAILURES {
                    tx.commit().await?;
                    return Ok(Verified::Wrong {
                        left: MAX_FAILURES - failures,
                    });
                }
                let until = at + LOCKOUT;
                sqlx::query(
                    "UPDATE member_sign_in_guards SET failures = 0, locked_until_ms = $3 \
                     WHERE program_id = $1 AND member_id = $2",
                )
                .bind(program.0)
                .bind(member)
                .bind(unix_ms(until))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Verified::Locked(until));
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
