//! Reading referrals: one with its rewards, lists (the review queue among
//! them), a referrer's progress and the program's funnel.

use super::{Referral, ReferralRow, RewardRecord, RewardRow, REFERRAL_COLUMNS, REWARD_COLUMNS};
use crate::paging::{cut, page_size, rows_to_read};
use crate::{with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::referral::rules::{active_version, ActionKind};
use sarafan_core::referral::{Qualifying, ReferralRules, ReferralState};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct ReferralFilter {
    pub status: Option<ReferralState>,
    pub referrer: Option<MemberId>,
    /// Only referrals after this one (keyset pagination).
    pub after: Option<Uuid>,
    pub limit: u32,
}

/// A referrer's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Friends bound to the member, whatever became of them.
    pub invited: u64,
    /// Friends signed up and not rejected.
    pub signed_up: u64,
    pub in_review: u64,
    pub rejected: u64,
    /// Friends who did the qualifying action.
    pub qualified: u64,
    /// The member's rewards (as referrer or further up, and as a friend).
    pub rewards: Vec<RewardRecord>,
}

/// One group of the funnel: a day and a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelRow {
    pub signups: u64,
    pub qualified: u64,
    /// What referred friends spent (net of refunds), minor units.
    pub revenue: i64,
    /// What the rewards cost, minor units.
    pub reward_cost: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Funnel {
    pub total: FunnelRow,
    pub by_channel: BTreeMap<String, FunnelRow>,
    pub by_day: BTreeMap<Date, FunnelRow>,
}

impl Funnel {
    fn add(&mut self, day: Date, channel: &str, f: impl Fn(&mut FunnelRow)) {
        f(&mut self.total);
        f(self.by_channel.entry(channel.to_owned()).or_default());
        f(self.by_day.entry(day).or_default());
    }
}

impl Store {
    /// One referral with its rewards.
    pub async fn referral(&self, program: ProgramId, id: Uuid) -> Result<Option<Referral>> {
        let sql = format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE program_id = $1 AND referral_id = $2"
        );
        let row: Option<ReferralRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let mut r = Referral::try_from(row)?;
        let sql = format!(
            "SELECT {REWARD_COLUMNS} FROM referral_rewards WHERE program_id = $1 AND referral_id = $2 \
             ORDER BY level, member_id"
        );
        let rows: Vec<RewardRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .fetch_all(pool)
                .await?
        });
        r.rewards = rows.into_iter().map(|r| r.into_record().1).collect();
        let mut one = [r];
        self.show_qualification_in_review(program, &mut one).await?;
        let [r] = one;
        Ok(Some(r))
    }

    /// Fills in, for referrals held in review, the friend's purchase (or
    /// event) that qualifies them under their rules: the order, its amount
    /// and when, so the reviewer judges the referral with it.
    async fn show_qualification_in_review(
        &self,
        program: ProgramId,
        items: &mut [Referral],
    ) -> Result<()> {
        let friends: Vec<MemberId> = items
            .iter()
            .filter(|r| r.status == ReferralState::Review)
            .map(|r| r.friend)
            .collect();
        if friends.is_empty() {
            return Ok(());
        }
        let versions: Vec<ReferralRules> = self
            .referral_rules(program)
            .await?
            .into_iter()
            .map(|v| v.rules)
            .collect();
        let custom: Vec<&str> = versions
            .iter()
            .filter_map(|r| match &r.qualifying {
                Qualifying::CustomEvent { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let actions = self.actions(program, &friends, &custom).await?;
        for r in items
            .iter_mut()
            .filter(|r| r.status == ReferralState::Review)
        {
            let Some(rules) = active_version(&versions, r.signed_up_at) else {
                continue;
            };
            let mine = actions.get(&r.friend).map_or(&[][..], Vec::as_slice);
            if let Some(action) = rules.qualifying_action(r.signed_up_at, mine) {
                r.qualified_at = Some(action.at);
                if let ActionKind::Purchase { amount } = action.kind {
                    r.order_key = Some(action.key.clone());
                    r.order_amount = Some(amount);
                }
            }
        }
        Ok(())
    }

    /// Referrals, oldest first, by status and referrer; `next` pages on.
    pub async fn referrals(
        &self,
        program: ProgramId,
        f: &ReferralFilter,
    ) -> Result<(Vec<Referral>, Option<Uuid>)> {
        let size = page_size(f.limit);
        let sql = format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE program_id = $1 \
               AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR referrer_id = $3) \
               AND ($4 IS NULL OR referral_id > $4) ORDER BY referral_id LIMIT $5"
        );
        let rows: Vec<ReferralRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(f.status.map(ReferralState::as_str))
                .bind(f.referrer.map(|m| m.0))
                .bind(f.after)
                .bind(rows_to_read(size))
                .fetch_all(pool)
                .await?
        });
        let mut items = rows
            .into_iter()
            .map(Referral::try_from)
            .collect::<Result<Vec<_>>>()?;
        let next = cut(&mut items, size, |r| r.id);
        if !items.is_empty() {
            // The page's rewards, in one query.
            let rows: Vec<RewardRow> = with_db!(self, read, |pool| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "SELECT {REWARD_COLUMNS} FROM referral_rewards WHERE program_id = "
                ));
                q.push_bind(program.0).push(" AND referral_id IN (");
                let mut list = q.separated(", ");
                for r in &items {
                    list.push_bind(r.id);
                }
                q.push(") ORDER BY level, member_id");
                q.build_query_as().fetch_all(pool).await?
            });
            for (referral, reward) in rows.into_iter().map(RewardRow::into_record) {
                if let Some(r) = items.iter_mut().find(|r| r.id == referral) {
                    r.rewards.push(reward);
                }
            }
        }
        self.show_qualification_in_review(program, &mut items)
            .await?;
        Ok((items, next))
    }

    /// What a member's referring has come to.
    pub async fn referral_progress(
        &self,
        program: ProgramId,
        member: MemberId,
    ) -> Result<Progress> {
        let counts: Vec<(String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM referrals WHERE program_id = $1 AND referrer_id = $2 GROUP BY status",
            )
            .bind(program.0)
            .bind(member.0)
            .fetch_all(pool)
            .await?
        });
        let mut p = Progress::default();
        for (status, n) in counts {
            let n = n as u64;
            p.invited += n;
            match status.as_str() {
                "review" => p.in_review += n,
                "rejected" => p.rejected += n,
                "qualified" | "rewarded" => p.qualified += n,
                _ => {}
            }
        }
        p.signed_up = p.invited - p.rejected;
        let sql = format!(
            "SELECT {REWARD_COLUMNS} FROM referral_rewards WHERE program_id = $1 AND member_id = $2 ORDER BY reward_id"
        );
        let rows: Vec<RewardRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(member.0)
                .fetch_all(pool)
                .await?
        });
        p.rewards = rows.into_iter().map(|r| r.into_record().1).collect();
        Ok(p)
    }

    /// Signups, qualified friends, referral revenue and reward cost in
    /// `[from, to)`, in total, by channel and by day (UTC).
    pub async fn referral_funnel(
        &self,
        program: ProgramId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Funnel> {
        let mut funnel = Funnel::default();
        let referrals: Vec<(String, OffsetDateTime, Option<OffsetDateTime>)> = with_db!(
            self,
            read,
            |pool| {
                sqlx::query_as(
                "SELECT channel, signed_up_at, qualified_at FROM referrals WHERE program_id = $1 \
                   AND status <> 'rejected' \
                   AND ((signed_up_at >= $2 AND signed_up_at < $3) OR (qualified_at >= $2 AND qualified_at < $3))",
            )
            .bind(program.0)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            }
        );
        let within = |t: OffsetDateTime| t >= from && t < to;
        for (channel, signed_up, qualified) in referrals {
            if within(signed_up) {
                funnel.add(signed_up.date(), &channel, |r| r.signups += 1);
            }
            if let Some(q) = qualified.filter(|q| within(*q)) {
                funnel.add(q.date(), &channel, |r| r.qualified += 1);
            }
        }
        let revenue: Vec<(String, OffsetDateTime, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT r.channel, e.occurred_at, CAST(COALESCE(e.amount, 0) - e.refunded AS BIGINT) \
                 FROM events e JOIN referrals r ON r.program_id = e.program_id AND r.friend_id = e.member_id \
                 WHERE e.program_id = $1 AND e.kind = 'purchase' AND e.occurred_at >= $2 AND e.occurred_at < $3 \
                   AND e.occurred_at >= r.signed_up_at AND r.status <> 'rejected'",
            )
            .bind(program.0)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        for (channel, at, amount) in revenue {
            funnel.add(at.date(), &channel, |r| r.revenue += amount);
        }
        let cost: Vec<(String, OffsetDateTime, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT r.channel, w.created_at, w.cost_minor FROM referral_rewards w \
                 JOIN referrals r ON r.program_id = w.program_id AND r.referral_id = w.referral_id \
                 WHERE w.program_id = $1 AND w.created_at >= $2 AND w.created_at < $3 \
                   AND w.status IN ('granted', 'awaiting_choice', 'clawed_back')",
            )
            .bind(program.0)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        for (channel, at, c) in cost {
            funnel.add(at.date(), &channel, |r| r.reward_cost += c);
        }
        Ok(funnel)
    }

    /// The largest qualifying order among the member's friends.
    pub async fn best_friend_order(
        &self,
        program: ProgramId,
        referrer: MemberId,
    ) -> Result<Option<i64>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT MAX(order_amount) FROM referrals WHERE program_id = $1 AND referrer_id = $2 \
                   AND status IN ('qualified', 'rewarded')",
            )
            .bind(program.0)
            .bind(referrer.0)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Clicks on the member's referral links.
    pub async fn member_click_count(&self, program: ProgramId, member: MemberId) -> Result<u64> {
        let n: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM referral_clicks WHERE program_id = $1 AND member_id = $2",
            )
            .bind(program.0)
            .bind(member.0)
            .fetch_one(pool)
            .await?
        });
        Ok(n.max(0) as u64)
    }
}
