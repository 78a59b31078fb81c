//! Helpers for `sarafan bench`: bulk set-up, row counts and the raw-insert
//! baseline the event pipeline is compared with. Nothing here is used by the
//! server.

use crate::json_text::JsonText;
use crate::sqlite_raw::with_handle;
use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::{MemberId, ProgramId};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows per multi-row statement, as in the ledger's writes.
const CHUNK: usize = 1000;

/// The ledger tables the pipeline inserts rows into; the baseline copies
/// them (`bench_<table>`, same columns, keys and indexes) and inserts the
/// same rows again.
const TABLES: [&str; 2] = ["events", "transfers"];

type RawJson = sqlx::types::Json<Box<serde_json::value::RawValue>>;

/// An `events` row, every column, as stored.
#[derive(sqlx::FromRow)]
struct EventCopy {
    event_key: String,
    kind: String,
    member_id: Uuid,
    fingerprint: Vec<u8>,
    occurred_at: OffsetDateTime,
    recorded_at: OffsetDateTime,
    asset: String,
    amount: Option<i64>,
    points: i64,
    refunded: i64,
    reversed: i64,
    order_key: Option<String>,
    request: RawJson,
    result: RawJson,
}

#[derive(sqlx::FromRow)]
struct TransferCopy {
    transfer_id: Uuid,
    kind: String,
    state: String,
    event_key: Option<String>,
    member_id: Uuid,
    asset: String,
    amount: i64,
    program_account: String,
    reason: String,
    created_at: OffsetDateTime,
    remaining: Option<i64>,
    expires_at: Option<OffsetDateTime>,
}

/// The rows one pipeline batch wrote.
#[derive(Default)]
struct BatchCopy {
    events: Vec<EventCopy>,
    transfers: Vec<TransferCopy>,
}

impl BatchCopy {
    fn rows(&self) -> usize {
        self.events.len() + self.transfers.len()
    }
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
    /// events, transfers (and lots: transfers that carry one), balances,
    /// and in the outbox.
    pub async fn bench_ledger_counts(
        &self,
        program: ProgramId,
    ) -> Result<Vec<(&'static str, i64)>> {
        let mut counts = Vec::new();
        for (name, table, only) in [
            ("events", "events", ""),
            ("transfers", "transfers", ""),
            ("lots", "transfers", " AND remaining IS NOT NULL"),
            ("balances", "balances", ""),
            ("outbox", "outbox", ""),
        ] {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE program_id = $1{only}");
            let n: i64 = with_db!(self, read, |pool| {
                sqlx::query_scalar(&sql)
                    .bind(program.0)
                    .fetch_one(pool)
                    .await?
            });
            counts.push((name, n));
        }
        Ok(counts)
    }

    /// The baseline: the rows the pipeline wrote for `program`, inserted
    /// again into copies of its tables with the same columns, keys and
    /// indexes, one transaction per `batch` events as the pipeline committed
    /// them, the way each backend's pipeline inserts: on PostgreSQL plain
    /// multi-row INSERTs (at most 1000 rows a statement), on SQLite one
    /// prepared single-row INSERT per row. Same connections, hence the same
    /// durability settings. Only the inserts and commits are timed; the rows
    /// are read back before the clock starts. Returns the rows inserted and
    /// the time.
    pub async fn bench_raw_insert(
        &self,
        program: ProgramId,
        batch: usize,
    ) -> Result<(usize, Duration)> {
        self.bench_copy_tables().await?;
        if let crate::Db::Sqlite { write, .. } = &self.db {
            let mut conn = write.acquire().await?;
            return with_handle(&mut conn, |mut h| {
                raw_sqlite(&*h.connection()?, program, batch.max(1))
            })
            .await;
        }
        let batches = self.bench_read_batches(program, batch.max(1)).await?;
        let mut timed = Duration::ZERO;
        let mut rows = 0;
        for b in &batches {
            let start = Instant::now();
            self.bench_insert_copy(program, b).await?;
            timed += start.elapsed();
            rows += b.rows();
        }
        Ok((rows, timed))
    }

    /// Creates empty `bench_<table>` copies of the ledger tables.
    async fn bench_copy_tables(&self) -> Result<()> {
        for t in TABLES {
            let drop = format!("DROP TABLE IF EXISTS bench_{t}");
            with_db!(self, write, |pool| {
                sqlx::query(&drop).execute(pool).await?;
            });
            let ddl: Vec<String> = match &self.db {
                crate::Db::Postgres(_) => {
                    vec![format!("CREATE TABLE bench_{t} (LIKE {t} INCLUDING ALL)")]
                }
                crate::Db::Sqlite { write, .. } => {
                    let schema: Vec<(String, String, String)> = sqlx::query_as(
                        "SELECT type, name, sql FROM sqlite_schema \
                         WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type DESC",
                    )
                    .bind(t)
                    .fetch_all(write)
                    .await?;
                    // `CREATE TABLE <name> (…)` / `CREATE INDEX <name> ON <table> (…) …`,
                    // renamed; everything from the first parenthesis is kept.
                    schema
                        .iter()
                        .map(|(kind, name, sql)| {
                            let tail = &sql[sql.find('(').unwrap_or(sql.len())..];
                            match kind.as_str() {
                                "table" => format!("CREATE TABLE bench_{t} {tail}"),
                                _ => format!("CREATE INDEX bench_{name} ON bench_{t} {tail}"),
                            }
                        })
                        .collect()
                }
            };
            for sql in ddl {
                with_db!(self, write, |pool| {
                    sqlx::query(&sql).execute(pool).await?;
                });
            }
        }
        Ok(())
    }

    /// The program's ledger rows, grouped by `batch` events in key order
    /// (the order the benchmark sent them in).
    async fn bench_read_batches(&self, program: ProgramId, batch: usize) -> Result<Vec<BatchCopy>> {
        let p = program.0;
        let (events, transfers): (Vec<EventCopy>, Vec<TransferCopy>) =
            with_db!(self, read, |pool| {
                (
                    sqlx::query_as("SELECT * FROM events WHERE program_id = $1 ORDER BY event_key")
                        .bind(p)
                        .fetch_all(pool)
                        .await?,
                    sqlx::query_as("SELECT * FROM transfers WHERE program_id = $1")
                        .bind(p)
                        .fetch_all(pool)
                        .await?,
                )
            });
        let mut out: Vec<BatchCopy> = Vec::new();
        let mut batch_of: HashMap<String, usize> = HashMap::new();
        for (i, e) in events.into_iter().enumerate() {
            if i % batch == 0 {
                out.push(BatchCopy::default());
            }
            batch_of.insert(e.event_key.clone(), i / batch);
            out[i / batch].events.push(e);
        }
        for t in transfers {
            if let Some(&b) = t.event_key.as_ref().and_then(|k| batch_of.get(k)) {
                out[b].transfers.push(t);
            }
        }
        Ok(out)
    }

    /// Inserts one batch's rows into the copies, in one transaction.
    async fn bench_insert_copy(&self, program: ProgramId, b: &BatchCopy) -> Result<()> {
        let p = program.0;
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in b.events.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO bench_events (program_id, event_key, kind, member_id, fingerprint, occurred_at, recorded_at, \
                     asset, amount, points, refunded, reversed, order_key, request, result) ",
                );
                q.push_values(chunk, |mut r, e| {
                    r.push_bind(p)
                        .push_bind(&e.event_key)
                        .push_bind(&e.kind)
                        .push_bind(e.member_id)
                        .push_bind(&e.fingerprint)
                        .push_bind(e.occurred_at)
                        .push_bind(e.recorded_at)
                        .push_bind(&e.asset)
                        .push_bind(e.amount)
                        .push_bind(e.points)
                        .push_bind(e.refunded)
                        .push_bind(e.reversed)
                        .push_bind(&e.order_key)
                        .push_bind(JsonText(&e.request.0))
                        .push_bind(JsonText(&e.result.0));
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in b.transfers.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO bench_transfers (program_id, transfer_id, kind, state, event_key, member_id, asset, amount, \
                     program_account, reason, created_at, remaining, expires_at) ",
                );
                q.push_values(chunk, |mut r, t| {
                    r.push_bind(p)
                        .push_bind(t.transfer_id)
                        .push_bind(&t.kind)
                        .push_bind(&t.state)
                        .push_bind(&t.event_key)
                        .push_bind(t.member_id)
                        .push_bind(&t.asset)
                        .push_bind(t.amount)
                        .push_bind(&t.program_account)
                        .push_bind(&t.reason)
                        .push_bind(t.created_at)
                        .push_bind(t.remaining)
                        .push_bind(t.expires_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many of `program`'s outbox messages are in each status.
    pub async fn bench_outbox_counts(&self, program: ProgramId) -> Result<Vec<(String, i64)>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM outbox WHERE program_id = $1 GROUP BY status ORDER BY status",
            )
            .bind(program.0)
            .fetch_all(pool)
            .await?
        }))
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

/// [`Store::bench_raw_insert`] on SQLite: every column of every row read back
/// as it is stored, and inserted again with `INSERT … VALUES (?, …)`.
fn raw_sqlite(
    c: &rusqlite::Connection,
    program: ProgramId,
    batch: usize,
) -> Result<(usize, Duration)> {
    use rusqlite::types::Value;
    // Each batch's rows, table by table, in the order the pipeline wrote them.
    let mut batches: Vec<Vec<(usize, Vec<Value>)>> = Vec::new();
    let mut batch_of: HashMap<String, usize> = HashMap::new();
    let mut inserts = Vec::new();
    for (t, table) in TABLES.iter().enumerate() {
        let key = ["event_key", "transfer_id"][t];
        let mut q = c.prepare(&format!(
            "SELECT * FROM {table} WHERE program_id = ?1 ORDER BY {key}"
        ))?;
        let columns = q.column_count();
        let event_key = q.column_index("event_key")?;
        inserts.push(format!(
            "INSERT INTO bench_{table} VALUES ({})",
            vec!["?"; columns].join(", ")
        ));
        let mut rows = q.query([program.0])?;
        while let Some(r) = rows.next()? {
            let values = (0..columns)
                .map(|i| r.get(i))
                .collect::<rusqlite::Result<Vec<Value>>>()?;
            let Value::Text(key) = &values[event_key] else {
                continue;
            };
            let b = if t == 0 {
                let b = batch_of.len() / batch;
                batch_of.insert(key.clone(), b);
                b
            } else {
                match batch_of.get(key) {
                    Some(&b) => b,
                    None => continue,
                }
            };
            if b == batches.len() {
                batches.push(Vec::new());
            }
            batches[b].push((t, values));
        }
    }
    let (mut rows, mut timed) = (0, Duration::ZERO);
    for b in &batches {
        let start = Instant::now();
        let tx = c.unchecked_transaction()?;
        for (t, values) in b {
            tx.prepare_cached(&inserts[*t])?
                .execute(rusqlite::params_from_iter(values))?;
        }
        tx.commit()?;
        timed += start.elapsed();
        rows += b.len();
    }
    Ok((rows, timed))
}
