//! The program's API keys (admin keys only).

use crate::extract::{ApiJson, Caller};
use crate::idempotency::ShownOnce;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use sarafan_core::apikey::Scope;
use sarafan_core::ids::ApiKeyId;
use sarafan_core::text::bounded;
use sarafan_store::ApiKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    /// `admin`, `server` or `publishable`.
    pub scope: String,
    /// The token's last four characters.
    pub hint: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.0,
            name: k.name,
            scope: k.scope.as_str().to_owned(),
            hint: k.hint,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, e.g. "checkout server".
    pub name: String,
    /// `admin`, `server` or `publishable`.
    pub scope: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    /// The secret token. Shown once: only its hash is stored.
    pub token: String,
}

/// Lists the program's keys (without their secrets).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api keys",
    responses(
        (status = 200, body = Vec<KeyView>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<KeyView>>> {
    caller.require(Scope::Admin)?;
    let keys = state.store.api_keys(caller.program).await?;
    Ok(Json(keys.into_iter().map(KeyView::from).collect()))
}

/// Creates a key; the response carries its token, shown this once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api keys", request_body = CreateKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A replay of this request (same Idempotency-Key): the secret was shown only once", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Extension<ShownOnce>, Json<CreatedKey>)> {
    caller.require(Scope::Admin)?;
    let name = bounded("name", &body.name, 1, 100)?;
    let scope = Scope::parse("scope", &body.scope)?;
    let (key, token) = state
        .store
        .issue_api_key(caller.program, &name, scope)
        .await?;
    let made = ShownOnce(format!(
        "API key {} was created; if its token was lost, revoke it and create another",
        key.id
    ));
    Ok((
        StatusCode::CREATED,
        Extension(made),
        Json(CreatedKey {
            key: key.into(),
            token,
        }),
    ))
}

/// Revokes a key at once; revoking again changes nothing.
#[utoipa::path(delete, path = "/api/v1/api-keys/{key_id}", tag = "api keys",
    params(("key_id" = Uuid, Path)),
    responses(
        (status = 200, body = KeyView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    caller.require(Scope::Admin)?;
    let id = ApiKeyId::parse("key_id", &key_id)?;
    let key = state
        .store
        .revoke_api_key(caller.program, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no API key {id} in this program")))?;
    Ok(Json(key.into()))
}
