//! The program's outbox: every webhook delivery and e-mail, its status and
//! tries, and a manual retry for dead letters.

use super::page_limit;
use crate::extract::{ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult, Conflict, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_store::outbox::{Attempt, Message, MessageStatus, RetryOutcome};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    /// Stable across retries: receivers de-duplicate on it (the webhook
    /// body's `id` and the `Sarafan-Message-Id` header).
    pub id: Uuid,
    /// `webhook` or `email`.
    pub channel: String,
    /// The event type, e.g. `member.created`.
    #[serde(rename = "type")]
    pub topic: String,
    /// Webhook deliveries: the endpoint.
    pub endpoint_id: Option<Uuid>,
    /// E-mails: the member (the address is read when sending).
    pub member_id: Option<Uuid>,
    /// `pending`, `delivered`, `dead` (out of tries) or `cancelled`.
    pub status: String,
    /// Tries so far.
    pub attempts: i32,
    /// When it is (or was) due next.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due_at: OffsetDateTime,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
    /// The webhook body exactly as sent, or the e-mail's template data
    /// (a sign-in mail's code and link are left out: they are the member's).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        let mut payload = serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null);
        // Store staff must not be able to sign in as the member.
        if m.topic == crate::signin::MAIL_TOPIC {
            if let Some(fields) = payload.as_object_mut() {
                fields.remove("code");
                fields.remove("link");
            }
        }
        Self {
            id: m.id,
            payload,
            channel: m.channel,
            topic: m.topic,
            endpoint_id: m.endpoint,
            member_id: m.member.map(|x| x.0),
            status: m.status.as_str().to_owned(),
            attempts: m.attempts,
            due_at: m.due_at,
            last_error: m.last_error,
            created_at: m.created_at,
            delivered_at: m.delivered_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first try.
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// `delivered`, `failed` or `cancelled`.
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            attempt: a.attempt,
            at: a.at,
            outcome: a.outcome,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub message: MessageView,
    /// Every try, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// `pending`, `delivered`, `dead` or `cancelled`; all when absent.
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

fn message_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::invalid(
            "message_id",
            "must be a UUID such as 0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f",
        )
    })
}

/// Lists messages, oldest first.
#[utoipa::path(get, path = "/api/v1/outbox", tag = "messaging", params(OutboxQuery),
    responses(
        (status = 200, body = MessageList),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> ApiResult<Json<MessageList>> {
    caller.require(Scope::Admin)?;
    let limit = page_limit(q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(|s| MessageStatus::parse("status", s))
        .transpose()?;
    let after = q
        .after
        .as_deref()
        .map(|a| {
            message_id(a).map_err(|_| ApiError::invalid("after", "must be the `next` of a page"))
        })
        .transpose()?;
    let (items, next) = state
        .store
        .outbox_messages(caller.program, status, after, limit)
        .await?;
    Ok(Json(MessageList {
        items: items.into_iter().map(MessageView::from).collect(),
        next,
    }))
}

/// One message with every try.
#[utoipa::path(get, path = "/api/v1/outbox/{message_id}", tag = "messaging",
    params(("message_id" = Uuid, Path)),
    responses(
        (status = 200, body = MessageDetail),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageDetail>> {
    caller.require(Scope::Admin)?;
    let id = message_id(&id)?;
    let (message, attempts) = state
        .store
        .outbox_message(caller.program, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no message {id} in this program's outbox")))?;
    Ok(Json(MessageDetail {
        message: message.into(),
        attempt_log: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

/// Queues a dead (or cancelled) message again, due now, with a fresh set
/// of tries. Its message id stays, so a receiver that did get it before
/// recognises the repeat.
#[utoipa::path(post, path = "/api/v1/outbox/{message_id}/retry", tag = "messaging",
    params(("message_id" = Uuid, Path)),
    responses(
        (status = 200, body = MessageView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The message is pending or delivered", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageView>> {
    caller.require(Scope::Admin)?;
    let id = message_id(&id)?;
    match state.store.retry_outbox(caller.program, id).await? {
        RetryOutcome::Queued(m) => Ok(Json(m.into())),
        RetryOutcome::NotFound => Err(ApiError::not_found(format!(
            "no message {id} in this program's outbox"
        ))),
        RetryOutcome::NotDead(status) => Err(ApiError::Conflict {
            kind: Conflict::MessageNotDead,
            detail: format!(
                "message {id} is {}; only dead or cancelled messages are retried by hand",
                status.as_str()
            ),
            field: None,
        }),
    }
}
