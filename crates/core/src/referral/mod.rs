//! The referral engine's rules, pure: who gets what when a referred friend
//! qualifies (`rules`), which states a referral moves through (`state`),
//! which fraud signals hold a referral for review (`fraud`), and walks of
//! the referral graph (`graph`). The store feeds them loaded rows.

pub mod fraud;
pub mod graph;
pub mod rules;
pub mod state;

pub use rules::{Payout, Qualifying, ReferralRules, Reward, Tier};
pub use state::ReferralState;
