//! What can go wrong in ledger math. Every message carries the numbers and
//! says what would be accepted, so the API and the CLI can show it verbatim.

use super::account::Asset;
use crate::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// An input value is out of range (negative amount, bad setting).
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("a transfer needs postings; add the member posting and its program counterpart")]
    EmptyTransfer,
    #[error("posting {index} has amount 0; drop it or give it a non-zero amount")]
    ZeroPosting { index: usize },
    #[error("{asset} postings sum to {sum}, not 0; add the matching program posting")]
    Unbalanced { asset: Asset, sum: i64 },
    #[error("amounts overflow 64-bit integers; split the operation into smaller amounts")]
    Overflow,
    #[error("{available} available but {requested} requested; request at most {available}")]
    InsufficientBalance { available: i64, requested: i64 },
    #[error("refund of {requested} exceeds the {remaining} of the order not yet refunded; refund at most {remaining}")]
    RefundExceedsOrder { remaining: i64, requested: i64 },
    #[error("{requested} points exceed the share of the order points may pay; redeem at most {max_points}")]
    AboveMaxShare { max_points: i64, requested: i64 },
    #[error("{requested} points are below the minimum redemption; redeem at least {min_points}")]
    BelowMinimum { min_points: i64, requested: i64 },
    #[error("{field} failed on this order ({message}); fix the expression so it yields true or false for every order")]
    Condition { field: String, message: String },
    #[error(
        "key {key:?} was already used for a different request; send a new key for a new request"
    )]
    KeyReused { key: String },
    #[error("order {order_id:?} already earned; refund it instead of earning again")]
    DuplicateOrder { order_id: String },
    #[error("order {order_id:?} has no earn for this member; earn it first or check the order id")]
    UnknownOrder { order_id: String },
    #[error("hold {hold} does not exist; use the id the hold call returned")]
    UnknownHold { hold: u64 },
    #[error("hold {hold} is already {state}; a hold is posted or voided once")]
    HoldSettled { hold: u64, state: &'static str },
}
