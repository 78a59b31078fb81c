//! A member's referral code, link and QR code, and the vanity code they may
//! choose. The code is created on the first request.

use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult, Conflict, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::ids::MemberId;
use sarafan_core::link::VanityCode;
use sarafan_core::member::MemberStatus;
use sarafan_store::{ReferralCodes, VanityOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a member shares: the code, the link and its QR images.
#[derive(Serialize, ToSchema)]
pub struct ReferralLinkView {
    pub member_id: Uuid,
    /// The code to share: the vanity code if the member chose one.
    #[schema(example = "K7MX4PQR9ZTB")]
    pub code: String,
    /// The code Sarafan generated; it keeps working after a vanity code is set.
    pub generated_code: String,
    pub vanity_code: Option<String>,
    /// `<public URL>/r/<code>`: records the click and sends the friend on.
    #[schema(example = "https://loyalty.example.com/r/K7MX4PQR9ZTB")]
    pub link: String,
    /// The link as a QR code (`size` and `margin` query parameters).
    pub qr_svg: String,
    pub qr_png: String,
}

/// A code the member chose: 4 to 20 letters and digits (case, hyphens and
/// spaces do not matter), at least one letter, not a reserved word.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VanityBody {
    #[schema(example = "ANNA-2024")]
    pub code: String,
}

fn view(state: &AppState, member: MemberId, codes: ReferralCodes) -> ReferralLinkView {
    let link = state.links.link(&codes.code);
    ReferralLinkView {
        member_id: member.0,
        code: codes.code.to_string(),
        generated_code: codes.generated.to_string(),
        vanity_code: codes.vanity.map(|v| v.to_string()),
        qr_svg: format!("{link}/qr.svg"),
        qr_png: format!("{link}/qr.png"),
        link,
    }
}

/// Refuses members whose data was erased: they no longer refer anyone.
async fn active_member(state: &AppState, caller: &Caller, raw: &str) -> ApiResult<MemberId> {
    let id = MemberId::parse("member_id", raw)?;
    let member = state
        .store
        .member(caller.program, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no member {id} in this program")))?;
    if member.status == MemberStatus::Erased {
        return Err(ApiError::Conflict {
            kind: Conflict::MemberErased,
            detail: format!("member {id} was erased and has no referral link"),
            field: None,
        });
    }
    Ok(id)
}

/// The member's referral code, link and QR code URLs; the code is created
/// on the first call and stays the same after.
#[utoipa::path(get, path = "/api/v1/members/{member_id}/referral", tag = "referrals",
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = ReferralLinkView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member was erased", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReferralLinkView>> {
    caller.require(Scope::Server)?;
    let id = active_member(&state, &caller, &id).await?;
    let codes = state
        .store
        .referral_code_for(caller.program, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no member {id} in this program")))?;
    Ok(Json(view(&state, id, codes)))
}

/// Sets the code the member shares to one they chose. Their earlier codes
/// keep working; a code anyone else holds is refused.
#[utoipa::path(put, path = "/api/v1/members/{member_id}/referral/code", tag = "referrals",
    request_body = VanityBody,
    params(("member_id" = Uuid, Path)),
    responses(
        (status = 200, body = ReferralLinkView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken, or the member was erased", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn set_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<VanityBody>,
) -> ApiResult<Json<ReferralLinkView>> {
    caller.require(Scope::Server)?;
    let id = active_member(&state, &caller, &id).await?;
    let vanity = VanityCode::parse(&body.code)?;
    match state
        .store
        .set_vanity_code(caller.program, id, &vanity)
        .await?
    {
        VanityOutcome::Set(codes) => Ok(Json(view(&state, id, codes))),
        VanityOutcome::NotFound => Err(ApiError::not_found(format!(
            "no member {id} in this program"
        ))),
        VanityOutcome::Taken => Err(ApiError::Conflict {
            kind: Conflict::ReferralCodeTaken,
            detail: format!(
                "the code {} is taken; codes are unique whatever their case, choose another",
                vanity.code()
            ),
            field: Some("code".into()),
        }),
    }
}
