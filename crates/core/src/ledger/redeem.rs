//! Redemption limits: how many points a member may spend on one order.

use super::{non_negative, positive, LedgerError};
use crate::FieldError;
use serde::{Deserialize, Serialize};

/// Basis points meaning the whole order.
const WHOLE: u32 = 10_000;

/// A program's redemption settings. Shares are of the order amount, in
/// basis points: points may pay between `min_order_share_bp` and
/// `max_order_share_bp` of an order, and never fewer than `min_points`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedeemPolicy {
    pub min_order_share_bp: u32,
    pub max_order_share_bp: u32,
    /// Minor units of the program currency one point is worth.
    pub point_value_minor: i64,
    pub min_points: i64,
}

/// By default points may pay for a whole order, one point is worth one
/// unit of the currency (100 minor units), and any positive amount is
/// accepted: the program narrows this in its settings.
impl Default for RedeemPolicy {
    fn default() -> Self {
        Self {
            min_order_share_bp: 0,
            max_order_share_bp: WHOLE,
            point_value_minor: 100,
            min_points: 1,
        }
    }
}

impl RedeemPolicy {
    /// Refuses settings no order could satisfy, naming the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.max_order_share_bp > WHOLE {
            return Err(FieldError::new(
                "max_order_share_bp",
                format!(
                    "must be at most 10000 (the whole order); got {}",
                    self.max_order_share_bp
                ),
            ));
        }
        if self.min_order_share_bp > self.max_order_share_bp {
            return Err(FieldError::new(
                "min_order_share_bp",
                format!(
                    "must not exceed max_order_share_bp ({})",
                    self.max_order_share_bp
                ),
            ));
        }
        crate::bounds::positive_amount("point_value_minor", self.point_value_minor)?;
        crate::bounds::amount("min_points", self.min_points)?;
        Ok(())
    }
}

/// An accepted redemption: `points` off the balance, `discount_minor` off the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemPlan {
    pub points: i64,
    pub discount_minor: i64,
}

/// Checks a request to spend `requested_points` on an order of
/// `order_amount` minor units by a member with `balance` points, when
/// earlier redemptions still take `spent_minor` off the same order.
///
/// Limits round in the member's disfavour only where the program's promise
/// requires it: the maximum share is of the order, over all its
/// redemptions, so this one may take at most `⌊(order × max_bp / 10000 −
/// spent) / value⌋` points (the discounts together never exceed the share);
/// the minimum, per redemption, is the larger of `min_points` and
/// `⌈order × min_bp / 10000 / value⌉` (the discount reaches the share).
pub fn plan(
    policy: &RedeemPolicy,
    balance: i64,
    order_amount: i64,
    spent_minor: i64,
    requested_points: i64,
) -> Result<RedeemPlan, LedgerError> {
    policy.validate()?;
    let value = i128::from(policy.point_value_minor);
    let order = i128::from(non_negative("order_amount", order_amount)?);
    let spent = i128::from(non_negative("spent_minor", spent_minor)?);
    let requested = positive("requested_points", requested_points)?;
    if requested > balance {
        return Err(LedgerError::InsufficientBalance {
            available: balance.max(0),
            requested,
        });
    }
    let share_den = i128::from(WHOLE) * value;
    let room = (order * i128::from(policy.max_order_share_bp) - spent * i128::from(WHOLE)).max(0);
    let max_points = room / share_den;
    // `max_points <= order <= i64::MAX`, so both narrowings hold.
    let max_points = i64::try_from(max_points).map_err(|_| LedgerError::Overflow)?;
    if requested > max_points {
        return Err(LedgerError::AboveMaxShare {
            max_points,
            requested,
        });
    }
    let min_share = (order * i128::from(policy.min_order_share_bp) + share_den - 1) / share_den;
    let min_points = i64::try_from(min_share)
        .map_err(|_| LedgerError::Overflow)?
        .max(policy.min_points);
    if requested < min_points {
        return Err(LedgerError::BelowMinimum {
            min_points,
            requested,
        });
    }
    let discount = i128::from(requested) * value;
    Ok(RedeemPlan {
        points: requested,
        discount_minor: i64::try_from(discount).map_err(|_| LedgerError::Overflow)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: RedeemPolicy = RedeemPolicy {
        min_order_share_bp: 0,
        max_order_share_bp: 5_000,
        point_value_minor: 100,
        min_points: 10,
    };

    #[test]
    fn accepts_within_limits() {
        assert_eq!(
            plan(&POLICY, 1_000, 100_000, 0, 500),
            Ok(RedeemPlan {
                points: 500,
                discount_minor: 50_000
            })
        );
    }

    #[test]
    fn each_limit_has_its_error() {
        assert_eq!(
            plan(&POLICY, 100, 100_000, 0, 200),
            Err(LedgerError::InsufficientBalance {
                available: 100,
                requested: 200
            })
        );
        assert_eq!(
            plan(&POLICY, 1_000, 100_000, 0, 501),
            Err(LedgerError::AboveMaxShare {
                max_points: 500,
                requested: 501
            })
        );
        assert_eq!(
            plan(&POLICY, 1_000, 100_000, 0, 9),
            Err(LedgerError::BelowMinimum {
                min_points: 10,
                requested: 9
            })
        );
        let share = RedeemPolicy {
            min_order_share_bp: 1_000,
            ..POLICY
        };
        // 10% of 100 050 minor is 10 005, i.e. 100.05 points: round up to 101.
        assert_eq!(
            plan(&share, 1_000, 100_050, 0, 100),
            Err(LedgerError::BelowMinimum {
                min_points: 101,
                requested: 100
            })
        );
        assert!(plan(&POLICY, 1_000, 100_000, 0, 0)
            .unwrap_err()
            .to_string()
            .starts_with("requested_points"));
        let free = RedeemPolicy {
            point_value_minor: 0,
            ..POLICY
        };
        assert!(plan(&free, 1_000, 100_000, 0, 10)
            .unwrap_err()
            .to_string()
            .starts_with("point_value_minor"));
    }

    /// #16 item 9: the maximum share is of the order, over all its
    /// redemptions: 20 % then 20 % under a 30 % cap is refused.
    #[test]
    fn the_share_cap_counts_earlier_redemptions_of_the_order() {
        let cap30 = RedeemPolicy {
            max_order_share_bp: 3_000,
            min_points: 1,
            ..POLICY
        };
        // Order of 1000.00: 200 points (200.00) spent already.
        assert_eq!(
            plan(&cap30, 1_000, 100_000, 20_000, 200),
            Err(LedgerError::AboveMaxShare {
                max_points: 100,
                requested: 200
            })
        );
        assert!(plan(&cap30, 1_000, 100_000, 20_000, 100).is_ok());
        assert_eq!(
            plan(&cap30, 1_000, 100_000, 30_000, 1),
            Err(LedgerError::AboveMaxShare {
                max_points: 0,
                requested: 1
            })
        );
        assert!(plan(&cap30, 1_000, 100_000, -1, 1)
            .unwrap_err()
            .to_string()
            .starts_with("spent_minor"));
    }

    #[test]
    fn validate_names_the_bad_setting() {
        let field = |p: RedeemPolicy| p.validate().unwrap_err().field;
        assert_eq!(
            field(RedeemPolicy {
                max_order_share_bp: 10_001,
                ..POLICY
            }),
            "max_order_share_bp"
        );
        assert_eq!(
            field(RedeemPolicy {
                min_order_share_bp: 6_000,
                ..POLICY
            }),
            "min_order_share_bp"
        );
        assert_eq!(
            field(RedeemPolicy {
                min_points: -1,
                ..POLICY
            }),
            "min_points"
        );
        assert_eq!(POLICY.validate(), Ok(()));
    }

    proptest! {
        #[test]
        fn accepted_plans_respect_every_limit(
            balance in 0i64..1_000_000, order in 0i64..10_000_000, requested in 1i64..1_000_000,
            min_bp in 0u32..=10_000, max_bp in 0u32..=10_000, value in 1i64..1_000,
        ) {
            let p = RedeemPolicy { min_order_share_bp: min_bp.min(max_bp), max_order_share_bp: max_bp, point_value_minor: value, min_points: 1 };
            if let Ok(plan) = plan(&p, balance, order, 0, requested) {
                prop_assert!(plan.points <= balance);
                prop_assert!(plan.discount_minor <= order);
                prop_assert!(i128::from(plan.discount_minor) * 10_000 <= i128::from(order) * i128::from(max_bp));
                prop_assert!(i128::from(plan.discount_minor) * 10_000 >= i128::from(order) * i128::from(min_bp.min(max_bp)));
                prop_assert_eq!(plan.discount_minor, plan.points * value);
            }
        }

        #[test]
        fn redemptions_of_one_order_never_exceed_its_share_together(
            order in 0i64..10_000_000, max_bp in 0u32..=10_000, value in 1i64..1_000,
            asks in proptest::collection::vec(1i64..100_000, 1..8),
        ) {
            let p = RedeemPolicy { min_order_share_bp: 0, max_order_share_bp: max_bp, point_value_minor: value, min_points: 1 };
            let mut spent = 0i64;
            for ask in asks {
                if let Ok(plan) = plan(&p, i64::MAX, order, spent, ask) {
                    spent += plan.discount_minor;
                }
                prop_assert!(i128::from(spent) * 10_000 <= i128::from(order) * i128::from(max_bp));
            }
        }
    }
}
