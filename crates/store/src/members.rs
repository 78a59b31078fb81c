//! Members of a program: idempotent registration, profile changes, blocking
//! and GDPR erasure.

use crate::outbox::{Enqueue, Outgoing};
use crate::paging::{cut, page_size, rows_to_read};
use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::{Consent, Email, ExternalId, MemberStatus, NewMember, Phone};
use sarafan_core::outbox::Topic;
use sarafan_core::program::Locale;
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub program_id: ProgramId,
    pub id: MemberId,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub status: MemberStatus,
    pub consent: Consent,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub erased_at: Option<OffsetDateTime>,
    /// The member card's serial ([`sarafan_core::card::card_number`]).
    pub card_serial: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    program_id: Uuid,
    member_id: Uuid,
    external_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    locale: Option<String>,
    status: String,
    consent_email: bool,
    consent_sms: bool,
    consent_messengers: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    erased_at: Option<OffsetDateTime>,
    card_serial: Option<i64>,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self> {
        Ok(Self {
            program_id: ProgramId(r.program_id),
            id: MemberId(r.member_id),
            status: MemberStatus::parse("status", &r.status)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            consent: Consent {
                email: r.consent_email,
                sms: r.consent_sms,
                messengers: r.consent_messengers,
            },
            external_id: r.external_id,
            email: r.email,
            phone: r.phone,
            name: r.name,
            locale: r.locale,
            created_at: r.created_at,
            updated_at: r.updated_at,
            erased_at: r.erased_at,
            card_serial: r.card_serial,
        })
    }
}

/// The columns a member is inserted with; reads add `card_serial`, which
/// the database numbers ([`READ`]).
pub(crate) const COLUMNS: &str =
    "program_id, member_id, external_id, email, phone, name, locale, status, \
    consent_email, consent_sms, consent_messengers, created_at, updated_at, erased_at";

/// What reads add to [`COLUMNS`].
pub(crate) const READ: &str = ", card_serial";

/// The `member.created` event.
fn member_created(m: &Member) -> Outgoing {
    Outgoing::new(
        Topic::MemberCreated,
        Some(m.id),
        serde_json::json!({ "member": {
            "id": m.id,
            "external_id": m.external_id,
            "email": m.email,
            "phone": m.phone,
            "name": m.name,
            "locale": m.locale,
            "consent": m.consent,
        }}),
    )
}

/// What registering did.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    Created(Member),
    /// The same registration was made before: nothing changed.
    Existing(Member),
    /// The identifiers belong to a member (or several) whose data differs in
    /// the named fields; registration never overwrites, a PATCH does.
    Conflict(Vec<&'static str>),
}

/// Changes to a member. The outer `Option` says whether to touch a field, the
/// inner one whether to set or clear it.
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub external_id: Option<Option<ExternalId>>,
    pub email: Option<Option<Email>>,
    pub phone: Option<Option<Phone>>,
    pub name: Option<Option<String>>,
    pub locale: Option<Option<Locale>>,
    pub consent: ConsentChange,
    /// Active or blocked; erasure has its own call.
    pub status: Option<MemberStatus>,
}

/// Consents to change; `None` keeps the current answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsentChange {
    pub email: Option<bool>,
    pub sms: Option<bool>,
    pub messengers: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    Updated(Box<Member>),
    NotFound,
    /// Erased members keep only their pseudonymous id and cannot change.
    Erased,
    /// Another member already holds this identifier.
    Taken(&'static str),
    /// The change would leave the member with no identifier at all.
    Unidentified,
}

#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub status: Option<MemberStatus>,
    /// The member card's serial.
    pub card_serial: Option<i64>,
    /// Only members created after this one (keyset pagination).
    pub after: Option<MemberId>,
    pub limit: u32,
}

/// A search for members (the console's search box): any member whose
/// name contains `name_contains` (case-insensitive where the database
/// folds case: PostgreSQL everywhere, SQLite for ASCII), or whose e-mail,
/// phone, store id or card is exactly the one given. Nothing given: every
/// member. Erased members are never found.
#[derive(Debug, Clone, Default)]
pub struct MemberSearch {
    pub name_contains: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub external_id: Option<String>,
    pub card_serial: Option<i64>,
    /// Only members created after this one (keyset pagination).
    pub after: Option<MemberId>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct MemberPage {
    pub items: Vec<Member>,
    /// Pass as `after` to get the next page; `None` on the last one.
    pub next: Option<MemberId>,
}

/// The fields of `want` that differ from `have`; empty when `want` is a repeat.
pub(crate) fn differences(want: &NewMember, have: &Member) -> Vec<&'static str> {
    fn differs(want: Option<&str>, have: &Option<String>) -> bool {
        want.is_some_and(|w| have.as_deref() != Some(w))
    }
    let mut fields = Vec::new();
    let checks = [
        (
            "external_id",
            want.external_id.as_ref().map(ExternalId::as_str),
            &have.external_id,
        ),
        ("email", want.email.as_ref().map(Email::as_str), &have.email),
        ("phone", want.phone.as_ref().map(Phone::as_str), &have.phone),
        ("name", want.name.as_deref(), &have.name),
        (
            "locale",
            want.locale.as_ref().map(Locale::as_str),
            &have.locale,
        ),
    ];
    for (field, w, h) in checks {
        if differs(w, h) {
            fields.push(field);
        }
    }
    fields
}

/// Which identifier a unique violation is about.
fn taken_field(err: &StoreError) -> Option<&'static str> {
    let StoreError::Database(sqlx::Error::Database(db)) = err else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
    ["external_id", "email", "phone"]
        .into_iter()
        .find(|f| text.contains(f))
}

fn is_check_violation(err: &StoreError) -> bool {
    matches!(err, StoreError::Database(sqlx::Error::Database(db))
        if db.kind() == sqlx::error::ErrorKind::CheckViolation)
}

impl Store {
    /// Registers a member, idempotently on their identifiers: repeating a
    /// registration returns the member it created; one that contradicts an
    /// existing member is a conflict and changes nothing.
    pub async fn register_member(&self, program: ProgramId, m: &NewMember) -> Result<Registration> {
        // A concurrent registration with the same identifiers can win the
        // insert; the loser then finds the winner's row on the second pass.
        for _ in 0..2 {
            let found = self.members_matching(program, m).await?;
            match found.as_slice() {
                [] => {}
                [one] => {
                    let diff = differences(m, one);
                    return Ok(if diff.is_empty() {
                        Registration::Existing(one.clone())
                    } else {
                        Registration::Conflict(diff)
                    });
                }
                many => {
                    let mut fields: Vec<_> = many.iter().flat_map(|h| differences(m, h)).collect();
                    fields.sort_unstable();
                    fields.dedup();
                    return Ok(Registration::Conflict(fields));
                }
            }
            match self.insert_member(program, m).await {
                Ok(member) => return Ok(Registration::Created(member)),
                Err(e) if e.is_unique_violation() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Corrupt(
            "member registration kept racing".into(),
        ))
    }

    async fn members_matching(&self, program: ProgramId, m: &NewMember) -> Result<Vec<Member>> {
        let sql = format!(
            "SELECT {COLUMNS}{READ} FROM members WHERE program_id = $1 \
             AND (external_id = $2 OR email = $3 OR phone = $4) ORDER BY member_id"
        );
        let rows: Vec<MemberRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(m.external_id.as_ref().map(ExternalId::as_str))
                .bind(m.email.as_ref().map(Email::as_str))
                .bind(m.phone.as_ref().map(Phone::as_str))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Member::try_from).collect()
    }

    async fn insert_member(&self, program: ProgramId, m: &NewMember) -> Result<Member> {
        let at = now();
        let sql = format!(
            "INSERT INTO members ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10, $11, $11, NULL) RETURNING {COLUMNS}{READ}"
        );
        // The welcome e-mail and the member.created webhooks are written
        // with the member: both or neither.
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row: MemberRow = sqlx::query_as(&sql)
                .bind(program.0)
                .bind(MemberId::generate().0)
                .bind(m.external_id.as_ref().map(ExternalId::as_str))
                .bind(m.email.as_ref().map(Email::as_str))
                .bind(m.phone.as_ref().map(Phone::as_str))
                .bind(m.name.as_deref())
                .bind(m.locale.as_ref().map(Locale::as_str))
                .bind(m.consent.email)
                .bind(m.consent.sms)
                .bind(m.consent.messengers)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            let mut member = Member::try_from(row)?;
            // SQLite numbers the card in a trigger after the insert, which
            // RETURNING does not see.
            member.card_serial = sqlx::query_scalar(
                "SELECT card_serial FROM members WHERE program_id = $1 AND member_id = $2",
            )
            .bind(program.0)
            .bind(member.id.0)
            .fetch_one(&mut *tx)
            .await?;
            tx.enqueue(program, &[member_created(&member)]).await?;
            tx.commit().await?;
            Ok(member)
        })
    }

    pub async fn member(&self, program: ProgramId, id: MemberId) -> Result<Option<Member>> {
        let sql =
            format!("SELECT {COLUMNS}{READ} FROM members WHERE program_id = $1 AND member_id = $2");
        let row: Option<MemberRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(Member::try_from).transpose()
    }

    /// The store's ids of these members (those that have one), in one
    /// query: exports name members as the store knows them.
    pub async fn external_ids(
        &self,
        program: ProgramId,
        members: &[MemberId],
    ) -> Result<HashMap<MemberId, String>> {
        if members.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, String)> = with_db!(self, read, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT member_id, external_id FROM members WHERE external_id IS NOT NULL AND program_id = ",
            );
            q.push_bind(program.0).push(" AND member_id IN (");
            let mut list = q.separated(", ");
            for m in members {
                list.push_bind(m.0);
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, ext)| (MemberId(id), ext))
            .collect())
    }

    pub async fn members(&self, program: ProgramId, f: &MemberFilter) -> Result<MemberPage> {
        let size = page_size(f.limit);
        let sql = format!(
            "SELECT {COLUMNS}{READ} FROM members WHERE program_id = $1 \
               AND ($2 IS NULL OR member_id > $2) AND ($3 IS NULL OR external_id = $3) \
               AND ($4 IS NULL OR email = $4) AND ($5 IS NULL OR phone = $5) \
               AND ($6 IS NULL OR status = $6) AND ($8 IS NULL OR card_serial = $8) \
             ORDER BY member_id LIMIT $7"
        );
        let rows: Vec<MemberRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(f.after.map(|a| a.0))
                .bind(f.external_id.as_deref())
                .bind(f.email.as_deref())
                .bind(f.phone.as_deref())
                .bind(f.status.map(MemberStatus::as_str))
                .bind(rows_to_read(size))
                .bind(f.card_serial)
                .fetch_all(pool)
                .await?
        });
        let mut items = rows
            .into_iter()
            .map(Member::try_from)
            .collect::<Result<Vec<_>>>()?;
        let next = cut(&mut items, size, |m| m.id);
        Ok(MemberPage { items, next })
    }

    /// Members matching a search, in the order they joined; see
    /// [`MemberSearch`].
    pub async fn search_members(&self, program: ProgramId, q: &MemberSearch) -> Result<MemberPage> {
        let size = page_size(q.limit);
        let like = |t: &str| {
            let escaped = t
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        };
        // Folded, and as typed: SQLite's LOWER folds ASCII only, so a
        // Cyrillic or Persian name is found as typed (or in lower case).
        let pattern = q.name_contains.as_deref().map(|t| like(&t.to_lowercase()));
        let as_typed = q.name_contains.as_deref().map(like);
        let any = pattern.is_some()
            || q.email.is_some()
            || q.phone.is_some()
            || q.external_id.is_some()
            || q.card_serial.is_some();
        let sql = format!(
            "SELECT {COLUMNS}{READ} FROM members WHERE program_id = $1 AND status <> 'erased' \
               AND ($2 IS NULL OR member_id > $2) \
               AND ($3 = 0 OR LOWER(name) LIKE $4 ESCAPE '\\' OR name LIKE $10 ESCAPE '\\' \
                    OR email = $5 OR phone = $6 OR external_id = $7 OR card_serial = $8) \
             ORDER BY member_id LIMIT $9"
        );
        let rows: Vec<MemberRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(q.after.map(|a| a.0))
                .bind(i64::from(any))
                .bind(pattern.as_deref())
                .bind(q.email.as_deref())
                .bind(q.phone.as_deref())
                .bind(q.external_id.as_deref())
                .bind(q.card_serial)
                .bind(rows_to_read(size))
                .bind(as_typed.as_deref())
                .fetch_all(pool)
                .await?
        });
        let mut items = rows
            .into_iter()
            .map(Member::try_from)
            .collect::<Result<Vec<_>>>()?;
        let next = cut(&mut items, size, |m| m.id);
        Ok(MemberPage { items, next })
    }

    /// Applies a patch in one statement, so concurrent patches never lose
    /// each other's fields.
    pub async fn update_member(
        &self,
        program: ProgramId,
        id: MemberId,
        p: &MemberPatch,
    ) -> Result<PatchOutcome> {
        let sql = format!(
            "UPDATE members SET \
               external_id = CASE WHEN $3 THEN $4 ELSE external_id END, \
               email = CASE WHEN $5 THEN $6 ELSE email END, \
               phone = CASE WHEN $7 THEN $8 ELSE phone END, \
               name = CASE WHEN $9 THEN $10 ELSE name END, \
               locale = CASE WHEN $11 THEN $12 ELSE locale END, \
               consent_email = COALESCE($13, consent_email), \
               consent_sms = COALESCE($14, consent_sms), \
               consent_messengers = COALESCE($15, consent_messengers), \
               status = COALESCE($16, status), updated_at = $17 \
             WHERE program_id = $1 AND member_id = $2 AND status <> 'erased' RETURNING {COLUMNS}{READ}"
        );
        fn flat(o: Option<Option<&str>>) -> (bool, Option<&str>) {
            (o.is_some(), o.flatten())
        }
        let ext = flat(
            p.external_id
                .as_ref()
                .map(|v| v.as_ref().map(ExternalId::as_str)),
        );
        let email = flat(p.email.as_ref().map(|v| v.as_ref().map(Email::as_str)));
        let phone = flat(p.phone.as_ref().map(|v| v.as_ref().map(Phone::as_str)));
        let name = flat(p.name.as_ref().map(|v| v.as_deref()));
        let locale = flat(p.locale.as_ref().map(|v| v.as_ref().map(Locale::as_str)));
        let result: Result<Option<MemberRow>> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id.0)
                .bind(ext.0)
                .bind(ext.1)
                .bind(email.0)
                .bind(email.1)
                .bind(phone.0)
                .bind(phone.1)
                .bind(name.0)
                .bind(name.1)
                .bind(locale.0)
                .bind(locale.1)
                .bind(p.consent.email)
                .bind(p.consent.sms)
                .bind(p.consent.messengers)
                .bind(p.status.map(MemberStatus::as_str))
                .bind(now())
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)
        });
        match result {
            Ok(Some(row)) => Ok(PatchOutcome::Updated(Box::new(row.try_into()?))),
            Ok(None) => Ok(match self.member(program, id).await? {
                Some(_) => PatchOutcome::Erased,
                None => PatchOutcome::NotFound,
            }),
            Err(e) => match taken_field(&e) {
                Some(field) => Ok(PatchOutcome::Taken(field)),
                None if is_check_violation(&e) => Ok(PatchOutcome::Unidentified),
                None => Err(e),
            },
        }
    }

    /// Removes a member's personal data (GDPR art. 17). The row and its id
    /// stay, so ledger postings still balance and point at a pseudonym.
    /// Erasing twice is harmless and keeps the first erasure time.
    pub async fn erase_member(&self, program: ProgramId, id: MemberId) -> Result<Option<Member>> {
        let sql = format!(
            "UPDATE members SET external_id = NULL, email = NULL, phone = NULL, name = NULL, \
               status = 'erased', consent_email = $3, consent_sms = $3, consent_messengers = $3, \
               erased_at = COALESCE(erased_at, $4), updated_at = $4 \
             WHERE program_id = $1 AND member_id = $2 RETURNING {COLUMNS}{READ}"
        );
        // The requests of the member's events carry their identifiers too;
        // their outcomes (the ledger's reasons) stay.
        let scrubbed = sqlx::types::Json(serde_json::json!({ "erased": true }));
        let row: Option<MemberRow> = with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id.0)
                .bind(false)
                .bind(now())
                .fetch_optional(&mut *tx)
                .await?;
            let sql = format!(
                "UPDATE {} SET request = $3 WHERE program_id = $1 AND member_id = $2{}",
                self.by_member_table("events"),
                self.by_member_key("member_id", "$2")
            );
            sqlx::query(&sql)
                .bind(program.0)
                .bind(id.0)
                .bind(&scrubbed)
                .execute(&mut *tx)
                .await?;
            // Their share routine's contacts go too.
            sqlx::query("DELETE FROM share_contacts WHERE program_id = $1 AND member_id = $2")
                .bind(program.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            // The identifiers their referral kept for fraud checks go too.
            sqlx::query(
                "UPDATE referrals SET email_norm = NULL, phone = NULL, payment_fp = NULL, \
                   device_hash = NULL, ip_hash = NULL WHERE program_id = $1 AND friend_id = $2",
            )
            .bind(program.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        });
        row.map(Member::try_from).transpose()
    }

    /// The member's events as they were sent, oldest first (for exports).
    pub async fn member_events(
        &self,
        program: ProgramId,
        id: MemberId,
    ) -> Result<Vec<MemberEvent>> {
        let rows: Vec<(
            String,
            String,
            OffsetDateTime,
            sqlx::types::Json<serde_json::Value>,
        )> = with_db!(self, read, |pool| {
            sqlx::query_as(&format!(
                "SELECT event_key, kind, occurred_at, request FROM {} \
                     WHERE program_id = $1 AND member_id = $2{} ORDER BY occurred_at, event_key",
                self.by_member_table("events"),
                self.by_member_key("member_id", "$2")
            ))
            .bind(program.0)
            .bind(id.0)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(key, kind, at, request)| MemberEvent {
                key,
                kind,
                at,
                request: request.0,
            })
            .collect())
    }
}

/// One event of a member, as the store sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberEvent {
    pub key: String,
    pub kind: String,
    pub at: OffsetDateTime,
    pub request: serde_json::Value,
}
