//! Versioned referral reward rules: what qualifies a referred friend, what
//! the referrer and the friend get (by the friend's order value), what the
//! referrers further up the chain get, and the limits on all of it.

use crate::bounds;
use crate::ids::MemberId;
use crate::ledger::account::Asset;
use crate::referral::fraud::FraudThresholds;
use crate::FieldError;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// What a referred friend has to do for the rewards to be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Qualifying {
    /// The friend's first purchase, made after the referral.
    FirstPurchase,
    /// A purchase of at least `min_amount` minor units.
    PurchaseAtLeast { min_amount: i64 },
    /// `count` purchases within `days` of the referral; the last one qualifies.
    PurchasesWithin { count: u32, days: u32 },
    /// A custom event of this name (`subscription_started`, …).
    CustomEvent { name: String },
}

/// One reward. Points and cashback are paid through the ledger; the rest are
/// records the store honours (a coupon, a certificate, a cash payout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reward {
    Points {
        amount: i64,
    },
    /// Store credit, in minor units.
    Cashback {
        amount: i64,
    },
    /// A coupon for a fixed amount off, in minor units.
    CouponFixed {
        amount: i64,
    },
    /// A coupon for a share of an order, in basis points (1000 = 10 %).
    CouponPercent {
        basis_points: u32,
    },
    /// A gift certificate, in minor units.
    GiftCertificate {
        amount: i64,
    },
    /// Money paid out to the member, in minor units (a record for the
    /// store's accounting; Sarafan moves no money).
    CashPayout {
        amount: i64,
    },
}

impl Reward {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Points { .. } => "points",
            Self::Cashback { .. } => "cashback",
            Self::CouponFixed { .. } => "coupon_fixed",
            Self::CouponPercent { .. } => "coupon_percent",
            Self::GiftCertificate { .. } => "gift_certificate",
            Self::CashPayout { .. } => "cash_payout",
        }
    }

    /// The ledger asset and amount, for rewards paid as ledger grants.
    pub fn ledger(&self) -> Option<(Asset, i64)> {
        match *self {
            Self::Points { amount } => Some((Asset::Points, amount)),
            Self::Cashback { amount } => Some((Asset::Cashback, amount)),
            _ => None,
        }
    }

    /// The reward's amount as recorded: points, minor units, or basis points
    /// for a percent coupon.
    pub fn amount(&self) -> i64 {
        match *self {
            Self::Points { amount }
            | Self::Cashback { amount }
            | Self::CouponFixed { amount }
            | Self::GiftCertificate { amount }
            | Self::CashPayout { amount } => amount,
            Self::CouponPercent { basis_points } => i64::from(basis_points),
        }
    }

    /// What the reward costs the program in minor units: a point at
    /// `point_value_minor`, a percent coupon at its share of the order that
    /// earned it.
    pub fn cost_minor(&self, order_amount: i64, point_value_minor: i64) -> i64 {
        match *self {
            Self::Points { amount } => amount.saturating_mul(point_value_minor),
            Self::CouponPercent { basis_points } => {
                (i128::from(order_amount) * i128::from(basis_points) / 10_000) as i64
            }
            _ => self.amount(),
        }
    }

    fn validate(&self) -> Result<(), FieldError> {
        match *self {
            Self::CouponPercent { basis_points } if !(1..=10_000).contains(&basis_points) => Err(
                FieldError::new("basis_points", "must be between 1 and 10000 (100 %)"),
            ),
            Self::CouponPercent { .. } => Ok(()),
            _ => bounds::positive_amount("amount", self.amount()).map(drop),
        }
    }
}

/// The rewards for friends whose qualifying order is at least `min_order`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tier {
    /// Minor units; the first tier starts at 0.
    pub min_order: i64,
    /// The referrer's reward; with several, the referrer picks one.
    pub referrer: Vec<Reward>,
    /// The friend's reward. A tier that does not name one keeps the friend
    /// reward of the tier below (a bigger order never pays the friend
    /// less by omission); `"friend": null` says the friend gets nothing.
    pub friend: Option<Reward>,
}

/// A tier as written: `friend` absent (`None`) differs from `null`
/// (`Some(None)`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierIn {
    #[serde(default)]
    min_order: i64,
    #[serde(default)]
    referrer: Vec<Reward>,
    #[serde(default, deserialize_with = "present")]
    friend: Option<Option<Reward>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Reward>>, D::Error> {
    Option::<Reward>::deserialize(d).map(Some)
}

/// Reads tiers, each without a `friend` inheriting the one below. Stored
/// versions are written back with every `friend` explicit, so a version
/// keeps paying what it paid.
fn inheriting_tiers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Tier>, D::Error> {
    let written = Vec::<TierIn>::deserialize(d)?;
    let mut below: Option<Reward> = None;
    Ok(written
        .into_iter()
        .map(|t| {
            let friend = t.friend.unwrap_or_else(|| below.clone());
            below = friend.clone();
            Tier {
                min_order: t.min_order,
                referrer: t.referrer,
                friend,
            }
        })
        .collect())
}

/// Rewards further up the chain: the referrer's referrer (level 2) gets
/// `shares_bp[0]` of the direct referrer's points or cashback, level 3
/// `shares_bp[1]`, …, each payout at most `cap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub shares_bp: Vec<u32>,
    #[serde(default)]
    pub cap: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchModel {
    /// The first referrer to reach the friend keeps them.
    #[default]
    FirstTouch,
    /// A later code moves the friend to its referrer, until they qualify.
    LastTouch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Attribution {
    /// How long after the click (or the code being entered) a friend can
    /// still be bound, and a bound friend can still qualify.
    pub window_days: u32,
    pub model: TouchModel,
}

impl Default for Attribution {
    fn default() -> Self {
        Self {
            window_days: 30,
            model: TouchModel::FirstTouch,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most rewarded referrals per referrer in `period_days`.
    pub max_per_referrer: Option<u32>,
    pub period_days: Option<u32>,
    /// Most the program spends on referral rewards, in minor units
    /// (points at the redeem policy's point value).
    pub budget_minor: Option<i64>,
}

/// One version of a program's referral rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralRules {
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub qualifying: Qualifying,
    /// By the friend's qualifying order, lowest first.
    #[serde(deserialize_with = "inheriting_tiers")]
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub levels: Option<Levels>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub attribution: Attribution,
    /// Days rewards stay pending after the qualifying order (the refund
    /// window); absent: the program's `earn_hold_days`.
    #[serde(default)]
    pub hold_days: Option<u32>,
    #[serde(default)]
    pub fraud: FraudThresholds,
}

/// Something the friend did after the referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The event's client key (the order id for a purchase).
    pub key: String,
    pub at: OffsetDateTime,
    pub kind: ActionKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// A purchase, with what is left of it after refunds.
    Purchase {
        amount: i64,
    },
    Custom {
        name: String,
    },
}

/// A reward owed to one member, or a choice of rewards for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub member: MemberId,
    /// 0 the friend, 1 the referrer, 2 the referrer's referrer, …
    pub level: u8,
    /// One reward, or the options the member picks from.
    pub options: Vec<Reward>,
}

impl ReferralRules {
    /// Refuses rules no referral could be paid by, naming the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        match &self.qualifying {
            Qualifying::PurchaseAtLeast { min_amount } => {
                bounds::positive_amount("qualifying.min_amount", *min_amount)?;
            }
            Qualifying::PurchasesWithin { count, days }
                if !(1..=1000).contains(count) || !(1..=bounds::MAX_DAYS).contains(days) =>
            {
                return Err(FieldError::new(
                    "qualifying",
                    format!(
                        "count must be between 1 and 1000, days between 1 and {}",
                        bounds::MAX_DAYS
                    ),
                ))
            }
            Qualifying::CustomEvent { name }
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                return Err(FieldError::new(
                    "qualifying.name",
                    "must be a snake_case event name like subscription_started",
                ))
            }
            _ => {}
        }
        if self.tiers.is_empty() || self.tiers.len() > 20 {
            return Err(FieldError::new("tiers", "give 1 to 20 tiers"));
        }
        if self.tiers[0].min_order != 0 {
            return Err(FieldError::new(
                "tiers[0].min_order",
                "the first tier must start at 0",
            ));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            let at = |f: &str| format!("tiers[{i}].{f}");
            bounds::amount(&at("min_order"), t.min_order)?;
            if i > 0 && t.min_order <= self.tiers[i - 1].min_order {
                return Err(FieldError::new(
                    at("min_order"),
                    "tiers must be in increasing min_order",
                ));
            }
            if t.referrer.is_empty() && t.friend.is_none() {
                return Err(FieldError::new(
                    at("referrer"),
                    "a tier must reward someone",
                ));
            }
            if t.referrer.len() > 5 {
                return Err(FieldError::new(at("referrer"), "at most 5 options"));
            }
            for (j, r) in t.referrer.iter().enumerate() {
                r.validate()
                    .map_err(|e| e.within(&format!("tiers[{i}].referrer[{j}]")))?;
            }
            if let Some(f) = &t.friend {
                f.validate().map_err(|e| e.within(&at("friend")))?;
            }
            if self.levels.is_some() && !t.referrer.iter().any(|r| r.ledger().is_some()) {
                return Err(FieldError::new(
                    at("referrer"),
                    "with levels, offer the referrer points or cashback: upper levels get a share of the points or cashback the referrer takes",
                ));
            }
        }
        if let Some(l) = &self.levels {
            if l.shares_bp.is_empty() || l.shares_bp.len() > 9 {
                return Err(FieldError::new("levels.shares_bp", "give 1 to 9 shares"));
            }
            if l.shares_bp.iter().any(|&s| s == 0 || s > 10_000) {
                return Err(FieldError::new(
                    "levels.shares_bp",
                    "each share must be between 1 and 10000 basis points",
                ));
            }
            if let Some(cap) = l.cap {
                bounds::positive_amount("levels.cap", cap)?;
            }
        }
        if self.limits.max_per_referrer == Some(0) {
            return Err(FieldError::new(
                "limits.max_per_referrer",
                "must be at least 1",
            ));
        }
        bounds::days(
            "limits.period_days",
            self.limits.period_days,
            "without a limit",
        )?;
        if self.limits.max_per_referrer.is_some() != self.limits.period_days.is_some() {
            return Err(FieldError::new(
                "limits.period_days",
                "give max_per_referrer and period_days (at least 1) together",
            ));
        }
        if let Some(budget) = self.limits.budget_minor {
            bounds::positive_amount("limits.budget_minor", budget)?;
        }
        if !(1..=bounds::MAX_DAYS).contains(&self.attribution.window_days) {
            return Err(FieldError::new(
                "attribution.window_days",
                format!("must be between 1 and {}", bounds::MAX_DAYS),
            ));
        }
        bounds::days(
            "hold_days",
            self.hold_days,
            "for the program's earn_hold_days",
        )?;
        self.fraud.validate().map_err(|e| e.within("fraud"))
    }

    pub fn window(&self) -> Duration {
        Duration::days(i64::from(self.attribution.window_days))
    }

    /// The action that qualifies a friend referred at `since`, if any.
    /// `actions` are the friend's purchases and custom events, oldest first;
    /// a friend who bought before the referral is not a new customer, so
    /// `first_purchase` never qualifies them.
    pub fn qualifying_action<'a>(
        &self,
        since: OffsetDateTime,
        actions: &'a [Action],
    ) -> Option<&'a Action> {
        let purchases = || {
            actions
                .iter()
                .filter(|a| matches!(a.kind, ActionKind::Purchase { amount } if amount > 0))
        };
        let until = since + self.window();
        match &self.qualifying {
            Qualifying::FirstPurchase => purchases()
                .next()
                .filter(|a| a.at >= since && a.at <= until),
            Qualifying::PurchaseAtLeast { min_amount } => {
                purchases().filter(|a| a.at >= since && a.at <= until).find(
                    |a| matches!(a.kind, ActionKind::Purchase { amount } if amount >= *min_amount),
                )
            }
            Qualifying::PurchasesWithin { count, days } => {
                let end = since + Duration::days(i64::from(*days));
                purchases()
                    .filter(|a| a.at >= since && a.at <= end)
                    .nth(*count as usize - 1)
            }
            Qualifying::CustomEvent { name } => actions.iter().find(|a| {
                a.at >= since
                    && a.at <= until
                    && matches!(&a.kind, ActionKind::Custom { name: n } if n == name)
            }),
        }
    }

    /// The tier a qualifying order of `order_amount` falls in.
    pub fn tier_for(&self, order_amount: i64) -> &Tier {
        self.tiers
            .iter()
            .rev()
            .find(|t| t.min_order <= order_amount)
            .unwrap_or(&self.tiers[0])
    }

    /// The tiers a qualifying order can reach, lowest first, each with the
    /// least order that earns it: a tier's `min_order`, but never below the
    /// qualifying purchase's `min_amount` (a tier "from 0" under a 500 RUB
    /// qualifying purchase starts at 500 RUB). A tier wholly below that
    /// amount is left out, its next tier pays instead.
    pub fn reachable_tiers(&self) -> Vec<(i64, &Tier)> {
        let floor = match self.qualifying {
            Qualifying::PurchaseAtLeast { min_amount } => min_amount,
            _ => 0,
        };
        self.tiers
            .iter()
            .enumerate()
            .filter(|(i, _)| self.tiers.get(i + 1).is_none_or(|up| up.min_order > floor))
            .map(|(_, t)| (t.min_order.max(floor), t))
            .collect()
    }

    /// The next reachable tier above `order_amount`, if any, with the least
    /// order that earns it.
    pub fn next_tier(&self, order_amount: i64) -> Option<(i64, &Tier)> {
        self.reachable_tiers()
            .into_iter()
            .find(|(min, _)| *min > order_amount)
    }

    /// Who gets what for a friend whose qualifying order is `order_amount`.
    /// `chain` is the referrer, then their referrer, and so on up.
    pub fn payouts(&self, friend: MemberId, chain: &[MemberId], order_amount: i64) -> Vec<Payout> {
        let tier = self.tier_for(order_amount);
        let mut out = Vec::new();
        if let Some(f) = &tier.friend {
            out.push(Payout {
                member: friend,
                level: 0,
                options: vec![f.clone()],
            });
        }
        let Some(&referrer) = chain.first() else {
            return out;
        };
        if !tier.referrer.is_empty() {
            out.push(Payout {
                member: referrer,
                level: 1,
                options: tier.referrer.clone(),
            });
        }
        // With a choice, upper levels wait for what the referrer takes.
        if let [taken] = tier.referrer.as_slice() {
            out.extend(self.level_payouts(&chain[1..], taken));
        }
        out
    }

    /// What the referrer's referrers get once the referrer took `taken`:
    /// `above` is the referrer's referrer, then theirs, and so on. Each gets
    /// their share of the points or cashback the referrer took, in the same
    /// asset; a referrer who took a coupon, certificate or cash payout
    /// leaves no share (there are no points or cashback to share).
    pub fn level_payouts(&self, above: &[MemberId], taken: &Reward) -> Vec<Payout> {
        let (Some(levels), Some((asset, base))) = (&self.levels, taken.ledger()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (&member, &share)) in above.iter().zip(&levels.shares_bp).enumerate() {
            let mut amount = (i128::from(base) * i128::from(share) / 10_000) as i64;
            if let Some(cap) = levels.cap {
                amount = amount.min(cap);
            }
            if amount > 0 {
                let reward = match asset {
                    Asset::Points => Reward::Points { amount },
                    Asset::Cashback => Reward::Cashback { amount },
                };
                out.push(Payout {
                    member,
                    level: (i + 2) as u8,
                    options: vec![reward],
                });
            }
        }
        out
    }

    /// How many levels up the chain rewards reach (1: the referrer alone).
    pub fn depth(&self) -> usize {
        1 + self.levels.as_ref().map_or(0, |l| l.shares_bp.len())
    }
}

/// Why a referrer's rewards are withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The referrer already has `max_per_referrer` rewarded referrals in the period.
    Referrer,
    /// The rewards would take the program past its budget.
    Budget,
}

impl LimitHit {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Referrer => "limit_per_referrer",
            Self::Budget => "budget_exhausted",
        }
    }
}

impl Limits {
    /// Whether rewards costing `cost` may be made, given the referrer's
    /// rewarded referrals in the period and what the program spent so far.
    pub fn check(&self, referrer_rewarded: u32, spent: i64, cost: i64) -> Result<(), LimitHit> {
        if self
            .max_per_referrer
            .is_some_and(|m| referrer_rewarded >= m)
        {
            return Err(LimitHit::Referrer);
        }
        if self
            .budget_minor
            .is_some_and(|b| spent.saturating_add(cost) > b)
        {
            return Err(LimitHit::Budget);
        }
        Ok(())
    }
}

/// The version in force at `at`.
pub fn active_version(versions: &[ReferralRules], at: OffsetDateTime) -> Option<&ReferralRules> {
    versions
        .iter()
        .filter(|v| v.effective_from <= at)
        .max_by_key(|v| (v.effective_from, v.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn rules(json: &str) -> ReferralRules {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["version"] = 1.into();
        v["effective_from"] = "2026-01-01T00:00:00Z".into();
        let r: ReferralRules = serde_json::from_value(v).unwrap();
        r.validate().unwrap();
        r
    }

    fn two_sided() -> ReferralRules {
        rules(
            r#"{"qualifying":{"action":"first_purchase"},
                "tiers":[{"referrer":[{"kind":"points","amount":300}],"friend":{"kind":"points","amount":300}}]}"#,
        )
    }

    fn buy(key: &str, days: i64, amount: i64) -> Action {
        Action {
            key: key.into(),
            at: T0 + Duration::days(days),
            kind: ActionKind::Purchase { amount },
        }
    }

    fn m(n: u8) -> MemberId {
        MemberId::from_parts(u64::from(n), [n; 10])
    }

    #[test]
    fn first_purchase_after_the_referral_qualifies() {
        let r = two_sided();
        let acts = [buy("o1", 1, 5000), buy("o2", 2, 9000)];
        assert_eq!(r.qualifying_action(T0, &acts).unwrap().key, "o1");
        // An existing customer is not a new one.
        let acts = [buy("o0", -5, 5000), buy("o1", 1, 5000)];
        assert_eq!(r.qualifying_action(T0, &acts), None);
        // Past the window.
        assert_eq!(r.qualifying_action(T0, &[buy("late", 31, 5000)]), None);
    }

    #[test]
    fn threshold_count_and_custom_event() {
        let r = rules(
            r#"{"qualifying":{"action":"purchase_at_least","min_amount":100000},
                "tiers":[{"friend":{"kind":"cashback","amount":500}}]}"#,
        );
        let acts = [buy("small", 1, 99_999), buy("big", 2, 100_000)];
        assert_eq!(r.qualifying_action(T0, &acts).unwrap().key, "big");

        let r = rules(
            r#"{"qualifying":{"action":"purchases_within","count":3,"days":10},
                "tiers":[{"referrer":[{"kind":"points","amount":1}]}]}"#,
        );
        let acts = [buy("a", 1, 1), buy("b", 5, 1), buy("c", 11, 1)];
        assert_eq!(r.qualifying_action(T0, &acts), None);
        let acts = [
            buy("a", 1, 1),
            buy("b", 5, 1),
            buy("c", 9, 1),
            buy("d", 9, 1),
        ];
        assert_eq!(r.qualifying_action(T0, &acts).unwrap().key, "c");
        // A fully refunded purchase does not count.
        let acts = [buy("a", 1, 0), buy("b", 5, 1), buy("c", 9, 1)];
        assert_eq!(r.qualifying_action(T0, &acts), None);

        let r = rules(
            r#"{"qualifying":{"action":"custom_event","name":"subscribed"},
                "tiers":[{"referrer":[{"kind":"gift_certificate","amount":100000}]}]}"#,
        );
        let acts = [
            buy("a", 1, 1),
            Action {
                key: "e1".into(),
                at: T0 + Duration::days(2),
                kind: ActionKind::Custom {
                    name: "subscribed".into(),
                },
            },
        ];
        assert_eq!(r.qualifying_action(T0, &acts).unwrap().key, "e1");
    }

    #[test]
    fn tiers_by_order_value() {
        let r = rules(
            r#"{"qualifying":{"action":"first_purchase"},"tiers":[
                {"min_order":0,"referrer":[{"kind":"points","amount":100}]},
                {"min_order":300000,"referrer":[{"kind":"points","amount":300}],"friend":{"kind":"coupon_percent","basis_points":1000}},
                {"min_order":1000000,"referrer":[{"kind":"points","amount":1000}]}]}"#,
        );
        let amount =
            |order| r.payouts(m(2), &[m(1)], order)[..].last().unwrap().options[0].amount();
        assert_eq!(amount(0), 100);
        assert_eq!(amount(299_999), 100);
        assert_eq!(amount(300_000), 300);
        assert_eq!(amount(5_000_000), 1000);
        assert_eq!(r.payouts(m(2), &[m(1)], 300_000)[0].level, 0);
        assert_eq!(r.next_tier(299_999).unwrap().0, 300_000);
        let mins = |r: &ReferralRules| -> Vec<i64> {
            r.reachable_tiers().iter().map(|(m, _)| *m).collect()
        };
        assert_eq!(mins(&r), [0, 300_000, 1_000_000]);
        let mut r = r.clone();
        r.qualifying = Qualifying::PurchaseAtLeast { min_amount: 50_000 };
        assert_eq!(mins(&r), [50_000, 300_000, 1_000_000]);
        r.qualifying = Qualifying::PurchaseAtLeast {
            min_amount: 300_000,
        };
        assert_eq!(mins(&r), [300_000, 1_000_000]);
        assert_eq!(r.reachable_tiers()[0].1.min_order, 300_000);
        assert_eq!(r.next_tier(1_000_000), None);
        assert_eq!(r.next_tier(0).unwrap().0, 300_000);
    }

    #[test]
    fn levels_pay_shares_with_a_cap() {
        let r = rules(
            r#"{"qualifying":{"action":"first_purchase"},
                "tiers":[{"referrer":[{"kind":"points","amount":1000}],"friend":{"kind":"points","amount":200}}],
                "levels":{"shares_bp":[5000,2500,1000],"cap":400}}"#,
        );
        let p = r.payouts(m(9), &[m(3), m(2), m(1)], 10_000);
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.member, p.level, p.options[0].amount()))
            .collect();
        assert_eq!(
            got,
            vec![
                (m(9), 0, 200),
                (m(3), 1, 1000),
                (m(2), 2, 400),
                (m(1), 3, 250)
            ],
            "level 2 capped at 400; the chain ends before level 4"
        );
        assert_eq!(r.depth(), 4);
    }

    #[test]
    fn a_tier_without_a_friend_reward_keeps_the_one_below() {
        // The README's example: the second tier names only the referrer's.
        let r = rules(
            r#"{"qualifying":{"action":"first_purchase"},"tiers":[
                {"min_order":0,"referrer":[{"kind":"points","amount":300}],"friend":{"kind":"points","amount":300}},
                {"min_order":500000,"referrer":[{"kind":"points","amount":1000}]},
                {"min_order":900000,"referrer":[{"kind":"points","amount":2000}],"friend":null}]}"#,
        );
        let friend = |order| {
            r.payouts(m(2), &[m(1)], order)
                .into_iter()
                .find(|p| p.level == 0)
                .map(|p| p.options[0].amount())
        };
        assert_eq!(friend(1), Some(300));
        assert_eq!(friend(600_000), Some(300), "inherited from the tier below");
        assert_eq!(
            friend(900_000),
            None,
            "\"friend\": null pays the friend nothing"
        );
        // Written back explicitly, a stored version reads the same.
        let again: ReferralRules =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn upper_levels_share_what_the_referrer_took() {
        let r = rules(
            r#"{"qualifying":{"action":"first_purchase"},"tiers":[{"referrer":[
                {"kind":"points","amount":1000},{"kind":"cash_payout","amount":50000}]}],
                "levels":{"shares_bp":[2000]}}"#,
        );
        let p = r.payouts(m(9), &[m(3), m(2)], 1);
        assert_eq!(p.len(), 1, "with a choice open, upper levels wait: {p:?}");
        let took_points = r.level_payouts(&[m(2)], &Reward::Points { amount: 1000 });
        assert_eq!(took_points.len(), 1);
        assert_eq!((took_points[0].member, took_points[0].level), (m(2), 2));
        assert_eq!(took_points[0].options, vec![Reward::Points { amount: 200 }]);
        assert_eq!(
            r.level_payouts(&[m(2)], &Reward::CashPayout { amount: 50000 }),
            vec![],
            "cash taken: no points to share"
        );
        let cashback = r.level_payouts(&[m(2)], &Reward::Cashback { amount: 5000 });
        assert_eq!(cashback[0].options, vec![Reward::Cashback { amount: 1000 }]);
    }

    #[test]
    fn choices_and_costs() {
        let r = rules(
            r#"{"qualifying":{"action":"first_purchase"},"tiers":[{"referrer":[
                {"kind":"points","amount":500},{"kind":"coupon_fixed","amount":50000},{"kind":"cash_payout","amount":30000}]}]}"#,
        );
        let p = r.payouts(m(2), &[m(1)], 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].options.len(), 3);
        assert_eq!(Reward::Points { amount: 500 }.cost_minor(0, 50), 25_000);
        assert_eq!(
            Reward::CouponPercent { basis_points: 1000 }.cost_minor(120_000, 50),
            12_000
        );
        assert_eq!(
            Reward::CashPayout { amount: 30_000 }.cost_minor(0, 50),
            30_000
        );
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_per_referrer: Some(2),
            period_days: Some(30),
            budget_minor: Some(1000),
        };
        assert_eq!(l.check(1, 0, 500), Ok(()));
        assert_eq!(l.check(2, 0, 500), Err(LimitHit::Referrer));
        assert_eq!(l.check(0, 600, 400), Ok(()));
        assert_eq!(l.check(0, 600, 401), Err(LimitHit::Budget));
    }

    #[test]
    fn bad_rules_name_the_field() {
        let bad = |json: &str| {
            let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
            v["version"] = 1.into();
            v["effective_from"] = "2026-01-01T00:00:00Z".into();
            serde_json::from_value::<ReferralRules>(v)
                .map_err(|e| e.to_string())
                .and_then(|r| r.validate().map_err(|e| e.field))
                .unwrap_err()
        };
        let q = r#""qualifying":{"action":"first_purchase"}"#;
        assert_eq!(bad(&format!(r#"{{{q},"tiers":[]}}"#)), "tiers");
        assert_eq!(
            bad(&format!(
                r#"{{{q},"tiers":[{{"min_order":5,"friend":{{"kind":"points","amount":1}}}}]}}"#
            )),
            "tiers[0].min_order"
        );
        assert_eq!(
            bad(&format!(
                r#"{{{q},"tiers":[{{"friend":{{"kind":"points","amount":0}}}}]}}"#
            )),
            "tiers[0].friend.amount"
        );
        assert_eq!(
            bad(&format!(
                r#"{{{q},"tiers":[{{"referrer":[{{"kind":"coupon_fixed","amount":1}}]}}],"levels":{{"shares_bp":[100]}}}}"#
            )),
            "tiers[0].referrer"
        );
        assert_eq!(
            bad(&format!(
                r#"{{{q},"tiers":[{{"friend":{{"kind":"points","amount":1}}}}],"limits":{{"max_per_referrer":3}}}}"#
            )),
            "limits.period_days"
        );
        assert!(bad(&format!(
            r#"{{{q},"tiers":[{{"friend":{{"kind":"bitcoin","amount":1}}}}]}}"#
        ))
        .contains("bitcoin"));
    }

    proptest! {
        /// Upper levels never get more than their share or the cap, and the
        /// chain is paid at most as deep as the rules say.
        #[test]
        fn level_payouts_are_bounded(
            base in 1i64..1_000_000,
            shares in proptest::collection::vec(1u32..=10_000, 1..5),
            cap in proptest::option::of(1i64..100_000),
            chain_len in 1usize..8,
        ) {
            let r = ReferralRules {
                version: 1,
                effective_from: T0,
                qualifying: Qualifying::FirstPurchase,
                tiers: vec![Tier { min_order: 0, referrer: vec![Reward::Points { amount: base }], friend: None }],
                levels: Some(Levels { shares_bp: shares.clone(), cap }),
                limits: Limits::default(),
                attribution: Attribution::default(),
                hold_days: None,
                fraud: FraudThresholds::default(),
            };
            prop_assert!(r.validate().is_ok());
            let chain: Vec<_> = (1..=chain_len as u8).map(m).collect();
            let p = r.payouts(m(100), &chain, 0);
            prop_assert!(p.len() <= 1 + shares.len().min(chain_len - 1));
            for payout in &p[1..] {
                let share = shares[usize::from(payout.level) - 2];
                let a = payout.options[0].amount();
                prop_assert!(a * 10_000 <= base * i64::from(share));
                prop_assert!(cap.is_none_or(|c| a <= c));
                prop_assert_eq!(payout.member, chain[usize::from(payout.level) - 1]);
            }
        }
    }
}
