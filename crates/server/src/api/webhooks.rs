//! Webhook endpoints of the caller's program (admin keys only).

use crate::extract::{ApiJson, Caller};
use crate::idempotency::ShownOnce;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use sarafan_core::apikey::Scope;
use sarafan_core::outbox::{validate_webhook_url, Topic};
use sarafan_core::text::bounded;
use sarafan_core::FieldError;
use sarafan_store::{WebhookEndpoint, WebhookPatch};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Event types delivered to this endpoint.
    pub events: Vec<String>,
    pub enabled: bool,
    /// The current secret's last four characters.
    pub secret_hint: String,
    /// While a rotated-out secret still signs (both signatures are sent).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&WebhookEndpoint> for WebhookView {
    fn from(w: &WebhookEndpoint) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            description: w.description.clone(),
            events: w.topics.iter().map(|t| t.as_str().to_owned()).collect(),
            enabled: w.enabled,
            secret_hint: w
                .secret
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
            previous_secret_until: w.previous_secret.as_ref().map(|(_, until)| *until),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// An endpoint with its signing secret: shown when created or rotated.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Verifies the `Sarafan-Signature` header (see docs/webhooks.md).
    pub secret: String,
}

impl From<WebhookEndpoint> for WebhookWithSecret {
    fn from(w: WebhookEndpoint) -> Self {
        Self {
            webhook: (&w).into(),
            secret: w.secret,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http:// or https:// URL that receives POSTed events.
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Event types to deliver: member.created, referral.qualified,
    /// reward.earned, points.expiring, purchase.processed, share.weekly,
    /// share.requested.
    pub events: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing beside the new one, in
    /// seconds (default 86400, at most 604800).
    pub grace_seconds: Option<u64>,
}

fn topics(raw: &[String]) -> Result<Vec<Topic>, FieldError> {
    if raw.is_empty() {
        return Err(FieldError::new(
            "events",
            "name at least one event type, e.g. [\"member.created\"]",
        ));
    }
    let mut topics = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let t = Topic::parse(&format!("events[{i}]"), name)?;
        if !topics.contains(&t) {
            topics.push(t);
        }
    }
    Ok(topics)
}

fn checked_url(state: &AppState, raw: &str) -> ApiResult<String> {
    Ok(validate_webhook_url(raw, state.config.allow_private_webhooks)?.to_string())
}

fn webhook_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::invalid(
            "webhook_id",
            "must be a UUID such as 0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f",
        )
    })
}

fn missing(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id} in this program"))
}

/// Lists the program's endpoints (secrets are not shown again).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "messaging",
    responses((status = 200, body = Vec<WebhookView>), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<WebhookView>>> {
    caller.require(Scope::Admin)?;
    let all = state.store.webhooks(caller.program).await?;
    Ok(Json(all.iter().map(WebhookView::from).collect()))
}

/// Adds an endpoint; the answer carries its signing secret.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "messaging", request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookWithSecret),
        (status = 409, description = "A replay of this request (same Idempotency-Key): the secret was shown only once", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad URL (not http(s), or a loopback, private or other non-public address unless the server allows them) or event type", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Extension<ShownOnce>, Json<WebhookWithSecret>)> {
    caller.require(Scope::Admin)?;
    let url = checked_url(&state, &body.url)?;
    let description = bounded("description", &body.description, 0, 500)?;
    let topics = topics(&body.events)?;
    let created = state
        .store
        .create_webhook(caller.program, &url, &description, &topics)
        .await?;
    let made = ShownOnce(format!(
        "webhook endpoint {} was created; if its secret was lost, rotate it",
        created.id
    ));
    Ok((StatusCode::CREATED, Extension(made), Json(created.into())))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}", tag = "messaging",
    params(("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    caller.require(Scope::Admin)?;
    let id = webhook_id(&id)?;
    let w = state
        .store
        .webhook(caller.program, id)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(Json((&w).into()))
}

/// Changes an endpoint's URL, description, event types or whether it is enabled.
#[utoipa::path(patch, path = "/api/v1/webhooks/{webhook_id}", tag = "messaging", request_body = PatchWebhook,
    params(("webhook_id" = Uuid, Path)),
    responses(
        (status = 200, body = WebhookView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchWebhook>,
) -> ApiResult<Json<WebhookView>> {
    caller.require(Scope::Admin)?;
    let id = webhook_id(&id)?;
    let url = match body.url.as_deref() {
        Some(u) => Some(checked_url(&state, u)?),
        None => None,
    };
    let patch = WebhookPatch {
        url,
        description: body
            .description
            .as_deref()
            .map(|d| bounded("description", d, 0, 500))
            .transpose()?,
        topics: body.events.as_deref().map(topics).transpose()?,
        enabled: body.enabled,
    };
    let w = state
        .store
        .update_webhook(caller.program, id, &patch)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(Json((&w).into()))
}

/// Deletes an endpoint; what was still queued for it is cancelled.
#[utoipa::path(delete, path = "/api/v1/webhooks/{webhook_id}", tag = "messaging",
    params(("webhook_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    let id = webhook_id(&id)?;
    if state.store.delete_webhook(caller.program, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(id))
    }
}

/// Gives the endpoint a new secret. The old one keeps signing beside it
/// (two `v1=` signatures) for the grace period, so the receiver can switch
/// without dropping a delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/rotate-secret", tag = "messaging", request_body = RotateSecret,
    params(("webhook_id" = Uuid, Path)),
    responses(
        (status = 200, body = WebhookWithSecret),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A replay of this request (same Idempotency-Key): the secret was shown only once", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RotateSecret>,
) -> ApiResult<(Extension<ShownOnce>, Json<WebhookWithSecret>)> {
    caller.require(Scope::Admin)?;
    let id = webhook_id(&id)?;
    let grace = body.grace_seconds.unwrap_or(86_400);
    if grace > 604_800 {
        return Err(ApiError::invalid(
            "grace_seconds",
            "must be at most 604800 (7 days)",
        ));
    }
    let w = state
        .store
        .rotate_webhook_secret(caller.program, id, Duration::from_secs(grace))
        .await?
        .ok_or_else(|| missing(id))?;
    let made = ShownOnce(format!(
        "webhook endpoint {id} got a new secret; if it was lost, rotate it again"
    ));
    Ok((Extension(made), Json(w.into())))
}

/// The body POSTed to an endpoint (`api_version` 1). Headers:
/// `Sarafan-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
/// (one `v1` per active secret), `Sarafan-Message-Id` (= `id`),
/// `Sarafan-Event-Type` (= `type`). Answer 2xx to acknowledge; anything else
/// is retried with backoff. The same `id` may arrive twice: de-duplicate on it.
#[derive(Serialize, ToSchema)]
pub struct WebhookPayload {
    /// The message id, stable across retries.
    pub id: Uuid,
    /// The event type, e.g. `member.created`.
    #[serde(rename = "type")]
    pub topic: String,
    /// The payload schema's version; a change that is not purely additive
    /// gets a new one.
    pub api_version: u32,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    pub program_id: Uuid,
    /// Depends on `type`: `member.created` carries [`MemberCreatedData`],
    /// `purchase.processed` [`PurchaseProcessedData`], `reward.earned`
    /// [`RewardEarnedData`], `points.expiring` [`PointsExpiringData`],
    /// `referral.qualified` [`ReferralQualifiedData`].
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// `data` of `member.created`.
#[derive(Serialize, ToSchema)]
pub struct MemberCreatedData {
    pub member: WebhookMember,
}

/// `data` of `purchase.processed`: sent once per booked purchase (never for
/// a replay or a refused one).
#[derive(Serialize, ToSchema)]
pub struct PurchaseProcessedData {
    /// The purchase's key: the store's order id.
    pub order_id: String,
    pub member_id: Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: String,
    /// Order total in minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// `points` or `cashback` (minor units).
    pub asset: String,
    /// What the purchase earned (pending while inside the return window).
    pub points: i64,
    /// Every point's reason, line by line; caps are negative.
    #[schema(value_type = Vec<Object>)]
    pub breakdown: Vec<serde_json::Value>,
}

/// `data` of `reward.earned`: sent once per booked grant — a referral reward
/// (key `referral:<referral id>:<level>`), an adjustment, an opening balance.
#[derive(Serialize, ToSchema)]
pub struct RewardEarnedData {
    /// The grant's key.
    pub key: String,
    pub member_id: Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: String,
    /// `points` or `cashback` (minor units).
    pub asset: String,
    pub points: i64,
    /// Why, as the member's statement shows it.
    pub reason: String,
    /// Set while the points are pending: when they are posted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub pending_until: Option<String>,
}

/// `data` of `points.expiring`: sent per member, asset and day on which
/// points expire, `settings.messaging.expiry_notice_days` (14 by default)
/// before. Each lot is announced once: points earned after their day was
/// announced bring a follow-up with the day's new total.
#[derive(Serialize, ToSchema)]
pub struct PointsExpiringData {
    pub member_id: Uuid,
    /// `points` or `cashback` (minor units).
    pub asset: String,
    /// How much expires that day (all of it, also in a follow-up).
    pub points: i64,
    /// The day it expires, in the program's time zone (`YYYY-MM-DD`).
    pub expires_on: String,
    /// Days from the notice to that day.
    pub days: i64,
}

/// `data` of `referral.qualified`, to the inviter: a referred friend's
/// action (their first purchase, by default) qualified the referral and its
/// rewards were made. Sent once per referral; also the "your friend joined"
/// e-mail.
#[derive(Serialize, ToSchema)]
pub struct ReferralQualifiedData {
    pub referral_id: Uuid,
    /// The inviter.
    pub member_id: Uuid,
    pub friend_id: Uuid,
    pub friend_name: Option<String>,
    /// Where the friend came from (`telegram`, `code`, …).
    pub channel: String,
    pub qualified_at: String,
    /// The qualifying order, when a purchase qualified.
    pub order_id: Option<String>,
    /// `points` or `cashback` of the inviter's reward; null when it is of
    /// another kind (a coupon) or withheld.
    pub asset: Option<String>,
    /// Points (or cashback minor units) the inviter's reward brought.
    pub points: i64,
}

/// A member as webhooks describe them.
#[derive(Serialize, ToSchema)]
pub struct WebhookMember {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub consent: crate::api::members::ConsentBody,
}
