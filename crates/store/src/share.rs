//! The weekly share routine's storage: a member's contacts, when each last
//! heard from the routine, the contacts invited once, those who opted in
//! to more and those who unsubscribed, and the members' own weekly
//! reminders. The voice and
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
    /// The contact asked (with the link in their invitation) to get the
    /// member's link weekly; without it they are invited once only.
    pub opted_in: bool,
}

/// Contacts claimed per transaction by the scheduler.
const BATCH: i64 = 500;

const CONTACTS: &str = "SELECT c.email, c.added_at, c.last_sent_at, \
    EXISTS (SELECT 1 FROM share_opt_outs o WHERE o.program_id = c.program_id \
        AND o.email_hash = c.email_hash) AS unsubscribed, \
    EXISTS (SELECT 1 FROM share_opt_ins i WHERE i.program_id = c.program_id \
        AND i.email_hash = c.email_hash) AS opted_in \
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
    /// from the program's share routines (their unsubscribe link); an
    /// earlier opt-in ends.
    pub async fn opt_out_contact(&self, program: ProgramId, hash: &[u8; 32]) -> Result<()> {
        self.contact_choice(program, hash, "share_opt_outs", "share_opt_ins")
            .await
    }

    /// Records that the contact with this address hash asked for members'
    /// weekly links (the link in their invitation); an earlier unsubscribe
    /// ends.
    pub async fn opt_in_contact(&self, program: ProgramId, hash: &[u8; 32]) -> Result<()> {
        self.contact_choice(program, hash, "share_opt_ins", "share_opt_outs")
            .await
    }

    /// A contact's latest choice: recorded in `into`, removed from `from`.
    async fn contact_choice(
        &self,
        program: ProgramId,
        hash: &[u8; 32],
        into: &str,
        from: &str,
    ) -> Result<()> {
        let insert = format!(
            "INSERT INTO {into} (program_id, email_hash, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        );
        let delete = format!("DELETE FROM {from} WHERE program_id = $1 AND email_hash = $2");
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(&insert)
                .bind(program.0)
                .bind(&hash[..])
                .bind(now())
                .execute(&mut *tx)
                .await?;
            sqlx::query(&delete)
                .bind(program.0)
                .bind(&hash[..])
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The weekly round of the share routines; returns the messages queued.
    /// Each member with a routine gets a `share.weekly` reminder with their
    /// own link at most once per [`EVERY`] (as an automated e-mail: their
    /// consent counts). Each contact gets one invitation from the program
    /// ever (`share.weekly` to the contact), and more, weekly, only once
    /// they opted in. Every send is claimed in the transaction that queues
    /// it, so concurrent or repeated runs send nothing twice.
    pub async fn enqueue_weekly_shares(
        &self,
        program: ProgramId,
        at: OffsetDateTime,
    ) -> Result<usize> {
        Ok(self.enqueue_share_reminders(program, at).await?
            + self.enqueue_share_invitations(program, at).await?)
    }

    /// The referral codes of `members` (sorted; repeats skipped).
    async fn codes_of(&self, program: ProgramId, members: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
        let mut codes: Vec<(Uuid, String)> = Vec::new();
        for member in members {
            if codes.last().is_some_and(|(m, _)| m == member) {
                continue;
            }
            if let Some(c) = self.referral_code_for(program, MemberId(*member)).await? {
                codes.push((*member, c.code.to_string()));
            }
        }
        Ok(codes)
    }

    async fn enqueue_share_reminders(
        &self,
        program: ProgramId,
        at: OffsetDateTime,
    ) -> Result<usize> {
        let cutoff = at - EVERY;
        let mut queued = 0;
        loop {
            let due: Vec<Uuid> = with_db!(self, read, |pool| {
                sqlx::query_scalar(
                    "SELECT DISTINCT c.member_id FROM share_contacts c \
                     JOIN members m ON m.program_id = c.program_id AND m.member_id = c.member_id \
                     WHERE c.program_id = $1 AND m.status = 'active' \
                       AND NOT EXISTS (SELECT 1 FROM share_reminders r WHERE r.program_id = c.program_id \
                           AND r.member_id = c.member_id AND r.last_sent_at > $2) \
                     ORDER BY c.member_id LIMIT $3",
                )
                .bind(program.0)
                .bind(cutoff)
                .bind(BATCH)
                .fetch_all(pool)
                .await?
            });
            let codes = self.codes_of(program, &due).await?;
            queued += with_db!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                let mut events = Vec::new();
                for (member, code) in &codes {
                    let claimed = sqlx::query(
                        "INSERT INTO share_reminders (program_id, member_id, last_sent_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (program_id, member_id) DO UPDATE SET last_sent_at = excluded.last_sent_at \
                         WHERE share_reminders.last_sent_at <= $4",
                    )
                    .bind(program.0)
                    .bind(member)
                    .bind(at)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if claimed {
                        events.push(Outgoing::new(
                            Topic::ShareWeekly,
                            Some(MemberId(*member)),
                            serde_json::json!({ "member_id": member, "referral_code": code,
                                "program_id": program.0 }),
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

    async fn enqueue_share_invitations(
        &self,
        program: ProgramId,
        at: OffsetDateTime,
    ) -> Result<usize> {
        let cutoff = at - EVERY;
        let mut queued = 0;
        loop {
            let due: Vec<(Uuid, String, Vec<u8>)> = with_db!(self, read, |pool| {
                sqlx::query_as(
                    "SELECT c.member_id, c.email, c.email_hash FROM share_contacts c \
                     JOIN members m ON m.program_id = c.program_id AND m.member_id = c.member_id \
                     WHERE c.program_id = $1 AND m.status = 'active' \
                       AND NOT EXISTS (SELECT 1 FROM share_opt_outs o \
                           WHERE o.program_id = c.program_id AND o.email_hash = c.email_hash) \
                       AND (NOT EXISTS (SELECT 1 FROM share_invited i \
                               WHERE i.program_id = c.program_id AND i.email_hash = c.email_hash) \
                            OR (EXISTS (SELECT 1 FROM share_opt_ins i \
                               WHERE i.program_id = c.program_id AND i.email_hash = c.email_hash) \
                                AND (c.last_sent_at IS NULL OR c.last_sent_at <= $2))) \
                     ORDER BY c.member_id, c.email LIMIT $3",
                )
                .bind(program.0)
                .bind(cutoff)
                .bind(BATCH)
                .fetch_all(pool)
                .await?
            });
            let members: Vec<Uuid> = due.iter().map(|(m, _, _)| *m).collect();
            let codes = self.codes_of(program, &members).await?;
            queued += with_db!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                let mut events = Vec::new();
                for (member, email, hash) in &due {
                    let Some((_, code)) = codes.iter().find(|(m, _)| m == member) else {
                        continue;
                    };
                    // The first invitation claims the address for good; a
                    // later one needs the opt-in and a week's wait.
                    let first = sqlx::query(
                        "INSERT INTO share_invited (program_id, email_hash, at) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(program.0)
                    .bind(hash)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    let claimed = sqlx::query(
                        "UPDATE share_contacts SET last_sent_at = $4 WHERE program_id = $1 \
                         AND member_id = $2 AND email = $3 AND ($5 OR ((last_sent_at IS NULL OR last_sent_at <= $6) \
                         AND EXISTS (SELECT 1 FROM share_opt_ins i WHERE i.program_id = $1 \
                             AND i.email_hash = share_contacts.email_hash)))",
                    )
                    .bind(program.0)
                    .bind(member)
                    .bind(email)
                    .bind(at)
                    .bind(first)
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
