//! Lots: points remembered by when they were earned and when they expire,
//! so expiry takes exactly the points that ran out of time rather than a
//! share of the whole balance.

use super::{positive, LedgerError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub id: u64,
    /// Points of this lot not yet spent, expired or taken back.
    pub remaining: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub earned_at: OffsetDateTime,
    /// `None`: never expires.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Takes `amount` from `lots`, soonest-expiring first (never-expiring last,
/// ties by `earned_at`, then `id`), so the member loses as little as
/// possible to expiry. Returns `(index, taken)` per lot touched. Leaves
/// `lots` untouched on error.
///
/// It does not look at the clock: expire due lots (see [`expired`]) before
/// consuming, or points past their date are spent.
pub fn consume(lots: &mut [Lot], amount: i64) -> Result<Vec<(usize, i64)>, LedgerError> {
    let requested = positive("amount", amount)?;
    let available = lots
        .iter()
        .map(|l| l.remaining.max(0))
        .try_fold(0i64, i64::checked_add)
        .ok_or(LedgerError::Overflow)?;
    if requested > available {
        return Err(LedgerError::InsufficientBalance {
            available,
            requested,
        });
    }
    let mut order: Vec<usize> = (0..lots.len()).filter(|&i| lots[i].remaining > 0).collect();
    order.sort_by_key(|&i| {
        (
            lots[i].expires_at.is_none(),
            lots[i].expires_at,
            lots[i].earned_at,
            lots[i].id,
        )
    });
    let mut left = requested;
    let mut taken = Vec::new();
    for i in order {
        if left == 0 {
            break;
        }
        let take = left.min(lots[i].remaining);
        lots[i].remaining -= take;
        left -= take;
        taken.push((i, take));
    }
    Ok(taken)
}

/// Lots due at `now` (`expires_at <= now`) that still hold points, as
/// `(index, remaining)`; the caller books the expiry and zeroes them.
pub fn expired(lots: &[Lot], now: OffsetDateTime) -> Vec<(usize, i64)> {
    lots.iter()
        .enumerate()
        .filter(|(_, l)| l.remaining > 0 && l.expires_at.is_some_and(|at| at <= now))
        .map(|(i, l)| (i, l.remaining))
        .collect()
}

/// What will expire when, after `now`, earliest first: the member's
/// "points expiring soon" view.
pub fn expiring_schedule(lots: &[Lot], now: OffsetDateTime) -> Vec<(OffsetDateTime, i64)> {
    let mut by_date: BTreeMap<OffsetDateTime, i64> = BTreeMap::new();
    for l in lots.iter().filter(|l| l.remaining > 0) {
        if let Some(at) = l.expires_at.filter(|&at| at > now) {
            *by_date.entry(at).or_default() += l.remaining;
        }
    }
    by_date.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn lots() -> Vec<Lot> {
        let lot = |id, remaining, earned_at, expires_at| Lot {
            id,
            remaining,
            earned_at,
            expires_at,
        };
        vec![
            lot(1, 100, datetime!(2026-01-01 0:00 UTC), None),
            lot(
                2,
                50,
                datetime!(2026-02-01 0:00 UTC),
                Some(datetime!(2026-08-01 0:00 UTC)),
            ),
            lot(
                3,
                30,
                datetime!(2026-01-15 0:00 UTC),
                Some(datetime!(2026-08-01 0:00 UTC)),
            ),
            lot(
                4,
                20,
                datetime!(2026-03-01 0:00 UTC),
                Some(datetime!(2026-05-01 0:00 UTC)),
            ),
        ]
    }

    #[test]
    fn consume_takes_soonest_expiring_first_and_never_expiring_last() {
        let mut l = lots();
        assert_eq!(consume(&mut l, 60).unwrap(), [(3, 20), (2, 30), (1, 10)]);
        assert_eq!(consume(&mut l, 130).unwrap(), [(1, 40), (0, 90)]);
        assert_eq!(l.iter().map(|l| l.remaining).sum::<i64>(), 10);
    }

    #[test]
    fn consume_refuses_more_than_available_without_touching_lots() {
        let mut l = lots();
        assert_eq!(
            consume(&mut l, 201),
            Err(LedgerError::InsufficientBalance {
                available: 200,
                requested: 201
            })
        );
        assert_eq!(l, lots());
        assert!(consume(&mut l, 0).is_err());
    }

    #[test]
    fn expiry_and_schedule_split_at_now() {
        let l = lots();
        assert_eq!(expired(&l, datetime!(2026-04-30 0:00 UTC)), []);
        assert_eq!(expired(&l, datetime!(2026-05-01 0:00 UTC)), [(3, 20)]);
        assert_eq!(
            expiring_schedule(&l, datetime!(2026-01-01 0:00 UTC)),
            [
                (datetime!(2026-05-01 0:00 UTC), 20),
                (datetime!(2026-08-01 0:00 UTC), 80)
            ]
        );
        assert_eq!(
            expiring_schedule(&l, datetime!(2026-05-01 0:00 UTC)),
            [(datetime!(2026-08-01 0:00 UTC), 80)]
        );
    }
}
