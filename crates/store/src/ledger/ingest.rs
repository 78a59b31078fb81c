//! The event pipeline: a batch of purchases, refunds and custom events is
//! checked, scored and booked in one transaction, each item whole or not at
//! all. Loading and writing are set-based (a few queries per batch, not per
//! event); the booking in between is plain Rust over what was loaded.

use super::writes::{BalanceDelta, EventRow, HoldRow, LotColumns, Rows, TransferRow};
use crate::now;
use crate::outbox::Outgoing;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::{AccountKey, Asset};
use sarafan_core::ledger::lots::{self, Lot};
use sarafan_core::ledger::reason::{PurchaseReason, Reason};
use sarafan_core::ledger::redeem::{plan as redeem_plan, RedeemPolicy};
use sarafan_core::ledger::refund::{
    reversal_for_refund, settle_debt, split_reversal, ShortfallPolicy,
};
use sarafan_core::ledger::rules::{CompiledRules, Earn, EarnLine, MemberContext, Purchase};
use sarafan_core::ledger::transfer::{Reversal, Transfer};
use sarafan_core::ledger::LedgerError;
use sarafan_core::member::{ExternalId, MemberStatus};
use sarafan_core::outbox::Topic;
use sarafan_core::program::{ProgramSettings, UnknownMemberPolicy};
use sarafan_core::text::bounded;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

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
    /// Posts the pending points of purchase `order_key` once its return
    /// window has passed.
    Release {
        order_key: String,
    },
    /// Spends `points` on the order `order_key` of `order_amount` minor units.
    Redeem {
        order_key: String,
        order_amount: i64,
        asset: Asset,
        points: i64,
    },
    /// A named event (`review_written`, …) for badges and challenges.
    Custom {
        name: String,
    },
    /// Points given for something other than a purchase: a referral
    /// reward, goodwill, an opening balance. `reason` is on the posting the
    /// member sees. With `hold_until` (later than the event) the points are
    /// pending until then, and the ledger job posts them.
    Grant {
        asset: Asset,
        points: i64,
        reason: String,
        hold_until: Option<OffsetDateTime>,
    },
    /// Cancels the grant keyed `grant_key`: what is still pending is
    /// dropped; what was posted is taken back like a refund's points (the
    /// program's `refund_shortfall` policy decides what the lots cannot cover).
    VoidGrant {
        grant_key: String,
        reason: String,
    },
}

/// What an accepted event did; saved with it and returned on every replay.
impl EventIn {
    /// An event built in code rather than parsed from a client's request.
    /// `request` is what identifies it: its SHA-256 is the fingerprint, so a
    /// retry that builds the same request is a replay and another request
    /// under the same key is refused ([`ItemError::KeyReused`]).
    pub fn new(
        key: impl Into<String>,
        member: MemberRef,
        at: OffsetDateTime,
        request: serde_json::Value,
        body: EventBody,
    ) -> Self {
        let fingerprint = Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()).into();
        Self {
            key: key.into(),
            request,
            fingerprint,
            member,
            at,
            body,
        }
    }

    /// A [`EventBody::Grant`] under the client key `key`. The time `at` is not
    /// part of the fingerprint, so a retry stamped later is still a replay.
    pub fn grant(
        key: impl Into<String>,
        member: MemberRef,
        at: OffsetDateTime,
        (asset, points): (Asset, i64),
        reason: impl Into<String>,
        hold_until: Option<OffsetDateTime>,
    ) -> Self {
        let reason = reason.into();
        let mut request = member.to_json();
        request["type"] = "grant".into();
        request["asset"] = asset.as_str().into();
        request["points"] = points.into();
        request["reason"] = reason.clone().into();
        if let Some(t) = hold_until.and_then(|t| t.format(&Rfc3339).ok()) {
            request["hold_until"] = t.into();
        }
        let body = EventBody::Grant {
            asset,
            points,
            reason,
            hold_until,
        };
        Self::new(key, member, at, request, body)
    }

    /// A [`EventBody::VoidGrant`] of the grant keyed `grant_key`, under its own
    /// client key `key`.
    pub fn void_grant(
        key: impl Into<String>,
        member: MemberRef,
        at: OffsetDateTime,
        grant_key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        let (grant_key, reason) = (grant_key.into(), reason.into());
        let mut request = member.to_json();
        request["type"] = "void_grant".into();
        request["grant"] = grant_key.clone().into();
        request["reason"] = reason.clone().into();
        Self::new(
            key,
            member,
            at,
            request,
            EventBody::VoidGrant { grant_key, reason },
        )
    }
}

impl MemberRef {
    /// `{"member_id": …}` or `{"external_id": …}`, as a request names them.
    fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Id(id) => serde_json::json!({ "member_id": id.to_string() }),
            Self::External(x) => serde_json::json!({ "external_id": x.as_str() }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOutcome {
    pub key: String,
    pub kind: String,
    pub member_id: MemberId,
    /// What `points` count: points, or cashback in minor units.
    #[serde(default)]
    pub asset: Asset,
    /// Points earned by a purchase, or taken back by a refund.
    pub points: i64,
    /// Why: every point of a purchase, line by line; what a refund took
    /// back and gave back.
    pub breakdown: Vec<EarnLine>,
    /// For a redemption: minor units off the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<i64>,
    /// For a refund or a void: points it could not take now (already
    /// spent), a debt the next earnings pay first. `points` is what it took.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub owed: i64,
    pub transfers: Vec<Uuid>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// What an event row keeps of its outcome beside its own columns (key,
/// kind, member, asset and points are columns: not stored twice). Rows
/// written before this held the whole outcome; the extra fields are ignored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedOutcome {
    pub breakdown: Vec<EarnLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub owed: i64,
    #[serde(default)]
    pub transfers: Vec<Uuid>,
}

impl SavedOutcome {
    /// A grant's reason, read back from its saved outcome (its first line;
    /// a grant saved before reasons were data holds the giver's words).
    pub(crate) fn grant_reason(self) -> Reason {
        match self.breakdown.into_iter().next().map(|l| l.reason) {
            Some(Reason::Text { text }) => grant_reason_of(&text),
            Some(reason) => reason,
            None => Reason::Grant {
                text: String::new(),
            },
        }
    }
}

/// An event row's columns that complete its [`SavedOutcome`].
pub(crate) struct OutcomeColumns {
    pub kind: String,
    pub member_id: MemberId,
    pub asset: Asset,
    pub points: i64,
}

impl SavedOutcome {
    pub(crate) fn into_outcome(self, key: String, c: OutcomeColumns) -> EventOutcome {
        EventOutcome {
            key,
            kind: c.kind,
            member_id: c.member_id,
            asset: c.asset,
            points: c.points,
            breakdown: self.breakdown,
            discount: self.discount,
            owed: self.owed,
            transfers: self.transfers,
        }
    }
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
    #[error("no grant {0:?} of this member to void; send the grant's key")]
    UnknownGrant(String),
    #[error("grant {0:?} was voided already; a grant is voided once")]
    GrantVoided(String),
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
    /// Event types some enabled webhook endpoint of the program takes: the
    /// ledger's messages are built only for these (or for members who take
    /// e-mail), so a program nobody listens to pays nothing for them.
    pub webhook_topics: Vec<Topic>,
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

    /// Whether any condition reads `member.…`, so past orders must be counted.
    fn needs_order_counts(&self) -> bool {
        self.rules.iter().any(|r| {
            let rules = r.rules();
            let conditions = rules
                .condition
                .iter()
                .chain(rules.promotions.iter().filter_map(|p| p.condition.as_ref()));
            conditions.into_iter().any(|c| c.contains("member"))
        })
    }
}

/// A purchase that refunds may refer to.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub member: MemberId,
    /// What the order earned in.
    pub asset: Asset,
    pub amount: i64,
    pub points: i64,
    pub refunded: i64,
    pub reversed: i64,
    /// Points still pending in the order's hold (0: none, or settled).
    pub pending: i64,
    /// Position among the batch's event rows when the purchase is in this batch.
    pub in_batch: Option<usize>,
    /// For a grant (not a purchase): its reason. A grant's `amount` is its
    /// points, and `refunded` equals them once it is voided.
    pub grant: Option<Reason>,
}

/// Points spent on an order, which a refund of the order gives back.
#[derive(Debug, Clone)]
pub(crate) struct Redemption {
    pub key: String,
    pub member: MemberId,
    pub asset: Asset,
    pub points: i64,
    /// Minor units it took off the order.
    pub discount: i64,
    /// Points already given back.
    pub reversed: i64,
    /// Position among the batch's event rows when the redemption is in this batch.
    pub in_batch: Option<usize>,
}

/// A lot as loaded, or created by this batch.
#[derive(Debug, Clone)]
pub(crate) struct WalletLot {
    pub id: Uuid,
    pub lot: Lot,
    /// Position among the batch's transfer rows of a lot this batch creates (written whole);
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
    /// Redemptions by the order they paid for.
    pub redemptions: HashMap<String, Vec<Redemption>>,
    /// Per member and asset.
    pub wallets: HashMap<(MemberId, Asset), Wallet>,
    pub earned_on: HashMap<(MemberId, Date), i64>,
    /// Purchases booked per member, when conditions need them.
    pub orders_count: HashMap<MemberId, i64>,
    /// Loaded members who take automated e-mail (consent and an address).
    pub mailable: HashSet<MemberId>,
}

impl Loaded {
    /// Members whose lots the batch needs: who may spend points or lose
    /// them (the owners of the orders it refunds or releases too).
    pub(crate) fn spenders(&self, w: &Wanted) -> Vec<Uuid> {
        let mut spenders: Vec<Uuid> = self.orders.values().map(|o| o.member.0).collect();
        spenders.extend(w.spenders.iter().filter_map(|r| match r {
            MemberRef::Id(id) => Some(id.0),
            MemberRef::External(x) => self.by_external.get(x.as_str()).map(|(id, _)| id.0),
        }));
        spenders.sort_unstable();
        spenders.dedup();
        spenders
    }
}

/// What the loader must fetch for `events`.
#[derive(Default)]
pub(crate) struct Wanted {
    pub keys: Vec<String>,
    pub member_ids: Vec<Uuid>,
    pub externals: Vec<String>,
    pub order_keys: Vec<String>,
    /// Look the batch's keys up before booking. Off on the first try: the
    /// insert's unique index finds replays among the accepted items (and a
    /// batch with any is booked again with this on); refused items' keys
    /// are looked up after the write.
    pub check_keys: bool,
    /// Members who may spend or lose points: their lots are loaded.
    pub spenders: Vec<MemberRef>,
    pub daily_totals: bool,
    pub days: Vec<Date>,
    /// Count each member's past purchases (for `member.orders_count`).
    pub order_counts: bool,
}

impl Wanted {
    pub fn of(ctx: &LedgerContext, events: &[EventIn]) -> Self {
        let mut w = Self {
            keys: events.iter().map(|e| e.key.clone()).collect(),
            member_ids: Vec::new(),
            externals: Vec::new(),
            order_keys: Vec::new(),
            check_keys: false,
            spenders: Vec::new(),
            daily_totals: ctx.needs_daily_totals(),
            days: Vec::new(),
            order_counts: ctx.needs_order_counts(),
        };
        for e in events {
            match &e.member {
                MemberRef::Id(id) => w.member_ids.push(id.0),
                MemberRef::External(x) => w.externals.push(x.as_str().to_owned()),
            }
            match &e.body {
                EventBody::Refund { order_key, .. } => {
                    w.order_keys.push(order_key.clone());
                    w.spenders.push(e.member.clone());
                }
                EventBody::Redeem { order_key, .. } => {
                    // Its order's earlier redemptions count against the share cap.
                    w.order_keys.push(order_key.clone());
                    w.spenders.push(e.member.clone());
                }
                EventBody::Release { order_key } => w.order_keys.push(order_key.clone()),
                EventBody::VoidGrant { grant_key, .. } => {
                    w.order_keys.push(grant_key.clone());
                    w.spenders.push(e.member.clone());
                }
                EventBody::Purchase(_) | EventBody::Custom { .. } | EventBody::Grant { .. } => {}
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
    loaded: Loaded,
) -> (Vec<ItemResult>, Rows) {
    let mut planner = Planner::new(ctx, loaded, events.len());
    let rows = planner.plan(events);
    (planner.finish(), rows)
}

/// Books a batch chunk by chunk, so that one chunk's rows can be written
/// while the next is planned. State carries over between chunks; a row of
/// an earlier chunk (handed over already) that a later event changes — a
/// refunded order, a spent lot — is written as an update instead.
pub(crate) struct Planner<'a> {
    ctx: &'a LedgerContext,
    loaded: Loaded,
    now: OffsetDateTime,
    results: Vec<ItemResult>,
    /// Keys booked earlier in this batch: their result and event.
    booked: HashMap<&'a str, (usize, &'a EventIn)>,
    /// Event and transfer rows of earlier chunks.
    events_before: usize,
    transfers_before: usize,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(ctx: &'a LedgerContext, loaded: Loaded, events: usize) -> Self {
        Self {
            ctx,
            loaded,
            now: now(),
            results: Vec::with_capacity(events),
            booked: HashMap::new(),
            events_before: 0,
            transfers_before: 0,
        }
    }

    /// Books the next chunk of the batch; returns the rows it writes.
    pub(crate) fn plan(&mut self, events: &'a [EventIn]) -> Rows {
        let mut rows = Rows::new(self.ctx.program, self.now);
        rows.events_before = self.events_before;
        rows.transfers_before = self.transfers_before;
        for e in events {
            let result = if let Some(&(result, first)) = self.booked.get(e.key.as_str()) {
                match &self.results[result] {
                    ItemResult::Accepted(outcome) if first.fingerprint == e.fingerprint => {
                        ItemResult::Replayed(outcome.clone())
                    }
                    _ => ItemResult::Rejected(ItemError::KeyReused {
                        key: e.key.clone(),
                        fields: differing_fields(&first.request, &e.request),
                    }),
                }
            } else {
                match self.loaded.existing.get(&e.key) {
                    Some(saved) => replay_of(e, saved),
                    None => match book(self.ctx, e, &mut self.loaded, &mut rows) {
                        Ok(outcome) => {
                            self.booked.insert(&e.key, (self.results.len(), e));
                            ItemResult::Accepted(outcome)
                        }
                        Err(err) => ItemResult::Rejected(err),
                    },
                }
            };
            self.results.push(result);
        }
        self.events_before += rows.events.len();
        self.transfers_before += rows.transfers.len();
        rows
    }

    /// The result of every event planned, in order.
    pub(crate) fn finish(self) -> Vec<ItemResult> {
        self.results
    }
}

/// The messages a committed batch causes: `purchase.processed` for each
/// accepted purchase and `reward.earned` for each accepted grant, built from
/// what the batch booked, for the topics someone listens to (a webhook
/// endpoint, or the member's e-mail). Replays and refusals cause nothing.
pub(crate) fn outgoing(
    ctx: &LedgerContext,
    events: &[EventIn],
    results: &[ItemResult],
    mailable: &HashSet<MemberId>,
) -> Vec<Outgoing> {
    let heard = |topic: Topic, member: MemberId| {
        ctx.webhook_topics.contains(&topic) || mailable.contains(&member)
    };
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut out = Vec::new();
    for (e, r) in events.iter().zip(results) {
        let ItemResult::Accepted(o) = r else { continue };
        let member = o.member_id;
        match &e.body {
            EventBody::Purchase(p) if heard(Topic::PurchaseProcessed, member) => {
                out.push(Outgoing::new(
                    Topic::PurchaseProcessed,
                    Some(member),
                    serde_json::json!({
                        "order_id": e.key,
                        "member_id": member,
                        "occurred_at": at(e.at),
                        "amount": p.amount,
                        "currency": p.currency,
                        "asset": o.asset,
                        "points": o.points,
                        "breakdown": breakdown_json(&o.breakdown),
                    }),
                ));
            }
            EventBody::Grant {
                asset,
                points,
                reason,
                hold_until,
            } if heard(Topic::RewardEarned, member) => {
                out.push(Outgoing::new(
                    Topic::RewardEarned,
                    Some(member),
                    serde_json::json!({
                        "key": e.key,
                        "member_id": member,
                        "occurred_at": at(e.at),
                        "asset": asset,
                        "points": points,
                        "reason": grant_reason_of(reason).to_string(),
                        "pending_until": hold_until.filter(|t| *t > e.at).map(at),
                    }),
                ));
            }
            _ => {}
        }
    }
    out
}

/// A breakdown as webhooks and the API show it: each line's reason in
/// English (`reason`) and as data (`details`).
pub fn breakdown_json(lines: &[EarnLine]) -> serde_json::Value {
    lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "reason": l.reason.to_string(),
                "points": l.points,
                "details": l.reason,
            })
        })
        .collect()
}

/// A reason as the `reason` column of a transfer keeps it: tagged JSON.
pub(crate) fn stored(reason: &impl Serialize) -> String {
    // Serialising plain data into a string cannot fail.
    serde_json::to_string(reason).unwrap_or_default()
}

/// A `reason` column read back: tagged JSON, or the English sentence of a
/// row written before reasons were data.
pub fn read_reason(stored: &str) -> Reason {
    stored
        .starts_with("{\"why\"")
        .then(|| serde_json::from_str(stored).ok())
        .flatten()
        .unwrap_or_else(|| Reason::Text {
            text: stored.to_owned(),
        })
}

/// The reason of a grant whose giver wrote `text`: a referral reward's
/// own (stored by the referral module as data), else the giver's words.
pub(crate) fn grant_reason_of(text: &str) -> Reason {
    match read_reason(text) {
        r @ Reason::Referral { .. } => r,
        _ => Reason::Grant {
            text: text.to_owned(),
        },
    }
}

/// The answer to `e` when its key was booked before as `saved`
/// (fingerprint, request, outcome): the saved outcome for the same body,
/// [`ItemError::KeyReused`] naming what differs for another.
pub(crate) fn replay_of(
    e: &EventIn,
    (fingerprint, request, outcome): &(Vec<u8>, serde_json::Value, EventOutcome),
) -> ItemResult {
    if fingerprint[..] == e.fingerprint[..] {
        ItemResult::Replayed(outcome.clone())
    } else {
        ItemResult::Rejected(ItemError::KeyReused {
            key: e.key.clone(),
            fields: differing_fields(request, &e.request),
        })
    }
}

/// Top-level fields whose values differ between two requests (a null
/// field and an absent one are the same: stored requests leave nulls out).
fn differing_fields(before: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        before.as_object().unwrap_or(&empty),
        now.as_object().unwrap_or(&empty),
    );
    fn field<'a>(
        m: &'a serde_json::Map<String, serde_json::Value>,
        k: &str,
    ) -> Option<&'a serde_json::Value> {
        m.get(k).filter(|v| !v.is_null())
    }
    let mut fields: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| field(a, k) != field(b, k))
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

/// What booking one event produced, before its event row is written.
struct Booked {
    kind: String,
    asset: Asset,
    points: i64,
    breakdown: Vec<EarnLine>,
    amount: Option<i64>,
    order_key: Option<String>,
    discount: Option<i64>,
    owed: i64,
    transfers: Vec<Transfer>,
    /// Lots the credits made: `(index in transfers, lot)`.
    lots: Vec<(usize, LotColumns)>,
}

impl Booked {
    fn new(kind: &str, asset: Asset) -> Self {
        Self {
            kind: kind.to_owned(),
            asset,
            points: 0,
            breakdown: Vec::new(),
            amount: None,
            order_key: None,
            discount: None,
            owed: 0,
            transfers: Vec::new(),
            lots: Vec::new(),
        }
    }
}

/// Books one event, all or nothing: every check runs before any row is added.
fn book(
    ctx: &LedgerContext,
    e: &EventIn,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<EventOutcome, ItemError> {
    let member = resolve(ctx, &e.member, loaded, rows)?;
    let booked = match &e.body {
        EventBody::Purchase(p) => purchase(ctx, e, p, member, loaded, rows)?,
        EventBody::Refund { order_key, amount } => {
            refund(ctx, e, order_key, *amount, member, loaded, rows)?
        }
        EventBody::Redeem {
            order_key,
            order_amount,
            asset,
            points,
        } => redeem(
            ctx,
            e,
            order_key,
            *order_amount,
            (*asset, *points),
            member,
            loaded,
            rows,
        )?,
        EventBody::Release { order_key } => release(ctx, e, order_key, member, loaded, rows)?,
        EventBody::Custom { name } => Booked::new(name, Asset::Points),
        EventBody::Grant {
            asset,
            points,
            reason,
            hold_until,
        } => grant(
            ctx,
            e,
            (*asset, *points),
            reason,
            *hold_until,
            member,
            loaded,
            rows,
        )?,
        EventBody::VoidGrant { grant_key, reason } => {
            void_grant(ctx, e.at, grant_key, reason, member, loaded, rows)?
        }
    };
    let mut transfers = Vec::with_capacity(booked.transfers.len());
    for (i, t) in booked.transfers.iter().enumerate() {
        let lot = booked.lots.iter().find(|(of, _)| *of == i).map(|(_, l)| *l);
        let id = rows
            .transfer(t, &e.key, e.at, lot)
            .map_err(ItemError::Ledger)?;
        if let (Some(l), Some(row)) = (lot, rows.transfers.last()) {
            // The lot is the credited member's, in the transfer's asset.
            let wallet = loaded.wallets.entry((row.member, row.asset)).or_default();
            wallet.lots.push(WalletLot {
                id,
                lot: Lot {
                    id: wallet.lots.len() as u64,
                    remaining: l.remaining,
                    earned_at: e.at,
                    expires_at: l.expires_at,
                },
                new_row: Some(rows.transfers_before + rows.transfers.len() - 1),
            });
        }
        transfers.push(id);
    }
    let saved = SavedOutcome {
        breakdown: booked.breakdown,
        discount: booked.discount,
        owed: booked.owed,
        transfers,
    };
    let result = raw_json("outcome", &saved)?;
    let outcome = saved.into_outcome(
        e.key.clone(),
        OutcomeColumns {
            kind: booked.kind.clone(),
            member_id: member,
            asset: booked.asset,
            points: booked.points,
        },
    );
    rows.events.push(EventRow {
        key: e.key.clone(),
        kind: booked.kind,
        member,
        fingerprint: e.fingerprint,
        request: raw_json("request", &WithoutNulls(&e.request))?,
        at: e.at,
        asset: booked.asset,
        amount: booked.amount,
        points: booked.points,
        refunded: 0,
        reversed: 0,
        order_key: booked.order_key,
        result,
    });
    Ok(outcome)
}

/// A request as stored: its top-level fields that are null are left out
/// (an absent field reads as null, see [`differing_fields`]).
struct WithoutNulls<'a>(&'a serde_json::Value);

impl Serialize for WithoutNulls<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = self.0.as_object() else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `value` serialised once, as the row stores it.
fn raw_json(
    field: &str,
    value: &impl Serialize,
) -> Result<Box<serde_json::value::RawValue>, ItemError> {
    serde_json::value::to_raw_value(value).map_err(|e| {
        ItemError::Ledger(LedgerError::Invalid(sarafan_core::FieldError::new(
            field,
            e.to_string(),
        )))
    })
}

fn ledger<T>(r: Result<T, LedgerError>) -> Result<T, ItemError> {
    r.map_err(ItemError::Ledger)
}

/// Points arriving to a member (earned, or given back) by `transfer`: a
/// debt left by an earlier refund is paid first, the rest becomes a lot on
/// the transfer (added to the wallet once the transfer has its id).
fn credit(
    ctx: &LedgerContext,
    e: &EventIn,
    transfer: Transfer,
    loaded: &mut Loaded,
    rows: &mut Rows,
    out: &mut Booked,
) -> Result<(), ItemError> {
    let (member, asset, points, _) = transfer.legs().ok_or_else(|| {
        ItemError::Ledger(LedgerError::Invalid(sarafan_core::FieldError::new(
            "transfer",
            "a credit must move points from a program account to a member",
        )))
    })?;
    let credited = out.transfers.len();
    out.transfers.push(transfer);
    let wallet = loaded.wallets.entry((member, asset)).or_default();
    let (to_debt, to_member) = settle_debt(wallet.debt, points);
    if to_debt > 0 && ctx.settings.refund_shortfall == ShortfallPolicy::ClawbackFromFuture {
        out.transfers.push(ledger(Transfer::reversal(
            Reversal::Refund,
            member,
            asset,
            to_debt,
            &stored(&Reason::ClawBack),
        ))?);
        out.breakdown.push(EarnLine {
            reason: Reason::ClawBack,
            points: -to_debt,
        });
    }
    wallet.debt -= to_debt;
    rows.debt(member, asset, -to_debt);
    if to_member > 0 {
        let expires_at = ctx
            .settings
            .points_expire_after_days
            .map(|d| e.at + Duration::days(i64::from(d)));
        out.lots.push((
            credited,
            LotColumns {
                remaining: to_member,
                expires_at,
            },
        ));
    }
    Ok(())
}

/// Takes `points` from the member's lots, soonest-expiring first: those of
/// the wallet, and `made`, the lots the event being booked (`at`) made so
/// far (not in the wallet until the event's transfers have their ids).
fn debit_lots(
    member: MemberId,
    asset: Asset,
    points: i64,
    (at, made): (OffsetDateTime, &mut [&mut LotColumns]),
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<(), ItemError> {
    let wallet = loaded.wallets.entry((member, asset)).or_default();
    let mut plain: Vec<Lot> = wallet.lots.iter().map(|l| l.lot.clone()).collect();
    let loaded_lots = plain.len();
    plain.extend(made.iter().enumerate().map(|(k, l)| Lot {
        id: (loaded_lots + k) as u64,
        remaining: l.remaining,
        earned_at: at,
        expires_at: l.expires_at,
    }));
    for (i, _) in ledger(lots::consume(&mut plain, points))? {
        match i.checked_sub(loaded_lots) {
            None => {
                wallet.lots[i].lot.remaining = plain[i].remaining;
                rows.touch_lot(&wallet.lots[i]);
            }
            Some(k) => made[k].remaining = plain[i].remaining,
        }
    }
    Ok(())
}

fn purchase(
    ctx: &LedgerContext,
    e: &EventIn,
    p: &Purchase,
    member: MemberId,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<Booked, ItemError> {
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
        Some(rules) => {
            let member_ctx = MemberContext {
                tier: None,
                orders_count: loaded.orders_count.get(&member).copied().unwrap_or(0),
            };
            for field in rules.over_budget(p) {
                tracing::warn!(program = %ctx.program, order = %e.key, field,
                    "a rule's condition was not run: too costly for this order");
            }
            ledger(rules.earn(p, &member_ctx, today))?
        }
        None => Earn::nothing(Reason::NoRules),
    };
    let asset = ctx.settings.earn_asset;
    let mut out = Booked::new("purchase", asset);
    out.amount = Some(p.amount);
    out.points = earn.points;
    out.breakdown = earn.breakdown;
    let mut pending = 0;
    if let (true, Some(days)) = (earn.points > 0, ctx.settings.earn_hold_days) {
        let release_at = e.at + Duration::days(i64::from(days));
        pending = earn.points;
        out.breakdown.push(EarnLine {
            reason: Reason::PendingUntil {
                until: release_at.date(),
            },
            points: 0,
        });
        rows.holds.push(HoldRow {
            event_key: e.key.clone(),
            member,
            asset,
            points: earn.points,
            remaining: earn.points,
            release_at,
            state: "pending",
        });
    } else if earn.points > 0 {
        let earned = ledger(Transfer::earn(
            member,
            asset,
            earn.points,
            &stored(&PurchaseReason::new(&e.key, &out.breakdown)),
        ))?;
        credit(ctx, e, earned, loaded, rows, &mut out)?;
    }
    *loaded.earned_on.entry((member, e.at.date())).or_default() += earn.points;
    *loaded.orders_count.entry(member).or_default() += 1;
    loaded.orders.insert(
        e.key.clone(),
        Order {
            member,
            asset,
            amount: p.amount,
            points: earn.points,
            refunded: 0,
            reversed: 0,
            pending,
            in_batch: Some(rows.next_event()),
            grant: None,
        },
    );
    Ok(out)
}

/// Takes back the refunded share of the points the order earned, and gives
/// back the same share of the points spent on it (booked first: the lots
/// they make pay the take-back like any other, #16 item 12).
fn refund(
    ctx: &LedgerContext,
    e: &EventIn,
    order_key: &str,
    amount: i64,
    member: MemberId,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<Booked, ItemError> {
    let order = loaded
        .orders
        .get(order_key)
        .filter(|o| o.member == member && o.grant.is_none())
        .cloned()
        .ok_or_else(|| ItemError::UnknownOrder(order_key.to_owned()))?;
    let reversed = ledger(reversal_for_refund(
        order.points,
        order.amount,
        order.refunded,
        amount,
    ))?;
    let mut give_back = Vec::new();
    for (i, r) in loaded
        .redemptions
        .get(order_key)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let back = ledger(reversal_for_refund(
            r.points,
            order.amount,
            order.refunded,
            amount,
        ))?;
        if back > 0 && r.member == member {
            give_back.push((i, r.asset, back));
        }
    }
    // Checks are done: from here on the event is booked.
    let asset = order.asset;
    let mut out = Booked::new("refund", asset);
    out.amount = Some(amount);
    out.order_key = Some(order_key.to_owned());
    for (i, spent_in, back) in give_back {
        let reason = Reason::GivenBack {
            order: order_key.to_owned(),
        };
        let given = ledger(Transfer::reversal(
            Reversal::Redeem,
            member,
            spent_in,
            back,
            &stored(&reason),
        ))?;
        out.breakdown.push(EarnLine {
            reason,
            points: back,
        });
        credit(ctx, e, given, loaded, rows, &mut out)?;
        if let Some(r) = loaded
            .redemptions
            .get_mut(order_key)
            .and_then(|rs| rs.get_mut(i))
        {
            r.reversed += back;
            rows.touch_redemption(r);
        }
    }
    // Points still pending are cancelled; only posted ones are taken back.
    let from_hold = reversed.min(order.pending);
    let posted = reversed - from_hold;
    if from_hold > 0 {
        out.breakdown.push(EarnLine {
            reason: Reason::PendingCancelled {
                order: order_key.to_owned(),
            },
            points: -from_hold,
        });
    }
    let reason = Reason::TakenBack {
        order: order_key.to_owned(),
        refund: amount,
    };
    let taken = take_back(
        ctx,
        e.at,
        (Reversal::Refund, reason),
        member,
        (asset, posted),
        loaded,
        rows,
        &mut out,
    )?;
    out.points = from_hold + taken;
    out.owed = posted - taken;
    if let Some(o) = loaded.orders.get_mut(order_key) {
        o.refunded += amount;
        o.reversed += reversed;
        o.pending -= from_hold;
        rows.touch_order(order_key, o);
        if from_hold > 0 {
            rows.touch_hold(order_key, o, "voided");
        }
    }
    Ok(out)
}

/// Takes `points` already posted back from a member: what their lots hold,
/// and the rest under the program's shortfall policy — now, leaving the
/// balance negative, or as a debt later credits pay first. Returns the
/// points posted now.
///
/// The lots are all of them: the loaded ones and those this event (booked
/// `at`) made before the take-back — the points a refund gave back — so a
/// member is never left holding points and owing a debt at once (#16 item
/// 12: a refund of an order paid with the points it earned nets them).
#[allow(clippy::too_many_arguments)]
fn take_back(
    ctx: &LedgerContext,
    at: OffsetDateTime,
    (of, reason): (Reversal, Reason),
    member: MemberId,
    (asset, points): (Asset, i64),
    loaded: &mut Loaded,
    rows: &mut Rows,
    out: &mut Booked,
) -> Result<i64, ItemError> {
    let mine = |t: &Transfer| {
        t.legs()
            .is_some_and(|(m, a, _, _)| m == member && a == asset)
    };
    let made: i64 = out
        .lots
        .iter()
        .filter(|(t, _)| mine(&out.transfers[*t]))
        .map(|(_, l)| l.remaining)
        .sum();
    let spendable = loaded
        .wallets
        .get(&(member, asset))
        .map_or(0, Wallet::spendable)
        + made;
    let (taken_now, _) = split_reversal(ctx.settings.refund_shortfall, spendable, points);
    let from_lots = points.min(spendable);
    if taken_now > 0 {
        out.transfers.push(ledger(Transfer::reversal(
            of,
            member,
            asset,
            taken_now,
            &stored(&reason),
        ))?);
        // The answer's breakdown says what this posting took.
        out.breakdown.push(EarnLine {
            reason,
            points: -taken_now,
        });
    }
    if from_lots > 0 {
        let mut made: Vec<&mut LotColumns> = out
            .lots
            .iter_mut()
            .filter(|(t, _)| mine(&out.transfers[*t]))
            .map(|(_, l)| l)
            .collect();
        debit_lots(member, asset, from_lots, (at, &mut made), loaded, rows)?;
    }
    let wallet = loaded.wallets.entry((member, asset)).or_default();
    wallet.debt += points - from_lots;
    rows.debt(member, asset, points - from_lots);
    Ok(taken_now)
}

/// Checks a grant's or void's reason: the member reads it on the posting.
fn grant_reason(reason: &str) -> Result<String, ItemError> {
    bounded("reason", reason, 1, 200).map_err(|e| ItemError::Ledger(LedgerError::Invalid(e)))
}

/// Books a grant: posted now, or pending until `hold_until`.
#[allow(clippy::too_many_arguments)]
fn grant(
    ctx: &LedgerContext,
    e: &EventIn,
    (asset, points): (Asset, i64),
    reason: &str,
    hold_until: Option<OffsetDateTime>,
    member: MemberId,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<Booked, ItemError> {
    if points <= 0 {
        return Err(ItemError::Ledger(LedgerError::Invalid(
            sarafan_core::FieldError::new("points", format!("must be above 0 (got {points})")),
        )));
    }
    let reason = grant_reason_of(&grant_reason(reason)?);
    let mut out = Booked::new("grant", asset);
    out.amount = Some(points);
    out.points = points;
    out.breakdown.push(EarnLine {
        reason: reason.clone(),
        points,
    });
    let mut pending = 0;
    match hold_until.filter(|t| *t > e.at) {
        Some(release_at) => {
            pending = points;
            out.breakdown.push(EarnLine {
                reason: Reason::PendingUntil {
                    until: release_at.date(),
                },
                points: 0,
            });
            rows.holds.push(HoldRow {
                event_key: e.key.clone(),
                member,
                asset,
                points,
                remaining: points,
                release_at,
                state: "pending",
            });
        }
        None => {
            let granted = ledger(Transfer::grant(member, asset, points, &stored(&reason)))?;
            credit(ctx, e, granted, loaded, rows, &mut out)?;
        }
    }
    loaded.orders.insert(
        e.key.clone(),
        Order {
            member,
            asset,
            amount: points,
            points,
            refunded: 0,
            reversed: 0,
            pending,
            in_batch: Some(rows.next_event()),
            grant: Some(reason),
        },
    );
    Ok(out)
}

/// Voids a grant: its pending points are dropped, its posted points taken
/// back (see [`take_back`]).
fn void_grant(
    ctx: &LedgerContext,
    at: OffsetDateTime,
    grant_key: &str,
    reason: &str,
    member: MemberId,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<Booked, ItemError> {
    let order = loaded
        .orders
        .get(grant_key)
        .filter(|o| o.member == member && o.grant.is_some())
        .cloned()
        .ok_or_else(|| ItemError::UnknownGrant(grant_key.to_owned()))?;
    if order.refunded > 0 {
        return Err(ItemError::GrantVoided(grant_key.to_owned()));
    }
    let text = grant_reason(reason)?;
    let asset = order.asset;
    let mut out = Booked::new("grant_void", asset);
    out.order_key = Some(grant_key.to_owned());
    let (from_hold, posted) = (order.pending, order.points - order.pending);
    if from_hold > 0 {
        out.breakdown.push(EarnLine {
            reason: Reason::GrantPendingCancelled {
                grant: grant_key.to_owned(),
                text: text.clone(),
            },
            points: -from_hold,
        });
    }
    let mut taken = 0;
    if posted > 0 {
        let reason = Reason::GrantTakenBack {
            grant: grant_key.to_owned(),
            text,
        };
        taken = take_back(
            ctx,
            at,
            (Reversal::Grant, reason),
            member,
            (asset, posted),
            loaded,
            rows,
            &mut out,
        )?;
    }
    out.points = from_hold + taken;
    out.owed = posted - taken;
    if let Some(o) = loaded.orders.get_mut(grant_key) {
        o.refunded = o.amount;
        o.reversed = posted;
        o.pending = 0;
        rows.touch_order(grant_key, o);
        if from_hold > 0 {
            rows.touch_hold(grant_key, o, "voided");
        }
    }
    Ok(out)
}

/// Posts what is still pending of a purchase whose return window passed.
fn release(
    ctx: &LedgerContext,
    e: &EventIn,
    order_key: &str,
    member: MemberId,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<Booked, ItemError> {
    let (pending, asset, grant) = loaded
        .orders
        .get(order_key)
        .filter(|o| o.member == member)
        .map(|o| (o.pending, o.asset, o.grant.clone()))
        .ok_or_else(|| ItemError::UnknownOrder(order_key.to_owned()))?;
    let mut out = Booked::new("release", asset);
    out.order_key = Some(order_key.to_owned());
    out.points = pending;
    if pending > 0 {
        let (transfer, reason) = match grant {
            Some(reason) => (
                Transfer::grant(member, asset, pending, &stored(&reason)),
                reason,
            ),
            None => {
                let reason = Reason::Released {
                    order: order_key.to_owned(),
                };
                (
                    Transfer::earn(member, asset, pending, &stored(&reason)),
                    reason,
                )
            }
        };
        out.breakdown.push(EarnLine {
            reason,
            points: pending,
        });
        credit(ctx, e, ledger(transfer)?, loaded, rows, &mut out)?;
    }
    if let Some(o) = loaded.orders.get_mut(order_key) {
        o.pending = 0;
        rows.touch_hold(order_key, o, "posted");
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn redeem(
    ctx: &LedgerContext,
    e: &EventIn,
    order_key: &str,
    order_amount: i64,
    (asset, points): (Asset, i64),
    member: MemberId,
    loaded: &mut Loaded,
    rows: &mut Rows,
) -> Result<Booked, ItemError> {
    let spendable = loaded
        .wallets
        .get(&(member, asset))
        .map_or(0, Wallet::spendable);
    // Cashback is money: one unit pays one minor unit of the order.
    let policy = match asset {
        Asset::Points => ctx.settings.redeem,
        Asset::Cashback => RedeemPolicy {
            point_value_minor: 1,
            min_points: 1,
            ..ctx.settings.redeem
        },
    };
    // What earlier redemptions of the order still take off it (the share
    // given back by refunds no longer counts).
    let spent = loaded
        .redemptions
        .get(order_key)
        .into_iter()
        .flatten()
        .filter(|r| r.points > 0)
        .map(|r| i128::from(r.discount) * i128::from(r.points - r.reversed) / i128::from(r.points))
        .sum::<i128>();
    let spent = i64::try_from(spent).map_err(|_| ItemError::Ledger(LedgerError::Overflow))?;
    let plan = ledger(redeem_plan(&policy, spendable, order_amount, spent, points))?;
    let mut out = Booked::new("redemption", asset);
    out.amount = Some(order_amount);
    out.order_key = Some(order_key.to_owned());
    out.points = plan.points;
    out.discount = Some(plan.discount_minor);
    let reason = Reason::Redeemed {
        order: order_key.to_owned(),
        discount: plan.discount_minor,
    };
    out.transfers.push(ledger(Transfer::redeem(
        member,
        asset,
        plan.points,
        &stored(&reason),
    ))?);
    out.breakdown.push(EarnLine {
        reason,
        points: -plan.points,
    });
    debit_lots(member, asset, plan.points, (e.at, &mut []), loaded, rows)?;
    loaded
        .redemptions
        .entry(order_key.to_owned())
        .or_default()
        .push(Redemption {
            key: e.key.clone(),
            member,
            asset,
            points: plan.points,
            discount: plan.discount_minor,
            reversed: 0,
            in_batch: Some(rows.next_event()),
        });
    Ok(out)
}

impl Rows {
    /// Adds a transfer's row and balance changes; returns its id. Every
    /// transfer is two-legged (see [`Transfer::legs`]); another shape is
    /// refused rather than stored half.
    pub(crate) fn transfer(
        &mut self,
        t: &Transfer,
        event_key: &str,
        at: OffsetDateTime,
        lot: Option<LotColumns>,
    ) -> Result<Uuid, LedgerError> {
        let (member, asset, amount, program_account) = t.legs().ok_or_else(|| {
            LedgerError::Invalid(sarafan_core::FieldError::new(
                "transfer",
                "must move one amount between a member and a program account",
            ))
        })?;
        let id = Uuid::now_v7();
        self.transfers.push(TransferRow {
            id,
            kind: t.kind,
            event_key: event_key.to_owned(),
            member,
            asset,
            amount,
            program_account,
            reason: t.postings[0].reason.clone(),
            at,
            lot,
        });
        self.balance(&AccountKey::member(member, asset), Some(member))
            .posted += amount;
        self.balance(&AccountKey::program(program_account, asset), None)
            .posted -= amount;
        Ok(id)
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

    fn debt(&mut self, member: MemberId, asset: Asset, delta: i64) {
        if delta != 0 {
            self.balance(&AccountKey::member(member, asset), Some(member))
                .debt += delta;
        }
    }

    /// Where the next event row will be, counted over the whole batch.
    fn next_event(&self) -> usize {
        self.events_before + self.events.len()
    }

    /// The event row at batch position `at`, if it is in this chunk.
    fn event_row(&mut self, at: Option<usize>) -> Option<&mut EventRow> {
        self.events.get_mut(at?.checked_sub(self.events_before)?)
    }

    fn touch_lot(&mut self, l: &WalletLot) {
        match l
            .new_row
            .and_then(|row| {
                self.transfers
                    .get_mut(row.checked_sub(self.transfers_before)?)
            })
            .and_then(|row| row.lot.as_mut())
        {
            Some(lot) => lot.remaining = l.lot.remaining,
            None => {
                self.lot_updates.insert(l.id, l.lot.remaining);
            }
        }
    }

    fn touch_redemption(&mut self, r: &Redemption) {
        match self.event_row(r.in_batch) {
            Some(row) => row.reversed = r.reversed,
            None => {
                let refunded = self.order_updates.get(&r.key).map_or(0, |u| u.0);
                self.order_updates
                    .insert(r.key.clone(), (refunded, r.reversed));
            }
        }
    }

    /// Records a hold's new remaining points; once none remain it takes
    /// `settled` (posted or voided) as its final state.
    fn touch_hold(&mut self, key: &str, o: &Order, settled: &'static str) {
        let state = if o.pending > 0 { "pending" } else { settled };
        match self.holds.iter_mut().find(|h| h.event_key == key) {
            Some(h) => {
                h.remaining = o.pending;
                h.state = state;
            }
            None => {
                self.hold_updates.insert(key.to_owned(), (o.pending, state));
            }
        }
    }

    fn touch_order(&mut self, key: &str, o: &Order) {
        match self.event_row(o.in_batch) {
            Some(row) => {
                row.refunded = o.refunded;
                row.reversed = o.reversed;
            }
            None => {
                self.order_updates
                    .insert(key.to_owned(), (o.refunded, o.reversed));
            }
        }
    }
}
