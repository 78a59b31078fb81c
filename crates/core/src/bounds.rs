//! The largest numbers Sarafan accepts from clients. Every amount, count of
//! points and number of days is checked against these at the edge, so that
//! sums of many postings, dates computed from settings and products with
//! rates stay far from overflowing (`i64` holds 9.2 × 10^18).

use crate::FieldError;

/// The most any single amount may be, in minor units or points: 10^13
/// (100 billion roubles in kopecks; 20 million dollars' worth of Iranian
/// rials). An account overflows only after 900,000 postings of this size.
pub const MAX_AMOUNT: i64 = 10_000_000_000_000;

/// The most days any period setting may span (ten years): a date that far
/// from now is always representable.
pub const MAX_DAYS: u32 = 3650;

/// The most units of a product one order line may hold.
pub const MAX_QUANTITY: u32 = 1_000_000;

/// The most a multiplier may be, in basis points (×100).
pub const MAX_MULTIPLIER_BP: u32 = 1_000_000;

/// Checks an amount that must be above 0 and at most [`MAX_AMOUNT`].
pub fn positive_amount(field: &str, value: i64) -> Result<i64, FieldError> {
    if (1..=MAX_AMOUNT).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between 1 and {MAX_AMOUNT} (got {value})"),
        ))
    }
}

/// Checks an amount that may be 0 but at most [`MAX_AMOUNT`].
pub fn amount(field: &str, value: i64) -> Result<i64, FieldError> {
    if (0..=MAX_AMOUNT).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between 0 and {MAX_AMOUNT} (got {value})"),
        ))
    }
}

/// Checks an optional number of days: absent, or 1 to [`MAX_DAYS`]; `absent`
/// says what leaving it out means.
pub fn days(field: &str, value: Option<u32>, absent: &str) -> Result<(), FieldError> {
    match value {
        Some(d) if !(1..=MAX_DAYS).contains(&d) => Err(FieldError::new(
            field,
            format!("must be between 1 and {MAX_DAYS} (got {d}), or absent {absent}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        assert!(positive_amount("a", 1).is_ok());
        assert!(positive_amount("a", MAX_AMOUNT).is_ok());
        for bad in [0, -1, MAX_AMOUNT + 1, i64::MAX, i64::MIN] {
            assert_eq!(positive_amount("a", bad).unwrap_err().field, "a");
        }
        assert!(amount("a", 0).is_ok());
        assert!(amount("a", -1).is_err());
        assert!(days("d", None, "for never").is_ok());
        assert!(days("d", Some(MAX_DAYS), "for never").is_ok());
        assert!(days("d", Some(0), "for never").is_err());
        assert!(days("d", Some(u32::MAX), "for never").is_err());
    }
}
