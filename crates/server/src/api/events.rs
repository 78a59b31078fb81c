//! Events in: purchases, refunds and custom events, one at a time or in
//! batches of thousands. Each carries the client's key (`id`: the order id
//! for a purchase); a replay returns the first result and books nothing.

use super::{from_value, referrals};
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult, Conflict, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::bounds;
use sarafan_core::ids::MemberId;
use sarafan_core::ids::ProgramId;
use sarafan_core::ledger::account::Asset;
use sarafan_core::ledger::rules::{EarnLine, Line, Purchase};
use sarafan_core::ledger::LedgerError;
use sarafan_core::link::ReferralCode;
use sarafan_core::member::ExternalId;
use sarafan_core::text::bounded;
use sarafan_core::FieldError;
use sarafan_store::ledger::{EventBody, EventIn, EventOutcome, ItemError, ItemResult, MemberRef};
use sarafan_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

/// Most events in one batch call.
pub const MAX_BATCH: usize = 5000;
/// How far ahead of the server's clock an event may be dated.
const MAX_SKEW: Duration = Duration::minutes(5);

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Purchase,
    Refund,
    Custom,
}

/// An event. `id` is the client's idempotency key: the order id for a
/// purchase, the refund's own id for a refund. Fields that do not apply to
/// the `type` are refused.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub id: String,
    /// Sarafan's member id, or
    pub member_id: Option<String>,
    /// the store's customer id.
    pub external_id: Option<String>,
    /// RFC 3339; default: now.
    pub occurred_at: Option<String>,
    /// Purchase total or refunded amount, in minor units (kopecks).
    pub amount: Option<i64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub lines: Vec<LineRequest>,
    pub store_id: Option<String>,
    /// Sales channel: web, app, store, phone …
    pub channel: Option<String>,
    /// For a refund: the `id` of the purchase refunded.
    pub order_id: Option<String>,
    /// For a custom event: its name, e.g. review_written.
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Value>,
    /// For a purchase: the referral code the customer came with (typed at
    /// checkout, or the link's `ref` kept in the store's cookie); binds them
    /// to their referrer if they are not bound yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_code: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub sku: String,
    pub category: Option<String>,
    pub quantity: u32,
    /// Minor units.
    pub unit_price: i64,
}

/// One line of a breakdown.
#[derive(Serialize, ToSchema)]
pub struct EarnLineView {
    /// In English, amounts in minor units.
    pub reason: String,
    pub points: i64,
    /// The reason as data: `why` (line, surplus, promotion, cap_per_order,
    /// taken_back, given_back, claw_back, …) and its fields.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<EarnLine> for EarnLineView {
    fn from(l: EarnLine) -> Self {
        Self {
            reason: l.reason.to_string(),
            points: l.points,
            details: serde_json::to_value(&l.reason).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Accepted,
    Replayed,
    Rejected,
}

/// What an event did.
#[derive(Serialize, ToSchema)]
pub struct EventResult {
    pub id: String,
    pub status: ItemStatus,
    #[serde(rename = "type")]
    pub kind: String,
    pub member_id: Uuid,
    /// What `points` count: `points`, or `cashback` in minor units.
    pub asset: String,
    /// Earned by a purchase; for a refund or a void, what it took back
    /// now (pending points cancelled and points posted back).
    pub points: i64,
    /// For a refund or a void: points it could not take now because they
    /// were spent already, a debt the next earnings pay first
    /// (`refund_shortfall: clawback_from_future`); 0 otherwise.
    pub owed: i64,
    /// Why, point by point: one line per posting (and per pending change).
    pub breakdown: Vec<EarnLineView>,
    /// For a redemption: minor units off the order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<i64>,
    pub transfers: Vec<Uuid>,
}

impl EventResult {
    fn new(o: EventOutcome, status: ItemStatus) -> Self {
        Self {
            id: o.key,
            status,
            kind: o.kind,
            member_id: o.member_id.0,
            asset: o.asset.as_str().to_owned(),
            points: o.points,
            owed: o.owed,
            breakdown: o.breakdown.into_iter().map(EarnLineView::from).collect(),
            discount: o.discount,
            transfers: o.transfers,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 5000 events.
    #[schema(value_type = Vec<EventRequest>)]
    pub events: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<EventResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub replayed: usize,
    pub rejected: usize,
    /// One per event, in order.
    pub items: Vec<BatchItem>,
}

fn text(field: &str, v: Option<&String>, max: usize) -> Result<Option<String>, FieldError> {
    v.map(|s| bounded(field, s, 1, max)).transpose()
}

fn refuse(field: &str, kind: &str) -> FieldError {
    FieldError::new(
        field,
        format!("does not apply to a {kind} event; leave it out"),
    )
}

/// The request as canonical JSON (sorted keys) and its SHA-256.
fn canonical(r: &impl Serialize) -> (serde_json::Value, [u8; 32]) {
    let request = serde_json::to_value(r).unwrap_or_default();
    let fingerprint = Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()).into();
    (request, fingerprint)
}

fn member_ref(member_id: Option<&str>, external_id: Option<&str>) -> Result<MemberRef, FieldError> {
    match (member_id, external_id) {
        (Some(id), None) => Ok(MemberRef::Id(MemberId::parse("member_id", id)?)),
        (None, Some(x)) => Ok(MemberRef::External(ExternalId::parse(x)?)),
        _ => Err(FieldError::new(
            "member_id",
            "give exactly one of member_id or external_id",
        )),
    }
}

/// Turns a request into a pipeline event, or names the field at fault.
pub fn parse(r: EventRequest, now: OffsetDateTime) -> Result<EventIn, FieldError> {
    let request = serde_json::to_value(&r).unwrap_or_default();
    let fingerprint: [u8; 32] =
        Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()).into();
    let key = bounded("id", &r.id, 1, 200)?;
    let member = match (&r.member_id, &r.external_id) {
        (Some(id), None) => MemberRef::Id(MemberId::parse("member_id", id)?),
        (None, Some(x)) => MemberRef::External(ExternalId::parse(x)?),
        _ => {
            return Err(FieldError::new(
                "member_id",
                "give exactly one of member_id or external_id",
            ))
        }
    };
    let at = match &r.occurred_at {
        None => now,
        Some(s) => OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            FieldError::new(
                "occurred_at",
                "must be an RFC 3339 time, e.g. 2026-11-23T18:30:00Z",
            )
        })?,
    };
    if at > now + MAX_SKEW {
        return Err(FieldError::new(
            "occurred_at",
            "is in the future; send the time the event happened",
        ));
    }
    let at = at.to_offset(time::UtcOffset::UTC);
    let kind = match r.kind {
        EventType::Purchase => "purchase",
        EventType::Refund => "refund",
        EventType::Custom => "custom",
    };
    let not_here = [
        (
            "order_id",
            r.order_id.is_some() && r.kind != EventType::Refund,
        ),
        ("name", r.name.is_some() && r.kind != EventType::Custom),
        (
            "properties",
            r.properties.is_some() && r.kind != EventType::Custom,
        ),
        (
            "currency",
            r.currency.is_some() && r.kind != EventType::Purchase,
        ),
        (
            "lines",
            !r.lines.is_empty() && r.kind != EventType::Purchase,
        ),
        (
            "store_id",
            r.store_id.is_some() && r.kind != EventType::Purchase,
        ),
        (
            "channel",
            r.channel.is_some() && r.kind != EventType::Purchase,
        ),
        ("amount", r.amount.is_some() && r.kind == EventType::Custom),
        (
            "referral_code",
            r.referral_code.is_some() && r.kind != EventType::Purchase,
        ),
    ];
    if let Some((field, _)) = not_here.iter().find(|(_, bad)| *bad) {
        return Err(refuse(field, kind));
    }
    if let Some(code) = &r.referral_code {
        ReferralCode::parse(code).map_err(|e| FieldError::new("referral_code", e.reason))?;
    }
    let amount = || -> Result<i64, FieldError> {
        match r.amount {
            Some(a) => bounds::positive_amount("amount", a),
            None => Err(FieldError::new(
                "amount",
                "is required: the amount in minor units, e.g. 150000 for 1500.00",
            )),
        }
    };
    let body = match r.kind {
        EventType::Purchase => {
            let currency = r
                .currency
                .clone()
                .ok_or_else(|| FieldError::new("currency", "is required, e.g. RUB"))?;
            if r.lines.len() > 500 {
                return Err(FieldError::new("lines", "at most 500 lines per order"));
            }
            let lines = r
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let f = |name: &str| format!("lines[{i}].{name}");
                    if !(1..=bounds::MAX_QUANTITY).contains(&l.quantity) {
                        return Err(FieldError::new(
                            f("quantity"),
                            format!("must be between 1 and {}", bounds::MAX_QUANTITY),
                        ));
                    }
                    bounds::amount(&f("unit_price"), l.unit_price)?;
                    Ok(Line {
                        sku: bounded(&f("sku"), &l.sku, 1, 100)?,
                        category: text(&f("category"), l.category.as_ref(), 100)?,
                        quantity: l.quantity,
                        unit_price: l.unit_price,
                    })
                })
                .collect::<Result<_, _>>()?;
            EventBody::Purchase(Purchase {
                amount: amount()?,
                currency: currency.trim().to_ascii_uppercase(),
                channel: text("channel", r.channel.as_ref(), 50)?,
                store_id: text("store_id", r.store_id.as_ref(), 100)?,
                lines,
                at,
            })
        }
        EventType::Refund => EventBody::Refund {
            order_key: bounded(
                "order_id",
                r.order_id.as_deref().unwrap_or_default(),
                1,
                200,
            )?,
            amount: amount()?,
        },
        EventType::Custom => {
            let name = bounded("name", r.name.as_deref().unwrap_or_default(), 1, 64)?;
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                || name == "purchase"
                || name == "refund"
            {
                return Err(FieldError::new(
                    "name",
                    "must be snake_case like review_written, and not purchase or refund",
                ));
            }
            EventBody::Custom { name }
        }
    };
    Ok(EventIn {
        key,
        request,
        fingerprint,
        member,
        at,
        body,
    })
}

/// The problem an item's rejection is.
fn item_problem(e: ItemError) -> ApiError {
    let conflict = |kind, detail: String, field: Option<&str>| ApiError::Conflict {
        kind,
        detail,
        field: field.map(str::to_owned),
    };
    let detail = e.to_string();
    match e {
        ItemError::UnknownMember(_) => ApiError::NotFound(detail),
        ItemError::UnknownOrder(_) => ApiError::Invalid(FieldError::new("order_id", detail)),
        ItemError::MemberInactive(..) => {
            conflict(Conflict::MemberInactive, detail, Some("member_id"))
        }
        ItemError::KeyReused { fields, .. } => conflict(
            Conflict::EventKeyReused,
            detail,
            fields.first().map(String::as_str),
        ),
        ItemError::UnknownGrant(_) => ApiError::Invalid(FieldError::new("void", detail)),
        ItemError::GrantVoided(_) => conflict(Conflict::GrantVoided, detail, Some("void")),
        ItemError::CurrencyMismatch { .. } => {
            ApiError::Invalid(FieldError::new("currency", detail))
        }
        ItemError::Ledger(LedgerError::RefundExceedsOrder { .. }) => {
            ApiError::Invalid(FieldError::new("amount", detail))
        }
        ItemError::Ledger(LedgerError::InsufficientBalance { .. }) => {
            conflict(Conflict::InsufficientPoints, detail, Some("points"))
        }
        ItemError::Ledger(LedgerError::AboveMaxShare { .. } | LedgerError::BelowMinimum { .. }) => {
            ApiError::Invalid(FieldError::new("points", detail))
        }
        ItemError::Ledger(LedgerError::Invalid(f)) => ApiError::Invalid(f),
        ItemError::Ledger(other) => ApiError::RuleFailed(other.to_string()),
    }
}

/// Books events of one program in one transaction: the referral codes they
/// carry are checked first (an unknown code refuses its item alone), then
/// the ledger books them and the referrals they touch move on. Each event
/// gets its own result or problem, in order.
pub async fn book_events(
    store: &Store,
    program: ProgramId,
    events: &[EventIn],
) -> ApiResult<Vec<ApiResult<ItemResult>>> {
    let ctx = store
        .ledger_context(program)
        .await?
        .ok_or_else(|| ApiError::not_found("this key's program no longer exists"))?;
    let (mut unknown, referrers) = referrals::resolve_codes(store, program, events).await?;
    // Almost always every code is known and the events go as they are.
    let kept: Vec<EventIn>;
    let valid = if unknown.iter().any(Option::is_some) {
        kept = events
            .iter()
            .zip(&unknown)
            .filter(|(_, problem)| problem.is_none())
            .map(|(e, _)| e.clone())
            .collect();
        &kept[..]
    } else {
        events
    };
    let results = store.ingest(&ctx, valid).await?;
    referrals::after_ingest(store, &ctx, valid, &results, &referrers).await?;
    let mut results = results.into_iter();
    Ok(unknown
        .iter_mut()
        .map(|problem| match problem.take() {
            Some(p) => Err(p),
            None => match results.next() {
                Some(ItemResult::Rejected(e)) => Err(item_problem(e)),
                Some(booked) => Ok(booked),
                None => Err(ApiError::Internal("ingest returned too few results".into())),
            },
        })
        .collect())
}

/// Books one event.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventRequest,
    responses(
        (status = 201, description = "Booked", body = EventResult),
        (status = 200, description = "Booked before under this id; nothing changed", body = EventResult),
        (status = 404, description = "Unknown member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Id reused with other data, or member blocked", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn single(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EventRequest>,
) -> ApiResult<(StatusCode, Json<EventResult>)> {
    caller.require(Scope::Server)?;
    book_one(&state, caller.program, parse(body, sarafan_store::now())?).await
}

/// Books one pipeline event: 201 when booked now, 200 for a replay. It
/// goes through the group commit ([`crate::booking`]), booked in one
/// transaction with the other single events that arrived meanwhile.
async fn book_one(
    state: &AppState,
    program: ProgramId,
    event: EventIn,
) -> ApiResult<(StatusCode, Json<EventResult>)> {
    match state.booker.book(program, event).await? {
        ItemResult::Accepted(o) => Ok((
            StatusCode::CREATED,
            Json(EventResult::new(o, ItemStatus::Accepted)),
        )),
        ItemResult::Replayed(o) => Ok((
            StatusCode::OK,
            Json(EventResult::new(o, ItemStatus::Replayed)),
        )),
        ItemResult::Rejected(e) => Err(item_problem(e)),
    }
}

/// Books up to 5000 events. Each item is booked whole or not at all and
/// gets its own result or problem; one bad item does not stop the others.
#[utoipa::path(post, path = "/api/v1/events:batch", tag = "events", request_body = BatchRequest,
    responses(
        (status = 200, body = BatchResponse),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchRequest>,
) -> ApiResult<Json<BatchResponse>> {
    caller.require(Scope::Server)?;
    if body.events.is_empty() || body.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "events",
            format!("send 1 to {MAX_BATCH} events per batch"),
        ));
    }
    let now = sarafan_store::now();
    let mut items: Vec<BatchItem> = Vec::with_capacity(body.events.len());
    let mut valid = Vec::new();
    for (index, raw) in body.events.into_iter().enumerate() {
        let field = format!("events[{index}]");
        match from_value::<EventRequest>(&field, raw)
            .and_then(|r| parse(r, now).map_err(|e| e.within(&field).into()))
        {
            Ok(event) => {
                valid.push(event);
                items.push(BatchItem {
                    index,
                    result: None,
                    problem: None,
                });
            }
            Err(e) => items.push(BatchItem {
                index,
                result: None,
                problem: Some(e.to_problem()),
            }),
        }
    }
    let mut results = book_events(&state.store, caller.program, &valid)
        .await?
        .into_iter();
    for item in items.iter_mut().filter(|i| i.problem.is_none()) {
        match results.next() {
            Some(Ok(ItemResult::Accepted(o))) => {
                item.result = Some(EventResult::new(o, ItemStatus::Accepted))
            }
            Some(Ok(ItemResult::Replayed(o))) => {
                item.result = Some(EventResult::new(o, ItemStatus::Replayed))
            }
            Some(Ok(ItemResult::Rejected(e))) => item.problem = Some(item_problem(e).to_problem()),
            Some(Err(e)) => item.problem = Some(e.to_problem()),
            None => {
                return Err(ApiError::Internal(
                    "booking returned too few results".into(),
                ))
            }
        }
    }
    let count = |s: &dyn Fn(&BatchItem) -> bool| items.iter().filter(|i| s(i)).count();
    Ok(Json(BatchResponse {
        accepted: count(&|i| {
            matches!(
                i.result,
                Some(EventResult {
                    status: ItemStatus::Accepted,
                    ..
                })
            )
        }),
        replayed: count(&|i| {
            matches!(
                i.result,
                Some(EventResult {
                    status: ItemStatus::Replayed,
                    ..
                })
            )
        }),
        rejected: count(&|i| i.problem.is_some()),
        items,
    }))
}

/// Spending points on an order. `id` is the client's key for this
/// redemption; a refund of `order_id` later gives the same share back.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRequest {
    pub id: String,
    pub member_id: Option<String>,
    pub external_id: Option<String>,
    /// The order the points pay for (the purchase's `id`).
    pub order_id: String,
    /// The order's total in minor units, before the discount.
    pub order_amount: i64,
    /// How many to spend: points, or minor units of cashback.
    pub points: i64,
    /// `points` (default) or `cashback`.
    pub asset: Option<String>,
}

/// Spends a member's points on an order, within the program's share limits;
/// the soonest-expiring points go first. Returns the discount to apply.
#[utoipa::path(post, path = "/api/v1/redemptions", tag = "events", request_body = RedemptionRequest,
    responses(
        (status = 201, description = "Redeemed", body = EventResult),
        (status = 200, description = "Redeemed before under this id; nothing changed", body = EventResult),
        (status = 409, description = "Not enough points, or the id was used for another redemption", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RedemptionRequest>,
) -> ApiResult<(StatusCode, Json<EventResult>)> {
    caller.require(Scope::Server)?;
    let (request, fingerprint) = canonical(&body);
    bounds::positive_amount("order_amount", body.order_amount)?;
    bounds::positive_amount("points", body.points)?;
    let event = EventIn {
        key: bounded("id", &body.id, 1, 200)?,
        request,
        fingerprint,
        member: member_ref(body.member_id.as_deref(), body.external_id.as_deref())?,
        at: sarafan_store::now(),
        body: EventBody::Redeem {
            order_key: bounded("order_id", &body.order_id, 1, 200)?,
            order_amount: body.order_amount,
            asset: body
                .asset
                .as_deref()
                .map(|a| Asset::parse("asset", a))
                .transpose()?
                .unwrap_or_default(),
            points: body.points,
        },
    };
    book_one(&state, caller.program, event).await
}

/// A manual correction: points given with a reason (goodwill, a fix), or an
/// earlier grant voided. `id` is the client's key for this adjustment.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    pub id: String,
    pub member_id: Option<String>,
    pub external_id: Option<String>,
    /// Points to give (above 0): points, or minor units of cashback. Leave
    /// out with `void`.
    pub points: Option<i64>,
    /// `points` (default) or `cashback`.
    pub asset: Option<String>,
    /// Why; the member sees it on their statement. Required.
    pub reason: String,
    /// RFC 3339: the points stay pending until then, and are posted after.
    pub hold_until: Option<String>,
    /// The `id` of an earlier grant to void instead: its pending points are
    /// dropped, its posted points taken back.
    pub void: Option<String>,
}

/// Gives a member points with a reason, or voids an earlier grant. A voided
/// grant's posted points are taken back like a refund's: what the member
/// already spent follows the program's `refund_shortfall` policy.
#[utoipa::path(post, path = "/api/v1/adjustments", tag = "ledger", request_body = AdjustmentRequest,
    responses(
        (status = 201, description = "Booked", body = EventResult),
        (status = 200, description = "Booked before under this id; nothing changed", body = EventResult),
        (status = 404, description = "Unknown member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id was used for another adjustment, the grant was voided already, or the member is blocked", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn adjust(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AdjustmentRequest>,
) -> ApiResult<(StatusCode, Json<EventResult>)> {
    caller.require(Scope::Admin)?;
    book_adjustment(&state, caller.program, &body).await
}

/// Books an adjustment for `program`: the one path of `POST
/// /api/v1/adjustments` and the console's "adjust points" form.
pub(crate) async fn book_adjustment(
    state: &AppState,
    program: ProgramId,
    body: &AdjustmentRequest,
) -> ApiResult<(StatusCode, Json<EventResult>)> {
    let (request, _) = canonical(&body);
    let key = bounded("id", &body.id, 1, 200)?;
    let member = member_ref(body.member_id.as_deref(), body.external_id.as_deref())?;
    let reason = bounded("reason", &body.reason, 1, 200)?;
    let now = sarafan_store::now();
    let event = match &body.void {
        Some(grant) => {
            let extra = [
                ("points", body.points.is_some()),
                ("asset", body.asset.is_some()),
                ("hold_until", body.hold_until.is_some()),
            ];
            if let Some((field, _)) = extra.iter().find(|(_, given)| *given) {
                return Err(ApiError::invalid(
                    field,
                    "does not apply when voiding a grant; leave it out",
                ));
            }
            let grant = bounded("void", grant, 1, 200)?;
            let body = EventBody::VoidGrant {
                grant_key: grant,
                reason,
            };
            EventIn::new(key, member, now, request, body)
        }
        None => {
            let points = match body.points {
                Some(p) => bounds::positive_amount("points", p)?,
                None => {
                    return Err(ApiError::invalid(
                        "points",
                        "is required: how many points to give, e.g. 500",
                    ))
                }
            };
            let hold_until = body
                .hold_until
                .as_deref()
                .map(|s| {
                    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                        FieldError::new(
                            "hold_until",
                            "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                        )
                    })
                })
                .transpose()?;
            let asset = body
                .asset
                .as_deref()
                .map(|a| Asset::parse("asset", a))
                .transpose()?
                .unwrap_or_default();
            let body = EventBody::Grant {
                asset,
                points,
                reason,
                hold_until,
            };
            EventIn::new(key, member, now, request, body)
        }
    };
    book_one(state, program, event).await
}
