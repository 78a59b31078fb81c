//! HTTP integration tests: every test runs on SQLite and on PostgreSQL.

mod helpers;

mod adjustments;
mod auth;
mod booking;
mod browser;
mod console;
mod events;
mod idempotency;
mod ledger_semantics;
mod links;
mod members;
mod messaging;
mod numbers;
mod page_guard;
mod pages;
mod platform;
mod portal;
mod program;
mod redemptions;
mod redirect;
mod referral_fraud;
mod referrals;
mod sent_secrets;
mod spec;
mod voice;
