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

/// The bytes of a member id that key SQLite's member indexes
/// (`events_by_member`, `transfers_by_member`): random in a UUID, so a hash
/// of the member in 4 bytes (migration 0018).
pub(crate) const MEMBER_KEY_BYTES: std::ops::Range<usize> = 8..12;

/// SQLite's member-index key of `member` (a column or a parameter), the
/// expression migration 0018 indexes: the planner uses an index on an
/// expression only where a query names the same expression.
pub(crate) fn sqlite_member_key(member: &str) -> String {
    format!(
        "substr({member}, {}, {})",
        MEMBER_KEY_BYTES.start + 1,
        MEMBER_KEY_BYTES.len()
    )
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
        Ok(Self {
            db,
            instance: std::sync::Arc::new(crate::idempotency::Instance::new()),
        })
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

    /// The condition a query adds to `member_id = <member>` on `events` or
    /// `transfers` so that SQLite finds the rows through its member index
    /// (see [`sqlite_member_key`]). Empty on PostgreSQL.
    pub(crate) fn by_member_key(&self, column: &str, member: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!(
                " AND {} = {}",
                sqlite_member_key(column),
                sqlite_member_key(member)
            ),
            Backend::Postgres => String::new(),
        }
    }

    /// `events` or `transfers` as a query by member names it: on SQLite,
    /// through its member index (with [`Self::by_member_key`]). Without
    /// statistics SQLite's planner would rather walk the program's primary
    /// key range when the query orders by it (a statement by transfer id).
    pub(crate) fn by_member_table(&self, table: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("{table} INDEXED BY {table}_by_member"),
            Backend::Postgres => table.to_string(),
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
    use sarafan_core::ids::{MemberId, ProgramId};
    use sha2::Digest;
    use time::OffsetDateTime;
    use uuid::Uuid;

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

    /// `.cargo/config.toml` builds the bundled SQLite without memory
    /// statistics (a global mutex per allocation otherwise).
    #[tokio::test]
    async fn sqlite_is_built_without_memory_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&ConnectOptions::new(url)).await.unwrap();
        let Db::Sqlite { write, .. } = &store.db else {
            unreachable!("a sqlite: URL opens SQLite")
        };
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(write)
            .await
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        store.close().await;
    }

    /// A store connected but not migrated, with the migration files below
    /// `upto` applied by hand, and a way to run one more file.
    struct Partly {
        store: Store,
        dir: std::path::PathBuf,
        _tmp: Option<tempfile::TempDir>,
    }

    impl Partly {
        async fn new(backend: Backend, upto: u32) -> Self {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
            let (store, dir, tmp) = match backend {
                Backend::Sqlite => {
                    let tmp = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", tmp.path().join("old.db").display());
                    let store = Store::connect(&ConnectOptions::new(url)).await.unwrap();
                    (store, root.join("sqlite"), Some(tmp))
                }
                Backend::Postgres => {
                    let opts = ConnectOptions {
                        pg_schema: Some(format!("t_{}", uuid::Uuid::now_v7().simple())),
                        max_connections: 2,
                        ..ConnectOptions::new(crate::testing::postgres_url())
                    };
                    (
                        Store::connect(&opts).await.unwrap(),
                        root.join("postgres"),
                        None,
                    )
                }
            };
            let partly = Self {
                store,
                dir,
                _tmp: tmp,
            };
            let mut files: Vec<_> = std::fs::read_dir(&partly.dir)
                .unwrap()
                .map(|f| f.unwrap().file_name().into_string().unwrap())
                .filter(|f| f[..4].parse::<u32>().unwrap() < upto)
                .collect();
            files.sort();
            for f in files {
                partly.run(&f).await.unwrap();
            }
            partly
        }

        /// Runs one migration file in a transaction, as sqlx's migrator does.
        async fn run(&self, file: &str) -> Result<()> {
            let sql = std::fs::read_to_string(self.dir.join(file)).unwrap();
            crate::with_db!(self.store, write, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::raw_sql(&sql).execute(&mut *tx).await?;
                tx.commit().await?;
            });
            Ok(())
        }

        /// A program and a member inserted by hand, as any schema since
        /// 0001 takes them.
        async fn program_and_member(&self) -> (ProgramId, MemberId) {
            let retailer = self.store.create_retailer("R").await.unwrap();
            let (program, member) = (ProgramId::generate(), MemberId::generate());
            crate::with_db!(self.store, write, |pool| {
                sqlx::query(
                    "INSERT INTO programs (program_id, retailer_id, name, currency, locale, terms, created_at, updated_at) \
                     VALUES ($1, $2, 'P', 'RUB', 'ru', '', $3, $3)",
                )
                .bind(program.0)
                .bind(retailer.0)
                .bind(crate::now())
                .execute(pool)
                .await
                .unwrap();
            });
            self.member(program, member, "M", crate::now()).await;
            (program, member)
        }

        /// Inserts a member by hand (`external_id` and times only).
        async fn member(
            &self,
            program: ProgramId,
            member: MemberId,
            external: &str,
            at: OffsetDateTime,
        ) {
            crate::with_db!(self.store, write, |pool| {
                sqlx::query(
                    "INSERT INTO members (program_id, member_id, external_id, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'active', $4, $4)",
                )
                .bind(program.0)
                .bind(member.0)
                .bind(external)
                .bind(at)
                .execute(pool)
                .await
                .unwrap();
            });
        }

        /// Runs `sql` with its five parameters.
        async fn exec(&self, sql: &str, p: Uuid, id: Uuid, key: &str, n: i64, at: OffsetDateTime) {
            crate::with_db!(self.store, write, |pool| {
                sqlx::query(sql)
                    .bind(p)
                    .bind(id)
                    .bind(key)
                    .bind(n)
                    .bind(at)
                    .execute(pool)
                    .await
                    .unwrap();
            });
        }
    }

    /// Migration 0017 puts each lot on the transfer that brought its
    /// points, keeps announced lots announced, and stops on a lot it cannot
    /// place rather than lose its points.
    async fn lots_move_onto_their_transfers(backend: Backend) {
        use sarafan_core::ledger::account::{AccountKey, Asset};
        let old = Partly::new(backend, 17).await;
        let store = &old.store;
        // Rows as the schema of then has them (today's reads know columns
        // of later migrations).
        let (program, member) = old.program_and_member().await;
        let p = program.0;
        // Far ahead, so the lots have not expired when the balance is read.
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(40_000);
        let (soon, later) = (at + time::Duration::days(30), at + time::Duration::days(60));
        // Transfers (ids in booking order): an earn, a redemption, and a
        // refund giving back two redemptions of the same order.
        let transfer = |n: u128| Uuid::from_u128(0x100 + n);
        let lot = |n: u128| Uuid::from_u128(0x200 + n);
        let the_member = "(SELECT member_id FROM members WHERE program_id = $1)";
        for (n, key, amount) in [(1, "E1", 100), (2, "E2", -60), (3, "E3", 30), (4, "E3", 20)] {
            let sql = format!(
                "INSERT INTO transfers (program_id, transfer_id, kind, state, event_key, member_id, asset, amount, \
                 program_account, reason, created_at) \
                 VALUES ($1, $2, 'earn', 'posted', $3, {the_member}, 'points', $4, 'issued', 'r', $5)"
            );
            old.exec(&sql, p, transfer(n), key, amount, at).await;
        }
        let lot_sql = format!(
            "INSERT INTO lots (program_id, lot_id, member_id, asset, amount, remaining, earned_at, expires_at, event_key) \
             VALUES ($1, $2, {the_member}, 'points', $4, $4, $5, $5, $3)"
        );
        for (n, key, remaining, expires) in [
            (1, "E1", 40, soon),
            (3, "E3", 30, later),
            (4, "E3", 20, later),
        ] {
            old.exec(&lot_sql, p, lot(n), key, remaining, expires).await;
        }
        crate::with_db!(store, write, |pool| {
            sqlx::query("INSERT INTO expiry_notice_lots (program_id, lot_id, notified_at) VALUES ($1, $2, $3)")
                .bind(p)
                .bind(lot(1))
                .bind(at)
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO balances (program_id, account, member_id, asset, posted) VALUES ($1, $2, $3, 'points', 90)")
                .bind(p)
                .bind(AccountKey::member(member, Asset::Points).code())
                .bind(member.0)
                .execute(pool)
                .await
                .unwrap();
        });
        // A lot no transfer brought: the migration stops, nothing changes.
        old.exec(&lot_sql, p, lot(9), "E9", 5, soon).await;
        let file = "0017_lots_on_transfers.sql";
        assert!(old.run(file).await.is_err(), "an orphan lot must stop 0017");
        crate::with_db!(store, write, |pool| {
            sqlx::query("DELETE FROM lots WHERE event_key = 'E9'")
                .execute(pool)
                .await
                .unwrap();
        });
        old.run(file).await.unwrap();

        let rows: Vec<(Uuid, Option<i64>, Option<OffsetDateTime>)> =
            crate::with_db!(store, read, |pool| {
                sqlx::query_as(
                    "SELECT transfer_id, remaining, expires_at FROM transfers ORDER BY transfer_id",
                )
                .fetch_all(pool)
                .await
                .unwrap()
            });
        assert_eq!(
            rows,
            vec![
                (transfer(1), Some(40), Some(soon)),
                (transfer(2), None, None),
                (transfer(3), Some(30), Some(later)),
                (transfer(4), Some(20), Some(later)),
            ]
        );
        let announced: Vec<Uuid> = crate::with_db!(store, read, |pool| {
            sqlx::query_scalar("SELECT lot_id FROM expiry_notice_lots")
                .fetch_all(pool)
                .await
                .unwrap()
        });
        assert_eq!(announced, vec![transfer(1)]);
        let balance = store
            .member_balance(program, member, Asset::Points)
            .await
            .unwrap();
        assert_eq!(balance.spendable, 90);
        assert_eq!(balance.expiring, vec![(soon, 40), (later, 50)]);
    }

    /// Migration 0020 numbers existing members' cards in the order they
    /// joined (new members get theirs from the database), and counts
    /// contacts the old weekly routine mailed as invited.
    async fn cards_numbered_and_mailed_contacts_invited(backend: Backend) {
        let old = Partly::new(backend, 20).await;
        let store = &old.store;
        let (program, first) = old.program_and_member().await;
        let second = MemberId::generate();
        let at = crate::now();
        old.member(program, second, "N", at + time::Duration::seconds(1))
            .await;
        let hash = |s: &str| -> Vec<u8> { sha2::Sha256::digest(s.as_bytes()).to_vec() };
        for (email, sent) in [("boris@example.com", Some(at)), ("vera@example.com", None)] {
            crate::with_db!(store, write, |pool| {
                sqlx::query(
                    "INSERT INTO share_contacts (program_id, member_id, email, email_hash, added_at, last_sent_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(program.0)
                .bind(first.0)
                .bind(email)
                .bind(hash(email))
                .bind(at)
                .bind(sent)
                .execute(pool)
                .await
                .unwrap();
            });
        }
        old.run("0020_member_pages.sql").await.unwrap();
        let third = MemberId::generate();
        old.member(program, third, "O", at + time::Duration::seconds(2))
            .await;
        let serials: Vec<i64> = crate::with_db!(store, read, |pool| {
            sqlx::query_scalar(
                "SELECT card_serial FROM members WHERE program_id = $1 ORDER BY created_at",
            )
            .bind(program.0)
            .fetch_all(pool)
            .await
            .unwrap()
        });
        assert_eq!(serials.len(), 3);
        assert!(serials.iter().all(|s| *s >= 1_000_000), "{serials:?}");
        assert!(
            serials[0] < serials[1] || backend == Backend::Postgres,
            "{serials:?}"
        );
        assert!(serials[1] < serials[2], "{serials:?}");
        let invited: Vec<Vec<u8>> = crate::with_db!(store, read, |pool| {
            sqlx::query_scalar("SELECT email_hash FROM share_invited WHERE program_id = $1")
                .bind(program.0)
                .fetch_all(pool)
                .await
                .unwrap()
        });
        assert_eq!(invited, vec![hash("boris@example.com")]);
    }

    crate::on_both!(
        lots_move_onto_their_transfers,
        cards_numbered_and_mailed_contacts_invited
    );
}
