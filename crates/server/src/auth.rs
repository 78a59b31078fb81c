//! API-key authentication: finds the caller's key inside the program the
//! token names, and refuses anything else before a handler runs.

use crate::extract::Caller;
use crate::problem::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sarafan_core::apikey::parse_presented;

/// Reads `Authorization: Bearer <key>` and puts a [`Caller`] in the request.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("send your API key as 'Authorization: Bearer sar_…'".into())
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must read 'Bearer sar_…'".into())
        })?;
    let presented = parse_presented(token).ok_or_else(|| {
        ApiError::Unauthorized("this is not a Sarafan API key; keys start with 'sar_'".into())
    })?;
    let key = state
        .store
        .api_key_by_hash(presented.program_id, &presented.hash)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
    if let Some(at) = key.revoked_at {
        return Err(ApiError::Unauthorized(format!(
            "this API key was revoked at {at}"
        )));
    }
    req.extensions_mut().insert(Caller {
        program: key.program_id,
        key: key.id,
        scope: key.scope,
    });
    Ok(next.run(req).await)
}
