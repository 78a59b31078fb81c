//! Qualification and rewards: when a referred friend's activity qualifies,
//! the rewards are made (points and cashback as ledger grants held through
//! the refund window; coupons, certificates and payouts as records); a
//! refund that un-qualifies the order voids them (pending) or claws them
//! back (posted). All of it set-based per batch of events.

use super::{
    micros, Referral, ReferralRow, RewardRecord, RewardRow, REFERRAL_COLUMNS, REWARD_COLUMNS,
};
use crate::connect::{sqlite_member_key, MEMBER_KEY_BYTES};
use crate::ledger::{EventIn, ItemError, ItemResult, LedgerContext, MemberRef};
use crate::outbox::{Enqueue, Outgoing};
use crate::{now, with_db, Result, Store};
use rand::Rng;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::outbox::Topic;
use sarafan_core::referral::graph;
use sarafan_core::referral::rules::{active_version, Action, ActionKind, LimitHit, Qualifying};
use sarafan_core::referral::{Payout, ReferralRules, ReferralState, Reward};
use sqlx::types::Json;
use std::collections::{HashMap, HashSet};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Most ids in one `IN (…)` list: a whole events batch, so the hot path
/// costs one query per batch (both databases allow this many parameters).
const CHUNK: usize = 10_000;

/// What an accepted event means for referrals.
#[derive(Debug, Clone)]
pub enum FriendActivity {
    /// A purchase or custom event of this member: their referral may qualify.
    Acted(MemberId),
    /// A refund of the order `order_key` at `at`.
    Refunded {
        order_key: String,
        at: OffsetDateTime,
    },
}

/// An admin's decision on a referral held for review.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve,
    Reject(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChoiceOutcome {
    Chosen(RewardRecord),
    /// This option was chosen before: nothing changed.
    AlreadyChosen(RewardRecord),
    /// Another option was chosen before.
    ChosenOtherwise(RewardRecord),
    /// The referral offers this member no choice.
    NoChoice,
    /// The index is outside the options.
    NoSuchOption(usize),
    /// The reward was voided (the friend's order was refunded).
    Voided,
    /// The referral is in review: the choice waits for the decision.
    InReview,
}

/// A reward about to be written.
struct NewReward {
    referral: Uuid,
    member: MemberId,
    level: u8,
    reward: Option<Reward>,
    options: Vec<Reward>,
    status: &'static str,
    reason: Option<String>,
    cost: i64,
    order_key: Option<String>,
    order_amount: i64,
    hold_until: OffsetDateTime,
    /// 0 for the first grant; n for the grant made after n earlier ones
    /// were voided by a review (see [`grant_key`]).
    attempt: u32,
}

impl NewReward {
    fn grant_key(&self) -> Option<String> {
        (self.status == "granted" && self.reward.as_ref().and_then(Reward::ledger).is_some())
            .then(|| grant_key(self.referral, self.level, self.attempt))
    }
}

/// Inserts one reward row through `$exec` (a transaction or a pool, of
/// either backend); a row already there is left as it is.
macro_rules! insert_reward {
    ($exec:expr, $program:expr, $r:expr, $at:expr) => {{
        let r: &NewReward = $r;
        let (kind, amount) = match &r.reward {
            Some(reward) if r.status != "awaiting_choice" => (reward.kind(), reward.amount()),
            _ => ("choice", 0),
        };
        let coupon = matches!(
            r.reward,
            Some(
                Reward::CouponFixed { .. }
                    | Reward::CouponPercent { .. }
                    | Reward::GiftCertificate { .. }
            )
        ) && r.status == "granted";
        sqlx::query(
            "INSERT INTO referral_rewards (program_id, reward_id, referral_id, member_id, level, kind, \
               amount, options, status, reason, grant_key, coupon_code, cost_minor, order_key, \
               order_amount, hold_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) \
             ON CONFLICT (program_id, referral_id, member_id, level) DO NOTHING",
        )
        .bind($program.0)
        .bind(Uuid::now_v7())
        .bind(r.referral)
        .bind(r.member.0)
        .bind(i32::from(r.level))
        .bind(kind)
        .bind(amount)
        .bind(Json(&r.options))
        .bind(r.status)
        .bind(r.reason.as_deref())
        .bind(r.grant_key())
        .bind(coupon.then(coupon_code))
        .bind(r.cost)
        .bind(r.order_key.as_deref())
        .bind(r.order_amount)
        .bind(r.hold_until)
        .bind($at)
        .execute($exec)
        .await?;
    }};
}

/// Why a reward waits for its member to be unblocked.
const MEMBER_BLOCKED: &str = "member_blocked";
/// Why a reward waits for an admin: its referral went back to review.
pub(super) const UNDER_REVIEW: &str = "under_review";

/// The ledger key of a reward's grant: `referral:<referral>:<level>`, and
/// `…:<attempt>` for a grant made again after a review voided the earlier
/// one (a grant key is booked once; a retry of the same attempt replays).
fn grant_key(referral: Uuid, level: u8, attempt: u32) -> String {
    match attempt {
        0 => format!("referral:{referral}:{level}"),
        n => format!("referral:{referral}:{level}:{n}"),
    }
}

/// Which attempt `key` (a [`grant_key`]) is.
fn attempt_of(key: &str) -> u32 {
    key.split(':')
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A short code for a coupon or certificate, without look-alike characters.
fn coupon_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let body: String = (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("REF-{}-{}", &body[..5], &body[5..])
}

/// A referral reward's reason, as data the member's statement puts into
/// their language (it names the order, not the friend).
fn reason_for(level: u8, order: Option<&str>) -> String {
    crate::ledger::stored(&sarafan_core::ledger::reason::Reason::Referral {
        level,
        order: order.map(str::to_owned),
    })
}

impl Store {
    /// Moves the referrals a batch of accepted events touches: qualifies and
    /// rewards friends who acted, voids rewards of refunded orders. A few
    /// queries per batch; nothing when no event concerns a referral.
    pub async fn referral_activity(
        &self,
        ctx: &LedgerContext,
        activity: &[FriendActivity],
    ) -> Result<()> {
        let mut acted: Vec<MemberId> = Vec::new();
        let mut refunds: Vec<(String, OffsetDateTime)> = Vec::new();
        for a in activity {
            match a {
                FriendActivity::Acted(m) => acted.push(*m),
                FriendActivity::Refunded { order_key, at } => {
                    refunds.push((order_key.clone(), *at))
                }
            }
        }
        acted.sort_unstable();
        acted.dedup();
        if !acted.is_empty() {
            let open = self.open_referrals(ctx.program, &acted).await?;
            if !open.is_empty() {
                self.qualify(ctx, open).await?;
            }
        }
        if !refunds.is_empty() {
            self.void_for_refunds(ctx, &refunds).await?;
        }
        Ok(())
    }

    /// Signed-up (not held, not closed) referrals of these friends.
    async fn open_referrals(
        &self,
        program: ProgramId,
        friends: &[MemberId],
    ) -> Result<Vec<Referral>> {
        let mut out = Vec::new();
        for chunk in friends.chunks(CHUNK) {
            let rows: Vec<ReferralRow> = with_db!(self, read, |pool| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE program_id = "
                ));
                q.push_bind(program.0)
                    .push(" AND status = 'signed_up' AND friend_id IN (");
                let mut list = q.separated(", ");
                for f in chunk {
                    list.push_bind(f.0);
                }
                q.push(")");
                q.build_query_as().fetch_all(pool).await?
            });
            for r in rows {
                out.push(Referral::try_from(r)?);
            }
        }
        Ok(out)
    }

    /// The friends' purchases (net of refunds) and custom events named in
    /// `custom` (a custom event is kept under its name), oldest first.
    pub(super) async fn actions(
        &self,
        program: ProgramId,
        friends: &[MemberId],
        custom: &[&str],
    ) -> Result<HashMap<MemberId, Vec<Action>>> {
        type Row = (Uuid, String, String, OffsetDateTime, Option<i64>, i64);
        let mut out: HashMap<MemberId, Vec<Action>> = HashMap::new();
        let events = self.by_member_table("events");
        for chunk in friends.chunks(CHUNK) {
            let rows: Vec<Row> = with_db!(self, write, |pool| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "SELECT member_id, event_key, kind, occurred_at, amount, refunded FROM {events} \
                     WHERE program_id = "
                ));
                q.push_bind(program.0).push(" AND kind IN ('purchase'");
                for name in custom {
                    q.push(", ").push_bind(*name);
                }
                q.push(") AND member_id IN (");
                let mut list = q.separated(", ");
                for f in chunk {
                    list.push_bind(f.0);
                }
                q.push(")");
                // The same list again, as the index's key (see `by_member_key`).
                if self.backend() == crate::Backend::Sqlite {
                    q.push(format!(" AND {} IN (", sqlite_member_key("member_id")));
                    let mut keys = q.separated(", ");
                    for f in chunk {
                        keys.push_bind(f.0.as_bytes()[MEMBER_KEY_BYTES].to_vec());
                    }
                    q.push(")");
                }
                q.push(" ORDER BY occurred_at, event_key");
                q.build_query_as().fetch_all(pool).await?
            });
            for (member, key, kind, at, amount, refunded) in rows {
                let kind = if kind == "purchase" {
                    ActionKind::Purchase {
                        amount: amount.unwrap_or(0) - refunded,
                    }
                } else {
                    ActionKind::Custom { name: kind }
                };
                out.entry(MemberId(member))
                    .or_default()
                    .push(Action { key, at, kind });
            }
        }
        Ok(out)
    }

    /// Qualifies and rewards what it can of `open`.
    async fn qualify(&self, ctx: &LedgerContext, open: Vec<Referral>) -> Result<()> {
        let versions: Vec<ReferralRules> = self
            .referral_rules(ctx.program)
            .await?
            .into_iter()
            .map(|v| v.rules)
            .collect();
        if versions.is_empty() {
            return Ok(());
        }
        let friends: Vec<MemberId> = open.iter().map(|r| r.friend).collect();
        let custom: Vec<&str> = versions
            .iter()
            .filter_map(|r| match &r.qualifying {
                Qualifying::CustomEvent { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let actions = self.actions(ctx.program, &friends, &custom).await?;
        let at = now();
        for referral in open {
            let Some(rules) = active_version(&versions, referral.signed_up_at)
                .or_else(|| active_version(&versions, at))
            else {
                continue;
            };
            let mine = actions.get(&referral.friend).map_or(&[][..], Vec::as_slice);
            let Some(action) = rules.qualifying_action(referral.signed_up_at, mine) else {
                continue;
            };
            self.reward(ctx, &referral, rules, action, at).await?;
        }
        Ok(())
    }

    /// Makes the rewards of one qualified referral.
    async fn reward(
        &self,
        ctx: &LedgerContext,
        referral: &Referral,
        rules: &ReferralRules,
        action: &Action,
        at: OffsetDateTime,
    ) -> Result<()> {
        let (order_key, order_amount) = match action.kind {
            ActionKind::Purchase { amount } => (Some(action.key.clone()), amount),
            ActionKind::Custom { .. } => (None, 0),
        };
        let edges = self
            .chain_edges(ctx.program, referral.referrer, rules.depth() as i32)
            .await?;
        let mut chain = vec![referral.referrer];
        chain.extend(graph::chain(&edges, referral.referrer, rules.depth() - 1));
        let payouts = rules.payouts(referral.friend, &chain, order_amount);
        let hold_days = rules.hold_days.or(ctx.settings.earn_hold_days).unwrap_or(0);
        let hold_until = micros(action.at + Duration::days(i64::from(hold_days)));
        let point_value = ctx.settings.redeem.point_value_minor;
        let cost_of = |p: &Payout| {
            p.options
                .iter()
                .map(|r| r.cost_minor(order_amount, point_value))
                .max()
                .unwrap_or(0)
        };
        let total: i64 = payouts.iter().map(cost_of).sum();
        let (rewarded, spent) = self
            .limit_counts(ctx.program, referral.referrer, rules, at)
            .await?;
        let budget_hit = rules.limits.check(0, spent, total) == Err(LimitHit::Budget);
        let referrer_hit = rules.limits.check(rewarded, 0, 0) == Err(LimitHit::Referrer);

        let mut rewards: Vec<NewReward> = payouts
            .iter()
            .map(|p| {
                let withheld = budget_hit || (referrer_hit && p.level >= 1);
                let (status, reward) = match (withheld, p.options.len()) {
                    (true, _) => ("withheld", p.options.first().cloned()),
                    (false, 1) => ("granted", p.options.first().cloned()),
                    (false, _) => ("awaiting_choice", None),
                };
                NewReward {
                    referral: referral.id,
                    member: p.member,
                    level: p.level,
                    reward,
                    options: if p.options.len() > 1 {
                        p.options.clone()
                    } else {
                        Vec::new()
                    },
                    status,
                    reason: withheld.then(|| {
                        if budget_hit {
                            LimitHit::Budget
                        } else {
                            LimitHit::Referrer
                        }
                        .reason()
                        .to_owned()
                    }),
                    cost: if withheld { 0 } else { cost_of(p) },
                    order_key: order_key.clone(),
                    order_amount,
                    hold_until,
                    attempt: 0,
                }
            })
            .collect();

        self.grant(ctx, &mut rewards, at).await?;
        let status = if budget_hit {
            ReferralState::Rejected
        } else {
            ReferralState::Rewarded
        };
        self.write_rewards(
            ctx.program,
            referral,
            status,
            action,
            order_key.as_deref(),
            order_amount,
            rules.version,
            &rewards,
            at,
        )
        .await
    }

    /// Books the ledger grants of `rewards` that are granted points or
    /// cashback. A member who is not active gets nothing now: the reward
    /// is withheld, and released when a blocked member is active again
    /// ([`Store::release_withheld_rewards`]).
    async fn grant(
        &self,
        ctx: &LedgerContext,
        rewards: &mut [NewReward],
        at: OffsetDateTime,
    ) -> Result<()> {
        let grants: Vec<EventIn> = rewards
            .iter()
            .filter_map(|r| {
                let key = r.grant_key()?;
                let ledger = r.reward.as_ref()?.ledger()?;
                Some(EventIn::grant(
                    key,
                    MemberRef::Id(r.member),
                    at,
                    ledger,
                    reason_for(r.level, r.order_key.as_deref()),
                    (r.hold_until > at).then_some(r.hold_until),
                ))
            })
            .collect();
        if grants.is_empty() {
            return Ok(());
        }
        let results = self.ingest(ctx, &grants).await?;
        for (g, result) in grants.iter().zip(results) {
            if let ItemResult::Rejected(e) = result {
                if let Some(r) = rewards
                    .iter_mut()
                    .find(|r| r.grant_key().as_deref() == Some(&g.key))
                {
                    r.status = "withheld";
                    r.reason = Some(match e {
                        ItemError::MemberInactive(_, "blocked") => MEMBER_BLOCKED.to_owned(),
                        other => other.to_string(),
                    });
                    r.cost = 0;
                }
            }
        }
        Ok(())
    }

    /// Grants the rewards withheld while `member` was blocked, now that
    /// they are active again (pending until the hold ends, as they would
    /// have been). Rewards of orders refunded meanwhile were voided.
    pub async fn release_withheld_rewards(
        &self,
        ctx: &LedgerContext,
        member: MemberId,
    ) -> Result<usize> {
        let sql = format!(
            "SELECT {REWARD_COLUMNS} FROM referral_rewards \
             WHERE program_id = $1 AND member_id = $2 AND status = 'withheld' AND reason = $3"
        );
        let rows: Vec<RewardRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(ctx.program.0)
                .bind(member.0)
                .bind(MEMBER_BLOCKED)
                .fetch_all(pool)
                .await?
        });
        self.grant_withheld(ctx, rows).await
    }

    /// Grants withheld rewards (`rows`) again: each under its next grant
    /// key when a review voided the earlier grant, pending until its hold
    /// ends as it would have been. A reward that still cannot be granted
    /// (its member is blocked) stays withheld, with the new reason.
    async fn grant_withheld(&self, ctx: &LedgerContext, rows: Vec<RewardRow>) -> Result<usize> {
        let at = now();
        let mut released = 0;
        for (referral_id, w) in rows.into_iter().map(RewardRow::into_record) {
            let reward = match w.kind.as_str() {
                "points" => Reward::Points { amount: w.amount },
                "cashback" => Reward::Cashback { amount: w.amount },
                _ => continue,
            };
            let Some(referral) = self.referral(ctx.program, referral_id).await? else {
                continue;
            };
            let cost = reward.cost_minor(0, ctx.settings.redeem.point_value_minor);
            let mut one = [NewReward {
                referral: referral_id,
                member: w.member,
                level: w.level,
                reward: Some(reward),
                options: Vec::new(),
                status: "granted",
                reason: None,
                cost,
                order_key: referral.order_key.clone(),
                order_amount: referral.order_amount.unwrap_or(0),
                hold_until: w.hold_until,
                // A key already booked (and voided) is not booked again.
                attempt: w.grant_key.as_deref().map_or(0, |k| attempt_of(k) + 1),
            }];
            self.grant(ctx, &mut one, at).await?;
            let [r] = one;
            // Still withheld: the grant key stays the last one booked, so
            // the next try takes the one after it.
            let granted = r.status == "granted";
            with_db!(self, write, |pool| {
                sqlx::query(
                    "UPDATE referral_rewards SET status = $3, reason = $4, \
                       grant_key = COALESCE($5, grant_key), cost_minor = $6, updated_at = $7 \
                     WHERE program_id = $1 AND reward_id = $2 AND status = 'withheld'",
                )
                .bind(ctx.program.0)
                .bind(w.id)
                .bind(r.status)
                .bind(r.reason.as_deref())
                .bind(r.grant_key())
                .bind(if granted { r.cost } else { w.cost_minor })
                .bind(at)
                .execute(pool)
                .await?;
            });
            released += usize::from(granted);
        }
        Ok(released)
    }

    /// Puts the rewarded referral `id`, found part of a scheme after it was
    /// paid, back in review when some of its rewards are still pending:
    /// their grants (still inside the hold) are voided and the rewards
    /// withheld (`under_review`); a choice not made yet waits for the
    /// decision. Rewards already the members' for good stay theirs (a
    /// refund of the order still follows the refund rules). Returns whether
    /// the referral moved.
    pub(super) async fn withhold_for_review(
        &self,
        program: ProgramId,
        id: Uuid,
        reasons: &[String],
        at: OffsetDateTime,
    ) -> Result<bool> {
        let sql = format!(
            "SELECT {REWARD_COLUMNS} FROM referral_rewards w WHERE program_id = $1 AND referral_id = $2 \
               AND (status = 'awaiting_choice' OR (status = 'withheld' AND reason = $3) \
                 OR (status = 'granted' AND EXISTS (SELECT 1 FROM holds h \
                 WHERE h.program_id = w.program_id AND h.event_key = w.grant_key AND h.state = 'pending')))"
        );
        let rows: Vec<RewardRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .bind(UNDER_REVIEW)
                .fetch_all(pool)
                .await?
        });
        if rows.is_empty() {
            return Ok(false);
        }
        // The rewards are withheld first and the referral moved last: a
        // retry after a failure in between finds the referral still
        // rewarded, with rewards withheld (selected above), and finishes.
        // Voids are keyed and the status updates guarded, so a repeat
        // changes nothing twice.
        if let Some(ctx) = self.ledger_context(program).await? {
            self.withhold_pending(&ctx, rows, at).await?;
        }

        let moved = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE referrals SET status = 'review', fraud_reasons = $3, updated_at = $4 \
                 WHERE program_id = $1 AND referral_id = $2 AND status = 'rewarded'",
            )
            .bind(program.0)
            .bind(id)
            .bind(Json(reasons))
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(moved > 0)
    }

    /// Voids the pending grants among `rows` and marks their rewards
    /// withheld for the review.
    async fn withhold_pending(
        &self,
        ctx: &LedgerContext,
        rows: Vec<RewardRow>,
        at: OffsetDateTime,
    ) -> Result<()> {
        let program = ctx.program;
        let pending: Vec<RewardRecord> = rows
            .into_iter()
            .map(|r| r.into_record().1)
            .filter(|w| w.status == "granted")
            .collect();
        let (pending, voids): (Vec<&RewardRecord>, Vec<EventIn>) = pending
            .iter()
            .filter_map(|w| {
                let grant = w.grant_key.as_ref()?;
                let void = EventIn::void_grant(
                    format!("withhold:{grant}"),
                    MemberRef::Id(w.member),
                    at,
                    grant.clone(),
                    "referral reward withheld: the referral is under review",
                );
                Some((w, void))
            })
            .unzip();
        let results = self.ingest(ctx, &voids).await?;
        for (w, result) in pending.into_iter().zip(results) {
            if let ItemResult::Rejected(e) = result {
                // Not voided (its member is blocked): it stays granted, and
                // pending until the member is active again.
                tracing::warn!(program = %program, reward = %w.id, error = %e,
                    "a reward under review could not be withheld");
                continue;
            }
            with_db!(self, write, |pool| {
                sqlx::query(
                    "UPDATE referral_rewards SET status = 'withheld', reason = $3, updated_at = $4 \
                     WHERE program_id = $1 AND reward_id = $2 AND status = 'granted'",
                )
                .bind(program.0)
                .bind(w.id)
                .bind(UNDER_REVIEW)
                .bind(at)
                .execute(pool)
                .await?;
            });
        }
        Ok(())
    }

    /// The referrer's rewarded referrals in the limit period, and what the
    /// program has spent on referral rewards.
    async fn limit_counts(
        &self,
        program: ProgramId,
        referrer: MemberId,
        rules: &ReferralRules,
        at: OffsetDateTime,
    ) -> Result<(u32, i64)> {
        let since = at - Duration::days(i64::from(rules.limits.period_days.unwrap_or(0)));
        let (count, spent): (i64, i64) = with_db!(self, write, |pool| {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM referrals WHERE program_id = $1 AND referrer_id = $2 \
                           AND status = 'rewarded' AND rewarded_at >= $3), \
                        (SELECT CAST(COALESCE(SUM(cost_minor), 0) AS BIGINT) FROM referral_rewards \
                          WHERE program_id = $1 AND status IN ('granted', 'awaiting_choice', 'clawed_back'))",
            )
            .bind(program.0)
            .bind(referrer.0)
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok((u32::try_from(count).unwrap_or(u32::MAX), spent))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_rewards(
        &self,
        program: ProgramId,
        referral: &Referral,
        status: ReferralState,
        action: &Action,
        order_key: Option<&str>,
        order_amount: i64,
        version: u32,
        rewards: &[NewReward],
        at: OffsetDateTime,
    ) -> Result<()> {
        let reject_reason =
            (status == ReferralState::Rejected).then_some(LimitHit::Budget.reason());
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(
                "UPDATE referrals SET status = $3, qualified_at = $4, rewarded_at = $5, rejected_at = $6, \
                   reject_reason = COALESCE($7, reject_reason), order_key = $8, order_amount = $9, \
                   rules_version = $10, updated_at = $11 \
                 WHERE program_id = $1 AND referral_id = $2 AND status = 'signed_up'",
            )
            .bind(program.0)
            .bind(referral.id)
            .bind(status.as_str())
            .bind(micros(action.at))
            .bind((status == ReferralState::Rewarded).then_some(at))
            .bind((status == ReferralState::Rejected).then_some(at))
            .bind(reject_reason)
            .bind(order_key)
            .bind(order_amount)
            .bind(version as i32)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 1 {
                for r in rewards {
                    insert_reward!(&mut *tx, program, r, at);
                }
                if status == ReferralState::Rewarded {
                    // In the same transaction: the inviter hears once,
                    // exactly when the referral moved (a webhook and the
                    // "your friend joined" mail).
                    let friend_name: Option<String> = sqlx::query_scalar(
                        "SELECT name FROM members WHERE program_id = $1 AND member_id = $2",
                    )
                    .bind(program.0)
                    .bind(referral.friend.0)
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten();
                    let message =
                        qualified_message(referral, friend_name, action, order_key, rewards);
                    tx.enqueue(program, &[message]).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Voids (inside the hold) or claws back (after it) the rewards of
    /// refunded orders that no longer qualify.
    async fn void_for_refunds(
        &self,
        ctx: &LedgerContext,
        refunds: &[(String, OffsetDateTime)],
    ) -> Result<()> {
        let keys: Vec<&str> = refunds.iter().map(|(k, _)| k.as_str()).collect();
        type Row = (String, Option<i64>, i64, i32);
        let mut orders: Vec<Row> = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            let rows: Vec<Row> = with_db!(self, write, |pool| {
                // Only orders that qualified a referral, with their rule version.
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT e.event_key, e.amount, e.refunded, r.rules_version FROM events e \
                     JOIN referrals r ON r.program_id = e.program_id AND r.order_key = e.event_key \
                       AND r.friend_id = e.member_id \
                     WHERE e.program_id = ",
                );
                // A referral in review with its order is one that was
                // rewarded before (see `withhold_for_review`).
                q.push_bind(ctx.program.0).push(
                    " AND r.status IN ('rewarded', 'review') AND e.kind = 'purchase' AND e.event_key IN (",
                );
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(*k);
                }
                q.push(")");
                q.build_query_as().fetch_all(pool).await?
            });
            orders.extend(rows);
        }
        if orders.is_empty() {
            return Ok(());
        }
        let versions: HashMap<u32, ReferralRules> = self
            .referral_rules(ctx.program)
            .await?
            .into_iter()
            .map(|v| (v.rules.version, v.rules))
            .collect();
        let unqualified: HashSet<String> = orders
            .into_iter()
            .filter(|(_, amount, refunded, version)| {
                let net = amount.unwrap_or(0) - refunded;
                let min = match versions.get(&(*version as u32)).map(|r| &r.qualifying) {
                    Some(Qualifying::PurchaseAtLeast { min_amount }) => *min_amount,
                    _ => 1,
                };
                net < min
            })
            .map(|(key, ..)| key)
            .collect();
        let refund_at: HashMap<&str, OffsetDateTime> =
            refunds.iter().map(|(k, at)| (k.as_str(), *at)).collect();
        for key in unqualified {
            let at = refund_at.get(key.as_str()).copied().unwrap_or_else(now);
            // A reward withheld from a blocked member, or for a review, is
            // voided too, so unblocking them or approving it does not pay
            // for a refunded order.
            let sql = format!(
                "SELECT {REWARD_COLUMNS} FROM referral_rewards WHERE program_id = $1 AND order_key = $2 \
                   AND (status IN ('granted', 'awaiting_choice') OR (status = 'withheld' AND reason IN ($3, $4)))"
            );
            let rows: Vec<RewardRow> = with_db!(self, write, |pool| {
                sqlx::query_as(&sql)
                    .bind(ctx.program.0)
                    .bind(&key)
                    .bind(MEMBER_BLOCKED)
                    .bind(UNDER_REVIEW)
                    .fetch_all(pool)
                    .await?
            });
            let rewards: Vec<RewardRecord> = rows.into_iter().map(|r| r.into_record().1).collect();
            let voids: Vec<EventIn> = rewards
                .iter()
                // Only a granted reward is in the ledger (a withheld one
                // keeps the key of the grant its review voided).
                .filter(|r| r.status == "granted")
                .filter_map(|r| {
                    let grant = r.grant_key.as_ref()?;
                    Some(EventIn::void_grant(
                        format!("void:{grant}"),
                        MemberRef::Id(r.member),
                        at,
                        grant.clone(),
                        format!("referral reward cancelled: order {key} was refunded"),
                    ))
                })
                .collect();
            if !voids.is_empty() {
                self.ingest(ctx, &voids).await?;
            }
            for r in &rewards {
                let status = if at < r.hold_until || r.status != "granted" {
                    "voided"
                } else {
                    "clawed_back"
                };
                with_db!(self, write, |pool| {
                    sqlx::query(
                        "UPDATE referral_rewards SET status = $3, reason = $4, updated_at = $5 \
                         WHERE program_id = $1 AND reward_id = $2",
                    )
                    .bind(ctx.program.0)
                    .bind(r.id)
                    .bind(status)
                    .bind(format!("order {key} refunded"))
                    .bind(now())
                    .execute(pool)
                    .await?;
                });
            }
        }
        Ok(())
    }

    /// The member picks option `index` of the reward their referral offers.
    pub async fn choose_reward(
        &self,
        ctx: &LedgerContext,
        referral: &Referral,
        index: usize,
    ) -> Result<ChoiceOutcome> {
        let Some(offer) = referral
            .rewards
            .iter()
            .find(|r| r.level == 1 && !r.options.is_empty())
        else {
            return Ok(ChoiceOutcome::NoChoice);
        };
        let Some(option) = offer.options.get(index).cloned() else {
            return Ok(ChoiceOutcome::NoSuchOption(index));
        };
        match offer.status.as_str() {
            "awaiting_choice" if referral.status == ReferralState::Review => {
                return Ok(ChoiceOutcome::InReview)
            }
            "awaiting_choice" => {}
            "voided" | "clawed_back" => return Ok(ChoiceOutcome::Voided),
            _ if offer.kind == option.kind() && offer.amount == option.amount() => {
                // A retry after the choice was saved: the levels above are
                // paid again in case the first call stopped before them
                // (their grants are keyed, so a paid one replays).
                self.pay_levels(ctx, referral, &option, offer.hold_until, now())
                    .await?;
                return Ok(ChoiceOutcome::AlreadyChosen(offer.clone()));
            }
            _ => return Ok(ChoiceOutcome::ChosenOtherwise(offer.clone())),
        }
        let at = now();
        let key = grant_key(referral.id, 1, 0);
        if let Some(ledger) = option.ledger() {
            let grant = EventIn::grant(
                key.clone(),
                MemberRef::Id(offer.member),
                at,
                ledger,
                reason_for(1, referral.order_key.as_deref()),
                (offer.hold_until > at).then_some(offer.hold_until),
            );
            if let Some(ItemResult::Rejected(e)) =
                self.ingest(ctx, &[grant]).await?.into_iter().next()
            {
                return Err(crate::StoreError::Corrupt(format!(
                    "reward grant refused: {e}"
                )));
            }
        }
        let coupon = matches!(
            option,
            Reward::CouponFixed { .. }
                | Reward::CouponPercent { .. }
                | Reward::GiftCertificate { .. }
        );
        let sql = format!(
            "UPDATE referral_rewards SET kind = $3, amount = $4, status = 'granted', grant_key = $5, \
               coupon_code = $6, cost_minor = $7, updated_at = $8 \
             WHERE program_id = $1 AND reward_id = $2 AND status = 'awaiting_choice' RETURNING {REWARD_COLUMNS}"
        );
        let row: Option<RewardRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(ctx.program.0)
                .bind(offer.id)
                .bind(option.kind())
                .bind(option.amount())
                .bind(option.ledger().map(|_| key.clone()))
                .bind(coupon.then(coupon_code))
                .bind(option.cost_minor(
                    referral.order_amount.unwrap_or(0),
                    ctx.settings.redeem.point_value_minor,
                ))
                .bind(at)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => {
                self.pay_levels(ctx, referral, &option, offer.hold_until, at)
                    .await?;
                Ok(ChoiceOutcome::Chosen(r.into_record().1))
            }
            // A concurrent choice won; report what it chose.
            None => match self.referral(ctx.program, referral.id).await? {
                Some(now) => Box::pin(self.choose_reward(ctx, &now, index)).await,
                None => Ok(ChoiceOutcome::NoChoice),
            },
        }
    }

    /// Pays the referrer's referrers their share of the reward the
    /// referrer chose (`level_payouts`: points or cashback only).
    async fn pay_levels(
        &self,
        ctx: &LedgerContext,
        referral: &Referral,
        taken: &Reward,
        hold_until: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<()> {
        let Some(rules) = self
            .referral_rules(ctx.program)
            .await?
            .into_iter()
            .map(|v| v.rules)
            .find(|r| Some(r.version) == referral.rules_version)
        else {
            return Ok(());
        };
        if rules.levels.is_none() || taken.ledger().is_none() {
            return Ok(());
        }
        let edges = self
            .chain_edges(ctx.program, referral.referrer, rules.depth() as i32)
            .await?;
        let above = graph::chain(&edges, referral.referrer, rules.depth() - 1);
        let point_value = ctx.settings.redeem.point_value_minor;
        let mut rewards: Vec<NewReward> = rules
            .level_payouts(&above, taken)
            .into_iter()
            .map(|p| {
                let reward = p.options.into_iter().next();
                NewReward {
                    referral: referral.id,
                    member: p.member,
                    level: p.level,
                    cost: reward.as_ref().map_or(0, |r| r.cost_minor(0, point_value)),
                    reward,
                    options: Vec::new(),
                    status: "granted",
                    reason: None,
                    order_key: referral.order_key.clone(),
                    order_amount: referral.order_amount.unwrap_or(0),
                    hold_until,
                    attempt: 0,
                }
            })
            .collect();
        self.grant(ctx, &mut rewards, at).await?;
        with_db!(self, write, |pool| {
            for r in &rewards {
                insert_reward!(pool, ctx.program, r, at);
            }
        });
        Ok(())
    }

    /// Approves or rejects a referral held for review. Returns the referral
    /// after the decision, or `Err(status)` when it was not in review.
    pub async fn decide(
        &self,
        ctx: &LedgerContext,
        id: Uuid,
        decision: &Decision,
    ) -> Result<Option<std::result::Result<Referral, ReferralState>>> {
        let Some(current) = self.referral(ctx.program, id).await? else {
            return Ok(None);
        };
        let (status, reason) = match decision {
            Decision::Approve => (ReferralState::SignedUp, None),
            Decision::Reject(reason) => (ReferralState::Rejected, Some(reason.as_str())),
        };
        let at = now();
        // Approved, a referral that was rewarded before its review (see
        // `withhold_for_review`) is rewarded again, not signed up.
        let moved = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE referrals SET \
                   status = CASE WHEN $3 = 'signed_up' AND rewarded_at IS NOT NULL THEN 'rewarded' ELSE $3 END, \
                   rejected_at = $4, reject_reason = COALESCE($5, reject_reason), \
                   updated_at = $6 WHERE program_id = $1 AND referral_id = $2 AND status = 'review'",
            )
            .bind(ctx.program.0)
            .bind(id)
            .bind(status.as_str())
            .bind((status == ReferralState::Rejected).then_some(at))
            .bind(reason)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if moved == 0 {
            // Approving an approved referral again changes nothing.
            let same = match (decision, current.status) {
                (Decision::Approve, ReferralState::SignedUp | ReferralState::Rewarded) => {
                    !current.fraud_reasons.is_empty()
                }
                (Decision::Reject(_), ReferralState::Rejected) => true,
                _ => false,
            };
            return Ok(Some(if same {
                Ok(current)
            } else {
                Err(current.status)
            }));
        }
        match decision {
            Decision::Approve if current.rewarded_at.is_some() => {
                // Its withheld rewards are granted again.
                let sql = format!(
                    "SELECT {REWARD_COLUMNS} FROM referral_rewards \
                     WHERE program_id = $1 AND referral_id = $2 AND status = 'withheld' AND reason = $3"
                );
                let rows: Vec<RewardRow> = with_db!(self, write, |pool| {
                    sqlx::query_as(&sql)
                        .bind(ctx.program.0)
                        .bind(id)
                        .bind(UNDER_REVIEW)
                        .fetch_all(pool)
                        .await?
                });
                self.grant_withheld(ctx, rows).await?;
            }
            Decision::Approve => {
                // The friend may have qualified while held.
                let open = self.open_referrals(ctx.program, &[current.friend]).await?;
                self.qualify(ctx, open).await?;
            }
            Decision::Reject(reason) => {
                // What its review withheld, or a choice not made, is void.
                with_db!(self, write, |pool| {
                    sqlx::query(
                        "UPDATE referral_rewards SET status = 'voided', reason = $3, updated_at = $4 \
                         WHERE program_id = $1 AND referral_id = $2 \
                           AND (status = 'awaiting_choice' OR (status = 'withheld' AND reason = $5))",
                    )
                    .bind(ctx.program.0)
                    .bind(id)
                    .bind(format!("referral rejected: {reason}"))
                    .bind(at)
                    .bind(UNDER_REVIEW)
                    .execute(pool)
                    .await?;
                });
            }
        }
        Ok(self.referral(ctx.program, id).await?.map(Ok))
    }
}

/// `referral.qualified` for the inviter: who joined, on what, and the
/// points or cashback the inviter's own reward brought (0 for a reward of
/// another kind, or one withheld).
fn qualified_message(
    referral: &Referral,
    friend_name: Option<String>,
    action: &Action,
    order_key: Option<&str>,
    rewards: &[NewReward],
) -> Outgoing {
    let mine = rewards
        .iter()
        .filter(|r| r.member == referral.referrer && r.status == "granted")
        .find_map(|r| r.reward.as_ref()?.ledger());
    Outgoing::new(
        Topic::ReferralQualified,
        Some(referral.referrer),
        serde_json::json!({
            "referral_id": referral.id,
            "member_id": referral.referrer,
            "friend_id": referral.friend,
            "friend_name": friend_name,
            "channel": referral.channel,
            "qualified_at": action.at.format(&Rfc3339).unwrap_or_default(),
            "order_id": order_key,
            "asset": mine.map(|(asset, _)| asset),
            "points": mine.map_or(0, |(_, points)| points),
        }),
    )
}
