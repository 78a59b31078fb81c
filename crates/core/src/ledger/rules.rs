//! Earn rules: how many points a purchase earns, and why.
//!
//! Rule sets are versioned by `effective_from` so a purchase is always
//! scored by the rules in force when it happened, even when replayed later.
//! Every point of an [`Earn`] comes with a breakdown line the member can
//! read; the lines sum exactly to the total.

use super::condition::{Condition, Facts};
use super::reason::Reason;
use super::{non_negative, LedgerError};
use crate::{bounds, FieldError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use time::OffsetDateTime;

/// Basis points meaning ×1.
const ONE: u32 = 10_000;

/// `points` points for every `per_minor` minor units spent (1 per 100 kopecks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub points: i64,
    pub per_minor: i64,
}

/// A rate multiplier for one SKU or category, in basis points (10000 = ×1,
/// 15000 = ×1.5, 0 = earns nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multiplier {
    pub key: String,
    pub basis_points: u32,
}

/// How fractional points become whole ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Down: the program never gives away a point it did not promise.
    #[default]
    Floor,
    /// To nearest, halves up.
    HalfUp,
}

impl Rounding {
    /// `num / den` rounded this way, for `num >= 0` and `den > 0`.
    fn divide(self, num: i128, den: i128) -> i128 {
        let (q, r) = (num / den, num % den);
        match self {
            Self::Floor => q,
            Self::HalfUp => q + i128::from(r >= den - r),
        }
    }
}

/// A time-boxed bonus: while `starts_at <= at < ends_at` (and `condition`
/// holds) it adds `base × (basis_points − 10000) / 10000` points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub basis_points: u32,
    #[serde(default)]
    pub condition: Option<String>,
}

/// One version of a program's earn rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarnRules {
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub base_rate: Rate,
    #[serde(default)]
    pub rounding: Rounding,
    #[serde(default)]
    pub category_multipliers: Vec<Multiplier>,
    #[serde(default)]
    pub sku_multipliers: Vec<Multiplier>,
    /// Orders below this many minor units earn nothing.
    #[serde(default)]
    pub min_order: i64,
    #[serde(default)]
    pub cap_per_order: Option<i64>,
    #[serde(default)]
    pub cap_per_day: Option<i64>,
    #[serde(default)]
    pub promotions: Vec<Promotion>,
    /// CEL; an order for which it is false earns nothing.
    #[serde(default)]
    pub condition: Option<String>,
}

/// The version in force at `at`: the latest `effective_from <= at` (the
/// higher `version` if two start together).
pub fn active_version(versions: &[EarnRules], at: OffsetDateTime) -> Option<&EarnRules> {
    versions
        .iter()
        .filter(|v| v.effective_from <= at)
        .max_by_key(|v| (v.effective_from, v.version))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub category: Option<String>,
    pub quantity: u32,
    /// Minor units, before order-level discounts.
    pub unit_price: i64,
}

/// A purchase to score. `amount` is what the customer paid, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    pub amount: i64,
    pub currency: String,
    pub channel: Option<String>,
    pub store_id: Option<String>,
    pub lines: Vec<Line>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What conditions may know about the member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberContext {
    pub tier: Option<String>,
    pub orders_count: i64,
}

/// One reason in an earn's breakdown; cuts (caps) are negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnLine {
    #[serde(deserialize_with = "super::reason::data_or_text")]
    pub reason: Reason,
    pub points: i64,
}

/// Points a purchase earns, with the lines that explain them; `points` is
/// the exact sum of `breakdown` and never negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earn {
    pub points: i64,
    pub breakdown: Vec<EarnLine>,
}

impl Earn {
    /// Nothing earned, and why.
    pub fn nothing(reason: Reason) -> Self {
        Self {
            points: 0,
            breakdown: vec![EarnLine { reason, points: 0 }],
        }
    }
}

/// A rule set with its CEL compiled and multipliers indexed: build once per
/// version, then [`CompiledRules::earn`] as often as events arrive.
pub struct CompiledRules {
    rules: EarnRules,
    condition: Option<Condition>,
    promotions: Vec<Option<Condition>>,
    sku: HashMap<String, u32>,
    category: HashMap<String, u32>,
}

impl fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledRules")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl CompiledRules {
    /// Checks `rules` and compiles its conditions; errors name the field
    /// (`base_rate.per_minor`, `promotions[0].condition`, ...).
    pub fn compile(rules: EarnRules) -> Result<Self, FieldError> {
        bounds::amount("base_rate.points", rules.base_rate.points)?;
        bounds::positive_amount("base_rate.per_minor", rules.base_rate.per_minor)?;
        bounds::amount("min_order", rules.min_order)?;
        bounds::amount("cap_per_order", rules.cap_per_order.unwrap_or(0))?;
        bounds::amount("cap_per_day", rules.cap_per_day.unwrap_or(0))?;
        let condition = rules
            .condition
            .as_deref()
            .map(|c| Condition::compile("condition", c))
            .transpose()?;
        let promotions = rules
            .promotions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let field = |name: &str| format!("promotions[{i}].{name}");
                if !(ONE..=bounds::MAX_MULTIPLIER_BP).contains(&p.basis_points) {
                    return Err(FieldError::new(
                        field("basis_points"),
                        format!(
                            "must be between 10000 (×1; a promotion adds points) and {}",
                            bounds::MAX_MULTIPLIER_BP
                        ),
                    ));
                }
                if p.ends_at <= p.starts_at {
                    return Err(FieldError::new(field("ends_at"), "must be after starts_at"));
                }
                p.condition
                    .as_deref()
                    .map(|c| Condition::compile(&field("condition"), c))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            sku: index("sku_multipliers", &rules.sku_multipliers)?,
            category: index("category_multipliers", &rules.category_multipliers)?,
            condition,
            promotions,
            rules,
        })
    }

    pub fn rules(&self) -> &EarnRules {
        &self.rules
    }

    /// Refuses rules whose conditions could be too costly to evaluate (see
    /// [`Condition::check_budget`]): for rules being saved, not for stored
    /// ones, which are skipped per order instead.
    pub fn check_budget(&self) -> Result<(), FieldError> {
        self.conditions().try_for_each(Condition::check_budget)
    }

    /// The fields of the conditions too costly to run on `purchase`: they
    /// count as not met (and the breakdown says so); for the log.
    pub fn over_budget(&self, purchase: &Purchase) -> Vec<&str> {
        self.conditions()
            .filter(|c| c.cost(purchase.lines.len()) > super::condition::COST_BUDGET)
            .map(Condition::field)
            .collect()
    }

    fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.condition
            .iter()
            .chain(self.promotions.iter().flatten())
    }

    /// Scores `purchase` for a member who already earned `earned_today`.
    ///
    /// In order:
    /// 1. `amount < min_order` → 0, with the reason.
    /// 2. `condition` false → 0, with the reason.
    /// 3. Base, per line: `line_total = quantity × unit_price` at the
    ///    line's multiplier (the SKU's, else the category's, else ×1), worth
    ///    `line_total × rate.points × multiplier / (rate.per_minor × 10000)`.
    ///    When `amount` is below the lines' total (an order discount), each
    ///    line counts only its share, `line_total × amount / lines_total`.
    ///    When `amount` is above it (shipping, fees), the lines count in full
    ///    and the rest is a line of its own at ×1: a multiplier is for the
    ///    goods it names, not for the delivery. Without lines (or lines
    ///    totalling 0), `amount` earns at ×1.
    /// 4. Each promotion with `starts_at <= at < ends_at` and a true condition
    ///    adds `base × (basis_points − 10000) / 10000`; promotions add up,
    ///    none compounds on another.
    /// 5. `cap_per_order`, then `cap_per_day` (less `earned_today`), cut the
    ///    total with a negative line each.
    ///
    /// Steps 3 and 4 are exact fractions: the total is rounded once, by
    /// the rule set's [`Rounding`], and each line shows the rounded running
    /// sum less the one before it, so the lines add up to the total.
    pub fn earn(
        &self,
        purchase: &Purchase,
        ctx: &MemberContext,
        earned_today: i64,
    ) -> Result<Earn, LedgerError> {
        let r = &self.rules;
        let amount = non_negative("amount", purchase.amount)?;
        let earned_today = non_negative("earned_today", earned_today)?;
        if amount < r.min_order {
            return Ok(Earn::nothing(Reason::BelowMinimum {
                amount,
                min: r.min_order,
            }));
        }
        let facts = Facts::new(purchase, ctx);
        if let Some(c) = &self.condition {
            if !facts.check(c)? {
                return Ok(Earn::nothing(
                    facts.skipped().pop().unwrap_or(Reason::ConditionNotMet),
                ));
            }
        }
        let (mut parts, den) = self.base_parts(purchase)?;
        let base_num = parts
            .iter()
            .try_fold(0i128, |acc, (_, n)| acc.checked_add(*n))
            .ok_or(LedgerError::Overflow)?;
        let base_points = narrow(r.rounding.divide(base_num, den))?;
        for (promo, condition) in r.promotions.iter().zip(&self.promotions) {
            let running = promo.starts_at <= purchase.at && purchase.at < promo.ends_at;
            if !running {
                continue;
            }
            if let Some(c) = condition {
                if !facts.check(c)? {
                    continue;
                }
            }
            let extra = i128::from(promo.basis_points - ONE);
            parts.push((
                Reason::Promotion {
                    name: promo.name.clone(),
                    bp: promo.basis_points,
                    base: base_points,
                },
                // Base parts carry an extra ×10000, so `base_num / 10000 × extra`.
                mul(&[base_num / i128::from(ONE), extra])?,
            ));
        }
        let mut breakdown = Vec::with_capacity(parts.len() + 2);
        let (mut running, mut shown) = (0i128, 0i64);
        for (reason, num) in parts {
            running = running.checked_add(num).ok_or(LedgerError::Overflow)?;
            let upto = narrow(r.rounding.divide(running, den))?;
            breakdown.push(EarnLine {
                reason,
                points: upto - shown,
            });
            shown = upto;
        }
        breakdown.extend(
            facts
                .skipped()
                .into_iter()
                .map(|reason| EarnLine { reason, points: 0 }),
        );
        let mut points = shown;
        let mut cut = |room: i64, reason: &dyn Fn() -> Reason| {
            if points > room {
                breakdown.push(EarnLine {
                    reason: reason(),
                    points: room - points,
                });
                points = room;
            }
        };
        if let Some(cap) = r.cap_per_order {
            cut(cap, &|| Reason::CapPerOrder { cap });
        }
        if let Some(cap) = r.cap_per_day {
            let room = (cap - earned_today).max(0);
            cut(room, &|| Reason::CapPerDay { cap, earned_today });
        }
        Ok(Earn { points, breakdown })
    }

    /// Step 3 of [`CompiledRules::earn`]: one part per purchase line (and
    /// one for the amount above the lines), each an exact numerator over
    /// the returned common denominator. Numerators carry an extra factor
    /// of 10000 so a promotion's share of their sum stays exact.
    #[allow(clippy::type_complexity)]
    fn base_parts(&self, purchase: &Purchase) -> Result<(Vec<(Reason, i128)>, i128), LedgerError> {
        let rate = self.rules.base_rate;
        let amount = i128::from(purchase.amount);
        let mut totals = Vec::with_capacity(purchase.lines.len());
        for (i, line) in purchase.lines.iter().enumerate() {
            // Checked before naming the field: formatting it per line is hot-path waste.
            if line.unit_price < 0 {
                non_negative(&format!("lines[{i}].unit_price"), line.unit_price)?;
            }
            totals.push(i128::from(line.quantity) * i128::from(line.unit_price));
        }
        let lines_total: i128 = totals.iter().sum();
        let one = i128::from(ONE);
        // A discount scales every line by amount / lines_total.
        let (scale, per) = if lines_total > amount {
            (amount, lines_total)
        } else {
            (1, 1)
        };
        let den = mul(&[per, rate.per_minor.into(), one, one])?;
        let at = |money: i128, bp: u32| mul(&[money, rate.points.into(), bp.into(), one]);
        if lines_total == 0 {
            return Ok((
                vec![(
                    Reason::OrderTotal {
                        amount: purchase.amount,
                    },
                    at(amount, ONE)?,
                )],
                den,
            ));
        }
        let mut parts = Vec::with_capacity(purchase.lines.len() + 1);
        let mut running = 0;
        for (line, line_total) in purchase.lines.iter().zip(totals) {
            // Shown paid amounts are floored cumulatively, so they sum to `amount`.
            let paid = (scale != per).then(|| {
                let before = running * amount / lines_total;
                running += line_total;
                running * amount / lines_total - before
            });
            let bp = self.multiplier(line);
            parts.push((
                Reason::Line {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    total: narrow(line_total)?,
                    paid: paid.map(narrow).transpose()?,
                    bp,
                },
                at(mul(&[line_total, scale])?, bp)?,
            ));
        }
        if amount > lines_total {
            let surplus = amount - lines_total;
            parts.push((
                Reason::Surplus {
                    amount: narrow(surplus)?,
                },
                at(surplus, ONE)?,
            ));
        }
        Ok((parts, den))
    }

    /// The SKU's multiplier, else the category's, else ×1.
    fn multiplier(&self, line: &Line) -> u32 {
        self.sku
            .get(&line.sku)
            .or_else(|| line.category.as_ref().and_then(|c| self.category.get(c)))
            .copied()
            .unwrap_or(ONE)
    }
}

/// Multiplier list → lookup map, refusing a key listed twice (which would
/// make the effective multiplier depend on list order).
fn index(field: &str, list: &[Multiplier]) -> Result<HashMap<String, u32>, FieldError> {
    let mut map = HashMap::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        if m.basis_points > bounds::MAX_MULTIPLIER_BP {
            return Err(FieldError::new(
                format!("{field}[{i}].basis_points"),
                format!("must be at most {}", bounds::MAX_MULTIPLIER_BP),
            ));
        }
        if map.insert(m.key.clone(), m.basis_points).is_some() {
            return Err(FieldError::new(
                format!("{field}[{i}].key"),
                format!("{:?} is listed twice; keep one", m.key),
            ));
        }
    }
    Ok(map)
}

fn mul(factors: &[i128]) -> Result<i128, LedgerError> {
    factors
        .iter()
        .try_fold(1i128, |acc, &f| acc.checked_mul(f))
        .ok_or(LedgerError::Overflow)
}

fn narrow(v: i128) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn rules() -> EarnRules {
        EarnRules {
            version: 1,
            effective_from: datetime!(2026-01-01 0:00 UTC),
            base_rate: Rate {
                points: 1,
                per_minor: 100,
            },
            rounding: Rounding::Floor,
            category_multipliers: vec![Multiplier {
                key: "tea".into(),
                basis_points: 20_000,
            }],
            sku_multipliers: vec![Multiplier {
                key: "TEA-GOLD".into(),
                basis_points: 30_000,
            }],
            min_order: 0,
            cap_per_order: None,
            cap_per_day: None,
            promotions: vec![],
            condition: None,
        }
    }

    fn line(sku: &str, category: Option<&str>, quantity: u32, unit_price: i64) -> Line {
        Line {
            sku: sku.into(),
            category: category.map(Into::into),
            quantity,
            unit_price,
        }
    }

    fn purchase(amount: i64, lines: Vec<Line>) -> Purchase {
        Purchase {
            amount,
            currency: "RUB".into(),
            channel: None,
            store_id: None,
            lines,
            at: datetime!(2026-03-10 12:00 UTC),
        }
    }

    fn earn(rules: EarnRules, p: &Purchase, today: i64) -> Earn {
        let e = CompiledRules::compile(rules)
            .unwrap()
            .earn(p, &MemberContext::default(), today)
            .unwrap();
        assert_eq!(
            e.points,
            e.breakdown.iter().map(|l| l.points).sum::<i64>(),
            "{e:?}"
        );
        e
    }

    #[test]
    fn sku_beats_category_beats_base() {
        let p = purchase(
            6_000,
            vec![
                line("TEA-GOLD", Some("tea"), 1, 1_000),
                line("TEA-1", Some("tea"), 2, 1_000),
                line("CUP", None, 1, 3_000),
            ],
        );
        let e = earn(rules(), &p, 0);
        let pts: Vec<i64> = e.breakdown.iter().map(|l| l.points).collect();
        assert_eq!(pts, [30, 40, 30]);
        assert_eq!(
            e.breakdown[0].reason.to_string(),
            "TEA-GOLD × 1: 1000 at ×3"
        );
    }

    #[test]
    fn rounding_is_floor_or_half_up() {
        let p = purchase(150, vec![]);
        assert_eq!(earn(rules(), &p, 0).points, 1);
        assert_eq!(
            earn(
                EarnRules {
                    rounding: Rounding::HalfUp,
                    ..rules()
                },
                &p,
                0
            )
            .points,
            2
        );
        assert_eq!(
            earn(
                EarnRules {
                    rounding: Rounding::HalfUp,
                    ..rules()
                },
                &purchase(149, vec![]),
                0
            )
            .points,
            1
        );
    }

    /// #16 item 10: 12,399 kopecks at 1 point per rouble with a ×1.5
    /// promotion is 185.985 points: 185, not ⌊123⌋ + ⌊61.5⌋ = 184.
    #[test]
    fn promotions_round_once_on_the_exact_base() {
        let promo = Promotion {
            name: "spring".into(),
            starts_at: datetime!(2026-03-01 0:00 UTC),
            ends_at: datetime!(2026-04-01 0:00 UTC),
            basis_points: 15_000,
            condition: None,
        };
        let with_promo = EarnRules {
            promotions: vec![promo],
            ..rules()
        };
        let e = earn(with_promo.clone(), &purchase(12_399, vec![]), 0);
        assert_eq!(e.points, 185);
        assert_eq!(
            e.breakdown.iter().map(|l| l.points).collect::<Vec<_>>(),
            [123, 62],
            "the lines show the rounded running sum"
        );
        // Lines at multipliers are exact too: 3 × 0.99 at ×1.5 is 4.455, not 3 × ⌊1.485⌋.
        let lines = vec![
            line("A", Some("half"), 1, 99),
            line("B", Some("half"), 1, 99),
            line("C", Some("half"), 1, 99),
        ];
        let halves = EarnRules {
            category_multipliers: vec![Multiplier {
                key: "half".into(),
                basis_points: 15_000,
            }],
            ..rules()
        };
        assert_eq!(earn(halves, &purchase(297, lines), 0).points, 4);
    }

    /// #16 item 11: shipping above the lines earns the base rate, not the
    /// coffee's ×2.
    #[test]
    fn the_amount_above_the_lines_earns_at_the_base_rate() {
        let p = purchase(1_500, vec![line("TEA-1", Some("tea"), 1, 1_000)]);
        let e = earn(rules(), &p, 0);
        assert_eq!(e.points, 20 + 5);
        assert_eq!(
            e.breakdown[1].reason,
            Reason::Surplus { amount: 500 },
            "{e:?}"
        );
        assert_eq!(
            e.breakdown[1].reason.to_string(),
            "rest of the order (shipping, fees) 500 at ×1"
        );
    }

    #[test]
    fn discounts_scale_lines_to_the_amount_paid() {
        // Lines total 3000 but the customer paid 1500: each line earns on half.
        let p = purchase(
            1_500,
            vec![line("A", None, 1, 1_000), line("B", Some("tea"), 1, 2_000)],
        );
        let e = earn(rules(), &p, 0);
        assert_eq!(e.points, 5 + 20);
        let reason = e.breakdown[1].reason.to_string();
        assert!(reason.contains("paid 1000"), "{reason}");
    }

    #[test]
    fn below_min_order_or_failed_condition_earn_nothing_with_a_reason() {
        let p = purchase(999, vec![]);
        let e = earn(
            EarnRules {
                min_order: 1_000,
                ..rules()
            },
            &p,
            0,
        );
        assert_eq!(e.points, 0);
        assert!(e.breakdown[0]
            .reason
            .to_string()
            .contains("below the 1000 minimum"));
        let e = earn(
            EarnRules {
                condition: Some("order.amount > 5000".into()),
                ..rules()
            },
            &p,
            0,
        );
        assert_eq!((e.points, e.breakdown.len()), (0, 1));
        assert_eq!(
            earn(
                EarnRules {
                    condition: Some("order.amount < 5000".into()),
                    ..rules()
                },
                &p,
                0
            )
            .points,
            9
        );
    }

    #[test]
    fn promotions_apply_inside_their_window_and_condition() {
        let promo = |starts_at, ends_at, condition: Option<&str>| Promotion {
            name: "spring".into(),
            starts_at,
            ends_at,
            basis_points: 15_000,
            condition: condition.map(Into::into),
        };
        let at = datetime!(2026-03-10 12:00 UTC);
        let with = |p| EarnRules {
            promotions: vec![p],
            ..rules()
        };
        let p = purchase(10_000, vec![]);
        assert_eq!(
            earn(with(promo(at, datetime!(2026-04-01 0:00 UTC), None)), &p, 0).points,
            150,
            "starts inclusive"
        );
        assert_eq!(
            earn(with(promo(datetime!(2026-03-01 0:00 UTC), at, None)), &p, 0).points,
            100,
            "ends exclusive"
        );
        let window = (
            datetime!(2026-03-01 0:00 UTC),
            datetime!(2026-04-01 0:00 UTC),
        );
        assert_eq!(
            earn(
                with(promo(window.0, window.1, Some("order.currency == 'RUB'"))),
                &p,
                0
            )
            .points,
            150
        );
        assert_eq!(
            earn(
                with(promo(window.0, window.1, Some("order.currency == 'USD'"))),
                &p,
                0
            )
            .points,
            100
        );
        let two = EarnRules {
            promotions: vec![
                promo(window.0, window.1, None),
                promo(window.0, window.1, None),
            ],
            ..rules()
        };
        assert_eq!(earn(two, &p, 0).points, 200, "promotions add, not compound");
    }

    #[test]
    fn caps_cut_with_a_line() {
        let p = purchase(100_000, vec![]);
        let e = earn(
            EarnRules {
                cap_per_order: Some(300),
                cap_per_day: Some(1_000),
                ..rules()
            },
            &p,
            800,
        );
        assert_eq!(e.points, 200);
        assert_eq!(
            e.breakdown.iter().map(|l| l.points).collect::<Vec<_>>(),
            [1_000, -700, -100]
        );
        assert_eq!(
            earn(
                EarnRules {
                    cap_per_day: Some(1_000),
                    ..rules()
                },
                &p,
                5_000
            )
            .points,
            0,
            "never negative"
        );
    }

    #[test]
    fn compile_names_the_bad_field() {
        let field = |r: EarnRules| CompiledRules::compile(r).unwrap_err().field;
        assert_eq!(
            field(EarnRules {
                condition: Some("order.amount >".into()),
                ..rules()
            }),
            "condition"
        );
        let promo = Promotion {
            name: "p".into(),
            starts_at: datetime!(2026-01-01 0:00 UTC),
            ends_at: datetime!(2026-02-01 0:00 UTC),
            basis_points: 20_000,
            condition: Some("1 +".into()),
        };
        assert_eq!(
            field(EarnRules {
                promotions: vec![promo.clone()],
                ..rules()
            }),
            "promotions[0].condition"
        );
        let weak = Promotion {
            basis_points: 9_000,
            condition: None,
            ..promo
        };
        assert_eq!(
            field(EarnRules {
                promotions: vec![weak],
                ..rules()
            }),
            "promotions[0].basis_points"
        );
        assert_eq!(
            field(EarnRules {
                base_rate: Rate {
                    points: 1,
                    per_minor: 0
                },
                ..rules()
            }),
            "base_rate.per_minor"
        );
        let twice = vec![
            Multiplier {
                key: "x".into(),
                basis_points: 1,
            },
            Multiplier {
                key: "x".into(),
                basis_points: 2,
            },
        ];
        assert_eq!(
            field(EarnRules {
                sku_multipliers: twice,
                ..rules()
            }),
            "sku_multipliers[1].key"
        );
    }

    #[test]
    fn bad_purchases_and_overflow_are_errors() {
        let c = CompiledRules::compile(rules()).unwrap();
        let ctx = MemberContext::default();
        assert!(c.earn(&purchase(-1, vec![]), &ctx, 0).is_err());
        let err = c
            .earn(&purchase(1, vec![line("A", None, 1, -5)]), &ctx, 0)
            .unwrap_err();
        assert!(err.to_string().starts_with("lines[0].unit_price"), "{err}");
        let huge = CompiledRules::compile(EarnRules {
            base_rate: Rate {
                points: crate::bounds::MAX_AMOUNT,
                per_minor: 1,
            },
            ..rules()
        })
        .unwrap();
        assert_eq!(
            huge.earn(&purchase(i64::MAX, vec![]), &ctx, 0),
            Err(LedgerError::Overflow)
        );
    }

    #[test]
    fn active_version_picks_the_latest_started() {
        let v = |version, effective_from| EarnRules {
            version,
            effective_from,
            ..rules()
        };
        let versions = [
            v(1, datetime!(2026-01-01 0:00 UTC)),
            v(3, datetime!(2026-06-01 0:00 UTC)),
            v(2, datetime!(2026-03-01 0:00 UTC)),
        ];
        assert_eq!(
            active_version(&versions, datetime!(2025-12-31 0:00 UTC)),
            None
        );
        assert_eq!(
            active_version(&versions, datetime!(2026-03-01 0:00 UTC))
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            active_version(&versions, datetime!(2027-01-01 0:00 UTC))
                .unwrap()
                .version,
            3
        );
    }

    #[test]
    fn rules_read_from_json_with_defaults() {
        let json = r#"{"version":1,"effective_from":"2026-01-01T00:00:00Z","base_rate":{"points":1,"per_minor":100}}"#;
        let r: EarnRules = serde_json::from_str(json).unwrap();
        assert_eq!(
            (r.rounding, r.min_order, r.cap_per_day),
            (Rounding::Floor, 0, None)
        );
        assert!(serde_json::from_str::<EarnRules>(&json.replace("base_rate", "base_rat")).is_err());
    }

    proptest! {
        #[test]
        fn breakdown_explains_every_point(
            amount in 0i64..10_000_000,
            lines in proptest::collection::vec((0u32..5, 0i64..100_000, 0usize..3), 0..6),
            today in 0i64..5_000,
            half_up: bool,
        ) {
            let lines = lines.into_iter().map(|(q, price, k)| line(["TEA-GOLD", "X", "Y"][k], [Some("tea"), None, Some("tea")][k], q, price)).collect();
            let r = EarnRules {
                rounding: if half_up { Rounding::HalfUp } else { Rounding::Floor },
                cap_per_order: Some(20_000),
                cap_per_day: Some(50_000),
                ..rules()
            };
            let e = earn(r, &purchase(amount, lines), today);
            prop_assert!(e.points >= 0 && e.points <= 20_000);
            let is_cut = |l: &&EarnLine| matches!(l.reason, Reason::CapPerOrder { .. } | Reason::CapPerDay { .. });
            let uncut_nonnegative = e.breakdown.iter().filter(|l| !is_cut(l)).all(|l| l.points >= 0);
            prop_assert!(uncut_nonnegative, "{:?}", e);
        }

        /// Without caps the total is the exact value rounded once: within 1
        /// point of it (exactly its floor under `Floor`), whatever the lines.
        #[test]
        fn the_total_is_rounded_once(
            amount in 0i64..10_000_000,
            lines in proptest::collection::vec((1u32..5, 0i64..100_000, 0usize..3), 0..6),
            promo_bp in 10_000u32..30_000,
        ) {
            let lines: Vec<Line> = lines.into_iter().map(|(q, price, k)| line(["TEA-GOLD", "X", "Y"][k], [Some("tea"), None, Some("tea")][k], q, price)).collect();
            let r = EarnRules {
                promotions: vec![Promotion {
                    name: "p".into(),
                    starts_at: datetime!(2026-01-01 0:00 UTC),
                    ends_at: datetime!(2027-01-01 0:00 UTC),
                    basis_points: promo_bp,
                    condition: None,
                }],
                ..rules()
            };
            let bp = |l: &Line| match (l.sku.as_str(), l.category.as_deref()) {
                ("TEA-GOLD", _) => 30_000i128,
                (_, Some("tea")) => 20_000,
                _ => 10_000,
            };
            let lines_total: i128 = lines.iter().map(|l| i128::from(l.quantity) * i128::from(l.unit_price)).sum();
            let amount128 = i128::from(amount);
            // Exact points × 10^8 × lines_total (per_minor 100 → ÷100 below).
            let exact_num: i128 = if lines_total == 0 {
                amount128 * 10_000
            } else if lines_total > amount128 {
                lines.iter().map(|l| i128::from(l.quantity) * i128::from(l.unit_price) * amount128 * bp(l)).sum::<i128>()
            } else {
                lines.iter().map(|l| i128::from(l.quantity) * i128::from(l.unit_price) * bp(l)).sum::<i128>() + (amount128 - lines_total) * 10_000
            };
            let per = if lines_total > amount128 { lines_total } else { 1 };
            let with_promo = exact_num * i128::from(promo_bp);
            let expected = with_promo / (per * 100 * 10_000 * 10_000);
            let e = earn(r, &purchase(amount, lines), 0);
            prop_assert_eq!(i128::from(e.points), expected);
        }
    }
}
