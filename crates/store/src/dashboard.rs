//! What the console's dashboard reads: member counts, the points booked per
//! day, and the top referrers of a period. Every query is scoped by the
//! program and reads a range of a time-ordered key where one exists
//! (transfer ids are UUIDv7: a period is one range of the primary key).

use crate::{with_db, Backend, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Members of a program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Members not erased.
    pub total: i64,
    /// Joined since the period began.
    pub new: i64,
    /// With points booked (earned, spent, given) in the last 30 days.
    pub active: i64,
}

/// Points booked on one day (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayFlow {
    /// Earned, and given by hand.
    pub issued: i64,
    pub redeemed: i64,
    pub expired: i64,
}

/// A member whose friends signed up in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct TopReferrer {
    pub member: MemberId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub signups: i64,
    pub qualified: i64,
}

/// A top referrer as read: id, name, e-mail, sign-ups, qualified.
type ReferrerRow = (Uuid, Option<String>, Option<String>, i64, i64);

/// The smallest UUIDv7 of `at`: every id made at or after `at` sorts at or
/// after it.
fn first_id_at(at: OffsetDateTime) -> Uuid {
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10]).into_uuid()
}

impl Store {
    /// Members in total, joined since `new_since`, and active (any points
    /// booked) since `active_since`.
    pub async fn member_counts(
        &self,
        program: ProgramId,
        new_since: OffsetDateTime,
        active_since: OffsetDateTime,
    ) -> Result<MemberCounts> {
        let (total, new): (i64, i64) = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END), 0) \
                 FROM members WHERE program_id = $1 AND status <> 'erased'",
            )
            .bind(program.0)
            .bind(new_since)
            .fetch_one(pool)
            .await?
        });
        let active: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(DISTINCT member_id) FROM transfers WHERE program_id = $1 AND transfer_id >= $2",
            )
            .bind(program.0)
            .bind(first_id_at(active_since))
            .fetch_one(pool)
            .await?
        });
        Ok(MemberCounts { total, new, active })
    }

    /// Points (asset `points`) issued, redeemed and expired per day (UTC)
    /// in `[from, to)`; days with nothing booked are left out.
    pub async fn points_by_day(
        &self,
        program: ProgramId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<BTreeMap<Date, DayFlow>> {
        let day = match self.backend() {
            Backend::Sqlite => "substr(created_at, 1, 10)",
            Backend::Postgres => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        };
        let sql = format!(
            "SELECT {day} AS day, program_account, CAST(SUM(amount) AS BIGINT) FROM transfers \
             WHERE program_id = $1 AND transfer_id >= $2 AND transfer_id < $3 AND asset = 'points' \
               AND state = 'posted' AND (program_account <> 'adjustment' OR amount > 0) \
             GROUP BY 1, 2"
        );
        let rows: Vec<(String, String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(first_id_at(from))
                .bind(first_id_at(to))
                .fetch_all(pool)
                .await?
        });
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let mut days: BTreeMap<Date, DayFlow> = BTreeMap::new();
        for (day, account, sum) in rows {
            let Ok(day) = Date::parse(&day, &format) else {
                continue;
            };
            let flow = days.entry(day).or_default();
            match account.as_str() {
                "issued" | "adjustment" => flow.issued += sum,
                "redeemed" => flow.redeemed -= sum,
                "expired" => flow.expired -= sum,
                _ => {}
            }
        }
        Ok(days)
    }

    /// The members whose friends signed up in `[from, to)` the most (not
    /// counting rejected referrals), with how many of them qualified.
    pub async fn top_referrers(
        &self,
        program: ProgramId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<TopReferrer>> {
        let rows: Vec<ReferrerRow> = with_db!(self, read, |pool| {
            sqlx::query_as(
                    "SELECT r.referrer_id, m.name, m.email, COUNT(*) AS signups, \
                       CAST(SUM(CASE WHEN r.status = 'qualified' OR r.status = 'rewarded' THEN 1 ELSE 0 END) AS BIGINT) \
                     FROM referrals r JOIN members m ON m.program_id = r.program_id AND m.member_id = r.referrer_id \
                     WHERE r.program_id = $1 AND r.signed_up_at >= $2 AND r.signed_up_at < $3 \
                       AND r.status <> 'rejected' \
                     GROUP BY r.referrer_id, m.name, m.email ORDER BY signups DESC, r.referrer_id LIMIT $4",
                )
                .bind(program.0)
                .bind(from)
                .bind(to)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, name, email, signups, qualified)| TopReferrer {
                member: MemberId(id),
                name,
                email,
                signups,
                qualified,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_bounds_sort_before_every_id_of_their_time() {
        let at = time::macros::datetime!(2026-03-01 12:00 UTC);
        let bound = first_id_at(at);
        let same_ms = uuid::Builder::from_unix_timestamp_millis(
            u64::try_from(at.unix_timestamp() * 1000).unwrap(),
            &[0xff; 10],
        )
        .into_uuid();
        let before = first_id_at(at - time::Duration::milliseconds(1));
        assert!(bound <= same_ms);
        assert!(before < bound);
        assert!(bound.as_bytes() <= same_ms.as_bytes());
    }
}
