//! The weekly share routine's storage: a member's contacts, when each last
//! heard from the routine, and the contacts who unsubscribed. The voice and
//! portal channels use the same three calls as the HTTP API:
//! [`Store::set_share_routine`], [`Store::share_routine`],
//! [`Store::clear_share_routine`].

use crate::outbox::{Enqueue, Outgoing};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::Email;
use sarafan_core::outbox::Topic;
use sarafan_core::share::{contact_hash, EVERY};
use time::OffsetDateTime;
use uuid::Uuid;

/// A member's routine: empty `contacts` when they have not opted in.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareRoutine {
    pub member: MemberId,
    pub contacts: Vec<ShareContact>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ShareContact {
    pub email: String,
    pub added_at: OffsetDateTime,
    /// When the routine last queued the link for this contact.
    pub last_sent_at: Option<OffsetDateTime>,
    /// The contact followed the unsubscribe link: nothing more goes to them
    /// from any member's routine of this program.
    pub unsubscribed: bool,
}

/// Contacts claimed per transaction by the scheduler.
const BATCH: i64 = 500;

const CONTACTS: &str = "SELECT c.email, c.added_at, c.last_sent_at, \
    EXISTS (SELECT 1 FROM share_opt_outs o WHERE o.program_id = c.program_id \
        AND o.email_hash = c.email_hash) AS unsubscribed \
    FROM share_contacts c WHERE c.program_id = $1 AND c.member_id = $2 ORDER BY c.email";

impl Store {
    /// Opts the member in to the weekly share routine with `contacts`
    /// (checked by [`sarafan_core::share::parse_contacts`]), replacing the
    /// list they had. A contact kept from the old list keeps its schedule,
    /// so saving the list again sends nothing early. `None` when the program
    /// has no such member.
    pub async fn set_share_routine(
        &self,
        program: ProgramId,
        member: MemberId,
        contacts: &[Email],
    ) -> Result<Option<ShareRoutine>> {
        if self.member(program, member).await?.is_none() {
            return Ok(None);
        }
        let keep: Vec<&str> = contacts.iter().map(Email::as_str).collect();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let old: Vec<String> = sqlx::query_scalar(
                "SELECT email FROM share_contacts WHERE program_id = $1 AND member_id = $2",
            )
            .bind(program.0)
            .bind(member.0)
            .fetch_all(&mut *tx)
            .await?;
            for gone in old.iter().filter(|o| !keep.contains(&o.as_str())) {
                sqlx::query(
                    "DELETE FROM share_contacts WHERE program_id = $1 AND member_id = $2 AND email = $3",
                )
                .bind(program.0)
                .bind(member.0)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
            }
            for c in contacts {
                sqlx::query(
                    "INSERT INTO share_contacts (program_id, member_id, email, email_hash, added_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(program.0)
                .bind(member.0)
                .bind(c.as_str())
                .bind(&contact_hash(c)[..])
                .bind(now())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        self.share_routine(program, member).await
    }

    /// The member's routine; `None` when the program has no such member.
    pub async fn share_routine(
        &self,
        program: ProgramId,
        member: MemberId,
    ) -> Result<Option<ShareRoutine>> {
        if self.member(program, member).await?.is_none() {
            return Ok(None);
        }
        let contacts: Vec<ShareContact> = with_db!(self, read, |pool| {
            sqlx::query_as(CONTACTS)
                .bind(program.0)
                .bind(member.0)
                .fetch_all(pool)
                .await?
        });
        Ok(Some(ShareRoutine { member, contacts }))
    }

    /// Opts the member out: their contacts are forgotten and links queued
    /// for them but not sent yet are not sent. Returns whether the member
    /// had a routine.
    pub async fn clear_share_routine(&self, program: ProgramId, member: MemberId) -> Result<bool> {
        let removed = with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM share_contacts WHERE program_id = $1 AND member_id = $2")
                .bind(program.0)
                .bind(member.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }

    /// Whether a link queued for `contact` may still go out: the member
    /// still has them in the routine and they did not unsubscribe.
    pub async fn share_contact_active(
        &self,
        program: ProgramId,
        member: MemberId,
        contact: &Email,
    ) -> Result<bool> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM share_contacts c WHERE c.program_id = $1 AND c.member_id = $2 \
                 AND c.email = $3 AND NOT EXISTS (SELECT 1 FROM share_opt_outs o \
                     WHERE o.program_id = c.program_id AND o.email_hash = c.email_hash)",
            )
            .bind(program.0)
            .bind(member.0)
            .bind(contact.as_str())
            .fetch_one(pool)
            .await?
        }) > 0)
    }

    /// Records that the contact with this address hash wants nothing more
    /// from the program's share routines (their unsubscribe link).
    pub async fn opt_out_contact(&self, program: ProgramId, hash: &[u8; 32]) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO share_opt_outs (program_id, email_hash, at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(program.0)
            .bind(&hash[..])
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Queues a `share.weekly` message with the member's referral code for
    /// every contact of an active member who has not had one for a week and
    /// did not unsubscribe; returns how many. Each contact is claimed by
    /// moving its `last_sent_at` in the transaction that queues its message,
    /// so concurrent or repeated runs send nothing twice.
    pub async fn enqueue_weekly_shares(
        &self,
        program: ProgramId,
        at: OffsetDateTime,
    ) -> Result<usize> {
        let cutoff = at - EVERY;
        let mut queued = 0;
        loop {
            let due: Vec<(Uuid, String)> = with_db!(self, read, |pool| {
                sqlx::query_as(
                    "SELECT c.member_id, c.email FROM share_contacts c \
                     JOIN members m ON m.program_id = c.program_id AND m.member_id = c.member_id \
                     WHERE c.program_id = $1 AND m.status = 'active' \
                       AND (c.last_sent_at IS NULL OR c.last_sent_at <= $2) \
                       AND NOT EXISTS (SELECT 1 FROM share_opt_outs o \
                           WHERE o.program_id = c.program_id AND o.email_hash = c.email_hash) \
                     ORDER BY c.member_id, c.email LIMIT $3",
                )
                .bind(program.0)
                .bind(cutoff)
                .bind(BATCH)
                .fetch_all(pool)
                .await?
            });
            let mut codes: Vec<(Uuid, String)> = Vec::new();
            for (member, _) in &due {
                if codes.last().is_some_and(|(m, _)| m == member) {
                    continue;
                }
                if let Some(c) = self.referral_code_for(program, MemberId(*member)).await? {
                    codes.push((*member, c.code.to_string()));
                }
            }
            queued += with_db!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                let mut events = Vec::new();
                for (member, email) in &due {
                    let Some((_, code)) = codes.iter().find(|(m, _)| m == member) else {
                        continue;
                    };
                    let claimed = sqlx::query(
                        "UPDATE share_contacts SET last_sent_at = $4 WHERE program_id = $1 \
                         AND member_id = $2 AND email = $3 AND (last_sent_at IS NULL OR last_sent_at <= $5)",
                    )
                    .bind(program.0)
                    .bind(member)
                    .bind(email)
                    .bind(at)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if claimed {
                        events.push(Outgoing::to_contact(
                            Topic::ShareWeekly,
                            MemberId(*member),
                            email,
                            serde_json::json!({ "member_id": member, "referral_code": code }),
                        ));
                    }
                }
                tx.enqueue(program, &events).await?;
                tx.commit().await?;
                events.len()
            });
            if due.len() < BATCH as usize {
                return Ok(queued);
            }
        }
    }
}
