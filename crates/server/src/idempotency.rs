//! `Idempotency-Key` for every mutating call: the first request with a key
//! runs and its response is saved; a retry with the same key and the same
//! request gets the saved response and changes nothing; the same key with a
//! different request is refused.
//!
//! Authorisation comes first: the layer runs after authentication, and a
//! saved response is found only by the API key that made it, for the same
//! method and path. A key's scope never changes and a revoked key is
//! refused before this layer, so a replay gives a caller only what its own
//! key was allowed to get. A response that carries a secret shown once (a
//! new API key's token, a webhook secret) is marked [`ShownOnce`] by its
//! handler and saved without it: its replay says the secret was shown.
//! Saved responses expire after [`ServerConfig::idempotency_ttl`](crate::ServerConfig).

use crate::extract::Caller;
use crate::problem::ApiError;
use crate::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sarafan_core::ids::ProgramId;
use sarafan_store::{IdempotencyBegin, IdempotencyScope, SavedResponse, Store};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const HEADER: &str = "idempotency-key";
/// Set on a response that is a replay of a saved one.
pub const REPLAYED: &str = "idempotent-replayed";
/// Largest request or response body the layer buffers: the largest body
/// any route accepts (a full events batch).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A response extension: the response carries a secret that is shown only
/// once, so its saved copy for replays is a `secret-shown-once` problem
/// with this detail (what was made, and how to get a new secret).
#[derive(Debug, Clone)]
pub struct ShownOnce(pub String);

/// The fingerprint of a request: method, path and query, body. A key
/// reused with another fingerprint is refused.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(method);
    hash.update(b" ");
    hash.update(path_and_query);
    hash.update(b"\n");
    hash.update(body);
    hash.finalize().into()
}

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
    // The path as the client sent it, before `/api/v1` was stripped.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
    let fingerprint = fingerprint(
        parts.method.as_str(),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or_default(),
        &bytes,
    );
    let mut claim = Claim {
        store: state.store.clone(),
        program: caller.program,
        caller: caller.key.0,
        method: parts.method.as_str().to_owned(),
        path: uri.path().to_owned(),
        key,
        held: false,
    };
    let store = &state.store;
    let expired_before = sarafan_store::now() - state.config.idempotency_ttl;
    match store
        .idempotency_begin(&claim.scope(), &fingerprint, expired_before)
        .await?
    {
        IdempotencyBegin::Replay(saved) => Ok(replay(saved)),
        IdempotencyBegin::Mismatch => Err(ApiError::IdempotencyKeyReused),
        IdempotencyBegin::InProgress => Err(ApiError::IdempotencyInProgress),
        IdempotencyBegin::Run => {
            claim.held = true;
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            if resp.status().is_server_error() {
                claim.held = false;
                store.idempotency_abandon(&claim.scope()).await?;
                return Ok(resp);
            }
            let (parts, body) = resp.into_parts();
            let body = to_bytes(body, MAX_BODY)
                .await
                .map_err(|e| ApiError::Internal(format!("buffering response: {e}")))?;
            let saved = match parts.extensions.get::<ShownOnce>() {
                Some(ShownOnce(detail)) => saved_problem(ApiError::SecretShownOnce(detail.clone())),
                None => SavedResponse {
                    status: parts.status.as_u16(),
                    content_type: parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: body.to_vec(),
                },
            };
            store.idempotency_finish(&claim.scope(), &saved).await?;
            claim.held = false;
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}

/// A request's idempotency scope, and whether this process holds its
/// claim: a claim still held when this is dropped (an error before the
/// response was saved, or the handler's future dropped with the client
/// gone) is released, so a retry need not wait.
struct Claim {
    store: Store,
    program: ProgramId,
    caller: Uuid,
    method: String,
    path: String,
    key: String,
    held: bool,
}

impl Claim {
    fn scope(&self) -> IdempotencyScope<'_> {
        IdempotencyScope {
            program: self.program,
            caller: self.caller,
            method: &self.method,
            path: &self.path,
            key: &self.key,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let claim = Claim {
            store: self.store.clone(),
            program: self.program,
            caller: self.caller,
            method: std::mem::take(&mut self.method),
            path: std::mem::take(&mut self.path),
            key: std::mem::take(&mut self.key),
            held: false,
        };
        runtime.spawn(async move {
            if let Err(e) = claim.store.idempotency_abandon(&claim.scope()).await {
                tracing::warn!(error = %e, "releasing an idempotency claim failed");
            }
        });
    }
}

fn saved_problem(e: ApiError) -> SavedResponse {
    let problem = e.to_problem();
    SavedResponse {
        status: problem.status,
        content_type: Some("application/problem+json".into()),
        body: serde_json::to_vec(&problem).unwrap_or_default(),
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

/// Every `every`, deletes every program's saved responses older than
/// `keep`, until the process ends.
pub fn spawn_purge(
    store: Store,
    keep: std::time::Duration,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let programs = match store.programs().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "idempotency purge: listing programs failed");
                    continue;
                }
            };
            let before = sarafan_store::now() - keep;
            for p in programs {
                if let Err(e) = store.purge_idempotency(p.id, before).await {
                    tracing::error!(program = %p.id, error = %e, "idempotency purge failed");
                }
            }
        }
    })
}
