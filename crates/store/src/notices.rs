//! `points.expiring` notices: members are told, per asset and local expiry
//! date, what expires within the program's notice window. Each lot is
//! announced once: the `expiry_notice_lots` rows written beside the outbox
//! message make that hold across restarts and concurrent runs. A lot earned
//! after its day was announced brings a follow-up notice with the day's new
//! total; a day with nothing new brings none.

use crate::outbox::{Enqueue, Outgoing};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::outbox::{MessagingSettings, Topic};
use std::collections::{BTreeMap, HashSet};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Members handled per transaction.
const MEMBERS_PER_ROUND: i64 = 500;

/// Open lots expiring inside the window ($2, $3).
const WINDOW: &str = "FROM transfers l WHERE l.program_id = $1 AND l.remaining > 0 \
    AND l.expires_at IS NOT NULL AND l.expires_at > $2 AND l.expires_at < $3";

/// Whether a notice has told the member about lot `l`.
const ANNOUNCED: &str = "EXISTS (SELECT 1 FROM expiry_notice_lots k \
    WHERE k.program_id = l.program_id AND k.lot_id = l.transfer_id)";

/// One notice: what of one asset a member loses on one local day, and the
/// lots among it no notice has told about yet.
#[derive(Debug)]
struct Notice {
    member: Uuid,
    asset: String,
    day: Date,
    points: i64,
    new_lots: Vec<Uuid>,
}

impl Store {
    /// Enqueues a `points.expiring` message for every member, asset and
    /// local day on which points expire within the program's notice window
    /// (`settings.messaging.expiry_notice_days`) and some lot was not
    /// announced yet; returns how many notices were made.
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
            "SELECT DISTINCT l.member_id {WINDOW} AND NOT {ANNOUNCED} AND l.member_id > $4 \
             ORDER BY l.member_id LIMIT $5"
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
            // All their lots in the window, announced or not: a follow-up
            // tells the day's whole total.
            let lots_sql = format!(
                "SELECT l.transfer_id, l.member_id, l.asset, l.remaining, l.expires_at, {ANNOUNCED} \
                 {WINDOW} AND l.member_id IN ({})",
                crate::outbox::placeholders(4, members.len())
            );
            let lots: Vec<Lot> = with_db!(self, read, |pool| {
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

    /// Claims the notices' new lots and, in the same transaction, enqueues
    /// the notices that claimed any (another run may have been first).
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
            // Every new lot of the round in one sorted claim, so concurrent
            // runs take them in the same order; a notice goes out when it
            // claimed any of its lots.
            let mut lots: Vec<Uuid> = notices
                .iter()
                .flat_map(|n| n.new_lots.iter().copied())
                .collect();
            lots.sort_unstable();
            let mut claimed: HashSet<Uuid> = HashSet::new();
            let claimed_at = now();
            for chunk in lots.chunks(1000) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO expiry_notice_lots (program_id, lot_id, notified_at) ",
                );
                q.push_values(chunk, |mut b, lot| {
                    b.push_bind(program.0).push_bind(*lot).push_bind(claimed_at);
                });
                q.push(" ON CONFLICT DO NOTHING RETURNING lot_id");
                claimed.extend(q.build_query_scalar::<Uuid>().fetch_all(&mut *tx).await?);
            }
            let mut events = Vec::new();
            for n in notices {
                if n.new_lots.iter().any(|lot| claimed.contains(lot)) {
                    events.push(Outgoing::new(
                        Topic::PointsExpiring,
                        Some(MemberId(n.member)),
                        serde_json::json!({
                            "member_id": n.member,
                            "asset": n.asset,
                            "points": n.points,
                            "expires_on": n.day.to_string(),
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

/// A lot in the window: id, member, asset, remaining, expiry, announced.
type Lot = (Uuid, Uuid, String, i64, OffsetDateTime, bool);

/// Sums lots by member, asset and local expiry day; days without a new lot
/// need no notice.
fn group(settings: &MessagingSettings, lots: &[Lot]) -> Vec<Notice> {
    let mut days: BTreeMap<(Uuid, &str, Date), (i64, Vec<Uuid>)> = BTreeMap::new();
    for (lot, member, asset, remaining, expires_at, announced) in lots {
        let (points, new_lots) = days
            .entry((*member, asset.as_str(), settings.local(*expires_at).date()))
            .or_default();
        *points += remaining;
        if !announced {
            new_lots.push(*lot);
        }
    }
    days.into_iter()
        .filter(|(_, (_, new_lots))| !new_lots.is_empty())
        .map(|((member, asset, day), (points, new_lots))| Notice {
            member,
            asset: asset.to_owned(),
            day,
            points,
            new_lots,
        })
        .collect()
}
