//! An in-memory reference ledger: the semantics the store must reproduce,
//! small enough to read and to property-test.
//!
//! It books points only. Every change is a [`Transfer`]; a member's
//! spendable points live in [`Lot`]s so expiry is per lot. Invariants (held
//! by every operation, checked by the property tests below):
//! - every transfer balances, and every balance is the sum of its postings;
//! - a member's lots hold `max(0, balance − held)`: held points have left
//!   the lots but not the balance, and a shortfall left by a refund is a
//!   debt that later earnings pay before they reach the lots;
//! - under [`ShortfallPolicy::ClawbackFromFuture`] no member balance is
//!   below zero;
//! - no member holds spendable points and a debt at once: a debt takes
//!   every lot first, the lots an operation makes itself included (a
//!   refund's given-back points pay its own take-back, #16 item 12);
//! - an operation either succeeds whole or changes nothing;
//! - replaying a key with the same operation returns the first outcome and
//!   books nothing; with a different operation it is refused.

use super::account::{AccountKey, Asset};
use super::lots::{self, Lot};
use super::refund::{reversal_for_refund, settle_debt, split_reversal, ShortfallPolicy};
use super::transfer::{Reversal, Transfer};
use super::{non_negative, positive, LedgerError};
use crate::ids::MemberId;
use std::collections::BTreeMap;
use time::OffsetDateTime;

const ASSET: Asset = Asset::Points;

/// One request to the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `points` (already scored by the earn rules) for `order_id`, whose
    /// `order_amount` later refunds are measured against.
    Earn {
        member: MemberId,
        order_id: String,
        order_amount: i64,
        points: i64,
        at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    },
    /// Spends `points`; with `order_id`, on that order, so that refunding
    /// it gives back the refunded share of them.
    Redeem {
        member: MemberId,
        points: i64,
        order_id: Option<String>,
    },
    /// Gives back the share of the points spent on the order that
    /// `refund_amount` is of it (a new lot earned `at`, expiring at
    /// `expires_at`), then takes back the same share of the points it
    /// earned, from every lot, the given-back one included.
    Refund {
        member: MemberId,
        order_id: String,
        refund_amount: i64,
        at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    },
    /// Expires every lot due at `now`.
    Expire {
        now: OffsetDateTime,
    },
    /// Reserves points for a redemption that [`Op::Post`] books or [`Op::Void`] releases.
    Hold {
        member: MemberId,
        points: i64,
    },
    Post {
        hold: u64,
    },
    Void {
        hold: u64,
    },
}

/// What an operation did; a replay returns it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Indexes into [`Book::transfers`] of the transfers it booked.
    pub transfers: Vec<usize>,
    /// Points it earned, redeemed, held, released, reversed or expired:
    /// for a refund, what its posting took (the rest is `owed`).
    pub points: i64,
    /// For a refund under [`ShortfallPolicy::ClawbackFromFuture`]: the
    /// points it could not take now, a debt the next earnings pay.
    pub owed: i64,
    /// The id of the hold it created.
    pub hold: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hold {
    Pending(Pending),
    Posted,
    Voided,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    member: MemberId,
    points: i64,
    /// `(lot id, points)` taken, so a void restores the same lots.
    taken: Vec<(u64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Order {
    earned: i64,
    amount: i64,
    refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Wallet {
    lots: Vec<Lot>,
    held: i64,
    /// Reversed points the lots could not cover; paid from future earnings.
    debt: i64,
}

impl Wallet {
    fn spendable(&self) -> i64 {
        self.lots.iter().map(|l| l.remaining).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    policy: ShortfallPolicy,
    transfers: Vec<Transfer>,
    balances: BTreeMap<AccountKey, i64>,
    wallets: BTreeMap<MemberId, Wallet>,
    orders: BTreeMap<(MemberId, String), Order>,
    /// Points spent on each order, one entry per redemption.
    redemptions: BTreeMap<(MemberId, String), Vec<i64>>,
    holds: Vec<Hold>,
    next_lot: u64,
    replies: BTreeMap<String, (Op, Outcome)>,
}

impl Book {
    pub fn new(policy: ShortfallPolicy) -> Self {
        Self {
            policy,
            transfers: Vec::new(),
            balances: BTreeMap::new(),
            wallets: BTreeMap::new(),
            orders: BTreeMap::new(),
            redemptions: BTreeMap::new(),
            holds: Vec::new(),
            next_lot: 0,
            replies: BTreeMap::new(),
        }
    }

    /// Runs `op` once per client `key`: the same key with the same op returns
    /// the first outcome and books nothing; with another op it is refused.
    /// A failed op changes nothing and does not use up its key.
    pub fn apply(&mut self, key: &str, op: Op) -> Result<Outcome, LedgerError> {
        if let Some((seen, outcome)) = self.replies.get(key) {
            return if *seen == op {
                Ok(outcome.clone())
            } else {
                Err(LedgerError::KeyReused {
                    key: key.to_owned(),
                })
            };
        }
        let outcome = match &op {
            Op::Earn {
                member,
                order_id,
                order_amount,
                points,
                at,
                expires_at,
            } => self.earn(*member, order_id, *order_amount, *points, *at, *expires_at),
            Op::Redeem {
                member,
                points,
                order_id,
            } => self.redeem(*member, *points, order_id.as_deref()),
            Op::Refund {
                member,
                order_id,
                refund_amount,
                at,
                expires_at,
            } => self.refund(*member, order_id, *refund_amount, (*at, *expires_at)),
            Op::Expire { now } => self.expire(*now),
            Op::Hold { member, points } => self.hold(*member, *points),
            Op::Post { hold } => self.post(*hold),
            Op::Void { hold } => self.void(*hold),
        }?;
        self.replies.insert(key.to_owned(), (op, outcome.clone()));
        Ok(outcome)
    }

    pub fn transfers(&self) -> &[Transfer] {
        &self.transfers
    }

    pub fn balance(&self, account: &AccountKey) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// The member's lots, spent ones included.
    pub fn lots(&self, member: MemberId) -> &[Lot] {
        self.wallets.get(&member).map_or(&[], |w| &w.lots)
    }

    /// Points the member can redeem or hold now.
    pub fn spendable(&self, member: MemberId) -> i64 {
        self.wallets.get(&member).map_or(0, Wallet::spendable)
    }

    pub fn held(&self, member: MemberId) -> i64 {
        self.wallets.get(&member).map_or(0, |w| w.held)
    }

    pub fn debt(&self, member: MemberId) -> i64 {
        self.wallets.get(&member).map_or(0, |w| w.debt)
    }

    fn wallet(&self, member: MemberId) -> Wallet {
        self.wallets.get(&member).cloned().unwrap_or_default()
    }

    fn earn(
        &mut self,
        member: MemberId,
        order_id: &str,
        order_amount: i64,
        points: i64,
        at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Outcome, LedgerError> {
        positive("order_amount", order_amount)?;
        non_negative("points", points)?;
        let order_key = (member, order_id.to_owned());
        if self.orders.contains_key(&order_key) {
            return Err(LedgerError::DuplicateOrder {
                order_id: order_id.to_owned(),
            });
        }
        let mut wallet = self.wallet(member);
        let mut booked = Vec::new();
        if points > 0 {
            booked.push(Transfer::earn(
                member,
                ASSET,
                points,
                &format!("order {order_id}"),
            )?);
            let to_member = self.pay_debt(member, &mut wallet, points, &mut booked)?;
            if to_member > 0 {
                wallet.lots.push(Lot {
                    id: self.next_lot,
                    remaining: to_member,
                    earned_at: at,
                    expires_at,
                });
            }
        }
        let transfers = self.commit(booked)?;
        self.next_lot += 1;
        self.wallets.insert(member, wallet);
        self.orders.insert(
            order_key,
            Order {
                earned: points,
                amount: order_amount,
                refunded: 0,
            },
        );
        Ok(Outcome {
            transfers,
            points,
            owed: 0,
            hold: None,
        })
    }

    /// Pays `wallet`'s debt from `incoming` points first; returns what is left
    /// for the member's lots. Under claw-back the debt was never booked, so
    /// paying it books a refund reversal now.
    fn pay_debt(
        &self,
        member: MemberId,
        wallet: &mut Wallet,
        incoming: i64,
        booked: &mut Vec<Transfer>,
    ) -> Result<i64, LedgerError> {
        let (to_debt, to_member) = settle_debt(wallet.debt, incoming);
        if to_debt > 0 && self.policy == ShortfallPolicy::ClawbackFromFuture {
            let reason = "claw-back of points reversed by an earlier refund";
            booked.push(Transfer::reversal(
                Reversal::Refund,
                member,
                ASSET,
                to_debt,
                reason,
            )?);
        }
        wallet.debt -= to_debt;
        Ok(to_member)
    }

    fn redeem(
        &mut self,
        member: MemberId,
        points: i64,
        order_id: Option<&str>,
    ) -> Result<Outcome, LedgerError> {
        let mut wallet = self.wallet(member);
        lots::consume(&mut wallet.lots, points)?;
        let transfers =
            self.commit(vec![Transfer::redeem(member, ASSET, points, "redemption")?])?;
        self.wallets.insert(member, wallet);
        if let Some(order_id) = order_id {
            self.redemptions
                .entry((member, order_id.to_owned()))
                .or_default()
                .push(points);
        }
        Ok(Outcome {
            transfers,
            points,
            owed: 0,
            hold: None,
        })
    }

    fn refund(
        &mut self,
        member: MemberId,
        order_id: &str,
        refund_amount: i64,
        (at, expires_at): (OffsetDateTime, Option<OffsetDateTime>),
    ) -> Result<Outcome, LedgerError> {
        let order_key = (member, order_id.to_owned());
        let order = self
            .orders
            .get(&order_key)
            .ok_or_else(|| LedgerError::UnknownOrder {
                order_id: order_id.to_owned(),
            })?;
        let reversed =
            reversal_for_refund(order.earned, order.amount, order.refunded, refund_amount)?;
        let mut give_back = Vec::new();
        for &spent in self.redemptions.get(&order_key).into_iter().flatten() {
            let back = reversal_for_refund(spent, order.amount, order.refunded, refund_amount)?;
            if back > 0 {
                give_back.push(back);
            }
        }
        let mut wallet = self.wallet(member);
        let mut booked = Vec::new();
        // The points spent on the order come back first, as new lots…
        let mut next_lot = self.next_lot;
        for back in give_back {
            booked.push(Transfer::reversal(
                Reversal::Redeem,
                member,
                ASSET,
                back,
                &format!("given back by the refund of order {order_id}"),
            )?);
            let to_member = self.pay_debt(member, &mut wallet, back, &mut booked)?;
            if to_member > 0 {
                wallet.lots.push(Lot {
                    id: next_lot,
                    remaining: to_member,
                    earned_at: at,
                    expires_at,
                });
                next_lot += 1;
            }
        }
        // …which the take-back takes like any other lot: a debt is only what
        // no lot holds.
        let spendable = wallet.spendable();
        let (taken_now, _) = split_reversal(self.policy, spendable, reversed);
        let from_lots = reversed.min(spendable);
        if from_lots > 0 {
            lots::consume(&mut wallet.lots, from_lots)?;
        }
        wallet.debt += reversed - from_lots;
        if taken_now > 0 {
            booked.push(Transfer::reversal(
                Reversal::Refund,
                member,
                ASSET,
                taken_now,
                &format!("refund of order {order_id}"),
            )?);
        }
        let transfers = self.commit(booked)?;
        self.next_lot = next_lot;
        self.wallets.insert(member, wallet);
        if let Some(order) = self.orders.get_mut(&order_key) {
            order.refunded += refund_amount;
        }
        Ok(Outcome {
            transfers,
            points: taken_now,
            owed: reversed - taken_now,
            hold: None,
        })
    }

    fn expire(&mut self, now: OffsetDateTime) -> Result<Outcome, LedgerError> {
        let mut booked = Vec::new();
        let mut due = Vec::new();
        for (&member, wallet) in &self.wallets {
            for (i, points) in lots::expired(&wallet.lots, now) {
                let lot = &wallet.lots[i];
                let expired_on = lot.expires_at.unwrap_or(now).date();
                let reason = format!(
                    "points earned {} expired {expired_on}",
                    lot.earned_at.date()
                );
                booked.push(Transfer::expire(member, ASSET, points, &reason)?);
                due.push((member, i, points));
            }
        }
        let points = due.iter().map(|&(_, _, points)| points).sum();
        let transfers = self.commit(booked)?;
        for (member, i, _) in due {
            if let Some(w) = self.wallets.get_mut(&member) {
                w.lots[i].remaining = 0;
            }
        }
        Ok(Outcome {
            transfers,
            points,
            owed: 0,
            hold: None,
        })
    }

    fn hold(&mut self, member: MemberId, points: i64) -> Result<Outcome, LedgerError> {
        let mut wallet = self.wallet(member);
        let taken = lots::consume(&mut wallet.lots, points)?;
        let taken = taken
            .into_iter()
            .map(|(i, n)| (wallet.lots[i].id, n))
            .collect();
        wallet.held += points;
        self.wallets.insert(member, wallet);
        let id = self.holds.len() as u64;
        self.holds.push(Hold::Pending(Pending {
            member,
            points,
            taken,
        }));
        Ok(Outcome {
            transfers: Vec::new(),
            points,
            owed: 0,
            hold: Some(id),
        })
    }

    fn post(&mut self, id: u64) -> Result<Outcome, LedgerError> {
        let Pending { member, points, .. } = self.pending(id)?;
        let transfers = self.commit(vec![Transfer::redeem(
            member,
            ASSET,
            points,
            &format!("hold {id} posted"),
        )?])?;
        self.settle(id, member, points, Hold::Posted);
        Ok(Outcome {
            transfers,
            points,
            owed: 0,
            hold: Some(id),
        })
    }

    fn void(&mut self, id: u64) -> Result<Outcome, LedgerError> {
        let Pending {
            member,
            points,
            taken,
        } = self.pending(id)?;
        let mut wallet = self.wallet(member);
        let mut booked = Vec::new();
        let mut to_member = self.pay_debt(member, &mut wallet, points, &mut booked)?;
        for (lot_id, n) in taken {
            if let Some(lot) = wallet.lots.iter_mut().find(|l| l.id == lot_id) {
                let back = n.min(to_member);
                lot.remaining += back;
                to_member -= back;
            }
        }
        let transfers = self.commit(booked)?;
        self.wallets.insert(member, wallet);
        self.settle(id, member, points, Hold::Voided);
        Ok(Outcome {
            transfers,
            points,
            owed: 0,
            hold: Some(id),
        })
    }

    fn pending(&self, id: u64) -> Result<Pending, LedgerError> {
        let hold = usize::try_from(id).ok().and_then(|i| self.holds.get(i));
        match hold {
            None => Err(LedgerError::UnknownHold { hold: id }),
            Some(Hold::Pending(p)) => Ok(p.clone()),
            Some(Hold::Posted) => Err(LedgerError::HoldSettled {
                hold: id,
                state: "posted",
            }),
            Some(Hold::Voided) => Err(LedgerError::HoldSettled {
                hold: id,
                state: "voided",
            }),
        }
    }

    fn settle(&mut self, id: u64, member: MemberId, points: i64, state: Hold) {
        if let Some(w) = self.wallets.get_mut(&member) {
            w.held -= points;
        }
        self.holds[id as usize] = state;
    }

    /// Books `transfers` whole or not at all: each must validate and no
    /// balance may overflow. Returns their indexes.
    fn commit(&mut self, transfers: Vec<Transfer>) -> Result<Vec<usize>, LedgerError> {
        let mut next = BTreeMap::new();
        for t in &transfers {
            t.validate()?;
            for p in &t.postings {
                let balance = next
                    .get(&p.account)
                    .copied()
                    .unwrap_or_else(|| self.balance(&p.account));
                next.insert(
                    p.account,
                    balance.checked_add(p.amount).ok_or(LedgerError::Overflow)?,
                );
            }
        }
        self.balances.extend(next);
        let first = self.transfers.len();
        self.transfers.extend(transfers);
        Ok((first..self.transfers.len()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::account::{Owner, ProgramAccount};
    use proptest::prelude::*;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    fn member(n: u8) -> MemberId {
        MemberId::from_parts(1, [n; 10])
    }

    fn earn(
        member: MemberId,
        order: &str,
        amount: i64,
        points: i64,
        expires_days: Option<i64>,
    ) -> Op {
        Op::Earn {
            member,
            order_id: order.into(),
            order_amount: amount,
            points,
            at: T0,
            expires_at: expires_days.map(|d| T0 + Duration::days(d)),
        }
    }

    fn points(book: &Book, member: MemberId) -> i64 {
        book.balance(&AccountKey::member(member, ASSET))
    }

    fn program(book: &Book, account: ProgramAccount) -> i64 {
        book.balance(&AccountKey::program(account, ASSET))
    }

    #[test]
    fn partial_refunds_then_full_refund_reverse_exactly_earned() {
        let m = member(1);
        let mut book = Book::new(ShortfallPolicy::AllowNegative);
        book.apply("e", earn(m, "o1", 300, 100, None)).unwrap();
        let parts: Vec<i64> = ["r1", "r2", "r3"]
            .iter()
            .map(|k| {
                book.apply(
                    k,
                    Op::Refund {
                        member: m,
                        order_id: "o1".into(),
                        refund_amount: 100,
                        at: T0,
                        expires_at: None,
                    },
                )
                .unwrap()
                .points
            })
            .collect();
        assert_eq!(parts, [33, 33, 34]);
        assert_eq!(
            (points(&book, m), program(&book, ProgramAccount::Reversed)),
            (0, 100)
        );
        let err = book
            .apply(
                "r4",
                Op::Refund {
                    member: m,
                    order_id: "o1".into(),
                    refund_amount: 1,
                    at: T0,
                    expires_at: None,
                },
            )
            .unwrap_err();
        assert_eq!(
            err,
            LedgerError::RefundExceedsOrder {
                remaining: 0,
                requested: 1
            }
        );
    }

    #[test]
    fn refund_after_spending_goes_negative_or_claws_back_per_policy() {
        let m = member(1);
        for (policy, balance_after_refund, balance_after_earn) in [
            (ShortfallPolicy::AllowNegative, -80, 20),
            (ShortfallPolicy::ClawbackFromFuture, 0, 20),
        ] {
            let mut book = Book::new(policy);
            book.apply("e1", earn(m, "o1", 1_000, 100, None)).unwrap();
            book.apply(
                "spend",
                Op::Redeem {
                    member: m,
                    points: 80,
                    order_id: None,
                },
            )
            .unwrap();
            book.apply(
                "refund",
                Op::Refund {
                    member: m,
                    order_id: "o1".into(),
                    refund_amount: 1_000,
                    at: T0,
                    expires_at: None,
                },
            )
            .unwrap();
            assert_eq!(points(&book, m), balance_after_refund, "{policy:?}");
            assert_eq!(book.debt(m), 80);
            book.apply("e2", earn(m, "o2", 1_000, 100, None)).unwrap();
            assert_eq!(
                (points(&book, m), book.spendable(m), book.debt(m)),
                (balance_after_earn, 20, 0),
                "{policy:?}"
            );
            assert_eq!(program(&book, ProgramAccount::Reversed), 100);
        }
    }

    /// #16 item 12: a full refund of partly spent points answers what it
    /// posted (900) and what is owed (100), not the 1000 it reversed.
    #[test]
    fn a_refund_answers_what_it_posted_and_what_is_owed() {
        let m = member(1);
        let mut book = Book::new(ShortfallPolicy::ClawbackFromFuture);
        book.apply("e", earn(m, "o1", 1_000, 1_000, None)).unwrap();
        book.apply(
            "spend",
            Op::Redeem {
                member: m,
                points: 100,
                order_id: None,
            },
        )
        .unwrap();
        let refund = Op::Refund {
            member: m,
            order_id: "o1".into(),
            refund_amount: 1_000,
            at: T0,
            expires_at: None,
        };
        let out = book.apply("r", refund).unwrap();
        assert_eq!((out.points, out.owed), (900, 100));
        let posted: i64 = out
            .transfers
            .iter()
            .map(|&t| book.transfers()[t].postings[0].amount)
            .sum();
        assert_eq!(posted, -900);
        assert_eq!((points(&book, m), book.debt(m)), (0, 100));
    }

    /// #16 item 12: an order paid partly with the points it earned. Its
    /// refund gives back the 400 spent on it and takes back the 1000 it
    /// earned: the 400 given back pay the take-back first, so the member
    /// owes 600 (spent elsewhere) and holds nothing, rather than holding
    /// 400 and owing 1000.
    #[test]
    fn a_refund_takes_back_what_it_gave_back_first() {
        let m = member(1);
        for (policy, taken, owed, balance) in [
            (ShortfallPolicy::ClawbackFromFuture, 400, 600, 0),
            (ShortfallPolicy::AllowNegative, 1_000, 0, -600),
        ] {
            let mut book = Book::new(policy);
            book.apply("e", earn(m, "o1", 1_000, 1_000, Some(30)))
                .unwrap();
            for (key, points, order) in [("s1", 400, "o1"), ("s2", 600, "o2")] {
                let spend = Op::Redeem {
                    member: m,
                    points,
                    order_id: Some(order.into()),
                };
                book.apply(key, spend).unwrap();
            }
            let refund = Op::Refund {
                member: m,
                order_id: "o1".into(),
                refund_amount: 1_000,
                at: T0,
                expires_at: Some(T0 + Duration::days(30)),
            };
            let out = book.apply("r", refund).unwrap();
            assert_eq!((out.points, out.owed), (taken, owed), "{policy:?}");
            assert_eq!(
                (points(&book, m), book.spendable(m), book.debt(m)),
                (balance, 0, 600),
                "{policy:?}"
            );
            assert_eq!(program(&book, ProgramAccount::Reversed), 1_000 - owed);
        }
    }

    #[test]
    fn holds_settle_exactly_once() {
        let m = member(1);
        let mut book = Book::new(ShortfallPolicy::ClawbackFromFuture);
        book.apply("e", earn(m, "o1", 1_000, 100, Some(30)))
            .unwrap();
        let a = book
            .apply(
                "h1",
                Op::Hold {
                    member: m,
                    points: 60,
                },
            )
            .unwrap()
            .hold
            .unwrap();
        assert_eq!(
            (points(&book, m), book.spendable(m), book.held(m)),
            (100, 40, 60)
        );
        assert_eq!(
            book.apply(
                "h2",
                Op::Hold {
                    member: m,
                    points: 41
                }
            )
            .unwrap_err(),
            LedgerError::InsufficientBalance {
                available: 40,
                requested: 41
            }
        );
        book.apply("p", Op::Post { hold: a }).unwrap();
        assert_eq!(
            book.apply("p2", Op::Post { hold: a }).unwrap_err(),
            LedgerError::HoldSettled {
                hold: a,
                state: "posted"
            }
        );
        assert_eq!(
            book.apply("v", Op::Void { hold: a }).unwrap_err(),
            LedgerError::HoldSettled {
                hold: a,
                state: "posted"
            }
        );
        let b = book
            .apply(
                "h3",
                Op::Hold {
                    member: m,
                    points: 40,
                },
            )
            .unwrap()
            .hold
            .unwrap();
        book.apply("v2", Op::Void { hold: b }).unwrap();
        assert_eq!(
            book.apply("p3", Op::Post { hold: b }).unwrap_err(),
            LedgerError::HoldSettled {
                hold: b,
                state: "voided"
            }
        );
        assert_eq!(
            book.apply("p4", Op::Post { hold: 9 }).unwrap_err(),
            LedgerError::UnknownHold { hold: 9 }
        );
        assert_eq!(
            (points(&book, m), book.spendable(m), book.held(m)),
            (40, 40, 0)
        );
        assert_eq!(
            book.lots(m)[0].expires_at,
            Some(T0 + Duration::days(30)),
            "voided points keep their lot"
        );
    }

    #[test]
    fn expiry_takes_only_due_lots() {
        let m = member(1);
        let mut book = Book::new(ShortfallPolicy::ClawbackFromFuture);
        book.apply("e1", earn(m, "o1", 1_000, 100, Some(10)))
            .unwrap();
        book.apply("e2", earn(m, "o2", 1_000, 50, None)).unwrap();
        book.apply(
            "r",
            Op::Redeem {
                member: m,
                points: 30,
                order_id: None,
            },
        )
        .unwrap();
        let out = book
            .apply(
                "x",
                Op::Expire {
                    now: T0 + Duration::days(10),
                },
            )
            .unwrap();
        assert_eq!(out.points, 70);
        assert_eq!(
            (points(&book, m), program(&book, ProgramAccount::Expired)),
            (50, 70)
        );
        assert_eq!(
            book.transfers()[out.transfers[0]].postings[0].reason,
            "points earned 2026-01-01 expired 2026-01-11"
        );
    }

    #[test]
    fn keys_replay_or_refuse() {
        let m = member(1);
        let mut book = Book::new(ShortfallPolicy::ClawbackFromFuture);
        let first = book.apply("k", earn(m, "o1", 1_000, 100, None)).unwrap();
        let before = book.clone();
        assert_eq!(book.apply("k", earn(m, "o1", 1_000, 100, None)), Ok(first));
        assert_eq!(
            book.apply("k", earn(m, "o1", 1_000, 101, None)),
            Err(LedgerError::KeyReused { key: "k".into() })
        );
        assert_eq!(book, before);
        assert_eq!(
            book.apply("k2", earn(m, "o1", 1_000, 100, None)),
            Err(LedgerError::DuplicateOrder {
                order_id: "o1".into()
            })
        );
        // A failed op leaves its key free for a corrected retry.
        assert!(book
            .apply(
                "k3",
                Op::Redeem {
                    member: m,
                    points: 500,
                    order_id: None,
                }
            )
            .is_err());
        assert!(book
            .apply(
                "k3",
                Op::Redeem {
                    member: m,
                    points: 50,
                    order_id: None,
                }
            )
            .is_ok());
    }

    fn op() -> impl Strategy<Value = Op> {
        let m = (0u8..2).prop_map(member);
        let order = (0u8..4).prop_map(|o| format!("o{o}"));
        let day = (0i64..60).prop_map(|d| T0 + Duration::days(d));
        prop_oneof![
            (
                m.clone(),
                order.clone(),
                1i64..10_000,
                0i64..500,
                day.clone(),
                proptest::option::of(1i64..30)
            )
                .prop_map(|(member, order_id, order_amount, points, at, ttl)| {
                    Op::Earn {
                        member,
                        order_id,
                        order_amount,
                        points,
                        at,
                        expires_at: ttl.map(|d| at + Duration::days(d)),
                    }
                }),
            (m.clone(), 1i64..400, proptest::option::of(order.clone())).prop_map(
                |(member, points, order_id)| Op::Redeem {
                    member,
                    points,
                    order_id
                }
            ),
            (
                m.clone(),
                order,
                1i64..6_000,
                day.clone(),
                proptest::option::of(1i64..30)
            )
                .prop_map(|(member, order_id, refund_amount, at, ttl)| {
                    Op::Refund {
                        member,
                        order_id,
                        refund_amount,
                        at,
                        expires_at: ttl.map(|d| at + Duration::days(d)),
                    }
                }),
            day.prop_map(|now| Op::Expire { now }),
            (m, 1i64..400).prop_map(|(member, points)| Op::Hold { member, points }),
            (0u64..6).prop_map(|hold| Op::Post { hold }),
            (0u64..6).prop_map(|hold| Op::Void { hold }),
        ]
    }

    /// `None` replays an earlier successful step (picked by the index).
    fn steps() -> impl Strategy<Value = Vec<(Option<Op>, usize)>> {
        proptest::collection::vec(
            (proptest::option::weighted(0.8, op()), any::<usize>()),
            1..80,
        )
    }

    fn check_invariants(book: &Book) -> Result<(), TestCaseError> {
        let mut sums: BTreeMap<AccountKey, i64> = BTreeMap::new();
        for t in book.transfers() {
            prop_assert_eq!(t.validate(), Ok(()));
            for p in &t.postings {
                *sums.entry(p.account).or_default() += p.amount;
            }
        }
        for (account, sum) in &sums {
            prop_assert_eq!(book.balance(account), *sum, "{}", account);
        }
        for (&m, w) in &book.wallets {
            let balance = book.balance(&AccountKey::member(m, ASSET));
            prop_assert!(w.lots.iter().all(|l| l.remaining >= 0));
            prop_assert_eq!(w.spendable(), (balance - w.held).max(0));
            prop_assert!(
                w.debt == 0 || w.spendable() == 0,
                "{} holds {} spendable and owes {}",
                m,
                w.spendable(),
                w.debt
            );
            if book.policy == ShortfallPolicy::ClawbackFromFuture {
                prop_assert!(balance >= 0, "{} below zero", balance);
            }
        }
        for account in sums.keys() {
            if let Owner::Member(m) = account.owner {
                prop_assert!(
                    book.wallets.contains_key(&m),
                    "{} has postings but no lots",
                    account
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_operations_keep_the_books(claw_back: bool, steps in steps()) {
            let policy = if claw_back { ShortfallPolicy::ClawbackFromFuture } else { ShortfallPolicy::AllowNegative };
            let mut book = Book::new(policy);
            let mut done: Vec<(String, Op, Outcome)> = Vec::new();
            for (n, (op, pick)) in steps.into_iter().enumerate() {
                let before = book.clone();
                match op {
                    Some(op) => {
                        let key = format!("k{n}");
                        match book.apply(&key, op.clone()) {
                            Ok(outcome) => {
                                if let Op::Refund { member, .. } = &op {
                                    // What a refund answers is what its take-back
                                    // posted (not what it gave back or clawed back).
                                    let posted: i64 = outcome.transfers.iter()
                                        .flat_map(|&t| &book.transfers()[t].postings)
                                        .filter(|p| p.account == AccountKey::member(*member, ASSET))
                                        .filter(|p| p.reason.starts_with("refund of order"))
                                        .map(|p| p.amount)
                                        .sum();
                                    prop_assert_eq!(posted, -outcome.points);
                                    prop_assert!(outcome.owed >= 0);
                                    if book.policy == ShortfallPolicy::AllowNegative {
                                        prop_assert_eq!(outcome.owed, 0);
                                    }
                                }
                                done.push((key, op, outcome))
                            }
                            Err(_) => prop_assert_eq!(&book, &before, "a failed op changed the book"),
                        }
                    }
                    None if !done.is_empty() => {
                        let (key, op, outcome) = &done[pick % done.len()];
                        let replayed = book.apply(key, op.clone());
                        prop_assert_eq!(replayed.as_ref(), Ok(outcome));
                        prop_assert_eq!(&book, &before, "a replay changed the book");
                    }
                    None => {}
                }
                check_invariants(&book)?;
            }
        }
    }
}
