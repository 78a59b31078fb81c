//! What members and stores read from the ledger, and the consistency check.

use super::ingest::{
    outgoing, read_reason, replay_of, EventIn, ItemResult, LedgerContext, SavedOutcome, Wanted,
};
use super::writes::LedgerIo;
use crate::outbox::Enqueue;
use crate::paging::{cut, page_size, rows_to_read};
use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::{AccountKey, Asset, Owner, ProgramAccount};
use sarafan_core::ledger::lots::{expiring_schedule, Lot};
use sarafan_core::ledger::reason::Reason;
use sarafan_core::ledger::rules::CompiledRules;
use sarafan_core::outbox::Topic;
use time::OffsetDateTime;
use uuid::Uuid;

/// A member's points now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberBalance {
    /// Posted balance: the sum of the member's postings.
    pub points: i64,
    /// What the member can spend now (their open lots).
    pub spendable: i64,
    /// Points a refund took back that later earnings pay first.
    pub debt: i64,
    /// Points earned but still inside their order's return window.
    pub pending: i64,
    /// What expires when, soonest first.
    pub expiring: Vec<(OffsetDateTime, i64)>,
}

/// One posting on a member's account, with why it happened.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatementLine {
    pub transfer_id: Uuid,
    pub seq: i32,
    pub kind: String,
    pub event_key: Option<String>,
    pub asset: String,
    pub amount: i64,
    pub reason: String,
    pub created_at: OffsetDateTime,
}

impl StatementLine {
    /// Why, as data (`reason` is the column as stored).
    pub fn why(&self) -> Reason {
        read_reason(&self.reason)
    }
}

/// Points not yet spendable: a purchase inside its return window, or a
/// held grant (a referral reward, say), and when they will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingHold {
    /// The purchase's or grant's key.
    pub event_key: String,
    pub asset: Asset,
    pub points: i64,
    pub release_at: OffsetDateTime,
    /// The purchase ([`Reason::Released`] of its order), or the grant's reason.
    pub reason: Reason,
}

/// A program's points in total.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerTotals {
    pub issued: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub reversed: i64,
    /// Points members hold: what the program still owes.
    pub outstanding: i64,
}

impl Store {
    /// Loads and compiles what booking events for `program` needs.
    pub async fn ledger_context(&self, program: ProgramId) -> Result<Option<LedgerContext>> {
        let Some(p) = self.program(program).await? else {
            return Ok(None);
        };
        let rules = self
            .earn_rules(program)
            .await?
            .into_iter()
            .map(|v| {
                CompiledRules::compile(v.rules)
                    .map_err(|e| StoreError::Corrupt(format!("earn rules: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut webhook_topics: Vec<Topic> = self
            .webhooks(program)
            .await?
            .into_iter()
            .filter(|w| w.enabled)
            .flat_map(|w| w.topics)
            .collect();
        webhook_topics.sort_unstable_by_key(|t| t.as_str());
        webhook_topics.dedup();
        Ok(Some(LedgerContext {
            program,
            currency: p.currency.code().to_owned(),
            settings: p.settings,
            rules,
            webhook_topics,
        }))
    }

    /// Books a batch of events in one transaction: each item is accepted,
    /// replayed or rejected whole.
    pub async fn ingest(&self, ctx: &LedgerContext, events: &[EventIn]) -> Result<Vec<ItemResult>> {
        let mut wanted = Wanted::of(ctx, events);
        // First try without looking keys up: the insert's unique index finds
        // replays among the accepted items, and a batch holding one is
        // planned again with every key checked.
        for check_keys in [false, true] {
            wanted.check_keys = check_keys;
            let booked = with_db!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                let booked = book_in(&mut *tx, ctx, events, &wanted, Announce::Yes).await?;
                if booked.is_some() {
                    let t = std::time::Instant::now();
                    tx.commit().await?;
                    tracing::debug!(commit_ms = t.elapsed().as_secs_f64() * 1e3, "ledger commit");
                } else {
                    tx.rollback().await?;
                }
                booked
            });
            if let Some(results) = booked {
                return Ok(results);
            }
        }
        Err(StoreError::Corrupt(
            "an event key was booked by another writer while this batch was booked twice".into(),
        ))
    }

    /// The member's balance in one asset.
    pub async fn member_balance(
        &self,
        program: ProgramId,
        member: MemberId,
        asset: Asset,
    ) -> Result<MemberBalance> {
        let (points, debt): (i64, i64) = with_db!(self, read, |pool| {
            sqlx::query_as("SELECT posted, debt FROM balances WHERE program_id = $1 AND member_id = $2 AND asset = $3")
                .bind(program.0)
                .bind(member.0)
                .bind(asset.as_str())
                .fetch_optional(pool)
                .await?
                .unwrap_or((0, 0))
        });
        let lots: Vec<(i64, OffsetDateTime, Option<OffsetDateTime>)> = with_db!(
            self,
            read,
            |pool| {
                sqlx::query_as(&format!(
                    "SELECT remaining, created_at, expires_at FROM {} \
                 WHERE program_id = $1 AND member_id = $2{} AND asset = $3 AND remaining > 0 ORDER BY transfer_id",
                    self.by_member_table("transfers"),
                    self.by_member_key("member_id", "$2")
                ))
                .bind(program.0)
                .bind(member.0)
                .bind(asset.as_str())
                .fetch_all(pool)
                .await?
            }
        );
        let lots: Vec<Lot> = lots
            .into_iter()
            .enumerate()
            .map(|(i, (remaining, earned_at, expires_at))| Lot {
                id: i as u64,
                remaining,
                earned_at,
                expires_at,
            })
            .collect();
        let pending: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM holds \
                 WHERE program_id = $1 AND member_id = $2 AND asset = $3 AND state = 'pending'",
            )
            .bind(program.0)
            .bind(member.0)
            .bind(asset.as_str())
            .fetch_one(pool)
            .await?
        });
        Ok(MemberBalance {
            pending,
            points,
            spendable: lots.iter().map(|l| l.remaining).sum(),
            debt,
            expiring: expiring_schedule(&lots, now()),
        })
    }

    /// The member's pending points, soonest spendable first.
    pub async fn pending_holds(
        &self,
        program: ProgramId,
        member: MemberId,
    ) -> Result<Vec<PendingHold>> {
        type Row = (
            String,
            String,
            i64,
            OffsetDateTime,
            String,
            sqlx::types::Json<SavedOutcome>,
        );
        let rows: Vec<Row> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT h.event_key, h.asset, h.remaining, h.release_at, e.kind, e.result FROM holds h \
                 JOIN events e ON e.program_id = h.program_id AND e.event_key = h.event_key \
                 WHERE h.program_id = $1 AND h.member_id = $2 AND h.state = 'pending' \
                 ORDER BY h.release_at, h.event_key",
            )
            .bind(program.0)
            .bind(member.0)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(event_key, asset, points, release_at, kind, saved)| {
                let reason = match kind.as_str() {
                    "grant" => saved.0.grant_reason(),
                    _ => Reason::Released {
                        order: event_key.clone(),
                    },
                };
                Ok(PendingHold {
                    asset: Asset::parse("asset", &asset)
                        .map_err(|e| StoreError::Corrupt(format!("hold: {e}")))?,
                    event_key,
                    points,
                    release_at,
                    reason,
                })
            })
            .collect()
    }

    /// A page of the member's postings, oldest first, after `after` (a
    /// transfer id), and the `after` of the next page when there is one.
    pub async fn statement(
        &self,
        program: ProgramId,
        member: MemberId,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<StatementLine>, Option<Uuid>)> {
        let size = page_size(limit);
        let mut lines: Vec<StatementLine> = with_db!(self, read, |pool| {
            sqlx::query_as(&format!(
                "SELECT transfer_id, CAST(0 AS INTEGER) AS seq, kind, event_key, asset, amount, reason, created_at \
                 FROM {} WHERE program_id = $1 AND member_id = $2{} AND ($3 IS NULL OR transfer_id > $3) \
                 ORDER BY transfer_id LIMIT $4",
                self.by_member_table("transfers"),
                self.by_member_key("member_id", "$2")
            ))
            .bind(program.0)
            .bind(member.0)
            .bind(after)
            .bind(rows_to_read(size))
            .fetch_all(pool)
            .await?
        });
        let next = cut(&mut lines, size, |l| l.transfer_id);
        Ok((lines, next))
    }

    /// The program's totals in one asset.
    pub async fn ledger_totals(&self, program: ProgramId, asset: Asset) -> Result<LedgerTotals> {
        let rows: Vec<(String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT CASE WHEN member_id IS NULL THEN account ELSE 'members' END, CAST(SUM(posted) AS BIGINT) \
                 FROM balances WHERE program_id = $1 AND asset = $2 \
                 GROUP BY CASE WHEN member_id IS NULL THEN account ELSE 'members' END",
            )
            .bind(program.0)
            .bind(asset.as_str())
            .fetch_all(pool)
            .await?
        });
        let mut t = LedgerTotals::default();
        for (account, sum) in rows {
            if account == "members" {
                t.outstanding = sum;
                continue;
            }
            match AccountKey::parse("account", &account).map(|k| k.owner) {
                Ok(Owner::Program(ProgramAccount::Issued)) => t.issued = -sum,
                Ok(Owner::Program(ProgramAccount::Redeemed)) => t.redeemed = sum,
                Ok(Owner::Program(ProgramAccount::Expired)) => t.expired = sum,
                Ok(Owner::Program(ProgramAccount::Reversed)) => t.reversed = sum,
                _ => {}
            }
        }
        Ok(t)
    }

    /// Checks the ledger's invariants for a program: every balance equals
    /// the sum of its postings. (Every transfer sums to zero by
    /// construction: it is one row whose program leg is minus its member
    /// leg.) Returns the violations found (empty when consistent).
    pub async fn verify_ledger(&self, program: ProgramId) -> Result<Vec<String>> {
        // Sums per account in one pass over the transfers per side (no
        // per-balance join), compared with the balances here.
        let members: Vec<(Uuid, String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT member_id, asset, CAST(SUM(amount) AS BIGINT) FROM transfers WHERE program_id = $1 \
                 GROUP BY member_id, asset",
            )
            .bind(program.0)
            .fetch_all(pool)
            .await?
        });
        let programs: Vec<(String, String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT program_account, asset, CAST(-SUM(amount) AS BIGINT) FROM transfers WHERE program_id = $1 \
                 GROUP BY program_account, asset",
            )
            .bind(program.0)
            .fetch_all(pool)
            .await?
        });
        let balances: Vec<(String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as("SELECT account, posted FROM balances WHERE program_id = $1")
                .bind(program.0)
                .fetch_all(pool)
                .await?
        });
        let asset = |raw: &str| {
            Asset::parse("asset", raw).map_err(|e| StoreError::Corrupt(format!("transfer: {e}")))
        };
        let mut sums = std::collections::HashMap::new();
        for (member, a, sum) in members {
            sums.insert(AccountKey::member(MemberId(member), asset(&a)?).code(), sum);
        }
        for (account, a, sum) in programs {
            let account = ProgramAccount::parse("program_account", &account)
                .map_err(|e| StoreError::Corrupt(format!("transfer: {e}")))?;
            sums.insert(AccountKey::program(account, asset(&a)?).code(), sum);
        }
        let mut drift: Vec<(String, i64, i64)> = balances
            .into_iter()
            .filter_map(|(account, posted)| {
                let sum = sums.remove(&account).unwrap_or(0);
                (sum != posted).then_some((account, posted, sum))
            })
            .collect();
        drift.extend(
            sums.into_iter()
                .filter(|(_, s)| *s != 0)
                .map(|(a, s)| (a, 0, s)),
        );
        drift.sort();
        Ok(drift
            .into_iter()
            .map(|(a, b, s)| format!("balance {a} is {b} but its postings sum to {s}"))
            .collect())
    }
}

/// Whether booked events are told to webhooks and members (the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    Yes,
    /// Balances carried over from the store's old system: not news to anyone.
    No,
}

/// Books `events` in the caller's open transaction, with the messages they
/// cause. `None`: planned without looking keys up (`wanted.check_keys`
/// off), an event's key turned out booked already; the caller rolls back
/// and books again with keys checked.
pub(crate) async fn book_in<C: LedgerIo + Enqueue>(
    conn: &mut C,
    ctx: &LedgerContext,
    events: &[EventIn],
    wanted: &Wanted,
    announce: Announce,
) -> Result<Option<Vec<ItemResult>>> {
    let t0 = std::time::Instant::now();
    let mut loaded = conn.load_batch(ctx.program, wanted).await?;
    let mailable = std::mem::take(&mut loaded.mailable);
    let t1 = std::time::Instant::now();
    let Some(mut results) = conn.book(ctx, events, loaded).await? else {
        return Ok(None);
    };
    let t2 = std::time::Instant::now();
    // Unchecked, a replay may look like a bad event (a refund booked
    // already exceeds what is left of its order): the refused items' keys
    // alone are looked up now. The accepted items were new (their inserts
    // did not conflict), so the refusals of new keys stand.
    let refused: Vec<String> = results
        .iter()
        .zip(events)
        .filter(|(r, _)| matches!(r, ItemResult::Rejected(_)))
        .map(|(_, e)| e.key.clone())
        .collect();
    if !wanted.check_keys && !refused.is_empty() {
        let lookup = Wanted {
            keys: refused,
            check_keys: true,
            ..Wanted::default()
        };
        let seen = conn.load_batch(ctx.program, &lookup).await?;
        for (r, e) in results.iter_mut().zip(events) {
            if let (ItemResult::Rejected(_), Some(saved)) = (&r, seen.existing.get(&e.key)) {
                *r = replay_of(e, saved);
            }
        }
    }
    // In the same transaction: a rolled-back batch tells nobody, and a
    // replay (not accepted) tells nobody again.
    let messages = match announce {
        Announce::Yes => outgoing(ctx, events, &results, &mailable),
        Announce::No => Vec::new(),
    };
    if !messages.is_empty() {
        conn.enqueue(ctx.program, &messages).await?;
    }
    tracing::debug!(
        events = events.len(),
        check_keys = wanted.check_keys,
        load_ms = (t1 - t0).as_secs_f64() * 1e3,
        book_ms = (t2 - t1).as_secs_f64() * 1e3,
        rest_ms = t2.elapsed().as_secs_f64() * 1e3,
        "ledger batch"
    );
    Ok(Some(results))
}
