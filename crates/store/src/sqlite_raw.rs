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
/// has open. Nothing made from the handle can leave `f`: neither the
/// handle (its lifetime is `f`'s own) nor a connection (it borrows the
/// handle).
pub(crate) async fn with_handle<R>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(Handle<'_>) -> Result<R>,
) -> Result<R> {
    let mut locked = conn.lock_handle().await?;
    let handle = Handle {
        db: locked.as_raw_handle(),
        _locked: PhantomData,
    };
    let out = blocking(|| f(handle));
    drop(locked);
    out
}

/// A connection's SQLite handle, locked out of sqlx's worker for `'a`. It
/// may move to another thread (`Send`) but not be shared (`!Sync`), and it
/// makes one connection at a time ([`Handle::connection`] borrows it
/// mutably): the handle is never used by two threads at once.
pub(crate) struct Handle<'a> {
    db: NonNull<rusqlite::ffi::sqlite3>,
    _locked: PhantomData<&'a mut SqliteConnection>,
}

// SAFETY: sqlx opens connections in SQLite's multi-thread mode: a handle may
// be used from any thread, one thread at a time, which `Handle` ensures (see
// above); the lock keeps sqlx's worker off it meanwhile.
unsafe impl Send for Handle<'_> {}

impl Handle<'_> {
    /// A rusqlite connection on the handle, for as long as it is borrowed.
    pub(crate) fn connection(&mut self) -> Result<Conn<'_>> {
        // SAFETY: the handle is open and locked while `self` lives, and the
        // connection cannot outlive the borrow of `self`. It does not own the
        // handle: dropping it finalises only its own prepared statements.
        let c = unsafe { rusqlite::Connection::from_handle(self.db.as_ptr()) }?;
        Ok(Conn {
            c,
            _handle: PhantomData,
        })
    }
}

/// A rusqlite connection borrowed from a [`Handle`].
pub(crate) struct Conn<'h> {
    c: rusqlite::Connection,
    _handle: PhantomData<&'h mut ()>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = rusqlite::Connection;

    fn deref(&self) -> &rusqlite::Connection {
        &self.c
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
    // In UTC, so that the text sorts as the instant does (ranges compare it).
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("time {t} cannot be stored: {e}")))
}

/// Reads a time stored by [`time_text`] (or by sqlx).
pub(crate) fn parse_time(raw: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("stored time {raw:?}: {e}")))
}
