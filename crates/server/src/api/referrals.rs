//! The referral engine's API: reward rule versions, attribution, the
//! referrals list and review queue, the referrer's reward choice, a
//! member's referral progress and the program's referral funnel.

use super::{new_rule_version, page_limit};
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult, Conflict, Problem};
use crate::{client_addr, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::link::{Channel, ReferralCode};
use sarafan_core::referral::rules::active_version;
use sarafan_core::referral::{ReferralRules, ReferralState, Reward};
use sarafan_core::text::bounded;
use sarafan_core::FieldError;
use sarafan_store::ledger::{EventBody, EventIn, ItemResult, LedgerContext};
use sarafan_store::referrals::{
    Attributed, ChoiceOutcome, Decision, FriendActivity, Funnel, FunnelRow, Referral,
    ReferralFilter, RewardRecord, Touch,
};
use sarafan_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A referral rule version: `qualifying` ({action: first_purchase |
/// purchase_at_least {min_amount} | purchases_within {count, days} |
/// custom_event {name}}), `tiers` [{min_order, referrer: [reward…] (several:
/// the referrer picks one), friend: reward (absent: the tier below's; null:
/// none)}], a reward being {kind: points |
/// cashback | coupon_fixed | gift_certificate | cash_payout, amount} or
/// {kind: coupon_percent, basis_points}; `levels` {shares_bp: [level 2,
/// level 3, …], cap}; `limits` {max_per_referrer, period_days,
/// budget_minor}; `attribution` {window_days, model: first_touch |
/// last_touch}; `hold_days`; `fraud` {velocity_window_minutes,
/// max_signups_per_ip, max_signups_per_device, max_signups_per_code,
/// disposable_email, burst_window_minutes, burst_floor, burst_factor};
/// `effective_from` (default now).
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ReferralRulesView(serde_json::Value);

/// How a friend met the referral. Give `code` (typed, from the link or
/// from the store's cookie) or, for an admin's manual binding, `referrer_id`.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReferralTouch {
    pub code: Option<String>,
    pub referrer_id: Option<String>,
    /// link, qr, email, telegram, whatsapp, vk, voice, in_store, … (default: link)
    pub channel: Option<String>,
    /// When the friend followed the link (RFC 3339); the attribution window
    /// counts from it. Default: now.
    pub clicked_at: Option<String>,
    /// The friend's IP address as your store saw it (forward the
    /// shopper's, not your server's): Sarafan keeps only a hash (of the /64
    /// for IPv6) for fraud checks. Wins over `ip_hash`.
    pub ip: Option<String>,
    /// Hash of the friend's IP, device and payment card, for fraud checks.
    pub ip_hash: Option<String>,
    pub device_hash: Option<String>,
    pub payment_fingerprint: Option<String>,
}

/// Binding an existing member (the friend) to a referrer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeRequest {
    pub friend_id: String,
    #[serde(flatten)]
    pub touch: ReferralTouch,
}

/// One object: the touch's fields and `friend_id`. (A derived schema is an
/// `allOf` of two closed objects, which no body can satisfy.)
impl utoipa::PartialSchema for AttributeRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{Object, Schema, Type};
        use utoipa::openapi::RefOr;
        let mut schema = ReferralTouch::schema();
        if let RefOr::T(Schema::Object(touch)) = &mut schema {
            touch.description =
                Some("Binding an existing member (the friend) to a referrer.".into());
            touch
                .properties
                .insert("friend_id".into(), Object::with_type(Type::String).into());
            touch.required.insert(0, "friend_id".into());
        }
        schema
    }
}

impl ToSchema for AttributeRequest {}

#[derive(Serialize, ToSchema)]
pub struct RewardView {
    pub id: Uuid,
    pub member_id: Uuid,
    /// 0 the friend, 1 the referrer, 2 the referrer's referrer, …
    pub level: u8,
    /// points, cashback, coupon_fixed, coupon_percent, gift_certificate,
    /// cash_payout, or `choice` while the member has not picked.
    pub kind: String,
    /// Points, minor units, or basis points for a percent coupon.
    pub amount: i64,
    /// What the member may pick from, while `status` is awaiting_choice.
    #[schema(value_type = Vec<Object>)]
    pub options: Vec<Reward>,
    /// awaiting_choice, pending (inside the refund window), earned, voided,
    /// clawed_back, withheld.
    pub status: String,
    pub reason: Option<String>,
    pub coupon_code: Option<String>,
    /// The ledger grant's key, for points and cashback.
    pub grant_id: Option<String>,
    pub cost_minor: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub hold_until: OffsetDateTime,
}

impl RewardView {
    fn new(r: RewardRecord, now: OffsetDateTime) -> Self {
        let status = match r.status.as_str() {
            "granted" if r.is_earned(now) => "earned".to_owned(),
            "granted" => "pending".to_owned(),
            other => other.to_owned(),
        };
        Self {
            id: r.id,
            member_id: r.member.0,
            level: r.level,
            kind: r.kind,
            amount: r.amount,
            options: r.options,
            status,
            reason: r.reason,
            coupon_code: r.coupon_code,
            grant_id: r.grant_key,
            cost_minor: r.cost_minor,
            hold_until: r.hold_until,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReferralView {
    pub id: Uuid,
    pub referrer_id: Uuid,
    pub friend_id: Uuid,
    pub code: Option<String>,
    pub channel: String,
    /// signed_up, qualified, rewarded, review, rejected.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub touched_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub signed_up_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub qualified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub rewarded_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub rejected_at: Option<OffsetDateTime>,
    pub reject_reason: Option<String>,
    /// self_referral:email, duplicate_identity:payment, cycle, velocity:ip,
    /// disposable_email, …
    pub fraud_reasons: Vec<String>,
    /// The friend's qualifying order.
    pub order_id: Option<String>,
    pub order_amount: Option<i64>,
    pub rules_version: Option<u32>,
    pub rewards: Vec<RewardView>,
}

impl ReferralView {
    pub fn new(r: Referral) -> Self {
        let now = sarafan_store::now();
        Self {
            id: r.id,
            referrer_id: r.referrer.0,
            friend_id: r.friend.0,
            code: r.code,
            channel: r.channel,
            status: r.status.as_str().to_owned(),
            touched_at: r.touched_at,
            signed_up_at: r.signed_up_at,
            qualified_at: r.qualified_at,
            rewarded_at: r.rewarded_at,
            rejected_at: r.rejected_at,
            reject_reason: r.reject_reason,
            fraud_reasons: r.fraud_reasons,
            order_id: r.order_key,
            order_amount: r.order_amount,
            rules_version: r.rules_version,
            rewards: r
                .rewards
                .into_iter()
                .map(|w| RewardView::new(w, now))
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReferralList {
    pub items: Vec<ReferralView>,
    pub next: Option<Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReferralQuery {
    /// signed_up, qualified, rewarded, review (the review queue), rejected.
    pub status: Option<String>,
    pub referrer_id: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why, in a few words; kept on the referral.
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceRequest {
    /// The index of the chosen option in `options`.
    pub option: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ChoiceView {
    pub referral_id: Uuid,
    /// The reward offered to the referrer: its options while not chosen,
    /// else what was chosen.
    pub reward: RewardView,
}

#[derive(Serialize, ToSchema)]
pub struct TierView {
    pub min_order: i64,
    #[schema(value_type = Vec<Object>)]
    pub referrer: Vec<Reward>,
    #[schema(value_type = Option<Object>)]
    pub friend: Option<Reward>,
}

/// A referrer's progress.
#[derive(Serialize, ToSchema)]
pub struct ProgressView {
    pub member_id: Uuid,
    /// Clicks on the member's links.
    pub clicks: u64,
    /// Friends bound to the member, whatever became of them.
    pub invites: u64,
    /// Of them, not rejected.
    pub signups: u64,
    pub in_review: u64,
    pub qualified: u64,
    /// Points and cashback still inside the refund window, by asset.
    pub pending: BTreeMap<String, i64>,
    /// Points and cashback earned for good, by asset.
    pub earned: BTreeMap<String, i64>,
    /// Rewards waiting for the member to pick one.
    pub awaiting_choice: u64,
    pub rewards: Vec<RewardView>,
    /// The tiers of the rules in force that an order can reach, lowest
    /// first: what a friend's order of each size earns (`min_order` is never
    /// below the qualifying purchase's `min_amount`).
    pub tiers: Vec<TierView>,
    /// The tier above the member's friends' best qualifying order so far.
    pub next_tier: Option<TierView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// First day, YYYY-MM-DD (UTC).
    pub from: String,
    /// Last day, inclusive.
    pub to: String,
}

/// One row of the funnel. Conversions are in basis points (10000 = 100 %).
#[derive(Serialize, ToSchema)]
pub struct FunnelView {
    pub clicks: u64,
    pub signups: u64,
    pub qualified: u64,
    /// Signups per click.
    pub click_to_signup_bp: Option<u64>,
    /// Qualified friends per signup.
    pub signup_to_qualified_bp: Option<u64>,
    /// What referred friends spent, net of refunds, in minor units.
    pub revenue: i64,
    /// What the rewards cost, in minor units (points at the point value).
    pub reward_cost: i64,
}

impl FunnelView {
    fn new(clicks: u64, r: &FunnelRow) -> Self {
        let rate = |num: u64, den: u64| (den > 0).then(|| num * 10_000 / den);
        Self {
            clicks,
            signups: r.signups,
            qualified: r.qualified,
            click_to_signup_bp: rate(r.signups, clicks),
            signup_to_qualified_bp: rate(r.qualified, r.signups),
            revenue: r.revenue,
            reward_cost: r.reward_cost,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AnalyticsView {
    pub from: String,
    pub to: String,
    pub total: FunnelView,
    pub by_channel: BTreeMap<String, FunnelView>,
    pub by_day: BTreeMap<String, FunnelView>,
}

fn referral_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::invalid(
            "referral_id",
            "must be a UUID such as 0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f",
        )
    })
}

async fn context(state: &AppState, program: ProgramId) -> ApiResult<LedgerContext> {
    state
        .store
        .ledger_context(program)
        .await?
        .ok_or_else(|| ApiError::not_found("this key's program no longer exists"))
}

/// Every referral a member is part of: the one that brought them, then the
/// friends they brought (for the member's GDPR export).
pub(crate) async fn of_member(
    state: &AppState,
    program: ProgramId,
    member: MemberId,
) -> ApiResult<Vec<ReferralView>> {
    let mut all: Vec<ReferralView> = state
        .store
        .referral_of_friend(program, member)
        .await?
        .into_iter()
        .map(ReferralView::new)
        .collect();
    let mut filter = ReferralFilter {
        status: None,
        referrer: Some(member),
        after: None,
        limit: 500,
    };
    loop {
        let (page, next) = state.store.referrals(program, &filter).await?;
        all.extend(page.into_iter().map(ReferralView::new));
        match next {
            Some(after) => filter.after = Some(after),
            None => return Ok(all),
        }
    }
}

async fn load(state: &AppState, program: ProgramId, id: Uuid) -> ApiResult<Referral> {
    state
        .store
        .referral(program, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no referral {id} in this program")))
}

fn conflict(kind: Conflict, detail: String, field: Option<&str>) -> ApiError {
    ApiError::Conflict {
        kind,
        detail,
        field: field.map(str::to_owned),
    }
}

/// Who referred, from a code or a referrer id; an unknown code, or a code
/// of another program, is not found.
pub async fn referrer_of(
    state: &AppState,
    program: ProgramId,
    field: &str,
    touch: &ReferralTouch,
) -> ApiResult<(MemberId, Option<String>)> {
    match (&touch.code, &touch.referrer_id) {
        (Some(raw), None) => {
            let code = ReferralCode::parse(raw)
                .map_err(|e| FieldError::new(format!("{field}.code"), e.reason))?;
            match state.store.resolve_referral_code(&code).await? {
                Some(owner) if owner.program == program => {
                    Ok((owner.member, Some(code.as_str().to_owned())))
                }
                _ => Err(ApiError::not_found(format!(
                    "no referral code {} in this program; check the code the friend typed or the link's ref",
                    code.as_str()
                ))),
            }
        }
        (None, Some(raw)) => {
            let id = MemberId::parse(&format!("{field}.referrer_id"), raw)?;
            match state.store.member(program, id).await? {
                Some(_) => Ok((id, None)),
                None => Err(ApiError::not_found(format!(
                    "no member {id} in this program"
                ))),
            }
        }
        _ => Err(ApiError::invalid(
            &format!("{field}.code"),
            "give exactly one of code or referrer_id",
        )),
    }
}

/// Parses a touch for `friend`, resolving its referrer.
pub async fn touch_for(
    state: &AppState,
    program: ProgramId,
    field: &str,
    friend: MemberId,
    t: &ReferralTouch,
    now: OffsetDateTime,
) -> ApiResult<Touch> {
    let f = |name: &str| format!("{field}.{name}");
    let touched_at = match &t.clicked_at {
        None => now,
        Some(s) => OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            FieldError::new(
                f("clicked_at"),
                "must be an RFC 3339 time, e.g. 2026-11-23T18:30:00Z",
            )
        })?,
    };
    if touched_at > now + time::Duration::minutes(5) {
        return Err(ApiError::invalid(&f("clicked_at"), "is in the future"));
    }
    let channel = match &t.channel {
        Some(c) => Channel::parse(c).map_err(|e| FieldError::new(f("channel"), e.reason))?,
        None => Channel::link(),
    };
    let hash = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| bounded(&f(name), s, 1, 128))
            .transpose()
    };
    let ip = match &t.ip {
        Some(raw) => Some(client_addr::ip_hash(
            program,
            raw.trim().parse().map_err(|_| {
                FieldError::new(
                    f("ip"),
                    "must be an IPv4 or IPv6 address such as 203.0.113.7",
                )
            })?,
        )),
        None => hash("ip_hash", &t.ip_hash)?,
    };
    let (payment, device) = (
        hash("payment_fingerprint", &t.payment_fingerprint)?,
        hash("device_hash", &t.device_hash)?,
    );
    let (referrer, code) = referrer_of(state, program, field, t).await?;
    Ok(Touch {
        friend,
        referrer,
        code,
        channel: channel.as_str().to_owned(),
        touched_at,
        payment,
        device,
        ip,
    })
}

/// The HTTP answer to an attribution: the referral and whether it is new,
/// or the problem.
pub fn attribution_result(field: &str, outcome: Attributed) -> ApiResult<(StatusCode, Referral)> {
    match outcome {
        Attributed::Created(r) => Ok((StatusCode::CREATED, r)),
        Attributed::Existing(r) | Attributed::Moved(r) => Ok((StatusCode::OK, r)),
        Attributed::Taken(r) => Err(conflict(
            Conflict::ReferralTaken,
            format!(
                "the friend was referred by member {} already (referral {}); a friend is bound once",
                r.referrer, r.id
            ),
            Some(&format!("{field}.code")),
        )),
        Attributed::WindowExpired { window_days } => Err(conflict(
            Conflict::ReferralWindowExpired,
            format!("the referral was made more than {window_days} days ago, outside the program's attribution window"),
            Some(&format!("{field}.clicked_at")),
        )),
        Attributed::SelfReferral => Err(conflict(
            Conflict::SelfReferral,
            "a member cannot refer themselves".into(),
            Some(&format!("{field}.code")),
        )),
        Attributed::UnknownMember(m) => Err(ApiError::not_found(format!("no member {m} in this program"))),
    }
}

/// The referral rule versions, oldest first.
#[utoipa::path(get, path = "/api/v1/referral-rules", tag = "referrals",
    responses((status = 200, body = Vec<ReferralRulesView>)),
    security(("api_key" = [])))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ReferralRulesView>>> {
    caller.require(Scope::Server)?;
    let versions = state.store.referral_rules(caller.program).await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| ReferralRulesView(serde_json::to_value(v.rules).unwrap_or_default()))
            .collect(),
    ))
}

/// Adds a referral rule version; referrals are rewarded by the version in
/// force when the friend signed up.
#[utoipa::path(post, path = "/api/v1/referral-rules", tag = "referrals", request_body = Object,
    responses(
        (status = 201, body = ReferralRulesView),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn add_rules(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<ReferralRulesView>)> {
    caller.require(Scope::Admin)?;
    let rules: ReferralRules = new_rule_version(body, "referral rules")?;
    rules.validate()?;
    let saved = state
        .store
        .add_referral_rules(caller.program, &rules)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ReferralRulesView(
            serde_json::to_value(saved).unwrap_or_default(),
        )),
    ))
}

/// Binds an existing member (the friend) to a referrer, by code or id:
/// once, first-touch unless the program says last-touch, within the window.
#[utoipa::path(post, path = "/api/v1/referrals", tag = "referrals", request_body = AttributeRequest,
    responses(
        (status = 201, description = "Bound", body = ReferralView),
        (status = 200, description = "Bound to this referrer before (or moved here, last-touch)", body = ReferralView),
        (status = 404, description = "Unknown code, code of another program, or unknown member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Referred by someone else already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad input, window expired, self-referral", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn attribute(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AttributeRequest>,
) -> ApiResult<(StatusCode, Json<ReferralView>)> {
    caller.require(Scope::Server)?;
    let friend = MemberId::parse("friend_id", &body.friend_id)?;
    if state.store.member(caller.program, friend).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no member {friend} in this program"
        )));
    }
    let now = sarafan_store::now();
    let touch = touch_for(&state, caller.program, "referral", friend, &body.touch, now).await?;
    let outcome = state.store.attribute(caller.program, &touch, now).await?;
    let (status, r) = attribution_result("referral", outcome)?;
    // The friend may have bought already (a code entered after the order).
    let ctx = context(&state, caller.program).await?;
    state
        .store
        .referral_activity(&ctx, &[FriendActivity::Acted(friend)])
        .await?;
    Ok((
        status,
        Json(ReferralView::new(load(&state, caller.program, r.id).await?)),
    ))
}

/// Referrals, oldest first; `status=review` is the review queue.
#[utoipa::path(get, path = "/api/v1/referrals", tag = "referrals", params(ReferralQuery),
    responses(
        (status = 200, body = ReferralList),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReferralQuery>,
) -> ApiResult<Json<ReferralList>> {
    caller.require(Scope::Server)?;
    let limit = page_limit(q.limit)?;
    let filter = ReferralFilter {
        status: q
            .status
            .as_deref()
            .map(|s| ReferralState::parse("status", s))
            .transpose()?,
        referrer: q
            .referrer_id
            .as_deref()
            .map(|r| MemberId::parse("referrer_id", r))
            .transpose()?,
        after: q
            .after
            .as_deref()
            .map(|a| {
                Uuid::parse_str(a).map_err(|_| {
                    ApiError::invalid("after", "must be the `next` of the previous page")
                })
            })
            .transpose()?,
        limit,
    };
    let (items, next) = state.store.referrals(caller.program, &filter).await?;
    Ok(Json(ReferralList {
        items: items.into_iter().map(ReferralView::new).collect(),
        next,
    }))
}

/// One referral with its rewards.
#[utoipa::path(get, path = "/api/v1/referrals/{referral_id}", tag = "referrals",
    params(("referral_id" = Uuid, Path)),
    responses(
        (status = 200, body = ReferralView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReferralView>> {
    caller.require(Scope::Server)?;
    Ok(Json(ReferralView::new(
        load(&state, caller.program, referral_id(&id)?).await?,
    )))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    decision: Decision,
) -> ApiResult<Json<ReferralView>> {
    caller.require(Scope::Admin)?;
    let id = referral_id(id)?;
    let ctx = context(state, caller.program).await?;
    match state.store.decide(&ctx, id, &decision).await? {
        None => Err(ApiError::not_found(format!("no referral {id} in this program"))),
        Some(Ok(r)) => Ok(Json(ReferralView::new(r))),
        Some(Err(status)) => Err(conflict(
            Conflict::ReferralState,
            format!("referral {id} is {}, not in review; only referrals in review are approved or rejected", status.as_str()),
            None,
        )),
    }
}

/// Approves a referral held for review: it is paid if the friend qualified.
#[utoipa::path(post, path = "/api/v1/referrals/{referral_id}/approve", tag = "referrals",
    params(("referral_id" = Uuid, Path)),
    responses(
        (status = 200, body = ReferralView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in review", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReferralView>> {
    decide(&state, &caller, &id, Decision::Approve).await
}

/// Rejects a referral held for review, with a reason; nothing is paid.
#[utoipa::path(post, path = "/api/v1/referrals/{referral_id}/reject", tag = "referrals",
    params(("referral_id" = Uuid, Path)), request_body = RejectRequest,
    responses(
        (status = 200, body = ReferralView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in review", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RejectRequest>,
) -> ApiResult<Json<ReferralView>> {
    let reason = bounded("reason", &body.reason, 1, 500)?;
    decide(&state, &caller, &id, Decision::Reject(reason)).await
}

fn offer(r: &Referral) -> Option<&RewardRecord> {
    r.rewards
        .iter()
        .find(|w| w.level == 1 && !w.options.is_empty())
}

/// The choice of rewards the referral offers its referrer.
#[utoipa::path(get, path = "/api/v1/referrals/{referral_id}/reward-choice", tag = "referrals",
    params(("referral_id" = Uuid, Path)),
    responses(
        (status = 200, body = ChoiceView),
        (status = 404, description = "No such referral, or it offers no choice", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_choice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ChoiceView>> {
    caller.require(Scope::Server)?;
    let r = load(&state, caller.program, referral_id(&id)?).await?;
    let offer = offer(&r).cloned().ok_or_else(|| {
        ApiError::not_found(format!("referral {} offers no choice of rewards", r.id))
    })?;
    Ok(Json(ChoiceView {
        referral_id: r.id,
        reward: RewardView::new(offer, sarafan_store::now()),
    }))
}

/// The referrer picks one of the offered rewards; it is granted at once
/// (pending through the refund window like the others). Choosing the same
/// option again changes nothing; another option is refused.
#[utoipa::path(post, path = "/api/v1/referrals/{referral_id}/reward-choice", tag = "referrals",
    params(("referral_id" = Uuid, Path)), request_body = ChoiceRequest,
    responses(
        (status = 201, description = "Chosen and granted", body = ChoiceView),
        (status = 200, description = "This option was chosen before", body = ChoiceView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another option was chosen, the reward was voided, or the referral is in review", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn choose(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChoiceRequest>,
) -> ApiResult<(StatusCode, Json<ChoiceView>)> {
    caller.require(Scope::Server)?;
    let r = load(&state, caller.program, referral_id(&id)?).await?;
    let ctx = context(&state, caller.program).await?;
    let now = sarafan_store::now();
    let view = |w: RewardRecord| ChoiceView {
        referral_id: r.id,
        reward: RewardView::new(w, now),
    };
    match state.store.choose_reward(&ctx, &r, body.option).await? {
        ChoiceOutcome::Chosen(w) => Ok((StatusCode::CREATED, Json(view(w)))),
        ChoiceOutcome::AlreadyChosen(w) => Ok((StatusCode::OK, Json(view(w)))),
        ChoiceOutcome::ChosenOtherwise(w) => Err(conflict(
            Conflict::ReferralState,
            format!(
                "a {} reward was chosen already; a choice is made once",
                w.kind
            ),
            Some("option"),
        )),
        ChoiceOutcome::Voided => Err(conflict(
            Conflict::ReferralState,
            "the reward was cancelled: the friend's order was refunded".into(),
            None,
        )),
        ChoiceOutcome::InReview => Err(conflict(
            Conflict::ReferralState,
            "the referral is in review: the reward is chosen once it is approved".into(),
            None,
        )),
        ChoiceOutcome::NoChoice => Err(ApiError::not_found(format!(
            "referral {} offers no choice of rewards",
            r.id
        ))),
        ChoiceOutcome::NoSuchOption(i) => {
            let n = offer(&r).map_or(0, |o| o.options.len());
            Err(ApiError::invalid(
                "option",
                format!("must be an index below {n} (got {i})"),
            ))
        }
    }
}

/// A member's referral progress: clicks, invites, signups, qualified
/// friends, pending and earned rewards, and the next reward tier.
#[utoipa::path(get, path = "/api/v1/members/{member_id}/referral-progress", tag = "referrals",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = ProgressView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ProgressView>> {
    caller.require(Scope::Server)?;
    let member = MemberId::parse("member_id", &id)?;
    if state.store.member(caller.program, member).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no member {member} in this program"
        )));
    }
    Ok(Json(progress_of(&state, caller.program, member).await?))
}

/// A referrer's progress, for the API and the member's portal.
pub(crate) async fn progress_of(
    state: &AppState,
    program: ProgramId,
    member: MemberId,
) -> ApiResult<ProgressView> {
    let now = sarafan_store::now();
    let p = state.store.referral_progress(program, member).await?;
    let clicks = state.store.member_click_count(program, member).await?;
    let mut pending = BTreeMap::new();
    let mut earned = BTreeMap::new();
    let mut awaiting = 0;
    for w in &p.rewards {
        match (w.status.as_str(), w.kind.as_str()) {
            ("awaiting_choice", _) => awaiting += 1,
            ("granted", kind @ ("points" | "cashback")) => {
                let into = if w.is_earned(now) {
                    &mut earned
                } else {
                    &mut pending
                };
                *into.entry(kind.to_owned()).or_insert(0) += w.amount;
            }
            _ => {}
        }
    }
    let best = state.store.best_friend_order(program, member).await?;
    let versions: Vec<ReferralRules> = state
        .store
        .referral_rules(program)
        .await?
        .into_iter()
        .map(|v| v.rules)
        .collect();
    let tier = |(min_order, t): (i64, &sarafan_core::referral::Tier)| TierView {
        min_order,
        referrer: t.referrer.clone(),
        friend: t.friend.clone(),
    };
    let rules = active_version(&versions, now);
    Ok(ProgressView {
        member_id: member.0,
        clicks,
        invites: p.invited,
        signups: p.signed_up,
        in_review: p.in_review,
        qualified: p.qualified,
        pending,
        earned,
        awaiting_choice: awaiting,
        rewards: p
            .rewards
            .into_iter()
            .map(|w| RewardView::new(w, now))
            .collect(),
        tiers: rules
            .map(|r| r.reachable_tiers().into_iter().map(tier).collect())
            .unwrap_or_default(),
        next_tier: rules
            .and_then(|r| r.next_tier(best.unwrap_or(-1).max(0)))
            .map(tier),
    })
}

fn day(field: &str, raw: &str) -> ApiResult<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw.trim(), &format)
        .map_err(|_| ApiError::invalid(field, "must be a day as YYYY-MM-DD, e.g. 2026-11-01"))
}

/// The referral funnel of a period: clicks, signups, qualified friends,
/// conversion between the steps, referral revenue and reward cost, in
/// total, by channel and by day (UTC).
#[utoipa::path(get, path = "/api/v1/analytics/referrals", tag = "referrals", params(AnalyticsQuery),
    responses(
        (status = 200, body = AnalyticsView),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn analytics(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> ApiResult<Json<AnalyticsView>> {
    caller.require(Scope::Admin)?;
    let (first, last) = (day("from", &q.from)?, day("to", &q.to)?);
    if last < first {
        return Err(ApiError::invalid("to", "must not be before from"));
    }
    if (last - first).whole_days() > 366 {
        return Err(ApiError::invalid("to", "a period is at most 366 days"));
    }
    let from = first.midnight().assume_utc();
    let to = last.next_day().unwrap_or(last).midnight().assume_utc();
    let funnel: Funnel = state
        .store
        .referral_funnel(caller.program, from, to)
        .await?;
    let clicks = state
        .store
        .clicks_by_channel_day(caller.program, first, last)
        .await?;
    let mut clicks_by_channel: BTreeMap<String, u64> = BTreeMap::new();
    let mut clicks_by_day: BTreeMap<Date, u64> = BTreeMap::new();
    for c in &clicks {
        *clicks_by_channel.entry(c.channel.clone()).or_default() += c.clicks;
        *clicks_by_day.entry(c.day).or_default() += c.clicks;
    }
    let total_clicks = clicks.iter().map(|c| c.clicks).sum();
    let mut channels: Vec<String> = funnel
        .by_channel
        .keys()
        .chain(clicks_by_channel.keys())
        .cloned()
        .collect();
    channels.sort();
    channels.dedup();
    let mut days: Vec<Date> = funnel
        .by_day
        .keys()
        .chain(clicks_by_day.keys())
        .copied()
        .collect();
    days.sort();
    days.dedup();
    let empty = FunnelRow::default();
    Ok(Json(AnalyticsView {
        from: q.from.trim().to_owned(),
        to: q.to.trim().to_owned(),
        total: FunnelView::new(total_clicks, &funnel.total),
        by_channel: channels
            .into_iter()
            .map(|c| {
                let v = FunnelView::new(
                    clicks_by_channel.get(&c).copied().unwrap_or(0),
                    funnel.by_channel.get(&c).unwrap_or(&empty),
                );
                (c, v)
            })
            .collect(),
        by_day: days
            .into_iter()
            .map(|d| {
                let v = FunnelView::new(
                    clicks_by_day.get(&d).copied().unwrap_or(0),
                    funnel.by_day.get(&d).unwrap_or(&empty),
                );
                (d.to_string(), v)
            })
            .collect(),
    }))
}

/// The referral code a purchase carries (`referral_code`), if any.
fn code_of(event: &EventIn) -> Option<&str> {
    match event.body {
        EventBody::Purchase(_) => event.request.get("referral_code")?.as_str(),
        _ => None,
    }
}

/// The referral codes a batch's events carry, each looked up once: for
/// each event, the problem its code is (unknown, or of another program;
/// such an event is refused before anything is booked), and the referrer
/// of each code that is this program's.
pub async fn resolve_codes(
    store: &Store,
    program: ProgramId,
    events: &[EventIn],
) -> ApiResult<(Vec<Option<ApiError>>, BTreeMap<String, MemberId>)> {
    let mut looked_up: BTreeMap<&str, Option<MemberId>> = BTreeMap::new();
    let mut problems = Vec::with_capacity(events.len());
    for e in events {
        let Some(raw) = code_of(e) else {
            problems.push(None);
            continue;
        };
        let referrer = match looked_up.get(raw) {
            Some(&r) => r,
            None => {
                let r = match ReferralCode::parse(raw) {
                    Ok(code) => store
                        .resolve_referral_code(&code)
                        .await?
                        .filter(|owner| owner.program == program)
                        .map(|owner| owner.member),
                    Err(_) => None,
                };
                looked_up.insert(raw, r);
                r
            }
        };
        problems.push(referrer.is_none().then(|| {
            ApiError::not_found(format!(
                "no referral code {raw} in this program; send the code the friend typed or the link's ref"
            ))
        }));
    }
    let referrers = looked_up
        .into_iter()
        .filter_map(|(raw, r)| Some((raw.to_owned(), r?)))
        .collect();
    Ok((problems, referrers))
}

/// After a batch is booked: binds friends whose purchase carried a code,
/// then moves the referrals the batch touches (qualification, rewards,
/// voids on refunds). Replays count too, so a retry after a crash between
/// booking and this step finishes the job; every step is idempotent.
pub async fn after_ingest(
    store: &Store,
    ctx: &LedgerContext,
    events: &[EventIn],
    results: &[ItemResult],
    referrers: &BTreeMap<String, MemberId>,
) -> ApiResult<()> {
    let mut activity = Vec::new();
    for (e, r) in events.iter().zip(results) {
        let (ItemResult::Accepted(o) | ItemResult::Replayed(o)) = r else {
            continue;
        };
        match &e.body {
            EventBody::Purchase(_) | EventBody::Custom { .. } => {
                let referred = code_of(e)
                    .and_then(|raw| Some((ReferralCode::parse(raw).ok()?, *referrers.get(raw)?)));
                if let Some((code, referrer)) = referred {
                    let touch = Touch {
                        friend: o.member_id,
                        referrer,
                        code: Some(code.as_str().to_owned()),
                        channel: "code".into(),
                        touched_at: e.at,
                        payment: None,
                        device: None,
                        ip: None,
                    };
                    store.attribute(ctx.program, &touch, e.at).await?;
                }
                activity.push(FriendActivity::Acted(o.member_id));
            }
            EventBody::Refund { order_key, .. } => activity.push(FriendActivity::Refunded {
                order_key: order_key.clone(),
                at: e.at,
            }),
            _ => {}
        }
    }
    if !activity.is_empty() {
        store.referral_activity(ctx, &activity).await?;
    }
    Ok(())
}
