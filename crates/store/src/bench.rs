//! Helpers for `sarafan bench`: bulk set-up, row counts and the raw-insert
//! baseline the event pipeline is compared with. Nothing here is used by the
//! server.

use crate::{now, with_db, Backend, Result, Store, StoreError};
use sarafan_core::ids::{MemberId, ProgramId};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Rows per multi-row statement, as in the ledger's writes.
const CHUNK: usize = 1000;

const RAW_SQLITE: &str = "CREATE TABLE IF NOT EXISTS bench_raw (
    program_id BLOB NOT NULL,
    id         BLOB NOT NULL,
    member_id  BLOB NOT NULL,
    a          INTEGER NOT NULL,
    b          INTEGER NOT NULL,
    note       TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (program_id, id)
) STRICT, WITHOUT ROWID";

const RAW_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS bench_raw (
    program_id UUID NOT NULL,
    id         UUID NOT NULL,
    member_id  UUID NOT NULL,
    a          BIGINT NOT NULL,
    b          BIGINT NOT NULL,
    note       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, id)
)";

/// One row of the baseline table.
struct RawRow {
    id: Uuid,
    member: Uuid,
    a: i64,
    b: i64,
    note: String,
}

impl Store {
    /// Enrols members with these external ids in one transaction, with
    /// multi-row inserts: benchmark set-up only (no idempotency, no checks
    /// beyond the table's constraints). Returns their ids, in order.
    pub async fn bench_insert_members(
        &self,
        program: ProgramId,
        external_ids: &[String],
    ) -> Result<Vec<MemberId>> {
        let at = now();
        let ids: Vec<MemberId> = external_ids.iter().map(|_| MemberId::generate()).collect();
        let rows: Vec<(&MemberId, &String)> = ids.iter().zip(external_ids).collect();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO members (program_id, member_id, external_id, status, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, (id, ext)| {
                    b.push_bind(program.0)
                        .push_bind(id.0)
                        .push_bind(ext.as_str())
                        .push_bind("active")
                        .push_bind(at)
                        .push_bind(at);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(ids)
    }

    /// Rows a program has in each ledger table, in the order
    /// events, transfers, postings, lots, balances.
    pub async fn bench_ledger_counts(
        &self,
        program: ProgramId,
    ) -> Result<Vec<(&'static str, i64)>> {
        let mut counts = Vec::new();
        for table in ["events", "transfers", "postings", "lots", "balances"] {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE program_id = $1");
            let n: i64 = with_db!(self, read, |pool| {
                sqlx::query_scalar(&sql)
                    .bind(program.0)
                    .fetch_one(pool)
                    .await?
            });
            counts.push((table, n));
        }
        Ok(counts)
    }

    /// The baseline: times inserting `rows` rows into a plain table
    /// (`bench_raw`, created if missing and emptied first) with multi-row
    /// INSERTs, one transaction per `batch` rows, each statement at most
    /// 1000 rows as in the ledger's writes. Same pools, hence the same
    /// durability settings, as the real store. Only the database work is
    /// timed; the rows of each batch are generated before its clock starts.
    pub async fn bench_raw_insert(&self, rows: usize, batch: usize) -> Result<Duration> {
        let create = match self.backend() {
            Backend::Sqlite => RAW_SQLITE,
            Backend::Postgres => RAW_POSTGRES,
        };
        with_db!(self, write, |pool| {
            sqlx::query(create).execute(pool).await?;
            sqlx::query("DELETE FROM bench_raw").execute(pool).await?;
        });
        let program = Uuid::now_v7();
        let members: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
        let batch = batch.max(1);
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < rows {
            let n = batch.min(rows - done);
            let data: Vec<RawRow> = (done..done + n)
                .map(|i| RawRow {
                    id: Uuid::now_v7(),
                    member: members[i % members.len()],
                    a: (i as i64 * 7919) % 100_000,
                    b: i as i64,
                    note: format!("order bench-{i:09}"),
                })
                .collect();
            let at = now();
            let start = Instant::now();
            with_db!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                for chunk in data.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO bench_raw (program_id, id, member_id, a, b, note, at) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(program)
                            .push_bind(r.id)
                            .push_bind(r.member)
                            .push_bind(r.a)
                            .push_bind(r.b)
                            .push_bind(r.note.as_str())
                            .push_bind(at);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            });
            timed += start.elapsed();
            done += n;
        }
        Ok(timed)
    }

    /// Drops a PostgreSQL schema made by the benchmark (named `bench_…`);
    /// refuses any other name. Does nothing on SQLite.
    pub async fn bench_drop_schema(&self, schema: &str) -> Result<()> {
        let valid = schema.starts_with("bench_")
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::Corrupt(format!(
                "refusing to drop schema {schema:?}: not a benchmark schema"
            )));
        }
        if let crate::Db::Postgres(pool) = &self.db {
            sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}
