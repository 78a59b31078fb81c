//! Transfers: the only way a balance changes. A transfer is a set of
//! postings that sum to zero per asset, so points are never created or lost,
//! only moved between a member and a program account.

use super::account::{AccountKey, Asset, Owner, ProgramAccount};
use super::{positive, LedgerError};
use crate::ids::MemberId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a transfer happened; reports and the member's history group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Earn,
    Redeem,
    /// Redeemed points given back (the redemption's order was cancelled).
    RedeemReversal,
    /// Earned points taken back (the earning order was refunded).
    RefundReversal,
    Expire,
    Adjust,
    Referral,
    /// Points given for something other than a purchase (a referral
    /// reward, goodwill, an opening balance), with the giver's reason.
    Grant,
    /// A grant's posted points taken back (the grant was voided).
    GrantReversal,
}

impl TransferKind {
    /// The stored and displayed name (as serde spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Earn => "earn",
            Self::Redeem => "redeem",
            Self::RedeemReversal => "redeem_reversal",
            Self::RefundReversal => "refund_reversal",
            Self::Expire => "expire",
            Self::Adjust => "adjust",
            Self::Referral => "referral",
            Self::Grant => "grant",
            Self::GrantReversal => "grant_reversal",
        }
    }
}

/// Which reversal [`Transfer::reversal`] books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reversal {
    /// Give redeemed points back: Redeemed → member.
    Redeem,
    /// Take earned points back: member → Reversed.
    Refund,
    /// Take granted points back: member → Reversed.
    Grant,
}

/// One line of a transfer. Positive credits the account's balance, negative
/// debits it; `reason` is what the member or auditor reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: AccountKey,
    pub amount: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub kind: TransferKind,
    pub postings: Vec<Posting>,
}

impl Transfer {
    /// Points or cashback issued to a member for a purchase.
    pub fn earn(
        member: MemberId,
        asset: Asset,
        amount: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        Self::member_side(
            TransferKind::Earn,
            member,
            ProgramAccount::Issued,
            asset,
            amount,
            true,
            reason,
        )
    }

    /// A referral reward: issued like an earn, reported apart.
    pub fn referral(
        member: MemberId,
        asset: Asset,
        amount: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        Self::member_side(
            TransferKind::Referral,
            member,
            ProgramAccount::Issued,
            asset,
            amount,
            true,
            reason,
        )
    }

    /// Points granted for something other than a purchase; issued like an
    /// earn, reported apart.
    pub fn grant(
        member: MemberId,
        asset: Asset,
        amount: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        Self::member_side(
            TransferKind::Grant,
            member,
            ProgramAccount::Issued,
            asset,
            amount,
            true,
            reason,
        )
    }

    /// A member spends `amount`.
    pub fn redeem(
        member: MemberId,
        asset: Asset,
        amount: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        Self::member_side(
            TransferKind::Redeem,
            member,
            ProgramAccount::Redeemed,
            asset,
            amount,
            false,
            reason,
        )
    }

    /// `amount` of a member's balance runs out of time.
    pub fn expire(
        member: MemberId,
        asset: Asset,
        amount: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        Self::member_side(
            TransferKind::Expire,
            member,
            ProgramAccount::Expired,
            asset,
            amount,
            false,
            reason,
        )
    }

    /// Undoes `amount` of an earlier redemption or earn (see [`Reversal`]).
    pub fn reversal(
        of: Reversal,
        member: MemberId,
        asset: Asset,
        amount: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        match of {
            Reversal::Redeem => Self::member_side(
                TransferKind::RedeemReversal,
                member,
                ProgramAccount::Redeemed,
                asset,
                amount,
                true,
                reason,
            ),
            Reversal::Refund => Self::member_side(
                TransferKind::RefundReversal,
                member,
                ProgramAccount::Reversed,
                asset,
                amount,
                false,
                reason,
            ),
            Reversal::Grant => Self::member_side(
                TransferKind::GrantReversal,
                member,
                ProgramAccount::Reversed,
                asset,
                amount,
                false,
                reason,
            ),
        }
    }

    /// A manual correction; `delta` is signed (positive credits the member).
    pub fn adjust(
        member: MemberId,
        asset: Asset,
        delta: i64,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        let amount = delta.checked_abs().ok_or(LedgerError::Overflow)?;
        Self::member_side(
            TransferKind::Adjust,
            member,
            ProgramAccount::Adjustment,
            asset,
            amount,
            delta > 0,
            reason,
        )
    }

    /// Two postings: `amount` to the member (credited or debited), the
    /// opposite to `program`. `amount` must be positive so no constructor
    /// books an empty move, and negating it cannot overflow.
    fn member_side(
        kind: TransferKind,
        member: MemberId,
        program: ProgramAccount,
        asset: Asset,
        amount: i64,
        credit: bool,
        reason: &str,
    ) -> Result<Self, LedgerError> {
        let amount = positive("amount", amount)?;
        let member_delta = if credit { amount } else { -amount };
        let posting = |account, amount| Posting {
            account,
            amount,
            reason: reason.to_owned(),
        };
        Ok(Self {
            kind,
            postings: vec![
                posting(AccountKey::member(member, asset), member_delta),
                posting(AccountKey::program(program, asset), -member_delta),
            ],
        })
    }

    /// The two legs of a transfer shaped as every constructor builds it:
    /// the member, what their account gets (negative: gives), and the
    /// program account that gets the opposite in the same asset. `None` for
    /// any other shape. Storage keeps a transfer as this one row.
    pub fn legs(&self) -> Option<(MemberId, Asset, i64, ProgramAccount)> {
        let [member, program] = self.postings.as_slice() else {
            return None;
        };
        match (member.account.owner, program.account.owner) {
            (Owner::Member(m), Owner::Program(p))
                if member.account.asset == program.account.asset
                    && member.amount != 0
                    && member.amount.checked_neg() == Some(program.amount)
                    && member.reason == program.reason =>
            {
                Some((m, member.account.asset, member.amount, p))
            }
            _ => None,
        }
    }

    /// Checks the invariants every stored transfer must hold: at least one
    /// posting, none zero, and each asset's postings summing to zero without
    /// overflowing `i64` along the way.
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.postings.is_empty() {
            return Err(LedgerError::EmptyTransfer);
        }
        let mut sums: BTreeMap<Asset, i64> = BTreeMap::new();
        for (index, p) in self.postings.iter().enumerate() {
            if p.amount == 0 {
                return Err(LedgerError::ZeroPosting { index });
            }
            let sum = sums.entry(p.account.asset).or_default();
            *sum = sum.checked_add(p.amount).ok_or(LedgerError::Overflow)?;
        }
        match sums.into_iter().find(|&(_, sum)| sum != 0) {
            Some((asset, sum)) => Err(LedgerError::Unbalanced { asset, sum }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member() -> MemberId {
        MemberId::from_parts(1, [7; 10])
    }

    #[test]
    fn constructors_balance_against_the_right_account() {
        let m = member();
        let cases = [
            (
                Transfer::earn(m, Asset::Points, 10, "r").unwrap(),
                10,
                ProgramAccount::Issued,
            ),
            (
                Transfer::referral(m, Asset::Points, 10, "r").unwrap(),
                10,
                ProgramAccount::Issued,
            ),
            (
                Transfer::grant(m, Asset::Points, 10, "r").unwrap(),
                10,
                ProgramAccount::Issued,
            ),
            (
                Transfer::reversal(Reversal::Grant, m, Asset::Points, 10, "r").unwrap(),
                -10,
                ProgramAccount::Reversed,
            ),
            (
                Transfer::redeem(m, Asset::Points, 10, "r").unwrap(),
                -10,
                ProgramAccount::Redeemed,
            ),
            (
                Transfer::expire(m, Asset::Points, 10, "r").unwrap(),
                -10,
                ProgramAccount::Expired,
            ),
            (
                Transfer::reversal(Reversal::Refund, m, Asset::Points, 10, "r").unwrap(),
                -10,
                ProgramAccount::Reversed,
            ),
            (
                Transfer::reversal(Reversal::Redeem, m, Asset::Cashback, 10, "r").unwrap(),
                10,
                ProgramAccount::Redeemed,
            ),
            (
                Transfer::adjust(m, Asset::Points, -10, "r").unwrap(),
                -10,
                ProgramAccount::Adjustment,
            ),
        ];
        for (t, member_delta, program) in cases {
            t.validate().unwrap();
            assert_eq!(t.postings[0].account.owner, crate::ledger::Owner::Member(m));
            assert_eq!(t.postings[0].amount, member_delta);
            assert_eq!(
                t.postings[1].account.owner,
                crate::ledger::Owner::Program(program)
            );
            let asset = t.postings[0].account.asset;
            assert_eq!(t.legs(), Some((m, asset, member_delta, program)));
        }
    }

    #[test]
    fn legs_are_only_read_off_a_member_against_program_pair() {
        let m = member();
        let mut swapped = Transfer::earn(m, Asset::Points, 10, "r").unwrap();
        swapped.postings.reverse();
        assert_eq!(swapped.legs(), None);
        let mut unbalanced = Transfer::earn(m, Asset::Points, 10, "r").unwrap();
        unbalanced.postings[1].amount = -9;
        assert_eq!(unbalanced.legs(), None);
        let mut reasons = Transfer::earn(m, Asset::Points, 10, "r").unwrap();
        reasons.postings[1].reason = "other".into();
        assert_eq!(reasons.legs(), None);
        let mut three = Transfer::earn(m, Asset::Points, 10, "r").unwrap();
        three.postings.push(three.postings[0].clone());
        assert_eq!(three.legs(), None);
    }

    #[test]
    fn constructors_refuse_empty_moves() {
        let m = member();
        assert_eq!(
            Transfer::earn(m, Asset::Points, 0, "r")
                .unwrap_err()
                .to_string(),
            "amount: must be above 0 (got 0)"
        );
        assert!(Transfer::redeem(m, Asset::Points, -5, "r").is_err());
        assert!(Transfer::adjust(m, Asset::Points, 0, "r").is_err());
        assert_eq!(
            Transfer::adjust(m, Asset::Points, i64::MIN, "r").unwrap_err(),
            LedgerError::Overflow
        );
    }

    #[test]
    fn validate_names_the_broken_invariant() {
        let key = AccountKey::member(member(), Asset::Points);
        let p = |account, amount| Posting {
            account,
            amount,
            reason: String::new(),
        };
        let t = |postings| Transfer {
            kind: TransferKind::Adjust,
            postings,
        };
        assert_eq!(t(vec![]).validate(), Err(LedgerError::EmptyTransfer));
        assert_eq!(
            t(vec![p(key, 0)]).validate(),
            Err(LedgerError::ZeroPosting { index: 0 })
        );
        let issued_cash = AccountKey::program(ProgramAccount::Issued, Asset::Cashback);
        // Balanced in total but not per asset.
        assert_eq!(
            t(vec![p(key, 5), p(issued_cash, -5)]).validate(),
            Err(LedgerError::Unbalanced {
                asset: Asset::Points,
                sum: 5
            })
        );
        assert_eq!(
            t(vec![p(key, i64::MAX), p(key, 1), p(key, i64::MIN)]).validate(),
            Err(LedgerError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn constructed_transfers_always_validate(amount in 1i64..=i64::MAX, kind in 0u8..6) {
            let m = member();
            let t = match kind {
                0 => Transfer::earn(m, Asset::Points, amount, "r"),
                1 => Transfer::redeem(m, Asset::Points, amount, "r"),
                2 => Transfer::expire(m, Asset::Cashback, amount, "r"),
                3 => Transfer::reversal(Reversal::Refund, m, Asset::Points, amount, "r"),
                4 => Transfer::reversal(Reversal::Redeem, m, Asset::Points, amount, "r"),
                _ => Transfer::adjust(m, Asset::Points, -amount, "r"),
            }.unwrap();
            prop_assert_eq!(t.validate(), Ok(()));
        }
    }
}
