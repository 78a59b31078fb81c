//! API keys, stored as hashes inside their program.

use crate::{now, with_db, Result, Store, StoreError};
use rand::RngCore;
use sarafan_core::apikey::{self, Scope, TokenHash};
use sarafan_core::ids::{ApiKeyId, ProgramId};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub program_id: ProgramId,
    pub id: ApiKeyId,
    pub name: String,
    pub scope: Scope,
    /// Last four characters of the token, to recognise it in a list.
    pub hint: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    program_id: Uuid,
    key_id: Uuid,
    name: String,
    scope: String,
    token_hint: String,
    created_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self> {
        Ok(Self {
            program_id: ProgramId(r.program_id),
            id: ApiKeyId(r.key_id),
            scope: Scope::parse("scope", &r.scope)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            name: r.name,
            hint: r.token_hint,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

const COLUMNS: &str = "program_id, key_id, name, scope, token_hint, created_at, revoked_at";

impl Store {
    /// Creates a key with a fresh secret; returns it with the clear-text
    /// token, which is never stored and cannot be shown again.
    pub async fn issue_api_key(
        &self,
        program: ProgramId,
        name: &str,
        scope: Scope,
    ) -> Result<(ApiKey, String)> {
        let mut secret = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let issued = apikey::issue(program, scope, secret);
        let key = self
            .create_api_key(program, name, scope, &issued.hash, &issued.hint)
            .await?;
        Ok((key, issued.token))
    }

    async fn create_api_key(
        &self,
        program: ProgramId,
        name: &str,
        scope: Scope,
        hash: &TokenHash,
        hint: &str,
    ) -> Result<ApiKey> {
        let sql = format!(
            "INSERT INTO api_keys (program_id, key_id, name, scope, token_hash, token_hint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        let row: KeyRow = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(ApiKeyId::generate().0)
                .bind(name)
                .bind(scope.as_str())
                .bind(&hash[..])
                .bind(hint)
                .bind(now())
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    /// The key with this token hash in this program, revoked or not.
    pub async fn api_key_by_hash(
        &self,
        program: ProgramId,
        hash: &TokenHash,
    ) -> Result<Option<ApiKey>> {
        let sql =
            format!("SELECT {COLUMNS} FROM api_keys WHERE program_id = $1 AND token_hash = $2");
        let row: Option<KeyRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(&hash[..])
                .fetch_optional(pool)
                .await?
        });
        row.map(ApiKey::try_from).transpose()
    }

    pub async fn api_keys(&self, program: ProgramId) -> Result<Vec<ApiKey>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE program_id = $1 ORDER BY key_id");
        let rows: Vec<KeyRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(program.0).fetch_all(pool).await?
        });
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    /// Revokes a key; revoking twice keeps the first revocation time.
    /// `None` when the program has no such key.
    pub async fn revoke_api_key(&self, program: ProgramId, id: ApiKeyId) -> Result<Option<ApiKey>> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE program_id = $1 AND key_id = $2 RETURNING {COLUMNS}"
        );
        let row: Option<KeyRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id.0)
                .bind(now())
                .fetch_optional(pool)
                .await?
        });
        row.map(ApiKey::try_from).transpose()
    }
}
