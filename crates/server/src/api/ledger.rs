//! Earn rules, members' balances and statements, program totals.

use super::{new_rule_version, page_limit};
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::i18n::Negotiated;
use crate::ledger_text::Reader;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::Asset;
use sarafan_core::ledger::rules::{CompiledRules, EarnRules};
use sarafan_store::ledger::{LedgerTotals, MemberBalance, PendingHold, StatementLine};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// An earn rule version: `base_rate` {points, per_minor}, `rounding`
/// (floor | half_up), `category_multipliers` / `sku_multipliers` [{key,
/// basis_points}], `min_order`, `cap_per_order`, `cap_per_day`, `promotions`
/// [{name, starts_at, ends_at, basis_points, condition}], `condition` (CEL
/// over `order` and `member`), `effective_from` (default now).
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct RulesView(serde_json::Value);

#[derive(Serialize, ToSchema)]
pub struct ExpiringView {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub points: i64,
}

/// A member's points and cashback.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    pub points: AssetBalanceView,
    /// Store credit, in minor units of the program currency.
    pub cashback: AssetBalanceView,
}

#[derive(Serialize, ToSchema)]
pub struct AssetBalanceView {
    /// The sum of the member's postings.
    pub balance: i64,
    /// What the member can spend now.
    pub spendable: i64,
    /// Points a refund took back that the next earnings pay first.
    pub debt: i64,
    /// Earned, but inside their order's return window: spendable after it.
    pub pending: i64,
    /// What is pending, from which purchase or reward, until when; soonest first.
    pub pending_items: Vec<PendingView>,
    /// What expires when, soonest first.
    pub expiring: Vec<ExpiringView>,
}

/// Pending points of one purchase or held reward.
#[derive(Serialize, ToSchema)]
pub struct PendingView {
    /// The purchase's or the reward's event id.
    pub event_id: String,
    pub points: i64,
    /// When they become spendable.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub until: OffsetDateTime,
    /// What they are for, as data (`why`: released for a purchase,
    /// referral, grant, …).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// In the reader's language (`Accept-Language`, else the member's or
    /// the program's locale), money in its format.
    pub text: String,
}

impl PendingView {
    fn new(h: &PendingHold, reader: Reader) -> Self {
        Self {
            text: reader.pending(h),
            details: serde_json::to_value(&h.reason).unwrap_or_default(),
            event_id: h.event_key.clone(),
            points: h.points,
            until: h.release_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatementLineView {
    pub transfer_id: Uuid,
    /// earn, redeem, refund_reversal, expire, …
    pub kind: String,
    /// The event that caused it.
    pub event_id: Option<String>,
    /// points or cashback.
    pub asset: String,
    /// Change of the balance: credit above zero, debit below.
    pub amount: i64,
    /// Why, in English with amounts in minor units.
    pub reason: String,
    /// Why, as data: `why` (purchase, redeemed, taken_back, given_back,
    /// claw_back, expired, referral, grant, …) and its fields (order id,
    /// amounts in minor units, dates); `text` for lines written before
    /// reasons were data.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Why, in the reader's language (`Accept-Language`, else the
    /// member's or the program's locale), money in its format.
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl StatementLineView {
    pub(crate) fn new(l: StatementLine, reader: Reader) -> Self {
        let why = l.why();
        Self {
            transfer_id: l.transfer_id,
            kind: l.kind,
            event_id: l.event_key,
            asset: l.asset,
            amount: l.amount,
            reason: why.to_string(),
            details: serde_json::to_value(&why).unwrap_or_default(),
            text: reader.reason(&why),
            at: l.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatementView {
    pub items: Vec<StatementLineView>,
    /// Pass as `after` for the next page.
    pub next: Option<Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
    pub after: Option<Uuid>,
}

/// The program's points and cashback.
#[derive(Serialize, ToSchema)]
pub struct TotalsView {
    pub points: AssetTotalsView,
    pub cashback: AssetTotalsView,
}

#[derive(Serialize, ToSchema)]
pub struct AssetTotalsView {
    pub issued: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub reversed: i64,
    /// Points members hold: the program's outstanding liability.
    pub outstanding: i64,
}

/// Every version of the earn rules, oldest first.
#[utoipa::path(get, path = "/api/v1/earn-rules", tag = "ledger",
    responses((status = 200, body = Vec<RulesView>)), security(("api_key" = [])))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RulesView>>> {
    caller.require(Scope::Server)?;
    let versions = state.store.earn_rules(caller.program).await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| RulesView(serde_json::to_value(v.rules).unwrap_or_default()))
            .collect(),
    ))
}

/// Adds a version of the earn rules; events are scored by the version in
/// force at their time.
#[utoipa::path(post, path = "/api/v1/earn-rules", tag = "ledger", request_body = RulesView,
    responses(
        (status = 201, body = RulesView),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn add_rules(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<RulesView>)> {
    caller.require(Scope::Admin)?;
    let rules: EarnRules = new_rule_version(body, "earn rules")?;
    let compiled = CompiledRules::compile(rules)?;
    compiled.check_budget()?;
    let rules = compiled.rules().clone();
    let saved = state.store.add_earn_rules(caller.program, &rules).await?;
    Ok((
        StatusCode::CREATED,
        Json(RulesView(serde_json::to_value(saved).unwrap_or_default())),
    ))
}

/// The member named by `raw`, and the language and money they read in:
/// the request's `Accept-Language`, else the member's locale, else the program's.
async fn member(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    neg: &Negotiated,
) -> ApiResult<(MemberId, crate::i18n::Lang, sarafan_core::program::Currency)> {
    let id = MemberId::parse("member_id", raw)?;
    let member = state
        .store
        .member(caller.program, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no member {id} in this program")))?;
    let program = state
        .store
        .program(caller.program)
        .await?
        .ok_or_else(|| ApiError::not_found("this key's program no longer exists"))?;
    let lang = neg.lang(member.locale.as_deref().unwrap_or(program.locale.as_str()));
    Ok((member.id, lang, program.currency))
}

/// A member's points: balance, what is spendable, and what expires when.
#[utoipa::path(get, path = "/api/v1/members/{member_id}/balance", tag = "ledger",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = BalanceView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    neg: Negotiated,
    Path(id): Path<String>,
) -> ApiResult<Json<BalanceView>> {
    caller.require(Scope::Server)?;
    let (id, lang, currency) = member(&state, &caller, &id, &neg).await?;
    let reader = Reader {
        lang,
        currency: &currency,
    };
    Ok(Json(balance_of(&state, caller.program, id, reader).await?))
}

/// A member's balance in every asset, pending items in `reader`'s words.
pub(crate) async fn balance_of(
    state: &AppState,
    program: ProgramId,
    id: MemberId,
    reader: Reader<'_>,
) -> ApiResult<BalanceView> {
    let store = &state.store;
    let holds = store.pending_holds(program, id).await?;
    let view = |asset: Asset, b: MemberBalance| AssetBalanceView {
        balance: b.points,
        spendable: b.spendable,
        debt: b.debt,
        pending: b.pending,
        pending_items: holds
            .iter()
            .filter(|h| h.asset == asset)
            .map(|h| PendingView::new(h, reader))
            .collect(),
        expiring: b
            .expiring
            .into_iter()
            .map(|(at, points)| ExpiringView { at, points })
            .collect(),
    };
    let points = store.member_balance(program, id, Asset::Points).await?;
    let cashback = store.member_balance(program, id, Asset::Cashback).await?;
    Ok(BalanceView {
        points: view(Asset::Points, points),
        cashback: view(Asset::Cashback, cashback),
    })
}

/// Every posting of a member, oldest first, in `reader`'s words.
pub(crate) async fn full_statement(
    state: &AppState,
    program: ProgramId,
    id: MemberId,
    reader: Reader<'_>,
) -> ApiResult<Vec<StatementLineView>> {
    let mut lines = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = state
            .store
            .statement(program, id, after, sarafan_store::MAX_PAGE)
            .await?;
        lines.extend(page.into_iter().map(|l| StatementLineView::new(l, reader)));
        if next.is_none() {
            return Ok(lines);
        }
        after = next;
    }
}

/// Every posting on a member's points, oldest first, each with its reason.
#[utoipa::path(get, path = "/api/v1/members/{member_id}/statement", tag = "ledger",
    params(("member_id" = Uuid, Path), StatementQuery),
    responses(
        (status = 200, body = StatementView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    neg: Negotiated,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> ApiResult<Json<StatementView>> {
    caller.require(Scope::Server)?;
    let limit = page_limit(q.limit.or(Some(100)))?;
    let (id, lang, currency) = member(&state, &caller, &id, &neg).await?;
    let reader = Reader {
        lang,
        currency: &currency,
    };
    let (lines, next) = state
        .store
        .statement(caller.program, id, q.after, limit)
        .await?;
    Ok(Json(StatementView {
        items: lines
            .into_iter()
            .map(|l| StatementLineView::new(l, reader))
            .collect(),
        next,
    }))
}

/// The program's points: issued, redeemed, expired, reversed, outstanding.
#[utoipa::path(get, path = "/api/v1/ledger/totals", tag = "ledger",
    responses((status = 200, body = TotalsView)), security(("api_key" = [])))]
pub async fn totals(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TotalsView>> {
    caller.require(Scope::Server)?;
    let view = |t: LedgerTotals| AssetTotalsView {
        issued: t.issued,
        redeemed: t.redeemed,
        expired: t.expired,
        reversed: t.reversed,
        outstanding: t.outstanding,
    };
    let store = &state.store;
    Ok(Json(TotalsView {
        points: view(store.ledger_totals(caller.program, Asset::Points).await?),
        cashback: view(store.ledger_totals(caller.program, Asset::Cashback).await?),
    }))
}
