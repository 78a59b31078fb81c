//! The event pipeline: a batch of purchases, refunds and custom events is
//! checked, scored and booked in one transaction, each item whole or not at
//! all. Loading and writing are set-based (a few queries per batch, not per
//! event); the booking in between is plain Rust over what was loaded.

use super::writes::{BalanceDelta, EventRow, LotRow, PostingRow, Rows, TransferRow};
use crate::now;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::{AccountKey, Asset, Owner};
use sarafan_core::ledger::lots::{self, Lot};
use sarafan_core::ledger::refund::{
    reversal_for_refund, settle_debt, split_reversal, ShortfallPolicy,
};
use sarafan_core::ledger::rules::{CompiledRules, Earn, EarnLine, MemberContext, Purchase};
use sarafan_core::ledger::transfer::{Reversal, Transfer};
use sarafan_core::ledger::LedgerError;
use sarafan_core::member::{ExternalId, MemberStatus};
use sarafan_core::program::{ProgramSettings, UnknownMemberPolicy};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

const ASSET: Asset = Asset::Points;

/// Who an event is about: Sarafan's member id or the store's customer id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberRef {
    Id(MemberId),
    External(ExternalId),
}

/// One parsed event with its client key and the fingerprint of its body.
#[derive(Debug, Clone)]
pub struct EventIn {
    pub key: String,
    /// The request as the client sent it (canonical JSON): kept so a reused
    /// key with another body can be answered with what differs.
    pub request: serde_json::Value,
    pub fingerprint: [u8; 32],
    pub member: MemberRef,
    pub at: OffsetDateTime,
    pub body: EventBody,
}

#[derive(Debug, Clone)]
pub enum EventBody {
    Purchase(Purchase),
    /// Refunds `amount` of the purchase whose key is `order_key`.
    Refund {
        order_key: String,
        amount: i64,
    },
    /// A named event (`review_written`, …) for badges and challenges.
    Custom {
        name: String,
    },
}

/// What an accepted event did; saved with it and returned on every replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOutcome {
    pub key: String,
    pub kind: String,
    pub member_id: MemberId,
    /// Points earned by a purchase, or taken back by a refund.
    pub points: i64,
    /// Why: every point of a purchase, line by line.
    pub breakdown: Vec<EarnLine>,
    pub transfers: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemResult {
    Accepted(EventOutcome),
    /// The key was seen before with the same body: nothing booked again.
    Replayed(EventOutcome),
    Rejected(ItemError),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemError {
    #[error("no member {0} in this program; register them first or enable auto-enrolment")]
    UnknownMember(String),
    #[error("member {0} is {1}: their events are not booked")]
    MemberInactive(MemberId, &'static str),
    #[error("key {key:?} was already used for an event with a different {}; use a new key for a new event", fields.join(", "))]
    KeyReused { key: String, fields: Vec<String> },
    #[error("no purchase {0:?} of this member to refund; send the purchase's key as order_id")]
    UnknownOrder(String),
    #[error("currency {got} does not match the program's {expected}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("{0}")]
    Ledger(LedgerError),
}

/// What a program's ledger runs on: its settings and compiled rule versions.
pub struct LedgerContext {
    pub program: ProgramId,
    pub currency: String,
    pub settings: ProgramSettings,
    /// Compiled earn rule versions, oldest effective first.
    pub rules: Vec<CompiledRules>,
}

impl LedgerContext {
    fn rules_at(&self, at: OffsetDateTime) -> Option<&CompiledRules> {
        self.rules
            .iter()
            .filter(|r| r.rules().effective_from <= at)
            .max_by_key(|r| (r.rules().effective_from, r.rules().version))
    }

    fn needs_daily_totals(&self) -> bool {
        self.rules.iter().any(|r| r.rules().cap_per_day.is_some())
    }
}

/// A purchase that refunds may refer to.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub member: MemberId,
    pub amount: i64,
    pub points: i64,
    pub refunded: i64,
    pub reversed: i64,
    /// Index into `Rows::events` when the purchase is in this batch.
    pub in_batch: Option<usize>,
}

/// A lot as loaded, or created by this batch.
#[derive(Debug, Clone)]
pub(crate) struct WalletLot {
    pub id: Uuid,
    pub lot: Lot,
    /// Row in `Rows::lots` of a lot this batch creates (written whole);
    /// `None` for a loaded lot (written as an update).
    pub new_row: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Wallet {
    pub lots: Vec<WalletLot>,
    pub debt: i64,
}

impl Wallet {
    fn spendable(&self) -> i64 {
        self.lots.iter().map(|l| l.lot.remaining).sum()
    }
}

/// Everything a batch needs from the database, loaded up front.
#[derive(Default)]
pub(crate) struct Loaded {
    /// Events already booked under the batch's keys: fingerprint, request, outcome.
    pub existing: HashMap<String, (Vec<u8>, serde_json::Value, EventOutcome)>,
    pub by_id: HashMap<MemberId, MemberStatus>,
    pub by_external: HashMap<String, (MemberId, MemberStatus)>,
    pub orders: HashMap<String, Order>,
    pub wallets: HashMap<MemberId, Wallet>,
    pub earned_on: HashMap<(MemberId, Date), i64>,
}

/// What the loader must fetch for `events`.
#[derive(Default)]
pub(crate) struct Wanted {
    pub keys: Vec<String>,
    pub member_ids: Vec<Uuid>,
    pub externals: Vec<String>,
    pub order_keys: Vec<String>,
    pub daily_totals: bool,
    pub days: Vec<Date>,
}

impl Wanted {
    pub fn of(ctx: &LedgerContext, events: &[EventIn]) -> Self {
        let mut w = Self {
            keys: events.iter().map(|e| e.key.clone()).collect(),
            member_ids: Vec::new(),
            externals: Vec::new(),
            order_keys: Vec::new(),
            daily_totals: ctx.needs_daily_totals(),
            days: Vec::new(),
        };
        for e in events {
            match &e.member {
                MemberRef::Id(id) => w.member_ids.push(id.0),
                MemberRef::External(x) => w.externals.push(x.as_str().to_owned()),
            }
            if let EventBody::Refund { order_key, .. } = &e.body {
                w.order_keys.push(order_key.clone());
            }
            w.days.push(e.at.date());
        }
        for v in [&mut w.keys, &mut w.externals, &mut w.order_keys] {
            v.sort_unstable();
            v.dedup();
        }
        w.member_ids.sort_unstable();
        w.member_ids.dedup();
        w.days.sort_unstable();
        w.days.dedup();
        w
    }
}

/// Books `events` against `loaded`; returns per-item results and the rows
/// to write. Nothing here touches the database.
pub(crate) fn plan(
    ctx: &LedgerContext,
    events: &[EventIn],
    mut loaded: Loaded,
) -> (Vec<ItemResult>, Rows) {
    let mut rows = Rows::new(ctx.program, now());
    let mut results = Vec::with_capacity(events.len());
    for e in events {
        let result = match loaded.existing.get(&e.key) {
            Some((fp, _, outcome)) if fp[..] == e.fingerprint[..] => {
                ItemResult::Replayed(outcome.clone())
            }
            Some((_, request, _)) => ItemResult::Rejected(ItemError::KeyReused {
                key: e.key.clone(),
                fields: differing_fields(request, &e.request),
            }),
            None => match book(ctx, e, &mut loaded, &mut rows) {
                Ok(outcome) => {
                    loaded.existing.insert(
                        e.key.clone(),
                        (e.fingerprint.to_vec(), e.request.clone(), outcome.clone()),
                    );
                    ItemResult::Accepted(outcome)
                }
                Err(err) => ItemResult::Rejected(err),
            },
        };
        results.push(result);
    }
    (results, rows)
}

/// Top-level fields whose values differ between two requests.
fn differing_fields(before: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        before.as_object().unwrap_or(&empty),
        now.as_object().unwrap_or(&empty),
    );
    let mut fields: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

fn resolve(
    ctx: &LedgerContext,
    r: &MemberRef,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<MemberId, ItemError> {
    let (id, status) = match r {
        MemberRef::Id(id) => (
            *id,
            *loaded
                .by_id
                .get(id)
                .ok_or_else(|| ItemError::UnknownMember(id.to_string()))?,
        ),
        MemberRef::External(x) => match loaded.by_external.get(x.as_str()) {
            Some(&found) => found,
            None if ctx.settings.unknown_member == UnknownMemberPolicy::AutoEnrol => {
                let id = MemberId::generate();
                rows.enrolled.push((id, x.as_str().to_owned()));
                loaded
                    .by_external
                    .insert(x.as_str().to_owned(), (id, MemberStatus::Active));
                (id, MemberStatus::Active)
            }
            None => {
                return Err(ItemError::UnknownMember(format!(
                    "with external_id {:?}",
                    x.as_str()
                )))
            }
        },
    };
    if status != MemberStatus::Active {
        return Err(ItemError::MemberInactive(id, status.as_str()));
    }
    Ok(id)
}

/// Books one event, all or nothing: every check runs before any row is added.
fn book(
    ctx: &LedgerContext,
    e: &EventIn,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<EventOutcome, ItemError> {
    let member = resolve(ctx, &e.member, loaded, rows)?;
    let policy = ctx.settings.refund_shortfall;
    let mut transfers = Vec::new();
    let (kind, points, breakdown, amount, order_key) = match &e.body {
        EventBody::Purchase(p) => {
            if !p.currency.eq_ignore_ascii_case(&ctx.currency) {
                return Err(ItemError::CurrencyMismatch {
                    expected: ctx.currency.clone(),
                    got: p.currency.clone(),
                });
            }
            let today = loaded
                .earned_on
                .get(&(member, e.at.date()))
                .copied()
                .unwrap_or(0);
            let earn = match ctx.rules_at(e.at) {
                Some(rules) => rules
                    .earn(p, &MemberContext::default(), today)
                    .map_err(ItemError::Ledger)?,
                None => Earn {
                    points: 0,
                    breakdown: vec![EarnLine {
                        reason: "no earn rules were in force at the time of the order".into(),
                        points: 0,
                    }],
                },
            };
            let wallet = loaded.wallets.entry(member).or_default();
            if earn.points > 0 {
                transfers.push(
                    Transfer::earn(member, ASSET, earn.points, &format!("order {}", e.key))
                        .map_err(ItemError::Ledger)?,
                );
                let (to_debt, to_member) = settle_debt(wallet.debt, earn.points);
                if to_debt > 0 && policy == ShortfallPolicy::ClawbackFromFuture {
                    let reason = "claw-back of points reversed by an earlier refund";
                    transfers.push(
                        Transfer::reversal(Reversal::Refund, member, ASSET, to_debt, reason)
                            .map_err(ItemError::Ledger)?,
                    );
                }
                wallet.debt -= to_debt;
                rows.debt(member, -to_debt);
                if to_member > 0 {
                    let expires_at = ctx
                        .settings
                        .points_expire_after_days
                        .map(|d| e.at + Duration::days(i64::from(d)));
                    let id = Uuid::now_v7();
                    rows.lots.push(LotRow {
                        id,
                        member,
                        amount: to_member,
                        remaining: to_member,
                        earned_at: e.at,
                        expires_at,
                        event_key: e.key.clone(),
                    });
                    wallet.lots.push(WalletLot {
                        id,
                        lot: Lot {
                            id: wallet.lots.len() as u64,
                            remaining: to_member,
                            earned_at: e.at,
                            expires_at,
                        },
                        new_row: Some(rows.lots.len() - 1),
                    });
                }
            }
            *loaded.earned_on.entry((member, e.at.date())).or_default() += earn.points;
            loaded.orders.insert(
                e.key.clone(),
                Order {
                    member,
                    amount: p.amount,
                    points: earn.points,
                    refunded: 0,
                    reversed: 0,
                    in_batch: Some(rows.events.len()),
                },
            );
            (
                "purchase".to_owned(),
                earn.points,
                earn.breakdown,
                Some(p.amount),
                None,
            )
        }
        EventBody::Refund { order_key, amount } => {
            let order = loaded
                .orders
                .get_mut(order_key)
                .filter(|o| o.member == member)
                .ok_or_else(|| ItemError::UnknownOrder(order_key.clone()))?;
            let reversed = reversal_for_refund(order.points, order.amount, order.refunded, *amount)
                .map_err(ItemError::Ledger)?;
            let wallet = loaded.wallets.entry(member).or_default();
            let spendable = wallet.spendable();
            let (taken_now, _) = split_reversal(policy, spendable, reversed);
            let from_lots = reversed.min(spendable);
            if taken_now > 0 {
                let reason = format!("refund of {amount} on order {order_key}");
                transfers.push(
                    Transfer::reversal(Reversal::Refund, member, ASSET, taken_now, &reason)
                        .map_err(ItemError::Ledger)?,
                );
            }
            // Checks are done: from here on the event is booked.
            if from_lots > 0 {
                let mut plain: Vec<Lot> = wallet.lots.iter().map(|l| l.lot.clone()).collect();
                let taken = lots::consume(&mut plain, from_lots).map_err(ItemError::Ledger)?;
                for (i, _) in taken {
                    wallet.lots[i].lot.remaining = plain[i].remaining;
                    rows.touch_lot(&wallet.lots[i]);
                }
            }
            wallet.debt += reversed - from_lots;
            rows.debt(member, reversed - from_lots);
            order.refunded += amount;
            order.reversed += reversed;
            rows.touch_order(order_key, order);
            (
                "refund".to_owned(),
                reversed,
                Vec::new(),
                Some(*amount),
                Some(order_key.clone()),
            )
        }
        EventBody::Custom { name } => (name.clone(), 0, Vec::new(), None, None),
    };
    let transfer_ids = transfers
        .iter()
        .map(|t| rows.transfer(t, &e.key, e.at))
        .collect();
    let outcome = EventOutcome {
        key: e.key.clone(),
        kind: kind.clone(),
        member_id: member,
        points,
        breakdown,
        transfers: transfer_ids,
    };
    rows.events.push(EventRow {
        key: e.key.clone(),
        kind,
        member,
        fingerprint: e.fingerprint,
        request: e.request.clone(),
        at: e.at,
        amount,
        points,
        refunded: 0,
        reversed: 0,
        order_key,
        result: serde_json::to_value(&outcome).unwrap_or_default(),
    });
    Ok(outcome)
}

impl Rows {
    /// Adds a transfer's rows and balance changes; returns its id.
    pub(crate) fn transfer(&mut self, t: &Transfer, event_key: &str, at: OffsetDateTime) -> Uuid {
        let id = Uuid::now_v7();
        self.transfers.push(TransferRow {
            id,
            kind: t.kind,
            event_key: event_key.to_owned(),
            at,
        });
        for (seq, p) in t.postings.iter().enumerate() {
            let member = match p.account.owner {
                Owner::Member(m) => Some(m),
                Owner::Program(_) => None,
            };
            self.postings.push(PostingRow {
                transfer: id,
                seq: seq as i32,
                account: p.account.code(),
                member,
                asset: p.account.asset,
                amount: p.amount,
                reason: p.reason.clone(),
                at,
            });
            self.balance(&p.account, member).posted += p.amount;
        }
        id
    }

    fn balance(&mut self, account: &AccountKey, member: Option<MemberId>) -> &mut BalanceDelta {
        self.balances
            .entry(account.code())
            .or_insert_with(|| BalanceDelta {
                member,
                asset: account.asset,
                posted: 0,
                debt: 0,
            })
    }

    fn debt(&mut self, member: MemberId, delta: i64) {
        if delta != 0 {
            self.balance(&AccountKey::member(member, ASSET), Some(member))
                .debt += delta;
        }
    }

    fn touch_lot(&mut self, l: &WalletLot) {
        match l.new_row {
            Some(row) => self.lots[row].remaining = l.lot.remaining,
            None => {
                self.lot_updates.insert(l.id, l.lot.remaining);
            }
        }
    }

    fn touch_order(&mut self, key: &str, o: &Order) {
        match o.in_batch {
            Some(row) => {
                self.events[row].refunded = o.refunded;
                self.events[row].reversed = o.reversed;
            }
            None => {
                self.order_updates
                    .insert(key.to_owned(), (o.refunded, o.reversed));
            }
        }
    }
}
