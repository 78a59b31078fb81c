//! Refunds: how many earned points a (partial) refund takes back, and what
//! happens when the member has already spent them.

use super::{non_negative, positive, LedgerError};
use serde::{Deserialize, Serialize};

/// Points to take back for refunding `refund_amount` of an order of
/// `order_amount` that earned `earned`, after `refunded_before` was already
/// refunded.
///
/// Computed cumulatively, `⌊earned × refunded_after / order⌋ −
/// ⌊earned × refunded_before / order⌋`, so rounding never drifts: however the
/// order is refunded in parts, the parts sum to exactly `earned` once all of
/// it is refunded, and to no more than the proportional share before that.
pub fn reversal_for_refund(
    earned: i64,
    order_amount: i64,
    refunded_before: i64,
    refund_amount: i64,
) -> Result<i64, LedgerError> {
    let earned = i128::from(non_negative("earned", earned)?);
    let order = i128::from(positive("order_amount", order_amount)?);
    let before = non_negative("refunded_before", refunded_before)?;
    let requested = positive("refund_amount", refund_amount)?;
    let remaining = order_amount - before;
    if requested > remaining {
        return Err(LedgerError::RefundExceedsOrder {
            remaining: remaining.max(0),
            requested,
        });
    }
    let share = |refunded: i64| earned * i128::from(refunded) / order;
    let reversed = share(before + requested) - share(before);
    // `reversed <= earned <= i64::MAX`, so the conversion cannot fail.
    i64::try_from(reversed).map_err(|_| LedgerError::Overflow)
}

/// What to do when a reversal exceeds what the member can still spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortfallPolicy {
    /// Take it all now; the balance may go below zero.
    AllowNegative,
    /// Take what there is; the rest is a debt paid from future earnings, so
    /// the balance never goes below zero. The default: a member never sees a
    /// negative balance, and a buy-refund loop still pays nothing.
    #[default]
    ClawbackFromFuture,
}

/// Splits a reversal of `amount` for a member who can spend `balance` into
/// `(taken_now, debt)`.
pub fn split_reversal(policy: ShortfallPolicy, balance: i64, amount: i64) -> (i64, i64) {
    let taken_now = match policy {
        ShortfallPolicy::AllowNegative => amount,
        ShortfallPolicy::ClawbackFromFuture => amount.min(balance.max(0)),
    };
    (taken_now, amount - taken_now)
}

/// Splits a new earn of `new_earn` for a member owing `debt` into
/// `(to_debt, to_member)`: the debt is paid first.
pub fn settle_debt(debt: i64, new_earn: i64) -> (i64, i64) {
    let to_debt = debt.clamp(0, new_earn.max(0));
    (to_debt, new_earn - to_debt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partial_refunds_reverse_exactly_what_was_earned() {
        // 100 points on 300: thirds do not divide evenly, the sum still does.
        let parts: Vec<i64> = [(0, 100), (100, 100), (200, 100)]
            .iter()
            .map(|&(before, amount)| reversal_for_refund(100, 300, before, amount).unwrap())
            .collect();
        assert_eq!(parts, [33, 33, 34]);
        assert_eq!(reversal_for_refund(7, 10, 0, 10), Ok(7));
        assert_eq!(reversal_for_refund(0, 10, 0, 5), Ok(0));
    }

    #[test]
    fn refunds_beyond_the_order_or_non_positive_are_refused() {
        assert_eq!(
            reversal_for_refund(100, 300, 250, 100),
            Err(LedgerError::RefundExceedsOrder {
                remaining: 50,
                requested: 100
            })
        );
        for (earned, order, before, amount, field) in [
            (100, 300, 0, 0, "refund_amount"),
            (100, 300, 0, -1, "refund_amount"),
            (100, 0, 0, 1, "order_amount"),
            (-1, 3, 0, 1, "earned"),
            (1, 3, -1, 1, "refunded_before"),
        ] {
            let err = reversal_for_refund(earned, order, before, amount).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn shortfall_policies_split_as_documented() {
        assert_eq!(
            split_reversal(ShortfallPolicy::AllowNegative, 30, 100),
            (100, 0)
        );
        assert_eq!(
            split_reversal(ShortfallPolicy::ClawbackFromFuture, 30, 100),
            (30, 70)
        );
        assert_eq!(
            split_reversal(ShortfallPolicy::ClawbackFromFuture, -5, 100),
            (0, 100)
        );
        assert_eq!(
            split_reversal(ShortfallPolicy::ClawbackFromFuture, 500, 100),
            (100, 0)
        );
        assert_eq!(settle_debt(70, 50), (50, 0));
        assert_eq!(settle_debt(70, 100), (70, 30));
        assert_eq!(settle_debt(0, 100), (0, 100));
        assert_eq!(
            serde_json::to_string(&ShortfallPolicy::ClawbackFromFuture).unwrap(),
            "\"clawback_from_future\""
        );
    }

    proptest! {
        #[test]
        fn any_refund_sequence_reverses_exactly_earned(
            earned in 0i64..1_000_000_000,
            cuts in proptest::collection::vec(1i64..1_000_000, 1..8),
        ) {
            let order: i64 = cuts.iter().sum();
            let mut before = 0;
            let mut total = 0;
            for cut in cuts {
                let r = reversal_for_refund(earned, order, before, cut).unwrap();
                prop_assert!(r >= 0);
                before += cut;
                total += r;
                prop_assert!(i128::from(total) <= i128::from(earned) * i128::from(before) / i128::from(order));
            }
            prop_assert_eq!(total, earned);
        }
    }
}
