//! Direct SQLite access, on a connection sqlx opened, for the hot paths.
//!
//! sqlx's SQLite driver runs each statement on a worker thread and carries
//! every bound argument and every result row across a channel between it and
//! the caller: fine for the occasional query, but the ledger's batch path
//! binds and reads hundreds of thousands of values a second. Here the same
//! connection — and so the same open transaction — is locked out of sqlx's
//! worker and driven through rusqlite's prepared statements on the calling
//! thread (`block_in_place` on a multi-threaded runtime, so other tasks move
//! off it meanwhile).

use crate::{Result, StoreError};
use sqlx::SqliteConnection;
use std::marker::PhantomData;
use std::ptr::NonNull;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Runs `f` with `conn`'s SQLite handle, inside whatever transaction `conn`
/// has open.
pub(crate) async fn with_handle<R>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&Handle<'_>) -> Result<R>,
) -> Result<R> {
    let mut locked = conn.lock_handle().await?;
    let handle = Handle {
        db: locked.as_raw_handle(),
        _locked: PhantomData,
    };
    let out = blocking(|| f(&handle));
    drop(locked);
    out
}

/// A connection's SQLite handle, locked out of sqlx's worker for `'a`.
pub(crate) struct Handle<'a> {
    db: NonNull<rusqlite::ffi::sqlite3>,
    _locked: PhantomData<&'a mut SqliteConnection>,
}

// SAFETY: sqlx opens connections in SQLite's multi-thread mode: a handle may
// be used from any thread, one thread at a time. The lock keeps sqlx's worker
// off it, and the ledger uses it from one thread at a time (the writer thread
// while the planner thread plans, never both).
unsafe impl Send for Handle<'_> {}
unsafe impl Sync for Handle<'_> {}

impl Handle<'_> {
    /// A rusqlite connection on the handle. It does not own the handle:
    /// dropping it finalises only its own prepared statements.
    pub(crate) fn connection(&self) -> Result<rusqlite::Connection> {
        // SAFETY: the handle is open and locked while `self` lives; callers
        // drop the connection within `with_handle`'s closure.
        Ok(unsafe { rusqlite::Connection::from_handle(self.db.as_ptr()) }?)
    }
}

/// Runs `f`, telling a multi-threaded tokio runtime that it blocks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A time as sqlx stores it in SQLite (RFC 3339 text), so rows written here
/// and there compare and read back alike.
pub(crate) fn time_text(t: OffsetDateTime) -> Result<String> {
    t.format(&Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("time {t} cannot be stored: {e}")))
}

/// Reads a time stored by [`time_text`] (or by sqlx).
pub(crate) fn parse_time(raw: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("stored time {raw:?}: {e}")))
}
