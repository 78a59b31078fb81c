//! The rows a batch writes, the I/O trait both backends implement, and
//! PostgreSQL's implementation: set-based loads and one insert per table
//! (SQLite's is in `sqlite_io`).

use super::ingest::{
    plan, EventIn, ItemResult, LedgerContext, Loaded, Order, OutcomeColumns, Redemption,
    SavedOutcome, WalletLot, Wanted,
};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::{Asset, ProgramAccount};
use sarafan_core::ledger::lots::Lot;
use sarafan_core::ledger::TransferKind;
use sarafan_core::member::MemberStatus;
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct EventRow {
    pub key: String,
    pub kind: String,
    pub member: MemberId,
    pub fingerprint: [u8; 32],
    /// The request, serialised once (not a copy of its JSON tree).
    pub request: Box<serde_json::value::RawValue>,
    pub at: OffsetDateTime,
    pub asset: Asset,
    pub amount: Option<i64>,
    pub points: i64,
    pub refunded: i64,
    pub reversed: i64,
    pub order_key: Option<String>,
    /// The outcome, serialised once.
    pub result: Box<serde_json::value::RawValue>,
}

/// A transfer as stored: one row for its two legs, the member's `amount`
/// and the program account's `-amount`.
pub(crate) struct TransferRow {
    pub id: Uuid,
    pub kind: TransferKind,
    pub event_key: String,
    pub member: MemberId,
    pub asset: Asset,
    pub amount: i64,
    pub program_account: ProgramAccount,
    pub reason: String,
    pub at: OffsetDateTime,
    /// The lot this transfer's points made, if they became one.
    pub lot: Option<LotColumns>,
}

/// A lot, kept on the transfer that brought its points (its id is the
/// transfer's; it was earned at the transfer's time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LotColumns {
    pub remaining: i64,
    pub expires_at: Option<OffsetDateTime>,
}

pub(crate) struct HoldRow {
    pub event_key: String,
    pub member: MemberId,
    pub asset: Asset,
    pub points: i64,
    pub remaining: i64,
    pub release_at: OffsetDateTime,
    pub state: &'static str,
}

pub(crate) struct BalanceDelta {
    pub member: Option<MemberId>,
    pub asset: Asset,
    pub posted: i64,
    pub debt: i64,
}

/// Everything one batch writes.
pub(crate) struct Rows {
    pub program: ProgramId,
    pub now: OffsetDateTime,
    /// Members enrolled by their first event: `(id, external id)`.
    pub enrolled: Vec<(MemberId, String)>,
    pub events: Vec<EventRow>,
    pub transfers: Vec<TransferRow>,
    /// Lots of earlier batches or chunks spent or expired: transfer id → remaining.
    pub lot_updates: HashMap<Uuid, i64>,
    pub holds: Vec<HoldRow>,
    /// Holds from earlier batches: `(remaining, state)`.
    pub hold_updates: HashMap<String, (i64, &'static str)>,
    /// Purchases from earlier batches refunded by this one: `(refunded, reversed)`.
    pub order_updates: HashMap<String, (i64, i64)>,
    pub balances: HashMap<String, BalanceDelta>,
    /// Event and transfer rows of the batch's earlier chunks (see
    /// `ingest::Planner`): a batch position below these is written already.
    pub events_before: usize,
    pub transfers_before: usize,
}

impl Rows {
    pub fn new(program: ProgramId, now: OffsetDateTime) -> Self {
        Self {
            program,
            now,
            enrolled: Vec::new(),
            events: Vec::new(),
            transfers: Vec::new(),
            lot_updates: HashMap::new(),
            holds: Vec::new(),
            hold_updates: HashMap::new(),
            order_updates: HashMap::new(),
            balances: HashMap::new(),
            events_before: 0,
            transfers_before: 0,
        }
    }
}

/// Adds a batch's balance deltas to the stored balances.
pub(crate) const BALANCES_ADD: &str = " ON CONFLICT (program_id, account) DO UPDATE SET \
     posted = balances.posted + excluded.posted, debt = balances.debt + excluded.debt";

/// Rows per multi-row statement: far below both engines' parameter limits
/// (SQLite 32766, PostgreSQL 65535) at up to 14 columns a row.
const CHUNK: usize = 1000;

pub(crate) trait LedgerIo {
    async fn load_batch(&mut self, program: ProgramId, wanted: &Wanted) -> crate::Result<Loaded>;
    /// Books `events` against `loaded` and writes their rows: the results,
    /// or `None` where [`LedgerIo::write_batch`] found a key booked already.
    async fn book(
        &mut self,
        ctx: &LedgerContext,
        events: &[EventIn],
        loaded: Loaded,
    ) -> crate::Result<Option<Vec<ItemResult>>> {
        let (results, rows) = plan(ctx, events, loaded);
        Ok(self.write_batch(&rows).await?.then_some(results))
    }
    /// Writes a planned batch. `Ok(false)`: an event's key was booked
    /// already (the batch was planned without looking keys up), nothing
    /// useful was written and the caller rolls back and plans again.
    async fn write_batch(&mut self, rows: &Rows) -> crate::Result<bool>;
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> crate::StoreError {
    crate::StoreError::Corrupt(format!("{what}: {e}"))
}

/// A stored `asset` column.
pub(crate) fn parse_asset(raw: &str) -> crate::Result<Asset> {
    Asset::parse("asset", raw).map_err(|e| corrupt("asset", e))
}

/// A stored member `status` column.
pub(crate) fn parse_status(raw: &str) -> crate::Result<MemberStatus> {
    MemberStatus::parse("status", raw).map_err(|e| corrupt("member", e))
}

/// The batch I/O on PostgreSQL (SQLite's is in `sqlite_io`): set-based
/// loads by array parameter, and one insert per table.
mod postgres {
    use super::*;
    use sqlx::types::Json;
    use sqlx::{QueryBuilder, Row};

    type Db = sqlx::Postgres;

    /// The rows of `select` in the program whose `column` is one of
    /// `items`, fetched in chunks of [`CHUNK`].
    async fn rows_in<T>(
        conn: &mut sqlx::PgConnection,
        select: &str,
        program: Uuid,
        column: &str,
        items: &[T],
        tail: &str,
    ) -> crate::Result<Vec<<Db as sqlx::Database>::Row>>
    where
        T: for<'a> sqlx::Encode<'a, Db> + sqlx::Type<Db> + Sync + sqlx::postgres::PgHasArrayType,
    {
        let mut out = Vec::new();
        for chunk in items.chunks(CHUNK) {
            out.extend(
                super::postgres_rows::select_in(select, program, column, chunk, tail)
                    .build()
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        Ok(out)
    }

    fn status_of(r: &<Db as sqlx::Database>::Row) -> crate::Result<MemberStatus> {
        parse_status(&r.try_get::<String, _>("status")?)
    }

    /// The `asset` column of a row.
    fn asset_of(r: &<Db as sqlx::Database>::Row) -> crate::Result<Asset> {
        parse_asset(&r.try_get::<String, _>("asset")?)
    }

    impl LedgerIo for sqlx::PgConnection {
        async fn load_batch(&mut self, program: ProgramId, w: &Wanted) -> crate::Result<Loaded> {
            let p = program.0;
            // Serialises a program's ledger writers.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(i64::from_be_bytes(
                    p.as_bytes()[..8].try_into().unwrap_or_default(),
                ))
                .execute(&mut *self)
                .await?;
            let mut l = Loaded::default();
            let select = "SELECT event_key, fingerprint, request, result, kind, member_id, asset, points FROM events";
            let keys: &[String] = if w.check_keys { &w.keys } else { &[] };
            for r in rows_in(self, select, p, "event_key", keys, "").await? {
                let saved: Json<SavedOutcome> = r.try_get("result")?;
                let request: Json<serde_json::Value> = r.try_get("request")?;
                let columns = OutcomeColumns {
                    kind: r.try_get("kind")?,
                    member_id: MemberId(r.try_get("member_id")?),
                    asset: asset_of(&r)?,
                    points: r.try_get("points")?,
                };
                let key: String = r.try_get("event_key")?;
                let outcome = saved.0.into_outcome(key.clone(), columns);
                l.existing
                    .insert(key, (r.try_get("fingerprint")?, request.0, outcome));
            }
            // Whether the member takes automated e-mail comes along
            // for free, so the outbox is skipped when nobody listens.
            let select = "SELECT member_id, status, CASE WHEN consent_email AND email IS NOT NULL THEN 1 ELSE 0 END AS mailable FROM members";
            for r in rows_in(self, select, p, "member_id", &w.member_ids, "").await? {
                let id = MemberId(r.try_get("member_id")?);
                l.by_id.insert(id, status_of(&r)?);
                if r.try_get::<i32, _>("mailable")? == 1 {
                    l.mailable.insert(id);
                }
            }
            let select = "SELECT member_id, external_id, status, CASE WHEN consent_email AND email IS NOT NULL THEN 1 ELSE 0 END AS mailable FROM members";
            for r in rows_in(self, select, p, "external_id", &w.externals, "").await? {
                let (id, status) = (MemberId(r.try_get("member_id")?), status_of(&r)?);
                l.by_id.insert(id, status);
                l.by_external
                    .insert(r.try_get("external_id")?, (id, status));
                if r.try_get::<i32, _>("mailable")? == 1 {
                    l.mailable.insert(id);
                }
            }
            // Orders refunds and releases refer to: purchases, and grants
            // (whose reason a release posts again, read from the saved outcome).
            let select = "SELECT event_key, member_id, asset, amount, points, refunded, reversed, \
                                  CASE WHEN kind = 'grant' THEN result END AS grant FROM events";
            for r in rows_in(
                self,
                select,
                p,
                "event_key",
                &w.order_keys,
                " AND kind IN ('purchase', 'grant')",
            )
            .await?
            {
                let grant: Option<Json<SavedOutcome>> = r.try_get("grant")?;
                let order = Order {
                    member: MemberId(r.try_get("member_id")?),
                    asset: asset_of(&r)?,
                    amount: r.try_get::<Option<i64>, _>("amount")?.unwrap_or(0),
                    points: r.try_get("points")?,
                    refunded: r.try_get("refunded")?,
                    reversed: r.try_get("reversed")?,
                    pending: 0,
                    in_batch: None,
                    grant: grant.map(|g| g.0.grant_reason()),
                };
                l.orders.insert(r.try_get("event_key")?, order);
            }
            let select = "SELECT event_key, remaining FROM holds";
            for r in rows_in(
                self,
                select,
                p,
                "event_key",
                &w.order_keys,
                " AND state = 'pending'",
            )
            .await?
            {
                let key: String = r.try_get("event_key")?;
                if let Some(order) = l.orders.get_mut(&key) {
                    order.pending = r.try_get("remaining")?;
                }
            }
            let select =
                "SELECT event_key, member_id, asset, points, reversed, order_key, result FROM events";
            let tail = " AND kind = 'redemption' ORDER BY event_key";
            for r in rows_in(self, select, p, "order_key", &w.order_keys, tail).await? {
                let saved: Json<SavedOutcome> = r.try_get("result")?;
                let redemption = Redemption {
                    key: r.try_get("event_key")?,
                    member: MemberId(r.try_get("member_id")?),
                    asset: asset_of(&r)?,
                    points: r.try_get("points")?,
                    discount: saved.0.discount.unwrap_or(0),
                    reversed: r.try_get("reversed")?,
                    in_batch: None,
                };
                l.redemptions
                    .entry(r.try_get("order_key")?)
                    .or_default()
                    .push(redemption);
            }
            let members: Vec<Uuid> = l.by_id.keys().map(|m| m.0).collect();
            let select = "SELECT member_id, asset, debt FROM balances";
            for r in rows_in(self, select, p, "member_id", &members, " AND debt <> 0").await? {
                let wallet = l
                    .wallets
                    .entry((MemberId(r.try_get("member_id")?), asset_of(&r)?))
                    .or_default();
                wallet.debt = r.try_get("debt")?;
            }
            // Lots are needed only where points may be spent or taken back.
            let spenders = l.spenders(w);
            let select = "SELECT transfer_id, member_id, asset, remaining, created_at, expires_at FROM transfers";
            for r in rows_in(
                self,
                select,
                p,
                "member_id",
                &spenders,
                " AND remaining > 0 ORDER BY transfer_id",
            )
            .await?
            {
                let wallet = l
                    .wallets
                    .entry((MemberId(r.try_get("member_id")?), asset_of(&r)?))
                    .or_default();
                let lot = Lot {
                    id: wallet.lots.len() as u64,
                    remaining: r.try_get("remaining")?,
                    earned_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                };
                wallet.lots.push(WalletLot {
                    id: r.try_get("transfer_id")?,
                    lot,
                    new_row: None,
                });
            }
            if w.order_counts {
                let select = "SELECT member_id, CAST(COUNT(*) AS BIGINT) AS n FROM events";
                for r in rows_in(
                    self,
                    select,
                    p,
                    "member_id",
                    &members,
                    " AND kind = 'purchase' GROUP BY member_id",
                )
                .await?
                {
                    l.orders_count
                        .insert(MemberId(r.try_get("member_id")?), r.try_get("n")?);
                }
            }
            if let (true, Some(first), Some(last)) = (w.daily_totals, w.days.first(), w.days.last())
            {
                let from = first.midnight().assume_utc();
                let to = last.next_day().unwrap_or(*last).midnight().assume_utc();
                for ids in members.chunks(CHUNK) {
                    let mut q = super::postgres_rows::select_in(
                        "SELECT member_id, occurred_at, points FROM events",
                        p,
                        "member_id",
                        ids,
                        " AND kind = 'purchase' AND occurred_at >= ",
                    );
                    q.push_bind(from).push(" AND occurred_at < ").push_bind(to);
                    for r in q.build().fetch_all(&mut *self).await? {
                        let at: OffsetDateTime = r.try_get("occurred_at")?;
                        *l.earned_on
                            .entry((MemberId(r.try_get("member_id")?), at.date()))
                            .or_default() += r.try_get::<i64, _>("points")?;
                    }
                }
            }
            Ok(l)
        }

        async fn write_batch(&mut self, rows: &Rows) -> crate::Result<bool> {
            let p = rows.program.0;
            let now = rows.now;
            for chunk in rows.enrolled.chunks(CHUNK) {
                let mut q = QueryBuilder::<Db>::new("INSERT INTO members (program_id, member_id, external_id, status, created_at, updated_at) ");
                q.push_values(chunk, |mut b, (id, ext)| {
                    b.push_bind(p)
                        .push_bind(id.0)
                        .push_bind(ext)
                        .push_bind("active")
                        .push_bind(now)
                        .push_bind(now);
                });
                q.build().execute(&mut *self).await?;
            }
            if !super::postgres_rows::events(&mut *self, rows).await? {
                return Ok(false);
            }
            super::postgres_rows::transfers(&mut *self, rows).await?;
            for chunk in rows.holds.chunks(CHUNK) {
                let mut q = QueryBuilder::<Db>::new(
                            "INSERT INTO holds (program_id, event_key, member_id, asset, points, remaining, release_at, state, created_at) ",
                        );
                q.push_values(chunk, |mut b, h| {
                    b.push_bind(p)
                        .push_bind(&h.event_key)
                        .push_bind(h.member.0)
                        .push_bind(h.asset.as_str())
                        .push_bind(h.points)
                        .push_bind(h.remaining)
                        .push_bind(h.release_at)
                        .push_bind(h.state)
                        .push_bind(now);
                });
                q.build().execute(&mut *self).await?;
            }
            for (key, (remaining, state)) in &rows.hold_updates {
                sqlx::query("UPDATE holds SET remaining = $3, state = $4 WHERE program_id = $1 AND event_key = $2")
                            .bind(p).bind(key).bind(remaining).bind(*state).execute(&mut *self).await?;
            }
            for (lot, remaining) in &rows.lot_updates {
                sqlx::query("UPDATE transfers SET remaining = $3 WHERE program_id = $1 AND transfer_id = $2")
                    .bind(p)
                    .bind(lot)
                    .bind(remaining)
                    .execute(&mut *self)
                    .await?;
            }
            for (key, (refunded, reversed)) in &rows.order_updates {
                sqlx::query("UPDATE events SET refunded = $3, reversed = $4 WHERE program_id = $1 AND event_key = $2")
                            .bind(p).bind(key).bind(refunded).bind(reversed).execute(&mut *self).await?;
            }
            super::postgres_rows::balances(&mut *self, rows).await?;
            Ok(true)
        }
    }
}

/// The hot inserts on PostgreSQL: one statement per table whatever the
/// batch size, each column bound as one array and the rows rebuilt by
/// `UNNEST`. The server parses and plans a dozen parameters instead of
/// a dozen per row, which multi-row `VALUES` costs.
mod postgres_rows {
    use super::Rows;
    use sqlx::postgres::PgHasArrayType;
    use sqlx::{PgConnection, Postgres, QueryBuilder};
    use time::OffsetDateTime;
    use uuid::Uuid;

    /// `SELECT … WHERE program_id = $1 AND <column> = ANY($2) <tail>`: the
    /// list is one array parameter, so the statement is the same text for
    /// any number of items (parsed once, not a thousand placeholders).
    pub(super) fn select_in<'a, T>(
        select: &str,
        program: Uuid,
        column: &str,
        items: &'a [T],
        tail: &str,
    ) -> QueryBuilder<'a, Postgres>
    where
        T: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + PgHasArrayType + Sync,
    {
        let mut q = QueryBuilder::new(select);
        q.push(" WHERE program_id = ")
            .push_bind(program)
            .push(format!(" AND {column} = ANY("))
            .push_bind(items)
            .push(")")
            .push(tail);
        q
    }

    /// `false`: some event key was booked already (nothing else inserted).
    pub(super) async fn events(conn: &mut PgConnection, rows: &Rows) -> crate::Result<bool> {
        if rows.events.is_empty() {
            return Ok(true);
        }
        let e = &rows.events;
        let inserted = sqlx::query(
            "INSERT INTO events (program_id, event_key, kind, member_id, fingerprint, occurred_at, recorded_at, \
             asset, amount, points, refunded, reversed, order_key, request, result) \
             SELECT $1, k, kind, m, f, at, $2, asset, amount, points, refunded, reversed, order_key, req::json, res::json \
             FROM UNNEST($3::text[], $4::text[], $5::uuid[], $6::bytea[], $7::timestamptz[], $8::text[], $9::int8[], \
                         $10::int8[], $11::int8[], $12::int8[], $13::text[], $14::text[], $15::text[]) \
                  AS t(k, kind, m, f, at, asset, amount, points, refunded, reversed, order_key, req, res) \
             ON CONFLICT (program_id, event_key) DO NOTHING",
        )
        .bind(rows.program.0)
        .bind(rows.now)
        .bind(e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.member.0).collect::<Vec<Uuid>>())
        .bind(e.iter().map(|e| &e.fingerprint[..]).collect::<Vec<&[u8]>>())
        .bind(e.iter().map(|e| e.at).collect::<Vec<OffsetDateTime>>())
        .bind(e.iter().map(|e| e.asset.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.amount).collect::<Vec<Option<i64>>>())
        .bind(e.iter().map(|e| e.points).collect::<Vec<i64>>())
        .bind(e.iter().map(|e| e.refunded).collect::<Vec<i64>>())
        .bind(e.iter().map(|e| e.reversed).collect::<Vec<i64>>())
        .bind(e.iter().map(|e| e.order_key.as_deref()).collect::<Vec<Option<&str>>>())
        .bind(e.iter().map(|e| e.request.get()).collect::<Vec<&str>>())
        .bind(e.iter().map(|e| e.result.get()).collect::<Vec<&str>>())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(inserted == e.len() as u64)
    }

    pub(super) async fn transfers(conn: &mut PgConnection, rows: &Rows) -> crate::Result<()> {
        if rows.transfers.is_empty() {
            return Ok(());
        }
        let t = &rows.transfers;
        sqlx::query(
            "INSERT INTO transfers (program_id, transfer_id, kind, state, event_key, member_id, asset, amount, \
             program_account, reason, created_at, remaining, expires_at) \
             SELECT $1, id, kind, 'posted', k, m, asset, amount, account, reason, at, remaining, expires \
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::int8[], $8::text[], \
                         $9::text[], $10::timestamptz[], $11::int8[], $12::timestamptz[]) \
                  AS t(id, kind, k, m, asset, amount, account, reason, at, remaining, expires)",
        )
        .bind(rows.program.0)
        .bind(t.iter().map(|t| t.id).collect::<Vec<Uuid>>())
        .bind(t.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.event_key.as_str()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.member.0).collect::<Vec<Uuid>>())
        .bind(t.iter().map(|t| t.asset.as_str()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.amount).collect::<Vec<i64>>())
        .bind(t.iter().map(|t| t.program_account.as_str()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.reason.as_str()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.at).collect::<Vec<OffsetDateTime>>())
        .bind(t.iter().map(|t| t.lot.map(|l| l.remaining)).collect::<Vec<Option<i64>>>())
        .bind(
            t.iter()
                .map(|t| t.lot.and_then(|l| l.expires_at))
                .collect::<Vec<Option<OffsetDateTime>>>(),
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(super) async fn balances(conn: &mut PgConnection, rows: &Rows) -> crate::Result<()> {
        if rows.balances.is_empty() {
            return Ok(());
        }
        let b: Vec<_> = rows.balances.iter().collect();
        sqlx::query(&format!(
            "INSERT INTO balances (program_id, account, member_id, asset, posted, debt) \
             SELECT $1, account, m, asset, posted, debt \
             FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::int8[], $6::int8[]) \
                  AS t(account, m, asset, posted, debt){}",
            super::BALANCES_ADD
        ))
        .bind(rows.program.0)
        .bind(b.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>())
        .bind(
            b.iter()
                .map(|(_, d)| d.member.map(|m| m.0))
                .collect::<Vec<Option<Uuid>>>(),
        )
        .bind(b.iter().map(|(_, d)| d.asset.as_str()).collect::<Vec<_>>())
        .bind(b.iter().map(|(_, d)| d.posted).collect::<Vec<i64>>())
        .bind(b.iter().map(|(_, d)| d.debt).collect::<Vec<i64>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
