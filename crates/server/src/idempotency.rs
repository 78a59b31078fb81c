//! `Idempotency-Key` for every mutating call: the first request with a key
//! runs and its response is saved; a retry with the same key and the same
//! request gets the saved response and changes nothing; the same key with a
//! different request is refused.

use crate::extract::Caller;
use crate::problem::ApiError;
use crate::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sarafan_store::{IdempotencyBegin, SavedResponse};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
/// Set on a response that is a replay of a saved one.
pub const REPLAYED: &str = "idempotent-replayed";
/// Largest request or response body the layer buffers: the largest body
/// any route accepts (a full events batch).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

pub async fn idempotent(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let (Some(key), Some(caller)) = (
        req.headers().get(HEADER),
        req.extensions().get::<Caller>().copied(),
    ) else {
        return Ok(next.run(req).await);
    };
    if !mutating {
        return Ok(next.run(req).await);
    }
    let key = key
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters, e.g. a UUID",
            )
        })?
        .to_owned();

    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update(b" ");
    hash.update(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_default(),
    );
    hash.update(b"\n");
    hash.update(&bytes);
    let fingerprint = hash.finalize();

    let store = &state.store;
    match store
        .idempotency_begin(caller.program, &key, &fingerprint)
        .await?
    {
        IdempotencyBegin::Replay(saved) => Ok(replay(saved)),
        IdempotencyBegin::Mismatch => Err(ApiError::IdempotencyKeyReused),
        IdempotencyBegin::InProgress => Err(ApiError::IdempotencyInProgress),
        IdempotencyBegin::Run => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            if resp.status().is_server_error() {
                store.idempotency_abandon(caller.program, &key).await?;
                return Ok(resp);
            }
            let (parts, body) = resp.into_parts();
            let body = to_bytes(body, MAX_BODY)
                .await
                .map_err(|e| ApiError::Internal(format!("buffering response: {e}")))?;
            let saved = SavedResponse {
                status: parts.status.as_u16(),
                content_type: parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: body.to_vec(),
            };
            store
                .idempotency_finish(caller.program, &key, &saved)
                .await?;
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}

fn replay(saved: SavedResponse) -> Response {
    let status =
        axum::http::StatusCode::from_u16(saved.status).unwrap_or(axum::http::StatusCode::OK);
    let mut resp = (status, saved.body).into_response();
    let headers = resp.headers_mut();
    if let Some(ct) = saved
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}
