//! Sarafan's storage.
//!
//! One [`Store`] type serves both databases. Its SQL is written once in the
//! portable subset both engines share (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`, `CAST(.. AS BIGINT)`) and compiled against each sqlx driver by
//! the [`with_db!`] macro, so there is no twin implementation to drift. What
//! really differs lives apart: the migrations (`migrations/sqlite`,
//! `migrations/postgres`: types, `STRICT`/`WITHOUT ROWID`) and connection
//! set-up in [`connect`] — and the ledger's batch I/O, the hot path, which
//! each backend does its fastest way (`ledger::writes` on PostgreSQL,
//! `ledger::sqlite_io` through rusqlite on SQLite). Every tenant query
//! filters by `program_id`, which leads every primary key.

mod bench;
mod clicks;
mod codes;
mod connect;
mod dashboard;
mod error;
mod idempotency;
mod import;
mod json_text;
mod keys;
pub mod ledger;
mod mail_templates;
mod members;
mod notices;
pub mod outbox;
mod paging;
mod programs;
pub mod referrals;
mod share;
pub mod signin;
mod sqlite_raw;
pub mod staff;
pub mod testing;
mod versions;
mod voice;
mod webhooks;

pub use clicks::{Click, ClickCount};
pub use codes::{ReferralCodes, ResolvedCode, VanityOutcome};
pub use connect::{Backend, ConnectOptions};
pub use dashboard::{DayFlow, MemberCounts, TopReferrer};
pub use error::{Result, StoreError};
pub use idempotency::{IdempotencyBegin, IdempotencyScope, SavedResponse};
pub use import::{ImportRow, ImportTally};
pub use keys::ApiKey;
pub use mail_templates::MailTemplate;
pub use members::{
    ConsentChange, Member, MemberEvent, MemberFilter, MemberPage, MemberPatch, MemberSearch,
    PatchOutcome, Registration,
};
pub use paging::MAX_PAGE;
pub use programs::{NewProgram, Program, ProgramPatch};
pub use share::{ShareContact, ShareRoutine};
pub use voice::{SharedVoiceAssistant, VoiceAssistant, VoiceGrant};
pub use webhooks::{WebhookEndpoint, WebhookPatch};

use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;

/// A handle to the database; cheap to clone (pools inside).
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// This process, as the owner of idempotency claims.
    instance: std::sync::Arc<idempotency::Instance>,
}

#[derive(Clone, Debug)]
enum Db {
    /// SQLite allows one writer at a time; a one-connection write pool queues
    /// writers in-process instead of letting them fail with SQLITE_BUSY.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of the store's
/// backend, for reading or for writing. The body is compiled once per driver.
macro_rules! with_db {
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { read: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { write: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// The current time at the precision both databases keep (microseconds), so a
/// value read back equals the value written on either backend.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}
