//! Staff of a program (console users): accounts with a role and an
//! argon2id password hash, the directory from an e-mail to its programs,
//! sessions (kept as token hashes), and the counters that limit failed
//! sign-ins. Hashing passwords and tokens is the caller's
//! ([`sarafan_core::staff`]).

use crate::outbox::unix_ms;
use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::{ProgramId, StaffId};
use sarafan_core::member::Email;
use sarafan_core::staff::Role;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A staff user, without their password hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Staff {
    pub program_id: ProgramId,
    pub id: StaffId,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

/// A staff user as signing in sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffCredentials {
    pub staff: Staff,
    pub password_hash: String,
    /// Failed sign-ins in a row.
    pub failed_sign_ins: i64,
    /// Locked until then (Unix milliseconds; 0 when not locked).
    pub locked_until_ms: i64,
}

/// A staff user to create.
#[derive(Debug, Clone)]
pub struct NewStaff<'a> {
    pub email: &'a Email,
    pub name: Option<&'a str>,
    pub role: Role,
    pub password_hash: &'a str,
}

/// What creating a staff user did.
#[derive(Debug, Clone, PartialEq)]
pub enum StaffCreated {
    Created(Staff),
    /// The program has a staff user with this e-mail already.
    EmailTaken,
}

#[derive(sqlx::FromRow)]
struct StaffRow {
    program_id: Uuid,
    staff_id: Uuid,
    email: String,
    name: Option<String>,
    role: String,
    status: String,
    created_at: OffsetDateTime,
    password_hash: String,
    failed_sign_ins: i64,
    locked_until_ms: i64,
}

const COLUMNS: &str = "program_id, staff_id, email, name, role, status, created_at, \
    password_hash, failed_sign_ins, locked_until_ms";

impl TryFrom<StaffRow> for StaffCredentials {
    type Error = StoreError;
    fn try_from(r: StaffRow) -> Result<Self> {
        Ok(Self {
            staff: Staff {
                program_id: ProgramId(r.program_id),
                id: StaffId(r.staff_id),
                role: Role::parse("role", &r.role)
                    .map_err(|e| StoreError::Corrupt(format!("staff {}: {e}", r.staff_id)))?,
                active: r.status == "active",
                email: r.email,
                name: r.name,
                created_at: r.created_at,
            },
            password_hash: r.password_hash,
            failed_sign_ins: r.failed_sign_ins,
            locked_until_ms: r.locked_until_ms,
        })
    }
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Creates a staff user of `program` (and their e-mail's route), or
    /// says the e-mail is taken in the program; nothing is written then.
    pub async fn create_staff(&self, program: ProgramId, s: &NewStaff<'_>) -> Result<StaffCreated> {
        let at = now();
        let id = StaffId::generate();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO staff_users (program_id, staff_id, email, name, role, password_hash, status, \
                   failed_sign_ins, locked_until_ms, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'active', 0, 0, $7, $7)",
            )
            .bind(program.0)
            .bind(id.0)
            .bind(s.email.as_str())
            .bind(s.name)
            .bind(s.role.as_str())
            .bind(s.password_hash)
            .bind(at)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => return Ok(StaffCreated::EmailTaken),
                other => other?,
            };
            sqlx::query(
                "INSERT INTO staff_email_routes (email, program_id) VALUES ($1, $2) \
                 ON CONFLICT (email, program_id) DO NOTHING",
            )
            .bind(s.email.as_str())
            .bind(program.0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(StaffCreated::Created(Staff {
            program_id: program,
            id,
            email: s.email.as_str().to_owned(),
            name: s.name.map(str::to_owned),
            role: s.role,
            active: true,
            created_at: at,
        }))
    }

    /// The programs that have a staff user with this e-mail (at most
    /// `limit`), in id order.
    pub async fn staff_programs(&self, email: &Email, limit: u32) -> Result<Vec<ProgramId>> {
        let ids: Vec<Uuid> = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT program_id FROM staff_email_routes WHERE email = $1 ORDER BY program_id LIMIT $2",
            )
            .bind(email.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(ProgramId).collect())
    }

    /// The staff user of `program` with this e-mail, with what signing in
    /// checks.
    pub async fn staff_credentials(
        &self,
        program: ProgramId,
        email: &Email,
    ) -> Result<Option<StaffCredentials>> {
        let sql = format!("SELECT {COLUMNS} FROM staff_users WHERE program_id = $1 AND email = $2");
        let row: Option<StaffRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(email.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(StaffCredentials::try_from).transpose()
    }

    /// The program's staff, by e-mail.
    pub async fn staff(&self, program: ProgramId) -> Result<Vec<Staff>> {
        let sql = format!("SELECT {COLUMNS} FROM staff_users WHERE program_id = $1 ORDER BY email");
        let rows: Vec<StaffRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(program.0).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|r| StaffCredentials::try_from(r).map(|c| c.staff))
            .collect()
    }

    /// Sets a staff user's password hash (and unlocks the account);
    /// `false` when the program has no staff user with this e-mail.
    pub async fn set_staff_password(
        &self,
        program: ProgramId,
        email: &Email,
        password_hash: &str,
    ) -> Result<bool> {
        let done = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE staff_users SET password_hash = $3, failed_sign_ins = 0, locked_until_ms = 0, \
                   updated_at = $4 WHERE program_id = $1 AND email = $2",
            )
            .bind(program.0)
            .bind(email.as_str())
            .bind(password_hash)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Counts a failed sign-in to a staff account; the `lock_after`-th in
    /// a row locks it for `lock_for` and starts the count again.
    pub async fn staff_sign_in_failed(
        &self,
        program: ProgramId,
        staff: StaffId,
        lock_after: i64,
        lock_for: Duration,
    ) -> Result<()> {
        let locked_until = unix_ms(now() + lock_for);
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE staff_users SET \
                   locked_until_ms = CASE WHEN failed_sign_ins + 1 >= $3 THEN $4 ELSE locked_until_ms END, \
                   failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= $3 THEN 0 ELSE failed_sign_ins + 1 END \
                 WHERE program_id = $1 AND staff_id = $2",
            )
            .bind(program.0)
            .bind(staff.0)
            .bind(lock_after)
            .bind(locked_until)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Opens a session under `token_hash` for a staff user who signed in,
    /// and clears their count of failed sign-ins. Expired sessions of the
    /// program are cleared on the way.
    pub async fn open_staff_session(
        &self,
        program: ProgramId,
        staff: StaffId,
        token_hash: &str,
        expires: OffsetDateTime,
    ) -> Result<()> {
        let at = now();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM staff_sessions WHERE program_id = $1 AND expires_ms <= $2")
                .bind(program.0)
                .bind(unix_ms(at))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE staff_users SET failed_sign_ins = 0 WHERE program_id = $1 AND staff_id = $2",
            )
            .bind(program.0)
            .bind(staff.0)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO staff_sessions (program_id, token_hash, staff_id, expires_ms, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(program.0)
            .bind(token_hash)
            .bind(staff.0)
            .bind(unix_ms(expires))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The active staff user a session token (by hash) belongs to, while
    /// the session lasts.
    pub async fn staff_session(
        &self,
        program: ProgramId,
        token_hash: &str,
    ) -> Result<Option<Staff>> {
        let sql = format!(
            "SELECT {} FROM staff_sessions s JOIN staff_users u \
               ON u.program_id = s.program_id AND u.staff_id = s.staff_id \
             WHERE s.program_id = $1 AND s.token_hash = $2 AND s.expires_ms > $3 AND u.status = 'active'",
            COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row: Option<StaffRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(token_hash)
                .bind(unix_ms(now()))
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| StaffCredentials::try_from(r).map(|c| c.staff))
            .transpose()
    }

    /// Ends a staff session (signing out); nothing happens for an unknown one.
    pub async fn end_staff_session(&self, program: ProgramId, token_hash: &str) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM staff_sessions WHERE program_id = $1 AND token_hash = $2")
                .bind(program.0)
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Counts one hit on the console's deployment-wide limit `key` (a
    /// client address's failed sign-ins) in its window, or starts a window
    /// of `window`; returns the hits so far and when the window ends.
    pub async fn hit_console_limit(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<(i64, OffsetDateTime)> {
        let now_ms = unix_ms(now());
        let end_ms = unix_ms(now() + window);
        let (hits, end): (i64, i64) = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM console_sign_in_limits WHERE window_end_ms <= $1")
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query_as(
                "INSERT INTO console_sign_in_limits (limit_key, window_end_ms, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (limit_key) DO UPDATE SET hits = console_sign_in_limits.hits + 1 \
                 RETURNING hits, window_end_ms",
            )
            .bind(key)
            .bind(end_ms)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        });
        Ok((hits, at_ms(end)))
    }

    /// The hits on the console limit `key` in its open window and when it
    /// ends (0 and now when none is open).
    pub async fn console_limit_hits(&self, key: &str) -> Result<(i64, OffsetDateTime)> {
        let at = now();
        let row: Option<(i64, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT hits, window_end_ms FROM console_sign_in_limits \
                 WHERE limit_key = $1 AND window_end_ms > $2",
            )
            .bind(key)
            .bind(unix_ms(at))
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map_or((0, at), |(hits, end)| (hits, at_ms(end))))
    }
}
