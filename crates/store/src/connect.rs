//! Opening and migrating either database.

use crate::{Db, Result, Store, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Executor;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    /// PostgreSQL only: a schema to work in (created if missing). Lets tests
    /// and several installations share one database.
    pub pg_schema: Option<String>,
    /// Upper bound of pooled connections (readers, for SQLite).
    pub max_connections: u32,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pg_schema: None,
            max_connections: 16,
        }
    }
}

impl Store {
    /// Connects without migrating.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self> {
        let url = opts.url.as_str();
        let db = if url.starts_with("sqlite:") {
            // WAL lets readers run beside the writer; synchronous=FULL makes a
            // commit durable before it is acknowledged, so a crash or power
            // loss never loses a write the client was told succeeded.
            let base = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // 16 KiB pages for a new database (an existing one keeps its
                // own): an event row (~1 KB of JSON) and many index entries
                // share a page, so a batch writes fewer, fuller pages.
                .page_size(16384)
                .busy_timeout(Duration::from_secs(10))
                // A 64 MiB page cache and memory-mapped reads keep the hot
                // indexes in memory instead of re-reading them per batch.
                .pragma("cache_size", "-65536")
                .pragma("mmap_size", "268435456")
                .pragma("temp_store", "memory");
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                // Checkpoint the WAL every 256 MiB instead of every 1000
                // pages: a batch of a thousand events rewrites megabytes of
                // index pages, and a page rewritten by many batches between
                // two checkpoints is copied into the database once. Counted
                // in pages, whose size depends on when the file was made.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
                            .fetch_one(&mut *conn)
                            .await?;
                        let pages = (256 << 20) / page.max(512);
                        conn.execute(format!("PRAGMA wal_autocheckpoint = {pages}").as_str())
                            .await?;
                        Ok(())
                    })
                })
                .connect_with(base.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.max(1))
                .connect_with(base)
                .await?;
            Db::Sqlite { read, write }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut pg = PgConnectOptions::from_str(url)?;
            if let Some(schema) = &opts.pg_schema {
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(pg.clone())
                    .await?;
                admin
                    .execute(
                        format!(
                            "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                            schema.replace('"', "")
                        )
                        .as_str(),
                    )
                    .await?;
                admin.close().await;
                pg = pg.options([("search_path", schema.as_str())]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.max(2))
                .connect_with(pg)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(opts.url.clone()));
        };
        Ok(Self { db })
    }

    /// Connects and brings the schema up to date.
    pub async fn open(opts: &ConnectOptions) -> Result<Self> {
        let store = Self::connect(opts).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations of this backend. Safe to run repeatedly.
    pub async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A trivial round trip, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        crate::with_db!(self, read, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every pooled connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_wal_is_checkpointed_every_256_mib_whatever_the_page_size() {
        let dir = tempfile::tempdir().unwrap();
        // A file made before 16 KiB pages keeps its 4 KiB ones.
        let old = rusqlite::Connection::open(dir.path().join("old.db")).unwrap();
        old.execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x)")
            .unwrap();
        drop(old);
        for (file, page, pages) in [("new.db", 16384, 16384), ("old.db", 4096, 65536)] {
            let url = format!("sqlite://{}", dir.path().join(file).display());
            let store = Store::connect(&ConnectOptions::new(url)).await.unwrap();
            let Db::Sqlite { write, .. } = &store.db else {
                unreachable!("a sqlite: URL opens SQLite")
            };
            let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(write)
                .await
                .unwrap();
            let every: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(write)
                .await
                .unwrap();
            assert_eq!((size, every), (page, pages), "{file}");
            store.close().await;
        }
    }
}
