//! Sarafan's domain. Everything here is pure: no I/O, no async, no clocks or
//! randomness of its own (callers pass time and entropy in), so every rule can
//! be unit- and property-tested in isolation.

pub mod apikey;
pub mod bounds;
pub mod card;
pub mod error;
pub mod ids;
pub mod ledger;
pub mod link;
pub mod member;
pub mod outbox;
pub mod program;
pub mod referral;
pub mod share;
pub mod signin;
pub mod staff;
pub mod text;
pub mod voice;

pub use error::FieldError;
