//! The referral engine in the database: rule versions, referrals (one per
//! friend, bound once), their rewards, the review queue, a referrer's
//! progress and the program's funnel.
//!
//! Points and cashback rewards are ledger grants, booked through the event
//! pipeline under deterministic keys (`referral:<id>:<level>`), so a replay
//! or a retry never pays twice; other rewards are records here.

mod attribution;
mod reads;
mod rewards;
mod rules;

pub use attribution::{Attributed, Touch};
pub use reads::{Funnel, FunnelRow, Progress, ReferralFilter};
pub use rewards::{ChoiceOutcome, Decision, FriendActivity};
pub use rules::ReferralRuleVersion;

use crate::{Result, StoreError};
use sarafan_core::ids::MemberId;
use sarafan_core::referral::{ReferralState, Reward};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

/// A friend bound to a referrer.
#[derive(Debug, Clone, PartialEq)]
pub struct Referral {
    pub id: Uuid,
    pub referrer: MemberId,
    pub friend: MemberId,
    pub code: Option<String>,
    pub channel: String,
    pub status: ReferralState,
    /// When the friend first met the referral (the click, or the code).
    pub touched_at: OffsetDateTime,
    pub signed_up_at: OffsetDateTime,
    pub qualified_at: Option<OffsetDateTime>,
    pub rewarded_at: Option<OffsetDateTime>,
    pub rejected_at: Option<OffsetDateTime>,
    pub reject_reason: Option<String>,
    /// Fraud reason codes (`self_referral:email`, `velocity:ip`, …).
    pub fraud_reasons: Vec<String>,
    /// The friend's qualifying order and its amount.
    pub order_key: Option<String>,
    pub order_amount: Option<i64>,
    pub rules_version: Option<u32>,
    pub rewards: Vec<RewardRecord>,
}

/// What a referral owes one member.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardRecord {
    pub id: Uuid,
    pub member: MemberId,
    /// 0 the friend, 1 the referrer, 2.. further up.
    pub level: u8,
    /// `choice` while the member has not picked, else the reward's kind.
    pub kind: String,
    pub amount: i64,
    pub options: Vec<Reward>,
    /// awaiting_choice, granted, voided, clawed_back, withheld.
    pub status: String,
    pub reason: Option<String>,
    pub grant_key: Option<String>,
    pub coupon_code: Option<String>,
    pub cost_minor: i64,
    pub hold_until: OffsetDateTime,
}

impl RewardRecord {
    /// Granted and past its hold: the member has it for good.
    pub fn is_earned(&self, now: OffsetDateTime) -> bool {
        self.status == "granted" && self.hold_until <= now
    }
}

const REFERRAL_COLUMNS: &str =
    "referral_id, referrer_id, friend_id, code, channel, status, touched_at, \
    signed_up_at, qualified_at, rewarded_at, rejected_at, reject_reason, fraud_reasons, order_key, \
    order_amount, rules_version";

#[derive(sqlx::FromRow)]
struct ReferralRow {
    referral_id: Uuid,
    referrer_id: Uuid,
    friend_id: Uuid,
    code: Option<String>,
    channel: String,
    status: String,
    touched_at: OffsetDateTime,
    signed_up_at: OffsetDateTime,
    qualified_at: Option<OffsetDateTime>,
    rewarded_at: Option<OffsetDateTime>,
    rejected_at: Option<OffsetDateTime>,
    reject_reason: Option<String>,
    fraud_reasons: Json<Vec<String>>,
    order_key: Option<String>,
    order_amount: Option<i64>,
    rules_version: Option<i32>,
}

impl TryFrom<ReferralRow> for Referral {
    type Error = StoreError;
    fn try_from(r: ReferralRow) -> Result<Self> {
        Ok(Self {
            id: r.referral_id,
            referrer: MemberId(r.referrer_id),
            friend: MemberId(r.friend_id),
            status: ReferralState::parse("status", &r.status)
                .map_err(|e| StoreError::Corrupt(format!("referral {}: {e}", r.referral_id)))?,
            code: r.code,
            channel: r.channel,
            touched_at: r.touched_at,
            signed_up_at: r.signed_up_at,
            qualified_at: r.qualified_at,
            rewarded_at: r.rewarded_at,
            rejected_at: r.rejected_at,
            reject_reason: r.reject_reason,
            fraud_reasons: r.fraud_reasons.0,
            order_key: r.order_key,
            order_amount: r.order_amount,
            rules_version: r.rules_version.map(|v| v as u32),
            rewards: Vec::new(),
        })
    }
}

const REWARD_COLUMNS: &str =
    "reward_id, referral_id, member_id, level, kind, amount, options, status, \
    reason, grant_key, coupon_code, cost_minor, hold_until";

#[derive(sqlx::FromRow)]
struct RewardRow {
    reward_id: Uuid,
    referral_id: Uuid,
    member_id: Uuid,
    level: i32,
    kind: String,
    amount: i64,
    options: Json<Vec<Reward>>,
    status: String,
    reason: Option<String>,
    grant_key: Option<String>,
    coupon_code: Option<String>,
    cost_minor: i64,
    hold_until: OffsetDateTime,
}

impl RewardRow {
    fn into_record(self) -> (Uuid, RewardRecord) {
        (
            self.referral_id,
            RewardRecord {
                id: self.reward_id,
                member: MemberId(self.member_id),
                level: self.level as u8,
                kind: self.kind,
                amount: self.amount,
                options: self.options.0,
                status: self.status,
                reason: self.reason,
                grant_key: self.grant_key,
                coupon_code: self.coupon_code,
                cost_minor: self.cost_minor,
                hold_until: self.hold_until,
            },
        )
    }
}

/// A time as both databases keep it: UTC, microseconds.
pub(crate) fn micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}
