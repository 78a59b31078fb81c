//! The ledger in the database: events in, balanced transfers out, balances
//! materialised beside their postings, and points kept in expiring lots.
//!
//! The semantics are those of `sarafan_core::ledger::book::Book`, the
//! property-tested reference; `tests/ledger.rs` runs random scenarios through
//! both and compares them.

mod ingest;
mod jobs;
mod reads;
mod rules;
mod sqlite_io;
mod writes;

pub use ingest::{
    breakdown_json, read_reason, EventBody, EventIn, EventOutcome, ItemError, ItemResult,
    LedgerContext, MemberRef,
};
pub(crate) use ingest::{stored, Wanted};
pub(crate) use reads::{book_in, Announce};
pub use reads::{LedgerTotals, MemberBalance, PendingHold, StatementLine};
pub use rules::RuleVersion;
