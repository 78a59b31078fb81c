//! The transactional outbox: messages (webhook deliveries, e-mails) written
//! in the same transaction as the change that caused them, claimed by
//! delivery workers under a lease and finished with an attempt record.
//!
//! # The enqueue hook
//!
//! Code that changes something inside its own transaction enqueues what the
//! change should tell the world with one call on that transaction, on either
//! backend (inside a [`with_db!`](crate::with_db) arm):
//!
//! ```ignore
//! use crate::outbox::{Enqueue, Outgoing};
//! let mut tx = pool.begin().await?;
//! // ... the change ...
//! tx.enqueue(program, &[Outgoing::new(Topic::RewardEarned, Some(member), data)]).await?;
//! tx.commit().await?;
//! ```
//!
//! One call fans an event out to every enabled webhook endpoint subscribed
//! to its type, and to the member's automated e-mail when they consented to
//! e-mail; it costs three statements per call, however many events, so a
//! ledger batch enqueues all its events at once. Nothing is sent for a
//! transaction that rolls back, and nothing committed is lost on a crash.

use crate::paging::{cut, page_size, rows_to_read};
use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::outbox::{Channel, Topic};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Webhook payloads' schema version (`api_version` in every body). A
/// change that is not purely additive gets a new version.
pub const PAYLOAD_VERSION: u32 = 1;

/// One event to tell the world about.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: Topic,
    /// The member it is about, who may get the automated e-mail.
    pub member: Option<MemberId>,
    /// The event's details: the `data` of the webhook payload and the
    /// variables of the e-mail template.
    pub data: serde_json::Value,
    /// Whether the e-mail goes to `data.contact` (a contact of the member's
    /// share routine) instead of the member: the contact's unsubscribe
    /// counts then, not the member's consent.
    pub to_contact: bool,
}

impl Outgoing {
    pub fn new(topic: Topic, member: Option<MemberId>, data: serde_json::Value) -> Self {
        Self {
            topic,
            member,
            data,
            to_contact: false,
        }
    }

    /// An event whose e-mail goes to `contact` on the member's behalf; the
    /// address is added to `data` (an object) as `contact`.
    pub fn to_contact(
        topic: Topic,
        member: MemberId,
        contact: &str,
        mut data: serde_json::Value,
    ) -> Self {
        if let Some(d) = data.as_object_mut() {
            d.insert("contact".into(), contact.into());
        }
        Self {
            topic,
            member: Some(member),
            data,
            to_contact: true,
        }
    }
}

/// The body every webhook receives.
#[derive(Serialize)]
struct Envelope<'a> {
    /// The message id: the same on every retry, so receivers de-duplicate.
    id: Uuid,
    #[serde(rename = "type")]
    topic: &'static str,
    api_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    program_id: Uuid,
    data: &'a serde_json::Value,
}

/// Enqueues events in an open transaction of either backend; see the
/// module documentation.
pub trait Enqueue {
    /// Writes the messages `events` cause; returns how many.
    fn enqueue(
        &mut self,
        program: ProgramId,
        events: &[Outgoing],
    ) -> impl std::future::Future<Output = Result<usize>> + Send;

    /// Queues an e-mail that is no event (no webhook gets it): a message
    /// the member asked for, such as a sign-in code, sent whatever their
    /// consent to automated e-mail. `topic` names its template. The fields
    /// of `data` named in `secrets` (a code, a sign-in link) are kept apart
    /// and erased once the mail is sent or given up.
    fn enqueue_mail(
        &mut self,
        program: ProgramId,
        member: MemberId,
        topic: &'static str,
        data: &serde_json::Value,
        secrets: &[&str],
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Columns of one outbox row as inserted.
struct NewRow {
    id: Uuid,
    channel: &'static str,
    topic: &'static str,
    endpoint: Option<Uuid>,
    member: Option<Uuid>,
    payload: String,
}

/// Rows per multi-row INSERT (9 parameters each, well under both limits).
const INSERT_CHUNK: usize = 500;

/// How often a member is reminded by mail to share after a purchase.
const SHARE_REMINDER_EVERY: time::Duration = time::Duration::days(7);

/// The rows `events` fan out to, given the subscribed endpoints and the
/// members who accept e-mail.
fn fan_out(
    program: ProgramId,
    events: &[Outgoing],
    endpoints: &[(Uuid, Vec<String>)],
    mailable: &[Uuid],
    reminded: &[Uuid],
    at: OffsetDateTime,
) -> Result<Vec<NewRow>> {
    let mut rows = Vec::new();
    // Members reminded to share by this call already (a batch may hold
    // several of a member's purchases).
    let mut reminded_now: Vec<Uuid> = Vec::new();
    for e in events {
        for (endpoint, topics) in endpoints {
            if !topics.iter().any(|t| t == e.topic.as_str()) {
                continue;
            }
            let id = Uuid::now_v7();
            let payload = serde_json::to_string(&Envelope {
                id,
                topic: e.topic.as_str(),
                api_version: PAYLOAD_VERSION,
                created_at: at,
                program_id: program.0,
                data: &e.data,
            })
            .map_err(|err| StoreError::Corrupt(format!("webhook payload: {err}")))?;
            rows.push(NewRow {
                id,
                channel: Channel::Webhook.as_str(),
                topic: e.topic.as_str(),
                endpoint: Some(*endpoint),
                // Who it is about: the delivery keeps a member's messages
                // to one endpoint in order.
                member: e.member.map(|m| m.0),
                payload,
            });
        }
        let recipient = e.member.filter(|m| e.to_contact || mailable.contains(&m.0));
        if let Some(member) = recipient {
            if e.topic == Topic::PurchaseProcessed {
                if reminded.contains(&member.0) || reminded_now.contains(&member.0) {
                    continue;
                }
                reminded_now.push(member.0);
            }
            rows.push(NewRow {
                id: Uuid::now_v7(),
                channel: Channel::Email.as_str(),
                topic: e.topic.as_str(),
                endpoint: None,
                member: Some(member.0),
                payload: e.data.to_string(),
            });
        }
    }
    Ok(rows)
}

pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

macro_rules! impl_enqueue {
    ($conn:ty, $db:ty) => {
        impl Enqueue for $conn {
            async fn enqueue(&mut self, program: ProgramId, events: &[Outgoing]) -> Result<usize> {
                if events.is_empty() {
                    return Ok(0);
                }
                let at = now();
                let endpoints: Vec<(Uuid, String)> = sqlx::query_as(
                    "SELECT endpoint_id, topics FROM webhook_endpoints \
                     WHERE program_id = $1 AND enabled ORDER BY endpoint_id",
                )
                .bind(program.0)
                .fetch_all(&mut *self)
                .await?;
                let endpoints = endpoints
                    .into_iter()
                    .map(|(id, topics)| {
                        serde_json::from_str::<Vec<String>>(&topics)
                            .map(|t| (id, t))
                            .map_err(|e| StoreError::Corrupt(format!("webhook {id} topics: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut members: Vec<Uuid> = events.iter().filter_map(|e| e.member.map(|m| m.0)).collect();
                members.sort_unstable();
                members.dedup();
                let mut mailable = Vec::new();
                for chunk in members.chunks(INSERT_CHUNK) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT member_id FROM members WHERE program_id = ",
                    );
                    q.push_bind(program.0).push(
                        " AND status = 'active' AND consent_email AND email IS NOT NULL AND member_id IN (",
                    );
                    let mut list = q.separated(", ");
                    for m in chunk {
                        list.push_bind(*m);
                    }
                    q.push(")");
                    mailable.extend(q.build_query_scalar::<Uuid>().fetch_all(&mut *self).await?);
                }
                // A purchase's mail is a reminder to share: at most one per
                // member per SHARE_REMINDER_EVERY, not one per coffee.
                let mut reminded = Vec::new();
                if events.iter().any(|e| e.topic == Topic::PurchaseProcessed) {
                    let since = unix_ms(at - SHARE_REMINDER_EVERY);
                    for chunk in mailable.chunks(INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "SELECT DISTINCT member_id FROM outbox WHERE program_id = ",
                        );
                        q.push_bind(program.0)
                            .push(" AND channel = 'email' AND topic = 'purchase.processed' AND due_ms >= ")
                            .push_bind(since)
                            .push(" AND member_id IN (");
                        let mut list = q.separated(", ");
                        for m in chunk {
                            list.push_bind(*m);
                        }
                        q.push(")");
                        reminded.extend(q.build_query_scalar::<Uuid>().fetch_all(&mut *self).await?);
                    }
                }
                let rows = fan_out(program, events, &endpoints, &mailable, &reminded, at)?;
                let due = at.unix_timestamp_nanos() as i64 / 1_000_000;
                // Built with `push_bind`: `?` placeholders on SQLite, where
                // sqlx looks each `$n` up by a scan over all of them.
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO outbox (message_id, channel, topic, endpoint_id, member_id, payload, \
                         program_id, status, due_ms, created_at, attempts, tries) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.id)
                            .push_bind(r.channel)
                            .push_bind(r.topic)
                            .push_bind(r.endpoint)
                            .push_bind(r.member)
                            .push_bind(&r.payload)
                            .push_bind(program.0)
                            .push("'pending'")
                            .push_bind(due)
                            .push_bind(at)
                            .push("0")
                            .push("0");
                    });
                    q.build().execute(&mut *self).await?;
                }
                Ok(rows.len())
            }

            async fn enqueue_mail(
                &mut self,
                program: ProgramId,
                member: MemberId,
                topic: &'static str,
                data: &serde_json::Value,
                secrets: &[&str],
            ) -> Result<()> {
                let at = now();
                let (payload, secrets) = split_secrets(data, secrets);
                sqlx::query(
                    "INSERT INTO outbox (program_id, message_id, channel, topic, endpoint_id, member_id, \
                     payload, status, due_ms, created_at, attempts, tries, secrets) \
                     VALUES ($1, $2, $9, $3, NULL, $4, $5, 'pending', $6, $7, 0, 0, $8)",
                )
                .bind(program.0)
                .bind(Uuid::now_v7())
                .bind(topic)
                .bind(member.0)
                .bind(payload)
                .bind(unix_ms(at))
                .bind(at)
                .bind(secrets)
                .bind(Channel::Email.as_str())
                .execute(&mut *self)
                .await?;
                Ok(())
            }
        }
    };
}

/// `data` without the fields named in `secrets`, and those fields apart
/// (`None` when there are none).
fn split_secrets(data: &serde_json::Value, secrets: &[&str]) -> (String, Option<String>) {
    let mut public = data.clone();
    let Some(fields) = public.as_object_mut() else {
        return (data.to_string(), None);
    };
    let apart: serde_json::Map<String, serde_json::Value> = secrets
        .iter()
        .filter_map(|name| fields.remove(*name).map(|v| ((*name).to_owned(), v)))
        .collect();
    let apart = (!apart.is_empty()).then(|| serde_json::Value::Object(apart).to_string());
    (public.to_string(), apart)
}

/// A message's payload with its secret fields put back, for delivery (and
/// for the API while the message waits to be sent).
fn with_secrets(payload: String, secrets: Option<&str>) -> Result<String> {
    let Some(secrets) = secrets else {
        return Ok(payload);
    };
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("outbox secrets: {e}"));
    let mut data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&payload).map_err(corrupt)?;
    let secrets: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(secrets).map_err(corrupt)?;
    data.extend(secrets);
    Ok(serde_json::Value::Object(data).to_string())
}

impl_enqueue!(sqlx::SqliteConnection, sqlx::Sqlite);
impl_enqueue!(sqlx::PgConnection, sqlx::Postgres);

/// Unix milliseconds, the outbox's scheduling clock.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Delivered,
    /// Out of tries: waits for a manual retry.
    Dead,
    /// Not to be sent any more (consent withdrawn, endpoint deleted).
    Cancelled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(field: &str, raw: &str) -> std::result::Result<Self, sarafan_core::FieldError> {
        match raw {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(sarafan_core::FieldError::new(
                field,
                "must be one of: pending, delivered, dead, cancelled",
            )),
        }
    }
}

/// A message as the API shows it.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Uuid,
    pub channel: String,
    pub topic: String,
    pub endpoint: Option<Uuid>,
    pub member: Option<MemberId>,
    pub payload: String,
    pub status: MessageStatus,
    pub attempts: i32,
    pub due_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    message_id: Uuid,
    channel: String,
    topic: String,
    endpoint_id: Option<Uuid>,
    member_id: Option<Uuid>,
    payload: String,
    status: String,
    attempts: i32,
    tries: i32,
    due_ms: i64,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    delivered_at: Option<OffsetDateTime>,
    secrets: Option<String>,
}

const MESSAGE_COLUMNS: &str =
    "message_id, channel, topic, endpoint_id, member_id, payload, status, \
    attempts, tries, due_ms, last_error, created_at, delivered_at, secrets";

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self> {
        Ok(Self {
            id: r.message_id,
            status: MessageStatus::parse("status", &r.status)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            channel: r.channel,
            topic: r.topic,
            endpoint: r.endpoint_id,
            member: r.member_id.map(MemberId),
            payload: with_secrets(r.payload, r.secrets.as_deref())?,
            attempts: r.attempts,
            due_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.due_ms) * 1_000_000)
                .map_err(|e| StoreError::Corrupt(format!("outbox due time: {e}")))?,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        })
    }
}

/// One try of a message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i32,
    pub at: OffsetDateTime,
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A message a worker holds under a lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub program: ProgramId,
    pub message: Message,
    /// Tries since enqueued or manually retried, before this one.
    pub tries: i32,
    /// Fences the worker: its result is kept only while it holds the lease.
    pub lease_token: Uuid,
}

/// How a try ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Delivered,
    /// Failed; tried again at `retry_at` or, when `None`, dead-lettered.
    Failed {
        error: String,
        retry_at: Option<OffsetDateTime>,
    },
    /// Will never be sent (consent withdrawn, member erased, endpoint gone).
    Cancelled {
        reason: String,
    },
    /// Not tried now (quiet hours): due again then, no try counted.
    Deferred {
        until: OffsetDateTime,
    },
}

/// What a manual retry did.
#[derive(Debug, Clone)]
pub enum RetryOutcome {
    Queued(Message),
    NotFound,
    /// Only dead or cancelled messages are retried by hand.
    NotDead(MessageStatus),
}

impl Store {
    /// Claims up to `limit` due messages of `program` for `lease`. A message
    /// whose worker died is claimed again once its lease ran out, so delivery
    /// survives a crash (at least once: receivers de-duplicate by id).
    pub async fn claim_outbox(
        &self,
        program: ProgramId,
        at: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        let now_ms = unix_ms(at);
        let token = Uuid::now_v7();
        // The outer conditions repeat the inner ones so that PostgreSQL,
        // re-checking a row another worker just claimed, skips it.
        let sql = format!(
            "UPDATE outbox SET lease_ms = $3, lease_token = $4 \
             WHERE program_id = $1 AND status = 'pending' AND due_ms <= $2 \
               AND (lease_ms IS NULL OR lease_ms <= $2) \
               AND message_id IN (SELECT message_id FROM outbox WHERE program_id = $1 \
                   AND status = 'pending' AND due_ms <= $2 AND (lease_ms IS NULL OR lease_ms <= $2) \
                   ORDER BY due_ms, message_id LIMIT $5) \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let rows: Vec<MessageRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(now_ms)
                .bind(now_ms + lease.as_millis() as i64)
                .bind(token)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| {
                let tries = r.tries;
                Ok(Claimed {
                    program,
                    message: r.try_into()?,
                    tries,
                    lease_token: token,
                })
            })
            .collect()
    }
    /// Saves how one try ended; `false` when the lease was lost (another
    /// worker owns the message now) and nothing was saved.
    pub async fn finish_outbox(
        &self,
        c: &Claimed,
        finish: &Finish,
        duration: Duration,
    ) -> Result<bool> {
        let saved = self.finish_outbox_many(&[(c, finish, duration)]).await?;
        Ok(saved.first().copied().unwrap_or(false))
    }

    /// Saves how several tries ended, in one transaction (one commit for
    /// many deliveries); for each, `false` when its lease was lost.
    pub async fn finish_outbox_many(
        &self,
        tries: &[(&Claimed, &Finish, Duration)],
    ) -> Result<Vec<bool>> {
        let at = now();
        let saved = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut saved = Vec::with_capacity(tries.len());
            for (c, finish, duration) in tries {
                let (status, due, counted, error, outcome) = match finish {
                    Finish::Delivered => (
                        MessageStatus::Delivered,
                        unix_ms(at),
                        1,
                        None,
                        Some("delivered"),
                    ),
                    Finish::Failed { error, retry_at } => match retry_at {
                        Some(t) => (
                            MessageStatus::Pending,
                            unix_ms(*t),
                            1,
                            Some(error.as_str()),
                            Some("failed"),
                        ),
                        None => (
                            MessageStatus::Dead,
                            unix_ms(at),
                            1,
                            Some(error.as_str()),
                            Some("failed"),
                        ),
                    },
                    Finish::Cancelled { reason } => (
                        MessageStatus::Cancelled,
                        unix_ms(at),
                        1,
                        Some(reason.as_str()),
                        Some("cancelled"),
                    ),
                    Finish::Deferred { until } => {
                        (MessageStatus::Pending, unix_ms(*until), 0, None, None)
                    }
                };
                let attempts: Option<i32> = sqlx::query_scalar(
                    "UPDATE outbox SET status = $4, due_ms = $5, attempts = attempts + $6, tries = tries + $6, \
                       last_error = COALESCE($7, last_error), lease_ms = NULL, lease_token = NULL, \
                       secrets = CASE WHEN $4 = 'pending' THEN secrets END, \
                       delivered_at = CASE WHEN $4 = 'delivered' THEN $8 ELSE delivered_at END \
                     WHERE program_id = $1 AND message_id = $2 AND lease_token = $3 RETURNING attempts",
                )
                .bind(c.program.0)
                .bind(c.message.id)
                .bind(c.lease_token)
                .bind(status.as_str())
                .bind(due)
                .bind(counted)
                .bind(error)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                if let (Some(n), Some(outcome)) = (attempts, outcome) {
                    sqlx::query(
                        "INSERT INTO outbox_attempts (program_id, message_id, attempt, at, outcome, error, duration_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(c.program.0)
                    .bind(c.message.id)
                    .bind(n)
                    .bind(at)
                    .bind(outcome)
                    .bind(error)
                    .bind(duration.as_millis() as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                saved.push(attempts.is_some());
            }
            tx.commit().await?;
            saved
        });
        Ok(saved)
    }

    /// A page of `program`'s messages, oldest first, optionally of one
    /// status, and the `after` of the next page when there is one.
    pub async fn outbox_messages(
        &self,
        program: ProgramId,
        status: Option<MessageStatus>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<Uuid>)> {
        let size = page_size(limit);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbox WHERE program_id = $1 \
               AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR message_id > $3) \
             ORDER BY message_id LIMIT $4"
        );
        let rows: Vec<MessageRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(status.map(MessageStatus::as_str))
                .bind(after)
                .bind(rows_to_read(size))
                .fetch_all(pool)
                .await?
        });
        let mut items = rows
            .into_iter()
            .map(Message::try_from)
            .collect::<Result<Vec<_>>>()?;
        let next = cut(&mut items, size, |m| m.id);
        Ok((items, next))
    }

    /// One message with its attempts, oldest first.
    pub async fn outbox_message(
        &self,
        program: ProgramId,
        id: Uuid,
    ) -> Result<Option<(Message, Vec<Attempt>)>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbox WHERE program_id = $1 AND message_id = $2"
        );
        let (row, attempts): (Option<MessageRow>, Vec<Attempt>) = with_db!(self, read, |pool| {
            let row = sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .fetch_optional(pool)
                .await?;
            let attempts = sqlx::query_as(
                "SELECT attempt, at, outcome, error, duration_ms FROM outbox_attempts \
                 WHERE program_id = $1 AND message_id = $2 ORDER BY attempt",
            )
            .bind(program.0)
            .bind(id)
            .fetch_all(pool)
            .await?;
            (row, attempts)
        });
        row.map(|r| Ok((Message::try_from(r)?, attempts)))
            .transpose()
    }

    /// Queues a dead (or cancelled) message again, due now, with a fresh
    /// budget of tries; its past attempts stay on record.
    pub async fn retry_outbox(&self, program: ProgramId, id: Uuid) -> Result<RetryOutcome> {
        let sql = format!(
            "UPDATE outbox SET status = 'pending', tries = 0, due_ms = $3, lease_ms = NULL, lease_token = NULL \
             WHERE program_id = $1 AND message_id = $2 AND status IN ('dead', 'cancelled') \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let row: Option<MessageRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .bind(unix_ms(now()))
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => Ok(RetryOutcome::Queued(r.try_into()?)),
            None => Ok(match self.outbox_message(program, id).await? {
                Some((m, _)) => RetryOutcome::NotDead(m.status),
                None => RetryOutcome::NotFound,
            }),
        }
    }

    /// The key that signs `program`'s unsubscribe links, made on first use.
    pub async fn unsubscribe_key(&self, program: ProgramId) -> Result<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO messaging_keys (program_id, unsubscribe_key, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (program_id) DO NOTHING",
            )
            .bind(program.0)
            .bind(&fresh[..])
            .bind(now())
            .execute(pool)
            .await?;
            Ok(sqlx::query_scalar(
                "SELECT unsubscribe_key FROM messaging_keys WHERE program_id = $1",
            )
            .bind(program.0)
            .fetch_one(pool)
            .await?)
        })
    }
}

impl Store {
    /// Enqueues events in a transaction of their own, for callers with no
    /// change to commit beside them (scheduled messages such as the weekly
    /// share routine or points-expiry reminders).
    pub async fn enqueue(&self, program: ProgramId, events: &[Outgoing]) -> Result<usize> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let n = tx.enqueue(program, events).await?;
            tx.commit().await?;
            Ok(n)
        })
    }
}
