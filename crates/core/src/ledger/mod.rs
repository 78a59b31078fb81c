//! The points ledger: double-entry accounts, transfers that always balance,
//! earn rules, refunds, expiring lots and redemption limits.
//!
//! Money rules hold everywhere here: amounts are `i64` minor units or points,
//! never floats; every balance change is a posting of a transfer whose
//! postings sum to zero per asset; every rounding is named and deterministic.

pub mod account;
pub mod book;
mod condition;
pub mod error;
pub mod lots;
pub mod reason;
pub mod redeem;
pub mod refund;
pub mod rules;
pub mod transfer;

pub use account::{AccountKey, Asset, Owner, ProgramAccount};
pub use error::LedgerError;
pub use transfer::{Posting, Transfer, TransferKind};

use crate::FieldError;

/// Refuses a negative `value`, naming `field`.
pub(crate) fn non_negative(field: &str, value: i64) -> Result<i64, FieldError> {
    if value < 0 {
        return Err(FieldError::new(
            field,
            format!("must not be negative (got {value})"),
        ));
    }
    Ok(value)
}

/// Refuses a zero or negative `value`, naming `field`.
pub(crate) fn positive(field: &str, value: i64) -> Result<i64, FieldError> {
    if value <= 0 {
        return Err(FieldError::new(
            field,
            format!("must be above 0 (got {value})"),
        ));
    }
    Ok(value)
}
