//! Members of the caller's program. Every query is scoped by the key's
//! program, so another program's member id is simply not found.

use super::ledger::{balance_of, full_statement, BalanceView, StatementLineView};
use super::referrals::{attribution_result, touch_for, ReferralTouch, ReferralView};
use super::{page_limit, present};
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::i18n::Lang;
use crate::problem::{ApiError, ApiResult, Conflict, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::card::{card_number, parse_card_number};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::{
    self, Consent, Email, ExternalId, MemberFields, MemberStatus, NewMember, Phone,
};
use sarafan_core::program::Locale;
use sarafan_store::{ConsentChange, Member, MemberFilter, MemberPatch, PatchOutcome, Registration};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// What the member agreed to be contacted through.
#[derive(Serialize, Deserialize, ToSchema, Default, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentBody {
    pub email: bool,
    pub sms: bool,
    pub messengers: bool,
}

impl From<Consent> for ConsentBody {
    fn from(c: Consent) -> Self {
        Self {
            email: c.email,
            sms: c.sms,
            messengers: c.messengers,
        }
    }
}

#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum StatusView {
    Active,
    Blocked,
    Erased,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub status: StatusView,
    pub consent: ConsentBody,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub erased_at: Option<OffsetDateTime>,
    /// The member card's number (digits with a Luhn check digit, unique in
    /// the program), printed under the card's QR code in the portal.
    #[schema(example = "10000008")]
    pub card_number: Option<String>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            id: m.id.0,
            status: match m.status {
                MemberStatus::Active => StatusView::Active,
                MemberStatus::Blocked => StatusView::Blocked,
                MemberStatus::Erased => StatusView::Erased,
            },
            consent: m.consent.into(),
            external_id: m.external_id,
            email: m.email,
            phone: m.phone,
            name: m.name,
            locale: m.locale,
            created_at: m.created_at,
            updated_at: m.updated_at,
            erased_at: m.erased_at,
            card_number: m.card_serial.map(card_number),
        }
    }
}

/// A registration. At least one of `external_id`, `email`, `phone` is needed;
/// registering again with the same data returns the same member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterMember {
    /// The store's own customer id.
    pub external_id: Option<String>,
    pub email: Option<String>,
    /// International format, e.g. +79161234567.
    pub phone: Option<String>,
    pub name: Option<String>,
    /// e.g. ru, en, fa.
    pub locale: Option<String>,
    #[serde(default)]
    pub consent: ConsentBody,
    /// The referral the member came with: binds them to their referrer.
    pub referral: Option<ReferralTouch>,
}

/// A registered member, with what became of the referral they came with.
#[derive(Serialize, ToSchema)]
pub struct RegisteredView {
    #[serde(flatten)]
    pub member: MemberView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral: Option<RegistrationReferral>,
}

/// The referral a registration bound, or why it bound none (the member is
/// registered either way).
#[derive(Serialize, ToSchema)]
pub struct RegistrationReferral {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral: Option<ReferralView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// Changes to a member: an absent field stays, `null` clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMember {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub locale: Option<Option<String>>,
    /// Only the channels named change.
    pub consent: Option<ConsentPatch>,
    /// `active` or `blocked` (erasure is `DELETE`).
    pub status: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentPatch {
    pub email: Option<bool>,
    pub sms: Option<bool>,
    pub messengers: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemberQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `active`, `blocked` or `erased`.
    pub status: Option<String>,
    /// A member card's number (spaces allowed; the check digit is checked).
    pub card_number: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// Everything Sarafan holds on a member (GDPR art. 15 and 20).
#[derive(Serialize, ToSchema)]
pub struct MemberExport {
    pub program_id: Uuid,
    pub program_name: String,
    pub member: MemberView,
    pub balance: BalanceView,
    /// Every posting, with its reason.
    pub statement: Vec<StatementLineView>,
    /// Every event sent for the member, as sent.
    pub events: Vec<ExportedEvent>,
    /// The referral that brought the member, then the friends they brought.
    pub referrals: Vec<super::referrals::ReferralView>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub exported_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct ExportedEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
}

pub(super) fn member_id(raw: &str) -> ApiResult<MemberId> {
    Ok(MemberId::parse("member_id", raw)?)
}

pub(super) fn missing(id: MemberId) -> ApiError {
    ApiError::not_found(format!("no member {id} in this program"))
}

async fn load(state: &AppState, caller: &Caller, id: MemberId) -> ApiResult<Member> {
    state
        .store
        .member(caller.program, id)
        .await?
        .ok_or_else(|| missing(id))
}

/// Registers a member, idempotently on their identifiers.
#[utoipa::path(post, path = "/api/v1/members", tag = "members", request_body = RegisterMember,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses(
        (status = 201, description = "Registered", body = RegisteredView),
        (status = 200, description = "Registered before with the same data; nothing changed", body = RegisteredView),
        (status = 404, description = "Unknown referral code, or a code of another program", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Identifiers belong to a member with other data", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterMember>,
) -> ApiResult<(StatusCode, Json<RegisteredView>)> {
    caller.require(Scope::Server)?;
    let (status, member, referral) = register_with_referral(&state, caller.program, &body).await?;
    Ok((
        status,
        Json(RegisteredView {
            member: member.into(),
            referral,
        }),
    ))
}

/// Registers a member and binds the referral they came with: the API's
/// registration, shared with the referral landing page. A bad or unknown
/// code, bad fields or a conflict refuse it before anything is written.
pub(crate) async fn register_with_referral(
    state: &AppState,
    program: ProgramId,
    body: &RegisterMember,
) -> ApiResult<(StatusCode, Member, Option<RegistrationReferral>)> {
    let now = sarafan_store::now();
    // The friend is filled in once the member exists.
    let touch = match &body.referral {
        Some(t) => {
            Some(touch_for(state, program, "referral", MemberId(Uuid::nil()), t, now).await?)
        }
        None => None,
    };
    let new = NewMember::parse(MemberFields {
        external_id: body.external_id.as_deref(),
        email: body.email.as_deref(),
        phone: body.phone.as_deref(),
        name: body.name.as_deref(),
        locale: body.locale.as_deref(),
        consent: Consent {
            email: body.consent.email,
            sms: body.consent.sms,
            messengers: body.consent.messengers,
        },
    })?;
    let (status, member) = match state.store.register_member(program, &new).await? {
        Registration::Created(m) => (StatusCode::CREATED, m),
        Registration::Existing(m) => (StatusCode::OK, m),
        Registration::Conflict(fields) => return Err(ApiError::Conflict {
            kind: Conflict::Member,
            detail: format!(
                "a member with these identifiers exists with a different {}; registration never overwrites, \
                 change the member with PATCH /api/v1/members/{{id}}",
                fields.join(", ")
            ),
            field: fields.first().map(|f| (*f).to_owned()),
        }),
    };
    let referral = match touch {
        None => None,
        Some(mut t) => {
            t.friend = member.id;
            let outcome = state.store.attribute(program, &t, now).await?;
            Some(match attribution_result("referral", outcome) {
                Ok((_, r)) => RegistrationReferral {
                    referral: Some(ReferralView::new(r)),
                    problem: None,
                },
                Err(e) => RegistrationReferral {
                    referral: None,
                    problem: Some(e.to_problem()),
                },
            })
        }
    };
    Ok((status, member, referral))
}

/// Lists members, oldest first, with optional filters.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(MemberQuery),
    responses(
        (status = 200, body = MemberList),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MemberQuery>,
) -> ApiResult<Json<MemberList>> {
    caller.require(Scope::Server)?;
    let limit = page_limit(q.limit)?;
    let filter = MemberFilter {
        after: q
            .after
            .as_deref()
            .map(|a| MemberId::parse("after", a))
            .transpose()?,
        external_id: q
            .external_id
            .as_deref()
            .map(ExternalId::parse)
            .transpose()?
            .map(|e| e.as_str().to_owned()),
        email: q
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()?
            .map(|e| e.as_str().to_owned()),
        phone: q
            .phone
            .as_deref()
            .map(Phone::parse)
            .transpose()?
            .map(|p| p.as_str().to_owned()),
        status: q
            .status
            .as_deref()
            .map(|s| MemberStatus::parse("status", s))
            .transpose()?,
        card_serial: q
            .card_number
            .as_deref()
            .map(|c| parse_card_number("card_number", c))
            .transpose()?,
        limit,
    };
    let page = state.store.members(caller.program, &filter).await?;
    Ok(Json(MemberList {
        items: page.items.into_iter().map(MemberView::from).collect(),
        next: page.next.map(|n| n.0),
    }))
}

/// One member.
#[utoipa::path(get, path = "/api/v1/members/{member_id}", tag = "members",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = MemberView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    caller.require(Scope::Server)?;
    Ok(Json(load(&state, &caller, member_id(&id)?).await?.into()))
}

/// Changes a member's profile, consents or status (block / unblock).
#[utoipa::path(patch, path = "/api/v1/members/{member_id}", tag = "members", request_body = PatchMember,
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = MemberView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchMember>,
) -> ApiResult<Json<MemberView>> {
    caller.require(Scope::Server)?;
    let id = member_id(&id)?;
    let status = match body.status.as_deref() {
        None => None,
        Some("erased") => {
            return Err(ApiError::invalid(
                "status",
                "erase a member with DELETE /api/v1/members/{id}",
            ))
        }
        Some(s) => Some(MemberStatus::parse("status", s)?),
    };
    let consent = body
        .consent
        .map_or_else(ConsentChange::default, |c| ConsentChange {
            email: c.email,
            sms: c.sms,
            messengers: c.messengers,
        });
    let patch = MemberPatch {
        external_id: body
            .external_id
            .map(|v| v.as_deref().map(ExternalId::parse).transpose())
            .transpose()?,
        email: body
            .email
            .map(|v| v.as_deref().map(Email::parse).transpose())
            .transpose()?,
        phone: body
            .phone
            .map(|v| v.as_deref().map(Phone::parse).transpose())
            .transpose()?,
        name: body
            .name
            .map(|v| v.as_deref().map(member::parse_name).transpose())
            .transpose()?,
        locale: body
            .locale
            .map(|v| v.as_deref().map(|l| Locale::parse("locale", l)).transpose())
            .transpose()?,
        consent,
        status,
    };
    match state
        .store
        .update_member(caller.program, id, &patch)
        .await?
    {
        PatchOutcome::Updated(m) => {
            if status == Some(MemberStatus::Active) {
                // Referral rewards withheld while the member was blocked.
                if let Some(ctx) = state.store.ledger_context(caller.program).await? {
                    state.store.release_withheld_rewards(&ctx, id).await?;
                }
            }
            Ok(Json((*m).into()))
        }
        PatchOutcome::NotFound => Err(missing(id)),
        PatchOutcome::Erased => Err(ApiError::Conflict {
            kind: Conflict::MemberErased,
            detail: format!("member {id} was erased and cannot be changed"),
            field: None,
        }),
        PatchOutcome::Taken(field) => Err(ApiError::Conflict {
            kind: Conflict::Member,
            detail: format!("another member of this program already has this {field}"),
            field: Some(field.to_owned()),
        }),
        PatchOutcome::Unidentified => Err(ApiError::invalid(
            "external_id",
            "a member must keep at least one of external_id, email or phone",
        )),
    }
}

/// Erases a member's personal data (GDPR art. 17). The member's id stays in
/// the ledger as a pseudonym, so balances and reports still add up.
#[utoipa::path(delete, path = "/api/v1/members/{member_id}", tag = "members",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Erased (or erased before)", body = MemberView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    caller.require(Scope::Server)?;
    let id = member_id(&id)?;
    let erased = state
        .store
        .erase_member(caller.program, id)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(Json(erased.into()))
}

/// Everything held on a member, as one JSON document.
#[utoipa::path(get, path = "/api/v1/members/{member_id}/export", tag = "members",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = MemberExport),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberExport>> {
    caller.require(Scope::Server)?;
    let member = load(&state, &caller, member_id(&id)?).await?;
    let program = state
        .store
        .program(caller.program)
        .await?
        .ok_or_else(|| ApiError::not_found("this key's program no longer exists"))?;
    let events = state.store.member_events(caller.program, member.id).await?;
    let reader = crate::ledger_text::Reader {
        lang: Lang::from_tag(member.locale.as_deref().unwrap_or(program.locale.as_str()))
            .unwrap_or(Lang::En),
        currency: &program.currency,
    };
    Ok(Json(MemberExport {
        program_id: program.id.0,
        program_name: program.name,
        balance: balance_of(&state, caller.program, member.id, reader).await?,
        statement: full_statement(&state, caller.program, member.id, reader).await?,
        referrals: super::referrals::of_member(&state, caller.program, member.id).await?,
        events: events
            .into_iter()
            .map(|e| ExportedEvent {
                id: e.key,
                kind: e.kind,
                occurred_at: e.at,
                request: e.request,
            })
            .collect(),
        member: member.into(),
        exported_at: sarafan_store::now(),
    }))
}
