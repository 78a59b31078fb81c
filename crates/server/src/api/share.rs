//! A member's weekly share routine: a weekly reminder to the member with
//! their own link, and the contacts they invite: each contact gets one
//! invitation from the program, and the member's link weekly only after
//! opting in with the link in it. `PUT` opts in (or changes the list),
//! `DELETE` opts out.

use super::members::{member_id, missing};
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::share::{parse_contacts, EVERY};
use sarafan_store::{ShareContact, ShareRoutine};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct ShareRoutineView {
    pub member_id: Uuid,
    /// Whether the member opted in (has at least one contact).
    pub active: bool,
    /// The member's reminder (and an opted-in contact's link) comes at most
    /// once in this many days.
    pub every_days: i64,
    pub contacts: Vec<ShareContactView>,
}

#[derive(Serialize, ToSchema)]
pub struct ShareContactView {
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: OffsetDateTime,
    /// When the link was last queued for this contact.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sent_at: Option<OffsetDateTime>,
    /// The contact followed their unsubscribe link: they get nothing more.
    pub unsubscribed: bool,
    /// The contact asked for the member's link weekly; otherwise they get
    /// one invitation only.
    pub opted_in: bool,
}

impl From<ShareRoutine> for ShareRoutineView {
    fn from(r: ShareRoutine) -> Self {
        Self {
            member_id: r.member.0,
            active: !r.contacts.is_empty(),
            every_days: EVERY.whole_days(),
            contacts: r.contacts.into_iter().map(ShareContactView::from).collect(),
        }
    }
}

impl From<ShareContact> for ShareContactView {
    fn from(c: ShareContact) -> Self {
        Self {
            email: c.email,
            added_at: c.added_at,
            last_sent_at: c.last_sent_at,
            unsubscribed: c.unsubscribed,
            opted_in: c.opted_in,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutShareRoutine {
    /// 1 to 20 e-mail addresses; the list replaces the previous one.
    pub contacts: Vec<String>,
}

/// The member's routine (`active: false` and no contacts when not opted in).
#[utoipa::path(get, path = "/api/v1/members/{member_id}/share-routine", tag = "messaging",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = ShareRoutineView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ShareRoutineView>> {
    caller.require(Scope::Server)?;
    let id = member_id(&id)?;
    let routine = state
        .store
        .share_routine(caller.program, id)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(Json(routine.into()))
}

/// Opts the member in with these contacts (or replaces the list). Contacts
/// kept from the previous list keep their weekly schedule.
#[utoipa::path(put, path = "/api/v1/members/{member_id}/share-routine", tag = "messaging",
    request_body = PutShareRoutine,
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = ShareRoutineView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No contacts, more than 20, or an address that is not one (the field names which)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PutShareRoutine>,
) -> ApiResult<Json<ShareRoutineView>> {
    caller.require(Scope::Server)?;
    let id = member_id(&id)?;
    let contacts = parse_contacts(&body.contacts)?;
    let routine = state
        .store
        .set_share_routine(caller.program, id, &contacts)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(Json(routine.into()))
}

/// Opts the member out: their contacts are forgotten, and links queued but
/// not sent yet are not sent.
#[utoipa::path(delete, path = "/api/v1/members/{member_id}/share-routine", tag = "messaging",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Opted out (or was not opted in)"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Server)?;
    let id = member_id(&id)?;
    if state.store.member(caller.program, id).await?.is_none() {
        return Err(missing(id));
    }
    state.store.clear_share_routine(caller.program, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
