//! The states of a referral and the moves between them.
//!
//! clicked → signed_up → qualified → rewarded, with `review` (held by a fraud
//! signal until an admin decides) and `rejected` (with a reason) as the
//! other exits. A referral never goes back, so a replayed purchase or a
//! second approval cannot pay twice.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralState {
    /// The friend followed the link but is not a member yet.
    Clicked,
    /// The friend is a member bound to the referrer.
    SignedUp,
    /// The friend did the qualifying action; rewards are being made.
    Qualified,
    /// Rewards were granted (they may still be pending through the hold).
    Rewarded,
    /// A fraud signal holds the referral until an admin approves or rejects.
    Review,
    /// Closed without rewards; the reason is kept beside it.
    Rejected,
}

/// What happens to a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    SignUp,
    Qualify,
    Reward,
    HoldForReview,
    Approve,
    Reject,
}

impl ReferralState {
    pub const ALL: [Self; 6] = [
        Self::Clicked,
        Self::SignedUp,
        Self::Qualified,
        Self::Rewarded,
        Self::Review,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clicked => "clicked",
            Self::SignedUp => "signed_up",
            Self::Qualified => "qualified",
            Self::Rewarded => "rewarded",
            Self::Review => "review",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, crate::FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                crate::FieldError::new(
                    field,
                    format!("must be one of clicked, signed_up, qualified, rewarded, review, rejected (got {raw:?})"),
                )
            })
    }

    /// Whether nothing more can happen to the referral.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Rewarded | Self::Rejected)
    }

    /// The state after `m`, or `None` when the move does not apply here.
    /// Approval returns a reviewed referral to where it was held from: the
    /// caller passes `qualified` to pay it, or `signed_up` to wait for the
    /// qualifying action.
    pub fn apply(self, m: Move) -> Option<Self> {
        use ReferralState::*;
        match (self, m) {
            (Clicked, Move::SignUp) => Some(SignedUp),
            (SignedUp, Move::Qualify) => Some(Qualified),
            (Qualified, Move::Reward) => Some(Rewarded),
            (Clicked | SignedUp | Qualified, Move::HoldForReview) => Some(Review),
            (Review, Move::Approve) => Some(SignedUp),
            (Clicked | SignedUp | Qualified | Review, Move::Reject) => Some(Rejected),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn happy_path() {
        let s = ReferralState::Clicked;
        let s = s.apply(Move::SignUp).unwrap();
        let s = s.apply(Move::Qualify).unwrap();
        assert_eq!(s.apply(Move::Reward), Some(ReferralState::Rewarded));
    }

    #[test]
    fn review_then_approve_or_reject() {
        let held = ReferralState::SignedUp.apply(Move::HoldForReview).unwrap();
        assert_eq!(held, ReferralState::Review);
        assert_eq!(
            held.apply(Move::Qualify),
            None,
            "held referrals are not paid"
        );
        assert_eq!(held.apply(Move::Approve), Some(ReferralState::SignedUp));
        assert_eq!(held.apply(Move::Reject), Some(ReferralState::Rejected));
    }

    #[test]
    fn names_round_trip() {
        for s in ReferralState::ALL {
            assert_eq!(ReferralState::parse("status", s.as_str()).unwrap(), s);
        }
        assert_eq!(
            ReferralState::parse("status", "paid").unwrap_err().field,
            "status"
        );
    }

    fn any_move() -> impl Strategy<Value = Move> {
        prop_oneof![
            Just(Move::SignUp),
            Just(Move::Qualify),
            Just(Move::Reward),
            Just(Move::HoldForReview),
            Just(Move::Approve),
            Just(Move::Reject),
        ]
    }

    proptest! {
        /// Whatever happens, a referral is rewarded at most once and never
        /// leaves a final state.
        #[test]
        fn final_states_are_final_and_reward_is_once(moves in proptest::collection::vec(any_move(), 0..40)) {
            let mut s = ReferralState::Clicked;
            let mut rewarded = 0;
            for m in moves {
                if let Some(next) = s.apply(m) {
                    prop_assert!(!s.is_final(), "{s:?} moved on by {m:?}");
                    if next == ReferralState::Rewarded { rewarded += 1; }
                    s = next;
                }
            }
            prop_assert!(rewarded <= 1);
        }
    }
}
