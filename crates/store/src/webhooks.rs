//! Webhook endpoints: where a program's events are delivered, which types
//! each wants, and the secrets deliveries are signed with.

use crate::outbox::unix_ms;
use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::ProgramId;
use sarafan_core::outbox::Topic;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub topics: Vec<Topic>,
    pub secret: String,
    /// The secret being rotated out, and until when it still signs.
    pub previous_secret: Option<(String, OffsetDateTime)>,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl WebhookEndpoint {
    /// The secrets deliveries are signed with at `at`: the current one, and
    /// the previous one while its rotation grace period lasts.
    pub fn signing_secrets(&self, at: OffsetDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some((old, until)) = &self.previous_secret {
            if *until > at {
                secrets.push(old);
            }
        }
        secrets
    }
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    endpoint_id: Uuid,
    url: String,
    description: String,
    topics: String,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
    enabled: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "endpoint_id, url, description, topics, secret, previous_secret, previous_until, \
    enabled, created_at, updated_at";

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = StoreError;
    fn try_from(r: EndpointRow) -> Result<Self> {
        let corrupt = |e: String| StoreError::Corrupt(format!("webhook {}: {e}", r.endpoint_id));
        let names: Vec<String> =
            serde_json::from_str(&r.topics).map_err(|e| corrupt(e.to_string()))?;
        let topics = names
            .iter()
            .map(|n| Topic::parse("topics", n).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let previous_secret = match (r.previous_secret, r.previous_until) {
            (Some(s), Some(ms)) => Some((
                s,
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .map_err(|e| corrupt(e.to_string()))?,
            )),
            _ => None,
        };
        Ok(Self {
            id: r.endpoint_id,
            url: r.url,
            description: r.description,
            topics,
            secret: r.secret,
            previous_secret,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// What to change on an endpoint; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub topics: Option<Vec<Topic>>,
    pub enabled: Option<bool>,
}

fn topics_json(topics: &[Topic]) -> String {
    serde_json::to_string(&topics.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// A fresh signing secret: `whsec_` and 192 random bits in hex.
fn new_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>()))
}

impl Store {
    pub async fn create_webhook(
        &self,
        program: ProgramId,
        url: &str,
        description: &str,
        topics: &[Topic],
    ) -> Result<WebhookEndpoint> {
        let at = now();
        let sql = format!(
            "INSERT INTO webhook_endpoints ({COLUMNS}, program_id) \
             VALUES ($1, $2, $3, $4, $5, NULL, NULL, TRUE, $6, $6, $7) RETURNING {COLUMNS}"
        );
        let row: EndpointRow = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(Uuid::now_v7())
                .bind(url)
                .bind(description)
                .bind(topics_json(topics))
                .bind(new_secret())
                .bind(at)
                .bind(program.0)
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    pub async fn webhooks(&self, program: ProgramId) -> Result<Vec<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE program_id = $1 ORDER BY endpoint_id"
        );
        let rows: Vec<EndpointRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(program.0).fetch_all(pool).await?
        });
        rows.into_iter().map(WebhookEndpoint::try_from).collect()
    }

    pub async fn webhook(&self, program: ProgramId, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE program_id = $1 AND endpoint_id = $2"
        );
        let row: Option<EndpointRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(WebhookEndpoint::try_from).transpose()
    }

    pub async fn update_webhook(
        &self,
        program: ProgramId,
        id: Uuid,
        p: &WebhookPatch,
    ) -> Result<Option<WebhookEndpoint>> {
        let sql = format!(
            "UPDATE webhook_endpoints SET url = COALESCE($3, url), description = COALESCE($4, description), \
               topics = COALESCE($5, topics), enabled = COALESCE($6, enabled), updated_at = $7 \
             WHERE program_id = $1 AND endpoint_id = $2 RETURNING {COLUMNS}"
        );
        let row: Option<EndpointRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .bind(p.url.as_deref())
                .bind(p.description.as_deref())
                .bind(p.topics.as_deref().map(topics_json))
                .bind(p.enabled)
                .bind(now())
                .fetch_optional(pool)
                .await?
        });
        row.map(WebhookEndpoint::try_from).transpose()
    }

    /// Gives the endpoint a new secret; the old one keeps signing (both
    /// signatures are sent) until `grace` has passed, so the receiver can
    /// switch without losing a delivery.
    pub async fn rotate_webhook_secret(
        &self,
        program: ProgramId,
        id: Uuid,
        grace: std::time::Duration,
    ) -> Result<Option<WebhookEndpoint>> {
        let at = now();
        let sql = format!(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $3, secret = $4, \
               updated_at = $5 WHERE program_id = $1 AND endpoint_id = $2 RETURNING {COLUMNS}"
        );
        let row: Option<EndpointRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .bind(unix_ms(at) + grace.as_millis() as i64)
                .bind(new_secret())
                .bind(at)
                .fetch_optional(pool)
                .await?
        });
        row.map(WebhookEndpoint::try_from).transpose()
    }

    /// Deletes an endpoint and cancels what was still queued for it.
    pub async fn delete_webhook(&self, program: ProgramId, id: Uuid) -> Result<bool> {
        let deleted = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "DELETE FROM webhook_endpoints WHERE program_id = $1 AND endpoint_id = $2",
            )
            .bind(program.0)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE outbox SET status = 'cancelled', last_error = 'the endpoint was deleted', \
                   lease_ms = NULL, lease_token = NULL \
                 WHERE program_id = $1 AND endpoint_id = $2 AND status = 'pending'",
            )
            .bind(program.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            n > 0
        });
        Ok(deleted)
    }
}
