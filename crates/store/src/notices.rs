//! `points.expiring` notices: members are told, once per asset and local
//! expiry date, what expires within the program's notice window. Lots are
//! only read; the `expiry_notices` row written beside the outbox message
//! makes the notice happen once, across restarts and concurrent runs.

use crate::outbox::{Enqueue, Outgoing};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::outbox::{MessagingSettings, Topic};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Members handled per transaction.
const MEMBERS_PER_ROUND: i64 = 500;

/// Lots in the window not covered by a notice yet.
const DUE: &str = "FROM lots l WHERE l.program_id = $1 AND l.remaining > 0 \
    AND l.expires_at IS NOT NULL AND l.expires_at > $2 AND l.expires_at < $3 \
    AND NOT EXISTS (SELECT 1 FROM expiry_notices n WHERE n.program_id = l.program_id \
        AND n.member_id = l.member_id AND n.asset = l.asset \
        AND l.expires_at >= n.day_from AND l.expires_at < n.day_until)";

/// One notice: what of one asset a member loses on one local day.
#[derive(Debug)]
struct Notice {
    member: Uuid,
    asset: String,
    day: Date,
    points: i64,
}

impl Store {
    /// Enqueues a `points.expiring` message for every member, asset and
    /// local day on which points expire within the program's notice window
    /// (`settings.messaging.expiry_notice_days`) and were not noticed yet;
    /// returns how many notices were made.
    pub async fn notify_expiring(&self, program: ProgramId, at: OffsetDateTime) -> Result<usize> {
        let Some(p) = self.program(program).await? else {
            return Ok(0);
        };
        let settings = &p.settings.messaging;
        if settings.expiry_notice_days == 0 {
            return Ok(0);
        }
        // To the end of the window's last local day, so that day's notice
        // sums all its lots.
        let last = at + time::Duration::days(i64::from(settings.expiry_notice_days));
        let until = settings.day_bounds(settings.local(last).date()).1;
        let members_sql = format!(
            "SELECT DISTINCT l.member_id {DUE} AND l.member_id > $4 ORDER BY l.member_id LIMIT $5"
        );
        let mut after = Uuid::nil();
        let mut made = 0;
        loop {
            let members: Vec<Uuid> = with_db!(self, read, |pool| {
                sqlx::query_scalar(&members_sql)
                    .bind(program.0)
                    .bind(at)
                    .bind(until)
                    .bind(after)
                    .bind(MEMBERS_PER_ROUND)
                    .fetch_all(pool)
                    .await?
            });
            let Some(last) = members.last() else {
                return Ok(made);
            };
            after = *last;
            let lots_sql = format!(
                "SELECT l.member_id, l.asset, l.remaining, l.expires_at {DUE} \
                 AND l.member_id IN ({})",
                crate::outbox::placeholders(4, members.len())
            );
            let lots: Vec<(Uuid, String, i64, OffsetDateTime)> = with_db!(self, read, |pool| {
                let mut q = sqlx::query_as(&lots_sql)
                    .bind(program.0)
                    .bind(at)
                    .bind(until);
                for m in &members {
                    q = q.bind(*m);
                }
                q.fetch_all(pool).await?
            });
            let notices = group(settings, &lots);
            made += self.record_notices(program, settings, at, &notices).await?;
            if members.len() < MEMBERS_PER_ROUND as usize {
                return Ok(made);
            }
        }
    }

    /// Writes the notices not written yet (another run may have been first)
    /// and, in the same transaction, their messages.
    async fn record_notices(
        &self,
        program: ProgramId,
        settings: &MessagingSettings,
        at: OffsetDateTime,
        notices: &[Notice],
    ) -> Result<usize> {
        let today = settings.local(at).date();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut events = Vec::new();
            for n in notices {
                let (from, until) = settings.day_bounds(n.day);
                let expires_on = n.day.to_string();
                let fresh = sqlx::query(
                    "INSERT INTO expiry_notices (program_id, member_id, asset, expires_on, \
                     day_from, day_until, points, notified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(program.0)
                .bind(n.member)
                .bind(&n.asset)
                .bind(&expires_on)
                .bind(from)
                .bind(until)
                .bind(n.points)
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if fresh {
                    events.push(Outgoing::new(
                        Topic::PointsExpiring,
                        Some(MemberId(n.member)),
                        serde_json::json!({
                            "member_id": n.member,
                            "asset": n.asset,
                            "points": n.points,
                            "expires_on": expires_on,
                            "days": (n.day - today).whole_days(),
                        }),
                    ));
                }
            }
            tx.enqueue(program, &events).await?;
            tx.commit().await?;
            Ok(events.len())
        })
    }
}

/// Sums lots by member, asset and local expiry day.
fn group(
    settings: &MessagingSettings,
    lots: &[(Uuid, String, i64, OffsetDateTime)],
) -> Vec<Notice> {
    let mut sums: BTreeMap<(Uuid, &str, Date), i64> = BTreeMap::new();
    for (member, asset, remaining, expires_at) in lots {
        *sums
            .entry((*member, asset.as_str(), settings.local(*expires_at).date()))
            .or_default() += remaining;
    }
    sums.into_iter()
        .map(|((member, asset, day), points)| Notice {
            member,
            asset: asset.to_owned(),
            day,
            points,
        })
        .collect()
}
