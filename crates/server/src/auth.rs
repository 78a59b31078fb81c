//! API-key authentication: finds the caller's key inside the program the
//! token names, and refuses anything else before a handler runs.
//!
//! Keys found are kept a few seconds in a cache: a till sends a request
//! per checkout, and a database read for each would cost more than
//! booking the event. Revoking a key through this server empties the
//! cache at once; another server of the same deployment honours the
//! revocation within [`FRESH`].

use crate::extract::Caller;
use crate::problem::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use quick_cache::sync::Cache;
use sarafan_core::apikey::{parse_presented, TokenHash};
use sarafan_core::ids::ProgramId;

use sarafan_store::{ApiKey, Store, StoreError};
use std::time::{Duration, Instant};

/// How long a key read from the database is trusted.
pub const FRESH: Duration = Duration::from_secs(5);
/// Keys kept at most. Only keys that exist are kept, so random tokens
/// cannot fill it.
const CACHED_KEYS: usize = 10_000;

/// Recently used API keys.
pub struct KeyCache {
    cache: Cache<(ProgramId, TokenHash), (Instant, ApiKey)>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            cache: Cache::new(CACHED_KEYS),
        }
    }
}

impl KeyCache {
    async fn find(
        &self,
        store: &Store,
        program: ProgramId,
        hash: &TokenHash,
    ) -> Result<Option<ApiKey>, StoreError> {
        if let Some((loaded, key)) = self.cache.get(&(program, *hash)) {
            if loaded.elapsed() < FRESH {
                return Ok(Some(key));
            }
        }
        let key = store.api_key_by_hash(program, hash).await?;
        if let Some(k) = &key {
            self.cache
                .insert((program, *hash), (Instant::now(), k.clone()));
        }
        Ok(key)
    }

    /// Forgets every key, so a revocation holds from the next request.
    pub fn forget_all(&self) {
        self.cache.clear();
    }
}

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
        .keys
        .find(&state.store, presented.program_id, &presented.hash)
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
