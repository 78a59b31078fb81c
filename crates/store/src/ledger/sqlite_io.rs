//! The ledger's batch I/O on SQLite: one prepared statement per kind of row,
//! run once per key or row on the calling thread (see [`crate::sqlite_raw`]).
//! SQLite is in-process, so a point lookup costs microseconds and needs no
//! `IN` list; a prepared single-row insert is its fastest way in. Lookups
//! through a partial index name it (`INDEXED BY`): without statistics the
//! planner prefers scanning the program's primary-key range instead.

use super::ingest::{
    EventIn, ItemResult, LedgerContext, Loaded, Order, OutcomeColumns, Planner, Redemption,
    SavedOutcome, WalletLot, Wanted,
};
use super::writes::{corrupt, parse_asset, parse_status, LedgerIo, Rows, BALANCES_ADD};
use crate::connect::sqlite_member_key;
use crate::sqlite_raw::{parse_time, time_text, with_handle};
use crate::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::lots::Lot;
use sqlx::SqliteConnection;
use uuid::Uuid;

/// Events planned per chunk: the writer thread writes one chunk while the
/// calling thread plans the next, so a batch takes about the longer of the
/// two plus one chunk of the shorter (the writer idles until the first
/// chunk arrives, the planner after the last). 100 events is ~1 ms of work:
/// short ends, and per-chunk costs (one more upsert of the program's
/// balance) still small. Chunks of 500 (100 first) booked a batch of 1000
/// 8 % slower and one of 5000 no faster.
const CHUNK: usize = 100;

impl LedgerIo for SqliteConnection {
    async fn load_batch(&mut self, program: ProgramId, wanted: &Wanted) -> Result<Loaded> {
        with_handle(self, |mut h| load(&*h.connection()?, program.0, wanted)).await
    }

    /// Planning is CPU work and so are SQLite's inserts: on two threads, a
    /// batch takes about the longer of the two instead of their sum.
    async fn book(
        &mut self,
        ctx: &LedgerContext,
        events: &[EventIn],
        loaded: Loaded,
    ) -> Result<Option<Vec<ItemResult>>> {
        with_handle(self, |mut h| {
            std::thread::scope(|s| {
                let (chunks, written) = std::sync::mpsc::sync_channel::<Rows>(1);
                let writer = s.spawn(move || -> Result<bool> {
                    let c = h.connection()?;
                    let mut busy = std::time::Duration::ZERO;
                    for rows in written {
                        let t = std::time::Instant::now();
                        if !write(&c, &rows)? {
                            return Ok(false);
                        }
                        busy += t.elapsed();
                    }
                    tracing::debug!(write_ms = busy.as_secs_f64() * 1e3, "ledger writer");
                    Ok(true)
                });
                let mut planner = Planner::new(ctx, loaded, events.len());
                let mut busy = std::time::Duration::ZERO;
                for chunk in events.chunks(CHUNK) {
                    let t = std::time::Instant::now();
                    let rows = planner.plan(chunk);
                    busy += t.elapsed();
                    // A closed channel: the writer stopped (its result says why).
                    if chunks.send(rows).is_err() {
                        break;
                    }
                }
                drop(chunks);
                tracing::debug!(plan_ms = busy.as_secs_f64() * 1e3, "ledger planner");
                let wrote = writer.join().map_err(|_| {
                    StoreError::Corrupt("the ledger writer thread panicked".into())
                })??;
                Ok(wrote.then(|| planner.finish()))
            })
        })
        .await
    }

    async fn write_batch(&mut self, rows: &Rows) -> Result<bool> {
        with_handle(self, |mut h| write(&*h.connection()?, rows)).await
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|e| corrupt(what, e))
}

/// Whether the member takes automated e-mail, beside their status.
const MEMBER: &str = "status, consent_email AND email IS NOT NULL";

fn load(c: &Connection, p: Uuid, w: &Wanted) -> Result<Loaded> {
    let mut l = Loaded::default();
    if w.check_keys {
        let mut q = c.prepare_cached(
            "SELECT fingerprint, request, result, kind, member_id, asset, points FROM events \
             WHERE program_id = ?1 AND event_key = ?2",
        )?;
        for key in &w.keys {
            type Row = (Vec<u8>, String, String, String, Uuid, String, i64);
            let row: Option<Row> = q.query_row(params![p, key], |r| r.try_into()).optional()?;
            if let Some((fingerprint, request, result, kind, member, asset, points)) = row {
                let columns = OutcomeColumns {
                    kind,
                    member_id: MemberId(member),
                    asset: parse_asset(&asset)?,
                    points,
                };
                let outcome: SavedOutcome = json("result", &result)?;
                let saved = (
                    fingerprint,
                    json("request", &request)?,
                    outcome.into_outcome(key.clone(), columns),
                );
                l.existing.insert(key.clone(), saved);
            }
        }
    }
    let mut by_id = c.prepare_cached(&format!(
        "SELECT {MEMBER} FROM members WHERE program_id = ?1 AND member_id = ?2"
    ))?;
    for &id in &w.member_ids {
        let row = by_id
            .query_row(params![p, id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })
            .optional()?;
        if let Some((raw, mailable)) = row {
            l.by_id.insert(MemberId(id), parse_status(&raw)?);
            if mailable {
                l.mailable.insert(MemberId(id));
            }
        }
    }
    let mut by_external = c.prepare_cached(&format!(
        "SELECT member_id, {MEMBER} FROM members WHERE program_id = ?1 AND external_id = ?2"
    ))?;
    for external in &w.externals {
        let row = by_external
            .query_row(params![p, external], |r| {
                Ok((
                    r.get::<_, Uuid>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .optional()?;
        if let Some((id, raw, mailable)) = row {
            let (id, status) = (MemberId(id), parse_status(&raw)?);
            l.by_id.insert(id, status);
            l.by_external.insert(external.clone(), (id, status));
            if mailable {
                l.mailable.insert(id);
            }
        }
    }
    load_orders(c, p, w, &mut l)?;
    load_wallets(c, p, w, &mut l)?;
    load_history(c, p, w, &mut l)?;
    Ok(l)
}

/// Orders refunds and releases refer to (purchases, and grants, whose
/// reason a release posts again), their pending holds and redemptions.
fn load_orders(c: &Connection, p: Uuid, w: &Wanted, l: &mut Loaded) -> Result<()> {
    let mut order = c.prepare_cached(
        "SELECT member_id, asset, amount, points, refunded, reversed, CASE WHEN kind = 'grant' THEN result END \
         FROM events WHERE program_id = ?1 AND event_key = ?2 AND kind IN ('purchase', 'grant')",
    )?;
    let mut hold = c.prepare_cached(
        "SELECT remaining FROM holds WHERE program_id = ?1 AND event_key = ?2 AND state = 'pending'",
    )?;
    let mut redemptions = c.prepare_cached(
        "SELECT event_key, member_id, asset, points, reversed, result FROM events INDEXED BY events_by_order \
         WHERE program_id = ?1 AND order_key = ?2 AND kind = 'redemption' ORDER BY event_key",
    )?;
    for key in &w.order_keys {
        type OrderRow = (Uuid, String, Option<i64>, i64, i64, i64, Option<String>);
        let row: Option<OrderRow> = order
            .query_row(params![p, key], |r| r.try_into())
            .optional()?;
        if let Some((member, raw_asset, amount, points, refunded, reversed, grant)) = row {
            let grant = match grant {
                Some(raw) => Some(json::<SavedOutcome>("result", &raw)?.grant_reason()),
                None => None,
            };
            let pending = hold
                .query_row(params![p, key], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let order = Order {
                member: MemberId(member),
                asset: parse_asset(&raw_asset)?,
                amount: amount.unwrap_or(0),
                points,
                refunded,
                reversed,
                pending,
                in_batch: None,
                grant,
            };
            l.orders.insert(key.clone(), order);
        }
        let mut rows = redemptions.query(params![p, key])?;
        while let Some(r) = rows.next()? {
            let raw_asset: String = r.get(2)?;
            let redemption = Redemption {
                key: r.get(0)?,
                member: MemberId(r.get(1)?),
                asset: parse_asset(&raw_asset)?,
                points: r.get(3)?,
                discount: json::<SavedOutcome>("result", &r.get::<_, String>(5)?)?
                    .discount
                    .unwrap_or(0),
                reversed: r.get(4)?,
                in_batch: None,
            };
            l.redemptions
                .entry(key.clone())
                .or_default()
                .push(redemption);
        }
    }
    Ok(())
}

/// Debts of every loaded member, and the open lots of those who may spend
/// or lose points.
fn load_wallets(c: &Connection, p: Uuid, w: &Wanted, l: &mut Loaded) -> Result<()> {
    let mut debts = c.prepare_cached(
        "SELECT asset, debt FROM balances INDEXED BY balances_in_debt WHERE program_id = ?1 AND member_id = ?2 AND debt <> 0",
    )?;
    for id in l.by_id.keys() {
        let mut rows = debts.query(params![p, id.0])?;
        while let Some(r) = rows.next()? {
            let raw: String = r.get(0)?;
            l.wallets.entry((*id, parse_asset(&raw)?)).or_default().debt = r.get(1)?;
        }
    }
    let spenders = l.spenders(w);
    let mut lots = c.prepare_cached(&format!(
        "SELECT transfer_id, asset, remaining, created_at, expires_at FROM transfers INDEXED BY transfers_by_member \
         WHERE {} AND member_id = ?2 AND program_id = ?1 AND remaining > 0 ORDER BY transfer_id",
        same_member()
    ))?;
    for member in spenders {
        let mut rows = lots.query(params![p, member])?;
        while let Some(r) = rows.next()? {
            let (raw_asset, earned_at, expires_at): (String, String, Option<String>) =
                (r.get(1)?, r.get(3)?, r.get(4)?);
            let wallet = l
                .wallets
                .entry((MemberId(member), parse_asset(&raw_asset)?))
                .or_default();
            let lot = Lot {
                id: wallet.lots.len() as u64,
                remaining: r.get(2)?,
                earned_at: parse_time(&earned_at)?,
                expires_at: expires_at.as_deref().map(parse_time).transpose()?,
            };
            wallet.lots.push(WalletLot {
                id: r.get(0)?,
                lot,
                new_row: None,
            });
        }
    }
    Ok(())
}

/// The member-index condition of the lookups by member below (`?2`).
fn same_member() -> String {
    format!(
        "{} = {}",
        sqlite_member_key("member_id"),
        sqlite_member_key("?2")
    )
}

/// Past purchases the rules may count: per member, and per member and day.
fn load_history(c: &Connection, p: Uuid, w: &Wanted, l: &mut Loaded) -> Result<()> {
    let members: Vec<Uuid> = l.by_id.keys().map(|m| m.0).collect();
    if w.order_counts {
        let mut count = c.prepare_cached(&format!(
            "SELECT COUNT(*) FROM events INDEXED BY events_by_member WHERE {} \
             AND program_id = ?1 AND member_id = ?2 AND kind = 'purchase'",
            same_member()
        ))?;
        for &m in &members {
            let n: i64 = count.query_row(params![p, m], |r| r.get(0))?;
            if n > 0 {
                l.orders_count.insert(MemberId(m), n);
            }
        }
    }
    if let (true, Some(first), Some(last)) = (w.daily_totals, w.days.first(), w.days.last()) {
        // Compared as Unix seconds (the index's expression): a bare date is
        // its midnight UTC, and `…T00:00:00.5Z` counts on its own day.
        let from = first.to_string();
        let to = last.next_day().unwrap_or(*last).to_string();
        let mut earned = c.prepare_cached(&format!(
            "SELECT occurred_at, points FROM events INDEXED BY events_by_member \
             WHERE {} AND unixepoch(occurred_at) >= unixepoch(?3) AND unixepoch(occurred_at) < unixepoch(?4) \
             AND program_id = ?1 AND member_id = ?2 AND kind = 'purchase'",
            same_member()
        ))?;
        for &m in &members {
            let mut rows = earned.query(params![p, m, from, to])?;
            while let Some(r) = rows.next()? {
                let at = parse_time(&r.get::<_, String>(0)?)?;
                *l.earned_on.entry((MemberId(m), at.date())).or_default() += r.get::<_, i64>(1)?;
            }
        }
    }
    Ok(())
}

fn write(c: &Connection, rows: &Rows) -> Result<bool> {
    let p = rows.program.0;
    let now = time_text(rows.now)?;
    if !rows.enrolled.is_empty() {
        let mut q = c.prepare_cached(
            "INSERT INTO members (program_id, member_id, external_id, status, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
        )?;
        for (id, external) in &rows.enrolled {
            q.execute(params![p, id.0, external, now])?;
        }
    }
    let mut q = c.prepare_cached(
        "INSERT INTO events (program_id, event_key, kind, member_id, fingerprint, occurred_at, recorded_at, \
         asset, amount, points, refunded, reversed, order_key, request, result) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
         ON CONFLICT (program_id, event_key) DO NOTHING",
    )?;
    for e in &rows.events {
        // The unique index is the dedupe: no lookup on the common path
        // where every key is new.
        let inserted = q.execute(params![
            p,
            e.key,
            e.kind,
            e.member.0,
            &e.fingerprint[..],
            time_text(e.at)?,
            now,
            e.asset.as_str(),
            e.amount,
            e.points,
            e.refunded,
            e.reversed,
            e.order_key,
            e.request.get(),
            e.result.get(),
        ])?;
        if inserted == 0 {
            return Ok(false);
        }
    }
    let mut q = c.prepare_cached(
        "INSERT INTO transfers (program_id, transfer_id, kind, state, event_key, member_id, asset, amount, \
         program_account, reason, created_at, remaining, expires_at) \
         VALUES (?1, ?2, ?3, 'posted', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for t in &rows.transfers {
        q.execute(params![
            p,
            t.id,
            t.kind.as_str(),
            t.event_key,
            t.member.0,
            t.asset.as_str(),
            t.amount,
            t.program_account.as_str(),
            t.reason,
            time_text(t.at)?,
            t.lot.map(|l| l.remaining),
            t.lot
                .and_then(|l| l.expires_at)
                .map(time_text)
                .transpose()?,
        ])?;
    }
    if !rows.holds.is_empty() {
        let mut q = c.prepare_cached(
            "INSERT INTO holds (program_id, event_key, member_id, asset, points, remaining, release_at, state, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for h in &rows.holds {
            q.execute(params![
                p,
                h.event_key,
                h.member.0,
                h.asset.as_str(),
                h.points,
                h.remaining,
                time_text(h.release_at)?,
                h.state,
                now,
            ])?;
        }
    }
    for (key, (remaining, state)) in &rows.hold_updates {
        c.prepare_cached(
            "UPDATE holds SET remaining = ?3, state = ?4 WHERE program_id = ?1 AND event_key = ?2",
        )?
        .execute(params![p, key, remaining, state])?;
    }
    for (lot, remaining) in &rows.lot_updates {
        c.prepare_cached(
            "UPDATE transfers SET remaining = ?3 WHERE program_id = ?1 AND transfer_id = ?2",
        )?
        .execute(params![p, lot, remaining])?;
    }
    for (key, (refunded, reversed)) in &rows.order_updates {
        c.prepare_cached(
            "UPDATE events SET refunded = ?3, reversed = ?4 WHERE program_id = ?1 AND event_key = ?2",
        )?
        .execute(params![p, key, refunded, reversed])?;
    }
    let mut q = c.prepare_cached(&format!(
        "INSERT INTO balances (program_id, account, member_id, asset, posted, debt) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6){BALANCES_ADD}"
    ))?;
    for (account, d) in &rows.balances {
        q.execute(params![
            p,
            account,
            d.member.map(|m| m.0),
            d.asset.as_str(),
            d.posted,
            d.debt
        ])?;
    }
    Ok(true)
}
